"""The `openai_responses` provider against a local server that answers as OpenAI's
Responses API does.

Recorded responses live in tests/fixtures/openai_responses (see SOURCES.md); streams are
served as recorded and re-cut at arbitrary byte boundaries. The tool loop with reasoning
checks, on the upstream's side, that turn two carries turn one's encrypted reasoning item
and function call exactly. The last part runs calls through a real gateway.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import grpc
import pytest
from harness import collect, rpc_details, running_gateway
from portico.v1 import llm_service_pb2 as pb
from portico.v1 import types_pb2 as t
from portico_server import errors
from portico_server.config import ConfigError, ProviderSettings
from portico_server.domain import (
    ChatRequest,
    ContentPart,
    MediaPart,
    Message,
    ReasoningConfig,
    ReasoningEffort,
    ReasoningPart,
    ResponseFormat,
    ResponseFormatType,
    Role,
    Source,
    StopReason,
    ToolCall,
    ToolChoice,
    ToolChoiceMode,
    ToolDefinition,
)
from portico_server.providers import registry
from portico_server.providers.openai_responses import OpenAIResponsesProvider
from upstream import Reply, Upstream, fixture, headers_fixture

KEY = "sk-proj-responses-test-key-0123456789"
MODEL = "gpt-5-mini"
SSE = {"content-type": "text/event-stream; charset=utf-8"}
JSON_TYPE = {"content-type": "application/json"}
CUTS = [None, 1, 7, 64]
WEATHER = ToolDefinition(
    name="weather", description="Get weather information for a location",
    parameters={"properties": {"location": {"description": "the city", "type": "string"}},
                "required": ["location"], "type": "object"})
SYSTEM = Message(Role.SYSTEM, "You are a helpful assistant")
QUESTION = Message(Role.USER, "What's the weather in Florence, Italy?")
HIGH = ReasoningConfig(effort=ReasoningEffort.HIGH)


@pytest.fixture
async def up():
    async with Upstream() as server:
        yield server


@pytest.fixture
async def make(up):
    made: list[OpenAIResponsesProvider] = []

    def factory(**settings: Any) -> OpenAIResponsesProvider:
        tree = {"name": "oai", "kind": "openai_responses", "api_key": KEY, "base_url": up.url, **settings}
        provider = registry.create(ProviderSettings.model_validate(tree))
        assert isinstance(provider, OpenAIResponsesProvider)
        made.append(provider)
        return provider

    yield factory
    for provider in made:
        await provider.close()


@pytest.fixture
def oai(make):
    return make()


def recorded(name: str) -> dict[str, Any]:
    return json.loads(fixture(f"openai_responses/{name}"))


def events(name: str) -> list[dict[str, Any]]:
    text = fixture(f"openai_responses/{name}").decode()
    return [json.loads(line[len("data: "):]) for line in text.splitlines() if line.startswith("data: ")]


def sse(*payloads: dict[str, Any]) -> bytes:
    return b"".join(f"event: {p['type']}\ndata: {json.dumps(p)}\n\n".encode() for p in payloads)


def ask(*messages: Message, reasoning: ReasoningConfig | None = HIGH, **fields: Any) -> ChatRequest:
    return ChatRequest(model=MODEL, messages=list(messages), tools=[WEATHER],
                       tool_choice=ToolChoice(ToolChoiceMode.AUTO), reasoning=reasoning, **fields)


# -- the request ---------------------------------------------------------------------------


async def test_turn_one_sends_instructions_tools_reasoning_and_stateless_storage(up, oai):
    up.add("POST", "/responses", Reply(200, JSON_TYPE, fixture("openai_responses/responses_reasoning_tool_call.json")))
    await oai.chat(ask(SYSTEM, QUESTION, max_tokens=4000, temperature=1.0))
    sent = up.last("/responses")
    assert sent.headers["authorization"] == f"Bearer {KEY}"
    assert sent.json() == {
        "model": MODEL,
        "instructions": "You are a helpful assistant",
        "input": [{"role": "user", "content": "What's the weather in Florence, Italy?"}],
        "store": False,
        "temperature": 1.0,
        "max_output_tokens": 4000,
        "tools": [{"type": "function", "name": "weather", "description": "Get weather information for a location",
                   "parameters": WEATHER.parameters, "strict": False}],
        "tool_choice": "auto",
        "reasoning": {"effort": "high", "summary": "auto"},
        "include": ["reasoning.encrypted_content"],
    }


@pytest.mark.parametrize(("reasoning", "model", "expected"), [
    (ReasoningConfig(effort=ReasoningEffort.LOW), "o3", {"effort": "low", "summary": "auto"}),
    (ReasoningConfig(budget_tokens=1_000), MODEL, {"effort": "low", "summary": "auto"}),
    (ReasoningConfig(budget_tokens=8_000), MODEL, {"effort": "medium", "summary": "auto"}),
    (ReasoningConfig(budget_tokens=32_000), MODEL, {"effort": "high", "summary": "auto"}),
    (ReasoningConfig(effort=ReasoningEffort.LOW, budget_tokens=32_000), MODEL, {"effort": "low", "summary": "auto"}),
    (None, "o4-mini", {"summary": "auto"}),  # a reasoning model: summaries and encrypted items anyway
    (None, "gpt-4.1", None),  # not one: no reasoning object, no include
])
async def test_reasoning_controls_map_to_effort(up, oai, reasoning, model, expected):
    up.add("POST", "/responses", Reply(200, JSON_TYPE, fixture("openai_responses/responses_reasoning_text.json")))
    await oai.chat(ChatRequest(model=model, messages=[QUESTION], reasoning=reasoning))
    sent = up.last("/responses").json()
    assert sent.get("reasoning") == expected
    assert ("include" in sent) == (expected is not None)


async def test_reasoning_controls_for_a_model_that_does_not_reason_are_refused_unsent(up, make):
    with pytest.raises(errors.ModelFeatureUnsupported, match=r"gpt-4\.1"):
        await make().chat(ChatRequest(model="gpt-4.1", messages=[QUESTION], reasoning=HIGH))
    assert up.received == []
    up.add("POST", "/responses", Reply(200, JSON_TYPE, fixture("openai_responses/responses_reasoning_text.json")))
    await make(options={"reasoning_models": [""]}).chat(ChatRequest(model="my-model", messages=[QUESTION],
                                                                    reasoning=HIGH))
    assert up.last("/responses").json()["reasoning"] == {"effort": "high", "summary": "auto"}


async def test_options_store_and_no_summaries(up, make):
    oai = make(options={"store": True, "reasoning_summary": "none"})
    up.add("POST", "/responses", Reply(200, JSON_TYPE, fixture("openai_responses/responses_reasoning_text.json")))
    await oai.chat(ask(QUESTION))
    sent = up.last("/responses").json()
    assert sent["store"] is True and sent["reasoning"] == {"effort": "high"} and "include" not in sent


async def test_structured_output_tool_choice_media_and_passthrough(up, oai):
    up.add("POST", "/responses", Reply(200, JSON_TYPE, fixture("openai_responses/responses_reasoning_text.json")))
    pdf = b"%PDF-1.4 tiny"
    await oai.chat(ChatRequest(
        model="gpt-4.1",
        messages=[Message(Role.USER, parts=[
            ContentPart(text="Describe both"),
            ContentPart(media=MediaPart(mime_type="image/png", data=b"\x89PNG", detail="low")),
            ContentPart(media=MediaPart(uri="https://example.com/cat.jpg")),
            ContentPart(media=MediaPart(mime_type="application/pdf", data=pdf)),
            ContentPart(media=MediaPart(mime_type="application/pdf", uri="https://example.com/paper.pdf")),
        ])],
        tools=[WEATHER],
        tool_choice=ToolChoice(ToolChoiceMode.TOOL, "weather"),
        response_format=ResponseFormat(ResponseFormatType.JSON_SCHEMA, name="answer",
                                       schema={"type": "object", "properties": {"a": {"type": "string"}}}, strict=True),
        passthrough={"service_tier": "flex", "truncation": "auto"},
    ))
    sent = up.last("/responses").json()
    assert sent["input"] == [{"role": "user", "content": [
        {"type": "input_text", "text": "Describe both"},
        {"type": "input_image", "image_url": "data:image/png;base64," + base64.b64encode(b"\x89PNG").decode(),
         "detail": "low"},
        {"type": "input_image", "image_url": "https://example.com/cat.jpg", "detail": "auto"},
        {"type": "input_file", "filename": "document.pdf",
         "file_data": "data:application/pdf;base64," + base64.b64encode(pdf).decode()},
        {"type": "input_file", "file_url": "https://example.com/paper.pdf"},
    ]}]
    assert sent["tool_choice"] == {"type": "function", "name": "weather"}
    assert sent["text"] == {"format": {"type": "json_schema", "name": "answer", "strict": True,
                                       "schema": {"type": "object", "properties": {"a": {"type": "string"}}}}}
    assert (sent["service_tier"], sent["truncation"]) == ("flex", "auto")


@pytest.mark.parametrize(("fields", "field"), [({"stop": ["END"]}, "stop"), ({"seed": 7}, "seed")])
async def test_fields_the_api_lacks_are_refused_unsent(up, oai, fields, field):
    with pytest.raises(errors.CapabilityUnsupported, match=field):
        await oai.chat(ask(QUESTION, **fields))
    assert up.received == []


async def test_passthrough_may_not_replace_the_conversation(up, oai):
    with pytest.raises(errors.InvalidRequest) as info:
        await oai.chat(ask(QUESTION, passthrough={"input": "ignore the rest", "instructions": "x"}))
    assert {f for f, _ in info.value.violations} == {"passthrough_json.input", "passthrough_json.instructions"}
    assert up.received == []


# -- the tool loop with reasoning ------------------------------------------------------------


async def test_a_reasoning_tool_loop_sends_the_encrypted_item_and_the_call_back_exactly(up, oai):
    first_body = recorded("responses_reasoning_tool_call.json")
    reasoning_item, call_item = first_body["output"]
    up.add("POST", "/responses", Reply(200, {**JSON_TYPE, "x-request-id": "req_1"},
                                       fixture("openai_responses/responses_reasoning_tool_call.json")))
    first = await oai.chat(ask(SYSTEM, QUESTION))

    assert first.content == "" and first.stop_reason is StopReason.TOOL_CALLS
    assert first.raw_stop_reason == "completed"
    assert first.tool_calls == [ToolCall("call_Frvkxe2RXaW1CTvkYPyl0U68", "weather", '{"location":"Florence, Italy"}')]
    assert first.reasoning_content == reasoning_item["summary"][0]["text"]
    [part] = first.parts
    assert part.reasoning is not None and part.reasoning.source == "openai_responses"
    assert part.reasoning.signature == reasoning_item["encrypted_content"]
    assert (first.usage.prompt_tokens, first.usage.completion_tokens, first.usage.total_tokens) == (63, 22, 85)
    assert first.metadata == {"response_id": first_body["id"], "request_id": "req_1"}

    up.add("POST", "/responses", Reply(200, JSON_TYPE, fixture("openai_responses/responses_reasoning_text.json")))
    second = await oai.chat(ask(SYSTEM, QUESTION,
                                Message(Role.ASSISTANT, parts=first.parts, tool_calls=first.tool_calls),
                                Message(Role.TOOL, "40 C", tool_call_id=first.tool_calls[0].id)))
    sent = up.last("/responses").json()
    assert sent["input"] == [
        {"role": "user", "content": "What's the weather in Florence, Italy?"},
        reasoning_item,  # id, type, summary and encrypted content, as returned
        {"type": "function_call", "call_id": call_item["call_id"], "name": call_item["name"],
         "arguments": call_item["arguments"]},
        {"type": "function_call_output", "call_id": call_item["call_id"], "output": "40 C"},
    ]
    assert second.content.startswith("Right now it\u2019s 40 \u00b0C (104 \u00b0F) in Florence")
    assert second.stop_reason is StopReason.END_TURN and second.tool_calls == []
    usage = second.usage
    assert (usage.prompt_tokens, usage.completion_tokens, usage.reasoning_tokens) == (159, 313, 256)
    assert [p.reasoning is not None for p in second.parts] == [True, False]


@pytest.mark.parametrize("cut", CUTS)
async def test_a_streamed_reasoning_tool_loop_sends_the_streamed_item_back_exactly(up, oai, cut):
    name = "stream_reasoning_summary_then_function_call.sse"
    recorded_events = events(name)
    [reasoning_item] = [e["item"] for e in recorded_events
                        if e["type"] == "response.output_item.done" and e["item"]["type"] == "reasoning"]
    summaries = [s["text"] for s in reasoning_item["summary"]]
    up.add("POST", "/responses", Reply(200, SSE, fixture(f"openai_responses/{name}"), cut_every=cut))
    chunks, final = await collect(oai.stream(ask(SYSTEM, QUESTION)))

    assert len(summaries) == 2
    assert "".join(c.reasoning_content for c in chunks) == "\n\n".join(summaries)
    deltas = [d for c in chunks for d in c.tool_call_deltas]
    assert (deltas[0].index, deltas[0].id, deltas[0].name) == (0, "call_Q3mB8LkVn2xTzR7cJp0sYw4e", "weather")
    assert "".join(d.arguments_delta for d in deltas) == '{"location":"Florence, Italy"}'
    assert chunks[0].model == MODEL and chunks[0].provider == "oai"
    assert final.stop_reason is StopReason.TOOL_CALLS
    assert final.tool_calls == [ToolCall("call_Q3mB8LkVn2xTzR7cJp0sYw4e", "weather", '{"location":"Florence, Italy"}')]
    usage = final.usage
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (63, 150, 213)
    assert (usage.cache_read_tokens, usage.reasoning_tokens) == (32, 128)
    assert up.last("/responses").json()["stream"] is True

    up.add("POST", "/responses", Reply(200, SSE, fixture("openai_responses/stream_text_after_tool_result.sse"),
                                       cut_every=cut))
    chunks2, final2 = await collect(oai.stream(ask(
        SYSTEM, QUESTION, Message(Role.ASSISTANT, parts=final.parts, tool_calls=final.tool_calls),
        Message(Role.TOOL, "40 C", tool_call_id=final.tool_calls[0].id))))
    sent = up.last("/responses").json()
    assert sent["input"][1] == reasoning_item
    assert sent["input"][2] == {"type": "function_call", "call_id": "call_Q3mB8LkVn2xTzR7cJp0sYw4e",
                                "name": "weather", "arguments": '{"location":"Florence, Italy"}'}
    assert "".join(c.content for c in chunks2) == (
        "Right now in Florence, Italy it\u2019s 40\u00b0C (104\u00b0F). Would you like an hourly forecast, "
        "the next few days, or any weather alerts?")
    assert final2.stop_reason is StopReason.END_TURN
    assert (final2.usage.prompt_tokens, final2.usage.completion_tokens, final2.usage.reasoning_tokens) == (92, 230, 192)


@pytest.mark.parametrize("cut", CUTS)
async def test_recorded_stream_without_encrypted_content(up, oai, cut):
    up.add("POST", "/responses", Reply(200, SSE, fixture("openai_responses/stream_reasoning_then_function_call.sse"),
                                       cut_every=cut))
    chunks, final = await collect(oai.stream(ask(QUESTION, reasoning=None)))
    assert "".join(d.arguments_delta for c in chunks for d in c.tool_call_deltas) == '{"location":"Florence, Italy"}'
    assert final.tool_calls == [ToolCall("call_zLPcxu60T5jzGjuiRIvlkoSt", "weather", '{"location":"Florence, Italy"}')]
    assert (final.usage.prompt_tokens, final.usage.completion_tokens, final.usage.reasoning_tokens) == (63, 101, 64)
    assert final.metadata["response_id"] == "resp_08521e071015afca016a3c1187fce481958fc22ce99a25e892"

    # Its reasoning item has no encrypted content: with store off it cannot go back (OpenAI
    # would look the id up in storage and refuse the call), so only the call goes.
    up.add("POST", "/responses", Reply(200, SSE, fixture("openai_responses/stream_text_after_tool_result.sse")))
    await collect(oai.stream(ask(QUESTION, Message(Role.ASSISTANT, parts=final.parts, tool_calls=final.tool_calls),
                                 Message(Role.TOOL, "40 C", tool_call_id=final.tool_calls[0].id), reasoning=None)))
    assert [item.get("type", "message") for item in up.last("/responses").json()["input"]] == [
        "message", "function_call", "function_call_output"]


async def test_reasoning_of_other_dialects_stays_behind(up, oai):
    up.add("POST", "/responses", Reply(200, JSON_TYPE, fixture("openai_responses/responses_reasoning_text.json")))
    foreign = ContentPart(reasoning=ReasoningPart(text="thinking", signature="sig", source="anthropic"))
    await oai.chat(ask(QUESTION, Message(Role.ASSISTANT, parts=[foreign, ContentPart(text="Hot.")]),
                       Message(Role.USER, "Thanks")))
    assert up.last("/responses").json()["input"] == [
        {"role": "user", "content": "What's the weather in Florence, Italy?"},
        {"role": "assistant", "content": "Hot."},
        {"role": "user", "content": "Thanks"},
    ]


# -- stop reasons and stream failures --------------------------------------------------------


def response_event(kind: str, **fields: Any) -> dict[str, Any]:
    return {"type": kind, "response": {"id": "resp_x", "object": "response", "model": MODEL, "output": [],
                                       "usage": None, **fields}}


def text_delta(text: str) -> dict[str, Any]:
    return {"type": "response.output_text.delta", "item_id": "msg_x", "output_index": 0, "content_index": 0,
            "delta": text}


@pytest.mark.parametrize(("reason", "expected"), [
    ("max_output_tokens", StopReason.MAX_TOKENS), ("content_filter", StopReason.CONTENT_FILTER)])
async def test_incomplete_responses_say_why(up, oai, reason, expected):
    usage = {"input_tokens": 9, "output_tokens": 16, "total_tokens": 25}
    up.add("POST", "/responses", Reply(200, SSE, sse(
        response_event("response.created", status="in_progress"), text_delta("Once upon"),
        response_event("response.incomplete", status="incomplete", incomplete_details={"reason": reason},
                       usage=usage))))
    chunks, final = await collect(oai.stream(ask(QUESTION)))
    assert "".join(c.content for c in chunks) == "Once upon"
    assert (final.stop_reason, final.raw_stop_reason) == (expected, reason)
    assert final.usage is not None and final.usage.total_tokens == 25

    whole = {"id": "resp_y", "object": "response", "status": "incomplete", "model": MODEL,
             "incomplete_details": {"reason": reason}, "usage": usage,
             "output": [{"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Once"}]}]}
    up.add("POST", "/responses", Reply(200, JSON_TYPE, json.dumps(whole).encode()))
    answer = await oai.chat(ask(QUESTION))
    assert (answer.content, answer.stop_reason) == ("Once", expected)


async def test_a_stream_without_usage_ends_with_an_estimate_marked_as_one(up, oai):
    up.add("POST", "/responses", Reply(200, SSE, sse(
        response_event("response.created", status="in_progress"), text_delta("Hot and sunny."),
        response_event("response.completed", status="completed", output=[{
            "type": "message", "role": "assistant",
            "content": [{"type": "output_text", "text": "Hot and sunny."}]}]))))
    _, final = await collect(oai.stream(ask(QUESTION)))
    assert final.usage is not None and final.usage.estimated
    assert final.usage.completion_tokens == (len("Hot and sunny.") + 3) // 4 and final.usage.prompt_tokens > 0

    up.add("POST", "/responses", Reply(200, SSE, fixture("openai_responses/stream_text_after_tool_result.sse")))
    _, reported = await collect(oai.stream(ask(QUESTION)))
    assert reported.usage is not None and not reported.usage.estimated


async def test_a_refusal_is_the_answer_with_its_own_stop_reason(up, oai):
    whole = {"id": "resp_r", "object": "response", "status": "completed", "model": MODEL, "output": [
        {"type": "message", "role": "assistant", "content": [{"type": "refusal", "refusal": "I can't help."}]}]}
    up.add("POST", "/responses", Reply(200, JSON_TYPE, json.dumps(whole).encode()))
    answer = await oai.chat(ask(QUESTION))
    assert (answer.content, answer.stop_reason) == ("I can't help.", StopReason.REFUSAL)


@pytest.mark.parametrize(("failure", "error", "code"), [
    (response_event("response.failed", status="failed",
                    error={"code": "server_error", "message": "The model had an error."}),
     errors.UpstreamUnavailable, "server_error"),
    ({"type": "error", "code": "rate_limit_exceeded", "message": "Slow down", "param": None},
     errors.UpstreamRateLimited, "rate_limit_exceeded"),
    (response_event("response.failed", status="failed", error={"code": "invalid_image", "message": "bad image"}),
     errors.UpstreamBadRequest, "invalid_image"),
])
async def test_failures_mid_stream_end_it_with_the_mapped_error(up, oai, failure, error, code):
    up.add("POST", "/responses", Reply(200, SSE, sse(response_event("response.created"), text_delta("Hel"),
                                                     failure), cut_every=5))
    received = []
    with pytest.raises(error) as info:
        async for chunk in oai.stream(ask(QUESTION)):
            received.append(chunk)
    assert "".join(c.content for c in received) == "Hel"
    assert info.value.metadata["upstream_code"] == code


async def test_a_stream_cut_before_its_terminal_event_is_a_protocol_error(up, oai):
    body = fixture("openai_responses/stream_reasoning_then_function_call.sse")
    up.add("POST", "/responses", Reply(200, SSE, body[: body.index(b"event: response.completed")]))
    with pytest.raises(errors.UpstreamProtocol, match=r"before response\.completed"):
        await collect(oai.stream(ask(QUESTION)))


async def test_a_failed_whole_response_is_an_error(up, oai):
    failed = {"id": "resp_f", "object": "response", "status": "failed", "model": MODEL, "output": [],
              "error": {"code": "server_error", "message": "boom"}}
    up.add("POST", "/responses", Reply(200, JSON_TYPE, json.dumps(failed).encode()))
    with pytest.raises(errors.UpstreamUnavailable, match="boom"):
        await oai.chat(ask(QUESTION))


@pytest.mark.parametrize(("name", "error"), [
    ("error_401_invalid_api_key", errors.UpstreamAuth),
    ("error_429_rate_limit", errors.UpstreamRateLimited),
    ("error_429_insufficient_quota", errors.UpstreamQuotaExceeded),
    ("error_404_model_not_found", errors.UpstreamModelNotFound),
])
async def test_http_errors_use_the_openai_error_table(up, oai, name, error):
    status, headers = headers_fixture(f"openai/{name}.headers")
    up.always("POST", "/responses", Reply(status, headers, fixture(f"openai/{name}.json")))
    for call in (oai.chat(ask(QUESTION)), collect(oai.stream(ask(QUESTION)))):
        with pytest.raises(error) as info:
            await call
        assert KEY not in str(info.value) and "DEADBEEF" not in str(info.value)
    if error is errors.UpstreamRateLimited:
        assert info.value.retry_after == 2.0


# -- token counting, capabilities, configuration --------------------------------------------


async def test_count_tokens_asks_the_input_tokens_endpoint(up, oai):
    up.add("POST", "/responses/input_tokens",
           Reply(200, JSON_TYPE, b'{"object":"response.input_tokens","input_tokens":57}'))
    count = await oai.count_tokens(ask(SYSTEM, QUESTION))
    assert (count.tokens, count.source) == (57, Source.PROVIDER)
    sent = up.last("/responses/input_tokens").json()
    assert set(sent) == {"model", "instructions", "input", "tools", "tool_choice", "reasoning"}

    missing = {"error": {"message": "Invalid URL (POST /v1/responses/input_tokens)", "type": "invalid_request_error"}}
    up.add("POST", "/responses/input_tokens", Reply(404, JSON_TYPE, json.dumps(missing).encode()))
    estimate = await oai.count_tokens(ask(SYSTEM, QUESTION))
    assert estimate.source is Source.ESTIMATE and estimate.tokens > 0


def test_capabilities_come_from_the_openai_table(oai):
    caps = oai.known_capabilities("gpt-5-mini-2025-08-07")
    assert caps is not None and caps.context_window == 400_000 and caps.supports_tools


def test_unknown_options_are_a_configuration_error():
    with pytest.raises(ConfigError, match="stor"):
        registry.create(ProviderSettings(name="o", kind="openai_responses", options={"stor": True}), "providers[0]")


# -- through a real gateway -------------------------------------------------------------------


@pytest.fixture
async def gw(up):
    config = {"providers": [{"name": "oai", "kind": "openai_responses", "api_key": KEY, "base_url": up.url,
                             "models": [MODEL], "default_model": MODEL, "retry": {"enabled": False}}]}
    async with running_gateway(config) as gateway:
        yield gateway


async def test_grpc_stream_with_reasoning_summary_and_tool_call(up, gw):
    up.add("POST", "/responses", Reply(200, SSE, fixture(
        "openai_responses/stream_reasoning_summary_then_function_call.sse"), cut_every=7))
    chunks = [c async for c in gw.stub.StreamChat(pb.ChatRequest(
        provider="oai", messages=[t.Message(role=t.ROLE_USER, content="weather in Florence?")],
        tools=[t.ToolDefinition(name="weather")],
        reasoning=t.ReasoningConfig(effort=t.REASONING_EFFORT_LOW)))]
    final = chunks[-1]
    assert final.final and final.stop_reason == t.STOP_REASON_TOOL_CALLS
    assert [(c.name, c.arguments) for c in final.tool_calls] == [("weather", '{"location":"Florence, Italy"}')]
    assert "".join(c.reasoning_content for c in chunks).startswith("**Getting weather for Florence**")
    assert (final.usage.prompt_token_count, final.usage.completion_token_count) == (63, 150)
    assert up.last("/responses").json()["reasoning"] == {"effort": "low", "summary": "auto"}


async def test_grpc_errors(up, gw):
    status, headers = headers_fixture("openai/error_429_rate_limit.headers")
    up.always("POST", "/responses", Reply(status, headers, fixture("openai/error_429_rate_limit.json")))
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await gw.stub.Chat(pb.ChatRequest(provider="oai", messages=[t.Message(role=t.ROLE_USER, content="hi")]))
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    details = rpc_details(info.value)
    assert details["reason"] == "ERROR_REASON_UPSTREAM_RATE_LIMITED" and details["retry_delay"] == 2.0

    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await gw.stub.Chat(pb.ChatRequest(provider="oai", stop_sequences=["END"],
                                          messages=[t.Message(role=t.ROLE_USER, content="hi")]))
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert rpc_details(refused.value)["reason"] == "ERROR_REASON_CAPABILITY_UNSUPPORTED"
    assert "stop sequences" in (refused.value.details() or "")
