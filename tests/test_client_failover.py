"""Mid-stream failover markers and the attempt trace, through the Python client against a
real gateway. The `fake` provider acts out a target failing after three chunks and
another taking over (the request's `stream_failover` decides what the gateway does), and
scripts the attempt trace the gateway returns in its trailers."""

from __future__ import annotations

import asyncio
from typing import Any

import portico
import pytest
from harness import running_gateway
from portico_server import domain
from portico_server.providers.fake import FakeProvider

FIRST = "one two three four five six"  # chunk_size 4: "one ", "two ", "thre" are sent
SECOND = "the backup answer"
ATTEMPTS = [
    {"provider": "primary", "model": "big", "outcome": "error", "status": "UNAVAILABLE",
     "reason": "ERROR_REASON_UPSTREAM_UNAVAILABLE", "duration_ms": 41.5, "wait_ms": 0},
    {"provider": "backup", "model": "small", "outcome": "ok", "status": "OK", "reason": "",
     "duration_ms": 120.25, "wait_ms": 500},
]
DROP = {"content": FIRST, "failover": {
    "after_chunks": 3, "provider": "backup", "model": "small", "reason": "UPSTREAM_UNAVAILABLE",
    "then": {"content": SECOND},
}}


def config(replies: list[dict[str, Any]]) -> dict[str, Any]:
    return {"providers": [{"name": "fake", "kind": "fake", "models": ["fake-chat"],
                           "options": {"replies": replies, "chunk_size": 4}}]}


def fake(gw: Any) -> FakeProvider:
    provider = gw.provider("fake")
    assert isinstance(provider, FakeProvider)
    return provider


async def test_restart_keeps_only_the_second_answer() -> None:
    seen: list[portico.Failover] = []
    async with running_gateway(config([DROP])) as gw, portico.AsyncClient(gw.address) as client:
        async with client.stream("hi", stream_failover="restart", on_failover=seen.append) as stream:
            chunks = [chunk async for chunk in stream]
            response = await stream.get_final_response()
            text_after = stream.text
        call = fake(gw).last_call

    assert call.stream_failover is domain.StreamFailover.RESTART
    texts = [c.content for c in chunks]
    assert texts[:3] == ["one ", "two ", "thre"]
    marker = chunks[3]
    assert marker.HasField("failover") and not marker.content
    assert marker.failover.mode == portico.StreamFailover.Value("STREAM_FAILOVER_RESTART")
    assert (marker.failover.provider, marker.failover.model) == ("backup", "small")
    assert marker.failover.reason == "ERROR_REASON_UPSTREAM_UNAVAILABLE"
    assert "".join(texts[4:]) == SECOND
    assert response.content == text_after == SECOND
    assert (response.provider, response.model) == ("fake", "small")
    assert [m.provider for m in stream.failovers] == ["backup"] and seen == stream.failovers


async def test_restart_text_stream_goes_on_and_the_final_text_is_the_second_answer() -> None:
    async with running_gateway(config([DROP])) as gw:
        with portico.Client(gw.address) as client:
            def read() -> tuple[list[str], str, list[str]]:
                with client.stream("hi", stream_failover="restart") as stream:
                    pieces = list(stream.text_stream)
                    return pieces, stream.get_final_response().content, [f.provider for f in stream.failovers]

            pieces, final, failovers = await asyncio.to_thread(read)

    assert "".join(pieces) == "one two thre" + SECOND  # handed out live; the marker tells
    assert final == SECOND
    assert failovers == ["backup"]


async def test_continue_carries_on_from_the_text_so_far() -> None:
    async with running_gateway(config([DROP])) as gw, portico.AsyncClient(gw.address) as client:
        async with client.stream("hi", stream_failover="continue") as stream:
            pieces = [piece async for piece in stream.text_stream]
            response = await stream.get_final_response()
        call = fake(gw).last_call

    assert call.stream_failover is domain.StreamFailover.CONTINUE
    assert "".join(pieces) == response.content == "one two thre" + SECOND
    assert [f.mode for f in stream.failovers] == [portico.StreamFailover.Value("STREAM_FAILOVER_CONTINUE")]
    assert response.parts[-1].text == response.content


async def test_without_opting_in_the_stream_fails_after_three_chunks() -> None:
    pieces: list[str] = []
    async with (running_gateway(config([DROP])) as gw, portico.AsyncClient(gw.address) as client,
                client.stream("hi") as stream):
        with pytest.raises(portico.UnavailableError) as info:
            async for piece in stream.text_stream:
                pieces.append(piece)

    assert pieces == ["one ", "two ", "thre"]
    assert info.value.reason == "ERROR_REASON_UPSTREAM_UNAVAILABLE"
    assert stream.failovers == []


async def test_stream_failover_rejects_an_unknown_mode() -> None:
    async with running_gateway(config([])) as gw, portico.AsyncClient(gw.address) as client:
        with pytest.raises(ValueError, match="stream_failover"):
            client.stream("hi", stream_failover="sideways")  # type: ignore[typeddict-item]


# -- the attempt trace --------------------------------------------------------------------


def expected_attempts() -> list[portico.Attempt]:
    return [
        portico.Attempt("primary", "big", "error", "UNAVAILABLE", "ERROR_REASON_UPSTREAM_UNAVAILABLE", 41.5, 0.0),
        portico.Attempt("backup", "small", "ok", "OK", "", 120.25, 500.0),
    ]


async def test_chat_answers_carry_the_attempt_trace() -> None:
    reply = {"content": "hello", "attempts": ATTEMPTS, "overhead_ms": 1.75}
    async with running_gateway(config([reply, reply])) as gw:
        async with portico.AsyncClient(gw.address) as client:
            response = await client.chat("hi")
        with portico.Client(gw.address) as sync_client:
            sync_response = await asyncio.to_thread(lambda: sync_client.chat("hi"))

    for answer in (response, sync_response):
        assert answer.content == "hello"
        assert answer.attempts == expected_attempts()
        assert answer.overhead_ms == 1.75
        assert isinstance(answer.message, portico.CompletionResponse)


async def test_an_answer_passes_back_into_the_next_turn() -> None:
    async with running_gateway(config([{"content": "first"}])) as gw, portico.AsyncClient(gw.address) as client:
        first = await client.chat("hi")
        await client.chat([{"role": "user", "content": "hi"}, first, {"role": "user", "content": "more"}])
        sent = fake(gw).last_request

    assert sent is not None
    assert [m.role for m in sent.messages] == [domain.Role.USER, domain.Role.ASSISTANT, domain.Role.USER]
    assert sent.messages[1].text() == "first"
    # Nothing scripted: the trace is the one the gateway measured.
    assert [(a.provider, a.outcome) for a in first.attempts] == [("fake", "ok")]
    assert first.overhead_ms is not None and first.overhead_ms >= 0


async def test_a_stream_has_the_trace_after_its_end() -> None:
    reply = {**DROP, "attempts": ATTEMPTS, "overhead_ms": 3}
    async with (running_gateway(config([reply])) as gw, portico.AsyncClient(gw.address) as client,
                client.stream("hi", stream_failover="restart") as stream):
        before = list(stream.attempts)
        response = await stream.get_final_response()

    assert before == []
    assert stream.attempts == response.attempts == expected_attempts()
    assert stream.overhead_ms == response.overhead_ms == 3.0


async def test_errors_carry_the_attempt_trace() -> None:
    failing = {"error": {"reason": "UPSTREAM_BAD_REQUEST", "message": "no"}, "attempts": ATTEMPTS[:1],
               "overhead_ms": 0.5}
    async with running_gateway(config([failing, failing])) as gw, portico.AsyncClient(gw.address) as client:
        with pytest.raises(portico.InvalidArgumentError) as unary:
            await client.chat("hi")
        with pytest.raises(portico.InvalidArgumentError) as streamed:
            async with client.stream("hi") as stream:
                await stream.get_final_response()

    for info in (unary, streamed):
        assert info.value.attempts == expected_attempts()[:1]
        assert info.value.overhead_ms == 0.5


async def test_embed_results_read_as_the_message_and_carry_a_trace_field() -> None:
    async with running_gateway(config([])) as gw, portico.AsyncClient(gw.address) as client:
        result = await client.embed(["a", "b"], model="fake-chat")

    assert isinstance(result.message, portico.EmbedResponse)
    assert [e.index for e in result.embeddings] == [0, 1]
    assert result.HasField("usage") and result.provider == "fake"
    assert [(a.provider, a.model, a.status) for a in result.attempts] == [("fake", "fake-chat", "OK")]
    assert result.overhead_ms is not None
