"""Several gateway processes sharing one real redis-server behave as one gateway: caller
limits, budgets and concurrency leases hold across them, a dead replica's leases come
free after their expiry, and an unreachable Redis never hangs a call."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from harness import rpc_details, running_gateway, spawned_gateway
from portico.v1 import llm_service_pb2 as pb
from portico.v1 import llm_service_pb2_grpc
from portico.v1 import types_pb2 as t
from redis_server import RedisServer, free_port

ALPHA = "pk-alpha-5e0c2b9a71"
BETA = "pk-beta-0d4f61a8c3"
SHARED_HEALTH = "portico.shared_state"


def sha(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def config(redis_url: str, *, alpha: dict[str, Any] | None = None, beta: dict[str, Any] | None = None,
           provider: dict[str, Any] | None = None, **redis: Any) -> str:
    tree = {
        "providers": [{"name": "fake", "kind": "fake", "models": ["fake-chat"], "retry": {"enabled": False},
                       **(provider or {})}],
        "auth": {"keys": [{"name": "alpha", "sha256": sha(ALPHA), **(alpha or {})},
                          {"name": "beta", "sha256": sha(BETA), **(beta or {})}]},
        "redis": {"url": redis_url, "retry_interval": 0.2, **redis},
        "metrics": None,
        # One process per replica (the default is one per core); the workers test asks for two.
        "server": {"workers": 1},
    }
    return json.dumps(tree)  # JSON is YAML


def chat(text: str = "hello there") -> pb.ChatRequest:
    return pb.ChatRequest(model="fake-chat", messages=[t.Message(role=t.ROLE_USER, content=text)])


def bearer(key: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {key}"),)


def refusal(stub: llm_service_pb2_grpc.LLMServiceStub, key: str) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as info:
        stub.Chat(chat(), metadata=bearer(key), timeout=10)
    return info.value


@contextlib.contextmanager
def replicas(count: int, config_text: str, tmp_path: Path) -> Iterator[list[tuple[Any, grpc.Channel]]]:
    """`count` gateway processes of one configuration, each with its own channel."""
    with contextlib.ExitStack() as stack:
        out = []
        for _ in range(count):
            process, address = stack.enter_context(spawned_gateway(config_text, tmp_path))
            channel = stack.enter_context(grpc.insecure_channel(address))
            out.append((process, channel))
        yield out


def stub(channel: grpc.Channel) -> llm_service_pb2_grpc.LLMServiceStub:
    return llm_service_pb2_grpc.LLMServiceStub(channel)


def shared_health(channel: grpc.Channel) -> int:
    return int(health_pb2_grpc.HealthStub(channel).Check(
        health_pb2.HealthCheckRequest(service=SHARED_HEALTH), timeout=10).status)


def wait_for(predicate: Any, what: str, seconds: float = 20) -> None:
    """Poll a state of the processes (bounded: a hang fails the test)."""
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"never happened within {seconds} s: {what}")
        time.sleep(0.05)


def test_a_caller_limit_of_ten_per_minute_holds_across_three_replicas(redis_server: RedisServer,
                                                                     tmp_path: Path) -> None:
    with replicas(3, config(redis_server.url, alpha={"rpm": 10}), tmp_path) as gateways:
        stubs = [stub(channel) for _, channel in gateways]
        for n in range(10):
            stubs[n % 3].Chat(chat(), metadata=bearer(ALPHA), timeout=10)
        for each in stubs:  # the 11th call is refused on whichever replica it reaches
            err = refusal(each, ALPHA)
            assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            details = rpc_details(err)
            assert details["reason"] == "ERROR_REASON_RATE_LIMITED"
            assert 0 < details["retry_delay"] <= 60
        # Another caller is untouched.
        assert stubs[0].Chat(chat(), metadata=bearer(BETA), timeout=10).content
        assert all(shared_health(channel) == health_pb2.HealthCheckResponse.SERVING for _, channel in gateways)


def test_a_budget_spent_across_replicas_stops_at_its_limit(redis_server: RedisServer, tmp_path: Path) -> None:
    budget = 200
    with replicas(3, config(redis_server.url, alpha={"budget": {"tokens": budget, "per": "day"}}),
                  tmp_path) as gateways:
        stubs = [stub(channel) for _, channel in gateways]
        spent, calls = 0, 0
        while True:
            try:
                reply = stubs[calls % 3].Chat(chat(), metadata=bearer(ALPHA), timeout=10)
            except grpc.RpcError as err:
                assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
                assert rpc_details(err)["metadata"]["used_tokens"] == str(spent)
                break
            per_call = reply.usage.total_token_count
            assert per_call > 0
            spent += per_call
            calls += 1
            assert calls < 100, "the budget never stopped the caller"
        # The refusal came with the first call after the whole budget was used, on any replica.
        assert spent >= budget and spent - per_call < budget
        assert calls > 3, "the spend came from every replica, not one"
        for each in stubs:
            assert refusal(each, ALPHA).code() == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_a_killed_replicas_concurrency_lease_comes_free_after_it_expires(redis_server: RedisServer,
                                                                          tmp_path: Path) -> None:
    slow = {"limits": {"concurrency": 1, "queue": 0}, "options": {"chunk_size": 1, "chunk_delay": 0.5}}
    text = config(redis_server.url, provider=slow, lease_ttl=3)
    with replicas(2, text, tmp_path) as gateways:
        (doomed, doomed_channel), (_, survivor_channel) = gateways
        stream = stub(doomed_channel).StreamChat(chat("a long answer " * 20), metadata=bearer(ALPHA), timeout=60)
        assert next(iter(stream)).content  # streaming: it holds the provider's only slot
        survivor = stub(survivor_channel)
        err = refusal(survivor, ALPHA)
        assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert rpc_details(err)["metadata"]["limit"] == "concurrency"
        # While its replica lives, the lease is renewed before it could expire.
        first = lease_expiry(redis_server)
        wait_for(lambda: lease_expiry(redis_server) > first, "the running call's lease was renewed")
        doomed.send_signal(signal.SIGKILL)
        doomed.wait(10)
        killed = time.monotonic()
        # Not at once: the lease outlives its replica until its expiry (3 s) ...
        assert refusal(survivor, ALPHA).code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        # ... and then the slot is free again.
        wait_for(lambda: _succeeds(survivor), "the dead replica's lease expired")
        assert time.monotonic() - killed < 15


def lease_expiry(redis_server: RedisServer) -> float:
    """When the only lease of the fake provider's concurrency limit expires (ms, Redis's clock)."""
    reply = redis_server.command("ZRANGE", "portico:{limit:provider:fake}:leases", "0", "-1", "WITHSCORES")
    lines = reply.decode().split("\r\n")
    assert lines[0] == "*2", reply
    return float(lines[4])


def _succeeds(each: llm_service_pb2_grpc.LLMServiceStub) -> bool:
    try:
        each.Chat(chat(), metadata=bearer(ALPHA), timeout=10)
    except grpc.RpcError as err:
        assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        return False
    return True


def test_redis_stopped_fails_open_with_health_saying_so_then_shared_limits_resume(
        redis_server: RedisServer, tmp_path: Path) -> None:
    text = config(redis_server.url, alpha={"rpm": 10}, beta={"rpm": 4})
    with replicas(2, text, tmp_path) as gateways:
        stubs = [stub(channel) for _, channel in gateways]
        for n in range(10):
            stubs[n % 2].Chat(chat(), metadata=bearer(ALPHA), timeout=10)
        assert refusal(stubs[0], ALPHA).code() == grpc.StatusCode.RESOURCE_EXHAUSTED

        redis_server.stop()
        # Calls keep flowing under each replica's own limit (10 per minute, 5 used on each).
        started = time.monotonic()
        for each in stubs:
            assert each.Chat(chat(), metadata=bearer(ALPHA), timeout=10).content
        assert time.monotonic() - started < 5, "bounded, not hung on Redis"
        for _, channel in gateways:
            wait_for(lambda channel=channel: shared_health(channel) == health_pb2.HealthCheckResponse.NOT_SERVING,
                     "the health entry says the shared state is down")
        # The main entry stays SERVING: a Redis outage does not take replicas out of rotation.
        assert health_pb2_grpc.HealthStub(gateways[0][1]).Check(
            health_pb2.HealthCheckRequest(service=""), timeout=10).status == health_pb2.HealthCheckResponse.SERVING

        redis_server.start()
        for _, channel in gateways:
            wait_for(lambda channel=channel: shared_health(channel) == health_pb2.HealthCheckResponse.SERVING,
                     "the health entry says the shared state is back")
        # Shared again: beta's 4 per minute hold across both replicas, though each alone would allow 4.
        for n in range(4):
            stubs[n % 2].Chat(chat(), metadata=bearer(BETA), timeout=10)
        for each in stubs:
            assert refusal(each, BETA).code() == grpc.StatusCode.RESOURCE_EXHAUSTED


async def test_fail_closed_refuses_limited_callers_at_once_and_lets_others_through() -> None:
    tree = json.loads(config(f"redis://127.0.0.1:{free_port()}/0", alpha={"rpm": 100}, on_unavailable="closed"))
    async with running_gateway(tree) as gw:
        started = time.monotonic()
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await gw.stub.Chat(chat(), metadata=bearer(ALPHA), timeout=10)
        assert time.monotonic() - started < 5, "bounded, not hung on Redis"
        err = info.value
        assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        details = rpc_details(err)
        assert details["metadata"]["limit"] == "shared_state" and details["retry_delay"] > 0
        assert "unreachable" in (err.details() or "")
        assert (await gw.stub.Chat(chat(), metadata=bearer(BETA), timeout=10)).content


def fresh_channel(address: str) -> grpc.Channel:
    # A channel of its own TCP connection: channels in one process otherwise share one.
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


def test_two_workers_hold_one_caller_limit(redis_server: RedisServer, tmp_path: Path) -> None:
    with spawned_gateway(config(redis_server.url, alpha={"rpm": 6}), tmp_path, "--workers", "2") as (_, address):
        channels: dict[int, grpc.Channel] = {}
        with contextlib.ExitStack() as stack:
            for _ in range(100):  # the kernel spreads connections over the workers at random
                channel = stack.enter_context(fresh_channel(address))
                channels.setdefault(worker_of(channel), channel)
                if len(channels) == 2:
                    break
            assert len(channels) == 2, "never reached both workers"
            stubs = [stub(channels[1]), stub(channels[2])]
            for n in range(6):
                stubs[n % 2].Chat(chat(), metadata=bearer(ALPHA), timeout=10)
            for each in stubs:
                assert refusal(each, ALPHA).code() == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_without_redis_each_process_counts_alone(tmp_path: Path) -> None:
    tree = json.loads(config("redis://unused:1", alpha={"rpm": 2}))
    del tree["redis"]
    with replicas(2, json.dumps(tree), tmp_path) as gateways:
        for _, channel in gateways:  # two per process: four in all
            for _ in range(2):
                stub(channel).Chat(chat(), metadata=bearer(ALPHA), timeout=10)
            assert refusal(stub(channel), ALPHA).code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert os.environ.get("PORTICO_WORKER") is None
