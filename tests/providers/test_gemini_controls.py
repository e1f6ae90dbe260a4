"""Reasoning controls, cache breakpoints and documents in the Gemini dialect, checked on
the exact `GenerateContentRequest` the upstream receives."""

from __future__ import annotations

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
from portico_server.providers.gemini import GeminiProvider
from upstream import Reply, Upstream, fixture

JSON = {"content-type": "application/json; charset=UTF-8"}
SSE = {"content-type": "text/event-stream"}
LOW, MEDIUM, HIGH = ReasoningEffort.LOW, ReasoningEffort.MEDIUM, ReasoningEffort.HIGH
HELLO = Message(Role.USER, "Hello")


@pytest.fixture
async def up():
    async with Upstream() as server:
        yield server


async def sent(up: Upstream, request: ChatRequest, **options) -> dict:
    path = f"/v1beta/models/{request.model}:generateContent"
    up.add("POST", path, Reply(200, JSON, fixture("gemini/generate_content_text.json")))
    provider = GeminiProvider(ProviderSettings(name="gem", kind="gemini", api_key="AIza-test", base_url=up.url,
                                               options=options))
    try:
        await provider.chat(request)
    finally:
        await provider.close()
    return up.last(path).json()


@pytest.mark.parametrize(("model", "reasoning", "thinking"), [
    ("gemini-2.5-flash", ReasoningConfig(budget_tokens=2000), {"thinkingBudget": 2000}),
    ("gemini-2.5-flash", ReasoningConfig(effort=LOW), {"thinkingBudget": 1024}),
    ("gemini-2.5-pro", ReasoningConfig(effort=HIGH), {"thinkingBudget": 24576}),
    # The budget wins over the effort on a budget model.
    ("gemini-2.5-pro", ReasoningConfig(effort=HIGH, budget_tokens=4096), {"thinkingBudget": 4096}),
    ("gemini-3-pro-preview", ReasoningConfig(effort=LOW), {"thinkingLevel": "low"}),
    # Gemini 3 Pro has no medium level: it goes up to high.
    ("gemini-3-pro-preview", ReasoningConfig(effort=MEDIUM), {"thinkingLevel": "high"}),
    ("gemini-3-flash-preview", ReasoningConfig(effort=MEDIUM), {"thinkingLevel": "medium"}),
    # A budget alone on Gemini 3: the budget field it still accepts.
    ("gemini-3-pro-preview", ReasoningConfig(budget_tokens=5000), {"thinkingBudget": 5000}),
])
async def test_reasoning_controls_become_the_thinking_config_of_the_model_family(up, model, reasoning, thinking):
    body = await sent(up, ChatRequest(model=model, messages=[HELLO], reasoning=reasoning))
    assert body["generationConfig"]["thinkingConfig"] == thinking


async def test_thought_summaries_stay_an_option_beside_the_controls(up):
    body = await sent(up, ChatRequest(model="gemini-2.5-flash", messages=[HELLO],
                                      reasoning=ReasoningConfig(effort=LOW)), include_thoughts=True)
    assert body["generationConfig"]["thinkingConfig"] == {"thinkingBudget": 1024, "includeThoughts": True}


async def test_a_model_that_does_not_think_fails_the_precondition(up):
    with pytest.raises(errors.CapabilityUnsupported) as info:
        await sent(up, ChatRequest(model="gemini-2.0-flash", messages=[HELLO], reasoning=ReasoningConfig(effort=LOW)))
    assert info.value.metadata["capability"] == "reasoning"
    assert not up.received


async def test_a_budget_outside_the_model_range_is_an_invalid_argument(up):
    with pytest.raises(errors.InvalidRequest) as info:
        await sent(up, ChatRequest(model="gemini-2.5-pro", messages=[HELLO],
                                   reasoning=ReasoningConfig(budget_tokens=64)))
    assert [f for f, _ in info.value.violations] == ["reasoning.budget_tokens"]
    assert not up.received


async def test_documents_go_inline_or_by_uri_and_cache_breakpoints_are_left_out(up):
    request = ChatRequest(model="gemini-2.5-flash", messages=[
        Message(Role.SYSTEM, "rules", cache=CacheBreakpoint(3600)),
        Message(Role.USER, parts=[
            ContentPart(media=MediaPart(mime_type="application/pdf", data=b"%PDF-1.7"), cache=CacheBreakpoint()),
            ContentPart(media=MediaPart(uri="gs://bucket/report.pdf")),
            ContentPart(media=MediaPart(mime_type="text/plain", data=b"plain notes")),
            ContentPart(text="Compare them."),
        ]),
    ], tools=[ToolDefinition(name="t", cache=CacheBreakpoint())])
    body = await sent(up, request)
    assert body["contents"] == [{"role": "user", "parts": [
        {"inlineData": {"mimeType": "application/pdf", "data": "JVBERi0xLjc="}},
        {"fileData": {"mimeType": "application/pdf", "fileUri": "gs://bucket/report.pdf"}},
        {"inlineData": {"mimeType": "text/plain", "data": "cGxhaW4gbm90ZXM="}},
        {"text": "Compare them."},
    ]}]
    assert body["systemInstruction"] == {"parts": [{"text": "rules"}]}
    assert "cache" not in str(body).lower()


async def test_a_type_gemini_cannot_read_is_an_invalid_argument_naming_the_field(up):
    request = ChatRequest(model="gemini-2.5-flash", messages=[Message(Role.USER, parts=[
        ContentPart(text="x"), ContentPart(media=MediaPart(mime_type="application/zip", data=b"PK\x03\x04"))])])
    with pytest.raises(errors.InvalidRequest) as info:
        await sent(up, request)
    assert [f for f, _ in info.value.violations] == ["messages[0].parts[1].media.mime_type"]
    assert not up.received


async def test_a_streamed_request_carries_the_thinking_config_too(up):
    model = "gemini-2.5-flash"
    up.add("POST", f"/v1beta/models/{model}:streamGenerateContent",
           Reply(200, SSE, fixture("gemini/stream_text.sse"), cut_every=9))
    provider = GeminiProvider(ProviderSettings(name="gem", kind="gemini", api_key="AIza-test", base_url=up.url))
    try:
        _, final = await collect(provider.stream(ChatRequest(model=model, messages=[HELLO],
                                                             reasoning=ReasoningConfig(budget_tokens=300))))
    finally:
        await provider.close()
    assert final.usage is not None and not final.usage.estimated
    sent_body = up.last(f"/v1beta/models/{model}:streamGenerateContent").json()
    assert sent_body["generationConfig"]["thinkingConfig"] == {"thinkingBudget": 300}
