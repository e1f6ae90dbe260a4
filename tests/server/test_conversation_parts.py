"""Reasoning and media parts through a real gateway: what a turn returns comes back
unchanged on the next, and malformed parts are refused with the path of each field."""

from __future__ import annotations

import grpc
import pytest
from harness import rpc_details, running_gateway
from portico.v1 import llm_service_pb2 as pb
from portico.v1 import types_pb2 as t
from portico_server.domain import ContentPart, MediaPart, ReasoningPart, Role

# Signatures and payloads as providers send them: long, base64 with + / =, opaque.
THOUGHTS = [
    {"text": "The user wants the weather; ünïcödé and \"quotes\" survive.",
     "signature": "EqQBCkYIBxgCKkDv+/3Q==" + "A" * 300, "source": "anthropic"},
    {"redacted": "RVJST1JfUkVEQUNURUQ=" + "z" * 200, "source": "anthropic"},
    {"signature": "CiQB0e2Kb" + "/+" * 100, "source": "gemini"},
]
WEATHER_CALL = {"name": "get_weather", "arguments": '{"city": "Paris"}', "id": "toolu_01"}


def config(*replies: dict) -> dict:
    return {"providers": [{"name": "fake", "kind": "fake", "models": ["fake-chat"], "default_model": "fake-chat",
                           "options": {"chunk_size": 5, "replies": list(replies)}}]}


def user(text: str) -> t.Message:
    return t.Message(role=t.ROLE_USER, content=text)


def expected_parts() -> list[ContentPart]:
    return [ContentPart(reasoning=ReasoningPart(**{"text": "", "signature": "", "redacted": "", **th}))
            for th in THOUGHTS]


async def test_reasoning_parts_of_turn_one_come_back_byte_identical_in_turn_two():
    turn_one = {"reasoning_parts": THOUGHTS, "tool_calls": [WEATHER_CALL], "metadata": {"response_id": "msg_1"}}
    async with running_gateway(config(turn_one, {"content": "Sunny."})) as gw:
        first = await gw.stub.Chat(pb.ChatRequest(model="fake-chat", messages=[user("weather in Paris?")]))
        assert [p.WhichOneof("part") for p in first.parts] == ["reasoning"] * 3
        assert first.metadata["response_id"] == "msg_1"
        history = [
            user("weather in Paris?"),
            t.Message(role=t.ROLE_ASSISTANT, parts=first.parts, tool_calls=first.tool_calls),
            t.Message(role=t.ROLE_TOOL, tool_call_id=first.tool_calls[0].id, content='{"sky": "clear"}'),
        ]
        second = await gw.stub.Chat(pb.ChatRequest(model="fake-chat", messages=history))
        sent = gw.provider("fake").last_request
    assert second.content == "Sunny."
    assert sent is not None
    assistant = sent.messages[1]
    assert assistant.role is Role.ASSISTANT
    assert assistant.parts == expected_parts()
    calls = [(c.id, c.name, c.arguments) for c in assistant.tool_calls]
    assert calls == [("toolu_01", "get_weather", '{"city": "Paris"}')]


async def test_the_final_stream_chunk_carries_the_parts_and_first_and_final_carry_metadata():
    turn_one = {"reasoning_parts": THOUGHTS, "content": "Let me look.", "metadata": {"response_id": "msg_2"}}
    async with running_gateway(config(turn_one, {"content": "ok"})) as gw:
        chunks = [c async for c in gw.stub.StreamChat(pb.ChatRequest(model="fake-chat", messages=[user("hi")]))]
        final = chunks[-1]
        assert final.final and not any(c.final for c in chunks[:-1])
        assert chunks[0].metadata["response_id"] == "msg_2" and final.metadata["response_id"] == "msg_2"
        assert all(not c.metadata for c in chunks[1:-1])
        assert [p.WhichOneof("part") for p in final.parts] == ["reasoning"] * 3 + ["text"]
        assert final.parts[-1].text == "Let me look."
        # What the stream streamed as reasoning text is the thoughts' readable text.
        assert "".join(c.reasoning_content for c in chunks) == THOUGHTS[0]["text"]
        await gw.stub.Chat(pb.ChatRequest(model="fake-chat", messages=[
            user("hi"), t.Message(role=t.ROLE_ASSISTANT, parts=final.parts), user("go on"),
        ]))
        sent = gw.provider("fake").last_request
    assert sent is not None
    assert sent.messages[1].parts == [*expected_parts(), ContentPart(text="Let me look.")]


PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 16


@pytest.mark.parametrize(("part", "field"), [
    (t.ContentPart(media=t.Media()), "messages[0].parts[1].media"),
    (t.ContentPart(media=t.Media(data=b"")), "messages[0].parts[1].media.data"),
    (t.ContentPart(media=t.Media(data=b"plain bytes")), "messages[0].parts[1].media.mime_type"),
    (t.ContentPart(media=t.Media(data=PNG, mime_type="png")), "messages[0].parts[1].media.mime_type"),
    (t.ContentPart(media=t.Media(uri="file:///etc/passwd")), "messages[0].parts[1].media.uri"),
    (t.ContentPart(media=t.Media(uri="data:image/png,notbase64")), "messages[0].parts[1].media.uri"),
    (t.ContentPart(reasoning=t.Reasoning(text="a thought", signature="sig")), "messages[0].parts[1].reasoning"),
    (t.ContentPart(), "messages[0].parts[1]"),
])
async def test_malformed_parts_are_refused_naming_the_field(part, field):
    request = pb.ChatRequest(model="fake-chat", messages=[t.Message(role=t.ROLE_USER, parts=[
        t.ContentPart(text="look:"), part,
    ])])
    async with running_gateway(config()) as gw:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await gw.stub.Chat(request)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert [f for f, _ in rpc_details(info.value)["violations"]] == [field]


async def test_every_bad_part_is_reported_at_once():
    request = pb.ChatRequest(model="fake-chat", messages=[
        t.Message(role=t.ROLE_SYSTEM, parts=[t.ContentPart(reasoning=t.Reasoning(text="x"))]),
        t.Message(role=t.ROLE_USER, parts=[t.ContentPart(media=t.Media(uri="ftp://x/y.png")),
                                           t.ContentPart(media=t.Media(data=b"??"))]),
        t.Message(role=t.ROLE_ASSISTANT, parts=[t.ContentPart(reasoning=t.Reasoning(source="anthropic"))]),
    ])
    async with running_gateway(config()) as gw:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await gw.stub.Chat(request)
    assert [f for f, _ in rpc_details(info.value)["violations"]] == [
        "messages[0].parts[0].reasoning",
        "messages[1].parts[0].media.uri",
        "messages[1].parts[1].media.mime_type",
        "messages[2].parts[0].reasoning",
    ]


async def test_media_reaches_the_provider_with_a_recognised_type_filled_in():
    request = pb.ChatRequest(model="fake-chat", messages=[t.Message(role=t.ROLE_USER, parts=[
        t.ContentPart(text="compare"),
        t.ContentPart(media=t.Media(data=PNG, detail="low")),
        t.ContentPart(media=t.Media(data=b"%PDF-1.7 ...")),
        t.ContentPart(media=t.Media(uri="https://example.com/report.pdf", mime_type="application/pdf")),
    ])])
    async with running_gateway(config()) as gw:
        reply = await gw.stub.Chat(request)
        sent = gw.provider("fake").last_request
    assert reply.content == "compare"
    assert sent is not None
    assert [p.media for p in sent.messages[0].parts[1:]] == [
        MediaPart(mime_type="image/png", data=PNG, detail="low"),
        MediaPart(mime_type="application/pdf", data=b"%PDF-1.7 ..."),
        MediaPart(mime_type="application/pdf", uri="https://example.com/report.pdf"),
    ]
