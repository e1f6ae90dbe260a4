"""A cancelled call or a passed deadline stops the provider at once; the deadline is
handed to the provider."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from harness import running_gateway
from portico.v1 import llm_service_pb2 as pb
from portico.v1 import types_pb2 as t

SLOW = {"providers": [{"name": "fake", "kind": "fake", "models": ["fake-chat"],
                       "options": {"chunk_size": 1, "chunk_delay": 0.05,
                                   "rules": [{"when_contains": "stall", "delay": 30}]}}]}
USER = t.Message(role=t.ROLE_USER, content="a fairly long answer, streamed one character at a time")


async def test_client_cancel_closes_the_provider_stream_within_a_second():
    async with running_gateway(SLOW) as gw:
        fake = gw.provider("fake")
        call = gw.stub.StreamChat(pb.ChatRequest(model="fake-chat", messages=[USER]))
        first = await call.read()
        assert first.content == "a"
        call.cancel()
        await asyncio.wait_for(fake.stream_closed.wait(), 1.0)
        assert fake.streams_closed_early == 1


async def test_deadline_during_a_stream_ends_it_and_closes_the_provider():
    async with running_gateway(SLOW) as gw:
        fake = gw.provider("fake")
        chunks = []
        with pytest.raises(grpc.aio.AioRpcError) as info:
            async for chunk in gw.stub.StreamChat(pb.ChatRequest(model="fake-chat", messages=[USER]), timeout=0.3):
                chunks.append(chunk)
        assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        assert 0 < len(chunks) < len(USER.content)
        await asyncio.wait_for(fake.stream_closed.wait(), 1.0)
        assert fake.streams_closed_early == 1


async def test_deadline_during_a_unary_call_is_deadline_exceeded():
    async with running_gateway(SLOW) as gw:
        stall = t.Message(role=t.ROLE_USER, content="stall")
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await gw.stub.Chat(pb.ChatRequest(model="fake-chat", messages=[stall]), timeout=0.3)
        assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        assert loop.time() - started < 5  # not the scripted 30 s


async def test_remaining_deadline_is_handed_to_the_provider():
    async with running_gateway(SLOW) as gw:
        # gRPC rounds deadlines on the wire, so allow a little either way.
        short = t.Message(role=t.ROLE_USER, content="hi")
        await gw.stub.Chat(pb.ChatRequest(model="fake-chat", messages=[short]), timeout=8)
        handed = gw.provider("fake").last_call.remaining()
        assert handed is not None and 6 < handed < 8.5
        [c async for c in gw.stub.StreamChat(pb.ChatRequest(model="fake-chat", messages=[short]), timeout=20)]
        handed = gw.provider("fake").last_call.remaining()
        assert handed is not None and 18 < handed < 20.5
