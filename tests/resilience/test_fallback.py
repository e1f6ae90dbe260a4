"""Fallback over a plan of two targets, and what a stream does when its upstream breaks
after the first chunk. The dispatcher runs real providers against loopback upstreams."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import grpc
import pytest
from faults import CHAT_PATH, QUICK_RETRY, USER, attempts_of, completion, error, openai_provider, stream_reply
from harness import rpc_details, running_gateway
from portico.v1 import llm_service_pb2 as pb
from portico_server import errors
from portico_server.call import CallContext
from portico_server.config import parse_config
from portico_server.domain import ChatRequest, Message, Role, StreamChunk, StreamFailover
from portico_server.health import HealthReporter
from portico_server.providers import registry
from portico_server.resilience.dispatcher import Dispatcher
from portico_server.resilience.trace import Trace
from portico_server.router import Plan, Target
from upstream import Upstream

REQUEST = ChatRequest(model="gpt-4o", messages=[Message(role=Role.USER, content="hello")])


@contextlib.asynccontextmanager
async def two_targets(first: Upstream, second: Upstream) -> AsyncIterator[tuple[Dispatcher, Plan]]:
    config = parse_config({"providers": [openai_provider("first", first, retry=QUICK_RETRY),
                                         openai_provider("second", second, retry=QUICK_RETRY)]})
    providers = {p.name: registry.create(p, f"providers[{i}]") for i, p in enumerate(config.providers)}
    health = HealthReporter(providers)
    await health.start(0)
    try:
        yield Dispatcher(health), Plan([Target(providers["first"], "gpt-4o"), Target(providers["second"], "gpt-4o")])
    finally:
        await health.shutdown()
        for provider in providers.values():
            await provider.close()


async def collect(dispatcher: Dispatcher, targets: Plan, call: CallContext, trace: Trace,
                  chunks: list[StreamChunk]) -> None:
    async with contextlib.aclosing(dispatcher.stream(targets, REQUEST, call, trace)) as stream:
        async for chunk in stream:
            chunks.append(chunk)


def texts(chunks: list[StreamChunk]) -> str:
    return "".join(c.content for c in chunks)


async def test_unary_call_falls_back_to_the_second_target() -> None:
    async with Upstream() as first, Upstream() as second:
        first.always("POST", CHAT_PATH, error(503))
        second.add("POST", CHAT_PATH, completion("from the second"))
        async with two_targets(first, second) as (dispatcher, targets):
            trace = Trace()
            result = await dispatcher.chat(targets, REQUEST, CallContext(), trace)

    assert result.content == "from the second"
    assert (result.provider, result.model) == ("second", "gpt-4o")
    assert len(first.received) == 4  # the first call and its three retries
    trace_json = attempts_of(trace.metadata())
    assert [(a["provider"], a["outcome"]) for a in trace_json] == [("first", "error")] * 4 + [("second", "ok")]


async def test_a_non_retryable_failure_does_not_fall_back() -> None:
    async with Upstream() as first, Upstream() as second:
        first.always("POST", CHAT_PATH, error(400, "invalid_request_error"))
        async with two_targets(first, second) as (dispatcher, targets):
            with pytest.raises(errors.UpstreamBadRequest):
                await dispatcher.chat(targets, REQUEST, CallContext(), Trace())
    assert len(first.received) == 1
    assert second.received == []


async def test_an_open_breaker_sends_calls_to_the_next_target_at_once() -> None:
    async with Upstream() as first, Upstream() as second:
        first.always("POST", CHAT_PATH, error(503))
        second.always("POST", CHAT_PATH, completion("second"))
        async with two_targets(first, second) as (dispatcher, targets):
            for _ in range(2):  # four failed attempts each: the breaker (5) opens in the second
                await dispatcher.chat(targets, REQUEST, CallContext(), Trace())
            tried = len(first.received)
            trace = Trace()
            result = await dispatcher.chat(targets, REQUEST, CallContext(), trace)
    assert tried == 5
    assert len(first.received) == 5
    assert result.provider == "second"
    assert [(a["provider"], a["outcome"], a["reason"]) for a in attempts_of(trace.metadata())] == [
        ("first", "skipped", "ERROR_REASON_CIRCUIT_OPEN"), ("second", "ok", "")]


async def test_stream_failing_before_its_first_chunk_falls_back() -> None:
    async with Upstream() as first, Upstream() as second:
        first.always("POST", CHAT_PATH, error(502))
        second.add("POST", CHAT_PATH, stream_reply(["one ", "two"]))
        async with two_targets(first, second) as (dispatcher, targets):
            trace, chunks = Trace(), []
            await collect(dispatcher, targets, CallContext(), trace, chunks)

    assert texts(chunks) == "one two"
    assert (chunks[0].provider, chunks[-1].provider) == ("second", "second")
    assert chunks[-1].is_final
    assert all(c.failover is None for c in chunks)
    assert [(a["provider"], a["outcome"]) for a in attempts_of(trace.metadata())][-2:] == [
        ("first", "error"), ("second", "ok")]


async def test_stream_breaking_after_three_chunks_ends_with_the_error_by_default() -> None:
    async with Upstream() as first, Upstream() as second:
        first.add("POST", CHAT_PATH, stream_reply(["one ", "two ", "three ", "four"], drop_after=3))
        second.always("POST", CHAT_PATH, stream_reply(["never"]))
        async with two_targets(first, second) as (dispatcher, targets):
            trace, chunks = Trace(), []
            with pytest.raises(errors.PorticoError) as info:
                await collect(dispatcher, targets, CallContext(), trace, chunks)

    assert texts(chunks) == "one two three "
    assert isinstance(info.value, errors.UpstreamConnection)
    assert info.value.retry_safe is False
    assert second.received == []  # no silent switch without the caller's consent


async def test_restart_sends_a_marker_then_the_next_targets_whole_answer() -> None:
    async with Upstream() as first, Upstream() as second:
        first.add("POST", CHAT_PATH, stream_reply(["one ", "two ", "three ", "four"], drop_after=3))
        second.add("POST", CHAT_PATH, stream_reply(["a whole ", "new answer"]))
        async with two_targets(first, second) as (dispatcher, targets):
            trace, chunks = Trace(), []
            await collect(dispatcher, targets, CallContext(stream_failover=StreamFailover.RESTART), trace, chunks)

    markers = [i for i, c in enumerate(chunks) if c.failover is not None]
    assert len(markers) == 1
    marker = chunks[markers[0]]
    assert texts(chunks[: markers[0]]) == "one two three "
    assert marker.content == "" and marker.failover is not None
    assert marker.failover.mode is StreamFailover.RESTART
    assert (marker.failover.provider, marker.failover.model) == ("second", "gpt-4o")
    assert marker.failover.reason == "ERROR_REASON_UPSTREAM_CONNECTION"
    after = chunks[markers[0] + 1 :]
    assert texts(after) == "a whole new answer"
    assert after[0].provider == "second" and after[-1].is_final and after[-1].provider == "second"
    # The second target got the caller's request as it was.
    assert second.last(CHAT_PATH).json()["messages"] == [{"role": "user", "content": "hello"}]
    assert [(a["provider"], a["outcome"]) for a in attempts_of(trace.metadata())] == [
        ("first", "error"), ("second", "ok")]


async def test_continue_hands_the_partial_text_to_the_next_target() -> None:
    async with Upstream() as first, Upstream() as second:
        first.add("POST", CHAT_PATH, stream_reply(["one ", "two ", "three ", "four"], drop_after=3))
        second.add("POST", CHAT_PATH, stream_reply(["four ", "five"]))
        async with two_targets(first, second) as (dispatcher, targets):
            chunks: list[StreamChunk] = []
            call = CallContext(stream_failover=StreamFailover.CONTINUE)
            await collect(dispatcher, targets, call, Trace(), chunks)

    sent = second.last(CHAT_PATH).json()["messages"]
    assert sent[-1] == {"role": "assistant", "content": "one two three "}
    assert sent[0] == {"role": "user", "content": "hello"}
    marker = next(c for c in chunks if c.failover is not None)
    assert marker.failover is not None and marker.failover.mode is StreamFailover.CONTINUE
    assert texts(chunks) == "one two three four five"


async def test_through_the_gateway_a_dropped_stream_ends_unavailable_with_its_trace() -> None:
    async with Upstream() as up:
        up.add("POST", CHAT_PATH, stream_reply(["one ", "two ", "three ", "four"], drop_after=3))
        async with running_gateway({"providers": [openai_provider("openai", up)]}) as gw:
            call = gw.stub.StreamChat(pb.ChatRequest(model="gpt-4o", messages=[USER]))
            received = []
            with pytest.raises(grpc.aio.AioRpcError) as info:
                async for chunk in call:
                    received.append(chunk)

    assert "".join(c.content for c in received) == "one two three "
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    details = rpc_details(info.value)
    assert details["reason"] == "ERROR_REASON_UPSTREAM_CONNECTION"
    assert details["metadata"]["retry_safe"] == "false"
    assert [a["outcome"] for a in attempts_of(info.value.trailing_metadata())] == ["error"]
    assert len(up.received) == 1  # never retried once the caller had chunks


async def test_through_the_gateway_a_stream_carries_the_trace_at_its_end() -> None:
    async with Upstream() as up:
        up.add("POST", CHAT_PATH, error(503))
        up.add("POST", CHAT_PATH, stream_reply(["fine"]))
        async with running_gateway({"providers": [openai_provider("openai", up, retry=QUICK_RETRY)]}) as gw:
            call = gw.stub.StreamChat(pb.ChatRequest(model="gpt-4o", messages=[USER]))
            chunks = [chunk async for chunk in call]
            trailers = await call.trailing_metadata()

    assert "".join(c.content for c in chunks) == "fine"
    assert chunks[0].provider == "openai" and chunks[0].model == "gpt-4o"
    assert [a["status"] for a in attempts_of(trailers)] == ["UNAVAILABLE", "OK"]
    assert any(k == "x-request-id" for k, _ in trailers)


async def test_a_target_failing_its_health_probe_is_passed_over() -> None:
    async with Upstream() as first, Upstream() as second:
        first.always("GET", "/v1/models", error(500))
        second.always("GET", "/v1/models", completion("ok"))
        second.add("POST", CHAT_PATH, completion("from the second"))
        async with two_targets(first, second) as (dispatcher, targets):
            await dispatcher.health.probe_once()
            trace = Trace()
            result = await dispatcher.chat(targets, REQUEST, CallContext(), trace)

    assert result.provider == "second"
    assert [r.path for r in first.received] == ["/v1/models"]  # the probe, no call
    assert [(a["provider"], a["outcome"]) for a in attempts_of(trace.metadata())] == [
        ("first", "skipped"), ("second", "ok")]
