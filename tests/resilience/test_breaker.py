"""The circuit breaker of a provider that keeps failing: it opens at the threshold, the
health entry follows, and one trial call closes it again after the recovery time."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from faults import CHAT_PATH, USER, attempts_of, completion, error, openai_provider
from grpc_health.v1 import health_pb2, health_pb2_grpc
from harness import rpc_details, running_gateway
from portico.v1 import llm_service_pb2 as pb
from upstream import Upstream

REQUEST = pb.ChatRequest(model="gpt-4o", messages=[USER])
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def config(up: Upstream, **breaker: object) -> dict[str, object]:
    # Retries off so that each call is exactly one upstream failure.
    return {"providers": [openai_provider("openai", up, retry={"enabled": False},
                                          breaker={"failures": 3, "recovery": 0.5, **breaker})]}


async def provider_info(gw: object) -> pb.ProviderInfo:
    listed = await gw.stub.ListProviders(pb.ListProvidersRequest())  # type: ignore[attr-defined]
    return listed.providers[0]


async def test_breaker_opens_at_the_threshold_and_a_trial_closes_it() -> None:
    loop = asyncio.get_running_loop()
    async with Upstream() as up:
        up.always("POST", CHAT_PATH, error(503))
        async with running_gateway(config(up)) as gw:
            health = health_pb2_grpc.HealthStub(gw.channel)
            watch = health.Watch(health_pb2.HealthCheckRequest(service="portico.provider.openai"))
            assert (await watch.read()).status == SERVING

            for _ in range(3):
                with pytest.raises(grpc.aio.AioRpcError) as failed:
                    await gw.stub.Chat(REQUEST)
                assert rpc_details(failed.value)["reason"] == "ERROR_REASON_UPSTREAM_UNAVAILABLE"
            opened = loop.time()
            assert (await asyncio.wait_for(watch.read(), 2)).status == NOT_SERVING

            # Open: the call fails fast without reaching the upstream, saying when to retry.
            with pytest.raises(grpc.aio.AioRpcError) as fast:
                await gw.stub.Chat(REQUEST)
            details = rpc_details(fast.value)
            assert fast.value.code() == grpc.StatusCode.UNAVAILABLE
            assert details["reason"] == "ERROR_REASON_CIRCUIT_OPEN"
            assert details["metadata"]["retry_safe"] == "true"
            assert 0 < details["retry_delay"] <= 0.5
            assert [a["outcome"] for a in attempts_of(fast.value.trailing_metadata())] == ["skipped"]
            assert len(up.received) == 3
            info = await provider_info(gw)
            assert info.breaker_state == pb.BREAKER_STATE_OPEN
            assert info.health == pb.PROVIDER_HEALTH_NOT_SERVING
            assert info.error_rate > 0.5

            # After the recovery time the breaker lets one trial through; it succeeds.
            up.always("POST", CHAT_PATH, completion("back again"))
            for _ in range(100):
                if (await provider_info(gw)).breaker_state == pb.BREAKER_STATE_HALF_OPEN:
                    break
                await asyncio.sleep(0.05)
            assert loop.time() - opened >= 0.45
            assert (await gw.stub.Chat(REQUEST)).content == "back again"
            assert len(up.received) == 4
            assert (await asyncio.wait_for(watch.read(), 2)).status == SERVING
            info = await provider_info(gw)
            assert info.breaker_state == pb.BREAKER_STATE_CLOSED
            assert info.health == pb.PROVIDER_HEALTH_SERVING
            watch.cancel()


async def test_a_failed_trial_opens_the_breaker_again() -> None:
    async with Upstream() as up:
        up.always("POST", CHAT_PATH, error(500))
        async with running_gateway(config(up, failures=1, recovery=0.2)) as gw:
            with pytest.raises(grpc.aio.AioRpcError):
                await gw.stub.Chat(REQUEST)
            for _ in range(100):
                if (await provider_info(gw)).breaker_state == pb.BREAKER_STATE_HALF_OPEN:
                    break
                await asyncio.sleep(0.05)
            with pytest.raises(grpc.aio.AioRpcError) as trial:
                await gw.stub.Chat(REQUEST)
            assert rpc_details(trial.value)["reason"] == "ERROR_REASON_UPSTREAM_UNAVAILABLE"
            assert (await provider_info(gw)).breaker_state == pb.BREAKER_STATE_OPEN
            assert len(up.received) == 2


async def test_invalid_requests_never_open_the_breaker() -> None:
    async with Upstream() as up:
        up.always("POST", CHAT_PATH, error(400, "invalid_request_error"))
        async with running_gateway(config(up)) as gw:
            for _ in range(6):
                with pytest.raises(grpc.aio.AioRpcError) as failed:
                    await gw.stub.Chat(REQUEST)
                assert failed.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            info = await provider_info(gw)
    assert info.breaker_state == pb.BREAKER_STATE_CLOSED
    assert info.health == pb.PROVIDER_HEALTH_SERVING
    assert len(up.received) == 6


async def test_a_breaker_can_be_turned_off() -> None:
    async with Upstream() as up:
        up.always("POST", CHAT_PATH, error(503))
        async with running_gateway(config(up, enabled=False)) as gw:
            for _ in range(5):
                with pytest.raises(grpc.aio.AioRpcError) as failed:
                    await gw.stub.Chat(REQUEST)
                assert rpc_details(failed.value)["reason"] == "ERROR_REASON_UPSTREAM_UNAVAILABLE"
            assert (await provider_info(gw)).breaker_state == pb.BREAKER_STATE_UNSPECIFIED
    assert len(up.received) == 5
