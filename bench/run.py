"""Throughput and latency of Portico against a bare grpc.aio server and a direct call.

One run starts both servers as separate processes on loopback, drives each with the same
gRPC load from this process, and times the fake provider called directly in-process (no
gRPC at all). It prints one table side by side and writes bench/results/latest.json.

    make bench                          # default sizes (about a minute on two cores)
    make bench ARGS="--requests 2000"   # quicker
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import grpc
from portico.v1 import llm_service_pb2 as pb
from portico.v1 import llm_service_pb2_grpc
from portico.v1 import types_pb2 as t

HERE = Path(__file__).resolve().parent
PROMPT = "Benchmarks measure; they do not assert. " * 5  # 200 characters -> 50 chunks of 4


def start(cmd: list[str], marker: str) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if marker not in line:
        proc.kill()
        raise SystemExit(f"server did not start: {line!r}")
    return proc, line.rsplit(" ", 1)[-1].strip()


def request() -> pb.ChatRequest:
    return pb.ChatRequest(model="fake-chat", messages=[t.Message(role=t.ROLE_USER, content=PROMPT)])


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def unary_load(address: str, total: int, concurrency: int) -> dict[str, float]:
    async with grpc.aio.insecure_channel(address) as channel:
        stub = llm_service_pb2_grpc.LLMServiceStub(channel)
        req = request()
        for _ in range(50):  # warm up connections and code paths
            await stub.Chat(req)
        latencies: list[float] = []
        remaining = total

        async def worker() -> None:
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                began = time.perf_counter()
                await stub.Chat(req, timeout=30)
                latencies.append(time.perf_counter() - began)

        began = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - began
    return {
        "unary_rps": len(latencies) / elapsed,
        "unary_p50_ms": statistics.median(latencies) * 1000,
        "unary_p99_ms": percentile(latencies, 0.99) * 1000,
    }


async def stream_load(address: str, total: int, concurrency: int) -> dict[str, float]:
    async with grpc.aio.insecure_channel(address) as channel:
        stub = llm_service_pb2_grpc.LLMServiceStub(channel)
        req = request()
        first_chunk: list[float] = []
        chunks = 0
        remaining = total

        async def worker() -> None:
            nonlocal remaining, chunks
            while remaining > 0:
                remaining -= 1
                began = time.perf_counter()
                seen = 0
                async for _ in stub.StreamChat(req, timeout=30):
                    if seen == 0:
                        first_chunk.append(time.perf_counter() - began)
                    seen += 1
                chunks += seen

        began = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - began
    return {
        "streams_per_s": len(first_chunk) / elapsed,
        "chunks_per_s": chunks / elapsed,
        "first_chunk_p50_ms": statistics.median(first_chunk) * 1000,
    }


async def direct_calls(total: int) -> dict[str, float]:
    """The fake provider called in-process: what Portico's own work costs without gRPC."""
    from portico_server import convert
    from portico_server.config import ProviderSettings
    from portico_server.providers.fake import FakeProvider

    provider = FakeProvider(ProviderSettings(name="fake", kind="fake", models=["fake-chat"]))
    req = request()
    began = time.perf_counter()
    for _ in range(total):
        chat = convert.chat_request(req, "fake-chat")
        convert.completion(await provider.chat(chat), "fake")
    unary = total / (time.perf_counter() - began)
    began = time.perf_counter()
    chunks = 0
    for _ in range(total // 10):
        async for chunk in provider.stream(convert.chat_request(req, "fake-chat")):
            convert.chunk(chunk)
            chunks += 1
    return {"unary_rps": unary, "chunks_per_s": chunks / (time.perf_counter() - began)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=6000, help="unary calls per server")
    parser.add_argument("--streams", type=int, default=1500, help="streams per server")
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()

    bin_dir = Path(sys.executable).parent
    servers = {
        "bare grpc.aio": start([sys.executable, str(HERE / "bare_server.py")], "listening on"),
        "portico": start([str(bin_dir / "portico"), "serve", "--config", str(HERE / "fake.yaml"),
                          "--address", "127.0.0.1:0"], "listening on"),
    }
    results: dict[str, dict[str, float]] = {}
    try:
        for name, (_, address) in servers.items():
            row = asyncio.run(unary_load(address, args.requests, args.concurrency))
            row.update(asyncio.run(stream_load(address, args.streams, args.concurrency // 2)))
            results[name] = row
    finally:
        for proc, _ in servers.values():
            proc.terminate()
            proc.wait(10)
    results["direct call (no gRPC)"] = asyncio.run(direct_calls(args.requests))

    bare, ours = results["bare grpc.aio"], results["portico"]
    print(f"\nPython {platform.python_version()}, grpcio {grpc.__version__}, "
          f"{args.requests} unary calls and {args.streams} streams of {len(PROMPT) // 4 + 1} chunks, "
          f"concurrency {args.concurrency}\n")
    print(f"{'':24}{'unary/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'streams/s':>11}{'chunks/s':>11}{'1st chunk ms':>14}")
    for name, row in results.items():
        print(
            f"{name:24}{row['unary_rps']:>10.0f}{row.get('unary_p50_ms', 0):>9.2f}"
            f"{row.get('unary_p99_ms', 0):>9.2f}{row.get('streams_per_s', 0):>11.0f}"
            f"{row['chunks_per_s']:>11.0f}{row.get('first_chunk_p50_ms', 0):>14.2f}"
        )
    ratios = {
        "unary_vs_bare": ours["unary_rps"] / bare["unary_rps"],
        "chunks_vs_bare": ours["chunks_per_s"] / bare["chunks_per_s"],
        "unary_vs_direct": ours["unary_rps"] / results["direct call (no gRPC)"]["unary_rps"],
    }
    print(f"\nportico / bare grpc.aio: unary {ratios['unary_vs_bare']:.2f}x, "
          f"stream chunks {ratios['chunks_vs_bare']:.2f}x   (goal: >= 0.5x)")
    print(f"portico / direct call:   unary {ratios['unary_vs_direct']:.3f}x")
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    (out / "latest.json").write_text(json.dumps({"args": vars(args), "results": results, "ratios": ratios}, indent=2))


if __name__ == "__main__":
    main()
