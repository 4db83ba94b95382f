"""Each package's ``__all__`` is exactly its public surface (house style: private by default)."""

from __future__ import annotations

import importlib
import inspect

import pytest


@pytest.mark.parametrize(
    "name",
    [
        "app.errors",
        "app.http",
        "app.models",
        "app.models.names",
        "app.ollama",
        "app.ollama.translate.stream",
        "app.upstream",
        "app.upstream.embedded",
        "app.upstream.http",
    ],
)
def test_all_lists_every_public_class_and_function(name: str) -> None:
    module = importlib.import_module(name)
    package = name if hasattr(module, "__path__") else name.rsplit(".", 1)[0]
    defined = {
        attr
        for attr, value in vars(module).items()
        if not attr.startswith("_")
        and (inspect.isclass(value) or inspect.isfunction(value))
        and value.__module__.startswith(package)
    }
    assert defined <= set(module.__all__)
    assert all(hasattr(module, attr) for attr in module.__all__)
