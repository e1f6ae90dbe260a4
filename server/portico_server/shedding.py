"""Load shedding: the gateway's own caps on unary calls in progress and open streams.

A call takes a slot when it is admitted (after the shutdown and caller checks, before
its request is checked or any upstream work starts) and gives it back when the RPC ends.
With no slot free for its priority it is refused at once: RESOURCE_EXHAUSTED,
`ERROR_REASON_OVERLOADED`, retry-safe, with a RetryInfo estimated from how long calls
have recently held their slots. Nothing waits in a queue here: a refusal is cheap, and
clients retry after the hinted delay (or go to another replica).

Priority decides who is shed first. Normal calls may fill a cap (`max_in_flight`,
`max_streams`); low-priority calls only `low_priority_share` of it, so they are turned
away while normal ones still get in; high-priority calls may also use a reserve above
the cap (`high_priority_reserve`, at least one slot), so urgent work gets through a full
gateway. Running calls are never cancelled to make room.

The caps are the whole gateway's. Each of N worker processes enforces an equal share
(the shares add up to the cap, each at least one); a later shared store may replace the
split. Since the kernel spreads connections, not calls, one worker can be full while
another has room: the gateway may shed a little before the whole cap is in use.
"""

from __future__ import annotations

import enum
import math
import random
import time
from collections.abc import Callable

from .config import LoadSettings
from .domain import Priority
from .errors import Overloaded

#: The RetryInfo delay before any call has finished (nothing is known yet).
DEFAULT_RETRY_DELAY = 1.0
#: Bounds of the hinted delay: sooner is a busy loop, later than clients wait for.
MIN_RETRY_DELAY = 0.05
MAX_RETRY_DELAY = 30.0
#: Weight of the newest call duration in the moving average.
_DURATION_WEIGHT = 0.2
#: Callers told the same delay would come back together; each hint is spread by ±20 %.
_JITTER = 0.2


class Kind(enum.Enum):
    """What a call counts against."""

    CALL = "call"  # a unary call: server.load.max_in_flight
    STREAM = "stream"  # a StreamChat stream: server.load.max_streams


def worker_share(total: int, worker: int, workers: int) -> int:
    """Worker `worker`'s (1-based) part of a gateway-wide cap of `total` over `workers`
    processes: as even as whole numbers allow, the parts adding up to `total`, each at
    least one (so with more workers than the cap, the sum is the worker count)."""
    base, extra = divmod(total, workers)
    return max(1, base + (1 if worker <= extra else 0))


class Slot:
    """One admitted call's place; `release()` (idempotent) when the RPC is over."""

    __slots__ = ("_pool", "_started")

    def __init__(self, pool: _Pool | None, started: float) -> None:
        self._pool = pool
        self._started = started

    def release(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.leave(self._started)


#: The slot of a call that no cap counts.
UNCOUNTED = Slot(None, 0.0)


class _Pool:
    """One cap (calls or streams) of this process: who is in, how long they stay, and
    how many were recently turned away."""

    def __init__(
        self, setting: str, noun: str, total: int, share: int, settings: LoadSettings,
        clock: Callable[[], float], rng: random.Random,
    ) -> None:
        self.setting, self.noun, self.total, self.share = setting, noun, total, share
        reserve = math.ceil(share * settings.high_priority_reserve) if settings.high_priority_reserve else 0
        self.caps = {
            Priority.LOW: max(1, math.floor(share * settings.low_priority_share)),
            Priority.NORMAL: share,
            Priority.HIGH: share + reserve,
        }
        self.in_use = 0
        self._clock, self._rng = clock, rng
        self._duration: float | None = None
        # Calls shed recently, decaying with a time constant of one average duration:
        # the callers now waiting to come back, who will compete for the freed slots.
        self._shed = 0.0
        self._shed_at = 0.0

    def enter(self, priority: Priority) -> Slot:
        now = self._clock()
        if self.in_use >= self.caps[priority]:
            raise self._refusal(priority, now)
        self.in_use += 1
        return Slot(self, now)

    def leave(self, started: float) -> None:
        self.in_use -= 1
        held = self._clock() - started
        average = self._duration
        self._duration = held if average is None else average + _DURATION_WEIGHT * (held - average)

    def retry_delay(self, now: float) -> float:
        """When a shed caller should come back: with `n` calls running for `d` seconds on
        average, one ends every `d / n` seconds, and the callers shed just before this
        one (plus this one) each need one of those."""
        if self._duration is None:
            return DEFAULT_RETRY_DELAY
        competing = self._decayed_shed(now)
        estimate = (competing + 1) * self._duration / max(self.in_use, 1)
        estimate *= self._rng.uniform(1 - _JITTER, 1 + _JITTER)
        return min(MAX_RETRY_DELAY, max(MIN_RETRY_DELAY, estimate))

    def _decayed_shed(self, now: float) -> float:
        tau = max(self._duration or DEFAULT_RETRY_DELAY, MIN_RETRY_DELAY)
        return self._shed * math.exp(-(now - self._shed_at) / tau)

    def _refusal(self, priority: Priority, now: float) -> Overloaded:
        delay = self.retry_delay(now)
        self._shed = self._decayed_shed(now) + 1
        self._shed_at = now
        name = priority.name.lower()
        where = ("the gateway is" if self.share == self.total
                 else f"this worker is at its share ({self.share}) of the gateway's limit and")
        message = (f"{where} full for {name}-priority {self.noun}: {self.in_use} in progress against "
                   f"{self.setting}={self.total}; retry in {delay:.2f}s")
        metadata = {"limit": self.setting, "limit_value": str(self.total), "priority": name}
        if self.share != self.total:
            metadata["worker_share"] = str(self.share)
        return Overloaded(message, metadata=metadata, retry_after=delay)


class LoadShedder:
    """The caps of one gateway process (worker `worker` of `workers`)."""

    def __init__(
        self, settings: LoadSettings, worker: int = 1, workers: int = 1,
        clock: Callable[[], float] = time.monotonic, rng: random.Random | None = None,
    ) -> None:
        rng = rng or random.Random()
        self._pools: dict[Kind, _Pool] = {}
        for kind, setting, noun, total in (
            (Kind.CALL, "server.load.max_in_flight", "calls", settings.max_in_flight),
            (Kind.STREAM, "server.load.max_streams", "streams", settings.max_streams),
        ):
            if total is not None:
                share = worker_share(total, worker, workers)
                self._pools[kind] = _Pool(setting, noun, total, share, settings, clock, rng)

    def admit(self, kind: Kind, priority: Priority) -> Slot:
        """A slot for a new call, or `Overloaded` when none is free for its priority."""
        pool = self._pools.get(kind)
        if pool is None:
            return UNCOUNTED
        return pool.enter(priority)

    def in_use(self, kind: Kind) -> int:
        """Calls (or streams) holding a slot now; 0 when that cap is off."""
        pool = self._pools.get(kind)
        return pool.in_use if pool is not None else 0

    def cap(self, kind: Kind, priority: Priority) -> int | None:
        """How many calls of `priority` this process lets in (None: no cap)."""
        pool = self._pools.get(kind)
        return pool.caps[priority] if pool is not None else None
