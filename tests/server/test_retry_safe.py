"""Every error status says in ErrorInfo.metadata["retry_safe"] whether re-sending is safe."""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from harness import rpc_details, running_gateway
from portico.v1 import llm_service_pb2 as pb
from portico.v1 import types_pb2 as t
from upstream import Reply, Upstream

USER = t.Message(role=t.ROLE_USER, content="hi")
JSON = {"content-type": "application/json"}


def fake_config(replies: list[dict[str, Any]]) -> dict[str, Any]:
    # The status each failure maps to, as the caller sees it: the gateway's retries are off.
    return {"providers": [{"name": "fake", "kind": "fake", "models": ["fake-chat"], "retry": {"enabled": False},
                           "options": {"replies": replies, "chunk_size": 2}}]}


async def failure(call: Any) -> tuple[grpc.StatusCode, dict[str, Any]]:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call
    return info.value.code(), rpc_details(info.value)


async def drain(call: Any) -> list[Any]:
    return [chunk async for chunk in call]


@pytest.mark.parametrize(("reply", "code", "safe"), [
    ({"error": {"reason": "UPSTREAM_UNAVAILABLE"}}, grpc.StatusCode.UNAVAILABLE, "false"),
    ({"error": {"reason": "UPSTREAM_PROTOCOL"}}, grpc.StatusCode.UNAVAILABLE, "false"),
    ({"error": {"reason": "UPSTREAM_TIMEOUT"}}, grpc.StatusCode.UNAVAILABLE, "false"),
    ({"error": {"reason": "UPSTREAM_CONNECTION"}}, grpc.StatusCode.UNAVAILABLE, "false"),
    ({"error": {"reason": "UPSTREAM_CONNECTION", "retry_safe": True}}, grpc.StatusCode.UNAVAILABLE, "true"),
    ({"error": {"reason": "UPSTREAM_OVERLOADED"}}, grpc.StatusCode.UNAVAILABLE, "true"),
    ({"error": {"reason": "UPSTREAM_POOL_EXHAUSTED"}}, grpc.StatusCode.UNAVAILABLE, "true"),
    ({"error": {"reason": "CIRCUIT_OPEN"}}, grpc.StatusCode.UNAVAILABLE, "true"),
    ({"error": {"reason": "SHUTTING_DOWN"}}, grpc.StatusCode.UNAVAILABLE, "true"),
    ({"error": {"reason": "UPSTREAM_RATE_LIMITED"}}, grpc.StatusCode.RESOURCE_EXHAUSTED, "true"),
    ({"error": {"reason": "UPSTREAM_BAD_REQUEST"}}, grpc.StatusCode.INVALID_ARGUMENT, "true"),
    ({"error": {"reason": "DEADLINE_EXCEEDED"}}, grpc.StatusCode.DEADLINE_EXCEEDED, "false"),
    ({"error": {"reason": "INTERNAL"}}, grpc.StatusCode.INTERNAL, "false"),
])
async def test_each_reason_carries_its_retry_safety(reply: dict[str, Any], code: grpc.StatusCode, safe: str) -> None:
    async with running_gateway(fake_config([reply, reply])) as gw:
        request = pb.ChatRequest(messages=[USER])
        unary = await failure(gw.stub.Chat(request))
        streamed = await failure(drain(gw.stub.StreamChat(request)))

    for got_code, details in (unary, streamed):
        assert got_code == code
        assert details["metadata"]["retry_safe"] == safe


async def test_gateway_refusals_are_retry_safe() -> None:
    async with running_gateway(fake_config([])) as gw:
        invalid = await failure(gw.stub.Chat(pb.ChatRequest(messages=[USER], temperature=9)))
        unknown = await failure(gw.stub.Chat(pb.ChatRequest(provider="nope", messages=[USER])))
    assert invalid[1]["metadata"]["retry_safe"] == "true"
    assert unknown[1]["metadata"]["retry_safe"] == "true"


async def test_any_failure_after_the_first_chunk_is_not_retry_safe() -> None:
    midstream = {"content": "a partial answer", "error": {"reason": "UPSTREAM_OVERLOADED", "after_chunks": 2}}
    async with running_gateway(fake_config([midstream])) as gw:
        chunks: list[Any] = []

        async def read() -> None:
            async for chunk in gw.stub.StreamChat(pb.ChatRequest(messages=[USER])):
                chunks.append(chunk)

        code, details = await failure(read())

    assert [c.content for c in chunks] == ["a ", "pa"]
    assert code == grpc.StatusCode.UNAVAILABLE
    assert details["reason"] == "ERROR_REASON_UPSTREAM_OVERLOADED"
    assert details["metadata"]["retry_safe"] == "false"


@pytest.mark.parametrize(("status", "safe"), [
    (500, "false"), (502, "false"), (504, "false"), (503, "true"), (529, "true"), (408, "true"),
])
async def test_upstream_http_status_decides_retry_safety(status: int, safe: str) -> None:
    body = b'{"error": {"message": "upstream trouble", "type": "server_error"}}'
    config = {"providers": [{"name": "openai", "kind": "openai", "api_key": "sk-test-0123456789",
                             "models": ["gpt-4o"], "retry": {"enabled": False}}]}
    async with Upstream() as up:
        config["providers"][0]["base_url"] = f"{up.url}/v1"
        up.add("POST", "/v1/chat/completions", Reply(status, JSON, body))
        async with running_gateway(config) as gw:
            code, details = await failure(gw.stub.Chat(pb.ChatRequest(messages=[USER])))

    assert code == grpc.StatusCode.UNAVAILABLE
    assert details["metadata"]["upstream_status"] == str(status)
    assert details["metadata"]["retry_safe"] == safe
