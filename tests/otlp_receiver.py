"""A small OTLP/gRPC trace receiver on loopback: what an OpenTelemetry Collector would get.

Built from the `opentelemetry-proto` messages. Tests point the gateway at it with
`OTEL_EXPORTER_OTLP_ENDPOINT` and read back the spans (flattened) and every request's raw
bytes (to look for secrets anywhere in what was exported).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1 import trace_pb2

SERVER = trace_pb2.Span.SPAN_KIND_SERVER
CLIENT = trace_pb2.Span.SPAN_KIND_CLIENT
STATUS_ERROR = trace_pb2.Status.STATUS_CODE_ERROR
STATUS_UNSET = trace_pb2.Status.STATUS_CODE_UNSET


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_value(v) for v in value.array_value.values]
    return getattr(value, kind) if kind else None


@dataclass
class ReceivedSpan:
    name: str
    kind: int
    trace_id: str
    span_id: str
    parent_span_id: str
    attributes: dict[str, Any]
    status: int
    status_message: str
    resource: dict[str, Any]
    start: int
    end: int


class Receiver(trace_service_pb2_grpc.TraceServiceServicer):
    """`async with Receiver() as otlp:`; `otlp.endpoint` is its address for OTEL_* variables."""

    def __init__(self) -> None:
        self.spans: list[ReceivedSpan] = []
        self.raw: list[bytes] = []
        self._server: grpc.aio.Server | None = None
        self.endpoint = ""
        self._arrived = asyncio.Event()

    async def Export(  # the generated servicer's name
        self, request: trace_service_pb2.ExportTraceServiceRequest, context: Any
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        self.raw.append(request.SerializeToString())
        for resource_spans in request.resource_spans:
            resource = {a.key: _value(a.value) for a in resource_spans.resource.attributes}
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    self.spans.append(ReceivedSpan(
                        name=span.name, kind=span.kind, trace_id=span.trace_id.hex(), span_id=span.span_id.hex(),
                        parent_span_id=span.parent_span_id.hex(),
                        attributes={a.key: _value(a.value) for a in span.attributes},
                        status=span.status.code, status_message=span.status.message, resource=resource,
                        start=span.start_time_unix_nano, end=span.end_time_unix_nano,
                    ))
        self._arrived.set()
        return trace_service_pb2.ExportTraceServiceResponse()

    async def wait_for(self, count: int, kind: int | None = None, timeout: float = 20.0) -> list[ReceivedSpan]:
        """Wait (bounded) until `count` spans (of `kind`) have arrived; returns those of `kind`."""
        async with asyncio.timeout(timeout):
            while True:
                found = [s for s in self.spans if kind is None or s.kind == kind]
                if len(found) >= count:
                    return found
                self._arrived.clear()
                await self._arrived.wait()

    def of_kind(self, kind: int) -> list[ReceivedSpan]:
        return [s for s in self.spans if s.kind == kind]

    async def __aenter__(self) -> Receiver:
        self._server = grpc.aio.server()
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(self, self._server)
        port = self._server.add_insecure_port("127.0.0.1:0")
        await self._server.start()
        self.endpoint = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        await self._server.stop(0)
