"""The Ollama adapter against a loopback server that answers as Ollama's native API does.

Documented responses live in tests/fixtures/ollama (see SOURCES.md there); further cases
are built inline from the documented shapes. Provider-level tests check what Portico
sends and reconstructs; gateway-level tests check what a gRPC caller gets.
"""

from __future__ import annotations

import asyncio
import json
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
from portico_server.providers.ollama import OllamaProvider, base_url_from_host, from_environment
from portico_server.vectors import unpack
from upstream import FIXTURES, Reply, Upstream, fixture

MODEL = "llama3.2"
EXPECTED: dict[str, Any] = json.loads((FIXTURES / "ollama" / "expected.json").read_text())
JSON = {"content-type": "application/json; charset=utf-8"}
NDJSON = {"content-type": "application/x-ndjson"}
CUTS = [None, 1, 7, 64]

WEATHER = ToolDefinition(
    name="get_weather",
    description="Get the weather in a city",
    parameters={"type": "object", "properties": {"city": {"type": "string"}, "unit": {"type": "string"}},
                "required": ["city"]},
)


@pytest.fixture
async def up():
    async with Upstream() as server:
        yield server


@pytest.fixture
async def ollama(up):
    provider = OllamaProvider(ProviderSettings(name="ollama", kind="ollama", base_url=up.url))
    yield provider
    await provider.close()


def ask(*messages: Message, **fields: Any) -> ChatRequest:
    if not messages:
        messages = (Message(Role.SYSTEM, "Be brief."), Message(Role.USER, "Why is the sky blue?"))
    return ChatRequest(model=MODEL, messages=list(messages), **fields)


def ndjson(*lines: dict[str, Any]) -> bytes:
    return b"".join(json.dumps(line, ensure_ascii=False, separators=(",", ":")).encode() + b"\n" for line in lines)


def piece(content: str = "", **message: Any) -> dict[str, Any]:
    return {"model": MODEL, "created_at": "2025-01-01T00:00:00Z",
            "message": {"role": "assistant", "content": content, **message}, "done": False}


def done(reason: str = "stop", **extra: Any) -> dict[str, Any]:
    return {"model": MODEL, "created_at": "2025-01-01T00:00:01Z", "message": {"role": "assistant", "content": ""},
            "done": True, "done_reason": reason, "prompt_eval_count": 10, "eval_count": 5, **extra}



def compact(args: dict[str, Any]) -> str:
    return json.dumps(args, ensure_ascii=False, separators=(",", ":"))


# -- chat -----------------------------------------------------------------------------------


async def test_chat_sends_the_native_request(up, ollama):
    up.add("POST", "/api/chat", Reply(200, JSON, fixture("ollama/chat_nonstream.json")))
    await ollama.chat(ask(temperature=0.3, top_p=0.8, seed=42, max_tokens=128, stop=["\n\n"]))
    sent = up.last("/api/chat")
    assert "authorization" not in sent.headers
    assert sent.json() == {
        "model": MODEL,
        "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Why is the sky blue?"}],
        "options": {"temperature": 0.3, "top_p": 0.8, "seed": 42, "num_predict": 128, "stop": ["\n\n"]},
        "stream": False,
    }


async def test_chat_reconstructs_text_usage_and_timings(up, ollama):
    up.add("POST", "/api/chat", Reply(200, JSON, fixture("ollama/chat_nonstream.json")))
    answer = await ollama.chat(ask())
    expected = EXPECTED["chat_nonstream.json"]["parsed"]
    assert answer.content == expected["text"]
    assert (answer.stop_reason, answer.raw_stop_reason) == (StopReason.END_TURN, "stop")
    final = expected["final"]
    assert (answer.usage.prompt_tokens, answer.usage.completion_tokens, answer.usage.total_tokens) == (
        final["prompt_eval_count"], final["eval_count"], final["prompt_eval_count"] + final["eval_count"])
    assert answer.metadata["total_duration_ns"] == str(final["total_duration"])
    assert (answer.model, answer.provider) == ("llama3.2", "ollama")


async def test_chat_tool_calls_keep_ollamas_ids(up, ollama):
    up.add("POST", "/api/chat", Reply(200, JSON, fixture("ollama/chat_tool_calls.json")))
    answer = await ollama.chat(ask(tools=[WEATHER]))
    assert [(c.id, c.name, c.arguments) for c in answer.tool_calls] == [
        ("call_x7k2m9qa", "get_weather", '{"city":"Tokyo"}')]
    assert (answer.stop_reason, answer.raw_stop_reason) == (StopReason.TOOL_CALLS, "stop")
    assert up.last("/api/chat").json()["tools"] == [{"type": "function", "function": {
        "name": "get_weather", "description": "Get the weather in a city", "parameters": WEATHER.parameters}}]


async def test_a_tool_conversation_goes_back_in_ollamas_shape(up, ollama):
    up.add("POST", "/api/chat", Reply(200, JSON, fixture("ollama/chat_nonstream.json")))
    await ollama.chat(ask(
        Message(Role.USER, "Weather in Tokyo?"),
        Message(Role.ASSISTANT, tool_calls=[ToolCall("call_x7k2m9qa", "get_weather", '{"city": "Tokyo"}')]),
        Message(Role.TOOL, "11 degrees", tool_call_id="call_x7k2m9qa"),
    ))
    assert up.last("/api/chat").json()["messages"] == [
        {"role": "user", "content": "Weather in Tokyo?"},
        {"role": "assistant", "content": "", "tool_calls": [
            {"function": {"name": "get_weather", "arguments": {"city": "Tokyo"}}}]},
        {"role": "tool", "content": "11 degrees", "tool_name": "get_weather"},
    ]


async def test_tool_arguments_that_are_not_an_object_are_refused_unsent(up, ollama):
    with pytest.raises(errors.InvalidRequest) as info:
        await ollama.chat(ask(Message(Role.ASSISTANT, tool_calls=[ToolCall("c", "f", "[1]")])))
    assert info.value.violations[0][0] == "messages[0].tool_calls[0].arguments"
    assert up.received == []


async def test_images_go_as_base64_and_links_are_refused(up, ollama):
    up.add("POST", "/api/chat", Reply(200, JSON, fixture("ollama/chat_nonstream.json")))
    await ollama.chat(ask(Message(Role.USER, parts=[
        ContentPart(text="What is in this picture?"),
        ContentPart(media=MediaPart(data=b"\x89PNG", mime_type="image/png")),
        ContentPart(media=MediaPart(uri="data:image/jpeg;base64,/9j/4A==")),
    ])))
    assert up.last("/api/chat").json()["messages"] == [
        {"role": "user", "content": "What is in this picture?", "images": ["iVBORw==", "/9j/4A=="]}]
    with pytest.raises(errors.InvalidRequest) as info:
        await ollama.chat(ask(Message(Role.USER, parts=[ContentPart(media=MediaPart(uri="https://x/cat.png"))])))
    assert info.value.violations[0][0] == "messages[0].parts[0].media.uri"


@pytest.mark.parametrize(("choice", "sent"), [
    (None, ["get_weather", "now"]),
    (ToolChoice(ToolChoiceMode.AUTO), ["get_weather", "now"]),
    (ToolChoice(ToolChoiceMode.NONE), None),
    (ToolChoice(ToolChoiceMode.TOOL, "now"), ["now"]),
])
async def test_tool_choice_is_approximated_by_the_tools_sent(up, ollama, choice, sent):
    up.add("POST", "/api/chat", Reply(200, JSON, fixture("ollama/chat_nonstream.json")))
    await ollama.chat(ask(tools=[WEATHER, ToolDefinition(name="now")], tool_choice=choice))
    tools = up.last("/api/chat").json().get("tools")
    assert (None if tools is None else [x["function"]["name"] for x in tools]) == sent
    if tools and tools[-1]["function"]["name"] == "now":
        assert tools[-1]["function"]["parameters"] == {"type": "object", "properties": {}}


async def test_structured_output_goes_in_format(up, ollama):
    schema = {"type": "object", "properties": {"b": {"type": "integer"}, "a": {"type": "string"}}}
    for fmt, sent in ((ResponseFormat(ResponseFormatType.JSON_SCHEMA, "x", schema), schema),
                      (ResponseFormat(ResponseFormatType.JSON_OBJECT), "json")):
        up.add("POST", "/api/chat", Reply(200, JSON, fixture("ollama/chat_nonstream.json")))
        await ollama.chat(ask(response_format=fmt))
        assert up.last("/api/chat").json()["format"] == sent
    up.add("POST", "/api/chat", Reply(200, JSON, fixture("ollama/chat_nonstream.json")))
    await ollama.chat(ask(response_format=ResponseFormat(ResponseFormatType.JSON_SCHEMA, "x", schema)))
    assert list(up.last("/api/chat").json()["format"]["properties"]) == ["b", "a"], "property order is kept"


async def test_options_and_passthrough_merge_into_the_body(up):
    provider = OllamaProvider(ProviderSettings(name="ollama", kind="ollama", base_url=up.url,
                                               options={"think": True, "num_ctx": 8192, "keep_alive": "10m"}))
    up.add("POST", "/api/chat", Reply(200, JSON, fixture("ollama/chat_nonstream.json")))
    try:
        await provider.chat(ask(temperature=0.1, passthrough={"options": {"top_k": 20}, "keep_alive": "1h"}))
    finally:
        await provider.close()
    body = up.last("/api/chat").json()
    assert body["options"] == {"temperature": 0.1, "num_ctx": 8192, "top_k": 20}
    assert (body["think"], body["keep_alive"]) == (True, "1h")


# -- streaming ------------------------------------------------------------------------------

STREAMS = [name for name in EXPECTED if name.startswith("chat_stream")]


@pytest.mark.parametrize("cut", CUTS)
@pytest.mark.parametrize("name", STREAMS)
async def test_recorded_streams_reassemble_at_any_byte_boundary(up, ollama, name, cut):
    expected = EXPECTED[name]["parsed"]
    up.add("POST", "/api/chat", Reply(200, NDJSON, fixture(f"ollama/{name}"), cut_every=cut))
    chunks, final = await collect(ollama.stream(ask(tools=[WEATHER])))
    assert up.last("/api/chat").json()["stream"] is True
    assert "".join(c.content for c in chunks) == expected["text"]
    assert "".join(c.reasoning_content for c in chunks) == expected["thinking"]
    calls = expected["tool_calls"]
    assert [(c.name, c.arguments) for c in final.tool_calls] == [(e["name"], compact(e["arguments"])) for e in calls]
    for call, wanted in zip(final.tool_calls, calls, strict=True):
        assert call.id == (wanted["id"] or call.id) and call.id.startswith("call_")
    deltas = [d for c in chunks for d in c.tool_call_deltas]
    assert [(d.index, d.id, d.name, d.arguments_delta) for d in deltas] == [
        (i, c.id, c.name, c.arguments) for i, c in enumerate(final.tool_calls)]
    assert final.raw_stop_reason == expected["done_reason"]
    assert final.stop_reason == (StopReason.TOOL_CALLS if calls else StopReason.END_TURN)
    assert final.usage is not None
    assert (final.usage.prompt_tokens, final.usage.completion_tokens) == (
        expected["final"]["prompt_eval_count"], expected["final"]["eval_count"])
    assert final.provider == "ollama" and final.model == json.loads(fixture(f"ollama/{name}").split(b"\n")[0])["model"]


async def test_synthesized_ids_are_stable(up, ollama):
    ids = []
    for _ in range(2):
        up.add("POST", "/api/chat", Reply(200, NDJSON, fixture("ollama/chat_stream_tool_calls_legacy.ndjson")))
        _, final = await collect(ollama.stream(ask()))
        ids.append(final.tool_calls[0].id)
    assert ids[0] == ids[1] and ids[0].startswith("call_") and ids[0] != "call_0"


@pytest.mark.parametrize("cut", [1, 2, 3])
async def test_multibyte_and_unusual_characters_survive_any_cut(up, ollama, cut):
    text = ["Olá, ", "naïve ✓ 😀", " a\u0085b\u2028c\rd"]
    up.add("POST", "/api/chat", Reply(200, NDJSON, ndjson(*[piece(x) for x in text], done()), cut_every=cut))
    chunks, _ = await collect(ollama.stream(ask()))
    assert [c.content for c in chunks] == text


@pytest.mark.parametrize(("ending", "stop", "raw"), [
    ([{"done": True, "done_reason": "length"}], StopReason.MAX_TOKENS, "length"),
    ([{"done_reason": "length", "done": True}], StopReason.MAX_TOKENS, "length"),
    ([{"done_reason": "length", "done": False}, {"done": True}], StopReason.MAX_TOKENS, "length"),
    ([{"done": True, "done_reason": "unload"}], StopReason.OTHER, "unload"),
    ([{"done": True}], StopReason.END_TURN, ""),
])
async def test_done_reason_before_or_after_done(up, ollama, ending, stop, raw):
    up.add("POST", "/api/chat", Reply(200, NDJSON, ndjson(piece("Hi"), *[{"model": MODEL, **x} for x in ending])))
    _, final = await collect(ollama.stream(ask()))
    assert (final.stop_reason, final.raw_stop_reason) == (stop, raw)


async def test_an_error_line_mid_stream_ends_the_stream_with_unavailable(up, ollama):
    recorded_error = fixture("ollama/generate_stream_midstream_error.ndjson").strip().split(b"\n")[-1]
    body = ndjson(piece(" Yes"), piece("."), piece("I"), piece("can")) + recorded_error + b"\n"
    up.add("POST", "/api/chat", Reply(200, NDJSON, body, cut_every=11))
    got: list[StreamChunk] = []
    with pytest.raises(errors.UpstreamUnavailable) as info:
        async for chunk in ollama.stream(ask()):
            got.append(chunk)
    assert "".join(c.content for c in got) == EXPECTED["generate_stream_midstream_error.ndjson"]["parsed"]["text"]
    assert EXPECTED["generate_stream_midstream_error.ndjson"]["parsed"]["error"] in info.value.message


async def test_a_stream_without_done_is_an_error(up, ollama):
    up.add("POST", "/api/chat", Reply(200, NDJSON, ndjson(piece("Hel"), piece("lo")), cut_every=4))
    got: list[StreamChunk] = []
    with pytest.raises(errors.UpstreamProtocol):
        async for chunk in ollama.stream(ask()):
            got.append(chunk)
    assert [c.content for c in got] == ["Hel", "lo"]


async def test_a_malformed_line_is_a_protocol_error(up, ollama):
    up.add("POST", "/api/chat", Reply(200, NDJSON, ndjson(piece("Hi")) + b'{"model":"llama3.2","mess\n'))
    with pytest.raises(errors.UpstreamProtocol):
        await collect(ollama.stream(ask()))


async def test_a_connection_reset_mid_stream_is_a_connection_error(up, ollama):
    body = ndjson(piece("Hi"), piece(" there"), done())
    up.add("POST", "/api/chat", Reply(200, NDJSON, body, reset_after=len(ndjson(piece("Hi"))) + 5))
    with pytest.raises(errors.UpstreamConnection):
        await collect(ollama.stream(ask()))


async def test_closing_the_stream_closes_the_upstream_response(up, ollama):
    up.add("POST", "/api/chat", Reply(200, NDJSON, ndjson(piece("first")), hang=True))
    stream = ollama.stream(ask())
    assert (await anext(stream)).content == "first"
    await stream.aclose()
    await asyncio.wait_for(up.disconnected.wait(), 5)


# -- errors ---------------------------------------------------------------------------------

ERRORS: list[tuple[str, bytes, int, dict[str, str], type[errors.UpstreamError], grpc.StatusCode]] = [
    ("model not found (documented)", fixture("ollama/error_404_model_not_found.json"), 404, JSON,
     errors.UpstreamModelNotFound, grpc.StatusCode.NOT_FOUND),
    ("no tool support", b'{"error":"registry.ollama.ai/library/gemma:2b does not support tools"}', 400, JSON,
     errors.UpstreamBadRequest, grpc.StatusCode.INVALID_ARGUMENT),
    ("runner crashed", b'{"error":"llama runner process has terminated: exit status 2"}', 500, JSON,
     errors.UpstreamUnavailable, grpc.StatusCode.UNAVAILABLE),
    ("queue full", b'{"error":"server busy, please try again.  maximum pending requests exceeded"}', 503, JSON,
     errors.UpstreamUnavailable, grpc.StatusCode.UNAVAILABLE),
    ("proxy wants a key", b'{"error":"unauthorized"}', 401, JSON,
     errors.UpstreamAuth, grpc.StatusCode.FAILED_PRECONDITION),
    ("rate limited", b'{"error":"too many requests"}', 429, {**JSON, "retry-after": "3"},
     errors.UpstreamRateLimited, grpc.StatusCode.RESOURCE_EXHAUSTED),
]


@pytest.mark.parametrize(("case", "body", "status", "headers", "exc", "code"), ERRORS, ids=[e[0] for e in ERRORS])
async def test_error_bodies_map_to_the_error_table(up, ollama, case, body, status, headers, exc, code):
    for call in (ollama.chat, lambda r: collect(ollama.stream(r))):
        up.add("POST", "/api/chat", Reply(status, headers, body))
        with pytest.raises(errors.UpstreamError) as info:
            await call(ask())
        assert type(info.value) is exc, case
        assert info.value.status == status and json.loads(body)["error"] in info.value.message
    if status == 429:
        assert info.value.retry_after == 3.0


async def test_an_unreachable_server_is_a_connection_error_and_unhealthy():
    async with Upstream() as closed:
        url = closed.url
    provider = OllamaProvider(ProviderSettings(name="ollama", kind="ollama", base_url=url))
    try:
        with pytest.raises(errors.UpstreamConnection):
            await provider.chat(ask())
        assert await provider.health_check() is False
    finally:
        await provider.close()


async def test_a_configured_key_goes_as_bearer_and_never_into_errors(up):
    key = "ollama-proxy-secret"
    provider = OllamaProvider(ProviderSettings(name="ollama", kind="ollama", base_url=up.url, api_key=key))
    up.add("POST", "/api/chat", Reply(401, JSON, json.dumps({"error": f"bad token {key}"}).encode()))
    try:
        with pytest.raises(errors.UpstreamAuth) as info:
            await provider.chat(ask())
    finally:
        await provider.close()
    assert up.last("/api/chat").headers["authorization"] == f"Bearer {key}"
    assert key not in str(info.value)


# -- embeddings, models, capabilities, health, tokens ---------------------------------------


async def test_embeddings(up, ollama):
    up.add("POST", "/api/embed", Reply(200, JSON, fixture("ollama/embed_multi.json")))
    result = await ollama.embed(EmbedRequest(model="all-minilm", inputs=["Why is the sky blue?", "Why is grass green?"],
                                             dimensions=10))
    recorded = json.loads(fixture("ollama/embed_multi.json"))["embeddings"]
    # Float32, as the gateway sends them on: equal to the recorded numbers within its precision.
    assert [unpack(v) for v in result.vectors] == [pytest.approx(r, rel=1e-6) for r in recorded]
    assert result.usage.prompt_tokens == 0
    assert up.last("/api/embed").json() == {"model": "all-minilm", "input": ["Why is the sky blue?",
                                                                            "Why is grass green?"], "dimensions": 10}
    up.add("POST", "/api/embed", Reply(200, JSON, fixture("ollama/embed.json")))
    single = await ollama.embed(EmbedRequest(model="all-minilm", inputs=["Why is the sky blue?"]))
    assert unpack(single.vectors[0])[0] == pytest.approx(EXPECTED["embed.json"]["parsed"]["first"], rel=1e-6)
    assert single.usage.prompt_tokens == 8 and single.model == "all-minilm"


async def test_embedding_values_that_are_not_numbers_are_a_protocol_error(up, ollama):
    up.add("POST", "/api/embed", Reply(200, JSON, json.dumps({"embeddings": [[0.5, None]]}).encode()))
    with pytest.raises(errors.UpstreamProtocol, match="not numbers"):
        await ollama.embed(EmbedRequest(model="all-minilm", inputs=["a"]))


async def test_an_embedding_answer_of_the_wrong_size_is_a_protocol_error(up, ollama):
    up.add("POST", "/api/embed", Reply(200, JSON, fixture("ollama/embed.json")))
    with pytest.raises(errors.UpstreamProtocol):
        await ollama.embed(EmbedRequest(model="all-minilm", inputs=["a", "b"]))


@pytest.mark.parametrize("name", ["show.json", "show_gemma3.json"])
async def test_capabilities_come_from_api_show(up, ollama, name):
    up.add("POST", "/api/show", Reply(200, JSON, fixture(f"ollama/{name}")))
    caps = await ollama.discover_capabilities("some-model")
    expected = EXPECTED[name]["parsed"]
    assert caps is not None and caps.source is Source.PROVIDER
    assert caps.context_window == expected["context_length"]
    assert caps.supports_vision and not caps.supports_tools and not caps.supports_embeddings
    assert caps.supports_response_format and caps.supports_streaming
    assert up.last("/api/show").json() == {"model": "some-model"}


async def test_capabilities_of_tool_and_embedding_models(up, ollama):
    show = {"template": "{{ .Prompt }}", "details": {"family": "qwen3"},
            "model_info": {"general.architecture": "qwen3", "qwen3.context_length": 40960},
            "capabilities": ["completion", "tools", "thinking"]}
    up.add("POST", "/api/show", Reply(200, JSON, json.dumps(show).encode()))
    caps = await ollama.discover_capabilities("qwen3:8b")
    assert caps is not None and (caps.context_window, caps.supports_tools, caps.supports_vision) == (40960, True, False)

    embedder = {"model_info": {"general.architecture": "bert", "bert.context_length": 512},
                "capabilities": ["embedding"]}
    up.add("POST", "/api/show", Reply(200, JSON, json.dumps(embedder).encode()))
    caps = await ollama.discover_capabilities("all-minilm")
    assert caps is not None and caps.supports_embeddings and not caps.supports_streaming

    # Servers older than the `capabilities` field: a template that renders tools takes them.
    old = {"template": "{{- if .Tools }}tools{{ end }}", "model_info": {"general.architecture": "llama"}}
    up.add("POST", "/api/show", Reply(200, JSON, json.dumps(old).encode()))
    caps = await ollama.discover_capabilities("llama3.1")
    assert caps is not None and caps.supports_tools and caps.context_window == 0


async def test_models_and_health(up, ollama):
    tags = {"models": [{"name": "llama3.2:latest", "model": "llama3.2:latest", "size": 2019393189,
                        "details": {"family": "llama"}}, {"name": "all-minilm:latest", "model": "all-minilm:latest"}]}
    up.add("GET", "/api/tags", Reply(200, JSON, json.dumps(tags).encode()))
    assert await ollama.list_models() == ["llama3.2:latest", "all-minilm:latest"]
    up.add("GET", "/api/version", Reply(200, JSON, b'{"version":"0.12.6"}'))
    assert await ollama.health_check() is True
    up.add("GET", "/api/version", Reply(500, JSON, b'{"error":"boom"}'))
    assert await ollama.health_check() is False


async def test_token_counts_are_estimates(up, ollama):
    count = await ollama.count_tokens(ask())
    assert count.source is Source.ESTIMATE and count.tokens > 0
    assert up.received == []


def test_environment_hook():
    assert from_environment({}) == []
    assert from_environment({"OLLAMA_HOST": ""}) == []
    (ollama,) = from_environment({"OLLAMA_HOST": "0.0.0.0"})
    assert (ollama.name, ollama.kind, ollama.base_url, ollama.api_key) == (
        "ollama", "ollama", "http://127.0.0.1:11434", None)
    defaults = registry.default_providers({"OLLAMA_HOST": "gpu-box:11500"})
    assert [p.base_url for p in defaults if p.kind == "ollama"] == ["http://gpu-box:11500"]


@pytest.mark.parametrize(("host", "url"), [
    ("127.0.0.1", "http://127.0.0.1:11434"),
    ("example.com:8080", "http://example.com:8080"),
    ("http://example.com", "http://example.com:80"),
    ("https://ollama.example.com/", "https://ollama.example.com:443"),
    ("https://example.com:8443/ollama", "https://example.com:8443/ollama"),
    ("[::1]:11434", "http://[::1]:11434"),
])
def test_ollama_host_is_read_as_the_ollama_cli_reads_it(host, url):
    assert base_url_from_host(host) == url


# -- through a real gateway -----------------------------------------------------------------


@pytest.fixture
async def gw(up):
    # One scripted exchange per call: the gateway's retries are off (tests/resilience).
    config = {"providers": [{"name": "ollama", "kind": "ollama", "base_url": up.url, "models": [MODEL, "all-minilm"],
                             "default_model": MODEL, "embedding_model": "all-minilm", "retry": {"enabled": False}}]}
    async with running_gateway(config) as gateway:
        yield gateway


def grpc_request(**fields: Any) -> pb.ChatRequest:
    return pb.ChatRequest(model=MODEL, messages=[t.Message(role=t.ROLE_USER, content="Which is bigger?")], **fields)


def error_info(err: grpc.aio.AioRpcError) -> error_details_pb2.ErrorInfo:
    status = rpc_status.from_call(err)
    assert status is not None, "every error carries google.rpc.Status details"
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            assert info.domain == "portico"
            return info
    raise AssertionError("no ErrorInfo in the status details")


async def test_gateway_chat_and_stream(up, gw):
    up.add("POST", "/api/chat", Reply(200, JSON, fixture("ollama/chat_tool_calls.json")))
    answer = await gw.stub.Chat(grpc_request(temperature=0.0))
    assert [(c.id, c.name, c.arguments) for c in answer.tool_calls] == [
        ("call_x7k2m9qa", "get_weather", '{"city":"Tokyo"}')]
    assert (answer.stop_reason, answer.raw_stop_reason, answer.provider) == (
        t.STOP_REASON_TOOL_CALLS, "stop", "ollama")
    assert up.last("/api/chat").json()["options"] == {"temperature": 0.0}

    up.add("POST", "/api/chat", Reply(200, NDJSON, fixture("ollama/chat_stream_thinking.ndjson"), cut_every=1))
    chunks = [c async for c in gw.stub.StreamChat(grpc_request())]
    expected = EXPECTED["chat_stream_thinking.ndjson"]["parsed"]
    assert "".join(c.reasoning_content for c in chunks) == expected["thinking"]
    assert "".join(c.content for c in chunks) == expected["text"]
    final = chunks[-1]
    assert final.final and final.stop_reason == t.STOP_REASON_END_TURN
    assert (final.usage.prompt_token_count, final.usage.completion_token_count) == (14, 27)
    assert final.model == "deepseek-r1:8b" and chunks[0].provider == "ollama"


@pytest.mark.parametrize(("case", "body", "status", "headers", "exc", "code"), ERRORS, ids=[e[0] for e in ERRORS])
async def test_gateway_errors_carry_status_and_reason(up, gw, case, body, status, headers, exc, code):
    up.add("POST", "/api/chat", Reply(status, headers, body))
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await gw.stub.Chat(grpc_request())
    assert raised.value.code() == code, case
    info = error_info(raised.value)
    assert info.reason == exc.reason
    assert info.metadata["provider"] == "ollama" and info.metadata["upstream_status"] == str(status)


async def test_gateway_mid_stream_error_ends_with_unavailable(up, gw):
    recorded_error = fixture("ollama/generate_stream_midstream_error.ndjson").strip().split(b"\n")[-1]
    up.add("POST", "/api/chat", Reply(200, NDJSON, ndjson(piece("Yes")) + recorded_error + b"\n"))
    got = []
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        async for chunk in gw.stub.StreamChat(grpc_request()):
            got.append(chunk)
    assert [c.content for c in got] == ["Yes"]
    assert raised.value.code() == grpc.StatusCode.UNAVAILABLE
    assert error_info(raised.value).reason == "ERROR_REASON_UPSTREAM_UNAVAILABLE"


async def test_gateway_embed_capabilities_and_count(up, gw):
    up.add("POST", "/api/embed", Reply(200, JSON, fixture("ollama/embed_multi.json")))
    embedded = await gw.stub.Embed(pb.EmbedRequest(model="all-minilm", inputs=["a", "b"]))
    assert [e.index for e in embedded.embeddings] == [0, 1]
    assert len(embedded.embeddings[1].values) == 10
    assert embedded.embeddings[1].values[0] == pytest.approx(-0.0098027075)

    up.add("POST", "/api/show", Reply(200, JSON, fixture("ollama/show_gemma3.json")))
    caps = (await gw.stub.GetCapabilities(pb.GetCapabilitiesRequest(provider="ollama"))).capabilities
    assert (caps.model, caps.context_window_tokens, caps.supports_vision, caps.source) == (
        MODEL, 131072, True, pb.CAPABILITY_SOURCE_DISCOVERED)

    counted = await gw.stub.CountTokens(pb.CountTokensRequest(provider="ollama", messages=grpc_request().messages))
    assert counted.source == pb.TOKEN_COUNT_SOURCE_ESTIMATE and counted.token_count > 0


async def test_gateway_deadline_closes_the_stalled_upstream(up, gw):
    up.add("POST", "/api/chat", Reply(200, NDJSON, ndjson(piece("Hel")), hang=True))
    got = []
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        async for chunk in gw.stub.StreamChat(grpc_request(), timeout=1.0):
            got.append(chunk)
    assert [c.content for c in got] == ["Hel"]
    assert raised.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    await asyncio.wait_for(up.disconnected.wait(), 5)
