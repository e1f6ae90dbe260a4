"""Circuit breakers: stop sending calls to a provider that keeps failing, and let it
prove itself again with a few trial calls.

closed → open after `failures` consecutive upstream failures → half-open when
`recovery` seconds have passed (or a health probe succeeds) → closed after a trial call
succeeds, open again when one fails. Only failures of the upstream count: an invalid
request, an authentication error, an exhausted quota (it has a cooldown of its own), the
caller's deadline or cancellation neither count nor reset the tally.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections.abc import Awaitable, Callable

from .. import errors
from ..config import BreakerSettings

log = logging.getLogger("portico.breaker")


class BreakerState(enum.Enum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


def is_upstream_failure(exc: BaseException) -> bool:
    """Whether a failed call counts against the breaker."""
    if isinstance(exc, errors.UpstreamDeadlineExceeded):
        return False  # the caller's deadline, not the provider's fault
    return isinstance(exc, errors.UpstreamError) and exc.retryable


class CircuitBreaker:
    """One breaker. `allow()` before a call (raises CircuitOpen when it may not go), then
    exactly one of `succeeded`, `failed` or `released` with what `allow()` returned."""

    def __init__(
        self,
        key: str,
        provider: str,
        settings: BreakerSettings,
        on_change: Callable[[CircuitBreaker], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.key = key
        self.provider = provider
        self.settings = settings
        self._on_change = on_change
        self._clock = clock
        self.state = BreakerState.CLOSED
        self.consecutive_failures = 0
        self.opened_at = 0.0
        self.times_opened = 0
        #: Lifetime counts, for the admin API.
        self.successes = 0
        self.failures = 0
        self.rejections = 0
        self._trials = 0
        self._timer: asyncio.TimerHandle | None = None
        #: Told of this replica's own openings and closings (not of those adopted from
        #: other replicas), so that shared state can pass them on.
        self.on_local_change: Callable[[CircuitBreaker], None] | None = None
        #: Told when one of this replica's trial calls ends (shared state frees its claim).
        self.on_trial_end: Callable[[CircuitBreaker], None] | None = None

    def time_left_open(self) -> float:
        """Seconds until trial calls may pass (0 unless open)."""
        if self.state is not BreakerState.OPEN:
            return 0.0
        return max(0.0, self.opened_at + self.settings.recovery - self._clock())

    def allow(self) -> bool:
        """Let a call through, or raise CircuitOpen. True when the call is a trial."""
        if self.state is BreakerState.OPEN and self.time_left_open() <= 0:
            self._move(BreakerState.HALF_OPEN)
        if self.state is BreakerState.CLOSED:
            return False
        if self.state is BreakerState.HALF_OPEN and self._trials < self.settings.trial_calls:
            self._trials += 1
            return True
        if self.state is BreakerState.OPEN:
            left = self.time_left_open()
            why = f"its circuit breaker ({self.key}) is open; trial calls pass in {left:.1f} s"
        else:
            left = self.settings.recovery
            why = f"its circuit breaker ({self.key}) is half-open and its trial calls are under way"
        self.rejections += 1
        raise errors.CircuitOpen(
            f"provider {self.provider!r} is failing: {why}",
            provider=self.provider,
            retry_after=left,
            metadata={"breaker": self.key},
        )

    def succeeded(self, trial: bool) -> None:
        self._end_trial(trial)
        self.successes += 1
        self.consecutive_failures = 0
        if self.state is not BreakerState.CLOSED:
            self._move(BreakerState.CLOSED)

    def failed(self, trial: bool) -> None:
        self._end_trial(trial)
        self.failures += 1
        self.consecutive_failures += 1
        if self.state is BreakerState.HALF_OPEN or (
            self.state is BreakerState.CLOSED and self.consecutive_failures >= self.settings.failures
        ):
            self._move(BreakerState.OPEN)

    def released(self, trial: bool) -> None:
        """The call ended in a way that says nothing of the provider's health."""
        self._end_trial(trial)

    def trial_refused(self) -> None:
        """The trial call `allow()` granted may not go after all (another replica sends it)."""
        self._trials = max(0, self._trials - 1)
        self.rejections += 1

    def probe_succeeded(self) -> None:
        """A health probe reached the provider: trial calls may go now."""
        if self.state is BreakerState.OPEN:
            self._move(BreakerState.HALF_OPEN)

    def reset(self) -> None:
        """Closed, with no failures in a row (an operator's word that the provider is fine)."""
        self.consecutive_failures = 0
        self._move(BreakerState.CLOSED)

    def adopt_open(self, opened_at_wall: float) -> None:
        """Another replica opened this breaker at `opened_at_wall` (seconds since the
        epoch): open here too, with trial calls due when they are due there."""
        if self.state is BreakerState.OPEN and abs((self.opened_at_wall() or 0.0) - opened_at_wall) < 0.01:
            return
        self._move(BreakerState.OPEN, local=False, opened_at=self._clock() - max(0.0, time.time() - opened_at_wall))

    def adopt_closed(self) -> None:
        """Another replica closed this breaker (a trial call passed, or an operator reset it)."""
        self.consecutive_failures = 0
        self._move(BreakerState.CLOSED, local=False)

    def opened_at_wall(self) -> float | None:
        """When it last opened, in seconds since the epoch (None: never)."""
        if not self.times_opened:
            return None
        return time.time() - (self._clock() - self.opened_at)

    def close(self) -> None:
        """Cancel the pending half-open timer (the gateway is stopping)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _end_trial(self, trial: bool) -> None:
        if trial:
            self._trials = max(0, self._trials - 1)
            if self.on_trial_end is not None:
                self.on_trial_end(self)

    def _move(self, state: BreakerState, local: bool = True, opened_at: float | None = None) -> None:
        """`local`: this replica saw the reason (not another replica through shared state);
        `opened_at`: when it opened, on this process's clock (default: now)."""
        if state is self.state and (state is not BreakerState.OPEN or local):
            return
        log.warning("circuit breaker %s: %s -> %s%s", self.key, self.state.value, state.value,
                    "" if local else " (seen by another replica)")
        if state is BreakerState.OPEN and self.state is not BreakerState.OPEN:
            self.times_opened += 1
        self.state = state
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if state is BreakerState.OPEN:
            self.opened_at = self._clock() if opened_at is None else opened_at
            self._trials = 0
            # Half-open on time even when no call comes, so health watchers see it.
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                loop = None
            if loop is not None:
                self._timer = loop.call_later(self.time_left_open(), self._recovered)
        elif state is BreakerState.CLOSED:
            self._trials = 0
        self._on_change(self)
        if local and state is not BreakerState.HALF_OPEN and self.on_local_change is not None:
            self.on_local_change(self)

    def _recovered(self) -> None:
        self._timer = None
        if self.state is BreakerState.OPEN:
            self._move(BreakerState.HALF_OPEN)


class Breakers:
    """The breakers of every provider (one per provider, or per model with `per_model`).
    `on_change(provider, any_open)` is called at each transition."""

    def __init__(
        self,
        on_change: Callable[[str, bool], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._on_change = on_change
        self._clock = clock
        self._breakers: dict[str, CircuitBreaker] = {}
        #: Told of each breaker this replica opens or closes itself (shared state sets it).
        self.on_local_change: Callable[[CircuitBreaker], None] | None = None
        #: Asked before a half-open trial call goes: may this replica send it? (Shared
        #: state sets it, so that replicas do not all probe a recovering provider at once.)
        self.trial_gate: Callable[[CircuitBreaker], Awaitable[bool]] | None = None
        #: Told when a trial call the gate let through ends.
        self.on_trial_end: Callable[[CircuitBreaker], None] | None = None

    def get(self, provider: str, model: str, settings: BreakerSettings) -> CircuitBreaker | None:
        """The breaker a call to `provider`/`model` passes, or None when turned off."""
        if not settings.enabled:
            return None
        key = f"{provider}/{model}" if settings.per_model else provider
        breaker = self._breakers.get(key)
        if breaker is None:
            breaker = self._breakers[key] = CircuitBreaker(key, provider, settings, self._changed, self._clock)
            breaker.on_local_change = self._local_change
            breaker.on_trial_end = self._trial_end
        elif breaker.settings is not settings:
            breaker.settings = settings  # a configuration reload changed them; the state stays
        return breaker

    def admits(self, provider: str, model: str) -> bool:
        """False while the breaker a call to `provider`/`model` passes is open."""
        for key in (f"{provider}/{model}", provider):
            breaker = self._breakers.get(key)
            if breaker is not None and breaker.provider == provider:
                return breaker.time_left_open() <= 0
        return True

    def by_key(self, key: str) -> CircuitBreaker | None:
        return self._breakers.get(key)

    def all(self) -> list[CircuitBreaker]:
        return list(self._breakers.values())

    def of_provider(self, provider: str) -> list[CircuitBreaker]:
        return [b for b in self._breakers.values() if b.provider == provider]

    def state(self, provider: str) -> BreakerState:
        """The worst state among the provider's breakers."""
        states = {b.state for b in self.of_provider(provider)}
        for state in (BreakerState.OPEN, BreakerState.HALF_OPEN):
            if state in states:
                return state
        return BreakerState.CLOSED

    def reset(self, provider: str) -> list[CircuitBreaker]:
        """Close every breaker of `provider`; the breakers reset."""
        breakers = self.of_provider(provider)
        for breaker in breakers:
            breaker.reset()
        return breakers

    def probe_result(self, provider: str, ok: bool) -> None:
        if ok:
            for breaker in self.of_provider(provider):
                breaker.probe_succeeded()

    def close(self) -> None:
        for breaker in self._breakers.values():
            breaker.close()

    def _trial_end(self, breaker: CircuitBreaker) -> None:
        if self.on_trial_end is not None:
            self.on_trial_end(breaker)

    def _local_change(self, breaker: CircuitBreaker) -> None:
        if self.on_local_change is not None:
            self.on_local_change(breaker)

    def _changed(self, breaker: CircuitBreaker) -> None:
        self._on_change(breaker.provider, self.state(breaker.provider) is not BreakerState.CLOSED)
