"""Reasoning parts, documents and stream metadata in the OpenAI-compatible dialect.

Plain `reasoning_content` / `reasoning` text becomes one part and goes back only to the
servers that require it on tool-call turns (DeepSeek, Moonshot, Z.ai); OpenRouter's
`reasoning_details` entries (built here from OpenRouter's documented shape: `type`,
`text`/`summary`/`data`, `signature`, `format`, `index`) go back to OpenRouter unchanged.
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from harness import collect
from portico_server import errors
from portico_server.config import ProviderSettings
from portico_server.domain import (
    ChatRequest,
    ContentPart,
    MediaPart,
    Message,
    ReasoningPart,
    Role,
    ToolCall,
)
from portico_server.providers import registry
from portico_server.providers.openai_compat import OpenAICompatProvider
from upstream import Reply, Upstream, fixture

EXPECTED: dict[str, Any] = json.loads(fixture("openai/expected.json"))
SSE = {"content-type": "text/event-stream"}
JSON = {"content-type": "application/json"}
CHAT = "/v1/chat/completions"
QUESTION = Message(Role.USER, "What's the weather in Florence, Italy?")


@asynccontextmanager
async def provider(up: Upstream, kind: str) -> AsyncIterator[OpenAICompatProvider]:
    p = registry.create(ProviderSettings(name=kind, kind=kind, api_key="sk-test", base_url=f"{up.url}/v1"))
    assert isinstance(p, OpenAICompatProvider)
    try:
        yield p
    finally:
        await p.close()


def answer(message: dict[str, Any], **extra: Any) -> bytes:
    return json.dumps({"id": "gen-1", "model": "m", "choices": [{"index": 0, "message": message,
                                                                 "finish_reason": "tool_calls"}], **extra}).encode()


async def assistant_sent_back(up: Upstream, p: OpenAICompatProvider, parts: list[ContentPart],
                              calls: list[ToolCall]) -> dict[str, Any]:
    """Send the answer back with the tool's result; the assistant message the upstream got."""
    up.add("POST", CHAT, Reply(200, JSON, fixture("openai/chat_text.json")))
    await p.chat(ChatRequest(model="m", messages=[
        QUESTION,
        Message(Role.ASSISTANT, parts=parts, tool_calls=calls),
        *[Message(Role.TOOL, "sunny", tool_call_id=c.id) for c in calls],
    ]))
    messages = up.last(CHAT).json()["messages"]
    assert [m.get("tool_call_id") for m in messages[2:]] == [c.id for c in calls]
    sent: dict[str, Any] = messages[1]
    return sent


# -- reasoning text ------------------------------------------------------------------------


@pytest.mark.parametrize("cut", [None, 9])
async def test_streamed_reasoning_content_is_a_part_before_the_text(cut):
    want = EXPECTED["openai/compat_deepseek_stream_reasoning_content.sse"]["parsed"]
    async with Upstream() as up, provider(up, "deepseek") as p:
        up.add("POST", CHAT, Reply(200, SSE, fixture("openai/compat_deepseek_stream_reasoning_content.sse"),
                                   cut_every=cut))
        _, final = await collect(p.stream(ChatRequest(model="deepseek-reasoner", messages=[QUESTION])))
    assert final.parts == [ContentPart(reasoning=ReasoningPart(text=want["reasoning"], source="openai")),
                           ContentPart(text=want["text"])]


@pytest.mark.parametrize(("kind", "sent_back"), [("zai", True), ("deepseek", True), ("openai", False),
                                                 ("vllm", False)])
async def test_reasoning_text_goes_back_on_tool_call_turns_where_the_server_requires_it(kind, sent_back):
    want = EXPECTED["openai/compat_glm_stream_reasoning_then_tool_call.sse"]["parsed"]
    async with Upstream() as up, provider(up, kind) as p:
        up.add("POST", CHAT, Reply(200, SSE, fixture("openai/compat_glm_stream_reasoning_then_tool_call.sse")))
        _, final = await collect(p.stream(ChatRequest(model="glm-4.7-flash", messages=[QUESTION])))
        assert final.parts == [ContentPart(reasoning=ReasoningPart(text=want["reasoning"], source="openai")),
                               ContentPart(text=want["text"])]
        sent = await assistant_sent_back(up, p, final.parts, final.tool_calls)
    assert sent["content"] == want["text"]
    assert sent["tool_calls"][0]["id"] == want["tool_calls"][0]["id"]
    if sent_back:
        assert sent["reasoning_content"] == want["reasoning"]
    else:
        assert "reasoning_content" not in sent and "reasoning" not in sent


async def test_reasoning_text_stays_out_of_turns_without_tool_calls():
    async with Upstream() as up, provider(up, "deepseek") as p:
        up.add("POST", CHAT, Reply(200, JSON, fixture("openai/chat_text.json")))
        await p.chat(ChatRequest(model="m", messages=[
            QUESTION,
            Message(Role.ASSISTANT, parts=[ContentPart(reasoning=ReasoningPart(text="hmm", source="openai")),
                                           ContentPart(text="Sunny.")]),
            Message(Role.USER, "Thanks"),
        ]))
        assert up.last(CHAT).json()["messages"][1] == {"role": "assistant", "content": "Sunny."}


# -- OpenRouter's reasoning_details --------------------------------------------------------

DETAILS = [
    {"type": "reasoning.text", "text": "The user wants the weather.", "signature": "EqQBCkgIARABGAIiQL1",
     "format": "anthropic-claude-v1", "index": 0},
    {"type": "reasoning.encrypted", "data": "gAAAAABo-encrypted-blob==", "id": "rs_1",
     "format": "anthropic-claude-v1", "index": 1},
]
CALL = {"id": "toolu_bdrk_01", "type": "function",
        "function": {"name": "weather", "arguments": '{"location":"Florence"}'}}


def detail_part(detail: dict[str, Any]) -> ContentPart:
    return ContentPart(reasoning=ReasoningPart(
        text=detail.get("text", ""), signature=detail.get("signature", ""),
        redacted=json.dumps(detail, separators=(",", ":")), source="openai"))


async def test_openrouter_reasoning_details_go_back_unchanged():
    body = answer({"role": "assistant", "content": None, "reasoning": "The user wants the weather.",
                   "reasoning_details": DETAILS, "tool_calls": [CALL]})
    async with Upstream() as up, provider(up, "openrouter") as p:
        up.add("POST", CHAT, Reply(200, JSON, body))
        first = await p.chat(ChatRequest(model="anthropic/claude-sonnet-4", messages=[QUESTION]))
        assert first.reasoning_content == "The user wants the weather."
        assert first.parts == [detail_part(d) for d in DETAILS]
        sent = await assistant_sent_back(up, p, first.parts, first.tool_calls)
    assert sent["reasoning_details"] == DETAILS
    assert sent["tool_calls"] == [CALL]


async def test_streamed_reasoning_details_are_joined_by_index():
    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {"id": "gen-9", "model": "m", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}

    events = [
        chunk({"role": "assistant", "reasoning": "The user ",
               "reasoning_details": [{"type": "reasoning.text", "text": "The user ", "format": "anthropic-claude-v1",
                                      "index": 0}]}),
        chunk({"reasoning": "wants the weather.",
               "reasoning_details": [{"type": "reasoning.text", "text": "wants the weather.", "index": 0}]}),
        chunk({"reasoning_details": [{"type": "reasoning.text", "signature": "EqQBCkgIARABGAIiQL1", "index": 0}]}),
        chunk({"reasoning_details": [DETAILS[1]]}),
        chunk({"tool_calls": [{"index": 0, **CALL}]}, finish="tool_calls"),
    ]
    stream = b"".join(b"data: " + json.dumps(e).encode() + b"\n\n" for e in events) + b"data: [DONE]\n\n"
    async with Upstream() as up, provider(up, "openrouter") as p:
        up.add("POST", CHAT, Reply(200, SSE, stream, cut_every=11))
        chunks, final = await collect(p.stream(ChatRequest(model="m", messages=[QUESTION])))
        assert "".join(c.reasoning_content for c in chunks) == "The user wants the weather."
        assert [json.loads(p.reasoning.redacted) for p in final.parts if p.reasoning] == DETAILS
        sent = await assistant_sent_back(up, p, final.parts, final.tool_calls)
    assert sent["reasoning_details"] == DETAILS


async def test_reasoning_details_do_not_go_to_servers_without_the_field():
    async with Upstream() as up, provider(up, "openai") as p:
        sent = await assistant_sent_back(up, p, [detail_part(d) for d in DETAILS],
                                         [ToolCall(id="call_1", name="weather", arguments="{}")])
    assert set(sent) == {"role", "content", "tool_calls"}


# -- media ---------------------------------------------------------------------------------


async def test_images_and_documents_in_chat_completions_shapes():
    pdf = b"%PDF-1.7\n"
    async with Upstream() as up, provider(up, "openai") as p:
        up.add("POST", CHAT, Reply(200, JSON, fixture("openai/chat_text.json")))
        await p.chat(ChatRequest(model="gpt-4o", messages=[Message(Role.USER, parts=[
            ContentPart(text="Compare"),
            ContentPart(media=MediaPart(uri="https://example.com/cat.png", detail="low")),
            ContentPart(media=MediaPart(data=b"\x89PNG", mime_type="image/png")),
            ContentPart(media=MediaPart(data=pdf, mime_type="application/pdf")),
            ContentPart(media=MediaPart(uri="data:application/pdf;base64,JVBERi0=")),
        ])]))
        content = up.last(CHAT).json()["messages"][0]["content"]
    assert content == [
        {"type": "text", "text": "Compare"},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.png", "detail": "low"}},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw=="}},
        {"type": "file", "file": {"filename": "document.pdf",
                                  "file_data": "data:application/pdf;base64," + base64.b64encode(pdf).decode()}},
        {"type": "file", "file": {"filename": "document.pdf", "file_data": "data:application/pdf;base64,JVBERi0="}},
    ]


async def test_a_document_link_is_refused_unsent():
    async with Upstream() as up, provider(up, "openai") as p:
        with pytest.raises(errors.InvalidRequest) as info:
            await p.chat(ChatRequest(model="gpt-4o", messages=[Message(Role.USER, parts=[
                ContentPart(text="Read"), ContentPart(media=MediaPart(uri="https://example.com/a.pdf"))])]))
        assert up.received == []
    assert info.value.violations[0][0] == "messages[0].parts[1].media.uri"


# -- stream metadata -----------------------------------------------------------------------


@pytest.mark.parametrize("name", ["openai/stream_text_usage.sse", "openai/compat_deepseek_stream_tool_call.sse"])
async def test_stream_metadata_is_on_the_first_and_the_final_chunk(name):
    first_event = json.loads(next(line for line in fixture(name).decode().splitlines()
                                  if line.startswith("data: {"))[len("data: "):])
    async with Upstream() as up, provider(up, "openai") as p:
        up.add("POST", CHAT, Reply(200, SSE, fixture(name), cut_every=5))
        chunks, final = await collect(p.stream(ChatRequest(model="m", messages=[QUESTION])))
    assert chunks[0].metadata["id"] == first_event["id"] == final.metadata["id"]
    if first_event.get("system_fingerprint"):
        assert final.metadata["system_fingerprint"]
    assert all(c.metadata == {} for c in chunks[1:])


async def test_a_server_that_ignores_stream_true_still_gives_metadata_and_parts():
    body = answer({"role": "assistant", "content": "Sunny.", "reasoning_content": "Look it up."})
    async with Upstream() as up, provider(up, "vllm") as p:
        up.add("POST", CHAT, Reply(200, JSON, body))
        chunks, final = await collect(p.stream(ChatRequest(model="m", messages=[QUESTION])))
    assert chunks[0].metadata == final.metadata == {"id": "gen-1"}
    assert final.parts == [ContentPart(reasoning=ReasoningPart(text="Look it up.", source="openai")),
                           ContentPart(text="Sunny.")]
