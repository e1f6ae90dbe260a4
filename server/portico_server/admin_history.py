"""What operators changed on a running gateway: route switches, breaker resets and
reloads, with time and reason, newest last. Bounded: the last `limit` are kept."""

from __future__ import annotations

import enum
import time
from collections import deque
from dataclasses import dataclass


class EventKind(enum.Enum):
    SWITCH = "switch"
    RELOAD = "reload"
    BREAKER_RESET = "breaker_reset"


@dataclass(frozen=True, slots=True)
class AdminEvent:
    time: float  # seconds since the epoch
    kind: EventKind
    subject: str
    reason: str
    ok: bool
    detail: str = ""


#: The reason recorded for a reload asked for by a signal.
SIGHUP_REASON = "SIGHUP"


class AdminHistory:
    def __init__(self, limit: int = 1000) -> None:
        self.limit = limit
        self._events: deque[AdminEvent] = deque(maxlen=limit)

    def record(self, kind: EventKind, subject: str, reason: str, ok: bool, detail: str = "") -> AdminEvent:
        event = AdminEvent(time.time(), kind, subject, reason, ok, detail)
        self._events.append(event)
        return event

    def newest_first(self, limit: int = 0) -> list[AdminEvent]:
        events = list(reversed(self._events))
        return events[:limit] if limit > 0 else events
