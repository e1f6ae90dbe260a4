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
    #: `calls` when the last two figures were shared with other replicas (their weight).
    shared_at: tuple[int, int] = (0, 0)


@dataclass(frozen=True, slots=True)
class PeerFigures:
    """Another replica's figures for one name, as it last shared them."""

    latency: float | None
    ttft: float | None
    error_rate: float | None
    #: Its calls over its last two sharing intervals: how much its averages count.
    weight: int


def _merged(own: float | None, own_weight: int, peers: list[tuple[float | None, int]]) -> float | None:
    """A call-weighted mean of this replica's average and its peers' (a plain mean when
    nobody made calls lately; None when nobody has a figure)."""
    values = [(v, w) for v, w in [(own, own_weight), *peers] if v is not None]
    if not values:
        return None
    total = sum(w for _, w in values)
    if total == 0:
        return sum(v for v, _ in values) / len(values)
    return sum(v * w for v, w in values) / total


class LiveStats:
    """Implements routing's `Stats` protocol: `ttft_ewma`, `latency_ewma`, `in_flight`
    (each in seconds or calls; None when no figure exists yet), `available` (asked of
    `availability`, which the dispatcher sets to its breakers and cooldowns) and
    `latency_p95`."""

    def __init__(self) -> None:
        self._figures: dict[str, Figures] = {}
        self.availability: Callable[[str], bool] = lambda target_name: True
        #: Other replicas' figures by name (shared state keeps it current; empty alone).
        self.peers: dict[str, list[PeerFigures]] = {}

    def figures(self, name: str) -> Figures:
        found = self._figures.get(name)
        if found is None:
            found = self._figures[name] = Figures()
        return found

    # -- the Stats protocol -------------------------------------------------------------

    def ttft_ewma(self, target_name: str) -> float | None:
        found = self._figures.get(target_name)
        own = None if found is None else found.ttft
        peers = self.peers.get(target_name)
        if not peers:
            return own
        return _merged(own, _weight(found), [(p.ttft, p.weight) for p in peers])

    def latency_ewma(self, target_name: str) -> float | None:
        found = self._figures.get(target_name)
        own = None if found is None else found.latency
        peers = self.peers.get(target_name)
        if not peers:
            return own
        return _merged(own, _weight(found), [(p.latency, p.weight) for p in peers])

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
        own = None if found is None else found.error_rate
        peers = self.peers.get(target_name)
        if peers:
            own = _merged(own, _weight(found), [(p.error_rate, p.weight) for p in peers])
        return 0.0 if own is None else own

    # -- shared with other replicas -----------------------------------------------------

    def share(self) -> dict[str, PeerFigures]:
        """This replica's figures for the others, each weighted by its calls since the
        sharing before last; starts the next sharing interval."""
        shared: dict[str, PeerFigures] = {}
        for name, figures in self._figures.items():
            before_last, last = figures.shared_at
            figures.shared_at = (last, figures.calls)
            if figures.calls == 0:
                continue
            shared[name] = PeerFigures(figures.latency, figures.ttft, figures.error_rate,
                                       figures.calls - before_last)
        return shared

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


def _weight(figures: Figures | None) -> int:
    """This replica's calls since the sharing before last."""
    return 0 if figures is None else figures.calls - figures.shared_at[0]
