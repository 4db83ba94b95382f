"""OTLP receivers for tests, over gRPC and over HTTP/protobuf, keeping every export request they get."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent import futures
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import grpc
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.servers import serve_in_thread


@dataclass
class Received:
    traces: list[trace_service_pb2.ExportTraceServiceRequest] = field(default_factory=list)
    metrics: list[metrics_service_pb2.ExportMetricsServiceRequest] = field(default_factory=list)

    def spans(self) -> list[Any]:
        return [s for r in self.traces for rs in r.resource_spans for ss in rs.scope_spans for s in ss.spans]

    def metric_list(self) -> list[Any]:
        return [m for r in self.metrics for rm in r.resource_metrics for sm in rm.scope_metrics for m in sm.metrics]


# As the Collector answers (tests/monitoring/test_pipeline.py compares them): an empty partial_success, set.
def _traces_accepted() -> trace_service_pb2.ExportTraceServiceResponse:
    return trace_service_pb2.ExportTraceServiceResponse(partial_success=trace_service_pb2.ExportTracePartialSuccess())


def _metrics_accepted() -> metrics_service_pb2.ExportMetricsServiceResponse:
    return metrics_service_pb2.ExportMetricsServiceResponse(
        partial_success=metrics_service_pb2.ExportMetricsPartialSuccess()
    )


class _Traces(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self, received: Received) -> None:
        self.received = received

    def Export(self, request: Any, context: Any) -> Any:  # noqa: N802 (gRPC's name)
        self.received.traces.append(request)
        return _traces_accepted()


class _Metrics(metrics_service_pb2_grpc.MetricsServiceServicer):
    def __init__(self, received: Received) -> None:
        self.received = received

    def Export(self, request: Any, context: Any) -> Any:  # noqa: N802
        self.received.metrics.append(request)
        return _metrics_accepted()


@contextmanager
def grpc_receiver() -> Iterator[tuple[str, Received]]:
    received = Received()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(_Traces(received), server)
    metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(_Metrics(received), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield f"http://127.0.0.1:{port}", received
    finally:
        server.stop(grace=None)


@contextmanager
def http_receiver() -> Iterator[tuple[str, Received]]:
    received = Received()

    async def traces(request: Request) -> Response:
        received.traces.append(trace_service_pb2.ExportTraceServiceRequest.FromString(await request.body()))
        body = _traces_accepted().SerializeToString()
        return Response(body, media_type="application/x-protobuf")

    async def metrics(request: Request) -> Response:
        received.metrics.append(metrics_service_pb2.ExportMetricsServiceRequest.FromString(await request.body()))
        body = _metrics_accepted().SerializeToString()
        return Response(body, media_type="application/x-protobuf")

    app = Starlette(
        routes=[Route("/v1/traces", traces, methods=["POST"]), Route("/v1/metrics", metrics, methods=["POST"])]
    )
    with serve_in_thread(app) as server:
        yield server.url, received
