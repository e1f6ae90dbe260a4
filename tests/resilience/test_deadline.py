"""An upstream slower than the caller's deadline: DEADLINE_EXCEEDED at the deadline, and
the upstream connection closed; no retry past it."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from faults import CHAT_PATH, USER, openai_provider
from harness import running_gateway
from portico.v1 import llm_service_pb2 as pb
from upstream import Reply, Upstream

DEADLINE = 0.8


@pytest.mark.parametrize("stream", [False, True], ids=["unary", "stream"])
async def test_a_slow_upstream_ends_at_the_deadline_with_its_connection_closed(stream: bool) -> None:
    loop = asyncio.get_running_loop()
    async with Upstream() as up:
        # Headers at once, then nothing: the upstream is working, slowly.
        up.always("POST", CHAT_PATH, Reply(200, {"content-type": "text/event-stream" if stream else "application/json"},
                                           b"", hang=True))
        async with running_gateway({"providers": [openai_provider("openai", up)]}) as gw:
            request = pb.ChatRequest(model="gpt-4o", messages=[USER])
            started = loop.time()
            with pytest.raises(grpc.aio.AioRpcError) as info:
                if stream:
                    [chunk async for chunk in gw.stub.StreamChat(request, timeout=DEADLINE)]
                else:
                    await gw.stub.Chat(request, timeout=DEADLINE)
            elapsed = loop.time() - started
            await asyncio.wait_for(up.disconnected.wait(), 1.0)

    assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert abs(elapsed - DEADLINE) <= 0.1
    assert len(up.received) == 1  # no retry once the deadline has passed
