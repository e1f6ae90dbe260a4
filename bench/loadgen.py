"""The Python load generator: grpc.aio for gRPC targets, a minimal keep-alive HTTP/1.1
client for the upstream called directly and for the LiteLLM proxy (OpenAI wire format).

Every run warms up first, then keeps `concurrency` calls in flight for `duration`
seconds and records each call's latency (and, for streams, time to first chunk).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import grpc
from portico.v1 import llm_service_pb2 as pb
from portico.v1 import llm_service_pb2_grpc
from portico.v1 import types_pb2 as t

#: 800 characters: enough for 200 chunks of 4; unary replies are cut to 4 * max_tokens.
PROMPT = "abcd" * 200
UNARY_TOKENS = 16
EMBED_TEXTS = [f"text number {i}: " + "the quick brown fox jumps over the lazy dog " * 2 for i in range(16)]
EMBED_DIMENSIONS = 1536


@dataclass
class Sample:
    calls: int = 0
    errors: int = 0
    first_error: str = ""
    elapsed: float = 0.0
    latencies: list[float] = field(default_factory=list)
    first_chunk: list[float] = field(default_factory=list)
    chunks: int = 0


@dataclass(frozen=True)
class Call:
    """What one scenario sends: `kind` is chat, stream or embed."""

    kind: str
    provider: str
    model: str
    tokens: int = UNARY_TOKENS

    def grpc_request(self) -> Any:
        if self.kind == "embed":
            return pb.EmbedRequest(provider=self.provider, model=self.model, inputs=EMBED_TEXTS,
                                   dimensions=EMBED_DIMENSIONS)
        return pb.ChatRequest(provider=self.provider, model=self.model, max_tokens=self.tokens,
                              messages=[t.Message(role=t.ROLE_USER, content=PROMPT)])

    def openai_body(self) -> tuple[str, bytes]:
        if self.kind == "embed":
            return "/v1/embeddings", json.dumps(
                {"model": self.model, "input": EMBED_TEXTS, "dimensions": EMBED_DIMENSIONS}
            ).encode()
        body: dict[str, Any] = {"model": self.model, "max_tokens": self.tokens,
                                "messages": [{"role": "user", "content": PROMPT}]}
        if self.kind == "stream":
            body["stream"] = True
        return "/v1/chat/completions", json.dumps(body).encode()


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _drive(one: Callable[[Sample], Awaitable[None]], concurrency: int, duration: float,
                 warmup: int, max_calls: int | None, on_start: Callable[[], None] | None) -> Sample:
    # Warm-up: `warmup` calls or one second, whichever ends first (a slow target stays bounded).
    scratch = Sample()
    warm_until = time.perf_counter() + 1.0
    left = [warmup]

    async def warm() -> None:
        while left[0] > 0 and time.perf_counter() < warm_until:
            left[0] -= 1
            await one(scratch)

    await asyncio.gather(*(warm() for _ in range(min(warmup, concurrency))))
    if on_start is not None:
        on_start()  # after the warm-up: what the caller samples now excludes it
    sample = Sample()
    began = time.perf_counter()
    deadline = began + duration
    budget = [max_calls if max_calls is not None else 1 << 62]

    async def worker() -> None:
        while time.perf_counter() < deadline and budget[0] > 0:
            budget[0] -= 1
            await one(sample)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    sample.elapsed = time.perf_counter() - began
    return sample


def _failed(sample: Sample, exc: BaseException) -> None:
    sample.errors += 1
    if not sample.first_error:
        text = exc.details() if isinstance(exc, grpc.aio.AioRpcError) else repr(exc)
        code = exc.code().name + ": " if isinstance(exc, grpc.aio.AioRpcError) else ""
        sample.first_error = f"{code}{text}"[:200]


def grpc_channels(address: str, count: int) -> list[grpc.aio.Channel]:
    # Separate connections, as separate clients would open (and what SO_REUSEPORT spreads).
    return [grpc.aio.insecure_channel(address, options=[("grpc.use_local_subchannel_pool", 1)])
            for _ in range(count)]


async def grpc_load(address: str, call: Call, concurrency: int, duration: float, connections: int,
                    warmup: int = 20, max_calls: int | None = None,
                    on_start: Callable[[], None] | None = None) -> Sample:
    channels = grpc_channels(address, connections)
    stubs = [llm_service_pb2_grpc.LLMServiceStub(c) for c in channels]
    request = call.grpc_request()
    turn = [0]

    async def one(sample: Sample) -> None:
        turn[0] += 1
        stub = stubs[turn[0] % len(stubs)]
        began = time.perf_counter()
        try:
            if call.kind == "stream":
                seen = 0
                async for _ in stub.StreamChat(request, timeout=60):
                    if seen == 0:
                        sample.first_chunk.append(time.perf_counter() - began)
                    seen += 1
                sample.chunks += seen - 1  # the final chunk carries no text
            elif call.kind == "embed":
                await stub.Embed(request, timeout=60)
            else:
                await stub.Chat(request, timeout=60)
        except Exception as exc:
            _failed(sample, exc)
            return
        sample.latencies.append(time.perf_counter() - began)
        sample.calls += 1

    try:
        return await _drive(one, concurrency, duration, warmup, max_calls, on_start)
    finally:
        for channel in channels:
            await channel.close()


class HttpConnection:
    """One keep-alive HTTP/1.1 connection: send a POST, read a Content-Length or chunked reply."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, path: str, body: bytes, began: float, sample: Sample | None) -> bytes:
        request = (
            b"POST %s HTTP/1.1\r\nhost: %s:%d\r\ncontent-type: application/json\r\n"
            b"authorization: Bearer bench\r\ncontent-length: %d\r\n\r\n%s"
            % (path.encode(), self.host.encode(), self.port, len(body), body)
        )
        reused = self.writer is not None and not self.writer.is_closing()
        if not reused:
            await self._connect()
        assert self.reader is not None and self.writer is not None
        self.writer.write(request)
        try:
            head = await self.reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError):
            if not reused:
                raise
            # The server closed this idle keep-alive connection (uvicorn does after 5 s):
            # send again on a new one, as HTTP clients do.
            await self._connect()
            assert self.reader is not None and self.writer is not None
            self.writer.write(request)
            head = await self.reader.readuntil(b"\r\n\r\n")
        return await self._read_reply(head, began, sample)

    async def _connect(self) -> None:
        await self.close()
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port, limit=1 << 24)

    async def _read_reply(self, head: bytes, began: float, sample: Sample | None) -> bytes:
        assert self.reader is not None and self.writer is not None
        status = int(head.split(b" ", 2)[1])
        headers = head.lower()
        if b"transfer-encoding: chunked" in headers:
            parts = []
            first = True
            while True:
                size = int((await self.reader.readline()).split(b";")[0], 16)
                if size == 0:
                    await self.reader.readline()
                    break
                data = await self.reader.readexactly(size + 2)
                if first and sample is not None:
                    sample.first_chunk.append(time.perf_counter() - began)
                    first = False
                parts.append(data[:-2])
            payload = b"".join(parts)
        else:
            length = int(headers.split(b"content-length:", 1)[1].split(b"\r\n", 1)[0])
            payload = await self.reader.readexactly(length)
        if b"connection: close" in headers:
            self.writer.close()
            self.writer = None
        if status != 200:
            raise RuntimeError(f"HTTP {status}: {payload[:200]!r}")
        return payload

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


async def http_load(address: str, call: Call, concurrency: int, duration: float, warmup: int = 20,
                    max_calls: int | None = None, on_start: Callable[[], None] | None = None) -> Sample:
    """OpenAI wire format over HTTP/1.1, one connection per concurrent caller."""
    host, _, port = address.rpartition(":")
    path, body = call.openai_body()
    idle: list[HttpConnection] = []

    async def one(sample: Sample) -> None:
        conn = idle.pop() if idle else HttpConnection(host, int(port))
        began = time.perf_counter()
        try:
            payload = await conn.post(path, body, began, sample if call.kind == "stream" else None)
        except Exception as exc:
            _failed(sample, exc)
            await conn.close()
            return
        idle.append(conn)
        if call.kind == "stream":
            # Content events only: not the closing chunk nor [DONE].
            sample.chunks += payload.count(b'"content":"') + payload.count(b'"content": "') - \
                payload.count(b'"content":""') - payload.count(b'"content": ""')
        sample.latencies.append(time.perf_counter() - began)
        sample.calls += 1

    try:
        return await _drive(one, concurrency, duration, warmup, max_calls, on_start)
    finally:
        for conn in idle:
            await conn.close()


@dataclass
class ManyStreams:
    streams: int = 0
    completed: int = 0
    got_first: int = 0
    first_chunk: list[float] = field(default_factory=list)
    first_chunk_after_upstream: list[float] = field(default_factory=list)
    errors: int = 0
    first_error: str = ""
    peak_rss_mib: float = 0.0
    elapsed: float = 0.0


async def many_streams(address: str, provider: str, model: str, count: int, timeout: float,
                       rss: Callable[[], float]) -> ManyStreams:
    """`count` streams at once; each records when its first chunk came (from the call's
    start, and from the upstream's send time written in that chunk) and whether it finished."""
    result = ManyStreams(streams=count)
    channels = grpc_channels(address, 4)
    stubs = [llm_service_pb2_grpc.LLMServiceStub(c) for c in channels]
    request = pb.ChatRequest(provider=provider, model=model, messages=[t.Message(role=t.ROLE_USER, content="go")])

    async def one(n: int) -> None:
        began = time.perf_counter()
        seen = 0
        try:
            async for chunk in stubs[n % len(stubs)].StreamChat(request, timeout=timeout):
                if seen == 0:
                    result.got_first += 1
                    result.first_chunk.append(time.perf_counter() - began)
                    with contextlib.suppress(ValueError):  # the upstream's send time, in seconds
                        result.first_chunk_after_upstream.append(time.time() - float(chunk.content))
                seen += 1
            result.completed += 1
        except Exception as exc:
            result.errors += 1
            if not result.first_error:
                result.first_error = (exc.code().name + ": " + (exc.details() or "")
                                      if isinstance(exc, grpc.aio.AioRpcError) else repr(exc))[:200]

    async def watch_memory() -> None:
        while True:
            result.peak_rss_mib = max(result.peak_rss_mib, rss())
            await asyncio.sleep(0.1)

    watcher = asyncio.create_task(watch_memory())
    began = time.perf_counter()
    try:
        await asyncio.gather(*(one(n) for n in range(count)))
    finally:
        result.elapsed = time.perf_counter() - began
        watcher.cancel()
        for channel in channels:
            await channel.close()
    return result
