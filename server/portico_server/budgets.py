"""Token budgets of caller keys: tokens per UTC calendar day or month.

A call is refused once its caller has used the whole budget of the current window;
the call that crosses the line still completes (its usage is only known at its end).
Usage is what the provider reports; a call answered without usage is charged its
estimate, so a provider that reports nothing is no way around a budget. Without Redis
counts live in this process: each worker and replica keeps its own. With a `redis:`
section every process adds its charges to one counter per caller and window there and
checks that total (shared/budgets.py); charges made while Redis is unreachable are kept
and added once it answers again, so an outage does not forget spend.

`portico_caller_budget_used_ratio{caller,window}` (0 to 1) follows every charge.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import time
from collections.abc import Callable
from dataclasses import dataclass

from prometheus_client import Gauge

from .config import BudgetSettings
from .errors import BudgetExhausted
from .shared.budgets import SharedSpend
from .shared.limits import SharedStateRefusal

BUDGET_USED = Gauge(
    "portico_caller_budget_used_ratio",
    "Share of its token budget a caller key has used in the current window (0 to 1).",
    ["caller", "window"],
    multiprocess_mode="max",
)


def window_bounds(per: str, now: float) -> tuple[float, float]:
    """(start, end) in Unix seconds of the UTC day or month holding `now`."""
    moment = datetime.datetime.fromtimestamp(now, datetime.UTC)
    if per == "day":
        start = moment.replace(hour=0, minute=0, second=0, microsecond=0)
        end = start + datetime.timedelta(days=1)
    else:
        start = moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        end = (start + datetime.timedelta(days=32)).replace(day=1)
    return start.timestamp(), end.timestamp()


@dataclass(slots=True)
class _Window:
    start: float
    end: float
    used: int = 0


class Budget:
    """One caller's budget and what it used in the current window."""

    def __init__(self, caller: str, settings: BudgetSettings, clock: Callable[[], float] = time.time,
                 shared: SharedSpend | None = None) -> None:
        self.caller = caller
        self.settings = settings
        self._clock = clock
        self.shared = shared
        #: Charges not yet added to the shared counter, and the window they belong to.
        self._unsynced = 0
        self._unsynced_start = 0.0
        self._syncing: asyncio.Task[None] | None = None
        self._window = _Window(*window_bounds(settings.per, clock()))
        self._gauge = BUDGET_USED.labels(caller=caller, window=settings.per)
        self._gauge.set(0.0)

    def _current(self) -> _Window:
        now = self._clock()
        window = self._window
        if not window.start <= now < window.end:
            window = self._window = _Window(*window_bounds(self.settings.per, now))
            self._gauge.set(0.0)
        return window

    @property
    def used(self) -> int:
        return self._current().used

    async def check_shared(self) -> None:
        """`check` against the spend of every replica; with Redis unreachable, the policy:
        open checks this process's own count, closed refuses."""
        if self.shared is None:
            self.check()
            return
        window = self._current()
        total = await self.shared.used(self.caller, self.settings.per, window.start)
        if total is None:
            if not self.shared.store.fail_open:
                raise SharedStateRefusal(
                    f"the budget of caller {self.caller!r} cannot be checked: the shared-state store is "
                    "unreachable and redis.on_unavailable is closed",
                    metadata={"caller": self.caller, "limit": "shared_state"},
                    retry_after=self.shared.store.settings.retry_interval, retry_safe=True)
            self.check()
            return
        self.check(total + (self._unsynced if self._unsynced_start == window.start else 0))

    def check(self, used: int | None = None) -> None:
        """Raises BudgetExhausted, with the wait until the window resets, once all is used
        (`used`: what every replica used, when known; else this process's count)."""
        window = self._current()
        used = window.used if used is None else used
        if used < self.settings.tokens:
            return
        resets = datetime.datetime.fromtimestamp(window.end, datetime.UTC)
        raise BudgetExhausted(
            f"caller {self.caller!r} has used its budget of {self.settings.tokens} tokens per "
            f"{self.settings.per} ({used} used); it resets at {resets:%Y-%m-%dT%H:%M:%SZ}",
            metadata={"caller": self.caller, "limit": "budget", "window": self.settings.per,
                      "budget_tokens": str(self.settings.tokens), "used_tokens": str(used),
                      "resets_at": f"{resets:%Y-%m-%dT%H:%M:%SZ}"},
            retry_after=window.end - self._clock(),
            retry_safe=True,
        )

    def charge(self, tokens: int) -> None:
        window = self._current()
        window.used += max(0, tokens)
        self._gauge.set(min(1.0, window.used / self.settings.tokens))
        if self.shared is not None and tokens > 0:
            if self._unsynced_start != window.start:
                self._unsynced, self._unsynced_start = 0, window.start  # a past window's spend is moot
            self._unsynced += tokens
            if self._syncing is None or self._syncing.done():
                self._syncing = asyncio.ensure_future(self._sync())

    async def _sync(self) -> None:
        """Add the charges not yet in Redis; kept for the next try when it is unreachable."""
        assert self.shared is not None
        while self._unsynced:
            amount, start = self._unsynced, self._unsynced_start
            end = window_bounds(self.settings.per, start)[1]
            self._unsynced = 0
            total = await self.shared.charge(self.caller, self.settings.per, start, end, amount)
            if total is None:
                if self._unsynced_start == start:
                    self._unsynced += amount
                return
            self._gauge.set(min(1.0, total / self.settings.tokens))

    async def flush(self) -> None:
        """Wait until this process's charges reached Redis (or failed to, bounded by its
        timeout), so the next call on any replica sees them; retries what an outage kept."""
        if self.shared is None:
            return
        if self._unsynced and (self._syncing is None or self._syncing.done()):
            self._syncing = asyncio.ensure_future(self._sync())
        if self._syncing is not None:
            await asyncio.shield(self._syncing)

    def reconfigure(self, settings: BudgetSettings) -> None:
        """A reloaded budget: the same window keeps what it used; a new kind starts afresh."""
        if settings.per != self.settings.per:
            self.forget()
            self._window = _Window(*window_bounds(settings.per, self._clock()))
            self._gauge = BUDGET_USED.labels(caller=self.caller, window=settings.per)
        self.settings = settings
        self._gauge.set(min(1.0, self._current().used / settings.tokens))

    def forget(self) -> None:
        """The caller or its budget left the configuration: its series goes too."""
        with contextlib.suppress(KeyError):
            BUDGET_USED.remove(self.caller, self.settings.per)
