"""The upstream transport every HTTP dialect shares, seen from the network edge: pooled
connections, a bounded wait for one, one deadline for the whole call, and calls cut off
the moment the caller goes away."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import gzip
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml
from dialects import BY_NAME, DIALECTS, JSON, Dialect
from harness import collect, rpc_details, running_gateway, spawned_gateway
from portico.v1 import llm_service_pb2 as pb
from portico.v1 import llm_service_pb2_grpc
from portico.v1 import types_pb2 as t
from portico_server import errors
from portico_server.call import CallContext
from portico_server.config import parse_config
from portico_server.domain import ChatRequest, Message, Role
from portico_server.providers import registry
from portico_server.providers.base import Provider
from upstream import Reply, Upstream, gzip_bomb

IDS = [d.name for d in DIALECTS]


def chat_request(dialect: Dialect) -> ChatRequest:
    return ChatRequest(model=dialect.model, messages=[Message(role=Role.USER, content="hi")])


@contextlib.asynccontextmanager
async def provider(dialect: Dialect, up: Upstream, **settings: Any) -> AsyncIterator[Provider]:
    config = parse_config({"providers": [dialect.provider_config(up, **settings)]}, "test")
    registry.load_builtin_providers()
    p = registry.create(config.providers[0])
    try:
        yield p
    finally:
        await p.close()


async def call(p: Provider, dialect: Dialect, stream: bool, context: CallContext | None = None) -> Any:
    request = chat_request(dialect)
    if stream:
        return await collect(p.stream(request, context or CallContext()))
    return await p.chat(request, context or CallContext())


# -- connections go back to the pool ----------------------------------------------------------


@pytest.mark.parametrize("dialect", DIALECTS, ids=IDS)
@pytest.mark.parametrize("stream", [False, True], ids=["unary", "stream"])
async def test_sequential_calls_reuse_one_connection(dialect: Dialect, stream: bool) -> None:
    async with Upstream() as up, provider(dialect, up) as p:
        for _ in range(5):
            up.add("POST", dialect.path(stream), dialect.stream_reply() if stream else dialect.chat_reply())
            await call(p, dialect, stream)
        assert len(up.received) == 5
        assert up.connections == 1


@pytest.mark.parametrize("dialect", [BY_NAME["openai"], BY_NAME["anthropic"], BY_NAME["ollama"]],
                         ids=["openai", "anthropic", "ollama"])
async def test_what_follows_the_terminator_is_read_so_the_connection_is_reused(dialect: Dialect) -> None:
    trailer = {"openai": b": trailing comment\n\n", "anthropic": b"event: ping\ndata: {\"type\": \"ping\"}\n\n",
               "ollama": b"\n\n"}[dialect.name]
    async with Upstream() as up, provider(dialect, up) as p:
        for _ in range(3):
            reply = dialect.stream_reply()
            reply.body += trailer
            up.add("POST", dialect.stream_path, reply)
            await call(p, dialect, True)
        assert up.connections == 1


async def test_a_stream_closed_early_closes_its_connection_at_once() -> None:
    dialect = BY_NAME["openai"]
    async with Upstream() as up, provider(dialect, up) as p:
        up.add("POST", dialect.stream_path, dialect.held_stream_reply())
        stream = p.stream(chat_request(dialect))
        await anext(stream)
        await stream.aclose()
        await asyncio.wait_for(up.disconnected.wait(), 1)


# -- the wait for a free connection is bounded ----------------------------------------------------


@pytest.mark.parametrize("dialect", DIALECTS, ids=IDS)
@pytest.mark.parametrize("stream", [False, True], ids=["unary", "stream"])
async def test_a_call_waits_for_a_busy_pool_only_pool_timeout_then_fails_unsent(dialect: Dialect,
                                                                                stream: bool) -> None:
    async with Upstream() as up, provider(dialect, up, max_connections=1, pool_timeout=0.3) as p:
        # The one connection is taken by a stream the upstream never finishes.
        up.add("POST", dialect.stream_path, dialect.held_stream_reply())
        holder = p.stream(chat_request(dialect))
        await anext(holder)
        started = time.monotonic()
        with pytest.raises(errors.UpstreamPoolExhausted) as info:
            await call(p, dialect, stream)
        assert 0.25 < time.monotonic() - started < 2
        assert info.value.metadata["limit"] == "max_connections=1"
        assert len(up.received) == 1  # the second request never left the gateway
        await holder.aclose()
        # The slot is free again.
        up.add("POST", dialect.path(stream), dialect.stream_reply() if stream else dialect.chat_reply())
        await call(p, dialect, stream)


async def test_the_per_host_limit_bounds_the_pool_too() -> None:
    dialect = BY_NAME["openai"]
    async with Upstream() as up, provider(dialect, up, max_connections_per_host=1, pool_timeout=0.2) as p:
        up.add("POST", dialect.stream_path, dialect.held_stream_reply())
        holder = p.stream(chat_request(dialect))
        await anext(holder)
        with pytest.raises(errors.UpstreamPoolExhausted) as info:
            await call(p, dialect, False)
        assert info.value.metadata["limit"] == "max_connections_per_host=1"
        await holder.aclose()


async def test_pool_exhaustion_reaches_the_caller_as_unavailable_with_its_own_reason() -> None:
    dialect = BY_NAME["openai"]
    async with Upstream() as up:
        config = {"providers": [dialect.provider_config(up, max_connections=1, pool_timeout=0.2)]}
        up.add("POST", dialect.stream_path, dialect.held_stream_reply())
        async with running_gateway(config) as gw:
            request = pb.ChatRequest(model=dialect.model, messages=[t.Message(role=t.ROLE_USER, content="hi")])
            holder = gw.stub.StreamChat(request)
            await anext(aiter(holder))
            for rpc in (gw.stub.Chat, lambda r: _drain(gw.stub.StreamChat(r))):
                with pytest.raises(grpc.aio.AioRpcError) as info:
                    await rpc(request)
                assert info.value.code() == grpc.StatusCode.UNAVAILABLE
                assert rpc_details(info.value)["reason"] == "ERROR_REASON_UPSTREAM_POOL_EXHAUSTED"
            holder.cancel()
        assert len(up.received) == 1


async def test_default_pool_lets_a_thousand_streams_to_one_provider_progress() -> None:
    dialect = BY_NAME["openai"]
    async with Upstream() as up, provider(dialect, up) as p:
        up.always("POST", dialect.stream_path, dialect.held_stream_reply())
        streams = [p.stream(chat_request(dialect)) for _ in range(1000)]
        try:
            firsts = await asyncio.wait_for(asyncio.gather(*(anext(s) for s in streams)), 60)
            assert len(firsts) == 1000
            assert up.connections == 1000
        finally:
            await asyncio.gather(*(s.aclose() for s in streams))


async def _drain(call: Any) -> list[Any]:
    return [c async for c in call]


# -- one deadline for the whole call ----------------------------------------------------------------

TIMEOUT = 1.5
TRICKLE = {"cut_every": 1, "pace": 0.5}


@pytest.mark.parametrize("dialect", DIALECTS, ids=IDS)
@pytest.mark.parametrize("stream", [False, True], ids=["unary", "stream"])
async def test_a_trickling_upstream_is_cut_at_the_configured_timeout(dialect: Dialect, stream: bool) -> None:
    async with Upstream() as up, provider(dialect, up, timeout=TIMEOUT) as p:
        reply = dialect.stream_reply(**TRICKLE) if stream else dialect.chat_reply(**TRICKLE)
        up.add("POST", dialect.path(stream), reply)
        started = time.monotonic()
        with pytest.raises(errors.UpstreamTimeout):
            await call(p, dialect, stream)
        elapsed = time.monotonic() - started
        assert abs(elapsed - TIMEOUT) < 0.2, f"cut after {elapsed:.3f}s"
        await asyncio.wait_for(up.disconnected.wait(), 1)


@pytest.mark.parametrize("stream", [False, True], ids=["unary", "stream"])
async def test_a_sooner_call_deadline_wins_over_the_provider_timeout(stream: bool) -> None:
    dialect = BY_NAME["anthropic"]
    async with Upstream() as up, provider(dialect, up, timeout=30) as p:
        reply = dialect.stream_reply(**TRICKLE) if stream else dialect.chat_reply(**TRICKLE)
        up.add("POST", dialect.path(stream), reply)
        started = time.monotonic()
        with pytest.raises(errors.UpstreamDeadlineExceeded):
            await call(p, dialect, stream, CallContext.with_timeout(0.8))
        assert abs(time.monotonic() - started - 0.8) < 0.2


@pytest.mark.parametrize("stream", [False, True], ids=["unary", "stream"])
async def test_a_sooner_grpc_deadline_ends_the_call_and_the_upstream_request(stream: bool) -> None:
    dialect = BY_NAME["gemini"]
    async with Upstream() as up:
        reply = dialect.stream_reply(**TRICKLE) if stream else dialect.chat_reply(**TRICKLE)
        up.add("POST", dialect.path(stream), reply)
        async with running_gateway({"providers": [dialect.provider_config(up, timeout=30)]}) as gw:
            request = pb.ChatRequest(model=dialect.model, messages=[t.Message(role=t.ROLE_USER, content="hi")])
            started = time.monotonic()
            with pytest.raises(grpc.aio.AioRpcError) as info:
                if stream:
                    await _drain(gw.stub.StreamChat(request, timeout=1.0))
                else:
                    await gw.stub.Chat(request, timeout=1.0)
            assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
            assert abs(time.monotonic() - started - 1.0) < 0.2
            await asyncio.wait_for(up.disconnected.wait(), 1)


async def test_no_log_line_per_upstream_request_at_the_default_level(tmp_path: Path) -> None:
    dialect = BY_NAME["openai"]
    async with Upstream() as up:
        up.always("POST", dialect.chat_path, dialect.chat_reply())
        config = yaml.safe_dump({"server": {"health_probe_interval": 0, "workers": 1},
                                "providers": [dialect.provider_config(up)]})
        with spawned_gateway(config, tmp_path) as (_, address):
            async with grpc.aio.insecure_channel(address) as channel:
                stub = llm_service_pb2_grpc.LLMServiceStub(channel)
                request = pb.ChatRequest(model=dialect.model, messages=[t.Message(role=t.ROLE_USER, content="hi")])
                for _ in range(5):
                    await stub.Chat(request)
            log = gateway_log(tmp_path)
        assert len(up.received) == 5
    assert "chat/completions" not in log and up.url not in log
    # Start-up lines, and the gateway's one line per call (calllog.py), nothing per request.
    lines = [json.loads(line) for line in log.splitlines()]
    assert [line["method"] for line in lines if line["logger"] == "portico.call"] == ["Chat"] * 5
    assert len([line for line in lines if line["logger"] != "portico.call"]) <= 3, log


def gateway_log(tmp_path: Path) -> str:
    """What the spawned gateways of a test wrote to their log files."""
    return "".join(p.read_text() for p in tmp_path.glob("gateway-*/serve.log"))


# -- caps on what comes back, in every dialect ------------------------------------------------------

MiB = 1024 * 1024


def filler_line(dialect: Dialect) -> bytes:
    """A line each dialect's reader skips: an SSE comment, a blank NDJSON line."""
    return b" " * 1023 + b"\n" if dialect.name == "ollama" else b": " + b"z" * 1021 + b"\n"


@pytest.mark.parametrize("dialect", DIALECTS, ids=IDS)
async def test_a_64_mib_stream_line_is_refused_naming_the_limit(dialect: Dialect) -> None:
    prefix = b'{"message": "' if dialect.name == "ollama" else b"data: "
    async with Upstream() as up, provider(dialect, up) as p:
        up.add("POST", dialect.stream_path, Reply(200, dialect.stream_headers, prefix + b"x" * (64 * MiB),
                                                  cut_every=MiB))
        started = time.monotonic()
        with pytest.raises(errors.UpstreamProtocol) as info:
            await call(p, dialect, True)
        assert time.monotonic() - started < 10
        assert info.value.metadata["limit"] == "max_line_bytes=16777216"
        await asyncio.wait_for(up.disconnected.wait(), 1)


@pytest.mark.parametrize("dialect", DIALECTS, ids=IDS)
@pytest.mark.parametrize("stream", [False, True], ids=["unary", "stream"])
async def test_a_gzip_bomb_is_refused_after_max_response_bytes_of_output(dialect: Dialect, stream: bool) -> None:
    headers = {**(dialect.stream_headers if stream else JSON), "content-encoding": "gzip"}
    bomb = gzip_bomb(filler_line(dialect) if stream else b" ")
    async with Upstream() as up, provider(dialect, up) as p:
        up.add("POST", dialect.path(stream), Reply(200, headers, bomb, cut_every=64 * 1024))
        started = time.monotonic()
        with pytest.raises(errors.UpstreamProtocol) as info:
            await call(p, dialect, stream)
        assert time.monotonic() - started < 10
        assert info.value.metadata["limit"] == "max_response_bytes=67108864"
        assert "max_response_bytes=67108864" in info.value.message


@pytest.mark.parametrize("dialect", DIALECTS, ids=IDS)
async def test_compressed_answers_within_the_caps_are_read_as_usual(dialect: Dialect) -> None:
    async with Upstream() as up, provider(dialect, up) as p:
        for stream in (False, True):
            reply = dialect.stream_reply() if stream else dialect.chat_reply()
            reply.headers["content-encoding"] = "gzip"
            reply.body = gzip.compress(reply.body)
            up.add("POST", dialect.path(stream), reply)
            await call(p, dialect, stream)
        assert up.connections == 1


async def test_the_environment_proxy_carries_the_calls_with_its_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    dialect = BY_NAME["openai"]
    async with Upstream() as proxy:
        monkeypatch.setenv("HTTP_PROXY", f"http://user%40corp:pa%3Ass@127.0.0.1:{proxy.port}")
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        settings = {**dialect.provider_config(proxy), "base_url": "http://upstream.invalid"}
        config = parse_config({"providers": [settings]}, "test")
        p = registry.create(config.providers[0])
        try:
            proxy.add("POST", dialect.chat_path, dialect.chat_reply())
            await call(p, dialect, False)
        finally:
            await p.close()
    sent = proxy.last(dialect.chat_path)
    assert sent.headers["host"] == "upstream.invalid"
    assert sent.headers["proxy-authorization"] == "Basic " + base64.b64encode(b"user@corp:pa:ss").decode()
    # The proxy never sees the upstream's credentials as its own.
    assert sent.headers["authorization"] == "Bearer test-key-0123456789"


async def test_an_https_upstream_through_a_proxy_keeps_the_key_from_the_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    dialect = BY_NAME["openai"]
    async with Upstream() as proxy:
        monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{proxy.port}")
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        settings = {**dialect.provider_config(proxy), "base_url": "https://upstream.invalid", "timeout": 5}
        p = registry.create(parse_config({"providers": [settings]}, "test").providers[0])
        try:
            with pytest.raises(errors.UpstreamError):  # this proxy refuses CONNECT
                await call(p, dialect, False)
        finally:
            await p.close()
    connect = proxy.last()
    assert connect.method == "CONNECT"
    assert "test-key-0123456789" not in str(connect.headers)


# -- upstream JSON nested past any sane depth -------------------------------------------------


@pytest.mark.parametrize("dialect", DIALECTS, ids=IDS)
@pytest.mark.parametrize("stream", [False, True], ids=["unary", "stream"])
async def test_an_answer_nested_deeper_than_any_decoder_allows_is_a_protocol_error(
    dialect: Dialect, stream: bool
) -> None:
    deep = b"[" * 100_000 + b"]" * 100_000
    if not stream:
        reply = Reply(200, dict(JSON), deep)
    elif dialect.stream_headers is JSON or b"ndjson" in dialect.stream_headers["content-type"].encode():
        reply = Reply(200, dict(dialect.stream_headers), deep + b"\n")
    else:
        reply = Reply(200, dict(dialect.stream_headers), b"data: " + deep + b"\n\n")
    async with Upstream() as up, provider(dialect, up) as p:
        up.add("POST", dialect.path(stream), reply)
        with pytest.raises(errors.UpstreamProtocol):
            await call(p, dialect, stream)
