"""Ollama's `thinking` as reasoning parts both ways, images only, and stream metadata."""

from __future__ import annotations

import json
from typing import Any

import pytest
from harness import collect
from portico_server import errors
from portico_server.config import ProviderSettings
from portico_server.domain import ChatRequest, ContentPart, MediaPart, Message, ReasoningPart, Role
from portico_server.providers.ollama import OllamaProvider
from upstream import Reply, Upstream, fixture

MODEL = "deepseek-r1:8b"
NDJSON = {"content-type": "application/x-ndjson"}
JSON = {"content-type": "application/json; charset=utf-8"}


@pytest.fixture
async def up():
    async with Upstream() as server:
        yield server


@pytest.fixture
async def ollama(up):
    provider = OllamaProvider(ProviderSettings(name="ollama", kind="ollama", base_url=up.url))
    yield provider
    await provider.close()


def recorded_lines() -> list[dict[str, Any]]:
    return [json.loads(line) for line in fixture("ollama/chat_stream_thinking.ndjson").splitlines() if line.strip()]


async def test_thinking_is_a_part_and_goes_back_as_thinking(up, ollama):
    lines = recorded_lines()
    thinking = "".join(line["message"].get("thinking", "") for line in lines if "message" in line)
    text = "".join(line["message"].get("content", "") for line in lines if "message" in line)
    assert thinking and text
    up.add("POST", "/api/chat", Reply(200, NDJSON, fixture("ollama/chat_stream_thinking.ndjson"), cut_every=7))
    question = Message(Role.USER, "Which is bigger, 9.9 or 9.11?")
    _, final = await collect(ollama.stream(ChatRequest(model=MODEL, messages=[question])))
    assert final.parts == [ContentPart(reasoning=ReasoningPart(text=thinking, source="ollama")),
                           ContentPart(text=text)]
    # Ollama's extras are timings, which only its last line has.
    assert final.metadata and all(key.endswith("_ns") for key in final.metadata)

    up.add("POST", "/api/chat", Reply(200, JSON, fixture("ollama/chat_nonstream.json")))
    await ollama.chat(ChatRequest(model=MODEL, messages=[
        question,
        Message(Role.ASSISTANT, parts=final.parts),
        Message(Role.USER, "Are you sure?"),
    ]))
    assert up.last("/api/chat").json()["messages"][1] == {"role": "assistant", "content": text, "thinking": thinking}


async def test_reasoning_of_other_providers_is_not_sent_as_thinking(up, ollama):
    up.add("POST", "/api/chat", Reply(200, JSON, fixture("ollama/chat_nonstream.json")))
    await ollama.chat(ChatRequest(model=MODEL, messages=[
        Message(Role.USER, "Hi"),
        Message(Role.ASSISTANT, parts=[ContentPart(reasoning=ReasoningPart(text="Claude's", signature="Eq",
                                                                           source="anthropic")),
                                       ContentPart(text="Hello")]),
        Message(Role.USER, "Bye"),
    ]))
    assert up.last("/api/chat").json()["messages"][1] == {"role": "assistant", "content": "Hello"}


async def test_a_whole_answer_has_parts(up, ollama):
    up.add("POST", "/api/chat", Reply(200, JSON, fixture("ollama/chat_nonstream.json")))
    answer = await ollama.chat(ChatRequest(model=MODEL, messages=[Message(Role.USER, "Hi")]))
    assert answer.parts == [ContentPart(text=answer.content)] and answer.content


@pytest.mark.parametrize("media", [
    MediaPart(data=b"%PDF-1.7", mime_type="application/pdf"),
    MediaPart(uri="data:application/pdf;base64,JVBERi0="),
])
async def test_a_document_is_refused_naming_the_field(up, ollama, media):
    with pytest.raises(errors.InvalidRequest) as info:
        await ollama.chat(ChatRequest(model=MODEL, messages=[Message(Role.USER, parts=[
            ContentPart(text="Summarise"), ContentPart(media=media)])]))
    assert info.value.violations[0][0] == "messages[0].parts[1].media.mime_type"
    assert up.received == []
