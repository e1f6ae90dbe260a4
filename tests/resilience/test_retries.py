"""Retries against a failing upstream: which failures are tried again, how long the
gateway waits, and the quota cooldown."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from faults import CHAT_PATH, QUICK_RETRY, USER, attempts_of, completion, error, openai_provider
from grpc_health.v1 import health_pb2, health_pb2_grpc
from harness import rpc_details, running_gateway
from portico.v1 import llm_service_pb2 as pb
from upstream import Received, Reply, Upstream

REQUEST = pb.ChatRequest(model="gpt-4o", messages=[USER])


async def test_429_with_retry_after_is_retried_once_after_the_wait() -> None:
    loop = asyncio.get_running_loop()
    arrivals: list[float] = []
    replies = [error(429, "rate_limit_exceeded", {"retry-after": "1"}), completion("after the wait")]

    async def respond(_: Received) -> Reply:
        arrivals.append(loop.time())
        return replies.pop(0)

    async with Upstream() as up:
        up.respond("POST", CHAT_PATH, respond)
        async with running_gateway({"providers": [openai_provider("openai", up)]}) as gw:
            call = gw.stub.Chat(REQUEST)
            response = await call
            trailers = await call.trailing_metadata()

    assert response.content == "after the wait"
    assert len(arrivals) == 2
    assert arrivals[1] - arrivals[0] >= 1.0
    trace = attempts_of(trailers)
    assert [(a["outcome"], a["status"]) for a in trace] == [("error", "RESOURCE_EXHAUSTED"), ("ok", "OK")]
    assert trace[0]["reason"] == "ERROR_REASON_UPSTREAM_RATE_LIMITED"
    assert trace[1]["wait_ms"] >= 1000


async def test_503_three_times_then_success() -> None:
    async with Upstream() as up:
        for _ in range(3):
            up.add("POST", CHAT_PATH, error(503))
        up.add("POST", CHAT_PATH, completion("fourth time lucky"))
        async with running_gateway({"providers": [openai_provider("openai", up, retry=QUICK_RETRY)]}) as gw:
            call = gw.stub.Chat(REQUEST)
            response = await call
            trailers = await call.trailing_metadata()

    assert response.content == "fourth time lucky"
    assert len(up.received) == 4
    assert [a["status"] for a in attempts_of(trailers)] == ["UNAVAILABLE"] * 3 + ["OK"]


@pytest.mark.parametrize("status", [400, 401, 404, 422])
async def test_other_4xx_are_never_retried(status: int) -> None:
    async with Upstream() as up:
        up.always("POST", CHAT_PATH, error(status, "invalid_request_error"))
        async with running_gateway({"providers": [openai_provider("openai", up, retry=QUICK_RETRY)]}) as gw:
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await gw.stub.Chat(REQUEST)

    assert info.value.code() != grpc.StatusCode.UNAVAILABLE
    assert len(up.received) == 1
    assert len(attempts_of(info.value.trailing_metadata())) == 1


@pytest.mark.parametrize("status", [500, 502, 504])
async def test_a_failure_that_may_have_been_billed_is_not_retried_unless_unsafe_retries_are_on(status: int) -> None:
    async with Upstream() as up:
        up.always("POST", CHAT_PATH, error(status))
        config = {"providers": [openai_provider("openai", up, retry=QUICK_RETRY)]}
        async with running_gateway(config) as gw:
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await gw.stub.Chat(REQUEST)
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE
        assert len(up.received) == 1  # one call, one possible generation

        config = {"providers": [openai_provider("openai", up, retry={**QUICK_RETRY, "unsafe": True})]}
        async with running_gateway(config) as gw:
            with pytest.raises(grpc.aio.AioRpcError):
                await gw.stub.Chat(REQUEST)
        assert len(up.received) == 1 + 4  # the first call and three retries


async def test_retries_give_up_at_the_configured_count() -> None:
    async with Upstream() as up:
        up.always("POST", CHAT_PATH, error(503))
        config = {"providers": [openai_provider("openai", up, retry={**QUICK_RETRY, "attempts": 2})]}
        async with running_gateway(config) as gw:
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await gw.stub.Chat(REQUEST)

    assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    assert len(up.received) == 3  # the first call and two retries


async def test_a_wait_past_the_deadline_is_not_taken() -> None:
    loop = asyncio.get_running_loop()
    async with Upstream() as up:
        up.always("POST", CHAT_PATH, error(429, "rate_limit_exceeded", {"retry-after": "5"}))
        config = {"providers": [openai_provider("openai", up, retry={"backoff_max": 30})]}
        async with running_gateway(config) as gw:
            started = loop.time()
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await gw.stub.Chat(REQUEST, timeout=2)
            elapsed = loop.time() - started

    # The status it would have ended with, at once, saying why it did not wait.
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "deadline" in (info.value.details() or "")
    assert elapsed < 1.0
    assert len(up.received) == 1


async def test_insufficient_quota_is_not_retried_and_cools_the_provider_down() -> None:
    async with Upstream() as up:
        up.always("POST", CHAT_PATH, error(429, "insufficient_quota"))
        config = {"providers": [openai_provider("openai", up, retry=QUICK_RETRY, quota_cooldown=600)]}
        async with running_gateway(config) as gw:
            health = health_pb2_grpc.HealthStub(gw.channel)
            service = health_pb2.HealthCheckRequest(service="portico.provider.openai")
            assert (await health.Check(service)).status == health_pb2.HealthCheckResponse.SERVING

            with pytest.raises(grpc.aio.AioRpcError) as first:
                await gw.stub.Chat(REQUEST)
            assert rpc_details(first.value)["reason"] == "ERROR_REASON_UPSTREAM_QUOTA_EXCEEDED"
            assert len(up.received) == 1

            listed = (await gw.stub.ListProviders(pb.ListProvidersRequest())).providers[0]
            assert 590 < listed.cooldown_seconds <= 600
            assert listed.health == pb.PROVIDER_HEALTH_NOT_SERVING
            assert (await health.Check(service)).status == health_pb2.HealthCheckResponse.NOT_SERVING

            # While it cools down, calls do not reach the upstream.
            with pytest.raises(grpc.aio.AioRpcError) as second:
                await gw.stub.Chat(REQUEST)
            assert rpc_details(second.value)["reason"] == "ERROR_REASON_UPSTREAM_QUOTA_EXCEEDED"
            assert "skipped" in (second.value.details() or "")
            assert [a["outcome"] for a in attempts_of(second.value.trailing_metadata())] == ["skipped"]
            assert len(up.received) == 1


async def test_retries_can_be_turned_off() -> None:
    async with Upstream() as up:
        up.always("POST", CHAT_PATH, error(503))
        config = {"providers": [openai_provider("openai", up, retry={"enabled": False})]}
        async with running_gateway(config) as gw:
            with pytest.raises(grpc.aio.AioRpcError):
                await gw.stub.Chat(REQUEST)

    assert len(up.received) == 1
