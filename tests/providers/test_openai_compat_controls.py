"""Reasoning controls, cache breakpoints, documents and stream usage in the
OpenAI-compatible dialect, checked on the exact body each preset's upstream receives."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from harness import collect
from portico_server import errors
from portico_server.config import ProviderSettings
from portico_server.domain import (
    CacheBreakpoint,
    ChatRequest,
    ContentPart,
    MediaPart,
    Message,
    ReasoningConfig,
    ReasoningEffort,
    Role,
    ToolDefinition,
)
from portico_server.providers import registry
from portico_server.providers.openai_compat import OpenAICompatProvider
from upstream import Reply, Upstream, fixture

SSE = {"content-type": "text/event-stream"}
JSON = {"content-type": "application/json"}
CHAT = "/v1/chat/completions"
HELLO = Message(Role.USER, "Say hello in Portuguese")
LOW, MEDIUM, HIGH = ReasoningEffort.LOW, ReasoningEffort.MEDIUM, ReasoningEffort.HIGH


@pytest.fixture
async def up():
    async with Upstream() as server:
        server.always("POST", CHAT, Reply(200, JSON, fixture("openai/chat_text.json")))
        server.always("POST", "/openai/deployments/o4-mini/chat/completions",
                      Reply(200, JSON, fixture("openai/chat_text.json")))
        yield server


@asynccontextmanager
async def provider(up: Upstream, kind: str, **options) -> AsyncIterator[OpenAICompatProvider]:
    base = up.url if kind == "azure" else f"{up.url}/v1"
    p = registry.create(ProviderSettings(name=kind, kind=kind, api_key="sk-test", base_url=base, options=options))
    assert isinstance(p, OpenAICompatProvider)
    try:
        yield p
    finally:
        await p.close()


async def sent(up: Upstream, kind: str, request: ChatRequest, **options) -> dict:
    async with provider(up, kind, **options) as p:
        await p.chat(request)
    return up.received[-1].json()


def ask(model: str, reasoning: ReasoningConfig | None, **kw) -> ChatRequest:
    return ChatRequest(model=model, messages=[HELLO], reasoning=reasoning, **kw)


@pytest.mark.parametrize(("kind", "model", "reasoning", "fields"), [
    ("openai", "o4-mini", ReasoningConfig(effort=HIGH), {"reasoning_effort": "high"}),
    ("openai", "gpt-5-mini", ReasoningConfig(effort=LOW), {"reasoning_effort": "low"}),
    # A budget alone goes to the effort whose budget is nearest.
    ("openai", "o4-mini", ReasoningConfig(budget_tokens=1500), {"reasoning_effort": "low"}),
    ("openai", "o4-mini", ReasoningConfig(budget_tokens=8000), {"reasoning_effort": "medium"}),
    ("openai", "o4-mini", ReasoningConfig(budget_tokens=30000), {"reasoning_effort": "high"}),
    ("groq", "openai/gpt-oss-120b", ReasoningConfig(effort=MEDIUM), {"reasoning_effort": "medium"}),
    # xAI's grok-3-mini has low and high only: medium goes up.
    ("xai", "grok-3-mini", ReasoningConfig(effort=MEDIUM), {"reasoning_effort": "high"}),
    ("vllm", "any-local-model", ReasoningConfig(effort=LOW), {"reasoning_effort": "low"}),
    ("azure", "o4-mini", ReasoningConfig(effort=LOW), {"reasoning_effort": "low"}),
    ("openrouter", "anthropic/claude-sonnet-4", ReasoningConfig(budget_tokens=3000, effort=LOW),
     {"reasoning": {"max_tokens": 3000}}),
    ("openrouter", "openai/o4-mini", ReasoningConfig(effort=HIGH), {"reasoning": {"effort": "high"}}),
    ("dashscope", "qwen-plus", ReasoningConfig(effort=LOW), {"enable_thinking": True, "thinking_budget": 1024}),
    ("qwen", "qwen-plus", ReasoningConfig(budget_tokens=500), {"enable_thinking": True, "thinking_budget": 500}),
    ("zai", "glm-4.6", ReasoningConfig(effort=HIGH), {"thinking": {"type": "enabled"}}),
])
async def test_reasoning_controls_reach_each_vendor_in_its_own_field(up, kind, model, reasoning, fields):
    body = await sent(up, kind, ask(model, reasoning))
    knobs = {"reasoning_effort", "reasoning", "enable_thinking", "thinking_budget", "thinking"}
    assert {k: v for k, v in body.items() if k in knobs} == fields


async def test_no_reasoning_sends_no_knob(up):
    body = await sent(up, "openai", ask("o4-mini", None))
    assert "reasoning_effort" not in body


@pytest.mark.parametrize(("kind", "model"), [
    ("openai", "gpt-4o-mini"),  # not a reasoning model: OpenAI answers 400 to the field
    ("xai", "grok-4"),
    ("groq", "llama-3.3-70b-versatile"),
    ("deepseek", "deepseek-reasoner"),  # reasons always; no knob to turn
    ("mistral", "mistral-small-latest"),
])
async def test_reasoning_a_vendor_or_model_cannot_take_fails_the_precondition(up, kind, model):
    async with provider(up, kind) as p:
        with pytest.raises(errors.CapabilityUnsupported) as info:
            await p.chat(ask(model, ReasoningConfig(effort=LOW)))
    assert info.value.metadata == {"capability": "reasoning", "model": model, "provider": kind}
    assert not up.received


async def test_cache_breakpoints_are_not_sent_where_caching_is_automatic(up):
    request = ChatRequest(model="gpt-4o-mini", messages=[
        Message(Role.SYSTEM, "rules", cache=CacheBreakpoint(3600)),
        Message(Role.USER, parts=[ContentPart(text="doc", cache=CacheBreakpoint()), ContentPart(text="q")]),
    ], tools=[ToolDefinition(name="t", cache=CacheBreakpoint())])
    body = await sent(up, "openai", request)
    assert "cache_control" not in json.dumps(body)
    assert body["messages"] == [{"role": "system", "content": "rules"}, {"role": "user", "content": "docq"}]


@pytest.mark.parametrize(("media", "field"), [
    (MediaPart(mime_type="text/csv", data=b"a,b\n1,2\n"), "messages[0].parts[1].media.mime_type"),
    (MediaPart(mime_type="application/pdf", uri="https://example.com/a.pdf"), "messages[0].parts[1].media.uri"),
])
async def test_documents_openai_cannot_read_are_invalid_arguments(up, media, field):
    request = ChatRequest(model="gpt-4o-mini", messages=[
        Message(Role.USER, parts=[ContentPart(text="read"), ContentPart(media=media)])])
    async with provider(up, "openai") as p:
        with pytest.raises(errors.InvalidRequest) as info:
            await p.chat(request)
    assert [f for f, _ in info.value.violations] == [field]
    assert not up.received


def without_usage(sse: bytes) -> bytes:
    """A recorded stream minus its usage-only chunk: what a vendor that sends no usage streams."""
    events = [e for e in sse.split(b"\n\n") if e.strip() and b'"choices":[]' not in e]
    return b"\n\n".join(events) + b"\n\n"


async def test_an_openai_stream_asks_for_usage_and_ends_with_the_reported_figures(up):
    up.add("POST", CHAT, Reply(200, SSE, fixture("openai/stream_text_short.sse"), cut_every=11))
    async with provider(up, "openai") as p:
        _, final = await collect(p.stream(ChatRequest(model="gpt-4o", messages=[HELLO])))
    assert up.last(CHAT).json()["stream_options"] == {"include_usage": True}
    assert final.usage is not None
    assert (final.usage.prompt_tokens, final.usage.completion_tokens, final.usage.estimated) == (20, 2, False)


@pytest.mark.parametrize(("kind", "options", "asks"), [
    ("mistral", {}, False),  # Mistral's validator refuses stream_options
    ("openai", {"stream_usage": False}, False),  # the per-provider switch
    ("openai", {}, True),  # asked, but this server ignored it
])
async def test_a_stream_without_reported_usage_ends_with_an_estimate_marked_as_such(up, kind, options, asks):
    up.add("POST", CHAT, Reply(200, SSE, without_usage(fixture("openai/stream_text_short.sse")), cut_every=13))
    async with provider(up, kind, **options) as p:
        chunks, final = await collect(p.stream(ChatRequest(model="gpt-4o", messages=[HELLO])))
    assert "".join(c.content for c in chunks) == "Olá!"
    assert ("stream_options" in up.last(CHAT).json()) is asks
    assert final.usage is not None and final.usage.estimated
    # "Say hello in Portuguese": 23 characters and one message, "Olá!" 4 characters.
    assert (final.usage.prompt_tokens, final.usage.completion_tokens, final.usage.total_tokens) == (10, 1, 11)
