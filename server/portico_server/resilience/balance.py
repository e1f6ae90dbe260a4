"""Load balancing over a model group: which deployment first, which next.

A strategy turns a group's deployments into an order: the first is the choice, the rest
are the fallbacks in turn. Strategies read live figures through `Stats`, keyed by a
target's name (`"provider/model"`, e.g. `"openai#2/gpt-4o-mini"`); the dispatcher's live
statistics (stats.py) implement it.

- `weighted` (`WeightedRandom`): each deployment comes first with probability weight /
  total weight; the rest follow in a weighted random order too.
- `least_in_flight` (`LeastInFlight`): fewest calls in flight per unit of weight first;
  ties in random order.
- `lowest_latency` (`LowestLatency`): power of two choices: two deployments drawn by
  weight, the one with the lower latency moving average first (a deployment with no
  figures yet counts as fastest, so it gets measured); the rest by latency.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Protocol, runtime_checkable


class Stats(Protocol):
    """Live figures per target name; None when nothing has been observed yet."""

    def ttft_ewma(self, name: str) -> float | None:
        """Moving average of seconds to the first token (a unary answer's first byte)."""

    def latency_ewma(self, name: str) -> float | None:
        """Moving average of seconds for a whole call."""

    def in_flight(self, name: str) -> int:
        """Calls to this target running now."""

    def available(self, name: str) -> bool:
        """False while the target's breaker is open or it sits in a cooldown."""


@runtime_checkable
class LatencyQuantiles(Protocol):
    """Optional: a stats source that also knows a latency quantile (for `hedge.after: p95`)."""

    def latency_p95(self, name: str) -> float | None: ...


class Weighted(Protocol):
    """What a strategy orders: anything with a target name and a weight."""

    @property
    def name(self) -> str: ...

    @property
    def weight(self) -> float: ...


class Strategy(Protocol):
    def order(self, items: Sequence[Weighted], stats: Stats) -> list[int]:
        """Indexes of `items`, best first; every index exactly once."""


class WeightedRandom:
    """Weighted random order without replacement (Efraimidis-Spirakis keys u^(1/w))."""

    def __init__(self, rng: random.Random | None = None) -> None:
        self.rng = rng or random.Random()

    def order(self, items: Sequence[Weighted], stats: Stats) -> list[int]:
        keys = [self.rng.random() ** (1.0 / item.weight) for item in items]
        return sorted(range(len(items)), key=lambda i: keys[i], reverse=True)


class LeastInFlight:
    def __init__(self, rng: random.Random | None = None) -> None:
        self.rng = rng or random.Random()

    def order(self, items: Sequence[Weighted], stats: Stats) -> list[int]:
        shuffled = list(range(len(items)))
        self.rng.shuffle(shuffled)  # ties go anywhere, so equal deployments share the load
        return sorted(shuffled, key=lambda i: stats.in_flight(items[i].name) / items[i].weight)


class LowestLatency:
    def __init__(self, rng: random.Random | None = None) -> None:
        self.rng = rng or random.Random()

    def order(self, items: Sequence[Weighted], stats: Stats) -> list[int]:
        def latency(i: int) -> float:
            value = stats.latency_ewma(items[i].name)
            return 0.0 if value is None else value

        drawn = WeightedRandom(self.rng).order(items, stats)[:2]
        first = min(drawn, key=latency)
        rest = sorted((i for i in range(len(items)) if i != first), key=latency)
        return [first, *rest]


STRATEGIES: dict[str, type[WeightedRandom] | type[LeastInFlight] | type[LowestLatency]] = {
    "weighted": WeightedRandom,
    "least_in_flight": LeastInFlight,
    "lowest_latency": LowestLatency,
}


def strategy(name: str, rng: random.Random | None = None) -> Strategy:
    """The strategy a group's `strategy:` names."""
    return STRATEGIES[name](rng)
