"""Moving a large call's CPU-heavy steps off the event loop.

A call whose request is large (many messages, long texts) is marked heavy when it is
decoded; its conversion and the encoding of its upstream body then run in a worker
thread, where the interpreter hands the event loop a turn every few milliseconds, so
health checks and other calls keep being answered. Small calls run the same steps inline:
a thread hop costs more than the work.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Callable
from typing import ParamSpec, TypeVar

#: Encoded requests larger than this are decoded, converted and encoded off the loop.
HEAVY_BYTES = 64 * 1024

_heavy: contextvars.ContextVar[bool] = contextvars.ContextVar("portico_heavy_call", default=False)

P = ParamSpec("P")
T = TypeVar("T")


def mark_heavy() -> None:
    """Mark the current call (its task and what it awaits) as heavy."""
    _heavy.set(True)


def is_heavy() -> bool:
    return _heavy.get()


async def run(fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
    """`fn(*args, **kwargs)`: in a worker thread for a heavy call, inline otherwise."""
    if _heavy.get():
        return await asyncio.to_thread(fn, *args, **kwargs)
    return fn(*args, **kwargs)
