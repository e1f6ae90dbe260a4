"""The `/metrics` page of a gateway after real calls over gRPC: the GenAI client metrics,
Portico's own, and labels that stay bounded whatever callers send.

The metrics live in the test process (the gateways run in it), so each test compares
the page after its calls with the page before them."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml
from harness import running_gateway
from metrics_page import Page, scrape
from portico.v1 import llm_service_pb2 as pb
from portico.v1 import llm_service_pb2_grpc
from portico.v1 import types_pb2 as t
from portico_server import metrics
from portico_server.app import Gateway
from portico_server.config import load_config

USER = [t.Message(role=t.ROLE_USER, content="hello there, metrics")]


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    server = metrics.serve_http("127.0.0.1", 0)
    try:
        yield server.url
    finally:
        server.close()


async def page(url: str) -> Page:
    return await asyncio.to_thread(scrape, url)


def fake(name: str, models: tuple[str, ...] = ("m1",), **options: Any) -> dict[str, Any]:
    extra = options.pop("settings", {})
    return {"name": name, "kind": "fake", "models": list(models), "default_model": "m1", "options": options, **extra}


async def test_calls_durations_tokens_and_attempts_are_counted(endpoint: str) -> None:
    thoughtful = {"content": "a considered answer", "reasoning": "let me think this through first"}
    config = {"providers": [fake("fm", chunk_size=3, replies=[thoughtful])], "aliases": {"smart": "fm/m1"}}
    async with running_gateway(config) as gw:
        before = await page(endpoint)
        answer = await gw.stub.Chat(pb.ChatRequest(model="smart", messages=USER, tags={"team": "billing"}))
        chunks = [c async for c in gw.stub.StreamChat(pb.ChatRequest(model="m1", provider="fm", messages=USER))]
        await gw.stub.Embed(pb.EmbedRequest(provider="fm", model="m1", inputs=["a", "b"]))
        after = await page(endpoint)

    def grew(name: str, **labels: str) -> float:
        return after.value(name, **labels) - before.value(name, **labels)

    for method in ("Chat", "StreamChat", "Embed"):
        assert grew("portico_calls_total", method=method, code="OK") == 1
        assert grew("portico_gateway_overhead_seconds_count", method=method) == 1
        assert after.value("portico_calls_in_flight", method=method) == 0
    assert after.value("portico_streams_open") == 0
    chat = {"gen_ai_operation_name": "chat", "gen_ai_provider_name": "fm"}
    # The alias the caller asked for is the request model; a successful call has no error type.
    assert grew("gen_ai_client_operation_duration_seconds_count", **chat, gen_ai_request_model="smart",
                error_type="") == 1
    assert grew("gen_ai_client_operation_duration_seconds_count", **chat, gen_ai_request_model="m1") == 1
    assert grew("gen_ai_client_operation_duration_seconds_count", gen_ai_operation_name="embeddings") == 1
    assert grew("gen_ai_client_token_usage_sum", **chat, gen_ai_request_model="smart",
                gen_ai_token_type="input") == answer.usage.prompt_token_count > 0
    assert grew("gen_ai_client_token_usage_sum", **chat, gen_ai_request_model="smart",
                gen_ai_token_type="output") == answer.usage.completion_token_count > 0
    # Reasoning tokens (like cached ones) have no GenAI metric type: Portico counts them.
    assert grew("portico_tokens_total", provider="fm", model="smart", token_type="reasoning") == \
        answer.usage.reasoning_token_count > 0
    # Streams only: the first chunk once, each later chunk once.
    assert grew("gen_ai_client_operation_time_to_first_chunk_seconds_count", **chat) == 1
    assert grew("gen_ai_client_operation_time_per_output_chunk_seconds_count", **chat) == len(chunks) - 1 > 0
    assert grew("portico_upstream_attempts_total", provider="fm", outcome="ok", code="OK") == 3
    assert grew("portico_upstream_retries_total", provider="fm") == 0
    assert after.value("portico_breaker_state", provider="fm") == 0


async def test_labels_stay_bounded_whatever_the_caller_sends(endpoint: str) -> None:
    async with running_gateway({"providers": [fake("fb", models=())]}) as gw:
        before = await page(endpoint)
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await gw.stub.Chat(pb.ChatRequest(model="invented-model-7", messages=USER,
                                              request_id="4f1c7a0e-request-id-label"))
        assert info.value.code() == grpc.StatusCode.NOT_FOUND
        # An unlisted model name the provider accepts as given is not a label value either.
        await gw.stub.Chat(pb.ChatRequest(provider="fb", model="another-invented-model", messages=USER,
                                          tags={"customer": "tag-value-9f2"}))
        after = await page(endpoint)
    for free_text in ("invented-model-7", "another-invented-model", "4f1c7a0e", "tag-value-9f2", "customer"):
        assert free_text not in after.text
    assert after.value("portico_calls_total", method="Chat", code="NOT_FOUND") - \
        before.value("portico_calls_total", method="Chat", code="NOT_FOUND") == 1
    other = {"gen_ai_operation_name": "chat", "gen_ai_request_model": metrics.OTHER}

    def grew_error(error_type: str) -> float:
        return after.value("gen_ai_client_operation_duration_seconds_count", **other, error_type=error_type) - \
            before.value("gen_ai_client_operation_duration_seconds_count", **other, error_type=error_type)

    assert grew_error("") == 1
    # The error type is the ErrorInfo reason the caller got.
    assert grew_error("ERROR_REASON_UNKNOWN_MODEL") == 1


async def test_retries_and_breaker_states_are_counted(endpoint: str) -> None:
    unavailable = {"error": {"reason": "UPSTREAM_UNAVAILABLE", "retry_safe": True}}
    quick_retry = {"retry": {"backoff_initial": 0.01, "backoff_max": 0.05}}
    config = {"providers": [
        fake("flaky", replies=[unavailable, {"content": "ok"}], settings=quick_retry),
        fake("down", replies=[unavailable], settings={"retry": {"enabled": False}, "breaker": {"failures": 1}}),
    ]}
    async with running_gateway(config) as gw:
        before = await page(endpoint)
        assert before.value("portico_breaker_state", provider="down") == 0  # shown before any call
        await gw.stub.Chat(pb.ChatRequest(provider="flaky", messages=USER))
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await gw.stub.Chat(pb.ChatRequest(provider="down", messages=USER))
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE
        after = await page(endpoint)

    def grew(name: str, **labels: str) -> float:
        return after.value(name, **labels) - before.value(name, **labels)

    assert grew("portico_upstream_retries_total", provider="flaky") == 1
    assert grew("portico_upstream_attempts_total", provider="flaky", outcome="error", code="UNAVAILABLE") == 1
    assert grew("portico_upstream_attempts_total", provider="flaky", outcome="ok") == 1
    assert after.value("portico_breaker_state", provider="down") == 2
    assert grew("gen_ai_client_operation_duration_seconds_count", gen_ai_provider_name="down",
                error_type="ERROR_REASON_UPSTREAM_UNAVAILABLE") == 1
    assert grew("portico_calls_total", method="Chat", code="UNAVAILABLE") == 1


async def test_rate_limit_queue_depth_and_waits(endpoint: str) -> None:
    slow = {"content": "slow", "delay": 0.3}
    config = {"providers": [fake("queued", replies=[slow, slow], settings={"limits": {"concurrency": 1}})]}
    async with running_gateway(config) as gw:
        before = await page(endpoint)
        request = pb.ChatRequest(provider="queued", messages=USER)
        calls = [asyncio.ensure_future(gw.stub.Chat(request)) for _ in range(2)]
        # The second call waits for the first one's slot: the page shows it queued.
        key = "provider:queued"
        seen: list[float] = []

        async def queued_now() -> bool:
            seen.append((await page(endpoint)).value("portico_ratelimit_queue_depth", key=key))
            return seen[-1] == 1

        for _ in range(200):
            if await queued_now():
                break
        assert seen[-1] == 1, seen
        await asyncio.gather(*calls)
        after = await page(endpoint)
    assert after.value("portico_ratelimit_queue_depth", key=key) == 0
    waits = after.value("portico_ratelimit_wait_seconds_count", provider="queued") - \
        before.value("portico_ratelimit_wait_seconds_count", provider="queued")
    waited = after.value("portico_ratelimit_wait_seconds_sum", provider="queued") - \
        before.value("portico_ratelimit_wait_seconds_sum", provider="queued")
    assert waits == 2
    assert waited >= 0.2  # the second call waited for most of the first one's 0.3 s


async def test_in_flight_calls_and_open_streams_are_gauges(endpoint: str) -> None:
    config = {"providers": [fake("held", chunk_delay=0.2, chunk_size=2)]}
    async with running_gateway(config) as gw:
        stream = gw.stub.StreamChat(pb.ChatRequest(provider="held", messages=USER))
        await stream.read()  # the first chunk: the stream is open and in flight
        current = await page(endpoint)
        assert current.value("portico_streams_open") == 1
        assert current.value("portico_calls_in_flight", method="StreamChat") == 1
        stream.cancel()
        after: list[Page] = []

        async def closed() -> bool:
            after.append(await page(endpoint))
            return after[-1].value("portico_streams_open") == 0

        for _ in range(200):
            if await closed():
                break
        assert after[-1].value("portico_streams_open") == 0
        assert after[-1].value("portico_calls_total", method="StreamChat", code="CANCELLED") >= 1


async def test_a_request_refused_before_decoding_counts_under_its_method(endpoint: str) -> None:
    config = {"server": {"max_message_bytes": 2000}, "providers": [fake("small")]}
    async with running_gateway(config) as gw:
        before = await page(endpoint)
        huge = [t.Message(role=t.ROLE_USER, content="x" * 3000)]  # over the limit, under gRPC's own (twice it)
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await gw.stub.Chat(pb.ChatRequest(provider="small", messages=huge))
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        with pytest.raises(grpc.aio.AioRpcError):
            async for _ in gw.stub.StreamChat(pb.ChatRequest(provider="small", messages=huge)):
                pass
        after = await page(endpoint)
    for method in ("Chat", "StreamChat"):
        assert after.value("portico_calls_total", method=method, code="INVALID_ARGUMENT") - \
            before.value("portico_calls_total", method=method, code="INVALID_ARGUMENT") == 1
        assert after.value("portico_calls_in_flight", method=method) == 0
    assert "unknown" not in after.label_values("portico_calls_total", "method")


async def test_a_reload_leaves_an_open_breaker_shown_open(endpoint: str, tmp_path: Path) -> None:
    unavailable = {"error": {"reason": "UPSTREAM_UNAVAILABLE"}}
    tree = {"server": {"address": "127.0.0.1:0", "health_probe_interval": 0},
            "providers": [fake("reloaded", replies=[unavailable],
                               settings={"retry": {"enabled": False}, "breaker": {"failures": 1, "recovery": 300}})]}
    path = tmp_path / "portico.yaml"
    path.write_text(yaml.safe_dump(tree))
    gateway = Gateway(load_config(path), config_path=str(path))
    await gateway.start()
    try:
        async with grpc.aio.insecure_channel(gateway.address) as channel:
            with pytest.raises(grpc.aio.AioRpcError):
                await llm_service_pb2_grpc.LLMServiceStub(channel).Chat(
                    pb.ChatRequest(provider="reloaded", messages=USER))
        assert (await page(endpoint)).value("portico_breaker_state", provider="reloaded") == 2
        await gateway.reload("a test")
        assert (await page(endpoint)).value("portico_breaker_state", provider="reloaded") == 2
    finally:
        await gateway.stop(grace=0)
