"""Tries a call to one target again when the upstream failed in a way that waiting may
cure: connection errors, 408, 429, 500, 502, 503, 504, 529 and overloaded errors (the
exceptions whose `retryable` is set; see `errors.upstream_error`), but not an answer that
came back garbled (UPSTREAM_PROTOCOL): that one goes to the next target, if any.

By default only the failures after which no generation can have started are retried
(`retry_safe`: the request was never sent, or the provider refused it with 408, 429, 503,
529 or an overloaded error), so one call is never billed twice. A 500, 502, 504, or a
timeout or reset after the request was sent, may follow a generation the provider bills;
those are retried only where `retry.unsafe` says the provider does not bill failed calls.

The wait before each retry is drawn uniformly between zero and an exponentially growing
bound (full jitter), unless the upstream said how long to wait (`Retry-After`, the reset
headers), which is then honoured. A wait that would pass the call's deadline, or one
longer than `backoff_max` that the upstream asks for, is not taken: the call fails at
once with the status it would have ended with, and its message says why.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

import tenacity
from tenacity import AsyncRetrying, RetryCallState

from .. import errors
from ..call import CallContext
from ..config import RetrySettings

T = TypeVar("T")


def is_retryable(exc: BaseException, *, unsafe: bool = False) -> bool:
    """Whether trying the same target again may help, and may be done (`unsafe`: also
    after failures that may have started a billed generation)."""
    if isinstance(exc, errors.UpstreamProtocol):
        return False  # the upstream answered, garbled: asking again would bill a second answer
    if not isinstance(exc, errors.UpstreamError) or not exc.retryable:
        return False
    return exc.retry_safe or unsafe


class _Wait:
    """The upstream's own hint when it gave one, else full-jitter exponential backoff."""

    def __init__(self, settings: RetrySettings) -> None:
        self._jitter = tenacity.wait_random_exponential(multiplier=settings.backoff_initial, max=settings.backoff_max)

    def __call__(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome is not None else None
        hint = getattr(exc, "retry_after", None)
        if isinstance(hint, float | int):
            return float(hint)
        return float(self._jitter(state))


class _Stop:
    """Stops after `attempts` retries, and before a wait that cannot be afforded; it notes
    the reason on the exception so the caller's message says it."""

    def __init__(self, settings: RetrySettings, call: CallContext) -> None:
        self._settings = settings
        self._call = call

    def __call__(self, state: RetryCallState) -> bool:
        if state.attempt_number > self._settings.attempts:
            return True
        wait = state.upcoming_sleep
        exc = state.outcome.exception() if state.outcome is not None else None
        remaining = self._call.remaining()
        why = ""
        if remaining is not None and wait >= remaining:
            why = f"not retried: waiting {wait:.2f} s would pass the call's deadline ({remaining:.2f} s left)"
        elif wait > self._settings.backoff_max:
            why = f"not retried: the provider asks for a wait of {wait:.1f} s, more than backoff_max"
        if why and isinstance(exc, errors.PorticoError):
            exc.message = f"{exc.message} ({why})"
        return bool(why)


async def with_retries(
    attempt: Callable[[float], Awaitable[T]], settings: RetrySettings, call: CallContext
) -> T:
    """Run `attempt(wait)` until it succeeds or may not be retried; `wait` is the seconds
    slept before that attempt (0 for the first). The last failure is raised as it is."""
    if not settings.enabled or settings.attempts == 0:
        return await attempt(0.0)
    # Most calls succeed at once: they do not pay for building tenacity's state machine.
    try:
        return await attempt(0.0)
    except Exception as exc:
        if not is_retryable(exc, unsafe=settings.unsafe):
            raise
        replay: Exception | None = exc
    retrying = AsyncRetrying(
        stop=_Stop(settings, call),
        wait=_Wait(settings),
        retry=tenacity.retry_if_exception(lambda exc: is_retryable(exc, unsafe=settings.unsafe)),
        reraise=True,
    )
    async for trial in retrying:
        with trial:
            if replay is not None:
                # Tenacity's first attempt is the failure already had: from it, tenacity
                # decides whether and how long to wait before the first real retry.
                failure, replay = replay, None
                raise failure
            return await attempt(trial.retry_state.upcoming_sleep)
    raise AssertionError("tenacity ended without an outcome")  # pragma: no cover
