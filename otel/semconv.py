"""Names, attribute keys and histogram buckets of the telemetry contract.

Keys that the OpenTelemetry semantic conventions (v1.41.1) define are re-exported from
``opentelemetry.semconv``; the ``mistral_*`` series keep the original system's names and labels.

Histogram buckets (seconds unless noted), written as floats so that ``le`` labels are identical on the
direct ``/metrics`` path and through the Collector:

| histogram | buckets | why |
|---|---|---|
| `mistral_http_request_duration_seconds` | 5 ms … 10 min | listings take ms, generations minutes; 5 s, 10 s alert |
| `mistral_generate_duration_seconds` | 100 ms … 10 min | one generation; 30 s is the slow-generation alert |
| `mistral_model_load_duration_seconds` | 100 ms … 10 min | a small GGUF from RAM to a large model off disk |
| `mistral_event_loop_lag_seconds` | 1 ms … 10 s | a healthy loop wakes within a millisecond or two; 100 ms alerts |
| `gen_ai_client_operation_duration_seconds` | 0.01 … 81.92 | semconv's advisory boundaries |
| `gen_ai_server_time_to_first_token_seconds` | 0.001 … 10 | semconv's advisory boundaries |
| `gen_ai_server_time_per_output_token_seconds` | 0.01 … 2.5 | semconv's advisory boundaries |
| `gen_ai_client_token_usage` (tokens) | 1, 4, 16 … 67108864 | semconv's advisory boundaries (powers of 4) |
"""

from __future__ import annotations

from typing import Final

from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as gen_ai
from opentelemetry.semconv._incubating.metrics import gen_ai_metrics
from opentelemetry.semconv.attributes import error_attributes, http_attributes, server_attributes

__all__ = [
    "ENDPOINT",
    "ERROR_TYPE",
    "MODEL",
    "OTHER",
    "PROVIDER",
    "PROXY_UPSTREAM",
    "TENANT",
    "TENANT_ATTRIBUTE",
    "TOKEN_TYPE",
    "LIMIT",
    "STATUS",
    "UPSTREAM",
    "Buckets",
    "GenAI",
    "Http",
    "Metric",
    "SERVER_ADDRESS",
    "SERVER_PORT",
]

# Labels of the mistral_* series.
ENDPOINT: Final = "endpoint"
STATUS: Final = "status"
MODEL: Final = "model"
UPSTREAM: Final = "upstream"
# The same name on the GenAI metrics, in the proxy's own namespace: a pool member's configured name, or "embedded"
# for the in-process engine, which has no server.address; it joins them with mistral_upstream_up.
PROXY_UPSTREAM: Final = "ollama_proxy.upstream"
# Who sent a request: a tenant's name from API_KEYS_FILE ("anonymous" for unnamed keys and unknown callers). A
# label of the mistral_tenant_* series; on spans and log records in the proxy's namespace, as no convention names
# a team sharing keys (user.id is one person).
TENANT: Final = "tenant"
TENANT_ATTRIBUTE: Final = "ollama_proxy.tenant"
TOKEN_TYPE: Final = "type"
LIMIT: Final = "limit"
ERROR_TYPE: Final = error_attributes.ERROR_TYPE  # "error.type" on spans and GenAI metrics
ERROR_TYPE_LABEL: Final = "error_type"  # the mistral_http_requests_total label
NO_ERROR: Final = "none"
# The one value every unknown model or unmatched path folds into, so clients cannot explode cardinality.
OTHER: Final = "other"
UNMATCHED_ENDPOINT: Final = "unmatched"

SERVER_ADDRESS: Final = server_attributes.SERVER_ADDRESS
SERVER_PORT: Final = server_attributes.SERVER_PORT
# gen_ai.provider.name has no well-known value for mistral.rs; this is ours.
PROVIDER: Final = "mistral_rs"


class Http:
    REQUEST_METHOD = http_attributes.HTTP_REQUEST_METHOD
    ROUTE = http_attributes.HTTP_ROUTE
    RESPONSE_STATUS_CODE = http_attributes.HTTP_RESPONSE_STATUS_CODE


class GenAI:
    OPERATION = gen_ai.GEN_AI_OPERATION_NAME
    PROVIDER_NAME = gen_ai.GEN_AI_PROVIDER_NAME
    REQUEST_MODEL = gen_ai.GEN_AI_REQUEST_MODEL
    REQUEST_MAX_TOKENS = gen_ai.GEN_AI_REQUEST_MAX_TOKENS
    REQUEST_TEMPERATURE = gen_ai.GEN_AI_REQUEST_TEMPERATURE
    REQUEST_TOP_P = gen_ai.GEN_AI_REQUEST_TOP_P
    REQUEST_TOP_K = gen_ai.GEN_AI_REQUEST_TOP_K
    REQUEST_FREQUENCY_PENALTY = gen_ai.GEN_AI_REQUEST_FREQUENCY_PENALTY
    REQUEST_PRESENCE_PENALTY = gen_ai.GEN_AI_REQUEST_PRESENCE_PENALTY
    REQUEST_STOP_SEQUENCES = gen_ai.GEN_AI_REQUEST_STOP_SEQUENCES
    REQUEST_SEED = gen_ai.GEN_AI_REQUEST_SEED
    REQUEST_STREAM = gen_ai.GEN_AI_REQUEST_STREAM
    RESPONSE_MODEL = gen_ai.GEN_AI_RESPONSE_MODEL
    RESPONSE_ID = gen_ai.GEN_AI_RESPONSE_ID
    RESPONSE_FINISH_REASONS = gen_ai.GEN_AI_RESPONSE_FINISH_REASONS
    RESPONSE_TIME_TO_FIRST_CHUNK = gen_ai.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK
    USAGE_INPUT_TOKENS = gen_ai.GEN_AI_USAGE_INPUT_TOKENS
    USAGE_OUTPUT_TOKENS = gen_ai.GEN_AI_USAGE_OUTPUT_TOKENS
    TOKEN_TYPE = gen_ai.GEN_AI_TOKEN_TYPE
    INPUT_MESSAGES = gen_ai.GEN_AI_INPUT_MESSAGES
    OUTPUT_MESSAGES = gen_ai.GEN_AI_OUTPUT_MESSAGES
    CHAT = gen_ai.GenAiOperationNameValues.CHAT.value
    TEXT_COMPLETION = gen_ai.GenAiOperationNameValues.TEXT_COMPLETION.value
    EMBEDDINGS = gen_ai.GenAiOperationNameValues.EMBEDDINGS.value
    INPUT = gen_ai.GenAiTokenTypeValues.INPUT.value
    OUTPUT = gen_ai.GenAiTokenTypeValues.OUTPUT.value


class Metric:
    """Instrument names; the Prometheus exporter appends the unit word and ``_total``."""

    HTTP_REQUESTS = "mistral_http_requests"
    HTTP_REQUEST_DURATION = "mistral_http_request_duration"
    ACTIVE_REQUESTS = "mistral_active_requests"
    GENERATE_DURATION = "mistral_generate_duration"
    GENERATE_TOKENS = "mistral_generate_tokens"
    STREAMING_CHUNKS = "mistral_streaming_chunks"
    MODEL_LOAD_DURATION = "mistral_model_load_duration"
    UPSTREAM_UP = "mistral_upstream_up"
    EVENT_LOOP_LAG = "mistral_event_loop_lag"
    TENANT_REQUESTS = "mistral_tenant_requests"
    TENANT_TOKENS = "mistral_tenant_tokens"
    TENANT_RATE_LIMITED = "mistral_tenant_rate_limited"
    TENANT_LIMITS = "mistral_tenant_limit"
    QUOTA_STORE_UP = "mistral_quota_store_up"
    TOKEN_USAGE = gen_ai_metrics.GEN_AI_CLIENT_TOKEN_USAGE
    OPERATION_DURATION = gen_ai_metrics.GEN_AI_CLIENT_OPERATION_DURATION
    TIME_TO_FIRST_TOKEN = gen_ai_metrics.GEN_AI_SERVER_TIME_TO_FIRST_TOKEN
    TIME_PER_OUTPUT_TOKEN = gen_ai_metrics.GEN_AI_SERVER_TIME_PER_OUTPUT_TOKEN


class Buckets:
    HTTP = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0)
    GENERATE = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 45.0, 60.0, 120.0, 180.0, 300.0, 600.0)
    MODEL_LOAD = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0)
    EVENT_LOOP_LAG = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
    OPERATION = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92)
    TIME_TO_FIRST_TOKEN = (
        0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
    )  # fmt: skip
    TIME_PER_OUTPUT_TOKEN = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5)
    TOKENS = tuple(float(4**power) for power in range(14))
