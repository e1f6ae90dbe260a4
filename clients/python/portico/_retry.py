"""When the client sends a failed call again, and how long it waits first.

A call is sent again only when the gateway said it is safe: the status is UNAVAILABLE
and its ErrorInfo metadata has `retry_safe` = "true", which the gateway sets only when
the request certainly started no generation at a provider. Anything else (an upstream
500, a cut-off answer, a stream that already produced chunks) may have been billed
once already, so it goes to the caller. A gRPC service-config retry policy cannot read
status details, which is why the rule lives here and not in the channel.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass

import grpc

from ._errors import StatusError


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how patiently a retry-safe failure is retried.

    The wait before retry n (n = 1, 2, ...) is a random point in the upper half of
    `initial_backoff * multiplier ** (n - 1)`, capped at `max_backoff`; a RetryInfo delay
    from the gateway replaces it. No retry starts after the call's deadline would pass.
    `RetryPolicy(max_attempts=1)` (or `retry=None` on the client) turns retries off.
    """

    #: Attempts in all, the first included.
    max_attempts: int = 3
    #: Seconds before the first retry, before jitter.
    initial_backoff: float = 0.2
    #: Upper bound of the computed wait (a RetryInfo delay may be longer).
    max_backoff: float = 5.0
    multiplier: float = 2.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("RetryPolicy.max_attempts must be at least 1")
        if not 0 < self.initial_backoff <= self.max_backoff:
            raise ValueError("RetryPolicy needs 0 < initial_backoff <= max_backoff")
        if self.multiplier < 1:
            raise ValueError("RetryPolicy.multiplier must be at least 1")

    def backoff(self, retry: int) -> float:
        """The jittered wait before retry number `retry` (1 for the first)."""
        ceiling = min(self.max_backoff, self.initial_backoff * self.multiplier ** (retry - 1))
        return random.uniform(ceiling / 2, ceiling)


DEFAULT_RETRY = RetryPolicy()
NO_RETRY = RetryPolicy(max_attempts=1)


def is_retry_safe(error: StatusError) -> bool:
    """Whether the gateway said this failure may be sent again without a second generation."""
    return error.code is grpc.StatusCode.UNAVAILABLE and error.retry_safe


class Attempts:
    """One call's attempts: the timeout each gets, and whether to try again after a failure."""

    def __init__(self, policy: RetryPolicy, timeout: float | None) -> None:
        self._policy = policy
        self._deadline = None if timeout is None else time.monotonic() + timeout
        self._made = 1

    def timeout(self) -> float | None:
        """What is left of the call's deadline, for the attempt about to start."""
        if self._deadline is None:
            return None
        return max(0.0, self._deadline - time.monotonic())

    def delay_before_next(self, error: StatusError) -> float | None:
        """Seconds to wait before sending the call again, or None to give up with `error`."""
        if not is_retry_safe(error) or self._made >= self._policy.max_attempts:
            return None
        delay = error.retry_after if error.retry_after is not None else self._policy.backoff(self._made)
        if self._deadline is not None and time.monotonic() + delay >= self._deadline:
            return None
        self._made += 1
        return delay
