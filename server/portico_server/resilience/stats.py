"""Live figures per target: moving averages of latency, time to first token and error
rate, and the calls in flight. The dispatcher feeds them; routing reads them (its
`Stats` protocol) and `ListProviders` shows them.

Figures are kept under two names, the target ("provider/model") and its provider, so
routing can compare deployments and operators can see a provider at a glance. The
averages are exponentially weighted (EWMA): each new sample has weight `ALPHA`, so
roughly the last ten calls dominate and an old outage fades by itself.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

#: Weight of the newest sample in each moving average.
ALPHA = 0.2
#: Successful call latencies kept per name for `latency_p95`.
_RECENT = 100


def _ewma(current: float | None, sample: float) -> float:
    return sample if current is None else current + ALPHA * (sample - current)


@dataclass(slots=True)
class Figures:
    latency: float | None = None  # seconds, whole successful calls
    ttft: float | None = None  # seconds to the first chunk of a stream
    error_rate: float | None = None  # share of recent upstream calls that failed, 0..1
    in_flight: int = 0
    calls: int = 0
    #: Latencies of the last successful calls, for the p95 a hedge may wait.
    recent: deque[float] = field(default_factory=lambda: deque(maxlen=_RECENT))


class LiveStats:
    """Implements routing's `Stats` protocol: `ttft_ewma`, `latency_ewma`, `in_flight`
    (each in seconds or calls; None when no figure exists yet), `available` (asked of
    `availability`, which the dispatcher sets to its breakers and cooldowns) and
    `latency_p95`."""

    def __init__(self) -> None:
        self._figures: dict[str, Figures] = {}
        self.availability: Callable[[str], bool] = lambda target_name: True

    def figures(self, name: str) -> Figures:
        found = self._figures.get(name)
        if found is None:
            found = self._figures[name] = Figures()
        return found

    # -- the Stats protocol -------------------------------------------------------------

    def ttft_ewma(self, target_name: str) -> float | None:
        found = self._figures.get(target_name)
        return None if found is None else found.ttft

    def latency_ewma(self, target_name: str) -> float | None:
        found = self._figures.get(target_name)
        return None if found is None else found.latency

    def in_flight(self, target_name: str) -> int:
        found = self._figures.get(target_name)
        return 0 if found is None else found.in_flight

    def available(self, target_name: str) -> bool:
        return self.availability(target_name)

    def latency_p95(self, target_name: str) -> float | None:
        found = self._figures.get(target_name)
        if found is None or not found.recent:
            return None
        ordered = sorted(found.recent)
        return ordered[min(len(ordered) - 1, math.ceil(0.95 * len(ordered)) - 1)]

    def error_rate(self, target_name: str) -> float:
        found = self._figures.get(target_name)
        return 0.0 if found is None or found.error_rate is None else found.error_rate

    # -- fed by the dispatcher ----------------------------------------------------------

    def started(self, *names: str) -> None:
        for name in names:
            self.figures(name).in_flight += 1

    def ended(self, *names: str) -> None:
        for name in names:
            figures = self.figures(name)
            figures.in_flight = max(0, figures.in_flight - 1)

    def succeeded(self, names: tuple[str, ...], latency: float) -> None:
        for name in names:
            figures = self.figures(name)
            figures.latency = _ewma(figures.latency, latency)
            figures.recent.append(latency)
            figures.error_rate = _ewma(figures.error_rate, 0.0)
            figures.calls += 1

    def failed(self, names: tuple[str, ...]) -> None:
        for name in names:
            figures = self.figures(name)
            figures.error_rate = _ewma(figures.error_rate, 1.0)
            figures.calls += 1

    def first_token(self, names: tuple[str, ...], ttft: float) -> None:
        for name in names:
            figures = self.figures(name)
            figures.ttft = _ewma(figures.ttft, ttft)
