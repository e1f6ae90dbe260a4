"""Reasoning controls in the Ollama dialect (`think`), checked on the body the loopback
upstream receives; Ollama's refusal of thinking becomes FAILED_PRECONDITION."""

from __future__ import annotations

import json

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
)
from portico_server.providers.ollama import OllamaProvider
from upstream import Reply, Upstream, fixture

NDJSON = {"content-type": "application/x-ndjson"}
JSON = {"content-type": "application/json; charset=utf-8"}
HELLO = Message(Role.USER, "Why is the sky blue?")
#: Ollama's answer to `think` on a model without thinking (its server's error text).
NO_THINKING = json.dumps({"error": '"llama3.2" does not support thinking'}).encode()


@pytest.fixture
async def up():
    async with Upstream() as server:
        yield server


@pytest.fixture
async def ollama(up):
    provider = OllamaProvider(ProviderSettings(name="ollama", kind="ollama", base_url=up.url,
                                               options={"think": False}))
    yield provider
    await provider.close()


@pytest.mark.parametrize(("model", "reasoning", "think"), [
    ("deepseek-r1:8b", ReasoningConfig(effort=ReasoningEffort.HIGH), True),
    ("qwen3:4b", ReasoningConfig(budget_tokens=2000), True),  # on/off only: the budget cannot be honoured
    ("gpt-oss:20b", ReasoningConfig(effort=ReasoningEffort.LOW), "low"),
    ("gpt-oss:120b", ReasoningConfig(budget_tokens=20000), "high"),
    # No reasoning controls: the provider's configured `think` applies.
    ("deepseek-r1:8b", None, False),
])
async def test_reasoning_controls_become_think(up, ollama, model, reasoning, think):
    up.add("POST", "/api/chat", Reply(200, JSON, fixture("ollama/chat_nonstream.json")))
    await ollama.chat(ChatRequest(model=model, messages=[HELLO], reasoning=reasoning))
    assert up.last("/api/chat").json()["think"] == think


async def test_a_streamed_request_sends_think_and_reads_the_recorded_thinking(up, ollama):
    up.add("POST", "/api/chat", Reply(200, NDJSON, fixture("ollama/chat_stream_thinking.ndjson"), cut_every=7))
    chunks, final = await collect(ollama.stream(ChatRequest(
        model="deepseek-r1:8b", messages=[HELLO], reasoning=ReasoningConfig(effort=ReasoningEffort.MEDIUM))))
    assert up.last("/api/chat").json()["think"] is True
    assert "".join(c.reasoning_content for c in chunks)
    assert final.usage is not None and not final.usage.estimated


@pytest.mark.parametrize("stream", [False, True])
async def test_a_model_that_cannot_think_fails_the_precondition(up, ollama, stream):
    up.add("POST", "/api/chat", Reply(400, JSON, NO_THINKING))
    request = ChatRequest(model="llama3.2", messages=[HELLO], reasoning=ReasoningConfig(effort=ReasoningEffort.LOW))
    with pytest.raises(errors.ModelFeatureUnsupported) as info:
        if stream:
            await collect(ollama.stream(request))
        else:
            await ollama.chat(request)
    assert info.value.metadata["capability"] == "reasoning"


async def test_without_reasoning_controls_the_same_400_stays_an_upstream_bad_request(up, ollama):
    up.add("POST", "/api/chat", Reply(400, JSON, NO_THINKING))
    with pytest.raises(errors.UpstreamBadRequest):
        await ollama.chat(ChatRequest(model="llama3.2", messages=[HELLO]))


async def test_cache_breakpoints_are_ignored_and_documents_refused_naming_the_field(up, ollama):
    up.add("POST", "/api/chat", Reply(200, JSON, fixture("ollama/chat_nonstream.json")))
    await ollama.chat(ChatRequest(model="llama3.2", messages=[Message(Role.USER, "hi", cache=CacheBreakpoint())]))
    assert up.last("/api/chat").json()["messages"] == [{"role": "user", "content": "hi"}]
    pdf = ContentPart(media=MediaPart(mime_type="application/pdf", data=b"%PDF-1.7"))
    with pytest.raises(errors.InvalidRequest) as info:
        await ollama.chat(ChatRequest(model="llama3.2", messages=[Message(Role.USER, parts=[pdf])]))
    assert [f for f, _ in info.value.violations] == ["messages[0].parts[0].media.mime_type"]
