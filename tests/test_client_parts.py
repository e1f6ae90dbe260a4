"""The Python client's shapes of the v1 API against a real gateway: answers' parts sent
back on the next turn, media helpers, stream metadata, request ids, every provider page."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import portico
import pytest
from harness import running_gateway
from portico_server.domain import ContentPart, MediaPart, ReasoningPart
from portico_server.providers.fake import FakeProvider

THOUGHTS = [
    {"text": "Check the forecast first.", "signature": "Sig+/=" * 40, "source": "anthropic"},
    {"redacted": "b3BhcXVl" * 30, "source": "anthropic"},
]
PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 16


def config(*replies: dict[str, Any], providers: int = 1) -> dict[str, Any]:
    first = {"name": "fake", "kind": "fake", "models": ["fake-chat"], "default_model": "fake-chat",
             "options": {"chunk_size": 4, "replies": list(replies)}}
    others = [{"name": f"extra{i:03d}", "kind": "fake"} for i in range(providers - 1)]
    return {"providers": [first, *others]}


def fake(gw: Any) -> FakeProvider:
    provider = gw.provider("fake")
    assert isinstance(provider, FakeProvider)
    return provider


def sent_thoughts() -> list[ContentPart]:
    return [ContentPart(reasoning=ReasoningPart(**{"text": "", "signature": "", "redacted": "", **t}))
            for t in THOUGHTS]


async def test_an_answer_in_the_conversation_sends_its_parts_and_tool_calls_back() -> None:
    turn_one = {"reasoning_parts": THOUGHTS, "tool_calls": [{"name": "forecast", "arguments": "{}", "id": "c1"}]}
    async with running_gateway(config(turn_one, {"content": "Rain."})) as gw, \
            portico.AsyncClient(gw.address) as client:
        first = await client.chat("Weather?", model="fake-chat")
        assert [r.signature for r in portico.reasoning_parts(first.parts)] == [THOUGHTS[0]["signature"], ""]
        second = await client.chat([
            {"role": "user", "content": "Weather?"},
            first,  # stands for portico.assistant_message(first)
            {"role": "tool", "tool_call_id": "c1", "content": "rain"},
        ], model="fake-chat")
        sent = fake(gw).last_request
    assert second.content == "Rain."
    assert sent is not None
    assert sent.messages[1].parts == sent_thoughts()
    assert [c.id for c in sent.messages[1].tool_calls] == ["c1"]


async def test_a_streamed_answer_assembles_parts_and_metadata_for_the_next_turn() -> None:
    turn_one = {"reasoning_parts": THOUGHTS, "content": "Hello!", "metadata": {"response_id": "resp_9"}}
    async with running_gateway(config(turn_one, {"content": "ok"})) as gw, \
            portico.AsyncClient(gw.address) as client:
        async with client.stream("hi", model="fake-chat") as stream:
            chunks = [c async for c in stream]
            answer = await stream.get_final_response()
        assert chunks[-1].final and chunks[0].metadata["response_id"] == "resp_9"
        assert answer.metadata["response_id"] == "resp_9"
        message = portico.assistant_message(answer)
        assert message.role == portico.Role.Value("ROLE_ASSISTANT") and not message.content
        await client.chat([{"role": "user", "content": "hi"}, message, {"role": "user", "content": "and?"}],
                          model="fake-chat")
        sent = fake(gw).last_request
    assert sent is not None
    assert sent.messages[1].parts == [*sent_thoughts(), ContentPart(text="Hello!")]


async def test_an_answer_without_parts_becomes_a_plain_text_message() -> None:
    answer = portico.CompletionResponse(content="plain", tool_calls=[portico.ToolCall(id="x", name="f")])
    message = portico.assistant_message(answer)
    assert (message.content, list(message.parts), [c.id for c in message.tool_calls]) == ("plain", [], ["x"])


async def test_media_helpers_send_bytes_files_and_urls(tmp_path: Path) -> None:
    photo = tmp_path / "photo.jpeg"
    photo.write_bytes(b"\xff\xd8\xff\xe0 jpeg bytes")
    async with running_gateway(config()) as gw, portico.AsyncClient(gw.address) as client:
        await client.chat([{"role": "user", "parts": [
            "Compare these:",
            portico.image(PNG, detail="high"),
            portico.image(photo),
            portico.document("https://example.com/files/report.pdf?version=2"),
            portico.image("gs://bucket/cat.webp"),
            portico.document(b"plain text notes", mime_type="text/plain"),
        ]}], model="fake-chat")
        sent = fake(gw).last_request
    assert sent is not None
    assert [p.media for p in sent.messages[0].parts[1:]] == [
        MediaPart(mime_type="image/png", data=PNG, detail="high"),
        MediaPart(mime_type="image/jpeg", data=b"\xff\xd8\xff\xe0 jpeg bytes"),
        MediaPart(mime_type="application/pdf", uri="https://example.com/files/report.pdf?version=2"),
        MediaPart(mime_type="image/webp", uri="gs://bucket/cat.webp"),
        MediaPart(mime_type="text/plain", data=b"plain text notes"),
    ]


async def test_unrecognised_bytes_without_a_type_fail_naming_the_field_and_request_id() -> None:
    async with running_gateway(config()) as gw, portico.AsyncClient(gw.address) as client:
        with pytest.raises(portico.InvalidArgumentError) as info:
            await client.chat([{"role": "user", "parts": ["what is this?", portico.media(b"\x00\x01")]}],
                              model="fake-chat", request_id="debug-me-1")
    assert [v.field for v in info.value.field_violations] == ["messages[0].parts[1].media.mime_type"]
    assert info.value.request_id == "debug-me-1"


async def test_the_request_id_option_reaches_the_gateway_for_chat_and_embed() -> None:
    async with running_gateway(config()) as gw, portico.AsyncClient(gw.address) as client:
        await client.chat("hi", model="fake-chat", request_id="chat-1")
        assert fake(gw).last_call.request_id == "chat-1"
        with pytest.raises(portico.NotFoundError) as info:
            await client.embed("x", model="nope", request_id="embed-1")
    assert info.value.request_id == "embed-1"


async def test_providers_returns_every_page() -> None:
    async with running_gateway(config(providers=120)) as gw:
        async with portico.AsyncClient(gw.address) as client:
            names = [p.name for p in await client.providers()]
        with portico.Client(gw.address) as sync_client:
            sync_names = [p.name for p in await asyncio.to_thread(sync_client.providers)]
    assert names == sync_names == ["fake", *(f"extra{i:03d}" for i in range(119))]


def test_media_refuses_what_it_cannot_send() -> None:
    with pytest.raises(TypeError):
        portico.media(42)  # type: ignore[arg-type]
    with pytest.raises(FileNotFoundError):
        portico.image("no/such/file.png")


async def test_parts_as_dicts_reach_the_gateway() -> None:
    async with running_gateway(config()) as gw, portico.AsyncClient(gw.address) as client:
        await client.chat([
            {"role": "user", "parts": [{"text": "see"}, {"media": {"uri": "https://example.com/a.png"}},
                                       {"media": "https://example.com/b.gif"}]},
            {"role": "assistant", "parts": [{"reasoning": {"text": "hm", "signature": "s1", "source": "fake"}},
                                            {"text": "ok"}]},
            {"role": "user", "content": "again"},
        ], model="fake-chat")
        sent = fake(gw).last_request
    assert sent is not None
    assert [p.media.uri for p in sent.messages[0].parts[1:] if p.media] == [
        "https://example.com/a.png", "https://example.com/b.gif",
    ]
    assert sent.messages[1].parts[0] == ContentPart(reasoning=ReasoningPart(text="hm", signature="s1", source="fake"))


def test_unknown_keys_in_a_part_dict_fail_before_sending() -> None:
    with portico.Client("127.0.0.1:1") as client, \
            pytest.raises(ValueError, match=r"messages\[0\]\.parts\[0\]\.reasoning: unknown key"):
        client.chat([{"role": "assistant", "parts": [{"reasoning": {"thinking": "x"}}]}], model="m")
