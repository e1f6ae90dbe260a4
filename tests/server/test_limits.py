"""Request limits: counts are capped before decoding, and the largest request the gateway
accepts is handled without starving health checks."""

from __future__ import annotations

import asyncio
import time

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from harness import rpc_details, running_gateway, spawned_gateway
from portico.v1 import llm_service_pb2 as pb
from portico.v1 import types_pb2 as t
from portico_server.config import ConfigError, RequestLimits, parse_config
from upstream import Reply, fixture, upstream

LIMITS = RequestLimits()
#: Generous: an idle gateway answers in about a millisecond. With this request's work on
#: the event loop, health waited about 0.8 s here; before the limits, a 7 MB request of a
#: million messages made it wait 22 s.
HEALTH_BOUND = 0.5


def largest_request() -> pb.ChatRequest:
    """As many messages and parts as the default limits allow, filling most of the
    default 16 MiB: 10,000 messages of two 700-byte text parts."""
    text = "word " * 140
    per_message = LIMITS.parts // LIMITS.messages
    message = t.Message(role=t.ROLE_USER, parts=[t.ContentPart(text=text)] * per_message)
    return pb.ChatRequest(
        model="fake-chat",
        messages=[message] * LIMITS.messages,
        stop_sequences=[f"stop{i}" for i in range(LIMITS.stop_sequences)],
        tags={f"tag{i}": "x" for i in range(LIMITS.tags)},
    )


async def health_latencies(address: str, until: asyncio.Future[object]) -> list[float]:
    """Check health back to back until `until` is done; the latency of each answer."""
    latencies: list[float] = []
    async with grpc.aio.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        await stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=10)  # connected
        while not until.done() or len(latencies) < 2:
            began = time.perf_counter()
            reply = await stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=30)
            latencies.append(time.perf_counter() - began)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
    return latencies


async def while_checking_health(address: str, call: object) -> tuple[object, list[float]]:
    """(the call's result, or the exception it raised; health latencies meanwhile)."""
    task = asyncio.ensure_future(call)  # type: ignore[arg-type]
    latencies = await health_latencies(address, task)
    try:
        return await task, latencies
    except grpc.aio.AioRpcError as exc:
        return exc, latencies


OPENAI_YAML = """
server: {{health_probe_interval: 0}}
providers:
  - name: up
    kind: openai_compat
    base_url: {url}
    models: [fake-chat]
"""
FAKE_YAML = """
server: {health_probe_interval: 0}
providers:
  - {name: fake, kind: fake, models: [fake-chat]}
"""


async def test_the_largest_accepted_request_leaves_health_answering(tmp_path):
    request = largest_request()
    assert request.ByteSize() > 13 * 1024 * 1024
    # Encoded once, sent as bytes: encoding it per call would stall this process's own loop.
    raw = request.SerializeToString()
    async with upstream() as up:
        up.always("POST", "/chat/completions", Reply(200, {"content-type": "application/json"},
                                                      fixture("openai/chat_text.json")))
        configs = {"fake": FAKE_YAML, "openai_compat": OPENAI_YAML.format(url=up.url)}
        for kind, config in configs.items():
            with spawned_gateway(config, tmp_path) as (_, address):
                async with grpc.aio.insecure_channel(address, options=[
                    ("grpc.max_send_message_length", 32 * 1024 * 1024),
                ]) as channel:
                    chat = channel.unary_unary("/portico.v1.LLMService/Chat",
                                               response_deserializer=pb.CompletionResponse.FromString)
                    stream = channel.unary_stream("/portico.v1.LLMService/StreamChat",
                                                  response_deserializer=pb.StreamChunk.FromString)
                    reply, latencies = await while_checking_health(address, chat(raw, timeout=60))
                    assert reply.content, kind  # type: ignore[attr-defined]
                    chunks, stream_latencies = await while_checking_health(address, _drain(stream(raw, timeout=60)))
                    assert chunks[-1].final, kind  # type: ignore[index]
            assert max(latencies + stream_latencies) < HEALTH_BOUND, (kind, sorted(latencies)[-3:])
        sent = up.last("/chat/completions").json()
        assert len(sent["messages"]) == LIMITS.messages


async def test_a_request_of_millions_of_empty_messages_is_refused_quickly_while_health_answers(tmp_path):
    # 16 MB of empty messages: legal protobuf, eight million messages. Decoding it alone
    # would hold the event loop for seconds; counting stops at the limit.
    raw = b"\x1a\x00" * (8 * 1024 * 1024 - 16)
    with spawned_gateway(FAKE_YAML, tmp_path) as (_, address):
        async with grpc.aio.insecure_channel(address, options=[
            ("grpc.max_send_message_length", 32 * 1024 * 1024),
        ]) as channel:
            chat = channel.unary_unary("/portico.v1.LLMService/Chat")  # raw bytes in and out
            error, latencies = await while_checking_health(address, chat(raw, timeout=60))
            assert isinstance(error, grpc.aio.AioRpcError)
            assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert max(latencies) < HEALTH_BOUND
            details = rpc_details(error)
            assert details["reason"] == "ERROR_REASON_REQUEST_TOO_LARGE"
            assert details["metadata"]["limit"] == "server.limits.messages=10000"
            assert [f for f, _ in details["violations"]] == ["messages"]


async def _drain(call: object) -> list[pb.StreamChunk]:
    return [c async for c in call]  # type: ignore[attr-defined]


SMALL = {"messages": 3, "parts": 4, "tools": 2, "stop_sequences": 2, "embed_inputs": 2, "tags": 2}
USER = t.Message(role=t.ROLE_USER, content="hi")
PART = t.ContentPart(text="x")


@pytest.mark.parametrize(("method", "request_", "field", "limit"), [
    ("Chat", pb.ChatRequest(messages=[USER] * 4), "messages", "messages=3"),
    ("StreamChat", pb.ChatRequest(messages=[USER] * 4), "messages", "messages=3"),
    ("CountTokens", pb.CountTokensRequest(messages=[USER] * 4), "messages", "messages=3"),
    ("Chat", pb.ChatRequest(messages=[t.Message(role=t.ROLE_USER, parts=[PART] * 3),
                                      t.Message(role=t.ROLE_USER, parts=[PART] * 2)]),
     "messages[1].parts", "parts=4"),
    ("Chat", pb.ChatRequest(messages=[t.Message(role=t.ROLE_USER, parts=[PART] * 3,
                                                tool_calls=[t.ToolCall(id="1", name="f")] * 2)]),
     "messages[0].tool_calls", "parts=4"),
    ("Chat", pb.ChatRequest(messages=[USER], tools=[t.ToolDefinition(name=f"f{i}") for i in range(3)]),
     "tools", "tools=2"),
    ("StreamChat", pb.ChatRequest(messages=[USER], stop_sequences=["a", "b", "c"]), "stop_sequences",
     "stop_sequences=2"),
    ("Chat", pb.ChatRequest(messages=[USER], tags={"a": "1", "b": "2", "c": "3"}), "tags", "tags=2"),
    ("Embed", pb.EmbedRequest(inputs=["a", "b", "c"]), "inputs", "embed_inputs=2"),
    ("Embed", pb.EmbedRequest(inputs=["a"], tags={"a": "1", "b": "2", "c": "3"}), "tags", "tags=2"),
])
async def test_over_limit_requests_are_refused_naming_the_field_and_the_limit(method, request_, field, limit):
    config = {"server": {"limits": SMALL},
              "providers": [{"name": "fake", "kind": "fake", "models": ["fake-chat"], "default_model": "fake-chat",
                             "embedding_model": "fake-embed"}]}
    async with running_gateway(config) as gw:
        request_.provider = "fake"
        call = getattr(gw.stub, method)
        with pytest.raises(grpc.aio.AioRpcError) as info:
            if method == "StreamChat":
                await _drain(call(request_))
            else:
                await call(request_)
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        details = rpc_details(info.value)
        assert details["reason"] == "ERROR_REASON_REQUEST_TOO_LARGE"
        assert details["metadata"]["limit"] == f"server.limits.{limit}"
        assert [f for f, _ in details["violations"]] == [field]
        assert field in info.value.details() and f"server.limits.{limit.split('=')[0]}" in info.value.details()
        # At the limit the same kind of request goes through.
        ok = await gw.stub.Chat(pb.ChatRequest(provider="fake", messages=[USER] * 3, stop_sequences=["a", "b"],
                                               tags={"a": "1", "b": "2"}))
        assert ok.content


async def test_a_singular_field_repeated_without_end_is_refused():
    # Protobuf lets a field appear again and again (the last one wins): a million `role`s.
    body = b"\x08\x01" * 1_000_000
    raw = b"\x1a" + _varint(len(body)) + body
    async with running_gateway({"providers": [{"name": "fake", "kind": "fake", "models": ["fake-chat"]}]}) as gw:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await gw.channel.unary_unary("/portico.v1.LLMService/Chat")(raw)
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert rpc_details(info.value)["violations"][0][0] == "messages[0]"


def test_limits_are_validated_in_configuration():
    assert parse_config({"server": {"limits": {"messages": 50}}}).server.limits.messages == 50
    with pytest.raises(ConfigError, match=r"server\.limits\.messages"):
        parse_config({"server": {"limits": {"messages": 0}}})
    with pytest.raises(ConfigError, match=r"server\.limits\.files"):
        parse_config({"server": {"limits": {"files": 3}}})


def _varint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


async def test_an_unknown_group_in_front_does_not_hide_the_messages_behind_it():
    # Field 99 as an empty group (start and end tags): valid protobuf the walk must step over.
    raw = b"\x9b\x06\x9c\x06" + pb.ChatRequest(messages=[USER] * 4).SerializeToString()
    config = {"server": {"limits": SMALL}, "providers": [{"name": "fake", "kind": "fake", "models": ["fake-chat"]}]}
    async with running_gateway(config) as gw:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await gw.channel.unary_unary("/portico.v1.LLMService/Chat")(raw)
    assert rpc_details(info.value)["metadata"]["limit"] == "server.limits.messages=3"
