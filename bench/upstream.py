"""A minimal, fast loopback upstream speaking the OpenAI, Anthropic and Gemini wire formats.

Raw asyncio HTTP/1.1 with keep-alive, so that what the benchmark measures is the client
or gateway in front of it, not this server. Every reply is shaped by the request:

* unary chat: the reply text is `4 * max_tokens` characters (default 16 tokens);
* streams: `max_tokens` content events of 4 characters each, sent as they are written
  (chunked transfer encoding, one event per chunk), then the dialect's end events;
* model `slow-stream`: 20 events, 100 ms apart; the first event's text is the wall-clock
  time it was sent, so a client can tell how long the first chunk took to reach it;
* embeddings: `dimensions` floats per input (default 1,536), as JSON numbers or as
  base64 of little-endian float32 when the request asks for `encoding_format: base64`.

    python bench/upstream.py [--port 0]     prints "upstream: listening on 127.0.0.1:PORT"
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import random
import struct
import time
from functools import lru_cache
from typing import Any

SLOW_MODEL = "slow-stream"
SLOW_EVENTS = 20
SLOW_INTERVAL = 0.1
TEXT = "abcd" * 4096
DEFAULT_TOKENS = 16
DEFAULT_DIMENSIONS = 1536



def dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))  # compact, as the real APIs send it


@lru_cache(maxsize=16)
def vector(dimensions: int) -> tuple[list[float], str]:
    """One fixed vector with realistic precision, and its base64 float32 form."""
    rng = random.Random(dimensions)
    values = [round(rng.uniform(-0.08, 0.08), 9) for _ in range(dimensions)]
    packed = base64.b64encode(struct.pack(f"<{dimensions}f", *values)).decode()
    return values, packed


@lru_cache(maxsize=64)
def embeddings_body(dialect: str, count: int, dimensions: int, encoding: str) -> bytes:
    values, packed = vector(dimensions)
    if dialect == "gemini":
        return dumps({"embeddings": [{"values": values}] * count}).encode()
    item: Any = packed if encoding == "base64" else values
    return dumps({
        "object": "list",
        "data": [{"object": "embedding", "index": i, "embedding": item} for i in range(count)],
        "model": "bench-embed",
        "usage": {"prompt_tokens": 8 * count, "total_tokens": 8 * count},
    }).encode()


def chat_body(dialect: str, model: str, text: str) -> bytes:
    if dialect == "openai":
        return dumps({
            "id": "chatcmpl-bench", "object": "chat.completion", "created": 1, "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 16, "completion_tokens": len(text) // 4,
                      "total_tokens": 16 + len(text) // 4},
        }).encode()
    if dialect == "anthropic":
        return dumps({
            "id": "msg_bench", "type": "message", "role": "assistant", "model": model,
            "content": [{"type": "text", "text": text}], "stop_reason": "end_turn", "stop_sequence": None,
            "usage": {"input_tokens": 16, "output_tokens": len(text) // 4},
        }).encode()
    return dumps({
        "candidates": [{"content": {"parts": [{"text": text}], "role": "model"},
                        "finishReason": "STOP", "index": 0}],
        "usageMetadata": {"promptTokenCount": 16, "candidatesTokenCount": len(text) // 4,
                          "totalTokenCount": 16 + len(text) // 4},
        "modelVersion": model,
    }).encode()


def stream_events(dialect: str, model: str, pieces: list[str]) -> tuple[list[bytes], list[bytes], bytes]:
    """(opening events, one event per piece, closing events) of one streamed answer."""
    if dialect == "openai":
        def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
            body = {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 1, "model": model,
                    "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
            return b"data: " + dumps(body).encode() + b"\n\n"
        return ([], [chunk({"content": p}) for p in pieces],
                chunk({}, "stop") + b"data: [DONE]\n\n")
    if dialect == "anthropic":
        def event(name: str, body: dict[str, Any]) -> bytes:
            return b"event: " + name.encode() + b"\ndata: " + dumps(body).encode() + b"\n\n"
        opening = [
            event("message_start", {"type": "message_start", "message": {
                "id": "msg_bench", "type": "message", "role": "assistant", "model": model, "content": [],
                "stop_reason": None, "stop_sequence": None, "usage": {"input_tokens": 16, "output_tokens": 1}}}),
            event("content_block_start", {"type": "content_block_start", "index": 0,
                                          "content_block": {"type": "text", "text": ""}}),
        ]
        deltas = [event("content_block_delta", {"type": "content_block_delta", "index": 0,
                                                "delta": {"type": "text_delta", "text": p}}) for p in pieces]
        closing = (
            event("content_block_stop", {"type": "content_block_stop", "index": 0})
            + event("message_delta", {"type": "message_delta",
                                      "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                                      "usage": {"output_tokens": len(pieces)}})
            + event("message_stop", {"type": "message_stop"})
        )
        return opening, deltas, closing

    def part(text: str, finish: bool = False) -> bytes:
        candidate: dict[str, Any] = {"content": {"parts": [{"text": text}], "role": "model"}, "index": 0}
        body: dict[str, Any] = {"candidates": [candidate], "modelVersion": model}
        if finish:
            candidate["finishReason"] = "STOP"
            body["usageMetadata"] = {"promptTokenCount": 16, "candidatesTokenCount": len(pieces),
                                     "totalTokenCount": 16 + len(pieces)}
        return b"data: " + dumps(body).encode() + b"\r\n\r\n"
    return [], [part(p) for p in pieces[:-1]], part(pieces[-1] if pieces else "", finish=True)


class Upstream(asyncio.Protocol):
    def __init__(self) -> None:
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None
        self.busy = False
        self.task: asyncio.Future[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no asyncio.Transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if not self.busy:
            self._next()

    def _next(self) -> None:
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        head = bytes(self.buffer[:end]).decode("latin-1").split("\r\n")
        method, target, _ = head[0].split(" ", 2)
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in head[1:])}
        length = int(headers.get("content-length", "0"))
        if len(self.buffer) < end + 4 + length:
            return
        body = bytes(self.buffer[end + 4 : end + 4 + length])
        del self.buffer[: end + 4 + length]
        self.busy = True
        self.task = asyncio.ensure_future(self._answer(method, target, body))

    def _write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def _json(self, status: int, body: bytes) -> None:
        self._write(
            b"HTTP/1.1 %d OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n" % (status, len(body))
            + body
        )

    async def _answer(self, method: str, target: str, raw: bytes) -> None:
        try:
            await self._route(method, target, json.loads(raw) if raw else {})
        except Exception as exc:  # a bad request is answered, never a dead connection
            self._json(400, dumps({"error": {"message": f"bench upstream: {exc!r}"}}).encode())
        self.busy = False
        if self.buffer:
            self._next()

    async def _route(self, method: str, target: str, request: dict[str, Any]) -> None:
        path = target.partition("?")[0]
        if method == "GET":
            self._json(200, b'{"object": "list", "data": []}')
            return
        if path.endswith("/chat/completions"):
            dialect, streaming, model, tokens = "openai", bool(request.get("stream")), request.get("model", ""), \
                request.get("max_tokens") or request.get("max_completion_tokens")
        elif path.endswith("/messages"):
            dialect, streaming, model, tokens = "anthropic", bool(request.get("stream")), request.get("model", ""), \
                request.get("max_tokens")
        elif ":generateContent" in path or ":streamGenerateContent" in path:
            model = path.split("/models/", 1)[-1].split(":", 1)[0]
            dialect, streaming, tokens = "gemini", ":stream" in path, \
                request.get("generationConfig", {}).get("maxOutputTokens")
        elif path.endswith("/embeddings"):
            inputs = request.get("input", [])
            count = 1 if isinstance(inputs, str) else len(inputs)
            self._json(200, embeddings_body("openai", count, request.get("dimensions") or DEFAULT_DIMENSIONS,
                                            request.get("encoding_format") or "float"))
            return
        elif ":batchEmbedContents" in path:
            requests = request.get("requests", [])
            dims = (requests[0].get("outputDimensionality") if requests else None) or DEFAULT_DIMENSIONS
            self._json(200, embeddings_body("gemini", len(requests), dims, "float"))
            return
        else:
            self._json(404, dumps({"error": {"message": f"no route {path}"}}).encode())
            return
        tokens = int(tokens or DEFAULT_TOKENS)
        if not streaming:
            self._json(200, chat_body(dialect, model, TEXT[: 4 * tokens]))
            return
        if model == SLOW_MODEL:
            await self._slow_stream(dialect, model)
            return
        opening, deltas, closing = stream_events(dialect, model, [TEXT[i * 4 : i * 4 + 4] for i in range(tokens)])
        self._write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n")
        for event in [*opening, *deltas, closing]:
            self._write(b"%x\r\n%s\r\n" % (len(event), event))
        self._write(b"0\r\n\r\n")

    async def _slow_stream(self, dialect: str, model: str) -> None:
        self._write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n")
        opening, _, _ = stream_events(dialect, model, [])
        for event in opening:
            self._write(b"%x\r\n%s\r\n" % (len(event), event))
        for n in range(SLOW_EVENTS):
            text = f"{time.time():.6f}" if n == 0 else "abcd"
            _, deltas, _ = stream_events(dialect, model, [text, ""])
            self._write(b"%x\r\n%s\r\n" % (len(deltas[0]), deltas[0]))
            await asyncio.sleep(SLOW_INTERVAL)
            if self.transport is None or self.transport.is_closing():
                return
        _, _, closing = stream_events(dialect, model, ["abcd"])
        self._write(b"%x\r\n%s\r\n0\r\n\r\n" % (len(closing), closing))

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None


async def main(port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Upstream, "127.0.0.1", port, backlog=4096)
    print(f"upstream: listening on 127.0.0.1:{server.sockets[0].getsockname()[1]}", flush=True)
    await server.serve_forever()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    try:
        import uvloop
    except ImportError:
        asyncio.run(main(args.port))
    else:
        uvloop.run(main(args.port))
