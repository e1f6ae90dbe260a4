"""OpenTelemetry traces, received by a real OTLP/gRPC receiver: the caller's span → the
gateway's server span → one client span per upstream attempt, the `gen_ai.*` attributes,
the attempt's `traceparent` at the upstream HTTP server, message content only when
enabled, no secret in any span, and `portico serve` (one process or several workers)
configured by the OTEL_* variables alone, flushing its spans when it stops."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import signal
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from faults import CHAT_PATH, JSON, QUICK_RETRY, SSE, USER, completion, error, openai_provider, sse_events, stream_reply
from grpc_health.v1 import health_pb2, health_pb2_grpc
from harness import PORTICO_BIN, eventually, running_gateway, spawned_gateway
from otlp_receiver import CLIENT, SERVER, STATUS_ERROR, STATUS_UNSET, ReceivedSpan, Receiver
from portico.v1 import llm_service_pb2 as pb
from portico.v1 import llm_service_pb2_grpc
from portico.v1 import types_pb2 as t
from portico_server import tracing
from upstream import Reply, Upstream

OTEL_VARIABLES = ("OTEL_SDK_DISABLED", "OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_ENDPOINT",
                  "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_SERVICE_NAME",
                  "OTEL_RESOURCE_ATTRIBUTES", "OTEL_TRACES_SAMPLER", "OTEL_TRACES_SAMPLER_ARG",
                  "OTEL_BSP_SCHEDULE_DELAY", tracing.CONTENT_ENV)
REQUEST = pb.ChatRequest(model="gpt-4o", messages=[USER])


class Caller:
    """The caller's own span, sent as W3C trace context metadata."""

    def __init__(self) -> None:
        self.trace_id = secrets.token_hex(16)
        self.span_id = secrets.token_hex(8)
        self.tracestate = "caller=abc"

    @property
    def metadata(self) -> tuple[tuple[str, str], ...]:
        return (("traceparent", f"00-{self.trace_id}-{self.span_id}-01"), ("tracestate", self.tracestate))


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in OTEL_VARIABLES:
        monkeypatch.delenv(name, raising=False)


@contextlib.asynccontextmanager
async def traced(monkeypatch: pytest.MonkeyPatch, *, content: bool = False) -> AsyncIterator[Receiver]:
    """A receiver, and tracing in this process pointed at it as an operator would: by
    OTEL_* variables. Leaving the block shuts tracing down, which exports every span."""
    async with Receiver() as otlp:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", otlp.endpoint)
        monkeypatch.setenv("OTEL_SERVICE_NAME", "portico-under-test")
        if content:
            monkeypatch.setenv(tracing.CONTENT_ENV, "true")
        assert tracing.setup()
        try:
            yield otlp
        finally:
            # The exporter waits for this loop's receiver: shut down off the loop.
            await asyncio.to_thread(tracing.shutdown)


def only(spans: list[ReceivedSpan], kind: int) -> ReceivedSpan:
    found = [s for s in spans if s.kind == kind]
    assert len(found) == 1, found
    return found[0]


async def test_a_retried_chat_is_one_server_span_with_a_client_span_per_attempt(monkeypatch):
    caller = Caller()
    async with Upstream() as up:
        up.add("POST", CHAT_PATH, error(503))
        up.add("POST", CHAT_PATH, completion("second time"))
        async with traced(monkeypatch) as otlp:
            config = {"providers": [openai_provider("openai", up, retry=QUICK_RETRY)]}
            async with running_gateway(config) as gw:
                request = pb.ChatRequest(model="gpt-4o", messages=[USER], temperature=0.5, max_tokens=50)
                call = gw.stub.Chat(request, metadata=caller.metadata)
                response = await call
                request_id = dict(await call.trailing_metadata())["x-request-id"]
        assert response.content == "second time"

    server = only(otlp.spans, SERVER)
    assert server.name == "portico.v1.LLMService/Chat"
    assert (server.trace_id, server.parent_span_id) == (caller.trace_id, caller.span_id)
    assert server.attributes["rpc.system.name"] == "grpc"
    assert server.attributes["rpc.method"] == "portico.v1.LLMService/Chat"
    assert server.attributes["rpc.response.status_code"] == "OK"
    assert server.attributes["server.address"] == "127.0.0.1"
    assert server.attributes["network.peer.address"] == "127.0.0.1"
    assert server.status == STATUS_UNSET
    assert server.resource["service.name"] == "portico-under-test"
    assert server.attributes["portico.request_id"] == request_id

    failed, answered = sorted(otlp.of_kind(CLIENT), key=lambda s: s.start)
    for span in (failed, answered):
        assert span.name == "chat gpt-4o"
        assert (span.trace_id, span.parent_span_id) == (caller.trace_id, server.span_id), "siblings under the server"
        assert server.start <= span.start <= span.end <= server.end
        assert span.attributes["gen_ai.operation.name"] == "chat"
        assert span.attributes["gen_ai.provider.name"] == "openai"
        assert span.attributes["gen_ai.request.model"] == "gpt-4o"
        assert span.attributes["gen_ai.request.temperature"] == 0.5
        assert span.attributes["gen_ai.request.max_tokens"] == 50
        assert span.attributes["server.address"] == "127.0.0.1"
        assert span.attributes["server.port"] == up.port
        assert "gen_ai.input.messages" not in span.attributes, "no content unless enabled"
        assert "gen_ai.output.messages" not in span.attributes

    assert (failed.attributes["portico.attempt"], failed.attributes["portico.retry"]) == (1, 0)
    assert failed.attributes["error.type"] == "ERROR_REASON_UPSTREAM_UNAVAILABLE"
    assert failed.attributes["http.response.status_code"] == 503
    assert failed.status == STATUS_ERROR
    assert (answered.attributes["portico.attempt"], answered.attributes["portico.retry"]) == (2, 1)
    assert answered.status == STATUS_UNSET
    assert answered.attributes["gen_ai.response.model"] == "gpt-4o"
    assert answered.attributes["gen_ai.response.finish_reasons"] == ["stop"]
    assert answered.attributes["gen_ai.usage.input_tokens"] == 5
    assert answered.attributes["gen_ai.usage.output_tokens"] == 2
    assert "error.type" not in answered.attributes

    # Each HTTP request carried its own attempt's context, and the caller's tracestate.
    sent = [(r.headers.get("traceparent"), r.headers.get("tracestate")) for r in up.received]
    assert sent == [(f"00-{caller.trace_id}-{failed.span_id}-01", caller.tracestate),
                    (f"00-{caller.trace_id}-{answered.span_id}-01", caller.tracestate)]


async def test_a_fallback_target_gets_its_own_client_span(monkeypatch):
    async with Upstream() as first, Upstream() as second:
        first.always("POST", CHAT_PATH, error(503))
        second.add("POST", CHAT_PATH, completion("from the second"))
        config = {
            "providers": [openai_provider("first", first, retry={"enabled": False}),
                          openai_provider("second", second, retry={"enabled": False})],
            "aliases": {"both": {"target": "first/gpt-4o", "fallbacks": ["second/gpt-4o"]}},
        }
        async with traced(monkeypatch) as otlp, running_gateway(config) as gw:
            response = await gw.stub.Chat(pb.ChatRequest(model="both", messages=[USER]))
    assert response.content == "from the second"
    server = only(otlp.spans, SERVER)
    spans = sorted(otlp.of_kind(CLIENT), key=lambda s: s.start)
    assert [(s.attributes["portico.provider"], s.attributes["portico.attempt"], s.attributes["portico.retry"])
            for s in spans] == [("first", 1, 0), ("second", 2, 0)]
    assert {s.parent_span_id for s in spans} == {server.span_id}
    assert second.last(CHAT_PATH).headers["traceparent"].split("-")[2] == spans[1].span_id


async def test_an_embeddings_call_has_an_embeddings_span(monkeypatch):
    config = {"providers": [{"name": "fake", "kind": "fake", "models": ["fake-chat"], "embedding_model": "fake-embed"}]}
    async with traced(monkeypatch, content=True) as otlp, running_gateway(config) as gw:
        await gw.stub.Embed(pb.EmbedRequest(model="fake-embed", inputs=["secret plans", "more"]))
    client = only(otlp.spans, CLIENT)
    assert client.name == "embeddings fake-embed"
    assert client.attributes["gen_ai.operation.name"] == "embeddings"
    assert client.attributes["gen_ai.provider.name"] == "fake"
    assert client.attributes["gen_ai.usage.input_tokens"] > 0
    assert "gen_ai.usage.output_tokens" not in client.attributes
    assert b"secret plans" not in b"".join(otlp.raw), "embedding inputs are never recorded"
    assert only(otlp.spans, SERVER).name == "portico.v1.LLMService/Embed"


async def test_a_stream_span_ends_with_the_stream_and_records_content_when_enabled(monkeypatch):
    async with Upstream() as up:
        up.add("POST", CHAT_PATH, stream_reply(["Hel", "lo ", "there"]))
        config = {"providers": [openai_provider("openai", up)]}
        async with traced(monkeypatch, content=True) as otlp, running_gateway(config) as gw:
            request = pb.ChatRequest(model="gpt-4o", messages=[
                t.Message(role=t.ROLE_SYSTEM, content="be brief"), t.Message(role=t.ROLE_USER, content="hi?")])
            chunks = [c async for c in gw.stub.StreamChat(request)]
    assert "".join(c.content for c in chunks) == "Hello there"

    server = only(otlp.spans, SERVER)
    client = only(otlp.spans, CLIENT)
    assert server.name == "portico.v1.LLMService/StreamChat"
    assert server.parent_span_id == "", "no traceparent sent: the server span starts the trace"
    assert client.parent_span_id == server.span_id
    assert client.attributes["gen_ai.response.finish_reasons"] == ["stop"]
    assert json.loads(client.attributes["gen_ai.input.messages"]) == [
        {"role": "system", "parts": [{"type": "text", "content": "be brief"}]},
        {"role": "user", "parts": [{"type": "text", "content": "hi?"}]},
    ]
    assert json.loads(client.attributes["gen_ai.output.messages"]) == [
        {"role": "assistant", "parts": [{"type": "text", "content": "Hello there"}], "finish_reason": "stop"}]


async def test_a_stream_the_caller_cancels_ends_both_spans_as_cancelled(monkeypatch):
    events = sse_events(["first", " never sent"])
    async with Upstream() as up:
        up.add("POST", CHAT_PATH, Reply(200, SSE, b"".join(events), hang_after=len(events[0])))
        config = {"providers": [openai_provider("openai", up)]}
        async with traced(monkeypatch) as otlp, running_gateway(config) as gw:
            call = gw.stub.StreamChat(REQUEST)
            first = await call.read()
            assert first.content == "first"
            call.cancel()
            await asyncio.wait_for(up.disconnected.wait(), 10)
            await calls_ended(gw)
    server = only(otlp.spans, SERVER)
    client = only(otlp.spans, CLIENT)
    assert server.attributes["rpc.response.status_code"] == "CANCELLED"
    assert client.attributes["error.type"] == "cancelled"
    assert client.status == STATUS_ERROR


async def test_a_call_past_its_deadline_is_a_server_error(monkeypatch):
    async with Upstream() as up:
        up.add("POST", CHAT_PATH, Reply(200, JSON, b"{}", hang_after=0))
        config = {"providers": [openai_provider("openai", up)]}
        async with traced(monkeypatch) as otlp, running_gateway(config) as gw:
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await gw.stub.Chat(REQUEST, timeout=0.5)
            await calls_ended(gw)
    assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    server = only(otlp.spans, SERVER)
    assert server.attributes["rpc.response.status_code"] == "DEADLINE_EXCEEDED"
    assert (server.status, server.attributes["error.type"]) == (STATUS_ERROR, "DEADLINE_EXCEEDED")
    # Whichever came first: the upstream call's own deadline, or the call's cancellation.
    assert only(otlp.spans, CLIENT).attributes["error.type"] in ("ERROR_REASON_DEADLINE_EXCEEDED", "cancelled")


async def calls_ended(gw) -> None:
    """Wait until the gateway finished the cancelled call (its servicer is idle again)."""
    await eventually(lambda: gw.gateway.generations.current.calls == 0, "the cancelled call ended")


async def test_server_span_status_follows_the_grpc_code(monkeypatch):
    async with Upstream() as up:
        up.always("POST", CHAT_PATH, error(503))
        async with traced(monkeypatch) as otlp:
            config = {"providers": [openai_provider("openai", up, retry={"enabled": False})]}
            async with running_gateway(config) as gw:
                with pytest.raises(grpc.aio.AioRpcError) as unknown:
                    await gw.stub.Chat(pb.ChatRequest(model="no-such-model", messages=[USER]))
                with pytest.raises(grpc.aio.AioRpcError) as down:
                    await gw.stub.Chat(REQUEST)
                await health_pb2_grpc.HealthStub(gw.channel).Check(health_pb2.HealthCheckRequest())
    assert (unknown.value.code(), down.value.code()) == (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.UNAVAILABLE)

    assert len(otlp.of_kind(SERVER)) == 2, "health checks (probes) make no spans"
    by_code = {s.attributes["rpc.response.status_code"]: s for s in otlp.of_kind(SERVER)}
    # A caller's mistake is not the server's error (the gRPC conventions' list).
    assert by_code["NOT_FOUND"].status == STATUS_UNSET
    assert "error.type" not in by_code["NOT_FOUND"].attributes
    assert by_code["UNAVAILABLE"].status == STATUS_ERROR
    assert by_code["UNAVAILABLE"].attributes["error.type"] == "UNAVAILABLE"
    request_id = dict(down.value.trailing_metadata())["x-request-id"]
    assert by_code["UNAVAILABLE"].attributes["portico.request_id"] == request_id
    client = only(otlp.spans, CLIENT)
    assert client.parent_span_id == by_code["UNAVAILABLE"].span_id


async def test_no_provider_key_or_caller_key_is_in_any_span(monkeypatch):
    provider_key = "sk-live-PROVIDER-KEY-0123456789"
    header_secret = "tenant-secret-HEADER-0987"
    caller_key = "caller-KEY-5566778899"
    echo = f"bad key {provider_key}; header {header_secret}"
    async with Upstream() as up:
        up.add("POST", CHAT_PATH, Reply(401, {**JSON, "x-request-id": provider_key},
                                        json.dumps({"error": {"message": echo, "code": provider_key}}).encode()))
        up.add("POST", CHAT_PATH, completion("fine"))
        midstream = {"error": {"message": echo, "code": header_secret}}
        up.add("POST", CHAT_PATH, Reply(200, SSE, b"event: error\ndata: " + json.dumps(midstream).encode() + b"\n\n"))
        config = {"providers": [openai_provider("openai", up, api_key=provider_key,
                                                headers={"X-Tenant-Secret": header_secret})]}
        async with traced(monkeypatch, content=True) as otlp, running_gateway(config) as gw:
            metadata = (("authorization", f"Bearer {caller_key}"), ("x-api-key", caller_key))
            with pytest.raises(grpc.aio.AioRpcError):
                await gw.stub.Chat(REQUEST, metadata=metadata)
            await gw.stub.Chat(REQUEST, metadata=metadata)
            with pytest.raises(grpc.aio.AioRpcError):
                await gw.stub.Chat(pb.ChatRequest(model="missing", messages=[USER]), metadata=metadata)
            with pytest.raises(grpc.aio.AioRpcError):
                [c async for c in gw.stub.StreamChat(REQUEST, metadata=metadata)]

    assert len(otlp.of_kind(CLIENT)) == 3 and len(otlp.of_kind(SERVER)) == 4
    assert [s.status for s in sorted(otlp.of_kind(CLIENT), key=lambda s: s.start)] == [
        STATUS_ERROR, STATUS_UNSET, STATUS_ERROR]
    assert any("gen_ai.input.messages" in s.attributes for s in otlp.spans), "content capture was on"
    exported = b"".join(otlp.raw)
    for secret in (provider_key, header_secret, caller_key):
        assert secret.encode() not in exported


async def test_without_otel_variables_nothing_is_traced_and_no_traceparent_goes_upstream():
    assert not tracing.setup()
    assert not tracing.enabled
    async with Upstream() as up:
        up.add("POST", CHAT_PATH, completion("untraced"))
        async with running_gateway({"providers": [openai_provider("openai", up)]}) as gw:
            assert tracing.server_interceptors(gw.address) == []
            await gw.stub.Chat(REQUEST, metadata=Caller().metadata)
    assert "traceparent" not in up.last(CHAT_PATH).headers


@pytest.mark.parametrize("environment", [
    {"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4317"},
    {"OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4317"},
    {"OTEL_SERVICE_NAME": "portico"},
])
def test_variables_that_leave_tracing_off(environment):
    assert tracing.exporters_wanted(environment) == []


def test_an_unsupported_protocol_stops_the_gateway_with_a_clear_message(monkeypatch):
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4317")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")
    command = [PORTICO_BIN, "serve", "--workers", "1", "--address", "127.0.0.1:0"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2
    assert "OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json' is not supported; use grpc" in done.stderr
    assert "listening" not in done.stdout


async def test_portico_serve_exports_by_otel_variables_and_flushes_when_it_stops(tmp_path, monkeypatch):
    caller = Caller()
    async with Receiver() as otlp:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", otlp.endpoint)
        monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "600000")  # nothing leaves before the stop
        with spawned_gateway(None, tmp_path, "--workers", "1") as (process, address):
            async with grpc.aio.insecure_channel(address) as channel:
                stub = llm_service_pb2_grpc.LLMServiceStub(channel)
                await stub.Chat(pb.ChatRequest(model="fake-chat", messages=[USER]), metadata=caller.metadata)
            assert otlp.spans == []
            process.send_signal(signal.SIGTERM)
            assert await asyncio.to_thread(process.wait, 30) == 0
        server = only(otlp.spans, SERVER)
        client = only(otlp.spans, CLIENT)
    assert server.parent_span_id == caller.span_id
    assert client.parent_span_id == server.span_id
    assert client.name == "chat fake-chat"
    assert client.attributes["gen_ai.provider.name"] == "fake"
    assert server.resource["service.name"] == "portico"
    assert server.resource["process.pid"] == process.pid


async def test_the_console_exporter_prints_the_spans():
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env["OTEL_TRACES_EXPORTER"] = "console"
    process = await asyncio.create_subprocess_exec(
        PORTICO_BIN, "serve", "--workers", "1", "--address", "127.0.0.1:0",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL, env=env)
    try:
        assert process.stdout is not None
        line = (await asyncio.wait_for(process.stdout.readline(), 60)).decode()
        address = line.removeprefix("portico: listening on ").strip()
        async with grpc.aio.insecure_channel(address) as channel:
            await llm_service_pb2_grpc.LLMServiceStub(channel).Chat(
                pb.ChatRequest(model="fake-chat", messages=[USER]), timeout=10)
        process.send_signal(signal.SIGTERM)
        printed = (await asyncio.wait_for(process.stdout.read(), 30)).decode()
        assert await asyncio.wait_for(process.wait(), 30) == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert '"name": "portico.v1.LLMService/Chat"' in printed
    assert '"name": "chat fake-chat"' in printed


async def test_each_worker_exports_its_own_spans(tmp_path: Path, monkeypatch):
    config = "providers:\n  - {name: fake, kind: fake, models: [fake-chat]}\n"
    async with Receiver() as otlp:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", otlp.endpoint)
        monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "20")
        with spawned_gateway(config, tmp_path, "--workers", "2") as (process, address):
            workers: set[int] = set()
            for calls in range(1, 41):  # new connections are spread by a hash of their ports
                options = [("grpc.use_local_subchannel_pool", 1)]
                async with grpc.aio.insecure_channel(address, options=options) as channel:
                    await llm_service_pb2_grpc.LLMServiceStub(channel).Chat(
                        pb.ChatRequest(model="fake-chat", messages=[USER]), timeout=10)
                spans = await otlp.wait_for(calls, SERVER)
                workers = {s.resource["portico.worker"] for s in spans}
                if workers == {1, 2}:
                    break
            process.send_signal(signal.SIGTERM)
            await asyncio.to_thread(process.wait, 30)
    assert workers == {1, 2}
    pids = {s.resource["portico.worker"]: s.resource["process.pid"] for s in otlp.of_kind(SERVER)}
    assert len(set(pids.values())) == 2
