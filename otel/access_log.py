"""One structured access-log line per request, written by the HTTP middleware while the server span is current.

The line is logfmt for people (``method=POST route=/api/chat status=200 duration_ms=812.4 model=… trace_id=…``);
the same values travel as attributes under semantic-convention keys, so an OTLP log handler exports them as
structured fields with the trace context. No prompt, completion, header or query string is ever logged.
"""

from __future__ import annotations

import logging

from opentelemetry.trace import format_span_id, format_trace_id, get_current_span

from otel.record import RequestRecord
from otel.semconv import ERROR_TYPE, NO_ERROR, TENANT_ATTRIBUTE, GenAI, Http

__all__ = ["ACCESS_LOGGER", "log_request"]

ACCESS_LOGGER = "mistral_ollama_proxy.access"
EVENT_NAME = "ollama_proxy.access"
_log = logging.getLogger(ACCESS_LOGGER)


def log_request(
    method: str, route: str, status: int, seconds: float, error_type: str, record: RequestRecord | None
) -> None:
    if not _log.isEnabledFor(logging.INFO):
        return
    context = get_current_span().get_span_context()
    trace_id = format_trace_id(context.trace_id) if context.is_valid else ""
    span_id = format_span_id(context.span_id) if context.is_valid else ""
    duration_ms = round(seconds * 1000, 1)
    attributes: dict[str, object] = {
        "otel.event.name": EVENT_NAME,
        Http.REQUEST_METHOD: method,
        Http.ROUTE: route,
        Http.RESPONSE_STATUS_CODE: status,
        "ollama_proxy.duration_ms": duration_ms,
    }
    if error_type != NO_ERROR:  # error.type is for failures only; the line keeps the seed's error_type=none
        attributes[ERROR_TYPE] = error_type
    line = f"method={method} route={route} status={status} duration_ms={duration_ms}"
    if record is not None and record.tenant is not None:
        attributes[TENANT_ATTRIBUTE] = record.tenant
        line += f" tenant={record.tenant}"
    if record is not None and record.model is not None:
        attributes[GenAI.REQUEST_MODEL] = record.model
        line += f" model={record.model}"
        for key, name, value in (
            (GenAI.USAGE_INPUT_TOKENS, "input_tokens", record.input_tokens),
            (GenAI.USAGE_OUTPUT_TOKENS, "output_tokens", record.output_tokens),
        ):
            if value is not None:
                attributes[key] = value
                line += f" {name}={value}"
    line += f" error_type={error_type} trace_id={trace_id or '-'} span_id={span_id or '-'}"
    _log.info(line, extra=attributes)
