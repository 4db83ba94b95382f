"""The HTTP layer: one middleware per file, error rendering, response framing, and the server. It imports no route
and no engine; ``app.main`` assembles the application from it."""

__all__: list[str] = []  # nothing re-exported: import the module you need
