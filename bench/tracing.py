"""What tracing costs the gateway: CPU per unary `fake` call with tracing off (no OTEL_*
variables) and on (every span exported over OTLP/gRPC to a receiver in this process), and,
for the server span alone, our interceptor against opentelemetry-instrumentation-grpc's.

    .venv/bin/python bench/tracing.py [--calls 2000] [--rounds 3] [--baseline-src DIR]

`--baseline-src` runs the same gateway from another checkout's sources (the one before
tracing existed) to show that "off" costs nothing. Each round starts fresh gateways and
alternates the variants; the figure is the median over rounds of the gateway process's
user+system CPU divided by the calls (sequential, one connection). Not a test: run by hand.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
from procs import cpu_seconds, start

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "clients" / "python"), str(ROOT / "server")]

from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc  # noqa: E402
from portico.v1 import llm_service_pb2 as pb  # noqa: E402
from portico.v1 import llm_service_pb2_grpc  # noqa: E402
from portico.v1 import types_pb2 as t  # noqa: E402

CONFIG = "providers:\n  - {name: fake, kind: fake, models: [fake-chat]}\n"
REQUEST = pb.ChatRequest(model="fake-chat", messages=[t.Message(role=t.ROLE_USER, content="hello")])
TRACEPARENT = (("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),)


class Sink(trace_service_pb2_grpc.TraceServiceServicer):
    spans = 0

    def Export(self, request: Any, context: Any) -> Any:
        Sink.spans += sum(len(s.spans) for r in request.resource_spans for s in r.scope_spans)
        return trace_service_pb2.ExportTraceServiceResponse()


def gateway_cpu_per_call(name: str, env: dict[str, str], calls: int, log_dir: Path) -> float:
    config = log_dir / "portico.yaml"
    config.write_text(CONFIG)
    command = [sys.executable, "-c", "import sys; from portico_server.cli import main; sys.exit(main())",
               "serve", "--workers", "1",
               "--address", "127.0.0.1:0", "--config", str(config)]
    server = start(name, command, "listening on", log_dir, env=env)
    try:
        with grpc.insecure_channel(server.address) as channel:
            stub = llm_service_pb2_grpc.LLMServiceStub(channel)
            for _ in range(200):  # warm up: imports, first connections, caches
                stub.Chat(REQUEST, metadata=TRACEPARENT)
            before = cpu_seconds(server.pid)
            for _ in range(calls):
                stub.Chat(REQUEST, metadata=TRACEPARENT)
            used = cpu_seconds(server.pid) - before
    finally:
        server.stop()
    return used / calls * 1e6


def interceptor_cost(calls: int) -> dict[str, float]:
    """CPU per call of a bare grpc.aio server (one trivial unary method) with no interceptor,
    Portico's server-span interceptor, and opentelemetry-instrumentation-grpc's, all
    recording into a TracerProvider without exporter (the span work alone)."""
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
    from portico_server import tracing

    provider = TracerProvider()
    tracing._provider, tracing._tracer, tracing.enabled = provider, provider.get_tracer("bench"), True
    tracing._propagator = TraceContextTextMapPropagator()

    def ours() -> list[Any]:
        return tracing.server_interceptors("127.0.0.1:0")

    def theirs() -> list[Any]:
        try:
            from opentelemetry.instrumentation.grpc import aio_server_interceptor
        except ImportError:
            return []
        return [aio_server_interceptor(tracer_provider=provider)]

    async def run(interceptors: list[Any]) -> float:
        async def chat(request: bytes, context: Any) -> bytes:
            return b""

        handler = grpc.method_handlers_generic_handler(
            "portico.v1.LLMService", {"Chat": grpc.unary_unary_rpc_method_handler(chat)})
        server = grpc.aio.server(interceptors=interceptors)
        server.add_generic_rpc_handlers((handler,))
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            call = channel.unary_unary("/portico.v1.LLMService/Chat")
            for _ in range(200):
                await call(b"", metadata=TRACEPARENT)
            started = time.process_time()
            for _ in range(calls):
                await call(b"", metadata=TRACEPARENT)
            used = time.process_time() - started
        await server.stop(0)
        return used / calls * 1e6

    results: dict[str, list[float]] = {"none": [], "portico": [], "instrumentation-grpc": []}
    for _ in range(3):
        results["none"].append(asyncio.run(run([])))
        results["portico"].append(asyncio.run(run(ours())))
        if theirs():
            results["instrumentation-grpc"].append(asyncio.run(run(theirs())))
    return {k: statistics.median(v) for k, v in results.items() if v}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--baseline-src", type=Path)
    args = parser.parse_args()

    sink = grpc.server(futures.ThreadPoolExecutor(4))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(Sink(), sink)
    sink_port = sink.add_insecure_port("127.0.0.1:0")
    sink.start()

    clean = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    here = {**clean, "PYTHONPATH": f"{ROOT / 'server'}:{ROOT / 'clients' / 'python'}"}
    variants = {"tracing off (no OTEL_*)": here,
                "tracing on, OTLP/gRPC export": {**here, "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{sink_port}"},
                "tracing on, 1% sampled": {**here, "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{sink_port}",
                                           "OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.01"}}
    if args.baseline_src:
        src = args.baseline_src
        variants = {"before tracing existed": {**clean, "PYTHONPATH": f"{src / 'server'}:{src / 'clients' / 'python'}"},
                    **variants}
    figures: dict[str, list[float]] = {name: [] for name in variants}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.rounds):
            for name, env in variants.items():
                figures[name].append(gateway_cpu_per_call(name, env, args.calls, Path(tmp)))
    sink.stop(0)
    print(f"gateway CPU per unary fake call ({args.calls} sequential calls, median of {args.rounds} rounds):")
    for name, values in figures.items():
        print(f"  {name:32s} {statistics.median(values):7.0f} µs   (rounds: {', '.join(f'{v:.0f}' for v in values)})")
    print(f"  spans received: {Sink.spans}")
    print(f"server-span interceptor alone, CPU per call ({args.calls} calls, median of 3):")
    for name, value in interceptor_cost(args.calls).items():
        print(f"  {name:32s} {value:7.0f} µs")


if __name__ == "__main__":
    main()
