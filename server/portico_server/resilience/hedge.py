"""Hedged unary calls: when the first target is slow, ask the next one too.

`hedged(calls, delay_for)` starts `calls[0]`; if it has not answered `delay_for(0)` seconds
later, `calls[1]` starts beside it, and so on (`delay_for(i)` is the wait after starting
call i before starting call i + 1; None: start no more after it). A call that fails
starts the next one at once. The first answer wins; every other call still running is
cancelled, which closes its upstream connection. When all started calls fail and none is
left, the last failure is raised; `give_up(exc)` returning True raises a failure at once
(a request every target would refuse). Cancelling `hedged` cancels every call.

`hedge_delays(settings, names, stats)` makes `delay_for` from a group's `hedge:`
configuration: a fixed `after_ms`, or `after: p95` of each target's observed latency
(falling back to twice its latency moving average, then to no hedge while nothing is
known).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from ..config import HedgeSettings
from .balance import LatencyQuantiles, Stats

T = TypeVar("T")


async def hedged(
    calls: Sequence[Callable[[], Awaitable[T]]],
    delay_for: Callable[[int], float | None],
    give_up: Callable[[BaseException], bool] | None = None,
) -> tuple[T, int]:
    """(the first answer, the index of the call that gave it)."""
    if not calls:
        raise ValueError("hedged() needs at least one call")
    running: dict[asyncio.Task[T], int] = {}
    started = 0

    def launch_next() -> None:
        nonlocal started
        running[asyncio.ensure_future(calls[started]())] = started
        started += 1

    launch_next()
    last_error: BaseException | None = None
    try:
        while running:
            delay = delay_for(started - 1) if started < len(calls) else None
            done, _ = await asyncio.wait(running, timeout=delay, return_when=asyncio.FIRST_COMPLETED)
            if not done:  # the hedge delay passed with no answer: ask the next target too
                launch_next()
                continue
            for task in done:
                index = running.pop(task)
                error = task.exception()
                if error is None:
                    return task.result(), index
                last_error = error
                if give_up is not None and give_up(error):
                    raise error
                if started < len(calls):
                    launch_next()
        assert last_error is not None
        raise last_error
    finally:
        for task in running:
            task.cancel()
        for task in running:
            with contextlib.suppress(BaseException):
                await task


def hedge_delays(
    settings: HedgeSettings, names: Sequence[str], stats: Stats
) -> Callable[[int], float | None]:
    """`delay_for` for `hedged` over the targets `names` (in plan order)."""

    def delay_for(index: int) -> float | None:
        if index + 1 >= min(len(names), settings.copies):
            return None
        if settings.after_ms is not None:
            return settings.after_ms / 1000.0
        name = names[index]
        if isinstance(stats, LatencyQuantiles):
            p95 = stats.latency_p95(name)
            if p95 is not None:
                return p95
        mean = stats.latency_ewma(name)
        return None if mean is None else 2 * mean

    return delay_for
