"""Reasoning controls and prompt-cache breakpoints in the Anthropic dialect, checked on the
exact body the upstream receives; what Anthropic would refuse is refused here first,
naming the caller's field."""

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
    ToolCall,
    ToolChoice,
    ToolChoiceMode,
    ToolDefinition,
)
from portico_server.providers.anthropic import AnthropicProvider
from upstream import Reply, Upstream, fixture

MODEL = "claude-sonnet-4-20250514"
JSON = {"content-type": "application/json"}
SSE = {"content-type": "text/event-stream; charset=utf-8"}


@pytest.fixture
async def up():
    async with Upstream() as server:
        server.always("POST", "/v1/messages", Reply(200, JSON, fixture("anthropic/messages_text.json")))
        yield server


@pytest.fixture
async def claude(up):
    provider = AnthropicProvider(ProviderSettings(name="claude", kind="anthropic", api_key="sk-ant-test",
                                                  base_url=up.url))
    yield provider
    await provider.close()


def user(text: str = "hello", **kw) -> Message:
    return Message(Role.USER, text, **kw)


async def sent_body(claude, up, request: ChatRequest) -> dict:
    await claude.chat(request)
    return up.last("/v1/messages").json()


@pytest.mark.parametrize(("reasoning", "max_tokens", "thinking"), [
    (ReasoningConfig(budget_tokens=3000), 8000, {"type": "enabled", "budget_tokens": 3000}),
    (ReasoningConfig(effort=ReasoningEffort.LOW), 8000, {"type": "enabled", "budget_tokens": 1024}),
    (ReasoningConfig(effort=ReasoningEffort.MEDIUM), 32000, {"type": "enabled", "budget_tokens": 8192}),
    # An effort's budget shrinks to half of max_tokens so the answer keeps room.
    (ReasoningConfig(effort=ReasoningEffort.HIGH), 10000, {"type": "enabled", "budget_tokens": 5000}),
    # The budget wins over the effort.
    (ReasoningConfig(effort=ReasoningEffort.HIGH, budget_tokens=2000), 8000,
     {"type": "enabled", "budget_tokens": 2000}),
])
async def test_reasoning_controls_become_a_thinking_budget(claude, up, reasoning, max_tokens, thinking):
    body = await sent_body(claude, up, ChatRequest(model=MODEL, messages=[user()], max_tokens=max_tokens,
                                                   reasoning=reasoning))
    assert body["thinking"] == thinking
    assert body["max_tokens"] == max_tokens


async def test_without_max_tokens_the_default_makes_room_for_the_thinking_budget(claude, up):
    body = await sent_body(claude, up, ChatRequest(model=MODEL, messages=[user()],
                                                   reasoning=ReasoningConfig(budget_tokens=10000)))
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 10000}
    assert body["max_tokens"] == 10000 + 16384


async def test_a_request_without_reasoning_sends_no_thinking(claude, up):
    body = await sent_body(claude, up, ChatRequest(model=MODEL, messages=[user()]))
    assert "thinking" not in body


@pytest.mark.parametrize(("request_kw", "fields"), [
    ({"reasoning": ReasoningConfig(budget_tokens=500), "max_tokens": 4000}, ["reasoning.budget_tokens"]),
    ({"reasoning": ReasoningConfig(budget_tokens=4000), "max_tokens": 4000}, ["reasoning.budget_tokens"]),
    ({"reasoning": ReasoningConfig(effort=ReasoningEffort.LOW), "max_tokens": 1024}, ["max_tokens"]),
    ({"reasoning": ReasoningConfig(effort=ReasoningEffort.LOW), "max_tokens": 4000, "temperature": 0.2,
      "top_p": 0.5}, ["temperature", "top_p"]),
    ({"reasoning": ReasoningConfig(effort=ReasoningEffort.LOW), "max_tokens": 4000,
      "tools": [ToolDefinition(name="t")], "tool_choice": ToolChoice(ToolChoiceMode.REQUIRED)},
     ["tool_choice.mode"]),
])
async def test_what_anthropic_refuses_with_thinking_is_refused_before_sending(claude, up, request_kw, fields):
    with pytest.raises(errors.InvalidRequest) as info:
        await claude.chat(ChatRequest(model=MODEL, messages=[user()], **request_kw))
    assert [f for f, _ in info.value.violations] == fields
    assert not up.received


async def test_reasoning_on_a_model_without_thinking_fails_the_precondition(claude, up):
    with pytest.raises(errors.CapabilityUnsupported) as info:
        await claude.chat(ChatRequest(model="claude-3-5-haiku-20241022", messages=[user()],
                                      reasoning=ReasoningConfig(effort=ReasoningEffort.LOW)))
    assert info.value.metadata["capability"] == "reasoning"
    assert not up.received


async def test_cache_breakpoints_land_on_tools_system_and_message_blocks(claude, up):
    pdf = MediaPart(mime_type="application/pdf", data=b"%PDF-1.7 tiny")
    request = ChatRequest(
        model=MODEL,
        messages=[
            Message(Role.SYSTEM, parts=[ContentPart(text="You are terse."),
                                        ContentPart(text="Long shared rules.", cache=CacheBreakpoint(3600))]),
            Message(Role.USER, parts=[ContentPart(media=pdf, cache=CacheBreakpoint()), ContentPart(text="Summarise.")]),
            Message(Role.ASSISTANT, "Calling.", tool_calls=[ToolCall("toolu_1", "lookup", "{}")]),
            Message(Role.TOOL, "result text", tool_call_id="toolu_1", cache=CacheBreakpoint(300)),
        ],
        tools=[ToolDefinition(name="lookup"), ToolDefinition(name="other", cache=CacheBreakpoint(3600))],
    )
    body = await sent_body(claude, up, request)
    assert body["tools"] == [
        {"name": "lookup", "input_schema": {"type": "object", "properties": {}}},
        {"name": "other", "input_schema": {"type": "object", "properties": {}},
         "cache_control": {"type": "ephemeral", "ttl": "1h"}},
    ]
    assert body["system"] == [
        {"type": "text", "text": "You are terse."},
        {"type": "text", "text": "Long shared rules.", "cache_control": {"type": "ephemeral", "ttl": "1h"}},
    ]
    assert body["messages"][0]["content"][0] == {
        "type": "document", "source": {"type": "base64", "media_type": "application/pdf",
                                       "data": "JVBERi0xLjcgdGlueQ=="},
        "cache_control": {"type": "ephemeral"},
    }
    assert body["messages"][2] == {"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": "toolu_1", "content": "result text",
         "cache_control": {"type": "ephemeral", "ttl": "5m"}},
    ]}


async def test_a_message_breakpoint_goes_on_its_last_block_that_is_not_thinking(claude, up):
    from portico_server.domain import ReasoningPart
    thought = ContentPart(reasoning=ReasoningPart(text="hmm", signature="sig", source="anthropic"))
    request = ChatRequest(model=MODEL, messages=[
        user("q"),
        Message(Role.ASSISTANT, parts=[ContentPart(text="a"), thought], cache=CacheBreakpoint()),
        user("next"),
    ])
    body = await sent_body(claude, up, request)
    assert body["messages"][1]["content"] == [
        {"type": "text", "text": "a", "cache_control": {"type": "ephemeral"}},
        {"type": "thinking", "thinking": "hmm", "signature": "sig"},
    ]


async def test_streams_carry_the_breakpoints_too(claude, up):
    up.add("POST", "/v1/messages", Reply(200, SSE, fixture("anthropic/stream_text.sse"), cut_every=7))
    _, final = await collect(claude.stream(ChatRequest(model=MODEL, messages=[user("q", cache=CacheBreakpoint())])))
    assert final.usage is not None
    assert up.last("/v1/messages").json()["messages"][0]["content"] == [
        {"type": "text", "text": "q", "cache_control": {"type": "ephemeral"}}]


@pytest.mark.parametrize(("request_kw", "field"), [
    # A fifth breakpoint: Anthropic takes four.
    ({"messages": [user(str(i), cache=CacheBreakpoint()) for i in range(5)]}, "messages[4].cache"),
    ({"messages": [user("x", cache=CacheBreakpoint(600))]}, "messages[0].cache.ttl_seconds"),
    # A 1-hour breakpoint after a 5-minute one.
    ({"messages": [user("x")], "tools": [ToolDefinition(name="a", cache=CacheBreakpoint(300)),
                                         ToolDefinition(name="b", cache=CacheBreakpoint(3600))]},
     "tools[1].cache.ttl_seconds"),
    ({"messages": [Message(Role.USER, parts=[ContentPart(text="", cache=CacheBreakpoint())])]},
     "messages[0].parts[0].cache"),
])
async def test_breakpoints_anthropic_would_refuse_are_invalid_arguments(claude, up, request_kw, field):
    with pytest.raises(errors.InvalidRequest) as info:
        await claude.chat(ChatRequest(model=MODEL, **request_kw))
    assert [f for f, _ in info.value.violations] == [field]
    assert not up.received
