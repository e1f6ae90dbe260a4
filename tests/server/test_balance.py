"""Balancing strategies and hedged calls, on their own: the choice each strategy makes from
given figures, and the timing rules of `hedged`."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from dataclasses import dataclass, field

import pytest
from portico_server.config import HedgeSettings
from portico_server.errors import InvalidRequest, UpstreamUnavailable
from portico_server.resilience.balance import LeastInFlight, LowestLatency, WeightedRandom
from portico_server.resilience.hedge import hedge_delays, hedged
from portico_server.resilience.stats import LiveStats


@dataclass
class FixedStats:
    """Figures set by the test, for ordering strategies alone."""

    running: dict[str, int] = field(default_factory=dict)
    latency: dict[str, float] = field(default_factory=dict)

    def ttft_ewma(self, name: str) -> float | None:
        return None

    def latency_ewma(self, name: str) -> float | None:
        return self.latency.get(name)

    def in_flight(self, name: str) -> int:
        return self.running.get(name, 0)

    def available(self, name: str) -> bool:
        return True


@dataclass(frozen=True)
class Item:
    name: str
    weight: float = 1.0


ABC = [Item("a"), Item("b"), Item("c")]


def firsts(strategy: object, items: list[Item], stats: FixedStats, rounds: int) -> Counter[str]:
    counts: Counter[str] = Counter()
    for _ in range(rounds):
        order = strategy.order(items, stats)  # type: ignore[attr-defined]
        assert sorted(order) == list(range(len(items)))  # every deployment, once
        counts[items[order[0]].name] += 1
    return counts


def test_weighted_random_chooses_in_proportion_to_weight() -> None:
    items = [Item("a", 6), Item("b", 3), Item("c", 1)]
    counts = firsts(WeightedRandom(random.Random(7)), items, FixedStats(), 10_000)
    # Expected 6000/3000/1000; each bound is more than six standard deviations wide.
    assert 5700 < counts["a"] < 6300
    assert 2730 < counts["b"] < 3270
    assert 820 < counts["c"] < 1180


def test_least_in_flight_puts_the_idlest_first_per_unit_of_weight() -> None:
    stats = FixedStats(running={"a": 5, "b": 1, "c": 3})
    for _ in range(20):
        assert LeastInFlight().order(ABC, stats) == [1, 2, 0]
    # Four calls on a deployment of weight 4 weigh less than two on one of weight 1.
    weighted = [Item("a", 4), Item("b", 1)]
    assert LeastInFlight().order(weighted, FixedStats(running={"a": 4, "b": 2})) == [0, 1]


def test_least_in_flight_spreads_ties() -> None:
    counts = firsts(LeastInFlight(random.Random(3)), ABC, FixedStats(), 3000)
    assert all(800 < counts[name] < 1200 for name in "abc")


def test_lowest_latency_never_chooses_the_slowest_and_orders_the_rest_by_latency() -> None:
    stats = FixedStats(latency={"a": 0.9, "b": 0.1, "c": 0.5})
    strategy = LowestLatency(random.Random(11))
    counts = firsts(strategy, ABC, stats, 3000)
    assert counts["a"] == 0  # of any two drawn, the slowest always loses
    # b wins whenever drawn (two of three pairs); c only against a.
    assert 1850 < counts["b"] < 2150 and 850 < counts["c"] < 1150
    order = strategy.order(ABC, stats)
    assert [ABC[i].name for i in order[1:]] == sorted((ABC[i].name for i in order[1:]),
                                                    key=lambda n: stats.latency[n])


def test_lowest_latency_tries_an_unmeasured_deployment() -> None:
    stats = FixedStats(latency={"a": 0.2})
    assert LowestLatency().order([Item("a"), Item("new")], stats)[0] == 1


def test_live_stats_moving_averages_and_p95() -> None:
    stats = LiveStats()
    assert stats.latency_ewma("x") is None and stats.latency_p95("x") is None
    for value in [1.0] * 19 + [5.0]:
        stats.first_token(("x",), value / 10)
        stats.succeeded(("x",), value)
    assert stats.latency_p95("x") == 1.0
    stats.succeeded(("x",), 5.0)
    assert stats.latency_p95("x") == 5.0
    assert 1.0 < stats.latency_ewma("x") < 5.0  # type: ignore[operator]
    assert stats.ttft_ewma("x") is not None


def test_hedge_delays_fixed_or_from_the_targets_p95() -> None:
    stats = LiveStats()
    fixed = hedge_delays(HedgeSettings(after_ms=300), ["a", "b", "c"], stats)
    assert fixed(0) == 0.3
    assert fixed(1) is None  # two copies at most by default
    p95 = hedge_delays(HedgeSettings(after="p95", copies=3), ["a", "b", "c"], stats)
    assert p95(0) is None  # nothing known: no hedge
    for _ in range(10):
        stats.succeeded(("a",), 0.4)
    assert p95(0) == 0.4
    assert p95(2) is None


class Script:
    """Coroutine factories whose start, cancellation and end the tests watch."""

    def __init__(self) -> None:
        self.started: list[int] = []
        self.cancelled: list[int] = []
        self.release: dict[int, asyncio.Event] = {}
        self.two_started = asyncio.Event()

    def call(self, index: int, result: str | None = None, error: Exception | None = None, wait: bool = False):
        self.release[index] = asyncio.Event()

        async def run() -> str:
            self.started.append(index)
            if len(self.started) == 2:
                self.two_started.set()
            try:
                if wait:
                    await self.release[index].wait()
                if error is not None:
                    raise error
                return result or f"answer {index}"
            except asyncio.CancelledError:
                self.cancelled.append(index)
                raise

        return run


async def test_a_first_answer_before_the_delay_starts_no_second_call() -> None:
    script = Script()
    result = await hedged([script.call(0), script.call(1)], lambda i: 5.0)
    assert result == ("answer 0", 0)
    assert script.started == [0]


async def test_a_slow_first_call_is_hedged_and_cancelled_when_the_second_answers() -> None:
    script = Script()
    result = await asyncio.wait_for(hedged([script.call(0, wait=True), script.call(1)], lambda i: 0.05), 5)
    assert result == ("answer 1", 1)
    assert script.started == [0, 1]
    assert script.cancelled == [0]


async def test_a_failed_call_starts_the_next_at_once() -> None:
    script = Script()
    calls = [script.call(0, error=UpstreamUnavailable("down")), script.call(1)]
    # The hedge delay is an hour: only the failure can start the second call.
    result = await asyncio.wait_for(hedged(calls, lambda i: 3600.0), 5)
    assert result == ("answer 1", 1)


async def test_every_call_failing_raises_the_last_failure() -> None:
    script = Script()
    calls = [script.call(0, error=UpstreamUnavailable("first")), script.call(1, error=UpstreamUnavailable("second"))]
    with pytest.raises(UpstreamUnavailable, match="second"):
        await asyncio.wait_for(hedged(calls, lambda i: 3600.0), 5)


async def test_give_up_raises_at_once_and_cancels_the_rest() -> None:
    script = Script()
    calls = [script.call(0, wait=True), script.call(1, error=InvalidRequest([("model", "bad")]))]
    task = asyncio.ensure_future(hedged(calls, lambda i: 0.01, give_up=lambda e: isinstance(e, InvalidRequest)))
    with pytest.raises(InvalidRequest):
        await asyncio.wait_for(task, 5)
    assert script.cancelled == [0]


async def test_cancelling_hedged_cancels_every_call() -> None:
    script = Script()
    task = asyncio.ensure_future(hedged([script.call(0, wait=True), script.call(1, wait=True)], lambda i: 0.01))
    await asyncio.wait_for(script.two_started.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert sorted(script.cancelled) == [0, 1]
