"""Token budgets shared by every worker and replica: one counter per caller and window
in Redis (`INCRBY`, atomic by itself), expiring a day after its window ends."""

from __future__ import annotations

from .redis import SharedStateUnavailable, SharedStore

#: KEYS counter; ARGV tokens, expiry (Unix seconds). The new total.
_CHARGE = """
local total = redis.call('INCRBY', KEYS[1], ARGV[1])
redis.call('EXPIREAT', KEYS[1], ARGV[2])
return total
"""

#: Counters outlive their window by this long, for whoever looks back at them.
_KEEP = 24 * 3600


class SharedSpend:
    """Reads and adds to callers' spend in Redis; None from either when Redis is unreachable."""

    def __init__(self, store: SharedStore) -> None:
        self.store = store
        self._charge = store.client.register_script(_CHARGE)

    def key(self, caller: str, per: str, start: float) -> str:
        return self.store.key(f"budget:{caller}", per, str(int(start)))

    async def used(self, caller: str, per: str, start: float) -> int | None:
        key = self.key(caller, per, start)
        try:
            value = await self.store.run(lambda client: client.get(key))
        except SharedStateUnavailable:
            return None
        return int(value or 0)

    async def charge(self, caller: str, per: str, start: float, end: float, tokens: int) -> int | None:
        key = self.key(caller, per, start)
        try:
            total = await self.store.run(lambda client: self._charge(
                keys=[key], args=[tokens, int(end) + _KEEP], client=client))
        except SharedStateUnavailable:
            return None
        return int(total)
