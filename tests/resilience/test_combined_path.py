"""The whole call path through a running gateway: the router's plan (aliases with
fallbacks, groups) run by the dispatcher with real rate limits, breakers and retries,
against loopback upstreams, read back through the Python client and `ListProviders`."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import grpc
import portico
import pytest
from faults import CHAT_PATH, USER, attempts_of, completion, error, openai_provider, stream_reply
from harness import RunningGateway, eventually, rpc_details, running_gateway
from portico.v1 import llm_service_pb2 as pb
from upstream import Received, Reply, Upstream

NO_RETRY = {"enabled": False}


def chain(first: Upstream, second: Upstream, **first_settings: Any) -> dict[str, Any]:
    """`chat`: first/gpt-4o, falling back to second/gpt-4o."""
    return {
        "providers": [openai_provider("first", first, retry=NO_RETRY, **first_settings),
                      openai_provider("second", second)],
        "aliases": {"chat": {"target": "first/gpt-4o", "fallbacks": ["second/gpt-4o"]}},
    }


async def test_the_client_reads_the_measured_trace_of_a_fallback() -> None:
    async with Upstream() as first, Upstream() as second:
        first.always("POST", CHAT_PATH, error(503))
        second.add("POST", CHAT_PATH, completion("from the second"))
        async with running_gateway(chain(first, second)) as gw, portico.AsyncClient(gw.address) as client:
            response = await client.chat("hello", model="chat")

    assert (response.provider, response.content) == ("second", "from the second")
    assert [(a.provider, a.model, a.outcome, a.status, a.reason) for a in response.attempts] == [
        ("first", "gpt-4o", "error", "UNAVAILABLE", "ERROR_REASON_UPSTREAM_UNAVAILABLE"),
        ("second", "gpt-4o", "ok", "OK", ""),
    ]
    assert all(a.duration_ms > 0 for a in response.attempts)
    assert response.overhead_ms is not None and response.overhead_ms >= 0


async def test_restart_through_the_gateway_keeps_only_the_next_targets_answer() -> None:
    async with Upstream() as first, Upstream() as second:
        first.add("POST", CHAT_PATH, stream_reply(["one ", "two ", "three ", "four"], drop_after=3))
        second.add("POST", CHAT_PATH, stream_reply(["a whole ", "new answer"]))
        async with (running_gateway(chain(first, second)) as gw, portico.AsyncClient(gw.address) as client,
                    client.stream("hello", model="chat", stream_failover="restart") as stream):
                chunks = [chunk async for chunk in stream]
                response = await stream.get_final_response()

    assert "".join(c.content for c in chunks[:3]) == "one two three "
    assert chunks[3].HasField("failover")
    assert (chunks[3].failover.provider, chunks[3].failover.model) == ("second", "gpt-4o")
    assert chunks[3].failover.reason == "ERROR_REASON_UPSTREAM_CONNECTION"
    assert response.content == stream.text == "a whole new answer"
    assert [(f.provider, f.reason) for f in stream.failovers] == [("second", "ERROR_REASON_UPSTREAM_CONNECTION")]
    assert [(a.provider, a.outcome) for a in response.attempts] == [("first", "error"), ("second", "ok")]
    # The next target got the caller's request as it was.
    assert second.last(CHAT_PATH).json()["messages"] == [{"role": "user", "content": "hello"}]


async def test_continue_through_the_gateway_hands_the_partial_text_on() -> None:
    async with Upstream() as first, Upstream() as second:
        first.add("POST", CHAT_PATH, stream_reply(["one ", "two ", "three ", "four"], drop_after=3))
        second.add("POST", CHAT_PATH, stream_reply(["four ", "five"]))
        async with (running_gateway(chain(first, second)) as gw, portico.AsyncClient(gw.address) as client,
                    client.stream("hello", model="chat", stream_failover="continue") as stream):
                response = await stream.get_final_response()

    assert second.last(CHAT_PATH).json()["messages"][-1] == {"role": "assistant", "content": "one two three "}
    assert response.content == "one two three four five"
    assert [f.mode for f in stream.failovers] == [portico.StreamFailover.Value("STREAM_FAILOVER_CONTINUE")]


async def test_a_context_window_failure_goes_to_the_larger_target_with_both_attempts_traced() -> None:
    too_long = Reply(400, {"content-type": "application/json"},
                     b'{"error": {"message": "This model\'s maximum context length is 8192 tokens",'
                     b' "type": "invalid_request_error", "code": "context_length_exceeded"}}')
    async with Upstream() as small, Upstream() as large:
        small.always("POST", CHAT_PATH, too_long)
        large.add("POST", CHAT_PATH, completion("it fits here"))
        config = {
            "providers": [openai_provider("small", small), openai_provider("large", large)],
            "aliases": {"chat": {"target": "small/gpt-4o", "context_window_fallbacks": ["large/gpt-4o"]}},
        }
        async with running_gateway(config) as gw:
            call = gw.stub.Chat(pb.ChatRequest(model="chat", messages=[USER]))
            reply = await call
            trailers = await call.trailing_metadata()

    assert (reply.provider, reply.content) == ("large", "it fits here")
    assert len(small.received) == 1  # a request too long is not retried
    assert [(a["provider"], a["reason"]) for a in attempts_of(trailers)] == [
        ("small", "ERROR_REASON_CONTEXT_LENGTH_EXCEEDED"), ("large", "")]


def held(release: asyncio.Event) -> Callable[[Received], Any]:
    async def answer(received: Received) -> Reply:
        await release.wait()
        return completion("held")
    return answer


async def provider_info(gw: RunningGateway, name: str) -> pb.ProviderInfo:
    listed = await gw.stub.ListProviders(pb.ListProvidersRequest())
    return next(p for p in listed.providers if p.name == name)


async def test_queue_depth_shows_in_list_providers_and_a_full_target_falls_back() -> None:
    release = asyncio.Event()
    async with Upstream() as first, Upstream() as second:
        first.respond("POST", CHAT_PATH, held(release))
        second.always("POST", CHAT_PATH, completion("from the second"))
        config = chain(first, second, limits={"concurrency": 1, "queue": 1})
        async with running_gateway(config) as gw:
            holder = asyncio.ensure_future(gw.stub.Chat(pb.ChatRequest(provider="first", messages=[USER])))
            await eventually(lambda: len(first.received) == 1, "the first call reached the upstream")
            waiting = asyncio.ensure_future(gw.stub.Chat(pb.ChatRequest(provider="first", messages=[USER])))
            for _ in range(2000):
                if (await provider_info(gw, "first")).queue_depth == 1:
                    break
            else:
                pytest.fail("the second call never showed as queued")
            # The queue is full: a call over the chain is refused by `first` and goes on.
            call = gw.stub.Chat(pb.ChatRequest(model="chat", messages=[USER]))
            reply = await call
            trailers = await call.trailing_metadata()
            # A call naming `first` alone has nowhere to go.
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await gw.stub.Chat(pb.ChatRequest(provider="first", messages=[USER]))
            release.set()
            await asyncio.gather(holder, waiting)
            after = await provider_info(gw, "first")

    assert reply.provider == "second"
    assert [(a["provider"], a["outcome"], a["status"]) for a in attempts_of(trailers)] == [
        ("first", "skipped", "RESOURCE_EXHAUSTED"), ("second", "ok", "OK")]
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert rpc_details(info.value)["retry_delay"] > 0
    assert after.queue_depth == 0 and after.in_flight == 0


async def test_an_open_breaker_refuses_at_once_and_names_the_time_left() -> None:
    async with Upstream() as up:
        up.always("POST", CHAT_PATH, error(503))
        config = {"providers": [openai_provider("openai", up, retry=NO_RETRY, breaker={"failures": 2})]}
        async with running_gateway(config) as gw:
            for _ in range(2):
                with pytest.raises(grpc.aio.AioRpcError):
                    await gw.stub.Chat(pb.ChatRequest(model="gpt-4o", messages=[USER]))
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await gw.stub.Chat(pb.ChatRequest(model="gpt-4o", messages=[USER]))
            listed = await provider_info(gw, "openai")

    assert len(up.received) == 2
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    assert rpc_details(info.value)["reason"] == "ERROR_REASON_CIRCUIT_OPEN"
    assert 0 < rpc_details(info.value)["retry_delay"] <= 30
    assert listed.breaker_state == pb.BREAKER_STATE_OPEN
