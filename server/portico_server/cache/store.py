"""Where cached answers live: this process's memory, or Redis shared by every worker and
replica. Both keep an answer for a time to live; the memory store is also bounded by
entries and bytes, dropping the least recently used first."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Protocol

from ..shared.redis import SharedStore


class CacheStore(Protocol):
    async def get(self, key: str) -> bytes | None: ...

    async def put(self, key: str, value: bytes, ttl: float) -> None: ...

    async def close(self) -> None: ...


class MemoryStore:
    """A bounded LRU with a time to live per entry, for one process."""

    def __init__(self, max_entries: int, max_bytes: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._clock = clock
        self._entries: OrderedDict[str, tuple[float, bytes]] = OrderedDict()
        self.bytes = 0

    def __len__(self) -> int:
        return len(self._entries)

    async def get(self, key: str) -> bytes | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        expires, value = entry
        if expires <= self._clock():
            self._drop(key)
            return None
        self._entries.move_to_end(key)
        return value

    async def put(self, key: str, value: bytes, ttl: float) -> None:
        if len(value) > self.max_bytes:
            return
        if key in self._entries:
            self._drop(key)
        self._entries[key] = (self._clock() + ttl, value)
        self.bytes += len(value)
        while len(self._entries) > self.max_entries or self.bytes > self.max_bytes:
            self._drop(next(iter(self._entries)))

    def _drop(self, key: str) -> None:
        _, value = self._entries.pop(key)
        self.bytes -= len(value)

    async def close(self) -> None:
        self._entries.clear()
        self.bytes = 0


class RedisStore:
    """Answers in the shared-state Redis (shared/redis.py), each with Redis's own expiry
    (`SET ... PX`), so every worker and replica sees one cache and nothing outlives its
    TTL. Commands go through the store's circuit: an unreachable Redis fails at once."""

    def __init__(self, shared: SharedStore) -> None:
        self._shared = shared
        # One key per answer, without a hash tag: answers spread over a Cluster's slots.
        self._prefix = f"{shared.prefix}cache:"

    async def get(self, key: str) -> bytes | None:
        value = await self._shared.run(lambda client: client.get(self._prefix + key))
        return bytes(value) if value is not None else None

    async def put(self, key: str, value: bytes, ttl: float) -> None:
        await self._shared.run(lambda client: client.set(self._prefix + key, value, px=max(1, int(ttl * 1000))))

    async def close(self) -> None:
        return None  # the connection is the gateway's, closed with it
