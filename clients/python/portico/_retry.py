"""When the client sends a failed call again, and how long it waits first.

A call is sent again only when the gateway said it is safe: its ErrorInfo metadata has
`retry_safe` = "true", which the gateway sets only when the request certainly started no
generation at a provider, and the status is UNAVAILABLE, or RESOURCE_EXHAUSTED with a
RetryInfo delay (a rate limit or the gateway shedding load: waiting is the remedy; a
spent quota carries no delay and is not retried). Anything else (an upstream 500, a
cut-off answer, a stream that already produced chunks) may have been billed once
already, so it goes to the caller. A gRPC service-config retry policy cannot read
status details, which is why the rule lives here and not in the channel.

These rules and defaults are the same in Portico's Python, Go, TypeScript and Java clients.
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

    The wait before retry n (n = 1, 2, ...) is a random point between 0 and
    `initial_backoff * multiplier ** (n - 1)`, capped at `max_backoff` ("full jitter", so
    clients that failed together do not come back together). A RetryInfo delay from the
    gateway replaces it, exactly; a delay over `MAX_RETRY_INFO_DELAY` (60 s) is not
    waited for. No retry starts when the wait would pass the call's deadline.
    `RetryPolicy(max_attempts=1)` (or `retry=None` on the client) turns retries off.
    """

    #: Attempts in all, the first included.
    max_attempts: int = 3
    #: Seconds before the first retry, before jitter.
    initial_backoff: float = 0.2
    #: Upper bound of the computed wait (a RetryInfo delay may be longer, up to 60 s).
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
        return random.uniform(0, ceiling)


#: Seconds: a RetryInfo delay longer than this is handed to the caller instead of waited for.
MAX_RETRY_INFO_DELAY = 60.0

DEFAULT_RETRY = RetryPolicy()
NO_RETRY = RetryPolicy(max_attempts=1)


def is_retryable(error: StatusError) -> bool:
    """Whether the gateway said this failure may be sent again without a second
    generation, and sending it again can help."""
    if not error.retry_safe:
        return False
    if error.code is grpc.StatusCode.UNAVAILABLE:
        return True
    return error.code is grpc.StatusCode.RESOURCE_EXHAUSTED and error.retry_after is not None


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
        if not is_retryable(error) or self._made >= self._policy.max_attempts:
            return None
        if error.retry_after is None:
            delay = self._policy.backoff(self._made)
        elif error.retry_after > MAX_RETRY_INFO_DELAY:
            return None
        else:
            delay = error.retry_after
        if self._deadline is not None and time.monotonic() + delay >= self._deadline:
            return None
        self._made += 1
        return delay
