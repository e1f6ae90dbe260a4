"""Chat and StreamChat through a real gateway on the fake provider."""

from __future__ import annotations

import json

import pytest
from harness import running_gateway
from portico.v1 import llm_service_pb2 as pb
from portico.v1 import types_pb2 as t

CONFIG = {
    "providers": [{
        "name": "fake",
        "kind": "fake",
        "models": ["fake-chat"],
        "default_model": "fake-chat",
        "options": {
            "chunk_size": 3,
            "rules": [
                {"when_contains": "weather", "tool_calls": [
                    {"name": "get_weather", "arguments": '{"city": "Paris", "unit": "celsius"}', "id": "call_w"},
                    {"name": "get_time", "arguments": '{"tz": "Europe/Paris"}'},
                ]},
                {"when_contains": "think", "reasoning": "Let me consider.", "content": "Done."},
                {"when_contains": "long", "content": "x" * 400},
            ],
        },
    }],
    "aliases": {"smart": "fake/fake-chat"},
}


def user(text: str) -> t.Message:
    return t.Message(role=t.ROLE_USER, content=text)


@pytest.fixture
async def gw():
    async with running_gateway(CONFIG) as gateway:
        yield gateway


async def test_chat_echoes_the_last_user_message(gw):
    reply = await gw.stub.Chat(pb.ChatRequest(
        model="fake-chat",
        messages=[t.Message(role=t.ROLE_SYSTEM, content="be brief"), user("Bonjour, ça va ?")],
    ))
    assert reply.content == "Bonjour, ça va ?"
    assert reply.role == t.ROLE_ASSISTANT
    assert reply.stop_reason == t.STOP_REASON_END_TURN
    assert reply.provider == "fake" and reply.model == "fake-chat"
    assert reply.usage.total_token_count == reply.usage.prompt_token_count + reply.usage.completion_token_count
    assert reply.usage.prompt_token_count > 0


async def test_provider_alone_routes_to_its_default_model_and_alias_routes(gw):
    by_provider = await gw.stub.Chat(pb.ChatRequest(provider="fake", messages=[user("hi")]))
    by_alias = await gw.stub.Chat(pb.ChatRequest(model="smart", messages=[user("hi")]))
    by_nothing = await gw.stub.Chat(pb.ChatRequest(messages=[user("hi")]))  # first provider's default
    assert by_provider.model == by_alias.model == by_nothing.model == "fake-chat"


async def test_sampling_options_and_response_format_reach_the_provider(gw):
    schema = '{"type": "object", "properties": {"b": {"type": "integer"}, "a": {"type": "string"}}}'
    await gw.stub.Chat(pb.ChatRequest(
        model="fake-chat",
        messages=[user("hi")],
        temperature=0.2,
        top_p=0.9,
        max_tokens=50,
        seed=7,
        stop_sequences=["END"],
        response_format=t.ResponseFormat(type=t.RESPONSE_FORMAT_TYPE_JSON_SCHEMA, name="thing", json_schema=schema),
        passthrough_json='{"top_k": 40}',
        tags={"team": "search"},
    ))
    seen = gw.provider("fake").last_request
    assert (seen.temperature, seen.top_p, seen.max_tokens, seen.seed, seen.stop) == (0.2, 0.9, 50, 7, ["END"])
    assert seen.response_format.name == "thing"
    assert list(seen.response_format.schema["properties"]) == ["b", "a"]  # key order kept
    assert seen.passthrough == {"top_k": 40} and isinstance(seen.passthrough["top_k"], int)
    call = gw.provider("fake").last_call
    assert call.tags == {"team": "search"}
    assert call.deadline is None  # the caller set no deadline


async def test_tools_reach_the_provider_with_schema_text_intact(gw):
    params = '{"type":"object","properties":{"city":{"type":"string"},"days":{"type":"integer"}},"required":["city"]}'
    await gw.stub.Chat(pb.ChatRequest(
        model="fake-chat",
        messages=[user("hi")],
        tools=[t.ToolDefinition(name="forecast", description="Weather forecast", parameters_json_schema=params)],
        tool_choice=t.ToolChoice(mode=t.TOOL_CHOICE_MODE_TOOL, tool_name="forecast"),
    ))
    seen = gw.provider("fake").last_request
    assert seen.tools[0].parameters_json == params
    assert seen.tools[0].parameters["properties"]["days"] == {"type": "integer"}
    assert seen.tool_choice.tool_name == "forecast"


async def test_chat_returns_tool_calls_in_order(gw):
    reply = await gw.stub.Chat(pb.ChatRequest(model="fake-chat", messages=[user("what is the weather?")]))
    assert reply.stop_reason == t.STOP_REASON_TOOL_CALLS
    assert [c.name for c in reply.tool_calls] == ["get_weather", "get_time"]
    assert reply.tool_calls[0].id == "call_w" and reply.tool_calls[1].id
    assert json.loads(reply.tool_calls[0].arguments) == {"city": "Paris", "unit": "celsius"}
    assert reply.tool_calls[0].arguments == '{"city": "Paris", "unit": "celsius"}'  # exact text


async def test_tool_result_conversation_is_accepted(gw):
    reply = await gw.stub.Chat(pb.ChatRequest(model="fake-chat", messages=[
        user("weather?"),
        t.Message(role=t.ROLE_ASSISTANT, tool_calls=[t.ToolCall(id="c1", name="get_weather", arguments="{}")]),
        t.Message(role=t.ROLE_TOOL, tool_call_id="c1", content='{"temp": 21}'),
        user("thanks"),
    ]))
    assert reply.content == "thanks"
    seen = gw.provider("fake").last_request
    assert seen.messages[1].tool_calls[0].id == "c1" and seen.messages[2].tool_call_id == "c1"


async def test_stream_delivers_content_in_order_then_one_final_chunk(gw):
    text = "The quick brown fox jumps over the lazy dog."
    chunks = [c async for c in gw.stub.StreamChat(pb.ChatRequest(model="fake-chat", messages=[user(text)]))]
    assert "".join(c.content for c in chunks) == text
    assert len(chunks) > 5  # really streamed, not one blob
    assert [c.final for c in chunks] == [False] * (len(chunks) - 1) + [True]
    final = chunks[-1]
    assert final.stop_reason == t.STOP_REASON_END_TURN and final.raw_stop_reason == "end_turn"
    assert final.usage.completion_token_count > 0
    assert chunks[0].provider == final.provider == "fake" and chunks[0].model == "fake-chat"


async def test_stream_tool_calls_arrive_as_deltas_and_assembled_on_the_final_chunk(gw):
    chunks = [c async for c in gw.stub.StreamChat(pb.ChatRequest(model="fake-chat", messages=[user("weather")]))]
    deltas = [d for c in chunks for d in c.tool_call_deltas]
    by_index: dict[int, str] = {}
    for d in deltas:
        by_index[d.index] = by_index.get(d.index, "") + d.arguments_delta
    assert by_index == {0: '{"city": "Paris", "unit": "celsius"}', 1: '{"tz": "Europe/Paris"}'}
    assert len(deltas) > 2  # arguments came in fragments
    assert [d.name for d in deltas if d.name] == ["get_weather", "get_time"]
    final = chunks[-1]
    assert final.final and final.stop_reason == t.STOP_REASON_TOOL_CALLS
    assert [(c.name, c.arguments) for c in final.tool_calls] == [
        ("get_weather", '{"city": "Paris", "unit": "celsius"}'),
        ("get_time", '{"tz": "Europe/Paris"}'),
    ]


async def test_reasoning_is_kept_apart_from_the_answer(gw):
    reply = await gw.stub.Chat(pb.ChatRequest(model="fake-chat", messages=[user("think")]))
    assert (reply.content, reply.reasoning_content) == ("Done.", "Let me consider.")
    chunks = [c async for c in gw.stub.StreamChat(pb.ChatRequest(model="fake-chat", messages=[user("think")]))]
    assert "".join(c.reasoning_content for c in chunks) == "Let me consider."
    assert "".join(c.content for c in chunks) == "Done."


async def test_max_tokens_cuts_the_answer_with_stop_reason(gw):
    reply = await gw.stub.Chat(pb.ChatRequest(model="fake-chat", max_tokens=10, messages=[user("long")]))
    assert reply.stop_reason == t.STOP_REASON_MAX_TOKENS
    assert len(reply.content) == 40


async def test_count_tokens_capabilities_and_providers(gw):
    count = await gw.stub.CountTokens(pb.CountTokensRequest(model="fake-chat", messages=[user("a" * 400)]))
    assert count.source == pb.TOKEN_COUNT_SOURCE_ESTIMATE and 100 <= count.token_count <= 110
    caps = await gw.stub.GetCapabilities(pb.GetCapabilitiesRequest(provider="fake"))
    assert caps.capabilities.model == "fake-chat"
    assert caps.capabilities.context_window_tokens == 32768
    assert caps.capabilities.supports_tools and caps.capabilities.supports_streaming
    assert caps.capabilities.source == pb.CAPABILITY_SOURCE_DISCOVERED
    listed = await gw.stub.ListProviders(pb.ListProvidersRequest())
    assert [(p.name, p.kind, p.health) for p in listed.providers] == [
        ("fake", "fake", pb.PROVIDER_HEALTH_SERVING)
    ]
    assert listed.providers[0].default_model == "fake-chat"


async def test_long_multibyte_deltas_arrive_intact():
    # Deltas of more than 127 bytes (a two-byte length on the wire) in a script beyond ASCII.
    config = {"providers": [{"name": "fake", "kind": "fake", "models": ["fake-chat"], "options": {"chunk_size": 90}}]}
    text = "Ça coûte 10 € — 東京は晴れ。" * 12
    async with running_gateway(config) as gw:
        chunks = [c async for c in gw.stub.StreamChat(pb.ChatRequest(model="fake-chat", messages=[user(text)]))]
    assert len(chunks) > 3 and len(chunks[0].content.encode()) > 127
    assert "".join(c.content for c in chunks) == text
    assert chunks[0].model == "fake-chat" and chunks[-1].final
