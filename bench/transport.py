"""What one upstream HTTP request costs the gateway, per candidate HTTP client.

A loopback HTTP/1.1 server runs in its own process (so its CPU is not counted) and
answers `POST /json` with a small JSON body and `POST /sse` with a 20-event SSE stream.
Each client candidate sends a bounded number of requests at concurrency 1 and 64 from
this process; the table reports client CPU per request (µs, process time of this
process divided by requests) and requests per second.

    .venv/bin/python bench/transport.py                 # default counts (about a minute)
    .venv/bin/python bench/transport.py --requests 500  # quicker

Candidates: httpx (the old transport), aiohttp directly, and httpx over the
`httpx-aiohttp` transport. Those not installed are skipped (aiohttp is a server
dependency; httpx and httpx-aiohttp only need installing for this comparison).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import platform
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

JSON_BODY = json.dumps({"id": "x", "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hi!"},
                                                "finish_reason": "stop"}]}).encode()
SSE_EVENTS = 20
SSE_BODY = b"".join(
    b'data: {"choices":[{"index":0,"delta":{"content":"tok%d"}}]}\n\n' % i for i in range(SSE_EVENTS)
) + b"data: [DONE]\n\n"
REQUEST_BODY = json.dumps({"model": "m", "messages": [{"role": "user", "content": "hello"}]}).encode()


# -- the loopback upstream (its own process) -------------------------------------------------


async def _handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            path = lines[0].split(" ")[1]
            length = 0
            for line in lines[1:]:
                if line[:15].lower() == "content-length:":
                    length = int(line[15:])
            if length:
                await reader.readexactly(length)
            if path == "/sse":
                # One chunk per event, as a generating model sends them.
                out = [b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"]
                for event in SSE_BODY.split(b"\n\n")[:-1]:
                    piece = event + b"\n\n"
                    out.append(b"%x\r\n%s\r\n" % (len(piece), piece))
                out.append(b"0\r\n\r\n")
                writer.write(b"".join(out))
            else:
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s"
                             % (len(JSON_BODY), JSON_BODY))
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


def _serve(port_out: Any) -> None:
    async def main() -> None:
        server = await asyncio.start_server(_handle, "127.0.0.1", 0, backlog=1024)
        port_out.send(server.sockets[0].getsockname()[1])
        await server.serve_forever()

    try:
        import uvloop

        uvloop.run(main())
    except ImportError:
        asyncio.run(main())


# -- the candidates -----------------------------------------------------------------------------

#: A candidate: an async context manager yielding (unary, stream) request functions.
Candidate = Callable[[str, int], contextlib.AbstractAsyncContextManager[tuple[Callable[[], Awaitable[int]],
                                                                               Callable[[], Awaitable[int]]]]]


def _count_events(buffer: bytearray, piece: bytes) -> int:
    buffer += piece
    events = buffer.count(b"\n\n")
    if events:
        del buffer[: buffer.rfind(b"\n\n") + 2]
    return events


@contextlib.asynccontextmanager
async def httpx_client(url: str, pool: int) -> AsyncIterator[Any]:
    import httpx

    limits = httpx.Limits(max_connections=pool, max_keepalive_connections=pool)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as client:
        yield _httpx_calls(client)


@contextlib.asynccontextmanager
async def httpx_over_aiohttp(url: str, pool: int) -> AsyncIterator[Any]:
    import aiohttp
    import httpx
    from httpx_aiohttp import AiohttpTransport

    connector = aiohttp.TCPConnector(limit=pool, limit_per_host=pool)
    transport = AiohttpTransport(client=lambda: aiohttp.ClientSession(connector=connector))
    async with httpx.AsyncClient(base_url=url, transport=transport, timeout=30) as client:
        yield _httpx_calls(client)


def _httpx_calls(client: Any) -> tuple[Callable[[], Awaitable[int]], Callable[[], Awaitable[int]]]:
    headers = {"content-type": "application/json"}

    async def unary() -> int:
        response = await client.post("/json", content=REQUEST_BODY, headers=headers)
        json.loads(response.content)
        return 1

    async def stream() -> int:
        events = 0
        buffer = bytearray()
        async with client.stream("POST", "/sse", content=REQUEST_BODY, headers=headers) as response:
            async for piece in response.aiter_bytes():
                events += _count_events(buffer, piece)
        return events

    return unary, stream


@contextlib.asynccontextmanager
async def aiohttp_client(url: str, pool: int) -> AsyncIterator[Any]:
    import aiohttp

    connector = aiohttp.TCPConnector(limit=pool, limit_per_host=pool)
    headers = {"content-type": "application/json"}
    async with aiohttp.ClientSession(base_url=url, connector=connector,
                                     timeout=aiohttp.ClientTimeout(total=30)) as session:

        async def unary() -> int:
            async with session.post("/json", data=REQUEST_BODY, headers=headers) as response:
                json.loads(await response.read())
            return 1

        async def stream() -> int:
            events = 0
            buffer = bytearray()
            async with session.post("/sse", data=REQUEST_BODY, headers=headers) as response:
                async for piece in response.content.iter_any():
                    events += _count_events(buffer, piece)
            return events

        yield unary, stream


CANDIDATES: dict[str, Candidate] = {
    "httpx": httpx_client,
    "aiohttp": aiohttp_client,
    "httpx over httpx-aiohttp": httpx_over_aiohttp,
}


# -- the measurement ----------------------------------------------------------------------------


async def measure(call: Callable[[], Awaitable[int]], total: int, concurrency: int) -> tuple[float, float]:
    """(client CPU µs per request, requests per second) for `total` calls."""
    for _ in range(min(50, total)):
        await call()
    remaining = total

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            await call()

    cpu0, wall0 = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    return cpu / total * 1e6, total / wall


async def run_all(url: str, total: int, names: list[str]) -> list[dict[str, Any]]:
    rows = []
    for name in names:
        try:
            factory = CANDIDATES[name]
            async with factory(url, 64) as (unary, stream):
                row: dict[str, Any] = {"client": name}
                for label, call, count in (("unary", unary, total), ("sse20", stream, max(1, total // 2))):
                    for concurrency in (1, 64):
                        cpu, rate = await measure(call, count, concurrency)
                        row[f"{label}_c{concurrency}_cpu_us"] = round(cpu)
                        row[f"{label}_c{concurrency}_rps"] = round(rate)
                rows.append(row)
        except ImportError as exc:
            print(f"skipping {name}: {exc}")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=3000, help="unary requests per cell (streams: half)")
    parser.add_argument("--clients", nargs="*", default=list(CANDIDATES), choices=list(CANDIDATES))
    args = parser.parse_args()

    receive, send = multiprocessing.Pipe(duplex=False)
    server = multiprocessing.Process(target=_serve, args=(send,), daemon=True)
    server.start()
    port = receive.recv()
    try:
        try:
            import uvloop

            rows = uvloop.run(run_all(f"http://127.0.0.1:{port}", args.requests, args.clients))
        except ImportError:
            rows = asyncio.run(run_all(f"http://127.0.0.1:{port}", args.requests, args.clients))
    finally:
        server.terminate()
        server.join(5)

    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print(f"{args.requests} unary requests, {args.requests // 2} 20-event streams per cell; "
          "µs = client CPU per request, rps = requests per second")
    header = ("client", "unary c=1", "unary c=64", "SSE c=1", "SSE c=64")
    print("| " + " | ".join(header) + " |")
    print("|" + " --- |" * len(header))
    for row in rows:
        cells = [row["client"]]
        for label in ("unary", "sse20"):
            for concurrency in (1, 64):
                cells.append(f"{row[f'{label}_c{concurrency}_cpu_us']:,} µs, "
                             f"{row[f'{label}_c{concurrency}_rps']:,}/s")
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
