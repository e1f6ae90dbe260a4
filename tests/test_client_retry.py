"""The Python client re-sends a call only when the gateway says no generation started.

Two kinds of evidence. With the `fake` provider, scripted replies are consumed one per
request the gateway receives, so what the *next* call answers shows how many requests the
previous one made. At the network edge, a loopback OpenAI-compatible server counts the
requests it received: an upstream 500, a malformed body or a cut-off answer must reach
the provider exactly once, however the client is configured by default.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable
from typing import Any, TypeVar

import portico
import pytest
from harness import running_gateway
from upstream import Reply, Upstream, fixture

T = TypeVar("T")

UNSAFE = {"error": {"reason": "UPSTREAM_UNAVAILABLE", "message": "upstream said 500"}}
OVERLOADED = {"error": {"reason": "UPSTREAM_OVERLOADED", "message": "upstream said 529"}}
SHUTTING_DOWN = {"error": {"reason": "SHUTTING_DOWN", "message": "draining"}}
REFUSED = {"error": {"reason": "UPSTREAM_CONNECTION", "message": "connection refused", "retry_safe": True}}
#: Fast retries keep the tests quick; the rule under test does not depend on the timing.
QUICK = portico.RetryPolicy(initial_backoff=0.01, max_backoff=0.05)


def fake_config(replies: list[dict[str, Any]]) -> dict[str, Any]:
    # The client's own retries are under test: the gateway's are off.
    return {"providers": [{"name": "fake", "kind": "fake", "models": ["fake-chat"], "retry": {"enabled": False},
                           "options": {"replies": replies, "chunk_size": 4}}]}


async def in_thread(fn: Callable[[], T]) -> T:
    return await asyncio.to_thread(fn)


# -- against the fake provider ---------------------------------------------------------


async def test_unsafe_unavailable_is_attempted_once_by_chat_and_stream() -> None:
    replies = [UNSAFE, {"content": "one"}, UNSAFE, {"content": "two"}, UNSAFE, {"content": "three"}]
    async with running_gateway(fake_config(replies)) as gw:
        async with portico.AsyncClient(gw.address, retry=QUICK) as client:
            with pytest.raises(portico.UnavailableError) as caught:
                await client.chat("hi")
            # Had the client retried, the first call would have consumed "one".
            assert (await client.chat("hi")).content == "one"
            with pytest.raises(portico.UnavailableError):
                async with client.stream("hi") as stream:
                    await stream.get_final_response()
            assert (await client.chat("hi")).content == "two"
        with portico.Client(gw.address, retry=QUICK) as sync_client:
            with pytest.raises(portico.UnavailableError) as sync_caught:
                await in_thread(lambda: sync_client.chat("hi"))
            assert (await in_thread(lambda: sync_client.chat("hi"))).content == "three"

    for error in (caught.value, sync_caught.value):
        assert error.reason == "ERROR_REASON_UPSTREAM_UNAVAILABLE"
        assert error.metadata["retry_safe"] == "false" and error.retry_safe is False


@pytest.mark.parametrize("failure", [OVERLOADED, SHUTTING_DOWN, REFUSED],
                         ids=["overloaded", "shutting-down", "refused"])
async def test_safe_unavailable_is_retried_until_it_succeeds(failure: dict[str, Any]) -> None:
    replies = [failure, failure, {"content": "third time lucky"}, {"content": "next"},
               failure, {"content": "sync lucky"}]
    async with running_gateway(fake_config(replies)) as gw:
        async with portico.AsyncClient(gw.address, retry=QUICK) as client:
            assert (await client.chat("hi")).content == "third time lucky"
            # Exactly three requests: the fourth reply is still queued.
            assert (await client.chat("hi")).content == "next"
        with portico.Client(gw.address, retry=QUICK) as sync_client:
            assert (await in_thread(lambda: sync_client.chat("hi"))).content == "sync lucky"


async def test_attempts_stop_at_the_policy_limit_and_retry_none_turns_them_off() -> None:
    replies = [OVERLOADED, OVERLOADED, {"content": "fourth"}, OVERLOADED, {"content": "after"}]
    async with running_gateway(fake_config(replies)) as gw:
        async with portico.AsyncClient(gw.address, retry=portico.RetryPolicy(
            max_attempts=2, initial_backoff=0.01, max_backoff=0.05,
        )) as twice:
            with pytest.raises(portico.UnavailableError) as caught:
                await twice.chat("hi")
            assert (await twice.chat("hi")).content == "fourth"
        async with portico.AsyncClient(gw.address, retry=None) as once:
            with pytest.raises(portico.UnavailableError):
                await once.chat("hi")
            assert (await once.chat("hi")).content == "after"

    assert caught.value.reason == "ERROR_REASON_UPSTREAM_OVERLOADED" and caught.value.retry_safe


async def test_stream_is_retried_before_its_first_chunk_and_never_after() -> None:
    midstream = {"content": "partial answer", "error": {"reason": "UPSTREAM_OVERLOADED", "after_chunks": 1}}
    replies = [OVERLOADED, {"content": "streamed"}, midstream, {"content": "still queued"}]
    async with running_gateway(fake_config(replies)) as gw:
        async with portico.AsyncClient(gw.address, retry=QUICK) as client:
            async with client.stream("hi") as stream:
                assert (await stream.get_final_response()).content == "streamed"
            texts: list[str] = []
            with pytest.raises(portico.UnavailableError) as caught:
                async with client.stream("hi") as broken:
                    async for text in broken.text_stream:
                        texts.append(text)
            assert (await client.chat("hi")).content == "still queued"
        assert texts == ["part"]

    # Overloaded is retry-safe by itself, but not once the caller holds part of an answer.
    assert caught.value.reason == "ERROR_REASON_UPSTREAM_OVERLOADED"
    assert caught.value.metadata["retry_safe"] == "false"


async def test_sync_stream_is_retried_before_its_first_chunk() -> None:
    async with running_gateway(fake_config([SHUTTING_DOWN, {"content": "hello there"}])) as gw:
        with portico.Client(gw.address, retry=QUICK) as client:
            def read() -> str:
                with client.stream("hi") as stream:
                    return "".join(stream.text_stream)

            assert await in_thread(read) == "hello there"


async def test_retry_info_delay_is_honoured_but_never_past_the_deadline() -> None:
    slow_down = {"error": {"reason": "UPSTREAM_OVERLOADED", "message": "busy", "retry_after": 30}}
    async with (
        running_gateway(fake_config([slow_down, {"content": "too late"}])) as gw,
        portico.AsyncClient(gw.address, retry=QUICK, timeout=2) as client,
    ):
        started = time.monotonic()
        with pytest.raises(portico.UnavailableError) as caught:
            await client.chat("hi")
        elapsed = time.monotonic() - started
        # The 30 s wait would outlast the 2 s deadline, so the error came back at once
        # and the second reply is still there.
        assert (await client.chat("hi")).content == "too late"

    assert caught.value.retry_after == pytest.approx(30)
    assert elapsed < 2


# -- RESOURCE_EXHAUSTED: a rate limit with RetryInfo is waited out, exactly ------------------

RATE_LIMITED = {"error": {"reason": "UPSTREAM_RATE_LIMITED", "message": "slow down", "retry_after": 0.3}}
#: What "about the hinted delay" allows: never sooner, and well before a second wait would end.
HINT = 0.3
SLACK = 1.5


async def test_a_rate_limit_is_retried_once_after_the_hinted_delay() -> None:
    replies = [RATE_LIMITED, {"content": "ok"}, {"content": "still queued"},
               RATE_LIMITED, {"content": "async stream ok"},
               RATE_LIMITED, {"content": "sync ok"}, RATE_LIMITED, {"content": "streamed ok"}]
    async with running_gateway(fake_config(replies)) as gw:
        async with portico.AsyncClient(gw.address) as client:  # the default policy
            started = time.monotonic()
            answer = await client.chat("hi")
            waited = time.monotonic() - started
            # Exactly one retry: the next reply is still there.
            assert (await client.chat("hi")).content == "still queued"
            started = time.monotonic()
            async with client.stream("hi") as async_stream:
                async_streamed = await async_stream.get_final_response()
            async_stream_waited = time.monotonic() - started
        with portico.Client(gw.address) as sync_client:
            started = time.monotonic()
            sync_answer = await in_thread(lambda: sync_client.chat("hi"))
            sync_waited = time.monotonic() - started

            def stream() -> Any:
                with sync_client.stream("hi") as chunks:
                    return chunks.get_final_response()

            started = time.monotonic()
            streamed = await in_thread(stream)
            stream_waited = time.monotonic() - started

    assert [a.content for a in (answer, async_streamed, sync_answer, streamed)] == [
        "ok", "async stream ok", "sync ok", "streamed ok",
    ]
    for elapsed in (waited, async_stream_waited, sync_waited, stream_waited):
        assert HINT <= elapsed < HINT + SLACK
    # The answer's trace is the successful attempt's: the gateway's own retries are off.
    assert [(a.provider, a.outcome, a.status) for a in answer.attempts] == [("fake", "ok", "OK")]
    assert answer.overhead_ms is not None and answer.overhead_ms >= 0


async def test_exhaustion_without_a_delay_or_marked_unsafe_is_not_retried() -> None:
    quota = {"error": {"reason": "UPSTREAM_QUOTA_EXCEEDED", "message": "out of credit"}}
    unsafe_limit = {"error": {"reason": "UPSTREAM_RATE_LIMITED", "retry_after": 0.01, "retry_safe": False}}
    async with running_gateway(fake_config([quota])) as gw, portico.AsyncClient(gw.address, retry=QUICK) as client:
        with pytest.raises(portico.ResourceExhaustedError) as spent:
            await client.chat("hi")
    async with (
        running_gateway(fake_config([unsafe_limit, {"content": "still queued"}])) as gw,
        portico.AsyncClient(gw.address, retry=QUICK) as client,
    ):
        with pytest.raises(portico.ResourceExhaustedError) as unsafe:
            await client.chat("hi")
        assert (await client.chat("hi")).content == "still queued"

    # A spent quota does not refill by waiting: the gateway sends no RetryInfo. (A second
    # attempt would have met the gateway's quota cooldown, with another message.)
    assert spent.value.retry_after is None and spent.value.retry_safe
    assert spent.value.message == "out of credit"
    assert unsafe.value.retry_after == pytest.approx(0.01) and not unsafe.value.retry_safe


async def test_a_hint_over_a_minute_is_handed_to_the_caller_at_once() -> None:
    long_wait = {"error": {"reason": "UPSTREAM_RATE_LIMITED", "message": "come back later", "retry_after": 61}}
    async with (
        running_gateway(fake_config([long_wait, {"content": "still queued"}])) as gw,
        # No deadline at all: only the 60 s cap stops the client from waiting.
        portico.AsyncClient(gw.address, timeout=None) as client,
    ):
        started = time.monotonic()
        with pytest.raises(portico.ResourceExhaustedError) as caught:
            await client.chat("hi")
        elapsed = time.monotonic() - started
        assert (await client.chat("hi")).content == "still queued"

    assert caught.value.retry_after == pytest.approx(61)
    assert elapsed < 10  # bounded, not a 61 s wait


async def test_the_trace_is_readable_on_answers_streams_token_counts_and_errors() -> None:
    attempts = [
        {"provider": "primary", "model": "big", "outcome": "error", "status": "UNAVAILABLE",
         "reason": "ERROR_REASON_UPSTREAM_OVERLOADED", "duration_ms": 12.5},
        {"provider": "fake", "model": "fake-chat", "duration_ms": 3.25, "wait_ms": 200},
    ]
    replies = [{"content": "chat", "attempts": attempts, "overhead_ms": 1.5},
               {"content": "stream", "attempts": attempts, "overhead_ms": 2.5},
               {**UNSAFE, "attempts": attempts[:1], "overhead_ms": 0.75}]
    async with running_gateway(fake_config(replies)) as gw, portico.AsyncClient(gw.address, retry=None) as client:
        answer = await client.chat("hi")
        async with client.stream("hi") as stream:
            async for _ in stream:
                pass
        with pytest.raises(portico.UnavailableError) as caught:
            await client.chat("hi")
        tokens = await client.count_tokens("hi")

    expected = [
        portico.Attempt("primary", "big", "error", "UNAVAILABLE", "ERROR_REASON_UPSTREAM_OVERLOADED", 12.5, 0.0),
        portico.Attempt("fake", "fake-chat", "ok", "OK", "", 3.25, 200.0),
    ]
    assert (answer.attempts, answer.overhead_ms) == (expected, 1.5)
    assert (stream.attempts, stream.overhead_ms) == (expected, 2.5)
    assert (caught.value.attempts, caught.value.overhead_ms) == (expected[:1], 0.75)
    # Counting tokens is measured, not scripted: one attempt at the fake.
    assert [(a.provider, a.outcome) for a in tokens.attempts] == [("fake", "ok")]
    assert tokens.overhead_ms is not None


def test_backoff_is_full_jitter_up_to_the_doubling_ceiling() -> None:
    policy = portico.RetryPolicy()  # 0.2 s doubling to 5 s
    for retry, ceiling in [(1, 0.2), (2, 0.4), (3, 0.8), (6, 5.0), (9, 5.0)]:
        waits = [policy.backoff(retry) for _ in range(400)]
        assert all(0 <= wait <= ceiling for wait in waits)
        # Spread over the whole range, not only its upper half.
        assert min(waits) < ceiling / 4 and max(waits) > ceiling * 3 / 4
    assert (policy.max_attempts, policy.initial_backoff, policy.max_backoff) == (3, 0.2, 5.0)


# -- at the network edge: an OpenAI-compatible upstream that counts requests -----------

KEY = "sk-test-retry-0123456789"
CHAT_PATH = "/v1/chat/completions"
JSON = {"content-type": "application/json"}
SSE = {"content-type": "text/event-stream"}


def openai_config(url: str) -> dict[str, Any]:
    # What the client re-sends is under test: the gateway's own retries are off.
    return {"providers": [{"name": "openai", "kind": "openai", "api_key": KEY, "retry": {"enabled": False},
                           "base_url": f"{url}/v1", "models": ["gpt-4o"]}]}


def default_openai_config(url: str) -> dict[str, Any]:
    return {"providers": [{"name": "openai", "kind": "openai", "api_key": KEY,
                           "base_url": f"{url}/v1", "models": ["gpt-4o"]}]}


STREAM = fixture("openai/stream_text_short.sse")
UNSAFE_UPSTREAM_REPLIES = {
    "500": (Reply(500, JSON, b'{"error": {"message": "The server had an error", "type": "server_error"}}'), False),
    "malformed-body": (Reply(200, JSON, b'{"id": "chatcmpl-1", "choices": [{"mess'), False),
    "not-json": (Reply(200, JSON, b"<html>upstream proxy error</html>"), False),
    "cut-off-body": (Reply(200, JSON, fixture("openai/chat_text.json"), reset_after=40), False),
    "cut-off-stream-before-any-chunk": (Reply(200, SSE, STREAM, reset_after=0), True),
    "cut-off-stream-midway": (Reply(200, SSE, STREAM, reset_after=len(STREAM) // 2), True),
    # "Overloaded" alone would be retry-safe, but here the provider had already accepted the
    # request with a 200: a generation may have started.
    "overloaded-event-in-an-accepted-stream": (
        Reply(200, SSE, b'data: {"error": {"message": "Overloaded", "type": "overloaded_error"}}\n\n'), True,
    ),
}


@pytest.mark.parametrize("case", list(UNSAFE_UPSTREAM_REPLIES))
async def test_a_failed_upstream_generation_is_requested_exactly_once(case: str) -> None:
    reply, streamed = UNSAFE_UPSTREAM_REPLIES[case]
    # Every default: the gateway's own retries and the client's.
    async with Upstream() as up, running_gateway(default_openai_config(up.url)) as gw:
        up.add("POST", CHAT_PATH, reply)
        up.always("POST", CHAT_PATH, Reply(200, JSON, fixture("openai/chat_text.json")))
        with portico.Client(gw.address, timeout=30) as client:  # the default retry policy
            def call() -> Any:
                if streamed:
                    with client.stream("hi", model="gpt-4o") as stream:
                        return stream.get_final_response()
                return client.chat("hi", model="gpt-4o")

            with pytest.raises(portico.UnavailableError) as caught:
                await in_thread(call)
        requests = [r for r in up.received if r.path == CHAT_PATH]

    assert len(requests) == 1
    assert caught.value.domain == "portico"
    assert caught.value.metadata["retry_safe"] == "false"


@pytest.mark.parametrize("status", [503, 529])
async def test_an_upstream_that_refused_the_work_is_asked_again(status: int) -> None:
    body = b'{"error": {"message": "overloaded, try again", "type": "overloaded_error"}}'
    async with Upstream() as up, running_gateway(openai_config(up.url)) as gw:
        up.add("POST", CHAT_PATH, Reply(status, JSON, body))
        up.add("POST", CHAT_PATH, Reply(200, JSON, fixture("openai/chat_text.json")))
        with portico.Client(gw.address, retry=QUICK, timeout=30) as client:
            answer = await in_thread(lambda: client.chat("hi", model="gpt-4o"))
        requests = [r for r in up.received if r.path == CHAT_PATH]

    assert answer.content == "Oi!"
    assert len(requests) == 2


async def test_a_refused_upstream_connection_is_retry_safe() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    # Nothing listens on closed_port: the request cannot have been written.
    async with (
        running_gateway(openai_config(f"http://127.0.0.1:{closed_port}")) as gw,
        portico.AsyncClient(gw.address, retry=None, timeout=30) as client,
    ):
        with pytest.raises(portico.UnavailableError) as caught:
            await client.chat("hi", model="gpt-4o")

    assert caught.value.reason == "ERROR_REASON_UPSTREAM_CONNECTION"
    assert caught.value.retry_safe is True


def test_a_retry_policy_that_makes_no_sense_is_refused() -> None:
    with pytest.raises(ValueError, match="max_attempts"):
        portico.RetryPolicy(max_attempts=0)
    with pytest.raises(ValueError, match="initial_backoff"):
        portico.RetryPolicy(initial_backoff=10, max_backoff=1)
