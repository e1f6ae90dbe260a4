"""Anthropic extended thinking across turns, documents, and stream metadata.

A tool loop with thinking only works if the second turn carries the first turn's
thinking blocks exactly, signatures included: these tests replay the recorded first turns
(tests/fixtures/anthropic) and check the body of the second request the upstream gets.
"""

from __future__ import annotations

import base64
import json
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
    ResponseFormat,
    ResponseFormatType,
    Role,
    ToolCall,
    ToolDefinition,
)
from portico_server.providers.anthropic import AnthropicProvider
from upstream import Reply, Upstream, fixture

MODEL = "claude-sonnet-4-20250514"
SSE = {"content-type": "text/event-stream; charset=utf-8"}
JSON = {"content-type": "application/json"}
THINKING = {"thinking": {"type": "enabled", "budget_tokens": 4000}}
WEATHER = ToolDefinition(name="weather", description="Get weather information for a location",
                         parameters={"type": "object", "properties": {"location": {"type": "string"}}})
QUESTION = Message(Role.USER, "What's the weather in Florence, Italy?")


@pytest.fixture
async def up():
    async with Upstream() as server:
        yield server


@pytest.fixture
async def claude(up):
    provider = AnthropicProvider(ProviderSettings(name="claude", kind="anthropic", api_key="sk-ant-test",
                                                  base_url=up.url))
    yield provider
    await provider.close()


def ask(*messages: Message) -> ChatRequest:
    return ChatRequest(model=MODEL, messages=list(messages), tools=[WEATHER], passthrough=dict(THINKING))


def recorded_stream_blocks(name: str) -> list[dict[str, Any]]:
    """The content blocks a recorded stream adds up to, rebuilt from its events."""
    blocks: dict[int, dict[str, Any]] = {}
    for line in fixture(f"anthropic/{name}").decode().splitlines():
        if not line.startswith("data:"):
            continue
        event = json.loads(line[len("data:"):])
        if event["type"] == "content_block_start":
            blocks[event["index"]] = dict(event["content_block"])
        elif event["type"] == "content_block_delta":
            block, delta = blocks[event["index"]], event["delta"]
            for key in ("thinking", "signature", "text"):
                if key in delta:
                    block[key] += delta[key]
            if "partial_json" in delta:
                block["json"] = block.get("json", "") + delta["partial_json"]
    return [blocks[i] for i in sorted(blocks)]


def sse(*events: dict[str, Any]) -> bytes:
    return b"".join(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n".encode() for e in events)


async def second_turn(up: Upstream, claude: AnthropicProvider, parts: list[ContentPart],
                      calls: list[ToolCall]) -> dict[str, Any]:
    """Send the answer back with the tool's result; the assistant turn the upstream got."""
    up.add("POST", "/v1/messages", Reply(200, JSON, fixture("anthropic/messages_text.json")))
    await claude.chat(ask(
        QUESTION,
        Message(Role.ASSISTANT, parts=parts, tool_calls=calls),
        Message(Role.TOOL, "40 C and sunny", tool_call_id=calls[0].id),
    ))
    body = up.last("/v1/messages").json()
    assert body["thinking"] == THINKING["thinking"]
    assert body["messages"][2] == {"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": calls[0].id, "content": "40 C and sunny"}]}
    assistant: dict[str, Any] = body["messages"][1]
    assert assistant["role"] == "assistant"
    return assistant


# -- the tool loop with thinking -----------------------------------------------------------


async def test_a_thinking_tool_loop_sends_the_recorded_blocks_back_exactly(up, claude):
    recorded = json.loads(fixture("anthropic/messages_thinking_tool_use.json"))["content"]
    thinking, tool_use = recorded
    up.add("POST", "/v1/messages", Reply(200, JSON, fixture("anthropic/messages_thinking_tool_use.json")))
    first = await claude.chat(ask(QUESTION))
    assert first.parts == [ContentPart(reasoning=ReasoningPart(
        text=thinking["thinking"], signature=thinking["signature"], source="anthropic"))]
    assert first.reasoning_content == thinking["thinking"]

    assistant = await second_turn(up, claude, first.parts, first.tool_calls)
    assert assistant["content"] == [
        thinking,  # type, thinking text and signature, byte for byte
        {"type": "tool_use", "id": tool_use["id"], "name": tool_use["name"], "input": tool_use["input"]},
    ]


@pytest.mark.parametrize("cut", [None, 1, 13])
async def test_a_streamed_thinking_tool_loop_sends_the_streamed_blocks_back_exactly(up, claude, cut):
    thinking, tool_use = recorded_stream_blocks("stream_thinking_then_tool_use.sse")
    up.add("POST", "/v1/messages", Reply(200, SSE, fixture("anthropic/stream_thinking_then_tool_use.sse"),
                                         cut_every=cut))
    _, final = await collect(claude.stream(ask(QUESTION)))
    assert len(thinking["signature"]) > 100
    assert final.parts == [ContentPart(reasoning=ReasoningPart(
        text=thinking["thinking"], signature=thinking["signature"], source="anthropic"))]

    assistant = await second_turn(up, claude, final.parts, final.tool_calls)
    assert assistant["content"] == [
        {"type": "thinking", "thinking": thinking["thinking"], "signature": thinking["signature"]},
        {"type": "tool_use", "id": tool_use["id"], "name": "weather", "input": json.loads(tool_use["json"])},
    ]


REDACTED_ANSWER = {
    "id": "msg_redacted", "type": "message", "role": "assistant", "model": MODEL,
    "content": [
        {"type": "redacted_thinking", "data": "EmwKAhgBEgy3va3pzix/LafPsn4aDFIT2Xlxh0L5L8rLVyIwxtE3rAFBa8cr3qpP"},
        {"type": "thinking", "thinking": "Then the weather tool.", "signature": "ErUBCkYIBRgCIkB"},
        {"type": "text", "text": "Let me check."},
        {"type": "tool_use", "id": "toolu_01", "name": "weather", "input": {"location": "Florence"}},
    ],
    "stop_reason": "tool_use", "usage": {"input_tokens": 10, "output_tokens": 20},
}


async def test_redacted_thinking_goes_back_in_place_and_in_order(up, claude):
    up.add("POST", "/v1/messages", Reply(200, JSON, json.dumps(REDACTED_ANSWER).encode()))
    first = await claude.chat(ask(QUESTION))
    redacted, thinking, text, _ = REDACTED_ANSWER["content"]
    assert text == {"type": "text", "text": "Let me check."}
    assert first.parts == [
        ContentPart(reasoning=ReasoningPart(redacted=redacted["data"], source="anthropic")),
        ContentPart(reasoning=ReasoningPart(text=thinking["thinking"], signature=thinking["signature"],
                                            source="anthropic")),
        ContentPart(text="Let me check."),
    ]
    assert first.reasoning_content == "Then the weather tool." and first.content == "Let me check."
    assistant = await second_turn(up, claude, first.parts, first.tool_calls)
    assert assistant["content"] == REDACTED_ANSWER["content"]


async def test_a_streamed_redacted_block_reaches_the_final_parts(up, claude):
    events = sse(
        {"type": "message_start", "message": {"id": "msg_r", "model": MODEL, "usage": {"input_tokens": 5}}},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "redacted_thinking", "data": "opaque=="}},
        {"type": "content_block_stop", "index": 0},
        {"type": "content_block_start", "index": 1, "content_block": {"type": "text", "text": ""}},
        {"type": "content_block_delta", "index": 1, "delta": {"type": "text_delta", "text": "Hello"}},
        {"type": "content_block_stop", "index": 1},
        {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 3}},
        {"type": "message_stop"},
    )
    up.add("POST", "/v1/messages", Reply(200, SSE, events, cut_every=5))
    chunks, final = await collect(claude.stream(ask(QUESTION)))
    assert "".join(c.content for c in chunks) == "Hello"
    assert final.parts == [ContentPart(reasoning=ReasoningPart(redacted="opaque==", source="anthropic")),
                           ContentPart(text="Hello")]


async def test_reasoning_of_other_providers_is_left_out_not_sent_as_text(up, claude):
    up.add("POST", "/v1/messages", Reply(200, JSON, fixture("anthropic/messages_text.json")))
    await claude.chat(ask(
        QUESTION,
        Message(Role.ASSISTANT, parts=[
            ContentPart(reasoning=ReasoningPart(text="a Gemini thought", source="gemini")),
            ContentPart(reasoning=ReasoningPart(signature="c2lnbmF0dXJl", source="gemini")),
            ContentPart(reasoning=ReasoningPart(text="an OpenAI-compatible thought", source="openai")),
            ContentPart(text="It is sunny."),
        ]),
        Message(Role.USER, "Thanks"),
    ))
    assert up.last("/v1/messages").json()["messages"][1] == {
        "role": "assistant", "content": [{"type": "text", "text": "It is sunny."}]}


async def test_the_answer_tool_text_is_a_text_part(up, claude):
    # Structured output comes back through a tool; its input is the answer's text part.
    answer = {"id": "msg_j", "type": "message", "role": "assistant", "model": MODEL, "stop_reason": "tool_use",
              "content": [{"type": "tool_use", "id": "toolu_a", "name": "json_response", "input": {"a": 1}}],
              "usage": {"input_tokens": 1, "output_tokens": 1}}
    up.add("POST", "/v1/messages", Reply(200, JSON, json.dumps(answer).encode()))
    reply = await claude.chat(ChatRequest(model=MODEL, messages=[QUESTION],
                                          response_format=ResponseFormat(ResponseFormatType.JSON_OBJECT)))
    assert reply.parts == [ContentPart(text='{"a": 1}')] and reply.tool_calls == []


# -- documents -----------------------------------------------------------------------------


async def test_pdf_and_text_documents_become_document_blocks(up, claude):
    pdf = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n"
    up.add("POST", "/v1/messages", Reply(200, JSON, fixture("anthropic/messages_text.json")))
    await claude.chat(ChatRequest(model=MODEL, messages=[Message(Role.USER, parts=[
        ContentPart(text="Summarise these"),
        ContentPart(media=MediaPart(data=pdf)),  # recognised from its bytes
        ContentPart(media=MediaPart(uri="data:application/pdf;base64,JVBERi0xLjQ=")),
        ContentPart(media=MediaPart(uri="https://example.com/report.pdf")),
        ContentPart(media=MediaPart(uri="https://example.com/scan", mime_type="application/pdf")),
        ContentPart(media=MediaPart(data="Grüße".encode(), mime_type="text/plain")),
    ])]))
    assert up.last("/v1/messages").json()["messages"][0]["content"] == [
        {"type": "text", "text": "Summarise these"},
        {"type": "document", "source": {"type": "base64", "media_type": "application/pdf",
                                        "data": base64.b64encode(pdf).decode()}},
        {"type": "document", "source": {"type": "base64", "media_type": "application/pdf",
                                        "data": "JVBERi0xLjQ="}},
        {"type": "document", "source": {"type": "url", "url": "https://example.com/report.pdf"}},
        {"type": "document", "source": {"type": "url", "url": "https://example.com/scan"}},
        {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "Grüße"}},
    ]


@pytest.mark.parametrize(("media", "field"), [
    (MediaPart(data=b"PK\x03\x04", mime_type="application/zip"), "messages[0].parts[1].media.mime_type"),
    (MediaPart(uri="https://example.com/song.mp3"), "messages[0].parts[1].media.mime_type"),
    (MediaPart(data=b"\xff\xfe", mime_type="text/plain"), "messages[0].parts[1].media.data"),
])
async def test_media_anthropic_cannot_read_is_refused_unsent(up, claude, media, field):
    with pytest.raises(errors.InvalidRequest) as info:
        await claude.chat(ChatRequest(model=MODEL, messages=[Message(Role.USER, parts=[
            ContentPart(text="What is this?"), ContentPart(media=media)])]))
    assert info.value.violations[0][0] == field
    assert up.received == []


# -- tool-call ids from elsewhere, stream metadata -----------------------------------------


async def test_ids_anthropic_would_refuse_are_mapped_the_same_on_call_and_result(up, claude):
    odd = "call_1~c2lnbmF0dXJl/+="  # the shape older Gemini ids had
    up.add("POST", "/v1/messages", Reply(200, JSON, fixture("anthropic/messages_text.json")))
    await claude.chat(ChatRequest(model=MODEL, messages=[
        QUESTION,
        Message(Role.ASSISTANT, tool_calls=[ToolCall(id=odd, name="weather", arguments="{}"),
                                            ToolCall(id="toolu_ok-1", name="weather", arguments="{}")]),
        Message(Role.TOOL, "sunny", tool_call_id=odd),
        Message(Role.TOOL, "rainy", tool_call_id="toolu_ok-1"),
    ]))
    messages = up.last("/v1/messages").json()["messages"]
    use_ids = [b["id"] for b in messages[1]["content"]]
    result_ids = [b["tool_use_id"] for b in messages[2]["content"]]
    assert use_ids == result_ids
    assert use_ids[1] == "toolu_ok-1"  # a valid id is kept as it is
    assert use_ids[0] != odd and all(c.isalnum() or c in "_-" for c in use_ids[0]) and len(use_ids[0]) <= 40


async def test_stream_metadata_is_on_the_first_and_the_final_chunk(up, claude):
    up.add("POST", "/v1/messages", Reply(200, {**SSE, "request-id": "req_stream_1"},
                                         fixture("anthropic/stream_text.sse")))
    chunks, final = await collect(claude.stream(ChatRequest(model=MODEL, messages=[QUESTION])))
    response_id = json.loads(next(
        line for line in fixture("anthropic/stream_text.sse").decode().splitlines()
        if line.startswith("data:") and "message_start" in line)[len("data:"):])["message"]["id"]
    expected = {"response_id": response_id, "request_id": "req_stream_1"}
    assert chunks[0].metadata == expected and final.metadata == expected
    assert all(c.metadata == {} for c in chunks[1:])
    assert final.parts == [ContentPart(text="".join(c.content for c in chunks))]
