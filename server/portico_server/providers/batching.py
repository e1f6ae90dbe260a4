"""Sending a request's batches to one provider concurrently, a few at a time."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

T = TypeVar("T")


async def in_order(calls: Sequence[Callable[[], Awaitable[T]]], concurrency: int) -> list[T]:
    """Run `calls` with at most `concurrency` in flight; their results in the order of
    `calls`. The first failure is raised and the calls still running are cancelled."""
    if len(calls) == 1:
        return [await calls[0]()]
    gate = asyncio.Semaphore(concurrency)

    async def one(call: Callable[[], Awaitable[T]]) -> T:
        async with gate:
            return await call()

    tasks = [asyncio.ensure_future(one(call)) for call in calls]
    try:
        return await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
