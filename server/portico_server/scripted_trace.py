"""Attempt-trace trailers scripted by the `fake` provider.

The resilience dispatcher writes the real trace of every call. So that clients can be
tested against the exact trailer format before and beside it, a fake reply may script
its own `attempts`; the fake sets them here for its call (a context variable, so one call
never sees another's) and the servicer writes them as trailers. The format is the one the
API documents on `LLMService`:

- `portico-attempts`: a JSON array of `{"provider", "model", "outcome", "status",
  "reason", "duration_ms", "wait_ms"}` objects, in order, capped below `MAX_ATTEMPTS_BYTES`;
- `portico-overhead-ms`: the gateway's own milliseconds, as a decimal string.
"""

from __future__ import annotations

import json
from contextvars import ContextVar
from typing import Any

ATTEMPTS_KEY = "portico-attempts"
OVERHEAD_KEY = "portico-overhead-ms"
#: The attempts entry stays below this size; later attempts are left out.
MAX_ATTEMPTS_BYTES = 4000

_scripted: ContextVar[tuple[list[dict[str, Any]], float] | None] = ContextVar("scripted_trace", default=None)


def script(attempts: list[dict[str, Any]], overhead_ms: float) -> None:
    """Called by the fake provider for the call it is serving."""
    _scripted.set((attempts, overhead_ms))


def trailers() -> tuple[tuple[str, str], ...]:
    """The scripted trace of the current call as trailing metadata; () when none."""
    scripted = _scripted.get()
    if scripted is None:
        return ()
    attempts, overhead_ms = scripted
    return ((ATTEMPTS_KEY, encode_attempts(attempts)), (OVERHEAD_KEY, f"{overhead_ms:.3f}"))


def encode_attempts(attempts: list[dict[str, Any]]) -> str:
    """The JSON array, keeping the earliest attempts that fit in `MAX_ATTEMPTS_BYTES`."""
    kept: list[str] = []
    size = 2
    for attempt in attempts:
        item = json.dumps(attempt, separators=(",", ":"), ensure_ascii=True)
        if size + len(item) + 1 > MAX_ATTEMPTS_BYTES:
            break
        kept.append(item)
        size += len(item) + 1
    return "[" + ",".join(kept) + "]"
