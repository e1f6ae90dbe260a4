"""What a call carries beside its request: when it must end, who sent it, and its labels.

The servicer builds one per RPC; the router, the providers and (later) the resilience
layer read it. The domain request stays what the caller asked for.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from .domain import Priority, StreamFailover


@dataclass(slots=True, frozen=True)
class CallContext:
    #: `time.monotonic()` value by which the call must be over; None: no deadline.
    deadline: float | None = None
    #: The caller's request id (AIP-155) or one the gateway made; for logs and trailers.
    request_id: str = ""
    priority: Priority = Priority.NORMAL
    tags: Mapping[str, str] = field(default_factory=dict)
    #: What a stream may do when its provider fails after the first chunk.
    stream_failover: StreamFailover = StreamFailover.NONE
    #: The caller's key name or certificate identity; "" when the gateway is open.
    caller: str = ""

    @classmethod
    def with_timeout(cls, seconds: float | None, **kwargs: object) -> CallContext:
        """A context whose deadline is `seconds` from now (None: no deadline)."""
        deadline = None if seconds is None else time.monotonic() + seconds
        return cls(deadline=deadline, **kwargs)  # type: ignore[arg-type]

    def remaining(self) -> float | None:
        """Seconds left before the deadline (never below zero), or None without one."""
        if self.deadline is None:
            return None
        return max(0.0, self.deadline - time.monotonic())


#: For calls made outside an RPC (tests, probes): no deadline, no labels.
NO_CALL = CallContext()
