"""Telemetry for the proxy: OpenTelemetry metrics and traces.

The application imports ``otel.genai``, ``otel.metrics`` and ``otel.semconv`` (OpenTelemetry API only) and
receives a ``Telemetry`` from ``otel.setup``, the one module that builds SDK providers and exporters.
"""
