"""Load shedding through a real gateway: with the gateway's caps reached, new calls are
refused at once with RESOURCE_EXHAUSTED, ERROR_REASON_OVERLOADED and a RetryInfo, before
anything reaches the upstream, low priority first, and a high-priority call still gets in."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import pytest
from harness import eventually, rpc_details, running_gateway, spawned_gateway
from portico.v1 import llm_service_pb2 as pb
from portico.v1 import llm_service_pb2_grpc
from portico.v1 import types_pb2 as t
from portico_server.shedding import Kind
from upstream import Received, Reply, Upstream, fixture

CHAT = "/v1/chat/completions"


def config(up: Upstream, **load: int) -> dict[str, Any]:
    return {"server": {"load": load},
            "providers": [{"name": "openai", "kind": "openai", "api_key": "sk-test-0123456789",
                           "base_url": f"{up.url}/v1", "models": ["gpt-4o"]}]}


def request(name: str, priority: int = t.PRIORITY_NORMAL) -> pb.ChatRequest:
    return pb.ChatRequest(model="gpt-4o", priority=priority, messages=[t.Message(role=t.ROLE_USER, content=name)])


def hold_until(release: asyncio.Event, streaming: bool = False) -> Callable[[Received], Any]:
    async def answer(received: Received) -> Reply:
        await release.wait()
        if streaming:
            return Reply(200, {"content-type": "text/event-stream"}, fixture("openai/stream_text_short.sse"))
        return Reply(200, {"content-type": "application/json"}, fixture("openai/chat_text.json"))
    return answer


def sent(up: Upstream) -> list[str]:
    return [r.json()["messages"][-1]["content"] for r in up.received]


async def rest_of(stream: Any) -> list[pb.StreamChunk]:
    chunks = []
    while (chunk := await stream.read()) is not grpc.aio.EOF:
        chunks.append(chunk)
    return chunks


async def refused(call: Any) -> dict[str, Any]:
    """The details of a call that must be shed."""
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, caught.value.details()
    return rpc_details(caught.value)


async def test_with_limits_of_two_later_calls_are_shed_at_once_and_a_high_priority_call_gets_through():
    release = asyncio.Event()
    async with Upstream() as up:
        up.respond("POST", CHAT, hold_until(release))
        async with running_gateway(config(up, max_in_flight=2, max_streams=2)) as gw:
            held = [asyncio.ensure_future(gw.stub.Chat(request(f"normal-{i}"))) for i in (1, 2)]
            await eventually(lambda: len(up.received) == 2, "two calls reached the upstream")

            # Refused while the two calls are still held upstream: shed, not queued.
            third = await refused(gw.stub.Chat(request("normal-3")))
            low = await refused(gw.stub.Chat(request("low-1", t.PRIORITY_LOW)))
            embed = await refused(gw.stub.Embed(pb.EmbedRequest(model="gpt-4o", inputs=["x"])))
            assert third["reason"] == low["reason"] == embed["reason"] == "ERROR_REASON_OVERLOADED"
            assert third["metadata"] == {"limit": "server.load.max_in_flight", "limit_value": "2",
                                         "priority": "normal", "retry_safe": "true"}
            assert low["metadata"]["priority"] == "low"
            assert 0 < third["retry_delay"] <= 30
            assert sorted(sent(up)) == ["normal-1", "normal-2"], "a shed call never reaches the upstream"

            # The reserve above the cap is for high priority only, and it is bounded.
            high = asyncio.ensure_future(gw.stub.Chat(request("high-1", t.PRIORITY_HIGH)))
            await eventually(lambda: len(up.received) == 3, "the high-priority call reached the upstream")
            assert (await refused(gw.stub.Chat(request("high-2", t.PRIORITY_HIGH))))["metadata"]["priority"] == "high"
            # Answered from memory, so never shed.
            assert (await gw.stub.ListProviders(pb.ListProvidersRequest())).providers

            release.set()
            answers = await asyncio.gather(*held, high)
            assert [a.content for a in answers] == ["Oi!"] * 3
            await eventually(lambda: gw.gateway.load.in_use(Kind.CALL) == 0, "every slot was given back")
            assert (await gw.stub.Chat(request("after"))).content == "Oi!"


async def test_open_streams_have_their_own_cap_and_keep_their_slot_until_they_end():
    release = asyncio.Event()
    async with Upstream() as up:
        up.respond("POST", CHAT, hold_until(release, streaming=True))
        async with running_gateway(config(up, max_in_flight=2, max_streams=2)) as gw:
            streams = [gw.stub.StreamChat(request(f"stream-{i}")) for i in (1, 2)]
            opened = [asyncio.ensure_future(s.initial_metadata()) for s in streams]
            await eventually(lambda: len(up.received) == 2, "two streams reached the upstream")

            details = await refused(gw.stub.StreamChat(request("stream-3")).read())
            assert details["reason"] == "ERROR_REASON_OVERLOADED"
            assert details["metadata"]["limit"] == "server.load.max_streams"
            high = gw.stub.StreamChat(request("stream-high", t.PRIORITY_HIGH))
            high_read = asyncio.ensure_future(high.read())
            await eventually(lambda: len(up.received) == 3, "the high-priority stream reached the upstream")
            assert gw.gateway.load.in_use(Kind.STREAM) == 3
            assert gw.gateway.load.in_use(Kind.CALL) == 0, "streams do not count against max_in_flight"

            release.set()
            await asyncio.gather(*opened)
            first = await high_read
            assert first.content
            for stream in (*streams, high):
                assert (await rest_of(stream))[-1].final
            await eventually(lambda: gw.gateway.load.in_use(Kind.STREAM) == 0, "every stream gave its slot back")


async def test_a_cancelled_call_gives_its_slot_back():
    release = asyncio.Event()
    async with Upstream() as up:
        up.respond("POST", CHAT, hold_until(release))
        async with running_gateway(config(up, max_in_flight=1)) as gw:
            holder = gw.stub.Chat(request("holder"))
            await eventually(lambda: len(up.received) == 1, "the call reached the upstream")
            assert (await refused(gw.stub.Chat(request("second"))))["reason"] == "ERROR_REASON_OVERLOADED"
            holder.cancel()
            await eventually(lambda: gw.gateway.load.in_use(Kind.CALL) == 0, "the cancelled call's slot is free")
            release.set()
            assert (await gw.stub.Chat(request("after"))).content == "Oi!"


HOLDING = """\
server:
  load: {max_in_flight: 2}
providers:
  - name: fake
    kind: fake
    models: [fake-chat]
    options: {rules: [{when_contains: hold, delay: 60, content: late}]}
"""


def test_several_workers_divide_the_gateway_wide_cap(tmp_path: Path):
    # Two workers share max_in_flight: 2, one call each. One connection lands on one
    # worker: its second call is over that worker's share, though the gateway holds one.
    with spawned_gateway(HOLDING, tmp_path, "--workers", "2") as (_, address), \
            grpc.insecure_channel(address, options=[("grpc.use_local_subchannel_pool", 1)]) as channel:
        stub = llm_service_pb2_grpc.LLMServiceStub(channel)
        hold = pb.ChatRequest(model="fake-chat", messages=[t.Message(role=t.ROLE_USER, content="hold")])
        quick = pb.ChatRequest(model="fake-chat", messages=[t.Message(role=t.ROLE_USER, content="hi")])
        holder: Any = None
        try:
            # A quick call passes until a holder has the worker's one slot (a holder that
            # arrived while a quick call had it was shed itself, and is sent again).
            with pytest.raises(grpc.RpcError) as caught:
                for _ in range(200):
                    if holder is None or holder.done():
                        holder = stub.Chat.future(hold, timeout=60)
                    stub.Chat(quick, timeout=10)
            err = caught.value
            assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, err.details()
            details = rpc_details(err)
            assert details["metadata"]["worker_share"] == "1"
            assert details["metadata"]["limit_value"] == "2"
            assert "this worker is at its share (1)" in (err.details() or "")
        finally:
            if holder is not None:
                holder.cancel()
