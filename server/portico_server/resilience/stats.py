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


@dataclass(frozen=True, slots=True)
class _PeerSum:
    """One figure summed over the other replicas that have it, so that merging this
    replica's own figure in on each read is a few arithmetic operations."""

    weighted: float = 0.0  # sum of value * weight
    weight: int = 0
    plain: float = 0.0  # sum of values
    count: int = 0

    @staticmethod
    def of(pairs: list[tuple[float | None, int]]) -> _PeerSum:
        found = [(v, w) for v, w in pairs if v is not None]
        return _PeerSum(sum(v * w for v, w in found), sum(w for _, w in found),
                        sum(v for v, _ in found), len(found))

    def merged(self, own: float | None, own_weight: int) -> float | None:
        """A call-weighted mean of this replica's figure and the others' (a plain mean
        when nobody made calls lately; None when nobody has the figure)."""
        if own is None:
            own_weight = 0
        weight = self.weight + own_weight
        if weight:
            return (self.weighted + (own or 0.0) * own_weight) / weight
        count = self.count + (own is not None)
        return (self.plain + (own or 0.0)) / count if count else None


class LiveStats:
    """Implements routing's `Stats` protocol: `ttft_ewma`, `latency_ewma`, `in_flight`
    (each in seconds or calls; None when no figure exists yet), `available` (asked of
    `availability`, which the dispatcher sets to its breakers and cooldowns) and
    `latency_p95`."""

    def __init__(self) -> None:
        self._figures: dict[str, Figures] = {}
        self.availability: Callable[[str], bool] = lambda target_name: True
        #: Other replicas' figures by name, summed (shared state keeps them current).
        self._peers: dict[str, tuple[_PeerSum, _PeerSum, _PeerSum]] = {}

    def figures(self, name: str) -> Figures:
        found = self._figures.get(name)
        if found is None:
            found = self._figures[name] = Figures()
        return found

    # -- the Stats protocol -------------------------------------------------------------

    def ttft_ewma(self, target_name: str) -> float | None:
        found = self._figures.get(target_name)
        own = None if found is None else found.ttft
        peers = self._peers.get(target_name)
        return own if peers is None else peers[0].merged(own, _weight(found))

    def latency_ewma(self, target_name: str) -> float | None:
        found = self._figures.get(target_name)
        own = None if found is None else found.latency
        peers = self._peers.get(target_name)
        return own if peers is None else peers[1].merged(own, _weight(found))

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
        peers = self._peers.get(target_name)
        if peers is not None:
            own = peers[2].merged(own, _weight(found))
        return 0.0 if own is None else own

    # -- shared with other replicas -----------------------------------------------------

    def set_peers(self, peers: dict[str, list[PeerFigures]]) -> None:
        """The other replicas' latest figures (replacing those set before)."""
        self._peers = {name: (
            _PeerSum.of([(f.ttft, f.weight) for f in found]),
            _PeerSum.of([(f.latency, f.weight) for f in found]),
            _PeerSum.of([(f.error_rate, f.weight) for f in found]),
        ) for name, found in peers.items() if found}

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
