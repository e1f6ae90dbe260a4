"""Token budgets of caller keys: tokens per UTC calendar day or month.

A call is refused once its caller has used the whole budget of the current window;
the call that crosses the line still completes (its usage is only known at its end).
Usage is what the provider reports; a call answered without usage is charged its
estimate, so a provider that reports nothing is no way around a budget. Counts live in
this process: each worker and replica keeps its own.

`portico_caller_budget_used_ratio{caller,window}` (0 to 1) follows every charge.
"""

from __future__ import annotations

import contextlib
import datetime
import time
from collections.abc import Callable
from dataclasses import dataclass

from prometheus_client import Gauge

from .config import BudgetSettings
from .errors import BudgetExhausted

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

    def __init__(self, caller: str, settings: BudgetSettings, clock: Callable[[], float] = time.time) -> None:
        self.caller = caller
        self.settings = settings
        self._clock = clock
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

    def check(self) -> None:
        """Raises BudgetExhausted, with the wait until the window resets, once all is used."""
        window = self._current()
        if window.used < self.settings.tokens:
            return
        resets = datetime.datetime.fromtimestamp(window.end, datetime.UTC)
        raise BudgetExhausted(
            f"caller {self.caller!r} has used its budget of {self.settings.tokens} tokens per "
            f"{self.settings.per} ({window.used} used); it resets at {resets:%Y-%m-%dT%H:%M:%SZ}",
            metadata={"caller": self.caller, "limit": "budget", "window": self.settings.per,
                      "budget_tokens": str(self.settings.tokens), "used_tokens": str(window.used),
                      "resets_at": f"{resets:%Y-%m-%dT%H:%M:%SZ}"},
            retry_after=window.end - self._clock(),
            retry_safe=True,
        )

    def charge(self, tokens: int) -> None:
        window = self._current()
        window.used += max(0, tokens)
        self._gauge.set(min(1.0, window.used / self.settings.tokens))

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
