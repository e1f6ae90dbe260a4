"""The failover marker and the attempt-trace trailers as a raw gRPC caller sees them."""

from __future__ import annotations

import json
from typing import Any

import grpc
import pytest
from harness import rpc_details, running_gateway
from portico.v1 import llm_service_pb2 as pb
from portico.v1 import types_pb2 as t

USER = t.Message(role=t.ROLE_USER, content="hi")
DROP = {"content": "abcdefgh", "failover": {"after_chunks": 1, "provider": "backup", "then": {"content": "xyz"}}}


def config(replies: list[dict[str, Any]]) -> dict[str, Any]:
    return {"providers": [{"name": "fake", "kind": "fake", "models": ["fake-chat"],
                           "options": {"replies": replies, "chunk_size": 4}}]}


async def test_the_marker_travels_alone_in_its_chunk() -> None:
    async with running_gateway(config([DROP])) as gw:
        request = pb.ChatRequest(messages=[USER], stream_failover=pb.STREAM_FAILOVER_RESTART)
        chunks = [chunk async for chunk in gw.stub.StreamChat(request)]

    marker = chunks[1]
    assert marker == pb.StreamChunk(failover=pb.Failover(
        mode=pb.STREAM_FAILOVER_RESTART, provider="backup", model="fake-chat",
        reason="ERROR_REASON_UPSTREAM_UNAVAILABLE",
    ))
    assert [c.content for c in chunks] == ["abcd", "", "xyz", ""]
    assert chunks[-1].final and chunks[-1].parts[-1].text == "xyz"


async def test_an_unknown_stream_failover_is_an_invalid_argument() -> None:
    async with running_gateway(config([])) as gw:
        request = pb.ChatRequest(messages=[USER], stream_failover=9)  # type: ignore[arg-type]
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await gw.stub.Chat(request)

    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert ("stream_failover", "is not a known StreamFailover") in rpc_details(info.value)["violations"]


async def test_scripted_attempts_come_back_in_the_trailers() -> None:
    attempts = [{"provider": "fake", "model": "fake-chat", "outcome": "ok", "status": "OK", "reason": "",
                 "duration_ms": 2.5, "wait_ms": 0.0}]
    async with running_gateway(config([{"content": "x", "attempts": attempts, "overhead_ms": 0.25}])) as gw:
        call = gw.stub.Chat(pb.ChatRequest(messages=[USER]))
        await call
        trailers = dict(await call.trailing_metadata())

    assert json.loads(trailers["portico-attempts"]) == attempts
    assert float(trailers["portico-overhead-ms"]) == 0.25
    assert trailers["x-request-id"]


def test_a_long_trace_is_capped_keeping_the_first_attempts() -> None:
    from portico_server.resilience.trace import MAX_TRACE_BYTES, OMITTED_KEY, Attempt, Trace

    attempts = [{"provider": f"p{i}", "model": "m" * 50, "outcome": "error", "status": "UNAVAILABLE",
                 "reason": "ERROR_REASON_UPSTREAM_UNAVAILABLE", "duration_ms": 1.0, "wait_ms": 0.5}
                for i in range(200)]
    trace = Trace(attempts=[Attempt(**a) for a in attempts], active=True)  # type: ignore[arg-type]
    trailers = dict(trace.metadata())
    encoded = trailers["portico-attempts"]
    kept = json.loads(encoded)

    assert len(encoded) <= MAX_TRACE_BYTES
    assert 0 < len(kept) < 200 and kept == attempts[: len(kept)]
    assert trailers[OMITTED_KEY] == str(200 - len(kept))
