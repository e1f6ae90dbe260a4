"""The Gemini adapter against a loopback server that answers as the Gemini API does.

Recorded responses live in tests/fixtures/gemini (see SOURCES.md there); further cases
are built inline from the API's documented shapes. Provider-level tests check what
Portico sends and reconstructs; gateway-level tests check what a gRPC caller gets.
"""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from harness import collect, running_gateway
from portico.v1 import llm_service_pb2 as pb
from portico.v1 import types_pb2 as t
from portico_server import errors
from portico_server.config import ProviderSettings
from portico_server.domain import (
    ChatRequest,
    ContentPart,
    EmbedRequest,
    MediaPart,
    Message,
    ReasoningPart,
    ResponseFormat,
    ResponseFormatType,
    Role,
    Source,
    StopReason,
    StreamChunk,
    ToolChoice,
    ToolChoiceMode,
    ToolDefinition,
)
from portico_server.providers import registry
from portico_server.providers.gemini import GeminiProvider, from_environment, openapi_schema
from portico_server.vectors import unpack
from upstream import FIXTURES, Reply, Upstream, fixture, headers_fixture

KEY = "AIzaTestKey-never-to-be-seen"
MODEL = "gemini-2.5-flash"
EXPECTED: dict[str, Any] = json.loads((FIXTURES / "gemini" / "expected.json").read_text())
JSON = {"content-type": "application/json; charset=UTF-8"}
SSE = {"content-type": "text/event-stream"}
GENERATE = f"/v1beta/models/{MODEL}:generateContent"
STREAM = f"/v1beta/models/{MODEL}:streamGenerateContent"
CUTS = [None, 1, 7, 64]

WEATHER = ToolDefinition(
    name="weather",
    description="Get weather information for a location",
    parameters={"type": "object", "properties": {"location": {"type": "string", "description": "the city"}},
                "required": ["location"]},
)


def settings(up: Upstream, **extra: Any) -> ProviderSettings:
    return ProviderSettings(name="gemini", kind="gemini", api_key=KEY, base_url=up.url, models=[MODEL],
                            default_model=MODEL, embedding_model="gemini-embedding-001", **extra)


@pytest.fixture
async def up():
    async with Upstream() as server:
        yield server


@pytest.fixture
async def gemini(up):
    provider = GeminiProvider(settings(up))
    yield provider
    await provider.close()


def ask(*messages: Message, **fields: Any) -> ChatRequest:
    if not messages:
        messages = (Message(Role.SYSTEM, "You are a helpful assistant"), Message(Role.USER, "Say hi in Portuguese"))
    return ChatRequest(model=MODEL, messages=list(messages), **fields)


def sse(*events: dict[str, Any]) -> bytes:
    return b"".join(b"data: " + json.dumps(e).encode() + b"\r\n\r\n" for e in events)


def text_event(text: str, finish: str | None = None, **extra: Any) -> dict[str, Any]:
    candidate: dict[str, Any] = {"content": {"parts": [{"text": text}], "role": "model"}, "index": 0}
    if finish:
        candidate["finishReason"] = finish
    return {"candidates": [candidate], "usageMetadata": {"promptTokenCount": 3, "candidatesTokenCount": 2,
                                                          "totalTokenCount": 5}, **extra}



def compact(args: dict[str, Any]) -> str:
    return json.dumps(args, ensure_ascii=False, separators=(",", ":"))


# -- chat: what Portico sends ---------------------------------------------------------------


async def test_chat_sends_the_native_request_with_the_key_in_a_header(up, gemini):
    up.add("POST", GENERATE, Reply(200, JSON, fixture("gemini/generate_content_text.json")))
    await gemini.chat(ask(temperature=0.5, top_p=0.9, max_tokens=4000, stop=["END"], seed=7))
    sent = up.last(GENERATE)
    assert sent.headers["x-goog-api-key"] == KEY
    assert "authorization" not in sent.headers
    assert sent.query == {}, "the key must never travel in the URL"
    assert sent.json() == {
        "contents": [{"role": "user", "parts": [{"text": "Say hi in Portuguese"}]}],
        "systemInstruction": {"parts": [{"text": "You are a helpful assistant"}]},
        "generationConfig": {"temperature": 0.5, "topP": 0.9, "maxOutputTokens": 4000,
                             "stopSequences": ["END"], "seed": 7},
    }


async def test_chat_reconstructs_text_usage_and_model(up, gemini):
    up.add("POST", GENERATE, Reply(200, JSON, fixture("gemini/generate_content_text.json")))
    answer = await gemini.chat(ask())
    expected = EXPECTED["generate_content_text.json"]["parsed"]
    assert answer.content == expected["text"] == "Olá!"
    assert (answer.stop_reason, answer.raw_stop_reason) == (StopReason.END_TURN, "STOP")
    usage = expected["usage"]
    assert answer.usage.prompt_tokens == usage["promptTokenCount"]
    # Portico's completion count includes reasoning; Gemini reports them apart.
    assert answer.usage.completion_tokens == usage["candidatesTokenCount"] + usage["thoughtsTokenCount"]
    assert answer.usage.reasoning_tokens == usage["thoughtsTokenCount"]
    assert answer.usage.total_tokens == usage["totalTokenCount"]
    assert answer.model == "gemini-2.5-flash" and answer.provider == "gemini"
    assert answer.metadata == {"response_id": "VgCzac2AGLOHz7IP2pOkkAI"}


@pytest.mark.parametrize("name", ["generate_content_function_call.json",
                                  "generate_content_parallel_function_calls.json"])
async def test_chat_function_calls_become_tool_calls_with_ids(up, gemini, name):
    up.add("POST", GENERATE, Reply(200, JSON, fixture(f"gemini/{name}")))
    answer = await gemini.chat(ask(Message(Role.USER, "go"), tools=[WEATHER]))
    expected = EXPECTED[name]["parsed"]["function_calls"]
    assert [(c.name, c.arguments) for c in answer.tool_calls] == [(e["name"], compact(e["args"])) for e in expected]
    assert (answer.stop_reason, answer.raw_stop_reason) == (StopReason.TOOL_CALLS, "STOP")
    ids = [c.id for c in answer.tool_calls]
    assert all(i.startswith("call_") for i in ids) and len(set(ids)) == len(ids)
    # Ids are stable: the same response gives the same ids.
    up.add("POST", GENERATE, Reply(200, JSON, fixture(f"gemini/{name}")))
    assert [c.id for c in (await gemini.chat(ask(Message(Role.USER, "go")))).tool_calls] == ids


async def test_the_thought_signature_travels_back_on_the_next_turn(up, gemini):
    recorded = json.loads(fixture("gemini/generate_content_parallel_function_calls.json"))
    signature = recorded["candidates"][0]["content"]["parts"][0]["thoughtSignature"]
    up.add("POST", GENERATE, Reply(200, JSON, fixture("gemini/generate_content_parallel_function_calls.json")))
    first = await gemini.chat(ask(Message(Role.USER, "Add and multiply 2 and 3")))
    add, multiply = first.tool_calls
    # The signature is a part of the answer; the ids stay short and portable.
    assert first.parts == [ContentPart(reasoning=ReasoningPart(signature=signature, source="gemini"))]
    assert all(re.fullmatch(r"call_[0-9a-f]{24}", c.id) for c in first.tool_calls)

    up.add("POST", GENERATE, Reply(200, JSON, fixture("gemini/generate_content_text.json")))
    await gemini.chat(ask(
        Message(Role.USER, "Add and multiply 2 and 3"),
        Message(Role.ASSISTANT, parts=first.parts, tool_calls=first.tool_calls),
        Message(Role.TOOL, "5", tool_call_id=add.id),
        Message(Role.TOOL, '{"product": 6}', tool_call_id=multiply.id),
    ))
    contents = up.last(GENERATE).json()["contents"]
    assert contents[1] == {"role": "model", "parts": [
        {"functionCall": {"name": "add", "args": {"a": 2, "b": 3}}, "thoughtSignature": signature},
        {"functionCall": {"name": "multiply", "args": {"a": 2, "b": 3}}},
    ]}
    # Both answers go back in one turn, named after their calls; plain text is wrapped.
    assert contents[2] == {"role": "user", "parts": [
        {"functionResponse": {"name": "add", "response": {"output": "5"}}},
        {"functionResponse": {"name": "multiply", "response": {"product": 6}}},
    ]}
    assert len(contents) == 3


async def test_a_tool_answer_without_its_call_is_refused_unsent(up, gemini):
    with pytest.raises(errors.InvalidRequest) as info:
        await gemini.chat(ask(Message(Role.USER, "x"), Message(Role.TOOL, "5", tool_call_id="call_unknown")))
    assert info.value.violations[0][0] == "messages[1].tool_call_id"
    assert up.received == []


async def test_tools_and_tool_choice(up, gemini):
    cases = [
        (None, None),
        (ToolChoice(ToolChoiceMode.AUTO), None),
        (ToolChoice(ToolChoiceMode.NONE), {"functionCallingConfig": {"mode": "NONE"}}),
        (ToolChoice(ToolChoiceMode.REQUIRED), {"functionCallingConfig": {"mode": "ANY"}}),
        (ToolChoice(ToolChoiceMode.TOOL, "weather"),
         {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["weather"]}}),
    ]
    no_args = ToolDefinition(name="now", description="The time")
    for choice, config in cases:
        up.add("POST", GENERATE, Reply(200, JSON, fixture("gemini/generate_content_text.json")))
        await gemini.chat(ask(Message(Role.USER, "x"), tools=[WEATHER, no_args], tool_choice=choice))
        body = up.last(GENERATE).json()
        assert body["tools"] == [{"functionDeclarations": [
            {"name": "weather", "description": "Get weather information for a location", "parameters": {
                "type": "object", "properties": {"location": {"type": "string", "description": "the city"}},
                "required": ["location"]}},
            {"name": "now", "description": "The time"},
        ]}]
        assert body.get("toolConfig") == config


async def test_images_go_inline_or_as_file_data(up, gemini):
    up.add("POST", GENERATE, Reply(200, JSON, fixture("gemini/generate_content_text.json")))
    await gemini.chat(ask(Message(Role.USER, parts=[
        ContentPart(text="What is this?"),
        ContentPart(media=MediaPart(data=b"\x89PNG", mime_type="image/png")),
        ContentPart(media=MediaPart(uri="data:image/webp;base64,UklGRg==")),
        ContentPart(media=MediaPart(uri="https://example.com/cat.jpg")),
    ])))
    assert up.last(GENERATE).json()["contents"][0]["parts"] == [
        {"text": "What is this?"},
        {"inlineData": {"mimeType": "image/png", "data": "iVBORw=="}},
        {"inlineData": {"mimeType": "image/webp", "data": "UklGRg=="}},
        {"fileData": {"mimeType": "image/jpeg", "fileUri": "https://example.com/cat.jpg"}},
    ]


async def test_structured_output_uses_response_schema_in_the_schema_order(up, gemini):
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "address": {"$ref": "#/$defs/Address"},
            "age": {"anyOf": [{"type": "integer"}, {"type": "null"}]},
            "email": {"type": "string", "format": "email"},
        },
        "required": ["name"],
        "additionalProperties": False,
        "$defs": {"Address": {"type": "object", "properties": {"zip": {"type": ["string", "null"]},
                                                               "city": {"const": "Paris"}}}},
    }
    up.add("POST", GENERATE, Reply(200, JSON, fixture("gemini/generate_content_text.json")))
    await gemini.chat(ask(Message(Role.USER, "x"),
                          response_format=ResponseFormat(ResponseFormatType.JSON_SCHEMA, "person", schema)))
    config = up.last(GENERATE).json()["generationConfig"]
    assert config["responseMimeType"] == "application/json"
    assert json.dumps(config["responseSchema"]) == json.dumps({
        "type": "object",
        "required": ["name"],
        "properties": {
            "name": {"type": "string"},
            "address": {"type": "object", "properties": {
                "zip": {"nullable": True, "type": "string"},
                "city": {"enum": ["Paris"]},
            }, "propertyOrdering": ["zip", "city"]},
            "age": {"type": "integer", "nullable": True},
            "email": {"type": "string"},
        },
        "propertyOrdering": ["name", "address", "age", "email"],
    })

    up.add("POST", GENERATE, Reply(200, JSON, fixture("gemini/generate_content_text.json")))
    await gemini.chat(ask(Message(Role.USER, "x"), response_format=ResponseFormat(ResponseFormatType.JSON_OBJECT)))
    assert up.last(GENERATE).json()["generationConfig"] == {"responseMimeType": "application/json"}


async def test_the_json_schema_dialect_sends_schemas_unchanged(up):
    provider = GeminiProvider(settings(up, options={"schema_dialect": "json_schema", "include_thoughts": True}))
    schema = {"type": "object", "properties": {"b": {"type": "string"}, "a": {"type": "integer"}},
              "additionalProperties": False}
    up.add("POST", GENERATE, Reply(200, JSON, fixture("gemini/generate_content_text.json")))
    try:
        await provider.chat(ask(Message(Role.USER, "x"), tools=[WEATHER],
                                response_format=ResponseFormat(ResponseFormatType.JSON_SCHEMA, "x", schema)))
    finally:
        await provider.close()
    body = up.last(GENERATE).json()
    assert body["generationConfig"]["responseJsonSchema"] == schema
    assert list(body["generationConfig"]["responseJsonSchema"]["properties"]) == ["b", "a"]
    assert body["generationConfig"]["thinkingConfig"] == {"includeThoughts": True}
    assert body["tools"][0]["functionDeclarations"][0]["parametersJsonSchema"] == WEATHER.parameters


def test_openapi_schema_survives_recursion_and_unions():
    tree = {"$ref": "#/$defs/Node", "$defs": {"Node": {"type": "object", "properties": {
        "children": {"type": "array", "items": {"$ref": "#/$defs/Node"}},
        "value": {"oneOf": [{"type": "string"}, {"type": "integer"}]},
    }}}}
    converted = openapi_schema(tree)
    depth = 0
    node = converted
    while "properties" in node:
        assert node["properties"]["value"]["anyOf"] == [{"type": "string"}, {"type": "integer"}]
        node = node["properties"]["children"]["items"]
        depth += 1
    assert node == {"type": "object"} and 2 < depth < 20


async def test_passthrough_adds_to_nested_objects(up, gemini):
    up.add("POST", GENERATE, Reply(200, JSON, fixture("gemini/generate_content_text.json")))
    await gemini.chat(ask(temperature=0.2, passthrough={
        "generationConfig": {"topK": 40, "thinkingConfig": {"thinkingBudget": 0}},
        "safetySettings": [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}],
    }))
    body = up.last(GENERATE).json()
    assert body["generationConfig"] == {"temperature": 0.2, "topK": 40, "thinkingConfig": {"thinkingBudget": 0}}
    assert body["safetySettings"][0]["threshold"] == "BLOCK_NONE"


async def test_a_request_over_the_size_limit_is_refused_unsent(up, gemini):
    assert gemini.settings.max_request_bytes == 20 * 1024 * 1024
    with pytest.raises(errors.RequestTooLarge) as info:
        await gemini.chat(ask(Message(Role.USER, "x" * (21 * 1024 * 1024))))
    assert info.value.metadata["limit"] == "max_request_bytes=20971520"
    assert up.received == []


async def test_a_blocked_prompt_is_a_content_filter_stop(up, gemini):
    blocked = {"promptFeedback": {"blockReason": "PROHIBITED_CONTENT"},
               "usageMetadata": {"promptTokenCount": 9, "totalTokenCount": 9}, "modelVersion": MODEL}
    up.add("POST", GENERATE, Reply(200, JSON, json.dumps(blocked).encode()))
    answer = await gemini.chat(ask())
    assert (answer.content, answer.stop_reason, answer.raw_stop_reason) == (
        "", StopReason.CONTENT_FILTER, "PROHIBITED_CONTENT")
    up.add("POST", STREAM, Reply(200, SSE, sse(blocked)))
    _, final = await collect(gemini.stream(ask()))
    assert (final.stop_reason, final.raw_stop_reason, final.usage.prompt_tokens) == (
        StopReason.CONTENT_FILTER, "PROHIBITED_CONTENT", 9)


@pytest.mark.parametrize(("finish", "stop"), [
    ("MAX_TOKENS", StopReason.MAX_TOKENS), ("SAFETY", StopReason.CONTENT_FILTER),
    ("RECITATION", StopReason.CONTENT_FILTER), ("MALFORMED_FUNCTION_CALL", StopReason.OTHER),
])
async def test_finish_reasons(up, gemini, finish, stop):
    up.add("POST", GENERATE, Reply(200, JSON, json.dumps(text_event("partial", finish)).encode()))
    answer = await gemini.chat(ask())
    assert (answer.content, answer.stop_reason, answer.raw_stop_reason) == ("partial", stop, finish)


# -- streaming ------------------------------------------------------------------------------

STREAMS = [name for name in EXPECTED if name.endswith(".sse")]


@pytest.mark.parametrize("cut", CUTS)
@pytest.mark.parametrize("name", STREAMS)
async def test_recorded_streams_reassemble_at_any_byte_boundary(up, gemini, name, cut):
    expected = EXPECTED[name]["parsed"]
    up.add("POST", STREAM, Reply(200, SSE, fixture(f"gemini/{name}"), cut_every=cut))
    chunks, final = await collect(gemini.stream(ask()))

    sent = up.last(STREAM)
    assert sent.query == {"alt": "sse"} and sent.headers["x-goog-api-key"] == KEY
    assert "".join(c.content for c in chunks) == expected["text"]
    assert "".join(c.reasoning_content for c in chunks) == expected["thought_text"]
    calls = [(c.name, c.arguments) for c in final.tool_calls]
    assert calls == [(e["name"], compact(e["args"])) for e in expected["function_calls"]]
    # The deltas add up to the same calls, with the id and name on the first fragment.
    deltas = [d for c in chunks for d in c.tool_call_deltas]
    assert [d.index for d in deltas] == list(range(len(calls)))
    assert [(d.id, d.name, d.arguments_delta) for d in deltas] == [
        (c.id, c.name, c.arguments) for c in final.tool_calls]
    assert final.raw_stop_reason == expected["finish_reasons"][-1] == "STOP"
    assert final.stop_reason == (StopReason.TOOL_CALLS if calls else StopReason.END_TURN)
    usage = expected["usage"]
    assert final.usage is not None
    assert final.usage.prompt_tokens == usage["promptTokenCount"]
    assert final.usage.total_tokens == usage["totalTokenCount"]
    assert final.usage.reasoning_tokens == (usage.get("thoughtsTokenCount") or 0)
    assert final.usage.completion_tokens == usage["candidatesTokenCount"] + (usage.get("thoughtsTokenCount") or 0)
    assert final.provider == "gemini" and final.model.startswith("gemini-")


async def test_stream_deltas_arrive_as_the_upstream_sends_them(up, gemini):
    up.add("POST", STREAM, Reply(200, SSE, fixture("gemini/stream_text_multi_chunk.sse")))
    chunks, _ = await collect(gemini.stream(ask()))
    assert [c.content for c in chunks] == ["The sum of ", "2 and 3 is 5. The product of 2 and 3 is", " 6."]


async def test_a_stream_without_its_finish_reason_is_an_error(up, gemini):
    recorded = fixture("gemini/stream_text.sse")
    cut_after_two_events = recorded[: recorded.rindex(b"data: ")]
    up.add("POST", STREAM, Reply(200, SSE, cut_after_two_events, cut_every=7))
    got: list[StreamChunk] = []
    with pytest.raises(errors.UpstreamProtocol):
        async for chunk in gemini.stream(ask()):
            got.append(chunk)
    assert len(got) == 2 and not any(c.is_final for c in got)


async def test_a_stream_cut_inside_an_event_is_an_error(up, gemini):
    recorded = fixture("gemini/stream_text.sse")
    up.add("POST", STREAM, Reply(200, SSE, recorded[: len(recorded) - 40]))
    with pytest.raises(errors.UpstreamProtocol):
        await collect(gemini.stream(ask()))


async def test_a_malformed_event_is_a_protocol_error(up, gemini):
    up.add("POST", STREAM, Reply(200, SSE, b'data: {"candidates": [\r\n\r\n'))
    with pytest.raises(errors.UpstreamProtocol):
        await collect(gemini.stream(ask()))


async def test_a_body_that_is_not_an_event_stream_is_a_protocol_error(up, gemini):
    up.add("POST", STREAM, Reply(200, JSON, fixture("gemini/generate_content_text.json")))
    with pytest.raises(errors.UpstreamProtocol):
        await collect(gemini.stream(ask()))


async def test_an_error_event_mid_stream_ends_the_stream_with_its_status(up, gemini):
    error = {"error": {"code": 503, "message": "The model is overloaded. Please try again later.",
                       "status": "UNAVAILABLE"}}
    up.add("POST", STREAM, Reply(200, SSE, sse(text_event("Hel"), error), cut_every=5))
    got: list[StreamChunk] = []
    with pytest.raises(errors.UpstreamOverloaded) as info:
        async for chunk in gemini.stream(ask()):
            got.append(chunk)
    assert [c.content for c in got] == ["Hel"]
    assert info.value.status == 503 and "overloaded" in info.value.message


async def test_a_connection_reset_mid_stream_is_a_connection_error(up, gemini):
    recorded = fixture("gemini/stream_text.sse")
    up.add("POST", STREAM, Reply(200, SSE, recorded, reset_after=recorded.index(b"\r\n\r\n") + 4))
    with pytest.raises(errors.UpstreamConnection):
        await collect(gemini.stream(ask()))


async def test_closing_the_stream_closes_the_upstream_response(up, gemini):
    up.add("POST", STREAM, Reply(200, SSE, sse(text_event("first")), hang=True))
    stream = gemini.stream(ask())
    first = await anext(stream)
    assert first.content == "first"
    await stream.aclose()
    await asyncio.wait_for(up.disconnected.wait(), 5)


# -- errors ---------------------------------------------------------------------------------

# (fixture or inline body, status, headers, exception, gRPC code, retry delay)
ERRORS: list[tuple[str, bytes | str, int, dict[str, str] | str, type[errors.UpstreamError], grpc.StatusCode,
                   float | None]] = [
    ("api key invalid (recorded)", "error_400_api_key_invalid_on_stream.json", 400,
     "gemini/error_400_api_key_invalid_on_stream.headers", errors.UpstreamAuth,
     grpc.StatusCode.FAILED_PRECONDITION, None),
    ("model not found (recorded)", "error_404_model_not_found_on_stream.json", 404,
     "gemini/error_404_model_not_found_on_stream.headers", errors.UpstreamModelNotFound,
     grpc.StatusCode.NOT_FOUND, None),
    ("rate limited", "error_429_resource_exhausted.json", 429, JSON, errors.UpstreamRateLimited,
     grpc.StatusCode.RESOURCE_EXHAUSTED, 20.0),
    ("overloaded", "error_503_unavailable.json", 503, JSON, errors.UpstreamOverloaded,
     grpc.StatusCode.UNAVAILABLE, None),
    ("context too long", json.dumps({"error": {"code": 400, "status": "INVALID_ARGUMENT", "message":
        "The input token count (1200000) exceeds the maximum number of tokens allowed (1048576)."}}),
     400, JSON, errors.ContextLengthExceeded, grpc.StatusCode.INVALID_ARGUMENT, None),
    ("bad request", json.dumps({"error": {"code": 400, "status": "INVALID_ARGUMENT", "message":
        "Invalid JSON payload received. Unknown name \"foo\": Cannot find field."}}),
     400, JSON, errors.UpstreamBadRequest, grpc.StatusCode.INVALID_ARGUMENT, None),
    ("permission denied", json.dumps({"error": {"code": 403, "status": "PERMISSION_DENIED", "message":
        "Method doesn't allow unregistered callers."}}),
     403, JSON, errors.UpstreamAuth, grpc.StatusCode.FAILED_PRECONDITION, None),
    ("payload too large", json.dumps({"error": {"code": 413, "message": "Request Entity Too Large"}}),
     413, JSON, errors.UpstreamBadRequest, grpc.StatusCode.INVALID_ARGUMENT, None),
    ("rate limited, retry-after header", json.dumps({"error": {"code": 429, "status": "RESOURCE_EXHAUSTED",
        "message": "Resource has been exhausted (e.g. check quota)."}}),
     429, {**JSON, "retry-after": "7"}, errors.UpstreamRateLimited, grpc.StatusCode.RESOURCE_EXHAUSTED, 7.0),
    ("internal", json.dumps({"error": {"code": 500, "status": "INTERNAL", "message":
        "An internal error has occurred. Please retry or report in https://developers.generativeai.google/guide/troubleshooting"}}),
     500, JSON, errors.UpstreamUnavailable, grpc.StatusCode.UNAVAILABLE, None),
    ("bad gateway, html", "<html><body>502 Bad Gateway</body></html>", 502, {"content-type": "text/html"},
     errors.UpstreamUnavailable, grpc.StatusCode.UNAVAILABLE, None),
    ("deadline", json.dumps({"error": {"code": 504, "status": "DEADLINE_EXCEEDED", "message":
        "Deadline expired before operation could complete."}}),
     504, JSON, errors.UpstreamTimeout, grpc.StatusCode.UNAVAILABLE, None),
]


def error_reply(body: bytes | str, status: int, headers: dict[str, str] | str) -> Reply:
    if isinstance(headers, str):
        recorded_status, headers = headers_fixture(headers)
        assert recorded_status == status
    data = fixture(f"gemini/{body}") if isinstance(body, str) and body.endswith(".json") else body
    return Reply(status, headers, data.encode() if isinstance(data, str) else data)


@pytest.mark.parametrize(("case", "body", "status", "headers", "exc", "code", "delay"), ERRORS,
                         ids=[e[0] for e in ERRORS])
async def test_error_bodies_map_to_the_error_table(up, gemini, case, body, status, headers, exc, code, delay):
    for path, call in ((GENERATE, gemini.chat), (STREAM, lambda r: collect(gemini.stream(r)))):
        up.add("POST", path, error_reply(body, status, headers))
        with pytest.raises(errors.UpstreamError) as info:
            await call(ask())
        assert type(info.value) is exc, case
        assert info.value.status == status and info.value.retry_after == delay
        assert info.value.metadata["provider"] == "gemini"


async def test_the_key_never_leaks_into_an_error(up, gemini):
    echo = {"error": {"code": 400, "status": "INVALID_ARGUMENT", "message": f"API key {KEY} is malformed",
                      "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID"}]}}
    up.add("POST", GENERATE, Reply(400, JSON, json.dumps(echo).encode()))
    with pytest.raises(errors.UpstreamAuth) as info:
        await gemini.chat(ask())
    assert KEY not in str(info.value) and KEY not in repr(info.value.metadata)
    assert info.value.metadata["upstream_code"] == "API_KEY_INVALID"


async def test_an_unreachable_upstream_is_a_connection_error():
    async with Upstream() as closed:
        url = closed.url
    provider = GeminiProvider(ProviderSettings(name="gemini", kind="gemini", api_key=KEY, base_url=url))
    try:
        with pytest.raises(errors.UpstreamConnection):
            await provider.chat(ask())
        assert await provider.health_check() is False
    finally:
        await provider.close()


# -- embeddings, tokens, capabilities, health -----------------------------------------------

EMBED = "/v1beta/models/gemini-embedding-001:batchEmbedContents"


def embed_answer(texts: list[str]) -> Reply:
    vectors = [{"values": [float(int(text.removeprefix("text-"))), 0.5]} for text in texts]
    return Reply(200, JSON, json.dumps({"embeddings": vectors}).encode())


async def test_embedding_values_that_are_not_numbers_are_a_protocol_error(up, gemini):
    up.add("POST", EMBED, Reply(200, JSON, json.dumps({"embeddings": [{"values": [0.5, "x"]}]}).encode()))
    with pytest.raises(errors.UpstreamProtocol, match="not numbers"):
        await gemini.embed(EmbedRequest(model="gemini-embedding-001", inputs=["a"]))


async def test_embeddings_come_back_in_input_order_across_batches(up, gemini):
    texts = [f"text-{i}" for i in range(150)]
    up.add("POST", EMBED, embed_answer(texts[:100]))
    up.add("POST", EMBED, embed_answer(texts[100:]))
    result = await gemini.embed(EmbedRequest(model="gemini-embedding-001", inputs=texts, dimensions=256))
    assert [unpack(v) for v in result.vectors] == [[float(i), 0.5] for i in range(150)]
    sent = [r.json() for r in up.received if r.path == EMBED]
    assert [len(s["requests"]) for s in sent] == [100, 50]
    assert sent[0]["requests"][0] == {"model": "models/gemini-embedding-001",
                                      "content": {"parts": [{"text": "text-0"}]}, "outputDimensionality": 256}
    assert result.provider == "gemini" and result.model == "gemini-embedding-001"


async def test_an_embedding_answer_of_the_wrong_size_is_a_protocol_error(up, gemini):
    up.add("POST", EMBED, embed_answer(["text-1"]))
    with pytest.raises(errors.UpstreamProtocol):
        await gemini.embed(EmbedRequest(model="gemini-embedding-001", inputs=["text-1", "text-2"]))


async def test_count_tokens_uses_the_count_endpoint_with_system_and_tools(up, gemini):
    path = f"/v1beta/models/{MODEL}:countTokens"
    up.add("POST", path, Reply(200, JSON, b'{"totalTokens": 31, "promptTokensDetails": '
                                          b'[{"modality": "TEXT", "tokenCount": 31}]}'))
    count = await gemini.count_tokens(ask(tools=[WEATHER], temperature=0.1))
    assert (count.tokens, count.source, count.model) == (31, Source.PROVIDER, MODEL)
    request = up.last(path).json()["generateContentRequest"]
    assert request["model"] == f"models/{MODEL}"
    assert request["systemInstruction"] == {"parts": [{"text": "You are a helpful assistant"}]}
    assert request["tools"][0]["functionDeclarations"][0]["name"] == "weather"
    assert "generationConfig" not in request


MODEL_RESOURCE = {
    "name": "models/gemini-2.5-flash", "version": "001", "displayName": "Gemini 2.5 Flash",
    "inputTokenLimit": 1048576, "outputTokenLimit": 65536,
    "supportedGenerationMethods": ["generateContent", "countTokens", "createCachedContent", "batchGenerateContent"],
    "temperature": 1, "topP": 0.95, "topK": 64, "maxTemperature": 2, "thinking": True,
}


async def test_capabilities_are_discovered_from_the_model_resource(up, gemini):
    up.add("GET", f"/v1beta/models/{MODEL}", Reply(200, JSON, json.dumps(MODEL_RESOURCE).encode()))
    caps = await gemini.discover_capabilities(MODEL)
    assert caps is not None and caps.source is Source.PROVIDER
    assert (caps.context_window, caps.max_output_tokens) == (1048576, 65536)
    assert caps.supports_tools and caps.supports_response_format and caps.supports_vision
    assert not caps.supports_embeddings
    embedder = {"name": "models/gemini-embedding-001", "inputTokenLimit": 2048, "outputTokenLimit": 1,
                "supportedGenerationMethods": ["embedContent", "countTextTokens", "countTokens"]}
    up.add("GET", "/v1beta/models/gemini-embedding-001", Reply(200, JSON, json.dumps(embedder).encode()))
    caps = await gemini.discover_capabilities("gemini-embedding-001")
    assert caps is not None and caps.supports_embeddings and not caps.supports_tools


def test_the_built_in_table_knows_gemini_models(gemini):
    lite = gemini.known_capabilities("gemini-2.5-flash-lite-preview-09-2025")
    assert lite is not None and lite.source is Source.BUILT_IN and lite.max_output_tokens == 65536
    old = gemini.known_capabilities("models/gemini-2.0-flash-001")
    assert old is not None and old.max_output_tokens == 8192
    assert gemini.known_capabilities("not-a-gemini") is None


async def test_health_probe_lists_models(up, gemini):
    up.add("GET", "/v1beta/models", Reply(200, JSON, json.dumps({"models": [MODEL_RESOURCE]}).encode()))
    assert await gemini.health_check() is True
    assert up.last("/v1beta/models").query == {"pageSize": "1"}
    up.add("GET", "/v1beta/models", error_reply("error_400_api_key_invalid_on_stream.json", 400, JSON))
    assert await gemini.health_check() is False


def test_environment_hook():
    assert from_environment({}) == []
    assert from_environment({"GEMINI_API_KEY": ""}) == []
    (gemini,) = from_environment({"GOOGLE_API_KEY": "g", "OTHER": "x"})
    assert (gemini.name, gemini.kind, gemini.api_key.get_secret_value()) == ("gemini", "gemini", "g")
    (preferred,) = from_environment({"GOOGLE_API_KEY": "g", "GEMINI_API_KEY": "m"})
    assert preferred.api_key.get_secret_value() == "m"
    assert preferred.default_model in preferred.models and preferred.embedding_model
    assert "m" not in repr(preferred.api_key)
    defaults = registry.default_providers({"GEMINI_API_KEY": "m"})
    assert [p.name for p in defaults if p.kind == "gemini"] == ["gemini"]


# -- through a real gateway -----------------------------------------------------------------


def gateway_config(up: Upstream) -> dict[str, Any]:
    # One scripted exchange per call: the gateway's retries are off (tests/resilience).
    return {"providers": [{"name": "gemini", "kind": "gemini", "api_key": KEY, "base_url": up.url,
                           "models": [MODEL], "default_model": MODEL, "embedding_model": "gemini-embedding-001",
                           "retry": {"enabled": False}}]}


@pytest.fixture
async def gw(up):
    async with running_gateway(gateway_config(up)) as gateway:
        yield gateway


def grpc_request(**fields: Any) -> pb.ChatRequest:
    return pb.ChatRequest(provider="gemini", messages=[
        t.Message(role=t.ROLE_SYSTEM, content="You are a helpful assistant"),
        t.Message(role=t.ROLE_USER, content="What's the weather in Florence?"),
    ], **fields)


def details_of(err: grpc.aio.AioRpcError) -> tuple[error_details_pb2.ErrorInfo, error_details_pb2.RetryInfo | None]:
    status = rpc_status.from_call(err)
    assert status is not None, "every error carries google.rpc.Status details"
    info, retry = None, None
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
        elif detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            retry = error_details_pb2.RetryInfo()
            detail.Unpack(retry)
    assert info is not None and info.domain == "portico"
    return info, retry


async def test_gateway_chat_returns_tool_calls(up, gw):
    up.add("POST", GENERATE, Reply(200, JSON, fixture("gemini/generate_content_function_call.json")))
    answer = await gw.stub.Chat(grpc_request(tools=[t.ToolDefinition(
        name="weather", parameters_json_schema=json.dumps(WEATHER.parameters))]))
    assert [(c.name, c.arguments) for c in answer.tool_calls] == [("weather", '{"location":"Florence,Italy"}')]
    assert answer.tool_calls[0].id.startswith("call_")
    assert (answer.stop_reason, answer.raw_stop_reason) == (t.STOP_REASON_TOOL_CALLS, "STOP")
    assert (answer.usage.prompt_token_count, answer.usage.completion_token_count,
            answer.usage.total_token_count, answer.usage.reasoning_token_count) == (54, 63, 117, 48)
    assert (answer.provider, answer.model) == ("gemini", "gemini-2.5-flash")
    assert up.last(GENERATE).json()["tools"][0]["functionDeclarations"][0]["name"] == "weather"


@pytest.mark.parametrize("cut", [1, 7])
async def test_gateway_stream_reassembles_reasoning_and_tool_calls(up, gw, cut):
    up.add("POST", STREAM, Reply(200, SSE, fixture("gemini/stream_thought_then_function_call.sse"), cut_every=cut))
    chunks = [c async for c in gw.stub.StreamChat(grpc_request())]
    expected = EXPECTED["stream_thought_then_function_call.sse"]["parsed"]
    final = chunks[-1]
    assert final.final and not any(c.final for c in chunks[:-1])
    assert "".join(c.reasoning_content for c in chunks) == expected["thought_text"]
    assert "".join(c.content for c in chunks) == ""
    assert [(c.name, c.arguments) for c in final.tool_calls] == [("weather", '{"location":"Florence, Italy"}')]
    assert (final.stop_reason, final.raw_stop_reason) == (t.STOP_REASON_TOOL_CALLS, "STOP")
    assert (final.usage.prompt_token_count, final.usage.total_token_count) == (54, 130)
    assert chunks[0].provider == "gemini" and final.model == "gemini-2.5-flash"


async def test_gateway_stream_of_text(up, gw):
    up.add("POST", STREAM, Reply(200, SSE, fixture("gemini/stream_text_trailing_thought_signature.sse"), cut_every=3))
    chunks = [c async for c in gw.stub.StreamChat(grpc_request())]
    expected = EXPECTED["stream_text_trailing_thought_signature.sse"]["parsed"]
    assert "".join(c.content for c in chunks) == expected["text"]
    assert chunks[-1].stop_reason == t.STOP_REASON_END_TURN and chunks[-1].usage.total_token_count == 256


@pytest.mark.parametrize(("case", "body", "status", "headers", "exc", "code", "delay"), ERRORS,
                         ids=[e[0] for e in ERRORS])
async def test_gateway_errors_carry_status_and_reason(up, gw, case, body, status, headers, exc, code, delay):
    for path, call in ((GENERATE, gw.stub.Chat), (STREAM, lambda r: _drain(gw.stub.StreamChat(r)))):
        up.add("POST", path, error_reply(body, status, headers))
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await call(grpc_request())
        err = raised.value
        assert err.code() == code, case
        info, retry = details_of(err)
        assert info.reason == exc.reason
        assert info.metadata["provider"] == "gemini" and info.metadata["upstream_status"] == str(status)
        if delay is not None:
            assert retry is not None and retry.retry_delay.ToTimedelta().total_seconds() == delay
        assert KEY not in (err.details() or "") and KEY not in str(info.metadata)


async def _drain(call: Any) -> list[Any]:
    return [c async for c in call]


async def test_gateway_stream_failure_after_the_first_chunk_is_an_error_status(up, gw):
    error = {"error": {"code": 500, "message": "An internal error has occurred.", "status": "INTERNAL"}}
    up.add("POST", STREAM, Reply(200, SSE, sse(text_event("Hello"), error)))
    got = []
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        async for chunk in gw.stub.StreamChat(grpc_request()):
            got.append(chunk)
    assert [c.content for c in got] == ["Hello"]
    assert raised.value.code() == grpc.StatusCode.UNAVAILABLE
    assert details_of(raised.value)[0].reason == "ERROR_REASON_UPSTREAM_UNAVAILABLE"


async def test_gateway_truncated_stream_is_unavailable_not_silent(up, gw):
    recorded = fixture("gemini/stream_text.sse")
    up.add("POST", STREAM, Reply(200, SSE, recorded[: recorded.rindex(b"data: ")]))
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await _drain(gw.stub.StreamChat(grpc_request()))
    assert raised.value.code() == grpc.StatusCode.UNAVAILABLE
    assert details_of(raised.value)[0].reason == "ERROR_REASON_UPSTREAM_PROTOCOL"


async def test_gateway_embed_count_and_capabilities(up, gw):
    up.add("POST", EMBED, embed_answer(["text-3", "text-1", "text-2"]))
    embedded = await gw.stub.Embed(pb.EmbedRequest(provider="gemini", inputs=["text-3", "text-1", "text-2"]))
    assert [(e.index, e.values[0]) for e in embedded.embeddings] == [(0, 3.0), (1, 1.0), (2, 2.0)]

    up.add("POST", f"/v1beta/models/{MODEL}:countTokens", Reply(200, JSON, b'{"totalTokens": 12}'))
    counted = await gw.stub.CountTokens(pb.CountTokensRequest(provider="gemini", messages=grpc_request().messages))
    assert (counted.token_count, counted.source) == (12, pb.TOKEN_COUNT_SOURCE_PROVIDER)

    up.add("GET", f"/v1beta/models/{MODEL}", Reply(200, JSON, json.dumps(MODEL_RESOURCE).encode()))
    caps = (await gw.stub.GetCapabilities(pb.GetCapabilitiesRequest(provider="gemini"))).capabilities
    assert (caps.model, caps.context_window_tokens, caps.max_output_tokens, caps.source) == (
        MODEL, 1048576, 65536, pb.CAPABILITY_SOURCE_DISCOVERED)


async def test_gateway_capabilities_fall_back_to_the_built_in_table(up, gw):
    up.add("GET", "/v1beta/models/gemini-2.0-flash", error_reply("error_503_unavailable.json", 503, JSON))
    caps = (await gw.stub.GetCapabilities(
        pb.GetCapabilitiesRequest(provider="gemini", model="gemini-2.0-flash"))).capabilities
    assert (caps.context_window_tokens, caps.max_output_tokens, caps.source) == (
        1048576, 8192, pb.CAPABILITY_SOURCE_BUILT_IN)


async def test_gateway_deadline_closes_the_stalled_upstream(up, gw):
    up.add("POST", STREAM, Reply(200, SSE, sse(text_event("Hel")), hang=True))
    got = []
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        async for chunk in gw.stub.StreamChat(grpc_request(), timeout=1.0):
            got.append(chunk)
    assert [c.content for c in got] == ["Hel"]
    assert raised.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    await asyncio.wait_for(up.disconnected.wait(), 5)
