"""Bad input and failures leave as clear statuses with google.rpc details."""

from __future__ import annotations

import grpc
import pytest
from harness import rpc_details, running_gateway
from portico.v1 import llm_service_pb2 as pb
from portico.v1 import types_pb2 as t
from portico_server.providers import registry
from portico_server.providers.base import Provider

USER = t.Message(role=t.ROLE_USER, content="hi")


def fake_config(**options):
    return {
        "server": {"max_message_bytes": 4096},
        # One scripted failure per call: the gateway's own retries are off here.
        "providers": [{"name": "fake", "kind": "fake", "models": ["fake-chat", "fake-embed"],
                       "default_model": "fake-chat", "options": options, "retry": {"enabled": False}}],
    }


@pytest.fixture
async def gw():
    async with running_gateway(fake_config()) as gateway:
        yield gateway


async def fails(call, request) -> tuple[grpc.StatusCode, str, dict]:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call(request)
    return info.value.code(), info.value.details(), rpc_details(info.value)


@pytest.mark.parametrize(("request_fields", "field"), [
    ({"messages": []}, "messages"),
    ({"messages": [t.Message(role=t.ROLE_UNSPECIFIED, content="x")]}, "messages[0].role"),
    ({"messages": [USER, t.Message(role=t.ROLE_TOOL, content="42")]}, "messages[1].tool_call_id"),
    ({"temperature": 2.5}, "temperature"),
    ({"temperature": -0.1}, "temperature"),
    ({"top_p": 1.5}, "top_p"),
    ({"max_tokens": 0}, "max_tokens"),
    ({"max_tokens": -5}, "max_tokens"),
    ({"tools": [t.ToolDefinition(name="f", parameters_json_schema="[1, 2]")]}, "tools[0].parameters_json_schema"),
    ({"tools": [t.ToolDefinition(name="f", parameters_json_schema="{not json")]}, "tools[0].parameters_json_schema"),
    ({"tools": [t.ToolDefinition(description="no name")]}, "tools[0].name"),
    ({"tool_choice": t.ToolChoice(mode=t.TOOL_CHOICE_MODE_TOOL, tool_name="nope"),
      "tools": [t.ToolDefinition(name="f")]}, "tool_choice.tool_name"),
    ({"response_format": t.ResponseFormat(type=t.RESPONSE_FORMAT_TYPE_JSON_SCHEMA)}, "response_format.json_schema"),
    ({"passthrough_json": '"a string"'}, "passthrough_json"),
    ({"messages": [t.Message(role=t.ROLE_USER, parts=[t.ContentPart(media=t.Media())])]},
     "messages[0].parts[0].media"),
])
async def test_invalid_chat_requests_name_the_field(gw, request_fields, field):
    fields = {"model": "fake-chat", "messages": [USER], **request_fields}
    for call in (gw.stub.Chat, lambda r: _drain(gw.stub.StreamChat(r))):
        code, _, details = await fails(call, pb.ChatRequest(**fields))
        assert code == grpc.StatusCode.INVALID_ARGUMENT
        assert details["reason"] == "ERROR_REASON_INVALID_REQUEST"
        assert details["domain"] == "portico"
        assert field in [f for f, _ in details["violations"]]


async def _drain(call):
    return [c async for c in call]


async def test_all_violations_are_reported_at_once(gw):
    code, message, details = await fails(gw.stub.Chat, pb.ChatRequest(model="fake-chat", temperature=9, max_tokens=0))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert {f for f, _ in details["violations"]} == {"messages", "temperature", "max_tokens"}
    assert "temperature" in message


async def test_unknown_provider_and_model_are_not_found(gw):
    code, message, details = await fails(gw.stub.Chat, pb.ChatRequest(provider="nope", messages=[USER]))
    assert code == grpc.StatusCode.NOT_FOUND
    assert details["reason"] == "ERROR_REASON_UNKNOWN_PROVIDER" and details["metadata"]["field"] == "provider"
    assert "fake" in message  # says what is configured

    code, _, details = await fails(gw.stub.Chat, pb.ChatRequest(model="gpt-9", messages=[USER]))
    assert code == grpc.StatusCode.NOT_FOUND
    assert details["reason"] == "ERROR_REASON_UNKNOWN_MODEL" and details["metadata"]["field"] == "model"

    code, _, details = await fails(gw.stub.Chat, pb.ChatRequest(provider="fake", model="gpt-9", messages=[USER]))
    assert code == grpc.StatusCode.NOT_FOUND and details["metadata"]["model"] == "gpt-9"

    code, _, _ = await fails(gw.stub.Embed, pb.EmbedRequest(provider="nope", inputs=["x"]))
    assert code == grpc.StatusCode.NOT_FOUND


async def test_a_provider_without_a_default_model_needs_one():
    async with running_gateway({"providers": [{"name": "bare", "kind": "fake"}]}) as gw:
        code, _, details = await fails(gw.stub.Chat, pb.ChatRequest(messages=[USER]))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and details["violations"][0][0] == "model"


async def test_oversize_request_is_invalid_argument_naming_the_limit(gw):
    big = t.Message(role=t.ROLE_USER, content="x" * 5000)
    code, message, details = await fails(gw.stub.Chat, pb.ChatRequest(model="fake-chat", messages=[big]))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert details["reason"] == "ERROR_REASON_REQUEST_TOO_LARGE"
    assert details["metadata"]["limit"] == "server.max_message_bytes=4096"
    assert details["violations"][0][0] == "messages"
    assert "4096" in message


async def test_invalid_embed_requests(gw):
    code, _, details = await fails(gw.stub.Embed, pb.EmbedRequest(model="fake-embed"))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and details["violations"][0][0] == "inputs"
    code, _, details = await fails(gw.stub.Embed, pb.EmbedRequest(model="fake-embed", inputs=["a"], dimensions=0))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and details["violations"][0][0] == "dimensions"


@pytest.mark.parametrize(("reason", "code", "retry_delay"), [
    ("UPSTREAM_RATE_LIMITED", grpc.StatusCode.RESOURCE_EXHAUSTED, 2.5),
    ("UPSTREAM_QUOTA_EXCEEDED", grpc.StatusCode.RESOURCE_EXHAUSTED, None),
    ("UPSTREAM_UNAVAILABLE", grpc.StatusCode.UNAVAILABLE, None),
    ("UPSTREAM_OVERLOADED", grpc.StatusCode.UNAVAILABLE, None),
    ("UPSTREAM_AUTH", grpc.StatusCode.FAILED_PRECONDITION, None),
    ("CONTEXT_LENGTH_EXCEEDED", grpc.StatusCode.INVALID_ARGUMENT, None),
    ("UPSTREAM_BAD_REQUEST", grpc.StatusCode.INVALID_ARGUMENT, None),
    ("UPSTREAM_MODEL_NOT_FOUND", grpc.StatusCode.NOT_FOUND, None),
    ("CIRCUIT_OPEN", grpc.StatusCode.UNAVAILABLE, None),
    ("DEADLINE_EXCEEDED", grpc.StatusCode.DEADLINE_EXCEEDED, None),
    ("PERMISSION_DENIED", grpc.StatusCode.PERMISSION_DENIED, None),
    ("UNAUTHENTICATED", grpc.StatusCode.UNAUTHENTICATED, None),
])
async def test_error_table(reason, code, retry_delay):
    error = {"reason": reason, "message": f"scripted {reason}"}
    if retry_delay is not None:
        error["retry_after"] = retry_delay
    async with running_gateway(fake_config(replies=[{"error": error}, {"error": error}])) as gw:
        got, message, details = await fails(gw.stub.Chat, pb.ChatRequest(model="fake-chat", messages=[USER]))
        assert got == code
        assert details["reason"] == "ERROR_REASON_" + reason
        assert details["metadata"]["provider"] == "fake"
        assert message == f"scripted {reason}"
        assert details["retry_delay"] == retry_delay
        got, _, details = await fails(lambda r: _drain(gw.stub.StreamChat(r)),
                                      pb.ChatRequest(model="fake-chat", messages=[USER]))
        assert got == code and details["reason"] == "ERROR_REASON_" + reason


async def test_failure_after_the_first_chunk_ends_the_stream_with_a_status():
    error = {"reason": "UPSTREAM_OVERLOADED", "message": "overloaded mid-stream", "after_chunks": 2}
    async with running_gateway(fake_config(chunk_size=2, replies=[{"content": "abcdefgh", "error": error}])) as gw:
        received = []
        with pytest.raises(grpc.aio.AioRpcError) as info:
            async for chunk in gw.stub.StreamChat(pb.ChatRequest(model="fake-chat", messages=[USER])):
                received.append(chunk.content)
        assert received == ["ab", "cd"]  # what was sent stays sent; no final chunk pretends success
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE
        assert rpc_details(info.value)["reason"] == "ERROR_REASON_UPSTREAM_OVERLOADED"


async def test_a_bug_is_internal_without_leaking_details(gw, caplog):
    async def broken(request, call):
        raise RuntimeError("token sk-live-secret-123 in a traceback")

    gw.provider("fake").chat = broken
    code, message, details = await fails(
        gw.stub.Chat, pb.ChatRequest(model="fake-chat", messages=[USER], request_id="req-77")
    )
    assert code == grpc.StatusCode.INTERNAL
    assert details["reason"] == "ERROR_REASON_INTERNAL"
    assert "sk-live" not in message and "Traceback" not in message
    # The operator still gets the traceback in the log, with the RPC and the request id.
    [record] = [r for r in caplog.records if r.name == "portico.servicer"]
    assert record.getMessage() == "unexpected error in Chat (request req-77): RuntimeError"
    assert record.exc_info is not None


class ChatOnly(Provider):
    """A provider kind with chat only, to see how the gateway answers Embed for it."""

    async def chat(self, request):
        raise AssertionError("not called")

    async def stream(self, request):
        raise AssertionError("not called")
        yield


async def test_embeddings_on_a_chat_only_provider_say_so():
    registry.register("chat-only", ChatOnly)
    try:
        async with running_gateway({"providers": [{"name": "talker", "kind": "chat-only", "models": ["m"]}]}) as gw:
            code, _, details = await fails(gw.stub.Embed, pb.EmbedRequest(provider="talker", model="m", inputs=["x"]))
    finally:
        registry.unregister("chat-only")
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert details["reason"] == "ERROR_REASON_CAPABILITY_UNSUPPORTED"
    assert details["metadata"]["capability"] == "embeddings"
