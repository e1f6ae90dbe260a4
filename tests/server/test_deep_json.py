"""JSON nested thousands of levels deep is refused as INVALID_ARGUMENT naming the field,
never an INTERNAL from a RecursionError, wherever a caller can put JSON."""

from __future__ import annotations

import grpc
import pytest
from harness import rpc_details, running_gateway
from portico.v1 import llm_service_pb2 as pb
from portico.v1 import types_pb2 as t
from portico_server import bounded_json
from upstream import Reply, Upstream, fixture

USER = t.Message(role=t.ROLE_USER, content="hi")
JSON = {"content-type": "application/json"}
DEPTH = 5000


def deep_object(depth: int = DEPTH) -> str:
    return '{"a":' * depth + "1" + "}" * depth


def deep_array(depth: int = DEPTH) -> str:
    return "[" * depth + "]" * depth


def assistant_calling(arguments: str) -> t.Message:
    return t.Message(role=t.ROLE_ASSISTANT, tool_calls=[t.ToolCall(id="call_1", name="f", arguments=arguments)])


CASES = [
    ({"tools": [t.ToolDefinition(name="f", parameters_json_schema=deep_object())]},
     "tools[0].parameters_json_schema"),
    ({"response_format": t.ResponseFormat(type=t.RESPONSE_FORMAT_TYPE_JSON_SCHEMA, json_schema=deep_object())},
     "response_format.json_schema"),
    ({"passthrough_json": deep_object()}, "passthrough_json"),
    ({"passthrough_json": '{"x": ' + deep_array() + "}"}, "passthrough_json"),
    ({"messages": [USER, assistant_calling(deep_object()),
                   t.Message(role=t.ROLE_TOOL, tool_call_id="call_1", content="1")]},
     "messages[1].tool_calls[0].arguments"),
]


@pytest.mark.parametrize(("fields", "field"), CASES, ids=[c[1] for c in CASES])
async def test_deep_json_from_the_caller_is_invalid_argument(fields, field):
    config = {"providers": [{"name": "fake", "kind": "fake", "models": ["fake-chat"]}]}
    async with running_gateway(config) as gw:
        request = pb.ChatRequest(model="fake-chat", **{"messages": [USER], **fields})
        for call in (gw.stub.Chat, lambda r: _drain(gw.stub.StreamChat(r))):
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await call(request)
            assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            violations = dict(rpc_details(info.value)["violations"])
            assert field in violations
            assert "the limit is 64" in violations[field]


@pytest.mark.parametrize(("kind", "path", "answer"), [
    ("anthropic", "/v1/messages", "anthropic/messages_text.json"),
    ("gemini", "/v1beta/models/m-1:generateContent", "gemini/generate_content_text.json"),
    ("ollama", "/api/chat", "ollama/chat_nonstream.json"),
])
async def test_providers_that_parse_arguments_refuse_deep_ones_before_sending(kind, path, answer):
    async with Upstream() as up:
        up.always("POST", path, Reply(200, JSON, fixture(answer)))
        provider = {"name": "p", "kind": kind, "base_url": up.url, "models": ["m-1"]}
        async with running_gateway({"providers": [provider]}) as gw:
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await gw.stub.Chat(pb.ChatRequest(provider="p", model="m-1", messages=[
                    USER, assistant_calling(deep_array()), t.Message(role=t.ROLE_TOOL, tool_call_id="call_1",
                                                                     name="f", content="1")]))
        assert up.received == []
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "messages[1].tool_calls[0].arguments" in dict(rpc_details(info.value)["violations"])


async def test_a_deep_tool_result_reaches_gemini_as_plain_text():
    # A tool result is free text: Gemini gets JSON results as objects, anything else
    # (including JSON too deep to take apart) as the text it is.
    text = deep_object()
    async with Upstream() as up:
        up.add("POST", "/v1beta/models/m-1:generateContent",
               Reply(200, JSON, fixture("gemini/generate_content_text.json")))
        provider = {"name": "p", "kind": "gemini", "base_url": up.url, "models": ["m-1"]}
        async with running_gateway({"providers": [provider]}) as gw:
            reply = await gw.stub.Chat(pb.ChatRequest(provider="p", model="m-1", messages=[
                USER, assistant_calling('{"city": "Paris"}'),
                t.Message(role=t.ROLE_TOOL, tool_call_id="call_1", content=text)]))
        sent = up.last().json()
    assert reply.content
    assert sent["contents"][2]["parts"][0]["functionResponse"] == {"name": "f", "response": {"output": text}}


def test_depth_ignores_brackets_inside_strings():
    assert bounded_json.nesting_depth('{"a": "[[[[{{{{", "b": [1, {"c": "\\"]]]"}]}') == 3
    assert bounded_json.nesting_depth("") == 0 and bounded_json.nesting_depth('"x"') == 0
    assert bounded_json.loads('{"a": ' * 64 + "1" + "}" * 64)  # exactly at the limit
    with pytest.raises(bounded_json.JsonTooDeep):
        bounded_json.loads("[" * 65 + "]" * 65)


async def _drain(call):
    return [c async for c in call]
