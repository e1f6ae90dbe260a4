"""The `anthropic` provider against a local server that answers as the Messages API does.

Recorded responses live in tests/fixtures/anthropic (see SOURCES.md); each stream is
served as recorded and re-cut at arbitrary byte boundaries. The last part runs the same
cases through a real gateway and checks what a gRPC caller gets.
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import json
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from harness import running_gateway
from portico.v1 import llm_service_pb2 as pb
from portico.v1 import types_pb2 as t
from portico_server import errors
from portico_server.call import CallContext
from portico_server.config import ProviderSettings
from portico_server.domain import (
    ChatRequest,
    ContentPart,
    MediaPart,
    Message,
    ResponseFormat,
    ResponseFormatType,
    Role,
    Source,
    StopReason,
    StreamChunk,
    ToolCall,
    ToolChoice,
    ToolChoiceMode,
    ToolDefinition,
)
from portico_server.providers import registry
from portico_server.providers.anthropic import AnthropicProvider, settings_from_environment
from pydantic import SecretStr
from upstream import FIXTURES, Reply, Upstream, fixture, headers_fixture

KEY = "sk-ant-api03-test-key-0123456789"
MODEL = "claude-sonnet-4-20250514"
EXPECTED: dict[str, Any] = json.loads((FIXTURES / "anthropic" / "expected.json").read_text())
STREAMS = [
    "stream_text.sse",
    "stream_text_minimal.sse",
    "stream_text_then_parallel_tool_use.sse",
    "stream_tool_use_input_json_delta.sse",
    "stream_thinking_then_tool_use.sse",
    "stream_max_tokens_truncated_tool_use.sse",
]
CUTS = [None, 1, 7, 64]
SSE = {"content-type": "text/event-stream; charset=utf-8"}
JSON = {"content-type": "application/json"}


# -- helpers -----------------------------------------------------------------------------


@pytest.fixture
async def up():
    async with Upstream() as server:
        yield server


@pytest.fixture
async def make(up):
    """Creates providers pointed at the local server; closes them after the test."""
    made: list[AnthropicProvider] = []

    def factory(**settings: Any) -> AnthropicProvider:
        tree = {"name": "claude", "kind": "anthropic", "api_key": KEY, "base_url": up.url, **settings}
        provider = AnthropicProvider(ProviderSettings.model_validate(tree))
        made.append(provider)
        return provider

    yield factory
    for provider in made:
        await provider.close()


@pytest.fixture
def claude(make):
    return make()


def user(text: str) -> Message:
    return Message(role=Role.USER, content=text)


def chat(*messages: Message, **fields: Any) -> ChatRequest:
    return ChatRequest(model=fields.pop("model", MODEL), messages=list(messages or [user("hi")]), **fields)


def stream_reply(name: str, cut_every: int | None = None) -> Reply:
    return Reply(200, SSE, fixture(f"anthropic/{name}"), cut_every=cut_every)


def sse(*events: dict[str, Any]) -> bytes:
    return b"".join(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n".encode() for e in events)


def error_reply(name: str) -> Reply:
    status, headers = headers_fixture(f"anthropic/{name}.headers")
    return Reply(status, headers, fixture(f"anthropic/{name}.json"))


async def collect(stream) -> list[StreamChunk]:
    return [chunk async for chunk in stream]


def expected_blocks(name: str) -> list[dict[str, Any]]:
    return EXPECTED[name]["parsed"]["blocks"]


# -- what Portico sends --------------------------------------------------------------------


async def test_sends_key_version_and_lifts_the_system_prompt(up, claude):
    up.add("POST", "/v1/messages", Reply(200, JSON, fixture("anthropic/messages_text.json")))
    await claude.chat(chat(
        Message(role=Role.SYSTEM, content="You are a helpful assistant"),
        user("Say hi in Portuguese"),
        Message(role=Role.SYSTEM, content="Answer in one line"),
    ))
    sent = up.last("/v1/messages")
    assert sent.headers["x-api-key"] == KEY
    assert sent.headers["anthropic-version"] == "2023-06-01"
    assert "authorization" not in sent.headers
    body = sent.json()
    assert body["system"] == [{"type": "text", "text": "You are a helpful assistant"},
                              {"type": "text", "text": "Answer in one line"}]
    assert body["messages"] == [{"role": "user", "content": [{"type": "text", "text": "Say hi in Portuguese"}]}]
    assert body["model"] == MODEL
    assert "stream" not in body


async def test_betas_and_extra_headers_are_sent(up, make):
    claude = make(options={"betas": ["a-2025-01-01", "b-2025-02-02"], "version": "2099-01-01"},
                  headers={"x-team": "search"})
    up.add("POST", "/v1/messages", Reply(200, JSON, fixture("anthropic/messages_text.json")))
    await claude.chat(chat())
    sent = up.last("/v1/messages").headers
    assert sent["anthropic-beta"] == "a-2025-01-01,b-2025-02-02"
    assert sent["anthropic-version"] == "2099-01-01"
    assert sent["x-team"] == "search"


@pytest.mark.parametrize(("model", "settings", "fields", "expected"), [
    (MODEL, {}, {}, 16_384),  # 64k output model: capped
    ("claude-3-haiku-20240307", {}, {}, 4_096),  # the model's own limit
    ("claude-3-5-sonnet-latest", {}, {}, 8_192),
    ("claude-next-unknown", {}, {}, 8_192),
    (MODEL, {}, {"max_tokens": 300}, 300),  # the caller's value wins
    (MODEL, {"options": {"default_max_tokens": 1000}}, {}, 1000),
    ("claude-next-unknown", {"capabilities": {"claude-next-unknown": {"max_output_tokens": 2048}}}, {}, 2048),
    # Extended thinking needs room beyond its budget.
    (MODEL, {}, {"passthrough": {"thinking": {"type": "enabled", "budget_tokens": 10_000}}}, 26_384),
    ("claude-3-7-sonnet-20250219", {}, {"passthrough": {"thinking": {"type": "enabled", "budget_tokens": 60_000}}},
     64_000),
])
async def test_max_tokens_defaults_per_model(up, make, model, settings, fields, expected):
    claude = make(**settings)
    up.add("POST", "/v1/messages", Reply(200, JSON, fixture("anthropic/messages_text.json")))
    await claude.chat(chat(model=model, **fields))
    assert up.last("/v1/messages").json()["max_tokens"] == expected


async def test_sampling_options_stop_sequences_and_passthrough(up, claude):
    up.add("POST", "/v1/messages", Reply(200, JSON, fixture("anthropic/messages_text.json")))
    await claude.chat(chat(temperature=0.3, top_p=0.8, stop=["END", "STOP"], seed=7,
                           passthrough={"top_k": 40, "metadata": {"user_id": "u-1"}}))
    body = up.last("/v1/messages").json()
    assert (body["temperature"], body["top_p"], body["stop_sequences"]) == (0.3, 0.8, ["END", "STOP"])
    assert body["top_k"] == 40 and body["metadata"] == {"user_id": "u-1"}
    assert "seed" not in body  # Anthropic has no seed


async def test_temperature_above_one_is_refused_unsent(up, claude):
    with pytest.raises(errors.InvalidRequest) as info:
        await claude.chat(chat(temperature=1.5))
    assert info.value.violations[0][0] == "temperature"
    assert up.received == []


async def test_tool_calls_and_results_map_both_ways(up, claude):
    up.add("POST", "/v1/messages", Reply(200, JSON, fixture("anthropic/messages_text.json")))
    schema_text = '{"type": "object", "properties": {"b": {"type": "integer"}, "a": {"type": "number"}}}'
    tool = ToolDefinition(name="add", description="Add two numbers", parameters=json.loads(schema_text),
                          parameters_json=schema_text)
    await claude.chat(chat(
        user("Add and multiply 2 and 3"),
        Message(role=Role.ASSISTANT, content="I'll do both.", tool_calls=[
            ToolCall(id="toolu_1", name="add", arguments='{"a": 2, "b": 3}'),
            ToolCall(id="toolu_2", name="multiply", arguments='{"a": 2, "b": 3}'),
        ]),
        Message(role=Role.TOOL, tool_call_id="toolu_1", content="5"),
        Message(role=Role.TOOL, tool_call_id="toolu_2", content="6"),
        user("Now explain."),
        tools=[tool, ToolDefinition(name="noargs")],
    ))
    sent = up.last("/v1/messages")
    body = sent.json()
    assert body["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "Add and multiply 2 and 3"}]},
        {"role": "assistant", "content": [
            {"type": "text", "text": "I'll do both."},
            {"type": "tool_use", "id": "toolu_1", "name": "add", "input": {"a": 2, "b": 3}},
            {"type": "tool_use", "id": "toolu_2", "name": "multiply", "input": {"a": 2, "b": 3}},
        ]},
        # Consecutive tool results and the user's next words form one user turn.
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "toolu_1", "content": "5"},
            {"type": "tool_result", "tool_use_id": "toolu_2", "content": "6"},
            {"type": "text", "text": "Now explain."},
        ]},
    ]
    assert body["tools"] == [
        {"name": "add", "description": "Add two numbers", "input_schema": json.loads(schema_text)},
        {"name": "noargs", "input_schema": {"type": "object", "properties": {}}},
    ]
    # Key order and integers of the schema survive the trip.
    assert b'"properties":{"b":{"type":"integer"},"a":{"type":"number"}}' in sent.body
    assert "tool_choice" not in body


@pytest.mark.parametrize(("choice", "expected"), [
    (ToolChoice(ToolChoiceMode.AUTO), {"type": "auto"}),
    (ToolChoice(ToolChoiceMode.REQUIRED), {"type": "any"}),
    (ToolChoice(ToolChoiceMode.NONE), {"type": "none"}),
    (ToolChoice(ToolChoiceMode.TOOL, "weather"), {"type": "tool", "name": "weather"}),
    (ToolChoice(ToolChoiceMode.UNSPECIFIED), None),
])
async def test_tool_choice_modes(up, claude, choice, expected):
    up.add("POST", "/v1/messages", Reply(200, JSON, fixture("anthropic/messages_tool_use.json")))
    await claude.chat(chat(tools=[ToolDefinition(name="weather")], tool_choice=choice))
    assert up.last("/v1/messages").json().get("tool_choice") == expected


async def test_images_by_bytes_data_url_and_url(up, claude):
    png = b"\x89PNG\r\n\x1a\n" + b"\x00" * 16
    up.add("POST", "/v1/messages", Reply(200, JSON, fixture("anthropic/messages_text.json")))
    await claude.chat(chat(Message(role=Role.USER, parts=[
        ContentPart(text="What is in these?"),
        ContentPart(media=MediaPart(data=b"\xff\xd8\xff\xe0jpeg", mime_type="image/jpeg")),
        ContentPart(media=MediaPart(data=png)),  # type recognised from the bytes
        ContentPart(media=MediaPart(uri="data:image/webp;base64,UklGRg==")),
        ContentPart(media=MediaPart(uri="https://example.com/cat.gif")),
    ])))
    content = up.last("/v1/messages").json()["messages"][0]["content"]
    assert content == [
        {"type": "text", "text": "What is in these?"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg",
                                     "data": base64.b64encode(b"\xff\xd8\xff\xe0jpeg").decode()}},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                     "data": base64.b64encode(png).decode()}},
        {"type": "image", "source": {"type": "base64", "media_type": "image/webp", "data": "UklGRg=="}},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.gif"}},
    ]


@pytest.mark.parametrize(("message", "field"), [
    (Message(role=Role.USER, parts=[ContentPart(media=MediaPart(data=b"not an image"))]),
     "messages[0].parts[0].media.mime_type"),
    (Message(role=Role.USER, parts=[ContentPart(media=MediaPart(uri="data:image/png,rawbytes"))]),
     "messages[0].parts[0].media.uri"),
    (Message(role=Role.USER, content=""), "messages[0].content"),
    (Message(role=Role.ASSISTANT, tool_calls=[ToolCall(id="t1", name="f", arguments="[1]")]),
     "messages[0].tool_calls[0].arguments"),
])
async def test_what_anthropic_cannot_take_is_refused_unsent(up, claude, message, field):
    with pytest.raises(errors.InvalidRequest) as info:
        await claude.chat(chat(message, user("next")))
    assert info.value.violations[0][0] == field
    assert up.received == []


async def test_request_over_the_size_limit_is_refused_unsent(up, make):
    assert make().settings.max_request_bytes == 32 * 1024 * 1024  # the Messages API's limit
    small = make(max_request_bytes=2000)
    with pytest.raises(errors.RequestTooLarge) as info:
        await small.chat(chat(user("x" * 5000)))
    assert info.value.metadata["limit"] == "max_request_bytes=2000"
    with pytest.raises(errors.RequestTooLarge):
        await collect(small.stream(chat(user("x" * 5000))))
    assert up.received == []


# -- complete answers ---------------------------------------------------------------------


@pytest.mark.parametrize("name", [
    "messages_text.json", "messages_tool_use.json", "messages_parallel_tool_use.json",
    "messages_thinking_tool_use.json",
])
async def test_recorded_answers(up, claude, name):
    up.add("POST", "/v1/messages", Reply(200, {**JSON, "request-id": "req_abc"}, fixture(f"anthropic/{name}")))
    answer = await claude.chat(chat())
    parsed = EXPECTED[name]["parsed"]
    blocks = parsed["blocks"]
    assert answer.content == "".join(b["text"] for b in blocks if b["type"] == "text")
    assert answer.reasoning_content == "".join(b["thinking"] for b in blocks if b["type"] == "thinking")
    tool_blocks = [b for b in blocks if b["type"] == "tool_use"]
    assert [(c.id, c.name, json.loads(c.arguments)) for c in answer.tool_calls] == [
        (b["id"], b["name"], b["input"]) for b in tool_blocks
    ]
    assert answer.raw_stop_reason == parsed["stop_reason"]
    assert answer.stop_reason is (StopReason.TOOL_CALLS if tool_blocks else StopReason.END_TURN)
    usage = parsed["usage"]
    assert (answer.usage.prompt_tokens, answer.usage.completion_tokens) == (
        usage["input_tokens"], usage["output_tokens"])
    assert answer.usage.total_tokens == usage["input_tokens"] + usage["output_tokens"]
    assert (answer.model, answer.provider) == (parsed["model"], "claude")
    assert answer.metadata == {"response_id": parsed["id"], "request_id": "req_abc"}


async def test_cache_usage_counts_in_the_prompt(up, claude):
    body = {
        "id": "msg_1", "type": "message", "role": "assistant", "model": MODEL,
        "content": [{"type": "text", "text": "ok"}], "stop_reason": "stop_sequence", "stop_sequence": "END",
        "usage": {"input_tokens": 12, "cache_creation_input_tokens": 1000, "cache_read_input_tokens": 3000,
                  "output_tokens": 7},
    }
    up.add("POST", "/v1/messages", Reply(200, JSON, json.dumps(body).encode()))
    answer = await claude.chat(chat())
    u = answer.usage
    assert (u.prompt_tokens, u.completion_tokens, u.total_tokens) == (4012, 7, 4019)
    assert (u.cache_creation_tokens, u.cache_read_tokens) == (1000, 3000)
    assert answer.stop_reason is StopReason.STOP_SEQUENCE
    assert answer.metadata["stop_sequence"] == "END"


@pytest.mark.parametrize(("raw", "expected"), [
    ("end_turn", StopReason.END_TURN), ("max_tokens", StopReason.MAX_TOKENS),
    ("stop_sequence", StopReason.STOP_SEQUENCE), ("tool_use", StopReason.TOOL_CALLS),
    ("refusal", StopReason.REFUSAL), ("pause_turn", StopReason.OTHER),
    ("model_context_window_exceeded", StopReason.MAX_TOKENS), ("something_new", StopReason.OTHER),
])
async def test_stop_reasons(up, claude, raw, expected):
    body = {"id": "msg_1", "model": MODEL, "content": [], "stop_reason": raw, "usage": {}}
    up.add("POST", "/v1/messages", Reply(200, JSON, json.dumps(body).encode()))
    answer = await claude.chat(chat())
    assert (answer.stop_reason, answer.raw_stop_reason) == (expected, raw)


async def test_a_body_that_is_not_a_message_is_a_protocol_error(up, claude):
    up.add("POST", "/v1/messages", Reply(200, JSON, b'{"type":"message", "content": ['))
    with pytest.raises(errors.UpstreamProtocol):
        await claude.chat(chat())


# -- structured output --------------------------------------------------------------------

PERSON_SCHEMA = {"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
                 "required": ["name", "age"]}


def answer_message(name: str, value: dict[str, Any]) -> bytes:
    return json.dumps({
        "id": "msg_1", "model": MODEL, "role": "assistant", "type": "message",
        "content": [{"type": "tool_use", "id": "toolu_x", "name": name, "input": value}],
        "stop_reason": "tool_use", "usage": {"input_tokens": 20, "output_tokens": 9},
    }).encode()


async def test_json_schema_output_goes_through_a_forced_tool(up, claude):
    up.add("POST", "/v1/messages", Reply(200, JSON, answer_message("person", {"name": "Ada", "age": 36})))
    fmt = ResponseFormat(ResponseFormatType.JSON_SCHEMA, name="person", schema=PERSON_SCHEMA)
    answer = await claude.chat(chat(response_format=fmt))
    body = up.last("/v1/messages").json()
    assert body["tools"][-1]["name"] == "person"
    assert body["tools"][-1]["input_schema"] == PERSON_SCHEMA
    assert body["tool_choice"] == {"type": "tool", "name": "person"}
    assert json.loads(answer.content) == {"name": "Ada", "age": 36}
    assert answer.tool_calls == []
    assert answer.stop_reason is StopReason.END_TURN and answer.raw_stop_reason == "tool_use"


async def test_json_output_with_caller_tools_lets_the_model_pick_either(up, claude):
    up.add("POST", "/v1/messages", Reply(200, JSON, fixture("anthropic/messages_tool_use.json")))
    fmt = ResponseFormat(ResponseFormatType.JSON_OBJECT, name="response")
    answer = await claude.chat(chat(response_format=fmt, tools=[ToolDefinition(name="weather")]))
    body = up.last("/v1/messages").json()
    assert [tool["name"] for tool in body["tools"]] == ["weather", "response"]
    assert body["tools"][1]["input_schema"] == {"type": "object"}
    assert body["tool_choice"] == {"type": "any"}
    assert [c.name for c in answer.tool_calls] == ["weather"]
    assert answer.stop_reason is StopReason.TOOL_CALLS


async def test_json_output_that_is_not_an_object_is_refused(up, claude):
    fmt = ResponseFormat(ResponseFormatType.JSON_SCHEMA, name="list", schema={"type": "array"})
    with pytest.raises(errors.InvalidRequest) as info:
        await claude.chat(chat(response_format=fmt))
    assert info.value.violations[0][0] == "response_format.json_schema"


@pytest.mark.parametrize("cut", CUTS)
async def test_streamed_json_output_arrives_as_content(up, claude, cut):
    events = sse(
        {"type": "message_start", "message": {"id": "msg_1", "model": MODEL, "content": [],
                                              "usage": {"input_tokens": 30, "output_tokens": 1}}},
        {"type": "content_block_start", "index": 0,
         "content_block": {"type": "tool_use", "id": "toolu_x", "name": "person", "input": {}}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": ""}},
        {"type": "content_block_delta", "index": 0,
         "delta": {"type": "input_json_delta", "partial_json": '{"name": "Zoë'}},
        {"type": "content_block_delta", "index": 0,
         "delta": {"type": "input_json_delta", "partial_json": '", "age": 7}'}},
        {"type": "content_block_stop", "index": 0},
        {"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 15}},
        {"type": "message_stop"},
    )
    up.add("POST", "/v1/messages", Reply(200, SSE, events, cut_every=cut))
    fmt = ResponseFormat(ResponseFormatType.JSON_SCHEMA, name="person", schema=PERSON_SCHEMA)
    chunks = await collect(claude.stream(chat(response_format=fmt)))
    assert json.loads("".join(c.content for c in chunks)) == {"name": "Zoë", "age": 7}
    assert not any(c.tool_call_deltas for c in chunks)
    final = chunks[-1]
    assert final.is_final and final.tool_calls == [] and final.stop_reason is StopReason.END_TURN


# -- streams -------------------------------------------------------------------------------


@pytest.mark.parametrize("cut", CUTS)
@pytest.mark.parametrize("name", STREAMS)
async def test_recorded_streams(up, claude, name, cut):
    up.add("POST", "/v1/messages", stream_reply(name, cut))
    chunks = await collect(claude.stream(chat()))
    assert up.last("/v1/messages").json()["stream"] is True
    parsed = EXPECTED[name]["parsed"]
    blocks = parsed["blocks"]

    assert [c.is_final for c in chunks].count(True) == 1 and chunks[-1].is_final
    final = chunks[-1]
    assert "".join(c.content for c in chunks) == "".join(b["text"] for b in blocks if b["type"] == "text")
    assert "".join(c.reasoning_content for c in chunks) == "".join(
        b["thinking"] for b in blocks if b["type"] == "thinking")

    # Deltas: index = position among this turn's tool calls; id and name come first.
    tool_blocks = [b for b in blocks if b["type"] == "tool_use"]
    deltas = [d for c in chunks for d in c.tool_call_deltas]
    for position, block in enumerate(tool_blocks):
        mine = [d for d in deltas if d.index == position]
        assert (mine[0].id, mine[0].name) == (block["id"], block["name"])
        assert "".join(d.arguments_delta for d in mine) == block["input_json"]
    assert {d.index for d in deltas} == set(range(len(tool_blocks)))

    # The assembled calls: complete ones only, in order, with valid JSON arguments.
    complete = [b for b in tool_blocks if b["stopped"]]
    assert [(c.id, c.name, json.loads(c.arguments)) for c in final.tool_calls] == [
        (b["id"], b["name"], b["input"]) for b in complete
    ]
    assert final.raw_stop_reason == parsed["stop_reason"]
    expected_stop = {"end_turn": StopReason.END_TURN, "tool_use": StopReason.TOOL_CALLS,
                     "max_tokens": StopReason.MAX_TOKENS}[parsed["stop_reason"]]
    assert final.stop_reason is expected_stop

    # Usage: input from message_start, the last output count (never a sum).
    start, last = parsed["usage_message_start"], parsed["usage_message_delta"]
    assert final.usage.prompt_tokens == start["input_tokens"]
    assert final.usage.completion_tokens == last["output_tokens"]
    assert final.usage.total_tokens == start["input_tokens"] + last["output_tokens"]
    assert (final.model, final.provider) == (parsed["model"], "claude")
    assert (chunks[0].model, chunks[0].provider) == (parsed["model"], "claude")


async def test_truncated_tool_call_is_left_out_at_max_tokens(up, claude):
    up.add("POST", "/v1/messages", stream_reply("stream_max_tokens_truncated_tool_use.sse", 7))
    chunks = await collect(claude.stream(chat()))
    final = chunks[-1]
    assert final.stop_reason is StopReason.MAX_TOKENS
    assert final.tool_calls == []
    # The fragments that did arrive were still streamed, under index 0.
    assert any(d.index == 0 and d.name == "make_file" for c in chunks for d in c.tool_call_deltas)


@pytest.mark.parametrize("cut", CUTS)
async def test_cache_usage_in_a_stream_takes_the_last_report(up, claude, cut):
    events = sse(
        {"type": "message_start", "message": {"id": "msg_1", "model": MODEL, "content": [], "usage": {
            "input_tokens": 10, "cache_creation_input_tokens": 1000, "cache_read_input_tokens": 2000,
            "output_tokens": 1}}},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "ping"},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "日本語のテキスト"}},
        {"type": "content_block_stop", "index": 0},
        {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None}, "usage": {
            "input_tokens": 10, "cache_creation_input_tokens": 1000, "cache_read_input_tokens": 2000,
            "output_tokens": 20}},
        {"type": "message_delta", "delta": {}, "usage": {"output_tokens": 50}},
        {"type": "message_stop"},
    )
    up.add("POST", "/v1/messages", Reply(200, SSE, events, cut_every=cut))
    chunks = await collect(claude.stream(chat()))
    assert "".join(c.content for c in chunks) == "日本語のテキスト"
    u = chunks[-1].usage
    assert (u.prompt_tokens, u.completion_tokens, u.total_tokens) == (3010, 50, 3060)
    assert (u.cache_creation_tokens, u.cache_read_tokens) == (1000, 2000)
    assert chunks[-1].stop_reason is StopReason.END_TURN


@pytest.mark.parametrize("cut", CUTS)
async def test_overloaded_error_event_mid_stream(up, claude, cut):
    up.add("POST", "/v1/messages", stream_reply("stream_error_overloaded_midstream.sse", cut))
    received: list[StreamChunk] = []
    with pytest.raises(errors.UpstreamOverloaded) as info:
        async for chunk in claude.stream(chat()):
            received.append(chunk)
    assert "".join(c.content for c in received) == "Olá! (That"
    assert not any(c.is_final for c in received)
    assert info.value.metadata["upstream_code"] == "overloaded_error"
    assert "Overloaded" in info.value.message


@pytest.mark.parametrize(("error_type", "expected"), [
    ("api_error", errors.UpstreamUnavailable),
    ("rate_limit_error", errors.UpstreamRateLimited),
    ("invalid_request_error", errors.UpstreamBadRequest),
    ("timeout_error", errors.UpstreamTimeout),
])
async def test_other_error_events_mid_stream(up, claude, error_type, expected):
    events = sse(
        {"type": "message_start", "message": {"id": "m", "model": MODEL, "content": [], "usage": {}}},
        {"type": "error", "error": {"type": error_type, "message": "it broke"}},
    )
    up.add("POST", "/v1/messages", Reply(200, SSE, events))
    with pytest.raises(expected):
        await collect(claude.stream(chat()))


async def test_stream_cut_before_message_stop_is_an_error_not_a_short_answer(up, claude):
    body = fixture("anthropic/stream_text.sse")
    cut_at = body.index(b"event: message_delta")  # every content event arrives, the end does not
    up.add("POST", "/v1/messages", Reply(200, SSE, body[:cut_at]))
    with pytest.raises(errors.UpstreamProtocol):
        await collect(claude.stream(chat()))


async def test_connection_reset_mid_stream(up, claude):
    up.add("POST", "/v1/messages", Reply(200, SSE, fixture("anthropic/stream_text.sse"), reset_after=900))
    with pytest.raises(errors.UpstreamConnection):
        await collect(claude.stream(chat()))


@pytest.mark.parametrize("body", [
    b'event: content_block_delta\ndata: {"type": "content_block_delta", "index": 0, "delta": {\n\n',
    b"event: message_start\ndata: [1, 2]\n\n",
])
async def test_malformed_events_are_protocol_errors(up, claude, body):
    up.add("POST", "/v1/messages", Reply(200, SSE, body))
    with pytest.raises(errors.UpstreamProtocol):
        await collect(claude.stream(chat()))


async def test_a_stream_answered_with_json_is_a_protocol_error(up, claude):
    up.add("POST", "/v1/messages", Reply(200, JSON, fixture("anthropic/messages_text.json")))
    with pytest.raises(errors.UpstreamProtocol):
        await collect(claude.stream(chat()))


async def test_closing_the_stream_closes_the_upstream_response(up, claude):
    body = fixture("anthropic/stream_text.sse")
    # The server sends the first text delta, then stalls with the response still open.
    first_delta_end = body.index(b"\n\n", body.index(b"text_delta")) + 2
    up.add("POST", "/v1/messages", Reply(200, SSE, body, hang_after=first_delta_end))
    stream = claude.stream(chat())
    first = await asyncio.wait_for(anext(stream), 5)
    assert first.content == "Olá! ("
    await stream.aclose()
    await asyncio.wait_for(up.disconnected.wait(), 5)


async def test_the_connection_is_reused_after_a_complete_stream(up, claude):
    for _ in range(3):
        up.add("POST", "/v1/messages", stream_reply("stream_text_minimal.sse"))
        await collect(claude.stream(chat()))
    assert not up.disconnected.is_set()  # one connection served all three


# -- errors ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "expected"), [
    ("error_400_prompt_too_long", errors.ContextLengthExceeded),
    ("error_401_authentication", errors.UpstreamAuth),
    ("error_429_rate_limit", errors.UpstreamRateLimited),
    ("error_529_overloaded", errors.UpstreamOverloaded),
])
@pytest.mark.parametrize("streaming", [False, True])
async def test_recorded_error_bodies(up, claude, name, expected, streaming):
    up.add("POST", "/v1/messages", error_reply(name))
    with pytest.raises(expected) as info:
        if streaming:
            await collect(claude.stream(chat()))
        else:
            await claude.chat(chat())
    err = info.value
    body = json.loads(fixture(f"anthropic/{name}.json"))
    assert err.metadata["upstream_code"] == body["error"]["type"]
    assert err.metadata["request_id"] == body["request_id"]
    assert body["error"]["message"][:100] in err.message
    assert err.provider == "claude"


async def test_rate_limit_carries_retry_after_and_the_exhausted_limit(up, claude):
    up.add("POST", "/v1/messages", error_reply("error_429_rate_limit"))
    with pytest.raises(errors.UpstreamRateLimited) as info:
        await claude.chat(chat())
    assert info.value.retry_after == 11
    assert info.value.metadata["rate_limits_exhausted"] == "input-tokens"


async def test_rate_limit_without_retry_after_waits_for_the_reset(up, claude):
    reset = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=30)
    headers = {**JSON, "anthropic-ratelimit-requests-remaining": "0",
               "anthropic-ratelimit-requests-reset": reset.isoformat().replace("+00:00", "Z"),
               "anthropic-ratelimit-tokens-remaining": "5000"}
    body = {"type": "error", "error": {"type": "rate_limit_error", "message": "Number of requests has exceeded"}}
    up.add("POST", "/v1/messages", Reply(429, headers, json.dumps(body).encode()))
    with pytest.raises(errors.UpstreamRateLimited) as info:
        await claude.chat(chat())
    assert 20 < info.value.retry_after <= 30
    assert info.value.metadata["rate_limits_exhausted"] == "requests"


def error_body(kind: str, message: str) -> bytes:
    return json.dumps({"type": "error", "error": {"type": kind, "message": message},
                       "request_id": "req_1"}).encode()


@pytest.mark.parametrize(("status", "body", "expected"), [
    (400, error_body("invalid_request_error", "messages.0.content: Field required"), errors.UpstreamBadRequest),
    (400, error_body("invalid_request_error", "input length and `max_tokens` exceed context limit: "
                                              "197000 + 21333 > 200000, decrease input length or `max_tokens`"),
     errors.ContextLengthExceeded),
    (402, error_body("billing_error", "Your credit balance is too low"), errors.UpstreamQuotaExceeded),
    (403, error_body("permission_error", "Your API key does not have permission"), errors.UpstreamAuth),
    (404, error_body("not_found_error", "model: claude-9"), errors.UpstreamModelNotFound),
    (413, error_body("request_too_large", "Request exceeds the maximum allowed number of bytes."),
     errors.UpstreamBadRequest),
    (500, error_body("api_error", "Internal server error"), errors.UpstreamUnavailable),
    (502, b"<html><body>502 Bad Gateway</body></html>", errors.UpstreamUnavailable),
    (503, b"", errors.UpstreamUnavailable),
    (504, error_body("timeout_error", "Request timed out"), errors.UpstreamTimeout),
])
async def test_documented_error_types(up, claude, status, body, expected):
    up.add("POST", "/v1/messages", Reply(status, JSON, body))
    with pytest.raises(expected) as info:
        await claude.chat(chat())
    assert type(info.value) is expected
    assert info.value.metadata["upstream_status"] == str(status)
    assert "<html>" not in info.value.message


async def test_the_key_is_never_echoed(up, claude):
    echo = error_body("authentication_error", f"invalid x-api-key: {KEY}")
    up.add("POST", "/v1/messages", Reply(401, JSON, echo))
    with pytest.raises(errors.UpstreamAuth) as info:
        await claude.chat(chat())
    assert KEY not in info.value.message and KEY not in str(info.value.metadata)
    assert "[redacted]" in info.value.message


async def test_the_callers_deadline_bounds_the_upstream_call(up, claude):
    # Headers arrive, the body never does.
    up.always("POST", "/v1/messages", Reply(200, JSON, b'{"id": "msg_1"}', hang_after=0))
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(errors.UpstreamTimeout):
        await claude.chat(chat(), CallContext.with_timeout(0.3))
    up.always("POST", "/v1/messages", Reply(200, SSE, fixture("anthropic/stream_text.sse"), hang_after=300))
    with pytest.raises(errors.UpstreamTimeout):
        await collect(claude.stream(chat(), CallContext.with_timeout(0.3)))
    assert loop.time() - started < 5


async def test_unreachable_upstream_is_a_connection_error(make):
    closed = make(base_url="http://127.0.0.1:9")  # the discard port: nothing listens
    with pytest.raises(errors.UpstreamConnection):
        await closed.chat(chat())


# -- token counting, capabilities, health ----------------------------------------------------


async def test_count_tokens_asks_the_endpoint(up, claude):
    up.add("POST", "/v1/messages/count_tokens", Reply(200, JSON, b'{"input_tokens": 1234}'))
    count = await claude.count_tokens(chat(
        Message(role=Role.SYSTEM, content="Be brief"), user("Hello"),
        tools=[ToolDefinition(name="weather", parameters={"type": "object", "properties": {}})],
        max_tokens=50,
    ))
    assert (count.tokens, count.source, count.model) == (1234, Source.PROVIDER, MODEL)
    body = up.last("/v1/messages/count_tokens").json()
    assert set(body) == {"model", "messages", "system", "tools"}
    assert body["system"] == [{"type": "text", "text": "Be brief"}]


async def test_count_tokens_can_be_an_estimate(up, make):
    claude = make(options={"token_counting": "estimate"})
    count = await claude.count_tokens(chat(user("Hello there, how are you?")))
    assert count.source is Source.ESTIMATE and count.tokens > 0
    assert up.received == []


@pytest.mark.parametrize(("model", "context", "output", "vision"), [
    ("claude-sonnet-4-5-20250929", 200_000, 64_000, True),
    ("claude-opus-4-1", 200_000, 32_000, True),
    ("claude-sonnet-4-0", 200_000, 64_000, True),
    ("claude-3-5-sonnet-latest", 200_000, 8_192, True),
    ("claude-3-5-haiku-20241022", 200_000, 8_192, False),
    ("claude-3-haiku-20240307", 200_000, 4_096, True),
])
def test_known_models(claude, model, context, output, vision):
    caps = claude.known_capabilities(model)
    assert caps is not None and caps.source is Source.BUILT_IN
    assert (caps.context_window, caps.max_output_tokens, caps.supports_vision) == (context, output, vision)
    assert caps.supports_tools and caps.supports_streaming and not caps.supports_embeddings


def test_unknown_models_are_not_guessed(claude):
    assert claude.known_capabilities("claude-opus-9") is None
    assert claude.known_capabilities("gpt-4o") is None


async def test_discovery_uses_the_limits_the_models_endpoint_reports(up, claude):
    info = {"type": "model", "id": "claude-sonnet-4-5-20250929", "display_name": "Claude Sonnet 4.5",
            "created_at": "2025-09-29T00:00:00Z", "max_input_tokens": 1_000_000, "max_tokens": 64_000}
    up.add("GET", "/v1/models/claude-sonnet-4-5", Reply(200, JSON, json.dumps(info).encode()))
    caps = await claude.discover_capabilities("claude-sonnet-4-5")
    assert caps is not None and caps.source is Source.PROVIDER
    assert (caps.context_window, caps.max_output_tokens) == (1_000_000, 64_000)
    assert up.last("/v1/models/claude-sonnet-4-5").headers["x-api-key"] == KEY


async def test_discovery_without_limits_leaves_it_to_the_table(up, claude):
    info = {"type": "model", "id": "claude-3-haiku-20240307", "display_name": "Claude Haiku 3",
            "created_at": "2024-03-07T00:00:00Z"}
    up.add("GET", "/v1/models/claude-3-haiku-20240307", Reply(200, JSON, json.dumps(info).encode()))
    assert await claude.discover_capabilities("claude-3-haiku-20240307") is None


async def test_discovery_can_be_switched_off(up, make):
    assert await make(options={"discovery": False}).discover_capabilities(MODEL) is None
    assert up.received == []


async def test_health_probe_lists_one_model(up, claude):
    up.add("GET", "/v1/models", Reply(200, JSON, b'{"data": [], "has_more": false}'))
    assert await claude.health_check() is True
    assert up.last("/v1/models").query == {"limit": "1"}
    up.add("GET", "/v1/models", error_reply("error_401_authentication"))
    assert await claude.health_check() is False


# -- configuration --------------------------------------------------------------------------


def test_environment_hook():
    assert settings_from_environment({}) == []
    [settings] = settings_from_environment({"ANTHROPIC_API_KEY": KEY})
    assert (settings.name, settings.kind) == ("anthropic", "anthropic")
    assert isinstance(settings.api_key, SecretStr) and settings.api_key.get_secret_value() == KEY
    assert KEY not in repr(settings)
    assert settings.default_model in settings.models and settings.base_url is None
    [proxied] = settings_from_environment({"ANTHROPIC_API_KEY": KEY, "ANTHROPIC_BASE_URL": "http://proxy:8080"})
    assert proxied.base_url == "http://proxy:8080"
    names = [p.name for p in registry.default_providers({"ANTHROPIC_API_KEY": KEY})]
    assert "anthropic" in names


def test_unknown_options_are_a_configuration_error():
    from portico_server.config import ConfigError

    settings = ProviderSettings(name="c", kind="anthropic", options={"verison": "x"})
    with pytest.raises(ConfigError, match="verison"):
        registry.create(settings, "providers[0]")


# -- through a real gateway -------------------------------------------------------------------


def gateway_config(up: Upstream) -> dict[str, Any]:
    # One scripted exchange per call: the gateway's retries are off (tests/resilience).
    return {"providers": [{"name": "claude", "kind": "anthropic", "api_key": KEY, "base_url": up.url,
                           "models": [MODEL], "default_model": MODEL, "retry": {"enabled": False}}]}


@pytest.fixture
async def gw(up):
    async with running_gateway(gateway_config(up)) as gateway:
        yield gateway


def details(err: grpc.aio.AioRpcError) -> tuple[error_details_pb2.ErrorInfo, float | None]:
    status = rpc_status.from_call(err)
    assert status is not None
    info, delay = None, None
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
        elif detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            retry = error_details_pb2.RetryInfo()
            detail.Unpack(retry)
            delay = retry.retry_delay.ToTimedelta().total_seconds()
    assert info is not None
    return info, delay


def grpc_user(text: str) -> t.Message:
    return t.Message(role=t.ROLE_USER, content=text)


async def test_grpc_chat(up, gw):
    up.add("POST", "/v1/messages", Reply(200, {**JSON, "request-id": "req_9"},
                                         fixture("anthropic/messages_parallel_tool_use.json")))
    reply = await gw.stub.Chat(pb.ChatRequest(
        provider="claude",
        messages=[t.Message(role=t.ROLE_SYSTEM, content="Use both tools"), grpc_user("2 and 3")],
        tools=[t.ToolDefinition(name="add", parameters_json_schema='{"type":"object"}'),
               t.ToolDefinition(name="multiply")],
    ))
    assert reply.content == "I'll add and multiply the numbers 2 and 3 for you."
    assert [(c.id, c.name, json.loads(c.arguments)) for c in reply.tool_calls] == [
        ("toolu_01StBeRxDEwsqcc3arbDgpS9", "add", {"a": 2, "b": 3}),
        ("toolu_01AC6WQhj2iRkdYHgTAGMpVQ", "multiply", {"a": 2, "b": 3}),
    ]
    assert reply.stop_reason == t.STOP_REASON_TOOL_CALLS and reply.raw_stop_reason == "tool_use"
    assert (reply.usage.prompt_token_count, reply.usage.completion_token_count) == (507, 137)
    assert (reply.model, reply.provider) == (MODEL, "claude")
    assert reply.metadata["request_id"] == "req_9"
    sent = up.last("/v1/messages").json()
    assert sent["system"] == [{"type": "text", "text": "Use both tools"}]
    assert sent["model"] == MODEL  # the provider's default model


@pytest.mark.parametrize("cut", [None, 7])
async def test_grpc_stream_with_thinking_and_tool_use(up, gw, cut):
    up.add("POST", "/v1/messages", stream_reply("stream_thinking_then_tool_use.sse", cut))
    chunks = [c async for c in gw.stub.StreamChat(pb.ChatRequest(
        provider="claude", messages=[grpc_user("weather in Florence?")],
        tools=[t.ToolDefinition(name="weather")], passthrough_json='{"thinking": {"type": "enabled", '
                                                                   '"budget_tokens": 4000}}',
    ))]
    blocks = expected_blocks("stream_thinking_then_tool_use.sse")
    assert "".join(c.reasoning_content for c in chunks) == blocks[0]["thinking"]
    assert "".join(c.content for c in chunks) == ""
    deltas = [d for c in chunks for d in c.tool_call_deltas]
    assert (deltas[0].index, deltas[0].id, deltas[0].name) == (0, blocks[1]["id"], "weather")
    assert "".join(d.arguments_delta for d in deltas) == blocks[1]["input_json"]
    final = chunks[-1]
    assert final.final and sum(c.final for c in chunks) == 1
    assert [(c.id, c.name, json.loads(c.arguments)) for c in final.tool_calls] == [
        (blocks[1]["id"], "weather", {"location": "Florence, Italy"})]
    assert final.stop_reason == t.STOP_REASON_TOOL_CALLS
    assert (final.usage.prompt_token_count, final.usage.completion_token_count) == (424, 119)
    assert (final.model, final.provider) == (MODEL, "claude")
    sent = up.last("/v1/messages").json()
    assert sent["thinking"] == {"type": "enabled", "budget_tokens": 4000}
    assert sent["max_tokens"] == 4000 + 16_384


async def test_grpc_stream_ends_unavailable_on_an_overloaded_event(up, gw):
    up.add("POST", "/v1/messages", stream_reply("stream_error_overloaded_midstream.sse", 5))
    received: list[pb.StreamChunk] = []
    call = gw.stub.StreamChat(pb.ChatRequest(provider="claude", messages=[grpc_user("hi")]))
    with pytest.raises(grpc.aio.AioRpcError) as info:
        async for chunk in call:
            received.append(chunk)
    assert "".join(c.content for c in received) == "Olá! (That"
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    error_info, _ = details(info.value)
    assert error_info.reason == "ERROR_REASON_UPSTREAM_OVERLOADED" and error_info.domain == "portico"


@pytest.mark.parametrize(("name", "code", "reason", "delay"), [
    ("error_400_prompt_too_long", grpc.StatusCode.INVALID_ARGUMENT, "ERROR_REASON_CONTEXT_LENGTH_EXCEEDED", None),
    ("error_401_authentication", grpc.StatusCode.FAILED_PRECONDITION, "ERROR_REASON_UPSTREAM_AUTH", None),
    ("error_429_rate_limit", grpc.StatusCode.RESOURCE_EXHAUSTED, "ERROR_REASON_UPSTREAM_RATE_LIMITED", 11.0),
    ("error_529_overloaded", grpc.StatusCode.UNAVAILABLE, "ERROR_REASON_UPSTREAM_OVERLOADED", None),
])
async def test_grpc_error_statuses(up, gw, name, code, reason, delay):
    up.always("POST", "/v1/messages", error_reply(name))
    request = pb.ChatRequest(provider="claude", messages=[grpc_user("hi")])
    for call in (gw.stub.Chat, lambda r: collect_grpc(gw.stub.StreamChat(r))):
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await call(request)
        assert info.value.code() == code
        error_info, retry_delay = details(info.value)
        assert error_info.reason == reason
        assert error_info.metadata["provider"] == "claude"
        assert retry_delay == delay
        assert KEY not in info.value.details() and KEY not in str(dict(error_info.metadata))


async def collect_grpc(call) -> list[pb.StreamChunk]:
    return [chunk async for chunk in call]


async def test_grpc_count_tokens_and_capabilities(up, gw):
    up.add("POST", "/v1/messages/count_tokens", Reply(200, JSON, b'{"input_tokens": 17}'))
    counted = await gw.stub.CountTokens(pb.CountTokensRequest(provider="claude", messages=[grpc_user("Hello")]))
    assert (counted.token_count, counted.source) == (17, pb.TOKEN_COUNT_SOURCE_PROVIDER)
    # The models endpoint does not know the model: the built-in table answers.
    up.add("GET", f"/v1/models/{MODEL}", Reply(404, JSON, error_body("not_found_error", f"model: {MODEL}")))
    caps = (await gw.stub.GetCapabilities(pb.GetCapabilitiesRequest(provider="claude"))).capabilities
    assert (caps.model, caps.context_window_tokens, caps.max_output_tokens) == (MODEL, 200_000, 64_000)
    assert caps.source == pb.CAPABILITY_SOURCE_BUILT_IN
    assert caps.supports_tools and caps.supports_vision and caps.supports_response_format


async def test_grpc_structured_output(up, gw):
    up.add("POST", "/v1/messages", Reply(200, JSON, answer_message("person", {"name": "Ada", "age": 36})))
    reply = await gw.stub.Chat(pb.ChatRequest(
        provider="claude", messages=[grpc_user("Who wrote the first program?")],
        response_format=t.ResponseFormat(type=t.RESPONSE_FORMAT_TYPE_JSON_SCHEMA, name="person",
                                         json_schema=json.dumps(PERSON_SCHEMA)),
    ))
    assert json.loads(reply.content) == {"name": "Ada", "age": 36}
    assert reply.stop_reason == t.STOP_REASON_END_TURN and not reply.tool_calls


async def test_grpc_cancel_closes_the_upstream_stream(up, gw):
    body = fixture("anthropic/stream_text.sse")
    first_delta_end = body.index(b"\n\n", body.index(b"text_delta")) + 2
    up.add("POST", "/v1/messages", Reply(200, SSE, body, hang_after=first_delta_end))
    call = gw.stub.StreamChat(pb.ChatRequest(provider="claude", messages=[grpc_user("hi")]))
    first = await asyncio.wait_for(call.read(), 5)
    assert first.content == "Olá! ("
    call.cancel()
    await asyncio.wait_for(up.disconnected.wait(), 5)


async def test_grpc_invalid_for_anthropic_names_the_field(up, gw):
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await gw.stub.Chat(pb.ChatRequest(provider="claude", messages=[grpc_user("hi")], temperature=1.5))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    status = rpc_status.from_call(info.value)
    violations = []
    for detail in status.details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            violations = [v.field for v in bad.field_violations]
    assert violations == ["temperature"]
    assert up.received == []
