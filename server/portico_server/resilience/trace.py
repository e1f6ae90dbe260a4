"""The attempt trace: what the gateway tried for one call, sent back as trailing metadata.

`portico-attempts` is a JSON array with one object per attempt, in order; the gateway's
own overhead (the call's total time minus the time spent on upstream attempts and the
waits before them) goes in `portico-overhead-ms`. gRPC refuses trailers past 8 KiB in
all, so the list keeps its first entries within `MAX_TRACE_BYTES` (less beside a large
error status) and `portico-attempts-omitted` says how many were left out.

A test aid: the `fake` provider may script the trace its reply carries (`script`), so
clients can be tested against exact figures; the scripted attempts then stand in for
the measured ones of that call. Nothing else replaces a measured trace.
"""

from __future__ import annotations

import asyncio
import json
import time
from contextvars import ContextVar
from dataclasses import dataclass, field

import grpc

from .. import errors
from ..status import code_for

ATTEMPTS_KEY = "portico-attempts"
OVERHEAD_KEY = "portico-overhead-ms"
OMITTED_KEY = "portico-attempts-omitted"
#: How the response cache served the call: "hit", "semantic-hit" or "miss" (cache/).
CACHE_KEY = "portico-cache"
MAX_TRACE_BYTES = 4000
#: What all trailers of one call may take; gRPC refuses more than 8 KiB.
TRAILER_BUDGET = 7000


@dataclass(slots=True)
class Attempt:
    provider: str
    model: str
    outcome: str  # "ok", "error" or "skipped"
    status: str  # "OK" or the gRPC code name
    reason: str
    duration_ms: float
    wait_ms: float

    def as_json(self) -> dict[str, object]:
        return {
            "provider": self.provider, "model": self.model, "outcome": self.outcome,
            "status": self.status, "reason": self.reason,
            "duration_ms": round(self.duration_ms, 3), "wait_ms": round(self.wait_ms, 3),
        }


@dataclass(slots=True)
class Trace:
    """Collects the attempts of one call; `metadata()` gives its trailers."""

    started: float = field(default_factory=time.monotonic)
    attempts: list[Attempt] = field(default_factory=list)
    #: Set once the call reaches the dispatcher: only such calls carry a trace.
    active: bool = False
    #: (attempts, overhead in ms) scripted by the fake provider for this call.
    scripted: tuple[list[Attempt], float] | None = None
    #: The response cache's part in the call ("" when it took none).
    cache: str = ""

    @classmethod
    def begin(cls) -> Trace:
        """The trace of the call now starting, where `script` finds it."""
        trace = cls()
        _current.set(trace)
        return trace

    def ok(self, provider: str, model: str, duration: float, wait: float) -> None:
        self.attempts.append(Attempt(provider, model, "ok", "OK", "", duration * 1000, wait * 1000))

    def failed(self, provider: str, model: str, exc: BaseException, duration: float, wait: float,
               *, skipped: bool = False) -> None:
        """An attempt that failed (`skipped`: refused before reaching the upstream)."""
        if isinstance(exc, errors.PorticoError):
            status, reason = code_for(exc).name, exc.reason
        elif isinstance(exc, asyncio.CancelledError | GeneratorExit):
            status, reason = grpc.StatusCode.CANCELLED.name, ""  # the caller went away
        else:
            status, reason = grpc.StatusCode.INTERNAL.name, ""
        self.attempts.append(Attempt(provider, model, "skipped" if skipped else "error", status, reason,
                                     duration * 1000, wait * 1000))

    def overhead_ms(self) -> float:
        if self.scripted is not None:
            return self.scripted[1]
        total = (time.monotonic() - self.started) * 1000
        upstream = sum(a.duration_ms + a.wait_ms for a in self.attempts)
        return max(0.0, total - upstream)

    def metadata(self, budget: int = MAX_TRACE_BYTES) -> tuple[tuple[str, str], ...]:
        """The trailers; the attempt list stays within `budget` bytes (and MAX_TRACE_BYTES)."""
        if not self.active:
            return ()
        limit = max(0, min(budget, MAX_TRACE_BYTES))
        shown: list[dict[str, object]] = []
        size = 2
        attempts = self.attempts if self.scripted is None else self.scripted[0]
        for attempt in attempts:
            entry = attempt.as_json()
            size += len(json.dumps(entry, separators=(",", ":"))) + 1
            if size > limit:
                break
            shown.append(entry)
        pairs = [(ATTEMPTS_KEY, json.dumps(shown, separators=(",", ":"))),
                 (OVERHEAD_KEY, f"{self.overhead_ms():.3f}")]
        if len(shown) < len(attempts):
            pairs.append((OMITTED_KEY, str(len(attempts) - len(shown))))
        if self.cache:
            pairs.append((CACHE_KEY, self.cache))
        return tuple(pairs)


_current: ContextVar[Trace | None] = ContextVar("portico_trace", default=None)


def script(attempts: list[Attempt], overhead_ms: float) -> None:
    """The fake provider's scripted trace for the current call (see the module's note)."""
    trace = _current.get()
    if trace is not None:
        trace.scripted = (attempts, overhead_ms)
