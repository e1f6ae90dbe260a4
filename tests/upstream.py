"""A scripted HTTP/1.1 server on loopback that stands in for a provider's API.

Tests queue replies (status, headers, body pieces) per route and read back what Portico
sent. Bodies go out with chunked transfer encoding, piece by piece, so a test can cut a
recorded SSE stream at arbitrary byte boundaries, stall it, or drop the connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import zlib
from collections import defaultdict, deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

FIXTURES = Path(__file__).parent / "fixtures"


@dataclass
class Reply:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    #: Send the body in pieces of this many bytes (None: one piece).
    cut_every: int | None = None
    #: After sending the body (or `hang_after` bytes of it), keep the connection open
    #: without finishing the response until the client goes away.
    hang: bool = False
    hang_after: int | None = None
    #: Close the connection abruptly after this many body bytes.
    reset_after: int | None = None
    #: Seconds to wait before each piece after the first (a trickling upstream).
    pace: float = 0.0
    #: With `hang_after`: once the event is set, send the rest of the body and finish
    #: (an upstream that holds a response open until the test lets it go).
    release: asyncio.Event | None = None


@dataclass
class Received:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def fixture(path: str) -> bytes:
    return (FIXTURES / path).read_bytes()


@functools.cache
def gzip_bomb(unit: bytes, total: int = 300 * 1000 * 1000) -> bytes:
    """`unit` repeated to `total` bytes, gzip-compressed (300 MB of a repeated line -> a
    few hundred KB): a body that inflates far beyond its size on the wire."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    block = unit * (1024 * 1024 // len(unit))
    return b"".join([packer.compress(block) for _ in range(total // len(block))] + [packer.flush()])


def headers_fixture(path: str) -> tuple[int, dict[str, str]]:
    """Status and headers from a recorded `*.headers` file (status line + headers)."""
    lines = (FIXTURES / path).read_text().replace("\r\n", "\n").split("\n")
    status = int(lines[0].split()[1])
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if ":" in line:
            name, value = line.split(":", 1)
            name = name.strip().lower()
            if name not in ("content-length", "transfer-encoding", "connection", "content-encoding"):
                headers[name] = value.strip()
    return status, headers


class Upstream:
    """Start with `async with Upstream() as up:`; `up.url` is its base URL."""

    def __init__(self) -> None:
        self._replies: dict[tuple[str, str], deque[Reply]] = defaultdict(deque)
        self._defaults: dict[tuple[str, str], Reply] = {}
        self._responders: dict[tuple[str, str], Callable[[Received], Awaitable[Reply]]] = {}
        self.received: list[Received] = []
        #: TCP connections accepted so far.
        self.connections = 0
        self.disconnected = asyncio.Event()
        self._server: asyncio.Server | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def add(self, method: str, path: str, reply: Reply) -> None:
        """Queue a reply for one request to `path` (without query)."""
        self._replies[(method.upper(), path)].append(reply)

    def always(self, method: str, path: str, reply: Reply) -> None:
        """Answer every request to `path` with `reply` once the queue is empty."""
        self._defaults[(method.upper(), path)] = reply

    def respond(self, method: str, path: str, responder: Callable[[Received], Awaitable[Reply]]) -> None:
        """Answer every request to `path` with what `responder` makes of it (once the queue
        is empty): for replies that depend on the request, or that wait for other requests."""
        self._responders[(method.upper(), path)] = responder

    def last(self, path: str | None = None) -> Received:
        items = [r for r in self.received if path is None or r.path == path]
        assert items, f"no request to {path or 'any path'} was received"
        return items[-1]

    async def __aenter__(self) -> Upstream:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._server.wait_closed(), 2)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                request_line, *header_lines = head.decode("latin-1").split("\r\n")
                method, target, _ = request_line.split(" ", 2)
                headers = {}
                for line in header_lines:
                    if ":" in line:
                        k, v = line.split(":", 1)
                        headers[k.strip().lower()] = v.strip()
                length = int(headers.get("content-length", "0"))
                body = await reader.readexactly(length) if length else b""
                url = urlsplit(target)
                received = Received(method, url.path, dict(parse_qsl(url.query)), headers, body)
                self.received.append(received)
                key = (method, url.path)
                queue = self._replies.get(key)
                reply = queue.popleft() if queue else None
                if reply is None and key in self._responders:
                    reply = await self._responders[key](received)
                if reply is None:
                    reply = self._defaults.get(key)
                if reply is None:
                    missing = {"error": {"message": f"no reply scripted for {method} {url.path}"}}
                    reply = Reply(404, {"content-type": "application/json"}, json.dumps(missing).encode())
                if not await self._send(reply, reader, writer):
                    return
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        except asyncio.CancelledError:
            pass  # the test is over (its loop is closing); nobody waits for this handler
        finally:
            self.disconnected.set()
            writer.close()

    async def _send(self, reply: Reply, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        head = [f"HTTP/1.1 {reply.status} X"]
        head += [f"{k}: {v}" for k, v in reply.headers.items()]
        head.append("transfer-encoding: chunked")
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1"))
        body = reply.body
        stop_at = len(body)
        if reply.hang_after is not None:
            stop_at = min(stop_at, reply.hang_after)
        if reply.reset_after is not None:
            stop_at = min(stop_at, reply.reset_after)
        step = reply.cut_every or max(1, stop_at)
        for start in range(0, stop_at, step):
            if reply.pace and start:
                await asyncio.sleep(reply.pace)
            piece = body[start : min(start + step, stop_at)]
            writer.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
            await writer.drain()
        if reply.reset_after is not None:
            transport = writer.transport
            transport.abort()
            return False
        if reply.release is not None and stop_at < len(body):
            await reply.release.wait()
            rest = body[stop_at:]
            writer.write(f"{len(rest):x}\r\n".encode() + rest + b"\r\n0\r\n\r\n")
            await writer.drain()
            return True
        if reply.hang or reply.hang_after is not None:
            # Keep the response open until the client closes its side.
            await reader.read()
            return False
        writer.write(b"0\r\n\r\n")
        await writer.drain()
        return True


@contextlib.asynccontextmanager
async def upstream() -> AsyncIterator[Upstream]:
    async with Upstream() as up:
        yield up
