"""What ListProviders and the health entries show while calls run, and recovery through
the health probe."""

from __future__ import annotations

import asyncio
import json

import grpc
import pytest
from faults import CHAT_PATH, USER, attempts_of, completion, error, openai_provider, overhead_of, sse_events
from grpc_health.v1 import health_pb2, health_pb2_grpc
from harness import running_gateway
from portico.v1 import llm_service_pb2 as pb
from portico_server.resilience.trace import MAX_TRACE_BYTES, Trace
from upstream import Reply, Upstream

REQUEST = pb.ChatRequest(model="gpt-4o", messages=[USER])
MODELS = Reply(200, {"content-type": "application/json"},
               json.dumps({"object": "list", "data": [{"id": "gpt-4o", "object": "model"}]}).encode())


async def provider_info(gw: object) -> pb.ProviderInfo:
    listed = await gw.stub.ListProviders(pb.ListProvidersRequest())  # type: ignore[attr-defined]
    return listed.providers[0]


async def test_list_providers_shows_latency_and_calls_in_flight() -> None:
    async with Upstream() as up:
        up.add("POST", CHAT_PATH, completion("quick"))
        events = sse_events(["first ", "and never more"])
        up.add("POST", CHAT_PATH, Reply(200, {"content-type": "text/event-stream"}, b"".join(events),
                                        hang_after=len(events[0])))
        config = {"providers": [openai_provider("openai", up, breaker={"failures": 1})]}
        async with running_gateway(config) as gw:
            await gw.stub.Chat(REQUEST)
            info = await provider_info(gw)
            assert info.latency_ms > 0 and info.error_rate == 0 and info.in_flight == 0
            assert info.breaker_state == pb.BREAKER_STATE_CLOSED

            stream = gw.stub.StreamChat(REQUEST)
            assert (await stream.read()).content == "first "
            info = await provider_info(gw)
            assert info.in_flight == 1 and info.ttft_ms > 0

            # A caller's cancellation is no failure of the provider: with a threshold of
            # one, the breaker would open if it counted.
            stream.cancel()
            await asyncio.wait_for(up.disconnected.wait(), 1.0)
            info = await provider_info(gw)
            assert info.in_flight == 0
            assert info.breaker_state == pb.BREAKER_STATE_CLOSED
            assert info.health == pb.PROVIDER_HEALTH_SERVING


async def test_a_successful_probe_lets_an_open_breaker_try_again() -> None:
    async with Upstream() as up:
        up.always("POST", CHAT_PATH, error(503))
        up.always("GET", "/v1/models", MODELS)
        config = {"providers": [openai_provider("openai", up, retry={"enabled": False},
                                                breaker={"failures": 1, "recovery": 300})]}
        async with running_gateway(config) as gw:
            health = health_pb2_grpc.HealthStub(gw.channel)
            service = health_pb2.HealthCheckRequest(service="portico.provider.openai")
            with pytest.raises(grpc.aio.AioRpcError):
                await gw.stub.Chat(REQUEST)
            assert (await provider_info(gw)).breaker_state == pb.BREAKER_STATE_OPEN
            assert (await health.Check(service)).status == health_pb2.HealthCheckResponse.NOT_SERVING

            up.always("POST", CHAT_PATH, completion("recovered"))
            await gw.gateway.health.probe_once()  # the periodic probe, run once now
            assert (await provider_info(gw)).breaker_state == pb.BREAKER_STATE_HALF_OPEN
            assert (await gw.stub.Chat(REQUEST)).content == "recovered"
            assert (await health.Check(service)).status == health_pb2.HealthCheckResponse.SERVING
            assert (await provider_info(gw)).breaker_state == pb.BREAKER_STATE_CLOSED


async def test_per_model_breakers_keep_the_healthy_model_serving() -> None:
    async def respond(received: object) -> Reply:
        model = received.json()["model"]  # type: ignore[attr-defined]
        return error(503) if model == "broken" else completion(f"from {model}")

    async with Upstream() as up:
        up.respond("POST", CHAT_PATH, respond)
        config = {"providers": [openai_provider("openai", up, models=["broken", "fine"], retry={"enabled": False},
                                                breaker={"failures": 2, "per_model": True})]}
        async with running_gateway(config) as gw:
            for _ in range(3):
                with pytest.raises(grpc.aio.AioRpcError):
                    await gw.stub.Chat(pb.ChatRequest(model="broken", messages=[USER]))
            assert (await gw.stub.Chat(pb.ChatRequest(model="fine", messages=[USER]))).content == "from fine"
            assert (await provider_info(gw)).breaker_state == pb.BREAKER_STATE_OPEN
    assert [r.json()["model"] for r in up.received] == ["broken", "broken", "fine"]


def test_a_long_trace_is_cut_below_the_trailer_limit_and_says_so() -> None:
    trace = Trace(active=True)
    for _ in range(200):
        trace.ok("a-provider-with-a-long-name", "a-model-with-an-even-longer-name-2026-01-01", 0.25, 0.125)
    trailers = dict(trace.metadata())
    assert len(trailers["portico-attempts"]) <= MAX_TRACE_BYTES
    shown = json.loads(trailers["portico-attempts"])
    assert int(trailers["portico-attempts-omitted"]) == 200 - len(shown) > 0
    assert float(trailers["portico-overhead-ms"]) >= 0


async def test_a_call_refused_before_any_attempt_still_carries_an_empty_trace() -> None:
    async with Upstream() as up, running_gateway({"providers": [openai_provider("openai", up)]}) as gw:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await gw.stub.Chat(pb.ChatRequest(provider="openai", model="gpt-4o", messages=[]))
    trailers = info.value.trailing_metadata()
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert attempts_of(trailers) == []
    assert overhead_of(trailers) >= 0
    assert up.received == []
