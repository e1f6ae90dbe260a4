"""The server's connection policy (`server.connections`) seen on the wire: a TCP proxy
between client and gateway reads the HTTP/2 frames the gateway sends, so the tests see
its GOAWAY frames and when it really closes a connection."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import grpc
from harness import eventually, running_gateway
from portico.v1 import llm_service_pb2 as pb
from portico.v1 import llm_service_pb2_grpc
from portico.v1 import types_pb2 as t
from upstream import Received, Reply, Upstream, fixture

CHAT = "/v1/chat/completions"
_GOAWAY = 0x7
_ENHANCE_YOUR_CALM = 0xB
#: Bound for what must happen within a second or two: a hang fails, it does not stall.
BOUND = 15.0


@dataclass
class Connection:
    """One client connection through the proxy: the GOAWAY frames the gateway sent on it
    (error code, debug data) and whether the gateway closed it."""

    goaways: list[tuple[int, bytes]] = field(default_factory=list)
    closed: asyncio.Event = field(default_factory=asyncio.Event)


class FrameProxy:
    def __init__(self, target: str) -> None:
        self.target = target
        self.connections: list[Connection] = []
        self.address = ""
        self._tasks: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> FrameProxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.address = f"127.0.0.1:{self._server.sockets[0].getsockname()[1]}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._server.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _accept(self, client_in: asyncio.StreamReader, client_out: asyncio.StreamWriter) -> None:
        host, _, port = self.target.rpartition(":")
        server_in, server_out = await asyncio.open_connection(host, int(port))
        connection = Connection()
        self.connections.append(connection)
        upward = asyncio.ensure_future(self._copy(client_in, server_out))
        self._tasks.add(upward)
        try:
            await self._read_frames(server_in, client_out, connection)
        finally:
            connection.closed.set()
            upward.cancel()
            for writer in (client_out, server_out):
                writer.close()

    @staticmethod
    async def _copy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        with contextlib.suppress(ConnectionError, OSError):
            writer.write_eof()

    @staticmethod
    async def _read_frames(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, conn: Connection) -> None:
        """Forward what the gateway sends until it closes, noting each GOAWAY frame."""
        buffer = b""
        with contextlib.suppress(ConnectionError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
                buffer += data
                while len(buffer) >= 9 and len(buffer) >= 9 + int.from_bytes(buffer[:3], "big"):
                    length, kind = int.from_bytes(buffer[:3], "big"), buffer[3]
                    payload, buffer = buffer[9:9 + length], buffer[9 + length:]
                    if kind == _GOAWAY:
                        conn.goaways.append((int.from_bytes(payload[4:8], "big"), payload[8:]))


def config(up: Upstream, **connections: Any) -> dict[str, Any]:
    return {"server": {"connections": connections},
            "providers": [{"name": "openai", "kind": "openai", "api_key": "sk-test-0123456789",
                           "base_url": f"{up.url}/v1", "models": ["gpt-4o"]}]}


def request(name: str) -> pb.ChatRequest:
    return pb.ChatRequest(model="gpt-4o", messages=[t.Message(role=t.ROLE_USER, content=name)])


def holding(release: asyncio.Event, held: Callable[[str], bool]) -> Callable[[Received], Any]:
    """Answers at once, except calls whose message `held` picks, which wait for `release`."""
    async def answer(received: Received) -> Reply:
        body = received.json()
        if held(body["messages"][-1]["content"]):
            await release.wait()
        if body.get("stream"):
            return Reply(200, {"content-type": "text/event-stream"}, fixture("openai/stream_text_short.sse"))
        return Reply(200, {"content-type": "application/json"}, fixture("openai/chat_text.json"))
    return answer


@contextlib.asynccontextmanager
async def own_channel(address: str, *options: tuple[str, int]) -> AsyncIterator[llm_service_pb2_grpc.LLMServiceStub]:
    # A channel of its own TCP connection: channels in one process otherwise share one.
    async with grpc.aio.insecure_channel(address, options=[("grpc.use_local_subchannel_pool", 1), *options]) as ch:
        yield llm_service_pb2_grpc.LLMServiceStub(ch)


async def rest_of(stream: Any) -> list[pb.StreamChunk]:
    chunks = []
    while (chunk := await stream.read()) is not grpc.aio.EOF:
        chunks.append(chunk)
    return chunks


async def test_an_aged_connection_is_closed_once_its_stream_ends_and_the_client_reconnects():
    release = asyncio.Event()
    async with Upstream() as up:
        up.respond("POST", CHAT, holding(release, lambda name: name == "long"))
        async with running_gateway(config(up, max_connection_age=0.5, max_connection_age_grace=60)) as gw, \
                FrameProxy(gw.address) as proxy, own_channel(proxy.address) as stub:
            assert (await stub.Chat(request("first"))).content == "Oi!"
            stream = stub.StreamChat(request("long"))
            await eventually(lambda: len(up.received) == 2, "the stream reached the upstream")
            first = proxy.connections[0]
            # A graceful GOAWAY comes in two: "stop opening calls here", then, one ping
            # later, the last call the connection takes; calls after it go elsewhere.
            await eventually(lambda: len(first.goaways) >= 2, "the gateway sent its final GOAWAY")
            assert [debug for _, debug in first.goaways] == [b"max_age", b"max_age"]
            assert not first.closed.is_set(), "the stream in progress keeps its connection for the grace period"

            # New calls go over a new connection while the old one drains.
            assert (await stub.Chat(request("after the goaway"))).content == "Oi!"
            assert len(proxy.connections) == 2

            release.set()
            chunks = await rest_of(stream)
            assert chunks[-1].final and "".join(c.content for c in chunks)
            await asyncio.wait_for(first.closed.wait(), BOUND)


async def test_a_connection_opens_at_most_max_concurrent_streams_calls_at_once():
    release = asyncio.Event()
    async with Upstream() as up:
        up.respond("POST", CHAT, holding(release, lambda name: name.startswith("crowded")))
        async with running_gateway(config(up, max_concurrent_streams=2)) as gw, \
                own_channel(gw.address) as crowded, own_channel(gw.address) as other:
            calls = [asyncio.ensure_future(crowded.Chat(request(f"crowded-{i}"))) for i in (1, 2, 3)]
            await eventually(lambda: len(up.received) >= 2, "two calls of the crowded connection arrived")
            # A call on another connection, sent after the crowded connection's third,
            # arrives and is answered while that third one still waits in its client.
            assert (await other.Chat(request("other"))).content == "Oi!"
            names = [r.json()["messages"][-1]["content"] for r in up.received]
            assert len(names) == 3 and names[-1] == "other"
            release.set()
            answers = await asyncio.gather(*calls)
            assert [a.content for a in answers] == ["Oi!"] * 3
            assert len(up.received) == 4


async def test_a_client_pinging_too_often_is_told_to_calm_down_and_disconnected():
    async with Upstream() as up:
        up.respond("POST", CHAT, holding(asyncio.Event(), lambda name: False))
        async with running_gateway(config(up, min_ping_interval=10, max_ping_strikes=2)) as gw, \
                FrameProxy(gw.address) as proxy, own_channel(
                    proxy.address, ("grpc.keepalive_time_ms", 100), ("grpc.keepalive_permit_without_calls", 1),
                    ("grpc.http2.max_pings_without_data", 0)) as stub:
            assert (await stub.Chat(request("hello"))).content == "Oi!"
            first = proxy.connections[0]
            await asyncio.wait_for(first.closed.wait(), BOUND)
            assert (_ENHANCE_YOUR_CALM, b"too_many_pings") in first.goaways
