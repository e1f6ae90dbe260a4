"""Rate limits through a real gateway and a loopback upstream that holds requests until
the test lets them go: queue order by priority, cancellation and deadlines in the queue,
a full queue, requests and tokens per minute, and streams holding their slot."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import grpc
import pytest
from harness import RunningGateway, eventually, rpc_details, running_gateway
from portico.v1 import llm_service_pb2 as pb
from portico.v1 import types_pb2 as t
from portico_server.resilience.limits import provider_key
from upstream import Received, Reply, Upstream, fixture

JSON = {"content-type": "application/json"}
KEY = provider_key("openai")
CHAT = "/v1/chat/completions"


def config(up: Upstream, **limits: int) -> dict[str, Any]:
    return {"providers": [{"name": "openai", "kind": "openai", "api_key": "sk-test-0123456789",
                           "base_url": f"{up.url}/v1", "models": ["gpt-4o"], "limits": limits}]}


def request(name: str, priority: int = t.PRIORITY_NORMAL, max_tokens: int = 0) -> pb.ChatRequest:
    return pb.ChatRequest(model="gpt-4o", priority=priority, max_tokens=max_tokens or None,
                          messages=[t.Message(role=t.ROLE_USER, content=name)])


def sent_names(up: Upstream) -> list[str]:
    """The calls that reached the upstream, in order, by their user message."""
    return [r.json()["messages"][-1]["content"] for r in up.received]


def hold_until(release: asyncio.Event) -> Callable[[Received], Any]:
    async def answer(received: Received) -> Reply:
        await release.wait()
        return Reply(200, JSON, fixture("openai/chat_text.json"))
    return answer


def depth(gw: RunningGateway) -> int:
    return gw.gateway.dispatcher.limits.queue_depth(KEY)


async def test_queued_calls_reach_the_upstream_by_priority_and_a_cancelled_one_never_does():
    release = asyncio.Event()
    async with Upstream() as up:
        up.respond("POST", CHAT, hold_until(release))
        async with running_gateway(config(up, concurrency=1)) as gw:
            holder = asyncio.ensure_future(gw.stub.Chat(request("holder")))
            await eventually(lambda: len(up.received) == 1, "the first call reached the upstream")
            queued = [("low-1", t.PRIORITY_LOW), ("normal-1", t.PRIORITY_NORMAL), ("cancelled", t.PRIORITY_HIGH),
                      ("high-1", t.PRIORITY_HIGH), ("normal-2", t.PRIORITY_UNSPECIFIED), ("high-2", t.PRIORITY_HIGH),
                      ("low-2", t.PRIORITY_LOW)]
            calls = {}
            for n, (name, priority) in enumerate(queued, start=1):
                calls[name] = gw.stub.Chat(request(name, priority))
                await eventually(lambda n=n: depth(gw) == n, f"{name} is queued")
            calls["cancelled"].cancel()
            await eventually(lambda: depth(gw) == len(queued) - 1, "the cancelled call left the queue")
            release.set()
            answers = await asyncio.gather(holder, *(c for name, c in calls.items() if name != "cancelled"))
            assert all(a.content == "Oi!" for a in answers)
            assert sent_names(up) == ["holder", "high-1", "high-2", "normal-1", "normal-2", "low-1", "low-2"]
            assert depth(gw) == 0 and gw.gateway.dispatcher.limits.in_flight(KEY) == 0


async def test_a_full_queue_is_resource_exhausted_with_retry_info():
    release = asyncio.Event()
    async with Upstream() as up:
        up.respond("POST", CHAT, hold_until(release))
        async with running_gateway(config(up, concurrency=1, queue=1)) as gw:
            holder = asyncio.ensure_future(gw.stub.Chat(request("holder")))
            await eventually(lambda: len(up.received) == 1, "the first call reached the upstream")
            waiting = asyncio.ensure_future(gw.stub.Chat(request("waiting")))
            await eventually(lambda: depth(gw) == 1, "the second call is queued")
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await gw.stub.Chat(request("refused"))
            release.set()
            await asyncio.gather(holder, waiting)
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    details = rpc_details(info.value)
    assert details["reason"] == "ERROR_REASON_RATE_LIMITED"
    assert details["metadata"]["retry_safe"] == "true"
    assert details["metadata"]["limit_key"] == KEY
    assert details["retry_delay"] is not None and details["retry_delay"] > 0
    assert "queue of 1 is full" in info.value.details()
    assert sent_names(up) == ["holder", "waiting"]


async def test_a_deadline_shorter_than_the_wait_leaves_the_queue_without_reaching_the_upstream():
    release = asyncio.Event()
    async with Upstream() as up:
        up.respond("POST", CHAT, hold_until(release))
        async with running_gateway(config(up, concurrency=1)) as gw:
            holder = asyncio.ensure_future(gw.stub.Chat(request("holder")))
            await eventually(lambda: len(up.received) == 1, "the first call reached the upstream")
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await gw.stub.Chat(request("impatient"), timeout=0.3)
            assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
            await eventually(lambda: depth(gw) == 0, "the expired call left the queue")
            release.set()
            await holder
            await gw.stub.Chat(request("after"))
    assert sent_names(up) == ["holder", "after"]


async def test_a_stream_holds_its_slot_until_its_last_chunk():
    body = fixture("openai/stream_text_usage.sse")
    first_event_end = body.index(b"\n\n", body.index(b'"content":"The"')) + 2
    release = asyncio.Event()
    async with Upstream() as up:
        up.add("POST", CHAT, Reply(200, {"content-type": "text/event-stream"}, body,
                                   hang_after=first_event_end, release=release))
        up.always("POST", CHAT, Reply(200, JSON, fixture("openai/chat_text.json")))
        async with running_gateway(config(up, concurrency=1)) as gw:
            stream = gw.stub.StreamChat(request("stream"))
            chunks = [await stream.read()]
            while not chunks[-1].content:
                chunks.append(await stream.read())
            unary = asyncio.ensure_future(gw.stub.Chat(request("unary")))
            await eventually(lambda: depth(gw) == 1, "the unary call waits for the stream's slot")
            assert len(up.received) == 1 and not unary.done()
            release.set()
            while (chunk := await stream.read()) is not grpc.aio.EOF:
                chunks.append(chunk)
            assert chunks[-1].final and await stream.code() == grpc.StatusCode.OK
            assert (await unary).content == "Oi!"
    assert sent_names(up) == ["stream", "unary"]


async def test_requests_per_minute_end_to_end():
    async with Upstream() as up:
        up.always("POST", CHAT, Reply(200, JSON, fixture("openai/chat_text.json")))
        async with running_gateway(config(up, rpm=1, queue=0)) as gw:
            await gw.stub.Chat(request("first"))
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await gw.stub.Chat(request("second"))
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert rpc_details(info.value)["retry_delay"] == pytest.approx(60.0, abs=2.0)
    assert "rpm" in info.value.details()
    assert sent_names(up) == ["first"]


async def test_tokens_per_minute_charge_the_reported_usage_not_the_estimate():
    # The first call is charged a whole minute's 100 tokens (it asks for up to 500), but the
    # upstream reports 22: the next call of 100 tokens waits for 22 tokens' refill
    # (13.2 s), not for a whole minute.
    assert json.loads(fixture("openai/chat_text.json"))["usage"]["total_tokens"] == 22
    async with Upstream() as up:
        up.always("POST", CHAT, Reply(200, JSON, fixture("openai/chat_text.json")))
        async with running_gateway(config(up, tpm=100, queue=0)) as gw:
            await gw.stub.Chat(request("first", max_tokens=500))
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await gw.stub.Chat(request("second", max_tokens=500))
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert rpc_details(info.value)["retry_delay"] == pytest.approx(13.2, abs=1.0)
    assert sent_names(up) == ["first"]


async def test_without_limits_nothing_is_counted():
    async with Upstream() as up:
        up.always("POST", CHAT, Reply(200, JSON, fixture("openai/chat_text.json")))
        async with running_gateway(config(up)) as gw:
            await asyncio.gather(*(gw.stub.Chat(request(f"c{i}")) for i in range(5)))
            assert gw.gateway.dispatcher.limits.keys_for(gw.gateway.router.plan("openai", "gpt-4o")[0]) == []
    assert len(up.received) == 5
