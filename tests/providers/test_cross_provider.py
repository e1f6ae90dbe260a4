"""A conversation moves between providers: started on Gemini (a thought signature on the
tool call), continued on OpenAI and on Anthropic, then back on Gemini; and one started on
Anthropic continues on Gemini 3, which wants a signature on every call.

Every provider gets tool-call ids it accepts (`^[a-zA-Z0-9_-]{1,40}$` covers OpenAI's 40
characters and Anthropic's pattern), the same id on a call and on its answer, and only
the reasoning of its own dialect.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from typing import Any

import pytest
from portico_server.config import ProviderSettings
from portico_server.domain import ChatRequest, CompletionResponse, Message, Role, ToolCall, ToolDefinition
from portico_server.providers import registry
from portico_server.providers.base import Provider
from upstream import Reply, Upstream, fixture

PORTABLE_ID = re.compile(r"^[a-zA-Z0-9_-]{1,40}$")
JSON = {"content-type": "application/json"}
GEMINI = "/v1beta/models/gemini-2.5-flash:generateContent"
OPENAI = "/v1/chat/completions"
ANTHROPIC = "/v1/messages"
TOOLS = [ToolDefinition(name="add"), ToolDefinition(name="multiply")]
QUESTION = Message(Role.USER, "Add and multiply the number 2 and 3")


@pytest.fixture
async def up() -> AsyncIterator[Upstream]:
    async with Upstream() as server:
        yield server


@pytest.fixture
async def providers(up: Upstream) -> AsyncIterator[dict[str, Provider]]:
    made = {
        "gemini": registry.create(ProviderSettings(name="gemini", kind="gemini", api_key="AIza-test",
                                                   base_url=up.url)),
        "openai": registry.create(ProviderSettings(name="openai", kind="openai", api_key="sk-test",
                                                   base_url=f"{up.url}/v1")),
        "anthropic": registry.create(ProviderSettings(name="anthropic", kind="anthropic", api_key="sk-ant-test",
                                                      base_url=up.url)),
    }
    yield made
    for p in made.values():
        await p.close()


async def gemini_first_turn(up: Upstream, gemini: Provider) -> CompletionResponse:
    up.add("POST", GEMINI, Reply(200, JSON, fixture("gemini/generate_content_parallel_function_calls.json")))
    first = await gemini.chat(ChatRequest(model="gemini-2.5-flash", messages=[QUESTION], tools=TOOLS))
    assert len(first.tool_calls) == 2 and any(p.reasoning and p.reasoning.signature for p in first.parts)
    return first


def conversation(first: CompletionResponse) -> list[Message]:
    return [
        QUESTION,
        Message(Role.ASSISTANT, parts=first.parts, tool_calls=first.tool_calls),
        Message(Role.TOOL, "5", tool_call_id=first.tool_calls[0].id),
        Message(Role.TOOL, "6", tool_call_id=first.tool_calls[1].id),
    ]


async def test_a_gemini_conversation_continues_on_openai_with_valid_ids(up, providers):
    first = await gemini_first_turn(up, providers["gemini"])
    up.add("POST", OPENAI, Reply(200, JSON, fixture("openai/chat_text.json")))
    await providers["openai"].chat(ChatRequest(model="gpt-4o", messages=conversation(first), tools=TOOLS))
    messages = up.last(OPENAI).json()["messages"]
    call_ids = [c["id"] for c in messages[1]["tool_calls"]]
    assert all(PORTABLE_ID.match(i) for i in call_ids)
    assert [m["tool_call_id"] for m in messages[2:]] == call_ids
    # The Gemini signature is Gemini's: OpenAI sees neither it nor an empty stand-in.
    assert messages[1] == {"role": "assistant", "content": None, "tool_calls": [
        {"id": call_ids[i], "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
        for i, c in enumerate(first.tool_calls)
    ]}


async def test_a_gemini_conversation_continues_on_anthropic_with_valid_ids(up, providers):
    first = await gemini_first_turn(up, providers["gemini"])
    up.add("POST", ANTHROPIC, Reply(200, JSON, fixture("anthropic/messages_text.json")))
    await providers["anthropic"].chat(ChatRequest(model="claude-sonnet-4-5", messages=conversation(first),
                                                  tools=TOOLS))
    messages = up.last(ANTHROPIC).json()["messages"]
    assert [b["type"] for b in messages[1]["content"]] == ["tool_use", "tool_use"]  # no thinking, no text
    use_ids = [b["id"] for b in messages[1]["content"]]
    assert all(PORTABLE_ID.match(i) for i in use_ids)
    assert [b["tool_use_id"] for b in messages[2]["content"]] == use_ids


async def test_ids_from_elsewhere_are_mapped_consistently_and_the_conversation_returns_to_gemini(up, providers):
    # An id no provider accepts (too long, odd characters), as older gateways made them.
    legacy = "call_0123456789abcdef01234567~" + "A" * 300 + "+/="
    messages = [
        QUESTION,
        Message(Role.ASSISTANT, tool_calls=[ToolCall(id=legacy, name="add", arguments='{"a":2,"b":3}')]),
        Message(Role.TOOL, "5", tool_call_id=legacy),
    ]
    bodies: dict[str, Any] = {}
    for name, path, reply in [("openai", OPENAI, "openai/chat_text.json"),
                              ("anthropic", ANTHROPIC, "anthropic/messages_text.json"),
                              ("gemini", GEMINI, "gemini/generate_content_text.json")]:
        up.add("POST", path, Reply(200, JSON, fixture(reply)))
        model = {"openai": "gpt-4o", "anthropic": "claude-sonnet-4-5", "gemini": "gemini-2.5-flash"}[name]
        await providers[name].chat(ChatRequest(model=model, messages=messages, tools=TOOLS))
        bodies[name] = up.last(path).json()
    openai = bodies["openai"]["messages"]
    openai_ids = (openai[1]["tool_calls"][0]["id"], openai[2]["tool_call_id"])
    anthropic = bodies["anthropic"]["messages"]
    anthropic_ids = (anthropic[1]["content"][0]["id"], anthropic[2]["content"][0]["tool_use_id"])
    assert openai_ids[0] == openai_ids[1] == anthropic_ids[0] == anthropic_ids[1]
    assert PORTABLE_ID.match(openai_ids[0])
    # Gemini needs no ids: the answer is matched to its call by name.
    assert bodies["gemini"]["contents"][2] == {"role": "user", "parts": [
        {"functionResponse": {"name": "add", "response": {"output": "5"}}}]}
    assert json.dumps(bodies["gemini"]).count("thoughtSignature") == 0


@pytest.mark.parametrize(("model", "stand_in"), [("gemini-3-pro-preview", True), ("gemini-2.5-flash", False)])
async def test_an_anthropic_tool_turn_continues_on_gemini(up, providers, model, stand_in):
    up.add("POST", ANTHROPIC, Reply(200, JSON, fixture("anthropic/messages_tool_use.json")))
    question = Message(Role.USER, "What's the weather in Florence, Italy?")
    first = await providers["anthropic"].chat(ChatRequest(model="claude-sonnet-4-5", messages=[question],
                                                          tools=[ToolDefinition(name="weather")]))
    path = f"/v1beta/models/{model}:generateContent"
    up.add("POST", path, Reply(200, JSON, fixture("gemini/generate_content_text.json")))
    await providers["gemini"].chat(ChatRequest(model=model, tools=[ToolDefinition(name="weather")], messages=[
        question,
        Message(Role.ASSISTANT, parts=first.parts, tool_calls=first.tool_calls),
        Message(Role.TOOL, "40 C and sunny", tool_call_id=first.tool_calls[0].id),
    ]))
    model_turn = up.last(path).json()["contents"][1]
    call = {"functionCall": {"name": "weather", "args": json.loads(first.tool_calls[0].arguments)}}
    # Gemini 3 refuses a call without a signature; Google's stand-in marks one from elsewhere.
    if stand_in:
        call["thoughtSignature"] = "skip_thought_signature_validator"
    assert model_turn == {"role": "model", "parts": [{"text": first.content}, call]}


async def test_a_real_signature_is_never_replaced_by_the_stand_in(up, providers):
    first = await gemini_first_turn(up, providers["gemini"])
    path = "/v1beta/models/gemini-3-pro-preview:generateContent"
    up.add("POST", path, Reply(200, JSON, fixture("gemini/generate_content_text.json")))
    await providers["gemini"].chat(ChatRequest(model="gemini-3-pro-preview", messages=conversation(first),
                                               tools=TOOLS))
    parts = up.last(path).json()["contents"][1]["parts"]
    signatures = [p.get("thoughtSignature") for p in parts]
    recorded = json.loads(fixture("gemini/generate_content_parallel_function_calls.json"))
    assert signatures == [recorded["candidates"][0]["content"]["parts"][0]["thoughtSignature"], None]
