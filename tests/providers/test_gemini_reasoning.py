"""Gemini thoughts and thought signatures across turns, media of any type, stream metadata.

Gemini wants each signature back on the part it came on (Gemini 3 refuses a function-call
turn without it). These tests replay recorded first turns (tests/fixtures/gemini) and
check the body of the second request the upstream gets.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from harness import collect
from portico_server.config import ProviderSettings
from portico_server.domain import (
    ChatRequest,
    ContentPart,
    MediaPart,
    Message,
    ReasoningPart,
    Role,
    ToolCall,
    ToolDefinition,
)
from portico_server.providers.gemini import GeminiProvider
from upstream import Reply, Upstream, fixture

MODEL = "gemini-2.5-flash"
GENERATE = f"/v1beta/models/{MODEL}:generateContent"
STREAM = f"/v1beta/models/{MODEL}:streamGenerateContent"
JSON = {"content-type": "application/json; charset=UTF-8"}
SSE = {"content-type": "text/event-stream"}
QUESTION = Message(Role.USER, "What's the weather in Florence, Italy?")
WEATHER = ToolDefinition(name="weather", parameters={"type": "object", "properties": {"location": {"type": "string"}}})
PORTABLE_ID = re.compile(r"^[a-zA-Z0-9_-]{1,40}$")


@pytest.fixture
async def up():
    async with Upstream() as server:
        yield server


@pytest.fixture
async def gemini(up):
    provider = GeminiProvider(ProviderSettings(name="gemini", kind="gemini", api_key="AIza-test", base_url=up.url,
                                               models=[MODEL], options={"include_thoughts": True}))
    yield provider
    await provider.close()


def recorded_parts(name: str) -> list[dict[str, Any]]:
    """Every part of every event of a recorded stream, in order."""
    parts: list[dict[str, Any]] = []
    for line in fixture(f"gemini/{name}").decode().splitlines():
        if line.startswith("data:"):
            event = json.loads(line[len("data:"):])
            parts.extend(event["candidates"][0]["content"]["parts"])
    return parts


def sse(*events: dict[str, Any]) -> bytes:
    return b"".join(b"data: " + json.dumps(e).encode() + b"\r\n\r\n" for e in events)


def event(*parts: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    candidate: dict[str, Any] = {"content": {"role": "model", "parts": list(parts)}, "index": 0}
    if finish:
        candidate["finishReason"] = finish
    return {"candidates": [candidate], "responseId": "resp-42", "modelVersion": MODEL}


async def second_turn(up: Upstream, gemini: GeminiProvider, parts: list[ContentPart],
                      calls: list[ToolCall]) -> list[dict[str, Any]]:
    """Send the answer back (with the tool's result when it called one); the model turn's parts."""
    up.add("POST", GENERATE, Reply(200, JSON, fixture("gemini/generate_content_text.json")))
    messages = [QUESTION, Message(Role.ASSISTANT, parts=parts, tool_calls=calls)]
    messages += [Message(Role.TOOL, "40 C and sunny", tool_call_id=c.id) for c in calls]
    messages += [] if calls else [Message(Role.USER, "And tomorrow?")]
    await gemini.chat(ChatRequest(model=MODEL, messages=messages, tools=[WEATHER]))
    contents = up.last(GENERATE).json()["contents"]
    assert contents[1]["role"] == "model"
    if calls:
        assert contents[2] == {"role": "user", "parts": [
            {"functionResponse": {"name": c.name, "response": {"output": "40 C and sunny"}}} for c in calls]}
    parts_sent: list[dict[str, Any]] = contents[1]["parts"]
    return parts_sent


@pytest.mark.parametrize("cut", [None, 1, 17])
async def test_a_streamed_thought_and_signed_call_go_back_exactly(up, gemini, cut):
    thought, call = recorded_parts("stream_thought_then_function_call.sse")
    assert thought["thought"] is True and len(call["thoughtSignature"]) > 100
    up.add("POST", STREAM, Reply(200, SSE, fixture("gemini/stream_thought_then_function_call.sse"), cut_every=cut))
    _, final = await collect(gemini.stream(ChatRequest(model=MODEL, messages=[QUESTION], tools=[WEATHER])))
    assert final.parts == [
        ContentPart(reasoning=ReasoningPart(text=thought["text"], source="gemini")),
        ContentPart(reasoning=ReasoningPart(signature=call["thoughtSignature"], source="gemini")),
    ]
    assert [c.id for c in final.tool_calls] and all(PORTABLE_ID.match(c.id) for c in final.tool_calls)

    sent = await second_turn(up, gemini, final.parts, final.tool_calls)
    assert sent == [
        {"text": thought["text"], "thought": True},
        {"functionCall": call["functionCall"], "thoughtSignature": call["thoughtSignature"]},
    ]


async def test_a_signature_on_a_trailing_empty_text_part_goes_back_on_it(up, gemini):
    recorded = recorded_parts("stream_text_trailing_thought_signature.sse")
    *texts, trailing = recorded
    assert trailing["text"] == "" and trailing["thoughtSignature"]
    up.add("POST", STREAM, Reply(200, SSE, fixture("gemini/stream_text_trailing_thought_signature.sse"), cut_every=7))
    chunks, final = await collect(gemini.stream(ChatRequest(model=MODEL, messages=[QUESTION])))
    text = "".join(p["text"] for p in texts)
    assert "".join(c.content for c in chunks) == text
    assert final.parts == [
        ContentPart(text=text),
        ContentPart(reasoning=ReasoningPart(signature=trailing["thoughtSignature"], source="gemini")),
        ContentPart(text=""),
    ]
    sent = await second_turn(up, gemini, final.parts, [])
    assert sent == [{"text": text}, {"text": "", "thoughtSignature": trailing["thoughtSignature"]}]


async def test_signed_parts_are_never_merged_with_their_neighbours(up, gemini):
    up.add("POST", STREAM, Reply(200, SSE, sse(
        event({"text": "Think", "thought": True}),
        event({"text": "ing.", "thought": True}),
        event({"text": "Signed thought.", "thought": True, "thoughtSignature": "U0lHMQ=="}),
        event({"text": "Hel"}),
        event({"text": "lo", "thoughtSignature": "U0lHMg=="}),
        event({"text": " there"}),
        event({"functionCall": {"name": "weather", "args": {"location": "Rome"}}, "thoughtSignature": "U0lHMw=="},
              {"functionCall": {"name": "weather", "args": {"location": "Oslo"}}}, finish="STOP"),
    )))
    chunks, final = await collect(gemini.stream(ChatRequest(model=MODEL, messages=[QUESTION], tools=[WEATHER])))
    assert "".join(c.content for c in chunks) == "Hello there"
    assert "".join(c.reasoning_content for c in chunks) == "Thinking.Signed thought."
    gem = "gemini"
    assert final.parts == [
        ContentPart(reasoning=ReasoningPart(text="Thinking.", source=gem)),
        ContentPart(reasoning=ReasoningPart(text="Signed thought.", signature="U0lHMQ==", source=gem)),
        ContentPart(text="Hel"),
        ContentPart(reasoning=ReasoningPart(signature="U0lHMg==", source=gem)),
        ContentPart(text="lo"),
        ContentPart(text=" there"),
        ContentPart(reasoning=ReasoningPart(signature="U0lHMw==", source=gem)),
    ]
    sent = await second_turn(up, gemini, final.parts, final.tool_calls)
    assert sent == [
        {"text": "Thinking.", "thought": True},
        {"text": "Signed thought.", "thought": True, "thoughtSignature": "U0lHMQ=="},
        {"text": "Hel"},
        {"text": "lo", "thoughtSignature": "U0lHMg=="},
        {"text": " there"},
        {"functionCall": {"name": "weather", "args": {"location": "Rome"}}, "thoughtSignature": "U0lHMw=="},
        {"functionCall": {"name": "weather", "args": {"location": "Oslo"}}},
    ]


async def test_a_whole_answer_keeps_its_parts_and_metadata(up, gemini):
    recorded = json.loads(fixture("gemini/generate_content_function_call.json"))
    (call,) = recorded["candidates"][0]["content"]["parts"]
    up.add("POST", GENERATE, Reply(200, JSON, fixture("gemini/generate_content_function_call.json")))
    answer = await gemini.chat(ChatRequest(model=MODEL, messages=[QUESTION], tools=[WEATHER]))
    assert answer.parts == [ContentPart(reasoning=ReasoningPart(signature=call["thoughtSignature"], source="gemini"))]
    assert answer.metadata == {"response_id": recorded["responseId"]}
    sent = await second_turn(up, gemini, answer.parts, answer.tool_calls)
    assert sent == [{"functionCall": call["functionCall"], "thoughtSignature": call["thoughtSignature"]}]


async def test_reasoning_of_other_providers_is_left_out(up, gemini):
    sent = await second_turn(up, gemini, [
        ContentPart(reasoning=ReasoningPart(text="Claude thought", signature="EqQBCkgIAR", source="anthropic")),
        ContentPart(reasoning=ReasoningPart(redacted="EmwKAhgB", source="anthropic")),
        ContentPart(reasoning=ReasoningPart(text="DeepSeek thought", source="openai")),
        ContentPart(text="Sunny."),
    ], [])
    assert sent == [{"text": "Sunny."}]


# -- media, stream metadata ----------------------------------------------------------------


async def test_documents_audio_and_video_go_as_inline_or_file_data(up, gemini):
    up.add("POST", GENERATE, Reply(200, JSON, fixture("gemini/generate_content_text.json")))
    await gemini.chat(ChatRequest(model=MODEL, messages=[Message(Role.USER, parts=[
        ContentPart(text="Summarise"),
        ContentPart(media=MediaPart(data=b"%PDF-1.7", mime_type="application/pdf")),
        ContentPart(media=MediaPart(uri="data:audio/mpeg;base64,SUQz")),
        ContentPart(media=MediaPart(uri="gs://bucket/clip.mp4", mime_type="video/mp4")),
        ContentPart(media=MediaPart(uri="https://example.com/paper.pdf")),
    ])]))
    assert up.last(GENERATE).json()["contents"][0]["parts"] == [
        {"text": "Summarise"},
        {"inlineData": {"mimeType": "application/pdf", "data": "JVBERi0xLjc="}},
        {"inlineData": {"mimeType": "audio/mpeg", "data": "SUQz"}},
        {"fileData": {"mimeType": "video/mp4", "fileUri": "gs://bucket/clip.mp4"}},
        {"fileData": {"mimeType": "application/pdf", "fileUri": "https://example.com/paper.pdf"}},
    ]


async def test_stream_metadata_is_on_the_first_and_the_final_chunk(up, gemini):
    up.add("POST", STREAM, Reply(200, SSE, sse(event({"text": "Hi"}), event({"text": " there"}, finish="STOP"))))
    chunks, final = await collect(gemini.stream(ChatRequest(model=MODEL, messages=[QUESTION])))
    assert [c.metadata for c in chunks] == [{"response_id": "resp-42"}, {}]
    assert final.metadata == {"response_id": "resp-42"}
    assert final.parts == [ContentPart(text="Hi there")]
