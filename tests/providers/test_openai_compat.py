"""The OpenAI-compatible adapter against loopback servers that answer as the vendors do.

Recorded vectors (tests/fixtures/openai, see SOURCES.md) are served as recorded and re-cut
at arbitrary byte boundaries; each test checks what Portico sent upstream and what it
made of the answer, first at the provider class and then through a real gateway.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import struct
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from harness import collect, running_gateway
from portico.v1 import llm_service_pb2 as pb
from portico.v1 import types_pb2 as t
from portico_server import errors
from portico_server.call import CallContext
from portico_server.config import ConfigError, ProviderSettings
from portico_server.domain import (
    ChatRequest,
    ContentPart,
    EmbedRequest,
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
from portico_server.providers.call_ids import portable_call_id
from portico_server.providers.openai_compat import OpenAICompatProvider, batches, parse_duration
from portico_server.vectors import unpack
from upstream import Reply, Upstream, fixture, headers_fixture

EXPECTED: dict[str, Any] = json.loads(fixture("openai/expected.json"))
KEY = "sk-test-DEADBEEF0123456789"
CUTS = [None, 1, 7, 64]
STREAM_VECTORS = [
    name for name, e in EXPECTED.items() if e["kind"] == "openai.chat.stream" and not e["parsed"]["error"]
]
CHAT_VECTORS = [name for name, e in EXPECTED.items() if e["kind"] == "openai.chat.nonstream"]

FINISH = {"stop": StopReason.END_TURN, "tool_calls": StopReason.TOOL_CALLS}


def settings(url: str, kind: str = "openai", **extra: Any) -> ProviderSettings:
    return ProviderSettings(name=kind, kind=kind, api_key=KEY, base_url=url, **extra)


@asynccontextmanager
async def provider(up: Upstream, kind: str = "openai", **extra: Any) -> AsyncIterator[OpenAICompatProvider]:
    p = registry.create(settings(f"{up.url}/v1", kind, **extra))
    assert isinstance(p, OpenAICompatProvider)
    try:
        yield p
    finally:
        await p.close()


def vector_reply(name: str, cut: int | None = None) -> Reply:
    meta = EXPECTED[name]
    headers = {"content-type": meta["content_type"]}
    status = meta["status"]
    if meta.get("headers_file"):
        status, headers = headers_fixture(meta["headers_file"])
    return Reply(status, headers, fixture(name), cut_every=cut)


def user(text: str = "hi") -> Message:
    return Message(role=Role.USER, content=text)



def check_usage(usage: Any, expected: dict[str, Any]) -> None:
    assert usage is not None
    assert usage.prompt_tokens == expected["prompt_tokens"]
    assert usage.completion_tokens == expected["completion_tokens"]
    assert usage.total_tokens == expected["total_tokens"]
    cached = (expected.get("prompt_tokens_details") or {}).get("cached_tokens", 0)
    assert usage.cache_read_tokens == cached
    reasoning = (expected.get("completion_tokens_details") or {}).get("reasoning_tokens", 0)
    assert usage.reasoning_tokens == reasoning


# -- streaming vectors, as recorded and re-cut ---------------------------------------------


@pytest.mark.parametrize("cut", CUTS)
@pytest.mark.parametrize("name", STREAM_VECTORS)
async def test_stream_vector_is_reassembled_exactly(name: str, cut: int | None) -> None:
    want = EXPECTED[name]["parsed"]
    async with Upstream() as up, provider(up) as p:
        up.add("POST", "/v1/chat/completions", vector_reply(name, cut))
        deltas, final = await collect(p.stream(ChatRequest(model="m", messages=[user()])))

    assert "".join(c.content for c in deltas) == want["text"]
    assert "".join(c.reasoning_content for c in deltas) == (want["reasoning"] or "")
    # Tool calls: complete JSON, in order, with the recorded ids (made portable where
    # another provider would refuse them, as Groq's "functions.add:0").
    assert [(c.id, c.name, c.arguments) for c in final.tool_calls] == [
        (portable_call_id(c["id"]), c["name"], c["arguments"]) for c in want["tool_calls"]
    ]
    assert all(re.fullmatch(r"[a-zA-Z0-9_-]{1,40}", c.id) for c in final.tool_calls)
    for call in final.tool_calls:
        json.loads(call.arguments)
    # The deltas alone rebuild the same calls; id and name come once, on the first fragment.
    fragments = [d for c in deltas for d in c.tool_call_deltas]
    for i, call in enumerate(want["tool_calls"]):
        mine = [d for d in fragments if d.index == i]
        assert mine and mine[0].id == portable_call_id(call["id"]) and mine[0].name == call["name"]
        assert all(not d.id and not d.name for d in mine[1:])
        assert "".join(d.arguments_delta for d in mine) == call["arguments"]
    assert final.raw_stop_reason == want["finish_reasons"][-1]
    assert final.stop_reason is FINISH[want["finish_reasons"][-1]]
    check_usage(final.usage, want["usage"])
    assert final.provider == "openai" and final.model
    # The first chunk emitted names model and provider.
    assert deltas and deltas[0].model and deltas[0].provider == "openai"


@pytest.mark.parametrize("cut", [1, 7])
async def test_crlf_line_ends_split_between_reads_do_not_matter(cut: int) -> None:
    name = "openai/compat_deepseek_stream_reasoning_content.sse"
    want = EXPECTED[name]["parsed"]
    body = fixture(name).replace(b"\n", b"\r\n")
    async with Upstream() as up, provider(up) as p:
        up.add("POST", "/v1/chat/completions", Reply(200, {"content-type": "text/event-stream"}, body, cut_every=cut))
        deltas, final = await collect(p.stream(ChatRequest(model="m", messages=[user()])))
    assert "".join(c.content for c in deltas) == want["text"]
    assert "".join(c.reasoning_content for c in deltas) == want["reasoning"]
    check_usage(final.usage, want["usage"])


@pytest.mark.parametrize("name", CHAT_VECTORS)
async def test_chat_vector_is_converted(name: str) -> None:
    want = EXPECTED[name]["parsed"]
    async with Upstream() as up, provider(up) as p:
        up.add("POST", "/v1/chat/completions", vector_reply(name))
        result = await p.chat(ChatRequest(model="gpt-4o", messages=[user()]))
    assert result.content == (want["text"] or "")
    assert [(c.id, c.name, c.arguments) for c in result.tool_calls] == [
        (c["id"], c["name"], c["arguments"]) for c in want["tool_calls"]
    ]
    assert result.raw_stop_reason == want["finish_reason"]
    assert result.stop_reason is FINISH[want["finish_reason"]]
    assert result.model == want["model"]
    assert result.metadata["id"] == want["id"]
    check_usage(result.usage, want["usage"])


# -- what Portico sends ----------------------------------------------------------------------

WEATHER = ToolDefinition(
    name="get_weather",
    description="Weather for a city",
    parameters={
        "type": "object",
        "properties": {"city": {"type": "string"}, "days": {"type": "integer", "maximum": 7}},
        "required": ["city"],
    },
)


async def test_stream_request_carries_auth_usage_option_tools_and_passthrough() -> None:
    request = ChatRequest(
        model="gpt-4o",
        messages=[
            Message(role=Role.SYSTEM, content="be brief"),
            Message(role=Role.USER, content="weather?", name="ana"),
            Message(
                role=Role.ASSISTANT, tool_calls=[ToolCall(id="call_1", name="get_weather", arguments='{"city":"Oslo"}')]
            ),
            Message(role=Role.TOOL, tool_call_id="call_1", content="sunny"),
            Message(
                role=Role.USER,
                parts=[
                    ContentPart(text="and this?"),
                    ContentPart(media=MediaPart(data=b"\x89PNG", mime_type="image/png", detail="low")),
                ],
            ),
        ],
        temperature=0.2,
        top_p=0.9,
        max_tokens=64,
        stop=["END"],
        seed=7,
        tools=[WEATHER],
        tool_choice=ToolChoice(mode=ToolChoiceMode.TOOL, tool_name="get_weather"),
        response_format=ResponseFormat(
            type=ResponseFormatType.JSON_SCHEMA, name="answer", schema={"type": "object"}, strict=True
        ),
        passthrough={"top_k": 40, "temperature": 0.3},
    )
    async with Upstream() as up, provider(up) as p:
        up.add("POST", "/v1/chat/completions", vector_reply("openai/stream_text_short.sse"))
        await collect(p.stream(request))
        sent = up.last("/v1/chat/completions")
    assert sent.headers["authorization"] == f"Bearer {KEY}"
    assert sent.headers["accept"] == "text/event-stream"
    body = sent.json()
    assert body["model"] == "gpt-4o"
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert body["messages"] == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "weather?", "name": "ana"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "and this?"},
                {
                    "type": "image_url",
                    "image_url": {
                        "url": "data:image/png;base64," + base64.b64encode(b"\x89PNG").decode(),
                        "detail": "low",
                    },
                },
            ],
        },
    ]
    assert body["top_p"] == 0.9 and body["max_tokens"] == 64 and body["stop"] == ["END"] and body["seed"] == 7
    assert body["tools"] == [
        {
            "type": "function",
            "function": {"name": "get_weather", "description": "Weather for a city", "parameters": WEATHER.parameters},
        }
    ]
    # Key order of the schema survives (it changes what models generate).
    assert list(body["tools"][0]["function"]["parameters"]["properties"]) == ["city", "days"]
    assert body["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert body["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "answer", "schema": {"type": "object"}, "strict": True},
    }
    assert body["top_k"] == 40 and body["temperature"] == 0.3  # passthrough wins


async def test_reasoning_models_get_max_completion_tokens() -> None:
    async with Upstream() as up, provider(up) as p:
        up.always("POST", "/v1/chat/completions", vector_reply("openai/chat_text.json"))
        await p.chat(ChatRequest(model="o4-mini", messages=[user()], max_tokens=100))
        assert up.last().json()["max_completion_tokens"] == 100 and "max_tokens" not in up.last().json()
        await p.chat(ChatRequest(model="gpt-4o", messages=[user()], max_tokens=100))
        assert up.last().json()["max_tokens"] == 100


async def test_mistral_preset_sends_only_fields_mistral_knows() -> None:
    async with Upstream() as up, provider(up, "mistral") as p:
        up.add("POST", "/v1/chat/completions", vector_reply("openai/stream_text_short.sse", 7))
        request = ChatRequest(
            model="mistral-small-latest",
            messages=[Message(role=Role.USER, content="hi", name="ana")],
            seed=3,
            tools=[WEATHER],
            tool_choice=ToolChoice(mode=ToolChoiceMode.REQUIRED),
        )
        await collect(p.stream(request))
        body = up.last().json()
    assert "stream_options" not in body
    assert body["random_seed"] == 3 and "seed" not in body
    assert body["tool_choice"] == "any"
    assert body["messages"] == [{"role": "user", "content": "hi"}]


async def test_stream_usage_option_overrides_the_preset() -> None:
    async with Upstream() as up, provider(up, "openai", options={"stream_usage": False}) as p:
        up.add("POST", "/v1/chat/completions", vector_reply("openai/stream_text_short.sse"))
        await collect(p.stream(ChatRequest(model="gpt-4o", messages=[user()])))
        assert "stream_options" not in up.last().json()


async def test_openai_compat_kind_needs_a_base_url() -> None:
    with pytest.raises(ConfigError, match="needs base_url"):
        registry.create(ProviderSettings(name="local", kind="openai_compat"))


async def test_presets_fill_default_models_and_send_their_own_headers() -> None:
    async with Upstream() as up:
        p = registry.create(
            ProviderSettings(
                name="g",
                kind="groq",
                api_key=KEY,
                base_url=up.url,
                options={"organization": "org-1", "project": "proj-1"},
            )
        )
        try:
            assert p.default_model() == "llama-3.3-70b-versatile"
            assert not p.supports_embeddings()
            up.add("POST", "/chat/completions", vector_reply("openai/chat_text.json"))
            await p.chat(ChatRequest(model=p.default_model(), messages=[user()]))
            sent = up.last("/chat/completions")
            assert sent.headers["openai-organization"] == "org-1" and sent.headers["openai-project"] == "proj-1"
            with pytest.raises(errors.CapabilityUnsupported):
                await p.embed(EmbedRequest(model="x", inputs=["a"]))
        finally:
            await p.close()


# -- quirks of particular servers --------------------------------------------------------------


def sse(*events: Any, done: bool = True) -> bytes:
    out = b"".join(b"data: " + json.dumps(e).encode() + b"\n\n" for e in events)
    return out + (b"data: [DONE]\n\n" if done else b"")


def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "object": "chat.completion.chunk",
        "model": "m",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        **extra,
    }


async def stream_body(
    body: bytes, kind: str = "openai", cut: int | None = None
) -> tuple[list[StreamChunk], StreamChunk]:
    async with Upstream() as up, provider(up, kind) as p:
        up.add("POST", "/v1/chat/completions", Reply(200, {"content-type": "text/event-stream"}, body, cut_every=cut))
        return await collect(p.stream(ChatRequest(model="m", messages=[user()], stop=["###"])))


async def test_calls_that_all_say_index_0_but_differ_in_id_are_separate_calls() -> None:
    body = sse(
        chunk({"tool_calls": [{"index": 0, "id": "a", "function": {"name": "add", "arguments": '{"x":'}}]}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": "1}"}}]}),
        chunk({"tool_calls": [{"index": 0, "id": "b", "function": {"name": "mul", "arguments": "{}"}}]}),
        chunk({}, "tool_calls"),
    )
    _, final = await stream_body(body)
    assert [(c.id, c.name, c.arguments) for c in final.tool_calls] == [("a", "add", '{"x":1}'), ("b", "mul", "{}")]


async def test_id_and_name_repeated_on_every_fragment_go_out_once() -> None:
    body = sse(
        chunk(
            {"tool_calls": [{"index": 0, "id": "a", "type": "function", "function": {"name": "add", "arguments": "{"}}]}
        ),
        chunk(
            {"tool_calls": [{"index": 0, "id": "a", "type": "function", "function": {"name": "add", "arguments": "}"}}]}
        ),
        chunk({}, "tool_calls"),
    )
    deltas, final = await stream_body(body, cut=5)
    fragments = [d for c in deltas for d in c.tool_call_deltas]
    assert [(d.id, d.name, d.arguments_delta) for d in fragments] == [("a", "add", "{"), ("", "", "}")]
    assert [(c.id, c.name, c.arguments) for c in final.tool_calls] == [("a", "add", "{}")]


async def test_openrouter_reasoning_field_and_vllm_stop_string() -> None:
    body = sse(
        chunk({"reasoning": "thinking..."}),
        chunk({"content": "done"}),
        {
            "object": "chat.completion.chunk",
            "choices": [{"index": 0, "delta": {}, "finish_reason": "stop", "stop_reason": "###"}],
        },
    )
    deltas, final = await stream_body(body, cut=3)
    assert "".join(c.reasoning_content for c in deltas) == "thinking..."
    assert final.stop_reason is StopReason.STOP_SEQUENCE and final.raw_stop_reason == "stop"
    # The server reported none: the gateway's estimate, marked as such.
    assert final.usage is not None and final.usage.estimated


async def test_groq_usage_only_in_x_groq_is_read() -> None:
    body = sse(
        chunk({"content": "hi"}),
        chunk({}, "stop", x_groq={"usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}}),
    )
    _, final = await stream_body(body, "groq")
    assert final.usage is not None and final.usage.total_tokens == 4


async def test_refusal_is_the_answer_text_with_stop_reason_refusal() -> None:
    body = sse(chunk({"refusal": "I can't "}), chunk({"refusal": "help with that."}), chunk({}, "stop"))
    deltas, final = await stream_body(body)
    assert "".join(c.content for c in deltas) == "I can't help with that."
    assert final.stop_reason is StopReason.REFUSAL
    async with Upstream() as up, provider(up) as p:
        up.add(
            "POST",
            "/v1/chat/completions",
            Reply(
                200,
                {"content-type": "application/json"},
                json.dumps(
                    {
                        "choices": [
                            {
                                "index": 0,
                                "message": {"role": "assistant", "content": None, "refusal": "No."},
                                "finish_reason": "stop",
                            }
                        ]
                    }
                ).encode(),
            ),
        )
        result = await p.chat(ChatRequest(model="m", messages=[user()]))
    assert result.content == "No." and result.stop_reason is StopReason.REFUSAL


async def test_perplexity_citations_and_extra_body() -> None:
    answer = {
        "id": "p1",
        "model": "sonar",
        "citations": ["https://a.example", "https://b.example"],
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Paris [1]."}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8},
    }
    async with (
        Upstream() as up,
        provider(up, "perplexity", options={"extra_body": {"search_recency_filter": "week"}}) as p,
    ):
        up.add(
            "POST",
            "/v1/chat/completions",
            Reply(200, {"content-type": "application/json"}, json.dumps(answer).encode()),
        )
        result = await p.chat(
            ChatRequest(model="sonar", messages=[user()], passthrough={"search_recency_filter": "day"})
        )
        assert up.last().json()["search_recency_filter"] == "day"  # the caller's passthrough beats extra_body
    assert json.loads(result.metadata["citations"]) == answer["citations"]
    assert result.content == "Paris [1]." and result.metadata["id"] == "p1"


async def test_length_and_content_filter_finish_reasons() -> None:
    _, final = await stream_body(sse(chunk({"content": "a"}), chunk({}, "length")))
    assert final.stop_reason is StopReason.MAX_TOKENS
    _, final = await stream_body(sse(chunk({"content": "a"}), chunk({}, "content_filter")))
    assert final.stop_reason is StopReason.CONTENT_FILTER
    _, final = await stream_body(sse(chunk({"content": "a"}), chunk({}, "something_new")))
    assert final.stop_reason is StopReason.OTHER and final.raw_stop_reason == "something_new"


async def test_a_server_that_ignores_stream_true_still_streams_the_answer() -> None:
    async with Upstream() as up, provider(up) as p:
        up.add("POST", "/v1/chat/completions", vector_reply("openai/chat_tool_call.json"))
        deltas, final = await collect(p.stream(ChatRequest(model="gpt-4o", messages=[user()])))
    assert final.tool_calls[0].arguments == '{"location":"Florence, Italy"}'
    assert deltas[0].tool_call_deltas[0].name == "weather"
    assert final.stop_reason is StopReason.TOOL_CALLS


# -- errors ---------------------------------------------------------------------------------

CONTEXT_400 = json.dumps(
    {
        "error": {
            "message": "This model's maximum context length is 128000 tokens. However, your messages resulted in "
            "130532 tokens. Please reduce the length of the messages.",
            "type": "invalid_request_error",
            "param": "messages",
            "code": "context_length_exceeded",
        }
    }
).encode()
BAD_400 = json.dumps(
    {
        "error": {
            "message": "Invalid value for 'temperature': must be <= 2.",
            "type": "invalid_request_error",
            "param": "temperature",
            "code": None,
        }
    }
).encode()
SERVER_500 = json.dumps(
    {
        "error": {
            "message": "The server had an error while processing your request. Sorry about that!",
            "type": "server_error",
            "param": None,
            "code": None,
        }
    }
).encode()
FORBIDDEN_403 = json.dumps(
    {
        "error": {
            "message": "Country, region, or territory not supported",
            "type": "request_forbidden",
            "param": None,
            "code": "unsupported_country_region_territory",
        }
    }
).encode()
VALIDATION_422 = json.dumps(
    {
        "detail": [
            {"type": "extra_forbidden", "loc": ["body", "foo"], "msg": "Extra inputs are not permitted", "input": 1}
        ]
    }
).encode()
JSON_CT = {"content-type": "application/json; charset=utf-8"}


def fixture_reply(name: str) -> Reply:
    status, headers = headers_fixture(name.replace(".json", ".headers"))
    return Reply(status, headers, fixture(name))


ERROR_CASES: list[tuple[str, Reply, type[errors.UpstreamError], float | None]] = [
    ("401 invalid key", fixture_reply("openai/error_401_invalid_api_key.json"), errors.UpstreamAuth, None),
    ("403 forbidden", Reply(403, JSON_CT, FORBIDDEN_403), errors.UpstreamAuth, None),
    ("404 model", fixture_reply("openai/error_404_model_not_found.json"), errors.UpstreamModelNotFound, None),
    ("429 rate limit", fixture_reply("openai/error_429_rate_limit.json"), errors.UpstreamRateLimited, 2.0),
    ("429 quota", fixture_reply("openai/error_429_insufficient_quota.json"), errors.UpstreamQuotaExceeded, None),
    (
        "429 reset headers only",
        Reply(
            429,
            {
                **JSON_CT,
                "x-ratelimit-remaining-requests": "0",
                "x-ratelimit-reset-requests": "1m30s",
                "x-ratelimit-remaining-tokens": "5",
                "x-ratelimit-reset-tokens": "120ms",
            },
            b'{"error":{"message":"Rate limit reached for requests","type":"requests","code":"rate_limit_exceeded"}}',
        ),
        errors.UpstreamRateLimited,
        90.0,
    ),
    ("400 context", Reply(400, JSON_CT, CONTEXT_400), errors.ContextLengthExceeded, None),
    ("400 bad", Reply(400, JSON_CT, BAD_400), errors.UpstreamBadRequest, None),
    (
        "413 too large",
        Reply(413, {"content-type": "text/html"}, b"<html>413 Request Entity Too Large</html>"),
        errors.UpstreamBadRequest,
        None,
    ),
    ("422 validation", Reply(422, JSON_CT, VALIDATION_422), errors.UpstreamBadRequest, None),
    ("500", Reply(500, JSON_CT, SERVER_500), errors.UpstreamUnavailable, None),
    (
        "502 html",
        Reply(502, {"content-type": "text/html"}, b"<html><body>Bad gateway</body></html>"),
        errors.UpstreamUnavailable,
        None,
    ),
    ("503 retry-after", Reply(503, {**JSON_CT, "retry-after": "7"}, SERVER_500), errors.UpstreamUnavailable, 7.0),
    (
        "529 overloaded",
        Reply(529, JSON_CT, b'{"error":{"message":"Overloaded","type":"overloaded_error"}}'),
        errors.UpstreamOverloaded,
        None,
    ),
]


@pytest.mark.parametrize("streaming", [False, True], ids=["chat", "stream"])
@pytest.mark.parametrize(("case", "reply", "cls", "retry"), ERROR_CASES, ids=[c[0] for c in ERROR_CASES])
async def test_error_bodies_map_to_the_error_table(
    case: str, reply: Reply, cls: type[errors.UpstreamError], retry: float | None, streaming: bool
) -> None:
    async with Upstream() as up, provider(up) as p:
        up.add("POST", "/v1/chat/completions", reply)
        request = ChatRequest(model="gpt-4o", messages=[user()])
        with pytest.raises(errors.UpstreamError) as info:
            if streaming:
                await collect(p.stream(request))
            else:
                await p.chat(request)
    err = info.value
    assert type(err) is cls
    assert err.metadata["upstream_status"] == str(reply.status)
    assert err.retry_after == retry
    assert KEY not in err.message and "DEADBEEF" not in err.message
    assert all(KEY not in v for v in err.metadata.values())
    assert len(err.message) < 700


async def test_upstream_messages_are_kept_where_safe() -> None:
    async with Upstream() as up, provider(up) as p:
        up.add("POST", "/v1/chat/completions", Reply(400, JSON_CT, CONTEXT_400))
        up.add("POST", "/v1/chat/completions", Reply(422, JSON_CT, VALIDATION_422))
        up.add("POST", "/v1/chat/completions", fixture_reply("openai/error_401_invalid_api_key.json"))
        request = ChatRequest(model="gpt-4o", messages=[user()])
        with pytest.raises(errors.ContextLengthExceeded, match="maximum context length is 128000"):
            await p.chat(request)
        with pytest.raises(errors.UpstreamBadRequest, match=r"body\.foo: Extra inputs are not permitted"):
            await p.chat(request)
        with pytest.raises(errors.UpstreamAuth) as info:
            await p.chat(request)
    # OpenAI's 401 quotes (part of) the key it got: never passed on.
    assert "Incorrect API key provided: [redacted]" in info.value.message
    assert info.value.metadata["upstream_code"] == "invalid_api_key"
    assert info.value.metadata["upstream_request_id"] == "req_805398c06fec4ad79e181dca89d1b6f6"


async def test_rate_limit_headers_travel_in_metadata() -> None:
    async with Upstream() as up, provider(up) as p:
        up.add("POST", "/v1/chat/completions", fixture_reply("openai/error_429_rate_limit.json"))
        with pytest.raises(errors.UpstreamRateLimited) as info:
            await p.chat(ChatRequest(model="gpt-4o", messages=[user()]))
    assert info.value.metadata["ratelimit_remaining_tokens"] == "392"
    assert info.value.metadata["upstream_code"] == "rate_limit_exceeded"


@pytest.mark.parametrize("cut", CUTS)
async def test_error_event_mid_stream_raises_after_the_text_so_far(cut: int | None) -> None:
    async with Upstream() as up, provider(up) as p:
        up.add("POST", "/v1/chat/completions", vector_reply("openai/stream_midstream_error.sse", cut))
        seen: list[StreamChunk] = []
        with pytest.raises(errors.UpstreamUnavailable, match="The server had an error"):
            async for c in p.stream(ChatRequest(model="gpt-4o", messages=[user()])):
                seen.append(c)
    assert "".join(c.content for c in seen) == "The sum"
    assert not any(c.is_final for c in seen)


@pytest.mark.parametrize("keep", [0, 1, 300, 1200, 1835])
async def test_a_stream_cut_before_done_is_a_protocol_error(keep: int) -> None:
    body = fixture("openai/stream_text_short.sse")[:keep]
    async with Upstream() as up, provider(up) as p:
        up.add("POST", "/v1/chat/completions", Reply(200, {"content-type": "text/event-stream"}, body, cut_every=50))
        with pytest.raises(errors.UpstreamProtocol, match=r"before \[DONE\]"):
            await collect(p.stream(ChatRequest(model="gpt-4o", messages=[user()])))


async def test_malformed_json_in_a_stream_is_a_protocol_error() -> None:
    body = b'data: {"choices":[{"index":0,"delta":{"content":"a"}}]}\n\ndata: {"choices":[{"ind\n\ndata: [DONE]\n\n'
    with pytest.raises(errors.UpstreamProtocol, match="not JSON"):
        await stream_body(body)


async def test_non_json_success_body_is_a_protocol_error() -> None:
    async with Upstream() as up, provider(up) as p:
        up.add("POST", "/v1/chat/completions", Reply(200, {"content-type": "application/json"}, b'{"choices": [tr'))
        with pytest.raises(errors.UpstreamProtocol):
            await p.chat(ChatRequest(model="gpt-4o", messages=[user()]))


@pytest.mark.parametrize("streaming", [False, True], ids=["chat", "stream"])
async def test_connection_reset_mid_body_is_a_connection_error(streaming: bool) -> None:
    name = "openai/stream_text_usage.sse" if streaming else "openai/chat_text.json"
    async with Upstream() as up, provider(up) as p:
        reply = vector_reply(name)
        reply.reset_after = 400
        reply.cut_every = 100
        up.add("POST", "/v1/chat/completions", reply)
        request = ChatRequest(model="gpt-4o", messages=[user()])
        with pytest.raises(errors.UpstreamConnection):
            if streaming:
                await collect(p.stream(request))
            else:
                await p.chat(request)


async def test_a_stalled_stream_times_out_within_the_callers_deadline() -> None:
    body = fixture("openai/stream_text_usage.sse")
    async with Upstream() as up, provider(up) as p:
        up.add("POST", "/v1/chat/completions", Reply(200, {"content-type": "text/event-stream"}, body, hang_after=900))
        started = asyncio.get_running_loop().time()
        with pytest.raises(errors.UpstreamTimeout):
            await collect(p.stream(ChatRequest(model="gpt-4o", messages=[user()]), CallContext.with_timeout(0.5)))
        assert asyncio.get_running_loop().time() - started < 5


async def test_unreachable_provider_is_a_connection_error() -> None:
    async with Upstream() as up:
        url = up.url
    p = registry.create(settings(url))
    try:
        with pytest.raises(errors.UpstreamConnection):
            await p.chat(ChatRequest(model="gpt-4o", messages=[user()]))
    finally:
        await p.close()


async def test_a_request_over_the_size_limit_is_refused_unsent() -> None:
    async with Upstream() as up, provider(up, max_request_bytes=1000) as p:
        with pytest.raises(errors.RequestTooLarge) as info:
            await collect(p.stream(ChatRequest(model="gpt-4o", messages=[user("x" * 2000)])))
        assert up.received == []
    assert info.value.metadata["limit"] == "max_request_bytes=1000"


async def test_closing_the_stream_closes_the_upstream_response_at_once() -> None:
    body = fixture("openai/stream_text_usage.sse")
    async with Upstream() as up, provider(up) as p:
        up.add("POST", "/v1/chat/completions", Reply(200, {"content-type": "text/event-stream"}, body, hang_after=900))
        stream = p.stream(ChatRequest(model="gpt-4o", messages=[user()]))
        first = await anext(stream)
        assert first.content
        await stream.aclose()
        await asyncio.wait_for(up.disconnected.wait(), 2)


# -- embeddings -----------------------------------------------------------------------------


async def test_float_embeddings_keep_input_order() -> None:
    want = EXPECTED["openai/embeddings_float.json"]["parsed"]
    async with Upstream() as up, provider(up, "together") as p:
        up.add("POST", "/v1/embeddings", vector_reply("openai/embeddings_float.json"))
        result = await p.embed(EmbedRequest(model="text-embedding-3-small", inputs=["a", "b"], dimensions=5))
        body = up.last("/v1/embeddings").json()
    assert body == {"model": "text-embedding-3-small", "input": ["a", "b"], "dimensions": 5}
    assert len(result.vectors) == want["vectors"]
    assert unpack(result.vectors[0]) == pytest.approx(want["first"])
    assert result.usage.prompt_tokens == 12 and result.usage.total_tokens == 12


async def test_base64_embeddings_are_decoded() -> None:
    want = EXPECTED["openai/embeddings_base64.json"]["parsed"]
    async with Upstream() as up, provider(up) as p:
        up.add("POST", "/v1/embeddings", vector_reply("openai/embeddings_base64.json", 64))
        result = await p.embed(EmbedRequest(model="text-embedding-3-small", inputs=["This is an embedding test."]))
        assert up.last().json()["encoding_format"] == "base64"
    [packed] = result.vectors
    vector = unpack(packed)
    assert len(vector) == want["dims"]
    assert vector[:5] == pytest.approx(want["first5"])
    assert vector[-1] == pytest.approx(want["last"])
    assert result.model == want["model"]


def embedding_reply(inputs: list[str], reverse: bool) -> Reply:
    data = [{"object": "embedding", "index": i, "embedding": [float(len(s)), float(i)]} for i, s in enumerate(inputs)]
    if reverse:
        data.reverse()
    body = {
        "object": "list",
        "data": data,
        "model": "e",
        "usage": {"prompt_tokens": len(inputs), "total_tokens": len(inputs)},
    }
    return Reply(200, {"content-type": "application/json"}, json.dumps(body).encode())


async def answer_each_batch(received: Any) -> Reply:
    return embedding_reply(received.json()["input"], reverse=True)


async def test_embeddings_are_split_into_batches_in_order() -> None:
    inputs = ["a", "bb", "ccc", "dddd", "eeeee"]
    async with Upstream() as up, provider(up, "vllm", options={"embedding_batch_size": 2}) as p:
        up.respond("POST", "/v1/embeddings", answer_each_batch)
        result = await p.embed(EmbedRequest(model="e", inputs=inputs))
        sent = [r.json()["input"] for r in up.received]
    assert sorted(sent) == [["a", "bb"], ["ccc", "dddd"], ["eeeee"]]
    assert [unpack(v)[0] for v in result.vectors] == [1.0, 2.0, 3.0, 4.0, 5.0]
    assert result.usage.prompt_tokens == 5


async def test_embedding_batches_go_out_concurrently_within_the_bound() -> None:
    # The upstream holds every request until four are in flight at once: a provider that
    # sent its batches one by one would never get an answer.
    inputs = ["x" * n for n in range(1, 13)]
    in_flight = 0
    most = 0
    four_waiting = asyncio.Event()

    async def answer_when_four_wait(received: Any) -> Reply:
        nonlocal in_flight, most
        in_flight += 1
        most = max(most, in_flight)
        if in_flight >= 4:
            four_waiting.set()
        await asyncio.wait_for(four_waiting.wait(), 10)
        in_flight -= 1
        return embedding_reply(received.json()["input"], reverse=False)

    async with Upstream() as up, provider(up, "vllm", options={"embedding_batch_size": 1,
                                                                "embedding_concurrency": 4}) as p:
        up.respond("POST", "/v1/embeddings", answer_when_four_wait)
        result = await p.embed(EmbedRequest(model="e", inputs=inputs))
    assert most == 4
    assert [unpack(v)[0] for v in result.vectors] == [float(n) for n in range(1, 13)]  # input order
    assert len(up.received) == 12 and result.usage.prompt_tokens == 12


async def test_a_failed_batch_fails_the_call_and_stops_the_others() -> None:
    async with Upstream() as up, provider(up, "vllm", options={"embedding_batch_size": 1}) as p:
        up.add("POST", "/v1/embeddings", json_reply({"error": {"message": "bad input"}}, 400))
        up.add("POST", "/v1/embeddings", Reply(200, {"content-type": "application/json"}, b"{", hang=True))
        with pytest.raises(errors.UpstreamBadRequest):
            await asyncio.wait_for(p.embed(EmbedRequest(model="e", inputs=["a", "b"])), 10)
        await asyncio.wait_for(up.disconnected.wait(), 5)  # the hanging batch was abandoned


@pytest.mark.parametrize(("kind", "base64"), [("openai", True), ("mistral", True), ("vllm", True),
                                              ("together", False), ("dashscope", False), ("lmstudio", False)])
async def test_base64_vectors_are_asked_for_where_the_vendor_documents_them(kind: str, base64: bool) -> None:
    async with Upstream() as up, provider(up, kind) as p:
        up.respond("POST", "/v1/embeddings", answer_each_batch)
        result = await p.embed(EmbedRequest(model="e", inputs=["abc"]))
        body = up.last("/v1/embeddings").json()
    assert ("encoding_format" in body) is base64 and body.get("encoding_format", "base64") == "base64"
    assert unpack(result.vectors[0]) == [3.0, 0.0]


def test_batches_respect_a_token_budget() -> None:
    assert list(batches(["x" * 30, "y" * 30, "z"], max_items=10, max_tokens=15)) == [["x" * 30], ["y" * 30, "z"]]
    assert list(batches(["a"] * 5, max_items=2)) == [["a", "a"], ["a", "a"], ["a"]]


async def test_fewer_vectors_than_inputs_is_a_protocol_error() -> None:
    async with Upstream() as up, provider(up) as p:
        up.add("POST", "/v1/embeddings", vector_reply("openai/embeddings_float.json"))
        with pytest.raises(errors.UpstreamProtocol, match="2 embeddings for 3 inputs"):
            await p.embed(EmbedRequest(model="text-embedding-3-small", inputs=["a", "b", "c"]))


# -- capabilities, counting, health ------------------------------------------------------------


def json_reply(data: Any, status: int = 200) -> Reply:
    return Reply(status, {"content-type": "application/json"}, json.dumps(data).encode())


async def test_vllm_max_model_len_is_discovered() -> None:
    listing = {
        "object": "list",
        "data": [
            {
                "id": "Qwen/Qwen2.5-7B-Instruct",
                "object": "model",
                "owned_by": "vllm",
                "root": "Qwen/Qwen2.5-7B-Instruct",
                "max_model_len": 32768,
            }
        ],
    }
    async with Upstream() as up, provider(up, "vllm") as p:
        up.add("GET", "/v1/models", json_reply(listing))
        caps = await p.discover_capabilities("Qwen/Qwen2.5-7B-Instruct")
        up.add("GET", "/v1/models", json_reply(listing))
        assert await p.discover_capabilities("some-other-model") is None
    assert caps is not None and caps.source is Source.PROVIDER
    assert caps.context_window == 32768 and caps.supports_streaming


async def test_openrouter_listing_is_discovered_with_its_flags() -> None:
    listing = {
        "data": [
            {
                "id": "openai/gpt-4o-mini",
                "context_length": 128000,
                "architecture": {"input_modalities": ["text", "image"]},
                "top_provider": {"max_completion_tokens": 16384},
                "supported_parameters": ["tools", "tool_choice", "response_format", "structured_outputs"],
            }
        ]
    }
    async with Upstream() as up, provider(up, "openrouter") as p:
        up.add("GET", "/v1/models", json_reply(listing))
        caps = await p.discover_capabilities("openai/gpt-4o-mini")
    assert caps is not None
    assert (caps.context_window, caps.max_output_tokens) == (128000, 16384)
    assert caps.supports_tools and caps.supports_vision and caps.supports_response_format


async def test_a_listing_without_figures_leaves_it_to_the_table() -> None:
    async with Upstream() as up, provider(up) as p:
        up.add("GET", "/v1/models", json_reply({"object": "list", "data": [{"id": "gpt-4o", "object": "model"}]}))
        assert await p.discover_capabilities("gpt-4o") is None
        caps = p.known_capabilities("gpt-4o-2024-08-06")
    assert caps is not None and caps.source is Source.BUILT_IN
    assert caps.context_window == 128000 and caps.supports_vision and caps.supports_tools
    assert p.known_capabilities("openai/gpt-4o-mini") is not None
    assert p.known_capabilities("text-embedding-3-small").supports_embeddings  # type: ignore[union-attr]
    assert p.known_capabilities("no-such-model") is None


async def test_openai_counts_tokens_with_its_endpoint() -> None:
    async with Upstream() as up, provider(up) as p:
        up.add(
            "POST", "/v1/responses/input_tokens", json_reply({"object": "response.input_tokens", "input_tokens": 42})
        )
        request = ChatRequest(
            model="gpt-4o",
            tools=[WEATHER],
            messages=[
                Message(role=Role.SYSTEM, content="be brief"),
                user("weather in Oslo?"),
                Message(role=Role.ASSISTANT, tool_calls=[ToolCall(id="c1", name="get_weather", arguments="{}")]),
                Message(role=Role.TOOL, tool_call_id="c1", content="sunny"),
            ],
        )
        count = await p.count_tokens(request)
        body = up.last().json()
    assert count.tokens == 42 and count.source is Source.PROVIDER
    assert body["model"] == "gpt-4o"
    assert body["input"] == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "weather in Oslo?"},
        {"type": "function_call", "call_id": "c1", "name": "get_weather", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "c1", "output": "sunny"},
    ]
    assert body["tools"][0]["name"] == "get_weather"


async def test_vllm_counts_tokens_at_the_server_root_and_falls_back_when_absent() -> None:
    async with Upstream() as up, provider(up, "vllm") as p:
        up.add("POST", "/tokenize", json_reply({"count": 17, "max_model_len": 32768, "tokens": list(range(17))}))
        count = await p.count_tokens(ChatRequest(model="q", messages=[user("hello")]))
        assert count.tokens == 17 and count.source is Source.PROVIDER
        assert up.last().json()["messages"] == [{"role": "user", "content": "hello"}]
        # No /tokenize here (404): an estimate rather than a failure.
        count = await p.count_tokens(ChatRequest(model="q", messages=[user("hello")]))
        assert count.source is Source.ESTIMATE


async def test_presets_without_a_counter_estimate_without_calling_out() -> None:
    async with Upstream() as up, provider(up, "groq") as p:
        count = await p.count_tokens(ChatRequest(model="q", messages=[user("hello there")]))
        assert count.source is Source.ESTIMATE and count.tokens > 0
        assert up.received == []


async def test_health_probe_lists_models_and_fails_on_bad_credentials() -> None:
    async with Upstream() as up, provider(up) as p:
        up.add("GET", "/v1/models", json_reply({"data": []}))
        up.add("GET", "/v1/models", fixture_reply("openai/error_401_invalid_api_key.json"))
        assert await p.health_check() is True
        assert await p.health_check() is False
        assert up.last().headers["authorization"] == f"Bearer {KEY}"


# -- environment ------------------------------------------------------------------------------


def test_environment_adds_one_provider_per_key_and_never_local_servers() -> None:
    env = {
        "OPENAI_API_KEY": "sk-a",
        "GROQ_API_KEY": "gsk-b",
        "PPLX_API_KEY": "p",
        "OPENAI_ORG_ID": "org-9",
        "VLLM_API_KEY": "v",
        "UNRELATED": "x",
    }
    found = {p.name: p for p in registry.default_providers(env)}
    assert {"openai", "groq", "perplexity"} <= set(found)
    assert not {"vllm", "lmstudio", "llamacpp", "mlx", "ollama_openai", "openai_compat"} & set(found)
    openai = found["openai"]
    assert openai.kind == "openai" and openai.default_model == "gpt-4o-mini"
    assert openai.embedding_model == "text-embedding-3-small"
    assert openai.api_key is not None and openai.api_key.get_secret_value() == "sk-a"
    assert "sk-a" not in repr(openai)
    assert openai.options == {"organization": "org-9"}
    assert found["groq"].embedding_model is None


def test_rate_limit_durations_parse() -> None:
    assert parse_duration("1.266s") == pytest.approx(1.266)
    assert parse_duration("6m0s") == 360
    assert parse_duration("120ms") == pytest.approx(0.12)
    assert parse_duration("2m59.56s") == pytest.approx(179.56)
    assert parse_duration("soon") is None


# -- through a real gateway -------------------------------------------------------------------


def gateway_config(url: str, kind: str = "openai", **extra: Any) -> dict[str, Any]:
    return {
        "providers": [
            {"name": kind, "kind": kind, "api_key": KEY, "base_url": f"{url}/v1", "models": ["gpt-4o"], **extra}
        ]
    }


USER = t.Message(role=t.ROLE_USER, content="Add and multiply the number 2 and 3")


def details(err: grpc.aio.AioRpcError) -> tuple[error_details_pb2.ErrorInfo, error_details_pb2.RetryInfo | None]:
    status = rpc_status.from_call(err)  # type: ignore[arg-type]
    assert status is not None
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


@pytest.mark.parametrize("cut", [None, 7])
async def test_grpc_stream_of_parallel_tool_calls(cut: int | None) -> None:
    want = EXPECTED["openai/stream_parallel_tool_calls.sse"]["parsed"]
    async with Upstream() as up, running_gateway(gateway_config(up.url)) as gw:
        up.add("POST", "/v1/chat/completions", vector_reply("openai/stream_parallel_tool_calls.sse", cut))
        chunks = [
            c async for c in gw.stub.StreamChat(pb.ChatRequest(provider="openai", model="gpt-4o", messages=[USER]))
        ]
    final = chunks[-1]
    assert final.final and not any(c.final for c in chunks[:-1])
    assert [(c.id, c.name, c.arguments) for c in final.tool_calls] == [
        (c["id"], c["name"], c["arguments"]) for c in want["tool_calls"]
    ]
    assert final.stop_reason == t.STOP_REASON_TOOL_CALLS and final.raw_stop_reason == "tool_calls"
    assert (final.usage.prompt_token_count, final.usage.completion_token_count, final.usage.total_token_count) == (
        106,
        50,
        156,
    )
    assert final.provider == "openai" and final.model == "gpt-4o-2024-08-06"
    for i, call in enumerate(want["tool_calls"]):
        assert (
            "".join(d.arguments_delta for c in chunks for d in c.tool_call_deltas if d.index == i) == call["arguments"]
        )


async def test_grpc_stream_of_reasoning_and_text() -> None:
    name = "openai/compat_deepseek_stream_reasoning_content.sse"
    want = EXPECTED[name]["parsed"]
    async with Upstream() as up, running_gateway(gateway_config(up.url, "deepseek")) as gw:
        up.add("POST", "/v1/chat/completions", vector_reply(name, 1))
        chunks = [c async for c in gw.stub.StreamChat(pb.ChatRequest(provider="deepseek", messages=[USER]))]
        assert up.last().json()["model"] == "gpt-4o"  # the configured first model is the default
    assert "".join(c.reasoning_content for c in chunks) == want["reasoning"]
    assert "".join(c.content for c in chunks) == want["text"]
    assert chunks[-1].usage.reasoning_token_count == 117
    assert chunks[-1].stop_reason == t.STOP_REASON_END_TURN


async def test_grpc_chat_and_embed() -> None:
    async with (
        Upstream() as up,
        running_gateway(gateway_config(up.url, embedding_model="text-embedding-3-small")) as gw,
    ):
        up.add("POST", "/v1/chat/completions", vector_reply("openai/chat_text.json"))
        up.add("POST", "/v1/embeddings", vector_reply("openai/embeddings_base64.json"))
        reply = await gw.stub.Chat(pb.ChatRequest(provider="openai", model="gpt-4o", messages=[USER]))
        vectors = await gw.stub.Embed(pb.EmbedRequest(provider="openai", inputs=["This is an embedding test."]))
    assert reply.content == "Oi!" and reply.stop_reason == t.STOP_REASON_END_TURN
    assert reply.usage.total_token_count == 22 and reply.provider == "openai"
    assert len(vectors.embeddings) == 1 and len(vectors.embeddings[0].values) == 1536
    assert vectors.embeddings[0].values[0] == pytest.approx(0.0115356445)


GRPC_ERRORS = [
    ("openai/error_401_invalid_api_key.json", grpc.StatusCode.FAILED_PRECONDITION, "ERROR_REASON_UPSTREAM_AUTH", None),
    ("openai/error_404_model_not_found.json", grpc.StatusCode.NOT_FOUND, "ERROR_REASON_UPSTREAM_MODEL_NOT_FOUND", None),
    ("openai/error_429_rate_limit.json", grpc.StatusCode.RESOURCE_EXHAUSTED, "ERROR_REASON_UPSTREAM_RATE_LIMITED", 2),
    (
        "openai/error_429_insufficient_quota.json",
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        "ERROR_REASON_UPSTREAM_QUOTA_EXCEEDED",
        None,
    ),
]


@pytest.mark.parametrize(("name", "code", "reason", "retry"), GRPC_ERRORS, ids=[g[0] for g in GRPC_ERRORS])
async def test_grpc_status_of_recorded_errors(name: str, code: grpc.StatusCode, reason: str, retry: int | None) -> None:
    async with Upstream() as up, running_gateway(gateway_config(up.url)) as gw:
        up.always("POST", "/v1/chat/completions", fixture_reply(name))
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await gw.stub.Chat(pb.ChatRequest(provider="openai", model="gpt-4o", messages=[USER]))
    err = info.value
    assert err.code() == code
    error_info, retry_info = details(err)
    assert error_info.reason == reason
    assert error_info.metadata["provider"] == "openai"
    assert KEY not in (err.details() or "") and "DEADBEEF" not in (err.details() or "")
    if retry is None:
        assert retry_info is None
    else:
        assert retry_info is not None and retry_info.retry_delay.seconds == retry


@pytest.mark.parametrize(
    ("reply", "code", "reason"),
    [
        (Reply(400, JSON_CT, CONTEXT_400), grpc.StatusCode.INVALID_ARGUMENT, "ERROR_REASON_CONTEXT_LENGTH_EXCEEDED"),
        (Reply(500, JSON_CT, SERVER_500), grpc.StatusCode.UNAVAILABLE, "ERROR_REASON_UPSTREAM_UNAVAILABLE"),
        (
            Reply(529, JSON_CT, b'{"error":{"message":"Overloaded"}}'),
            grpc.StatusCode.UNAVAILABLE,
            "ERROR_REASON_UPSTREAM_OVERLOADED",
        ),
    ],
    ids=["400-context", "500", "529"],
)
async def test_grpc_status_of_stream_errors(reply: Reply, code: grpc.StatusCode, reason: str) -> None:
    async with Upstream() as up, running_gateway(gateway_config(up.url)) as gw:
        up.always("POST", "/v1/chat/completions", reply)
        with pytest.raises(grpc.aio.AioRpcError) as info:
            _ = [
                c async for c in gw.stub.StreamChat(pb.ChatRequest(provider="openai", model="gpt-4o", messages=[USER]))
            ]
    assert info.value.code() == code
    assert details(info.value)[0].reason == reason


async def test_grpc_midstream_error_ends_the_stream_with_a_status_after_the_text() -> None:
    async with Upstream() as up, running_gateway(gateway_config(up.url)) as gw:
        up.add("POST", "/v1/chat/completions", vector_reply("openai/stream_midstream_error.sse", 7))
        chunks = []
        with pytest.raises(grpc.aio.AioRpcError) as info:
            async for c in gw.stub.StreamChat(pb.ChatRequest(provider="openai", model="gpt-4o", messages=[USER])):
                chunks.append(c)
    assert "".join(c.content for c in chunks) == "The sum"
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    assert details(info.value)[0].reason == "ERROR_REASON_UPSTREAM_UNAVAILABLE"


async def test_grpc_truncated_stream_is_unavailable_protocol() -> None:
    body = fixture("openai/stream_text_usage.sse")[:2000]
    async with Upstream() as up, running_gateway(gateway_config(up.url)) as gw:
        up.add("POST", "/v1/chat/completions", Reply(200, {"content-type": "text/event-stream"}, body, cut_every=64))
        with pytest.raises(grpc.aio.AioRpcError) as info:
            _ = [
                c async for c in gw.stub.StreamChat(pb.ChatRequest(provider="openai", model="gpt-4o", messages=[USER]))
            ]
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    assert details(info.value)[0].reason == "ERROR_REASON_UPSTREAM_PROTOCOL"


async def test_grpc_request_over_the_provider_limit_names_the_limit() -> None:
    async with Upstream() as up, running_gateway(gateway_config(up.url, max_request_bytes=500)) as gw:
        big = t.Message(role=t.ROLE_USER, content="x" * 1000)
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await gw.stub.Chat(pb.ChatRequest(provider="openai", model="gpt-4o", messages=[big]))
        assert up.received == []
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    error_info, _ = details(info.value)
    assert error_info.reason == "ERROR_REASON_REQUEST_TOO_LARGE"
    assert error_info.metadata["limit"] == "max_request_bytes=500"


async def test_grpc_capabilities_discovered_and_built_in() -> None:
    listing = {"data": [{"id": "local-model", "owned_by": "vllm", "max_model_len": 8192}]}
    config = {
        "providers": [
            {"name": "vllm", "kind": "vllm", "base_url": "", "models": ["local-model"]},
            {"name": "openai", "kind": "openai", "api_key": KEY, "base_url": "", "models": ["gpt-4o"]},
        ]
    }
    async with Upstream() as up:
        for p in config["providers"]:
            p["base_url"] = f"{up.url}/v1"
        up.add("GET", "/v1/models", json_reply(listing))
        up.add("GET", "/v1/models", json_reply({"data": [{"id": "gpt-4o"}]}))
        async with running_gateway(config) as gw:
            local = await gw.stub.GetCapabilities(pb.GetCapabilitiesRequest(provider="vllm"))
            known = await gw.stub.GetCapabilities(pb.GetCapabilitiesRequest(provider="openai", model="gpt-4o"))
    assert local.capabilities.source == pb.CAPABILITY_SOURCE_DISCOVERED
    assert local.capabilities.context_window_tokens == 8192
    assert known.capabilities.source == pb.CAPABILITY_SOURCE_BUILT_IN
    assert known.capabilities.context_window_tokens == 128000 and known.capabilities.supports_vision


async def test_grpc_count_tokens_uses_the_provider_endpoint() -> None:
    async with Upstream() as up, running_gateway(gateway_config(up.url)) as gw:
        up.add("POST", "/v1/responses/input_tokens", json_reply({"object": "response.input_tokens", "input_tokens": 9}))
        count = await gw.stub.CountTokens(pb.CountTokensRequest(provider="openai", model="gpt-4o", messages=[USER]))
    assert count.token_count == 9 and count.source == pb.TOKEN_COUNT_SOURCE_PROVIDER


async def test_grpc_cancel_closes_the_upstream_stream() -> None:
    body = fixture("openai/stream_text_usage.sse")
    async with Upstream() as up, running_gateway(gateway_config(up.url)) as gw:
        up.add("POST", "/v1/chat/completions", Reply(200, {"content-type": "text/event-stream"}, body, hang_after=900))
        call = gw.stub.StreamChat(pb.ChatRequest(provider="openai", model="gpt-4o", messages=[USER]))
        first = await call.read()
        assert first.content
        call.cancel()
        await asyncio.wait_for(up.disconnected.wait(), 2)


async def test_a_key_in_the_environment_is_enough_for_portico_chat() -> None:
    """`OPENAI_API_KEY=... portico serve` then `portico chat --provider openai ...`, with
    OPENAI_BASE_URL pointing the embedded default at the loopback server."""
    bin_dir = Path(sys.executable).parent
    async with Upstream() as up:
        up.add("POST", "/v1/chat/completions", vector_reply("openai/stream_text_short.sse", 7))
        env = {k: v for k, v in os.environ.items() if not k.endswith(("_API_KEY", "_TOKEN")) and k != "PORTICO_CONFIG"}
        env.update(OPENAI_API_KEY=KEY, OPENAI_BASE_URL=f"{up.url}/v1")
        server = await asyncio.create_subprocess_exec(
            str(bin_dir / "portico"),
            "serve",
            "--address",
            "127.0.0.1:0",
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            assert server.stdout is not None
            line = (await asyncio.wait_for(server.stdout.readline(), 30)).decode()
            assert line.startswith("portico: listening on "), line
            address = line.rsplit(" ", 1)[1].strip()
            chat = await asyncio.create_subprocess_exec(
                str(bin_dir / "portico"),
                "chat",
                "--address",
                address,
                "--provider",
                "openai",
                "--model",
                "gpt-4o-mini",
                "hi",
                env=env,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            out, err = await asyncio.wait_for(chat.communicate(), 30)
        finally:
            server.terminate()
            await asyncio.wait_for(server.wait(), 30)
        sent = up.last("/v1/chat/completions")
    assert chat.returncode == 0, err.decode()
    assert out.decode() == "Olá!\n"
    assert sent.headers["authorization"] == f"Bearer {KEY}" and sent.json()["model"] == "gpt-4o-mini"


def test_base64_decoding_is_little_endian_float32() -> None:
    from portico_server.providers.openai_compat import decode_vector

    packed = base64.b64encode(struct.pack("<3f", 1.5, -2.0, 0.25)).decode()
    assert decode_vector(packed, "p") == struct.pack("<3f", 1.5, -2.0, 0.25)
    assert unpack(decode_vector([1.5, -2, 0.25], "p")) == [1.5, -2.0, 0.25]
    for wrong in ("not base64!", base64.b64encode(b"12345").decode(), [1.0, "2"], [[1.0]], None):
        with pytest.raises(errors.UpstreamProtocol):
            decode_vector(wrong, "p")


async def test_an_embedding_body_only_the_standard_decoder_reads_still_decodes() -> None:
    # NaN is not JSON, but Python's decoder (used before) took it: it must not start failing.
    body = b'{"data": [{"index": 0, "embedding": [NaN, 0.5]}], "model": "e", "usage": {"prompt_tokens": 1}}'
    async with Upstream() as up, provider(up, "together") as p:
        up.add("POST", "/v1/embeddings", Reply(200, {"content-type": "application/json"}, body))
        result = await p.embed(EmbedRequest(model="e", inputs=["a"]))
    first, second = unpack(result.vectors[0])
    assert first != first and second == 0.5  # NaN, then the number
