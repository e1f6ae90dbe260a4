"""The shared resilience state of several replicas (dispatchers bound to one real
redis-server, in one process): half-open trial calls claimed by one replica at a time,
quota cooldowns and route pins passed on, live figures merged from every replica, and
nothing waiting on a Redis that is gone."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from harness import eventually
from portico_server.config import BreakerSettings, RedisSettings
from portico_server.health import HealthReporter
from portico_server.resilience.dispatcher import Dispatcher
from portico_server.shared.redis import SharedStore
from portico_server.shared.resilience import SharedResilience
from redis_server import RedisServer

SETTINGS = BreakerSettings(failures=1, recovery=0.05)


@dataclass
class Node:
    dispatcher: Dispatcher
    shared: SharedResilience
    pins: dict[str, str] = field(default_factory=dict)


@contextlib.asynccontextmanager
async def nodes(redis: RedisServer, count: int) -> AsyncIterator[list[Node]]:
    made: list[Node] = []
    stores: list[SharedStore] = []
    try:
        for _ in range(count):
            store = SharedStore(RedisSettings(url=redis.url, retry_interval=0.1))
            stores.append(store)
            dispatcher = Dispatcher(HealthReporter({}))
            pins: dict[str, str] = {}
            shared = SharedResilience(store, dispatcher, lambda provider: SETTINGS, pins.__setitem__)
            shared.start()
            await shared.connected.wait()
            made.append(Node(dispatcher, shared, pins))
        yield made
    finally:
        for node in made:
            await node.shared.close()
            node.dispatcher.close()
        for store in stores:
            await store.close()


async def test_one_replica_at_a_time_sends_the_trial_call_and_its_success_closes_all(
        redis_server: RedisServer) -> None:
    async with nodes(redis_server, 3) as (a, b, c):
        breaker_a = a.dispatcher.breakers.get("p", "m", SETTINGS)
        assert breaker_a is not None
        breaker_a.failed(False)
        await eventually(lambda: all(n.dispatcher.breakers.state("p").value == "half_open" for n in (b, c)),
                         "the others adopt the open breaker and half-open with it")
        trials = []
        for node in (a, b, c):
            breaker = node.dispatcher.breakers.by_key("p")
            assert breaker is not None and breaker.allow() is True  # locally each may try...
            gate = node.dispatcher.breakers.trial_gate
            assert gate is not None
            trials.append(await gate(breaker))
        assert trials.count(True) == 1  # ...but across replicas only one does
        winner = (a, b, c)[trials.index(True)]
        winning = winner.dispatcher.breakers.by_key("p")
        assert winning is not None
        winning.succeeded(True)
        await eventually(lambda: all(n.dispatcher.breakers.state("p").value == "closed" for n in (a, b, c)),
                         "the trial's success closes the breaker on every replica")


async def test_cooldowns_and_route_pins_reach_every_replica(redis_server: RedisServer) -> None:
    async with nodes(redis_server, 2) as (a, b):
        a.dispatcher.cool_down("p", 30)
        assert a.dispatcher.on_cooldown is not None
        a.dispatcher.on_cooldown("p", 30)
        await eventually(lambda: b.dispatcher.cooldown_left("p") > 25, "b skips the provider too")
        assert not b.dispatcher.available("p/m")

        a.shared.switched("chat", "q/m2")
        await eventually(lambda: b.pins.get("chat") == "q/m2", "b pins the route too")
        # A replica that starts later finds both in Redis.
        async with nodes(redis_server, 1) as (late,):
            assert late.dispatcher.cooldown_left("p") > 25
            assert late.pins == {"chat": "q/m2"}


async def test_live_figures_are_merged_from_every_replica(redis_server: RedisServer) -> None:
    async with nodes(redis_server, 2) as (a, b):
        for _ in range(10):
            a.dispatcher.stats.succeeded(("p/m",), 2.0)
            a.dispatcher.stats.first_token(("p/m",), 0.5)
        assert b.dispatcher.stats.latency_ewma("p/m") is None
        await eventually(lambda: b.dispatcher.stats.ttft_ewma("p/m") is not None, "b hears a's figures")
        assert b.dispatcher.stats.latency_ewma("p/m") == 2.0
        assert b.dispatcher.stats.ttft_ewma("p/m") == 0.5
        for _ in range(10):
            b.dispatcher.stats.succeeded(("p/m",), 1.0)
        # Equal calls on each side: the merged figure is their mean.
        assert b.dispatcher.stats.latency_ewma("p/m") == 1.5


async def test_with_redis_gone_nothing_waits_on_it(redis_server: RedisServer) -> None:
    async with nodes(redis_server, 1) as (a,):
        redis_server.stop()
        breaker = a.dispatcher.breakers.get("p", "m", SETTINGS)
        assert breaker is not None
        started = time.monotonic()
        breaker.failed(False)  # its publication fails in the background
        await eventually(lambda: breaker.state.value == "half_open", "half-open on local time")
        assert breaker.allow() is True
        gate = a.dispatcher.breakers.trial_gate
        assert gate is not None
        assert await gate(breaker) is True  # Redis away: this replica decides alone
        assert time.monotonic() - started < 5  # bounded, not hung
