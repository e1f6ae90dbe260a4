"""An upstream that sends too much — a 64 MiB line, an endless event, a gzip bomb — is
refused quickly, in bounded memory, while the gateway's health service keeps answering.
The gateway runs as its own process so its memory can be read from /proc."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml
from dialects import BY_NAME, JSON, NDJSON, SSE, Dialect
from grpc_health.v1 import health_pb2, health_pb2_grpc
from harness import rpc_details, spawned_gateway
from portico.v1 import llm_service_pb2 as pb
from portico.v1 import llm_service_pb2_grpc
from portico.v1 import types_pb2 as t
from upstream import Reply, Upstream, gzip_bomb

MiB = 1024 * 1024


def huge_line(prefix: bytes) -> bytes:
    return prefix + b"x" * (64 * MiB)


def many_data_lines() -> bytes:
    return b"".join(b"data: " + b"y" * MiB + b"\n" for _ in range(40)) + b"\n"


#: (dialect, stream?, reply, the limit named, most the gateway's memory may grow)
CASES: dict[str, tuple[str, bool, Callable[[], Reply], str, int]] = {
    "64 MiB SSE line": ("openai", True, lambda: Reply(200, SSE, huge_line(b"data: "), cut_every=MiB),
                        "max_line_bytes=16777216", 48 * MiB),
    "64 MiB NDJSON line": ("ollama", True, lambda: Reply(200, NDJSON, huge_line(b'{"message": "'), cut_every=MiB),
                           "max_line_bytes=16777216", 48 * MiB),
    "40 MiB SSE event": ("gemini", True, lambda: Reply(200, SSE, many_data_lines(), cut_every=MiB),
                         "max_event_bytes=33554432", 64 * MiB),
    "gzip bomb, stream": ("anthropic", True,
                          lambda: Reply(200, {**SSE, "content-encoding": "gzip"},
                                        gzip_bomb(b": " + b"z" * 1021 + b"\n"), cut_every=64 * 1024),
                          "max_response_bytes=67108864", 48 * MiB),
    "gzip bomb, unary": ("gemini", False,
                         lambda: Reply(200, {**JSON, "content-encoding": "gzip"},
                                       gzip_bomb(b" "), cut_every=64 * 1024),
                         "max_response_bytes=67108864", 128 * MiB),
}


def memory_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} in /proc/{pid}/status")


async def health_latencies(channel: grpc.aio.Channel, stop: asyncio.Event) -> list[float]:
    stub = health_pb2_grpc.HealthStub(channel)
    latencies = []
    while not stop.is_set():
        started = time.monotonic()
        response = await stub.Check(health_pb2.HealthCheckRequest(), timeout=5)
        assert response.status == health_pb2.HealthCheckResponse.SERVING
        latencies.append(time.monotonic() - started)
        await asyncio.sleep(0.02)
    return latencies


async def chat(stub: Any, dialect: Dialect, stream: bool) -> None:
    request = pb.ChatRequest(model=dialect.model, messages=[t.Message(role=t.ROLE_USER, content="hi")])
    if stream:
        async for _ in stub.StreamChat(request, timeout=60):
            pass
    else:
        await stub.Chat(request, timeout=60)


@pytest.mark.parametrize("case", list(CASES))
async def test_oversized_upstream_data_is_refused_fast_in_bounded_memory(case: str, tmp_path: Path) -> None:
    name, stream, reply, limit, growth_allowed = CASES[case]
    dialect = BY_NAME[name]
    async with Upstream() as up:
        up.add("POST", dialect.path(stream), reply())
        config = yaml.safe_dump({"server": {"health_probe_interval": 0}, "providers": [dialect.provider_config(up)]})
        with spawned_gateway(config, tmp_path) as (process, address):
            async with grpc.aio.insecure_channel(address) as channel:
                await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
                before = memory_kib(process.pid, "VmRSS")
                stop = asyncio.Event()
                prober = asyncio.create_task(health_latencies(channel, stop))
                started = time.monotonic()
                with pytest.raises(grpc.aio.AioRpcError) as info:
                    await chat(llm_service_pb2_grpc.LLMServiceStub(channel), dialect, stream)
                elapsed = time.monotonic() - started
                stop.set()
                latencies = await prober
                peak = memory_kib(process.pid, "VmHWM")
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    details = rpc_details(info.value)
    assert details["reason"] == "ERROR_REASON_UPSTREAM_PROTOCOL"
    assert details["metadata"]["limit"] == limit
    assert limit in info.value.details()
    assert elapsed < 20, f"refused after {elapsed:.1f}s"
    assert (peak - before) * 1024 < growth_allowed, f"memory grew by {(peak - before) // 1024} MiB"
    assert latencies and max(latencies) < 1.0, f"health took up to {max(latencies):.2f}s"


async def test_a_smaller_configured_cap_applies_to_unary_bodies(tmp_path: Path) -> None:
    dialect = BY_NAME["openai"]
    async with Upstream() as up:
        body = b'{"pad": "' + b"p" * (2 * MiB) + b'"}'
        up.add("POST", dialect.chat_path, Reply(200, JSON, body, cut_every=64 * 1024))
        config = yaml.safe_dump({"server": {"health_probe_interval": 0},
                                 "providers": [dialect.provider_config(up, max_response_bytes=MiB)]})
        with spawned_gateway(config, tmp_path) as (_, address):
            async with grpc.aio.insecure_channel(address) as channel:
                with pytest.raises(grpc.aio.AioRpcError) as info:
                    await chat(llm_service_pb2_grpc.LLMServiceStub(channel), dialect, False)
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    assert rpc_details(info.value)["metadata"]["limit"] == f"max_response_bytes={MiB}"
