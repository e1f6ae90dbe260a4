"""Three `portico serve` processes sharing one real redis-server, in front of one loopback
upstream: a breaker opened by failures seen on one replica fails fast on the others
(within a second), a reset through AdminService on one closes it on all, and Redis
stopped and started again mid-run."""

from __future__ import annotations

import asyncio
import contextlib
import json
import select
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import grpc
import pytest
from faults import CHAT_PATH, USER, completion, error, openai_provider
from grpc_health.v1 import health_pb2, health_pb2_grpc
from harness import PORTICO_BIN, rpc_details, spawned_gateway
from portico.v1 import admin_service_pb2 as admin
from portico.v1 import admin_service_pb2_grpc, llm_service_pb2_grpc
from portico.v1 import llm_service_pb2 as pb
from redis_server import RedisServer
from upstream import Upstream

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
REQUEST = pb.ChatRequest(provider="openai", messages=[USER])


class Replica:
    def __init__(self, address: str) -> None:
        self.channel = grpc.aio.insecure_channel(address)
        self.stub = llm_service_pb2_grpc.LLMServiceStub(self.channel)
        self.admin = admin_service_pb2_grpc.AdminServiceStub(self.channel)
        self.health = health_pb2_grpc.HealthStub(self.channel)

    async def provider_health(self) -> int:
        entry = health_pb2.HealthCheckRequest(service="portico.provider.openai")
        return int((await self.health.Check(entry, timeout=10)).status)

    async def until_health(self, status: int) -> float:
        """Watch the provider's health entry until it is `status` (bounded); the time it turned."""
        watch = self.health.Watch(health_pb2.HealthCheckRequest(service="portico.provider.openai"), timeout=20)
        async for update in watch:
            if update.status == status:
                watch.cancel()
                return time.monotonic()
        raise AssertionError(f"the provider's health never turned {status}")

    async def refused(self) -> dict[str, object]:
        with pytest.raises(grpc.aio.AioRpcError) as failed:
            await self.stub.Chat(REQUEST, timeout=10)
        return rpc_details(failed.value)


def config(up: Upstream, redis: RedisServer) -> str:
    return json.dumps({
        "server": {"health_probe_interval": 0},
        "providers": [openai_provider("openai", up, retry={"enabled": False},
                                      breaker={"failures": 2, "recovery": 60}),
                      openai_provider("spare", up)],
        "groups": {"chat": {"deployments": [{"provider": "openai", "model": "gpt-4o"}]}},
        "redis": {"url": redis.url, "retry_interval": 0.2},
    })


@contextlib.contextmanager
def three_gateways(text: str, tmp_path: Path) -> Iterator[list[str]]:
    """Three `portico serve` processes, started at once (each takes a while to import)."""
    (tmp_path / "portico.yaml").write_text(text)
    processes: list[subprocess.Popen[str]] = []
    try:
        for index in range(3):
            with (tmp_path / f"serve-{index}.log").open("w") as log:
                processes.append(subprocess.Popen(
                    [PORTICO_BIN, "serve", "--address", "127.0.0.1:0", "--config", str(tmp_path / "portico.yaml")],
                    stdout=subprocess.PIPE, stderr=log, text=True))
        addresses = []
        for index, process in enumerate(processes):
            assert process.stdout is not None
            ready, _, _ = select.select([process.stdout], [], [], 90)
            line = process.stdout.readline() if ready else ""
            assert line.startswith("portico: listening on "), (tmp_path / f"serve-{index}.log").read_text()
            addresses.append(line.removeprefix("portico: listening on ").strip())
        yield addresses
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
            process.wait(10)


@contextlib.asynccontextmanager
async def replicas(addresses: list[str]) -> AsyncIterator[list[Replica]]:
    found = [Replica(address) for address in addresses]
    try:
        yield found
    finally:
        for replica in found:
            await replica.channel.close()


async def test_failures_on_one_replica_make_the_others_fail_fast_and_a_reset_on_one_closes_all(
        tmp_path: Path, redis_server: RedisServer) -> None:
    async with Upstream() as up:
        up.always("POST", CHAT_PATH, error(503))
        with three_gateways(config(up, redis_server), tmp_path) as addresses:
            async with replicas(addresses) as (a, b, c):
                watching = [asyncio.ensure_future(r.until_health(NOT_SERVING)) for r in (b, c)]
                for _ in range(2):
                    assert (await a.refused())["reason"] == "ERROR_REASON_UPSTREAM_UNAVAILABLE"
                opened = time.monotonic()
                seen = await asyncio.gather(*watching)
                # The bound: open for every replica within a second.
                assert max(seen) - opened < 1.0
                for replica in (b, c):
                    refused = await replica.refused()
                    assert refused["reason"] == "ERROR_REASON_CIRCUIT_OPEN"
                    assert refused["metadata"]["breaker"] == "openai"
                assert len(up.received) == 2  # only replica a's two calls reached the upstream
                listed = (await b.admin.ListBreakers(admin.ListBreakersRequest())).breakers
                assert [(x.key, x.state) for x in listed] == [
                    ("openai", pb.BREAKER_STATE_OPEN), ("spare", pb.BREAKER_STATE_CLOSED)]
                trial_in = listed[0].next_trial_at.ToSeconds() - listed[0].opened_at.ToSeconds()
                assert trial_in == pytest.approx(60, abs=0.05)

                up.always("POST", CHAT_PATH, completion("fixed"))
                watching = [asyncio.ensure_future(r.until_health(SERVING)) for r in (a, b)]
                reset = await c.admin.ResetBreaker(admin.ResetBreakerRequest(provider="openai", reason="fixed"))
                assert [x.state for x in reset.breakers] == [pb.BREAKER_STATE_CLOSED]
                await asyncio.gather(*watching)
                for replica in (a, b, c):
                    assert (await replica.stub.Chat(REQUEST, timeout=10)).content == "fixed"

                # A route pinned through one replica is pinned on all.
                await c.admin.SwitchRoute(admin.SwitchRouteRequest(route="chat", target="spare", reason="drill"))
                for replica in (a, b):
                    await until_answered_by(replica, "spare")


async def until_answered_by(replica: Replica, provider: str) -> None:
    request = pb.ChatRequest(model="chat", messages=[USER])
    for _ in range(500):
        if (await replica.stub.Chat(request, timeout=10)).provider == provider:
            return
    raise AssertionError(f"the route was never pinned to {provider}")


async def test_redis_stopped_calls_flow_on_local_breakers_and_restarted_they_are_shared_again(
        tmp_path: Path, redis_server: RedisServer) -> None:
    async with Upstream() as up:
        up.always("POST", CHAT_PATH, completion("fine"))
        with three_gateways(config(up, redis_server), tmp_path) as addresses:
            async with replicas(addresses) as (a, b, c):
                for replica in (a, b, c):  # connected: each has said its figures are shared
                    assert (await replica.stub.Chat(REQUEST, timeout=10)).content == "fine"
                redis_server.stop()
                started = time.monotonic()
                for replica in (a, b, c):  # fail open: calls keep flowing, none waits on Redis
                    assert (await replica.stub.Chat(REQUEST, timeout=10)).content == "fine"
                assert time.monotonic() - started < 5  # bounded, not hung

                # Alone, a's breaker opens for a only: b has no way to hear of it.
                up.always("POST", CHAT_PATH, error(503))
                for _ in range(2):
                    await a.refused()
                assert (await a.refused())["reason"] == "ERROR_REASON_CIRCUIT_OPEN"
                assert await b.provider_health() == SERVING

                # Back: a writes its open breaker back and b and c adopt it.
                watching = [asyncio.ensure_future(r.until_health(NOT_SERVING)) for r in (b, c)]
                redis_server.start()
                await asyncio.gather(*watching)
                received = len(up.received)
                assert (await c.refused())["reason"] == "ERROR_REASON_CIRCUIT_OPEN"
                assert len(up.received) == received


def fresh_channel(address: str) -> grpc.Channel:
    # A TCP connection of its own: with several workers, each lands on one of them.
    return grpc.insecure_channel(address, options=[("grpc.use_local_subchannel_pool", 1)])


def worker_of(channel: grpc.Channel) -> int:
    health = health_pb2_grpc.HealthStub(channel)
    for index in (1, 2):
        try:
            health.Check(health_pb2.HealthCheckRequest(service=f"portico.worker.{index}"), timeout=10)
            return index
        except grpc.RpcError as err:
            assert err.code() == grpc.StatusCode.NOT_FOUND
    raise AssertionError("no worker answered")


def channel_to_worker(address: str, wanted: int) -> grpc.Channel:
    for _ in range(100):
        channel = fresh_channel(address)
        if worker_of(channel) == wanted:
            return channel
        channel.close()
    raise AssertionError(f"no connection landed on worker {wanted}")


async def test_the_workers_of_one_gateway_share_a_breaker(tmp_path: Path, redis_server: RedisServer) -> None:
    async with Upstream() as up:
        up.always("POST", CHAT_PATH, error(503))
        text = config(up, redis_server)
        with spawned_gateway(text, tmp_path, "--workers", "2") as (_, address):
            first, second = channel_to_worker(address, 1), channel_to_worker(address, 2)
            try:
                for _ in range(2):
                    with pytest.raises(grpc.RpcError) as failed:
                        await asyncio.to_thread(llm_service_pb2_grpc.LLMServiceStub(first).Chat, REQUEST, timeout=10)
                    assert rpc_details(failed.value)["reason"] == "ERROR_REASON_UPSTREAM_UNAVAILABLE"
                watch = health_pb2_grpc.HealthStub(second).Watch(
                    health_pb2.HealthCheckRequest(service="portico.provider.openai"), timeout=20)
                statuses = (update.status for update in watch)
                assert await asyncio.to_thread(lambda: NOT_SERVING in statuses)
                watch.cancel()
                with pytest.raises(grpc.RpcError) as refused:
                    await asyncio.to_thread(llm_service_pb2_grpc.LLMServiceStub(second).Chat, REQUEST, timeout=10)
                assert rpc_details(refused.value)["reason"] == "ERROR_REASON_CIRCUIT_OPEN"
                assert len(up.received) == 2
            finally:
                first.close()
                second.close()
