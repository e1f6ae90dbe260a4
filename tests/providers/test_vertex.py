"""Gemini and Claude on Vertex AI against a loopback Vertex: the paths and bodies each
publisher wants, recorded answers (tests/fixtures/vertex) replayed at arbitrary byte
boundaries, two-turn tool loops with thinking, embeddings, token counts, capabilities and
errors. Tokens come from a throwaway service-account key and a loopback token endpoint.
"""

from __future__ import annotations

import json
from typing import Any

import grpc
import pytest
from harness import collect, rpc_details, running_gateway
from portico.v1 import llm_service_pb2 as pb
from portico.v1 import types_pb2 as t
from portico_server.config import ProviderSettings
from portico_server.domain import (
    CacheBreakpoint,
    ChatRequest,
    ContentPart,
    EmbedRequest,
    Message,
    ReasoningConfig,
    ReasoningEffort,
    ReasoningPart,
    Role,
    Source,
    StopReason,
    ToolDefinition,
)
from portico_server.errors import (
    CapabilityUnsupported,
    InvalidRequest,
    ModelFeatureUnsupported,
    UpstreamBadRequest,
    UpstreamOverloaded,
    UpstreamRateLimited,
    UpstreamUnavailable,
)
from portico_server.providers.vertex import VertexProvider
from portico_server.providers.vertex.endpoints import host
from portico_server.vectors import unpack
from upstream import Reply, Upstream, fixture

from providers.vertex_support import (
    JSON,
    LOCATION,
    PROJECT,
    SSE,
    TOKEN_PATH,
    ServiceAccount,
    TokenEndpoint,
    model_path,
    vertex_settings,
)

GEMINI = "gemini-2.5-flash"
CLAUDE = "claude-sonnet-4@20250514"
CUTS = [None, 1, 7, 64]
QUESTION = Message(Role.USER, "What's the weather in Florence, Italy?")
WEATHER = ToolDefinition(name="weather", description="Get the weather for a location",
                         parameters={"type": "object", "properties": {"location": {"type": "string"}},
                                     "required": ["location"]})
THINKING = {"thinking": {"type": "enabled", "budget_tokens": 2000}}


@pytest.fixture
async def up():
    async with Upstream() as server:
        yield server


@pytest.fixture
def account(up, tmp_path) -> ServiceAccount:
    account = ServiceAccount.create(tmp_path, up.url + TOKEN_PATH)
    up.respond("POST", TOKEN_PATH, TokenEndpoint(account))
    return account


@pytest.fixture
async def vertex(up, account):
    provider = VertexProvider(vertex_settings(up, account, include_thoughts=True))
    yield provider
    await provider.close()


def sse_events(name: str) -> list[dict[str, Any]]:
    """The JSON of every `data:` line of a recorded stream."""
    text = fixture(f"vertex/{name}").decode()
    return [json.loads(line[len("data:"):]) for line in text.splitlines() if line.startswith("data:")]


def gemini_parts(name: str) -> list[dict[str, Any]]:
    return [part for event in sse_events(name) for part in event["candidates"][0]["content"]["parts"]]


# -- where calls go ------------------------------------------------------------------------


def test_global_and_regional_hosts():
    assert host("global") == "https://aiplatform.googleapis.com"
    assert host("europe-west4") == "https://europe-west4-aiplatform.googleapis.com"
    provider = VertexProvider(ProviderSettings(name="v", kind="vertex", options={"project": PROJECT}))
    assert provider.base_url == "https://aiplatform.googleapis.com"
    regional = VertexProvider(ProviderSettings(name="v", kind="vertex",
                                               options={"project": PROJECT, "location": "us-east5"}))
    assert regional.base_url == "https://us-east5-aiplatform.googleapis.com"


def test_the_publisher_comes_from_the_model_name_or_the_setting():
    provider = VertexProvider(ProviderSettings(name="v", kind="vertex", options={"project": PROJECT}))
    assert provider.publisher("gemini-2.5-pro") == "google"
    assert provider.publisher("text-embedding-005") == "google"
    assert provider.publisher("claude-opus-4-1@20250805") == "anthropic"
    with pytest.raises(InvalidRequest, match=r"options\.publisher"):
        provider.publisher("llama-4-maverick")
    forced = VertexProvider(ProviderSettings(name="v", kind="vertex",
                                             options={"project": PROJECT, "publisher": "anthropic"}))
    assert forced.publisher("my-tuned-claude") == "anthropic"


# -- Gemini on Vertex ----------------------------------------------------------------------


async def test_gemini_chat_goes_to_generate_content_with_a_bearer_token(up, vertex):
    path = model_path("google", GEMINI, "generateContent")
    up.add("POST", path, Reply(200, JSON, fixture("vertex/gemini_generate_content_text.json")))
    answer = await vertex.chat(ChatRequest(model=GEMINI, messages=[
        Message(Role.SYSTEM, "You are a helpful chatbot."), Message(Role.USER, "What is the capital of France?")]))
    sent = up.last(path)
    assert sent.headers["authorization"] == "Bearer ya29.test-1"
    assert sent.json()["contents"] == [{"role": "user", "parts": [{"text": "What is the capital of France?"}]}]
    assert sent.json()["systemInstruction"] == {"parts": [{"text": "You are a helpful chatbot."}]}
    assert answer.content == "The capital of France is Paris.\n"
    assert answer.stop_reason is StopReason.END_TURN
    assert (answer.usage.prompt_tokens, answer.usage.completion_tokens, answer.usage.total_tokens) == (13, 8, 21)
    assert answer.model == "gemini-2.0-flash" and answer.metadata["response_id"] == "RUVVaZaHPI3UhMIPlvb66AY"


@pytest.mark.parametrize("cut", CUTS)
async def test_gemini_stream_replayed_at_any_byte_boundary(up, vertex, cut):
    path = model_path("google", GEMINI, "streamGenerateContent")
    up.add("POST", path, Reply(200, SSE, fixture("vertex/gemini_stream_text.sse"), cut_every=cut))
    chunks, final = await collect(vertex.stream(ChatRequest(model=GEMINI, messages=[QUESTION])))
    assert up.last(path).query == {"alt": "sse"}
    expected = "".join(p.get("text", "") for p in gemini_parts("gemini_stream_text.sse"))
    assert expected and "".join(c.content for c in chunks) == expected
    last = sse_events("gemini_stream_text.sse")[-1]["usageMetadata"]
    assert final.usage.prompt_tokens == last["promptTokenCount"]
    assert final.stop_reason is StopReason.END_TURN


@pytest.mark.parametrize("cut", [None, 1, 17])
async def test_gemini_tool_loop_sends_back_the_thought_and_its_signature_exactly(up, vertex, cut):
    stream = model_path("google", GEMINI, "streamGenerateContent")
    generate = model_path("google", GEMINI, "generateContent")
    thought, call = gemini_parts("gemini_stream_thought_then_function_call.sse")
    assert thought["thought"] is True and call["thoughtSignature"]
    up.add("POST", stream, Reply(200, SSE, fixture("vertex/gemini_stream_thought_then_function_call.sse"),
                                 cut_every=cut))
    up.add("POST", generate, Reply(200, JSON, fixture("vertex/gemini_generate_content_text.json")))

    _, final = await collect(vertex.stream(ChatRequest(model=GEMINI, messages=[QUESTION], tools=[WEATHER])))
    assert up.last(stream).json()["generationConfig"]["thinkingConfig"] == {"includeThoughts": True}
    assert [c.name for c in final.tool_calls] == [call["functionCall"]["name"]]
    assert final.stop_reason is StopReason.TOOL_CALLS
    assert final.parts == [
        ContentPart(reasoning=ReasoningPart(text=thought["text"], source="gemini")),
        ContentPart(reasoning=ReasoningPart(signature=call["thoughtSignature"], source="gemini")),
    ]

    await vertex.chat(ChatRequest(model=GEMINI, tools=[WEATHER], messages=[
        QUESTION,
        Message(Role.ASSISTANT, parts=final.parts, tool_calls=final.tool_calls),
        Message(Role.TOOL, "40 C and sunny", tool_call_id=final.tool_calls[0].id),
    ]))
    contents = up.last(generate).json()["contents"]
    assert contents[1] == {"role": "model", "parts": [
        {"text": thought["text"], "thought": True},
        {"functionCall": call["functionCall"], "thoughtSignature": call["thoughtSignature"]},
    ]}
    assert contents[2] == {"role": "user", "parts": [
        {"functionResponse": {"name": call["functionCall"]["name"], "response": {"output": "40 C and sunny"}}}]}


async def test_gemini_count_tokens(up, vertex):
    path = model_path("google", GEMINI, "countTokens")
    up.add("POST", path, Reply(200, JSON, b'{"totalTokens": 31, "totalBillableCharacters": 96}'))
    counted = await vertex.count_tokens(ChatRequest(model=GEMINI, messages=[QUESTION], tools=[WEATHER],
                                                    temperature=0.2))
    assert (counted.tokens, counted.source) == (31, Source.PROVIDER)
    body = up.last(path).json()
    assert set(body) == {"contents", "tools"}  # no generationConfig, no toolConfig


async def test_embeddings_use_predict_with_instances(up, vertex):
    path = model_path("google", "text-embedding-005", "predict")
    up.add("POST", path, Reply(200, JSON, fixture("vertex/embeddings_predict.json")))
    answer = await vertex.embed(EmbedRequest(model="text-embedding-005", inputs=["sunny day", "rainy night"],
                                             dimensions=5))
    assert up.last(path).json() == {"instances": [{"content": "sunny day"}, {"content": "rainy night"}],
                                     "parameters": {"outputDimensionality": 5}}
    recorded = json.loads(fixture("vertex/embeddings_predict.json"))["predictions"]
    assert [unpack(v) for v in answer.vectors] == [
        pytest.approx(p["embeddings"]["values"], rel=1e-6) for p in recorded]
    assert answer.usage.prompt_tokens == 11


async def test_gemini_embedding_models_get_one_text_a_request(up, vertex):
    path = model_path("google", "gemini-embedding-001", "predict")
    one = {"predictions": [{"embeddings": {"values": [0.5, 0.25], "statistics": {"token_count": 2}}}]}
    up.always("POST", path, Reply(200, JSON, json.dumps(one).encode()))
    answer = await vertex.embed(EmbedRequest(model="gemini-embedding-001", inputs=["a", "b", "c"]))
    assert len(answer.vectors) == 3
    assert [r.json()["instances"] for r in up.received if r.path == path] == [
        [{"content": "a"}], [{"content": "b"}], [{"content": "c"}]]


async def test_claude_makes_no_embeddings(vertex):
    with pytest.raises(CapabilityUnsupported):
        await vertex.embed(EmbedRequest(model=CLAUDE, inputs=["x"]))


# -- Claude on Vertex ----------------------------------------------------------------------


async def test_claude_chat_goes_to_raw_predict_without_a_model_in_the_body(up, vertex):
    path = model_path("anthropic", CLAUDE, "rawPredict")
    up.add("POST", path, Reply(200, JSON, fixture("vertex/claude_messages_text.json")))
    answer = await vertex.chat(ChatRequest(model=CLAUDE, messages=[Message(Role.USER, "Say hello in Portuguese")],
                                           max_tokens=100))
    sent = up.last(path)
    assert sent.headers["authorization"] == "Bearer ya29.test-1"
    assert "x-api-key" not in sent.headers and "anthropic-version" not in sent.headers
    assert "anthropic-beta" not in sent.headers
    body = sent.json()
    assert "model" not in body and "stream" not in body
    assert body["anthropic_version"] == "vertex-2023-10-16"
    assert body["messages"] == [{"role": "user", "content": [{"type": "text", "text": "Say hello in Portuguese"}]}]
    assert answer.content.startswith("Olá!")
    assert (answer.usage.prompt_tokens, answer.usage.completion_tokens) == (16, 34)


@pytest.mark.parametrize("cut", CUTS)
async def test_claude_stream_replayed_at_any_byte_boundary(up, vertex, cut):
    path = model_path("anthropic", CLAUDE, "streamRawPredict")
    up.add("POST", path, Reply(200, SSE, fixture("vertex/claude_stream_text.sse"), cut_every=cut))
    chunks, final = await collect(vertex.stream(ChatRequest(model=CLAUDE, messages=[QUESTION])))
    body = up.last(path).json()
    assert body["stream"] is True and "model" not in body and body["anthropic_version"] == "vertex-2023-10-16"
    expected = "".join(e["delta"].get("text", "") for e in sse_events("claude_stream_text.sse")
                       if e["type"] == "content_block_delta")
    assert expected and "".join(c.content for c in chunks) == expected
    assert final.stop_reason is StopReason.END_TURN and final.usage.completion_tokens > 0


def recorded_thinking_turn() -> tuple[str, str, dict[str, Any]]:
    """(thinking text, signature, tool_use block) of the recorded stream."""
    events = sse_events("claude_stream_thinking_then_tool_use.sse")
    deltas = [e["delta"] for e in events if e["type"] == "content_block_delta"]
    thinking = "".join(d.get("thinking", "") for d in deltas if d["type"] == "thinking_delta")
    signature = "".join(d.get("signature", "") for d in deltas if d["type"] == "signature_delta")
    start = next(e["content_block"] for e in events
                 if e["type"] == "content_block_start" and e["content_block"]["type"] == "tool_use")
    arguments = "".join(d.get("partial_json", "") for d in deltas if d["type"] == "input_json_delta")
    tool_use = {"type": "tool_use", "id": start["id"], "name": start["name"], "input": json.loads(arguments)}
    return thinking, signature, tool_use


@pytest.mark.parametrize("cut", [None, 1, 13])
async def test_claude_tool_loop_sends_back_the_thinking_block_exactly(up, vertex, cut):
    stream = model_path("anthropic", CLAUDE, "streamRawPredict")
    raw = model_path("anthropic", CLAUDE, "rawPredict")
    up.add("POST", stream, Reply(200, SSE, fixture("vertex/claude_stream_thinking_then_tool_use.sse"), cut_every=cut))
    up.add("POST", raw, Reply(200, JSON, fixture("vertex/claude_messages_text.json")))
    thinking, signature, tool_use = recorded_thinking_turn()
    assert thinking and signature

    chunks, final = await collect(vertex.stream(ChatRequest(model=CLAUDE, messages=[QUESTION], tools=[WEATHER],
                                                            passthrough=THINKING)))
    assert up.last(stream).json()["thinking"] == THINKING["thinking"]
    assert "".join(c.reasoning_content for c in chunks) == thinking
    assert final.stop_reason is StopReason.TOOL_CALLS
    assert final.parts == [ContentPart(reasoning=ReasoningPart(text=thinking, signature=signature,
                                                               source="anthropic"))]
    assert [(c.id, c.name, json.loads(c.arguments)) for c in final.tool_calls] == [
        (tool_use["id"], tool_use["name"], tool_use["input"])]

    await vertex.chat(ChatRequest(model=CLAUDE, tools=[WEATHER], passthrough=THINKING, messages=[
        QUESTION,
        Message(Role.ASSISTANT, parts=final.parts, tool_calls=final.tool_calls),
        Message(Role.TOOL, "40 C and sunny", tool_call_id=final.tool_calls[0].id),
    ]))
    messages = up.last(raw).json()["messages"]
    assert messages[1] == {"role": "assistant", "content": [
        {"type": "thinking", "thinking": thinking, "signature": signature}, tool_use]}
    assert messages[2] == {"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": tool_use["id"], "content": "40 C and sunny"}]}


async def test_claude_unstreamed_thinking_turn_goes_back_exactly(up, vertex):
    raw = model_path("anthropic", CLAUDE, "rawPredict")
    recorded = json.loads(fixture("vertex/claude_messages_thinking_tool_use.json"))["content"]
    up.add("POST", raw, Reply(200, JSON, fixture("vertex/claude_messages_thinking_tool_use.json")))
    up.add("POST", raw, Reply(200, JSON, fixture("vertex/claude_messages_text.json")))
    first = await vertex.chat(ChatRequest(model=CLAUDE, messages=[QUESTION], tools=[WEATHER], passthrough=THINKING))
    await vertex.chat(ChatRequest(model=CLAUDE, tools=[WEATHER], passthrough=THINKING, messages=[
        QUESTION,
        Message(Role.ASSISTANT, parts=first.parts, tool_calls=first.tool_calls),
        Message(Role.TOOL, "40 C and sunny", tool_call_id=first.tool_calls[0].id),
    ]))
    sent = up.last(raw).json()["messages"][1]["content"]
    assert sent == [{k: v for k, v in block.items() if k in ("type", "thinking", "signature", "id", "name", "input")}
                    for block in recorded]


async def test_betas_go_in_the_anthropic_beta_header(up, account):
    path = model_path("anthropic", CLAUDE, "rawPredict")
    up.add("POST", path, Reply(200, JSON, fixture("vertex/claude_messages_text.json")))
    provider = VertexProvider(vertex_settings(up, account, anthropic_betas=["context-1m-2025-08-07",
                                                                            "interleaved-thinking-2025-05-14"]))
    try:
        await provider.chat(ChatRequest(model=CLAUDE, messages=[QUESTION]))
    finally:
        await provider.close()
    assert up.last(path).headers["anthropic-beta"] == "context-1m-2025-08-07,interleaved-thinking-2025-05-14"


async def test_claude_count_tokens_uses_the_count_tokens_model(up, vertex):
    path = model_path("anthropic", "count-tokens", "rawPredict")
    up.add("POST", path, Reply(200, JSON, b'{"input_tokens": 42}'))
    counted = await vertex.count_tokens(ChatRequest(model=CLAUDE, messages=[QUESTION], tools=[WEATHER]))
    assert (counted.tokens, counted.source) == (42, Source.PROVIDER)
    body = up.last(path).json()
    assert body["model"] == CLAUDE and "anthropic_version" not in body and body["tools"][0]["name"] == "weather"


# -- reasoning controls and prompt caching ------------------------------------------------


async def test_reasoning_controls_reach_both_publishers(up, vertex):
    raw = model_path("anthropic", CLAUDE, "rawPredict")
    generate = model_path("google", GEMINI, "generateContent")
    up.add("POST", raw, Reply(200, JSON, fixture("vertex/claude_messages_text.json")))
    up.add("POST", generate, Reply(200, JSON, fixture("vertex/gemini_generate_content_text.json")))
    effort = ReasoningConfig(effort=ReasoningEffort.LOW)
    await vertex.chat(ChatRequest(model=CLAUDE, messages=[QUESTION], reasoning=ReasoningConfig(budget_tokens=4096)))
    await vertex.chat(ChatRequest(model=GEMINI, messages=[QUESTION], reasoning=effort))
    claude = up.last(raw).json()
    assert claude["thinking"] == {"type": "enabled", "budget_tokens": 4096}
    assert claude["max_tokens"] > 4096  # room for the answer after the thinking
    assert up.last(generate).json()["generationConfig"]["thinkingConfig"] == {
        "includeThoughts": True, "thinkingBudget": 1024}


async def test_reasoning_controls_on_a_claude_without_thinking_fail_unsent(up, vertex):
    with pytest.raises(ModelFeatureUnsupported):
        await vertex.chat(ChatRequest(model="claude-3-5-haiku@20241022", messages=[QUESTION],
                                      reasoning=ReasoningConfig(effort=ReasoningEffort.HIGH)))
    assert not [r for r in up.received if "/publishers/" in r.path]


async def test_cache_breakpoints_become_cache_control_for_claude(up, vertex):
    raw = model_path("anthropic", CLAUDE, "rawPredict")
    up.add("POST", raw, Reply(200, JSON, fixture("vertex/claude_messages_text.json")))
    cached_tool = ToolDefinition(name=WEATHER.name, description=WEATHER.description, parameters=WEATHER.parameters,
                                 cache=CacheBreakpoint(ttl_seconds=3600))
    system = Message(Role.SYSTEM, "You are a weather assistant. " * 50, cache=CacheBreakpoint())
    await vertex.chat(ChatRequest(model=CLAUDE, messages=[system, QUESTION], tools=[cached_tool]))
    body = up.last(raw).json()
    assert body["tools"][0]["cache_control"] == {"type": "ephemeral", "ttl": "1h"}
    assert body["system"][-1]["cache_control"] == {"type": "ephemeral"}


# -- errors --------------------------------------------------------------------------------


async def test_a_vertex_quota_error_for_claude_is_rate_limited(up, vertex):
    quota = {"error": {"code": 429, "status": "RESOURCE_EXHAUSTED", "message":
                       "Quota exceeded for aiplatform.googleapis.com/online_prediction_requests_per_base_model "
                       "with base model: anthropic-claude-sonnet-4."}}
    up.add("POST", model_path("anthropic", CLAUDE, "rawPredict"),
           Reply(429, {**JSON, "retry-after": "7"}, json.dumps(quota).encode()))
    with pytest.raises(UpstreamRateLimited) as caught:
        await vertex.chat(ChatRequest(model=CLAUDE, messages=[QUESTION]))
    assert caught.value.retry_after == 7 and caught.value.metadata["upstream_code"] == "RESOURCE_EXHAUSTED"


async def test_claude_errors_in_anthropic_shape_keep_their_type(up, vertex):
    refused = {"type": "error", "error": {"type": "invalid_request_error", "message": "max_tokens: must be > 0"}}
    up.add("POST", model_path("anthropic", CLAUDE, "rawPredict"), Reply(400, JSON, json.dumps(refused).encode()))
    with pytest.raises(UpstreamBadRequest) as caught:
        await vertex.chat(ChatRequest(model=CLAUDE, messages=[QUESTION]))
    assert caught.value.metadata["upstream_code"] == "invalid_request_error"


async def test_an_error_event_mid_stream_ends_the_claude_stream(up, vertex):
    head = b"".join(line + b"\n" for line in fixture("vertex/claude_stream_text.sse").split(b"\n")[:6])
    error = b'event: error\ndata: {"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}\n\n'
    up.add("POST", model_path("anthropic", CLAUDE, "streamRawPredict"), Reply(200, SSE, head + error, cut_every=5))
    with pytest.raises(UpstreamOverloaded):
        await collect(vertex.stream(ChatRequest(model=CLAUDE, messages=[QUESTION])))


async def test_an_error_event_mid_stream_ends_the_gemini_stream(up, vertex):
    first = fixture("vertex/gemini_stream_text.sse").split(b"\r\n\r\n")[0] + b"\r\n\r\n"
    error = {"error": {"code": 503, "message": "The service is currently unavailable.", "status": "UNAVAILABLE"}}
    body = first + b"data: " + json.dumps(error).encode() + b"\r\n\r\n"
    up.add("POST", model_path("google", GEMINI, "streamGenerateContent"), Reply(200, SSE, body, cut_every=11))
    with pytest.raises(UpstreamUnavailable):
        await collect(vertex.stream(ChatRequest(model=GEMINI, messages=[QUESTION])))


async def test_passthrough_may_not_set_the_anthropic_version(vertex):
    with pytest.raises(InvalidRequest, match="anthropic_version"):
        vertex.check_passthrough({"anthropic_version": "2023-06-01"})


# -- capabilities and the gateway ----------------------------------------------------------


def test_known_capabilities():
    provider = VertexProvider(ProviderSettings(name="v", kind="vertex", options={"project": PROJECT}))
    claude = provider.known_capabilities(CLAUDE)
    assert claude is not None and claude.context_window == 200_000 and claude.supports_tools
    gemini = provider.known_capabilities("gemini-2.5-pro")
    assert gemini is not None and gemini.context_window == 1_048_576
    embedding = provider.known_capabilities("text-embedding-005")
    assert embedding is not None and embedding.supports_embeddings and not embedding.supports_tools


async def test_through_the_gateway(up, account):
    stream = model_path("anthropic", CLAUDE, "streamRawPredict")
    up.add("POST", model_path("google", GEMINI, "generateContent"),
           Reply(200, JSON, fixture("vertex/gemini_generate_content_text.json")))
    up.add("POST", stream, Reply(200, SSE, fixture("vertex/claude_stream_text.sse"), cut_every=9))
    config = {"providers": [{"name": "vertex", "kind": "vertex", "base_url": up.url, "models": [GEMINI, CLAUDE],
                             "default_model": GEMINI, "retry": {"enabled": False},
                             "options": {"project": PROJECT, "location": LOCATION,
                                         "credentials_file": str(account.path)}}]}
    hello = [t.Message(role=t.ROLE_USER, content="What is the capital of France?")]
    async with running_gateway(config) as gw:
        answer = await gw.stub.Chat(pb.ChatRequest(provider="vertex", messages=hello))
        assert answer.content == "The capital of France is Paris.\n"
        chunks = [c async for c in gw.stub.StreamChat(pb.ChatRequest(provider="vertex", model=CLAUDE,
                                                                      messages=hello))]
        assert chunks[-1].final and "".join(c.content for c in chunks)
        caps = (await gw.stub.GetCapabilities(pb.GetCapabilitiesRequest(provider="vertex", model=CLAUDE))).capabilities
        assert caps.context_window_tokens == 200_000 and caps.source == pb.CAPABILITY_SOURCE_BUILT_IN
        up.add("POST", model_path("google", GEMINI, "countTokens"), Reply(200, JSON, b'{"totalTokens": 8}'))
        counted = await gw.stub.CountTokens(pb.CountTokensRequest(provider="vertex", messages=hello))
        assert counted.token_count == 8 and counted.source == pb.TOKEN_COUNT_SOURCE_PROVIDER
        listed = await gw.stub.ListProviders(pb.ListProvidersRequest())
        assert [(p.name, p.kind) for p in listed.providers] == [("vertex", "vertex")]
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await gw.stub.Chat(pb.ChatRequest(provider="vertex", model="llama-4-maverick", messages=hello))
        assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert "options.publisher" in str(rpc_details(caught.value)["violations"])
    assert up.last(stream).headers["authorization"] == "Bearer ya29.test-1"

