"""Rate and concurrency limits shared by every worker and replica, in Redis.

Requests and tokens per minute use GCRA (the generic cell rate algorithm): each limit is
one key holding its "theoretical arrival time". GCRA with a burst of one minute's
allowance is exactly the token bucket of resilience/limits.py (a full minute may start at
once, the rest is spread evenly), so a limit means the same with and without Redis; it
needs one small value per limit instead of a sorted set of every request a sliding
window keeps, takes a weighted cost (tokens) and a later correction (the usage a
provider reports) as plain arithmetic, and reads the clock of Redis (`TIME`), so replicas
whose clocks differ still agree. Each check runs in one Lua script: check and take are
atomic, and one limit's keys share a hash tag so the script runs on Redis Cluster too.

Concurrency is a sorted set of leases scored by their expiry. A replica renews the
leases of its running calls every third of `lease_ttl`; one that dies stops renewing,
and its leases are dropped by the next admission after they expire.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..config import LimitSettings
from ..errors import RateLimited
from .redis import SharedStateUnavailable, SharedStore

log = logging.getLogger("portico.shared")

#: Admission: KEYS rpm, tpm, leases; ARGV rpm, tpm, cost, concurrency, lease id, lease ttl (ms).
#: Returns {1} when admitted, else {0, wait in ms (-1: until a lease ends), the limit}.
_ADMIT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local rpm, tpm, cost = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local concurrency, ttl = tonumber(ARGV[4]), tonumber(ARGV[6])
if concurrency > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
  if redis.call('ZCARD', KEYS[3]) >= concurrency then return {0, -1, 'concurrency'} end
end
local function arrival(key, per_minute, amount)
  local tat = tonumber(redis.call('GET', key) or now)
  if tat < now then tat = now end
  local next_tat = tat + amount * 60000 / per_minute
  return next_tat, next_tat - now - 60000
end
local rpm_tat, rpm_wait, tpm_tat, tpm_wait = nil, 0, nil, 0
if rpm > 0 then rpm_tat, rpm_wait = arrival(KEYS[1], rpm, 1) end
if tpm > 0 then tpm_tat, tpm_wait = arrival(KEYS[2], tpm, cost) end
if rpm_wait > 0.001 or tpm_wait > 0.001 then
  if rpm_wait >= tpm_wait then return {0, math.ceil(rpm_wait), 'rpm'} end
  return {0, math.ceil(tpm_wait), 'tpm'}
end
if rpm_tat then redis.call('SET', KEYS[1], string.format('%.3f', rpm_tat), 'PX', math.ceil(rpm_tat - now) + 1000) end
if tpm_tat then redis.call('SET', KEYS[2], string.format('%.3f', tpm_tat), 'PX', math.ceil(tpm_tat - now) + 1000) end
if concurrency > 0 then
  redis.call('ZADD', KEYS[3], now + ttl, ARGV[5])
  redis.call('PEXPIRE', KEYS[3], ttl * 2)
end
return {1}
"""

#: Correction: KEYS rpm, tpm; ARGV rpm, tpm, requests, tokens (negative: give back).
_ADJUST = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local function adjust(key, per_minute, amount)
  if per_minute <= 0 or amount == 0 then return end
  local tat = tonumber(redis.call('GET', key) or now)
  if tat < now then tat = now end
  tat = tat + amount * 60000 / per_minute
  if tat <= now then redis.call('DEL', key) return end
  redis.call('SET', key, string.format('%.3f', tat), 'PX', math.ceil(tat - now) + 1000)
end
adjust(KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[3]))
adjust(KEYS[2], tonumber(ARGV[2]), tonumber(ARGV[4]))
return 1
"""

#: Renewal: KEYS leases; ARGV ttl (ms), lease ids. Only leases still there are renewed.
_RENEW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[1])
for i = 2, #ARGV do redis.call('ZADD', KEYS[1], 'XX', now + ttl, ARGV[i]) end
redis.call('PEXPIRE', KEYS[1], ttl * 2)
return 1
"""

#: Longest sleep between two looks at a full concurrency limit.
_LONGEST_POLL = 0.5


class SharedStateRefusal(RateLimited):
    """`on_unavailable: closed` and Redis cannot be asked: a limited call is refused
    unsent, since nobody can tell whether it is within its limits."""


def unavailable_refusal(key: str, store: SharedStore) -> SharedStateRefusal:
    return SharedStateRefusal(
        f"the shared limits of {key} cannot be checked: the shared-state store is unreachable "
        "and redis.on_unavailable is closed",
        metadata={"limit_key": key, "limit": "shared_state"},
        retry_after=store.settings.retry_interval, retry_safe=True)


@dataclass(slots=True, eq=False)
class SharedGrant:
    """One call's hold on one shared limit."""

    key: str
    settings: LimitSettings
    tokens: int
    lease: str | None
    released: bool = False


class SharedLimits:
    """Admission against shared limits; one instance per process, beside `Limits`."""

    def __init__(self, store: SharedStore, sleep: Callable[[float], Any] = asyncio.sleep) -> None:
        self.store = store
        self._admit = store.client.register_script(_ADMIT)
        self._adjust = store.client.register_script(_ADJUST)
        self._renew = store.client.register_script(_RENEW)
        self._sleep = sleep
        self._replica = f"{uuid.uuid4().hex[:12]}-{os.getpid()}"
        self._serial = itertools.count(1)
        self._leases: dict[str, set[str]] = {}
        self._renewer: asyncio.Task[None] | None = None
        self._pending: set[asyncio.Task[None]] = set()

    def _keys_of(self, key: str) -> list[str]:
        # One hash tag per limit: its three keys live in one Cluster slot.
        return [self.store.key(f"limit:{key}", part) for part in ("rpm", "tpm", "leases")]

    async def acquire(self, key: str, settings: LimitSettings, cost: int, remaining: Callable[[], float | None],
                      ) -> SharedGrant | None:
        """Take a slot of `key` across every replica, waiting as the local queue would
        (not at all when `queue` is 0). None: Redis is unreachable and the policy is open.
        Raises RateLimited (or QueueDeadlineExceeded via the caller) when refused."""
        if settings.tpm is not None:
            cost = max(0, min(cost, settings.tpm))
        else:
            cost = 0
        lease = f"{self._replica}:{next(self._serial)}" if settings.concurrency else None
        ttl_ms = int(self.store.settings.lease_ttl * 1000)
        poll = 0.02
        while True:
            try:
                reply = await self.store.run(lambda client: self._admit(
                    keys=self._keys_of(key),
                    args=[settings.rpm or 0, settings.tpm or 0, cost, settings.concurrency or 0, lease or "", ttl_ms],
                    client=client))
            except SharedStateUnavailable:
                if self.store.fail_open:
                    return None
                raise unavailable_refusal(key, self.store) from None
            if int(reply[0]) == 1:
                if lease is not None:
                    self._leases.setdefault(key, set()).add(lease)
                    self._start_renewing()
                return SharedGrant(key, settings, cost, lease)
            wait_ms, limit = int(reply[1]), _text(reply[2])
            wait = poll if wait_ms < 0 else wait_ms / 1000
            left = remaining()
            if settings.queue == 0 or (left is not None and wait_ms >= 0 and wait > left):
                expected = wait if wait_ms >= 0 else 1.0
                raise RateLimited(
                    f"rate limit: the shared {limit} limit of {key} is reached across the gateway's "
                    f"replicas; retry in about {expected:.1f} s",
                    metadata={"limit_key": key, "limit": limit}, retry_after=expected, retry_safe=True)
            if left is not None and left <= 0:
                raise RateLimited(
                    f"rate limit: the shared {limit} limit of {key} did not admit the call before its deadline",
                    metadata={"limit_key": key, "limit": limit}, retry_after=1.0, retry_safe=True)
            await self._sleep(min(wait, left) if left is not None else wait)
            poll = min(poll * 2, _LONGEST_POLL)

    def settle(self, grant: SharedGrant, used: int) -> None:
        """Charge what the call really used instead of its estimate (in the background;
        `flush` waits for it)."""
        if grant.settings.tpm is None or used == grant.tokens:
            return
        delta, grant.tokens = used - grant.tokens, used
        self._background(self._adjust_by(grant, 0, delta))

    async def release(self, grant: SharedGrant, *, refund: bool) -> None:
        """The call is over. `refund`: it never reached the provider, so its request and
        tokens go back too."""
        if grant.released:
            return
        grant.released = True
        if grant.lease is not None:
            self._leases.get(grant.key, set()).discard(grant.lease)
            lease_key = self._keys_of(grant.key)[2]
            with contextlib.suppress(SharedStateUnavailable):
                await self.store.run(lambda client: client.zrem(lease_key, grant.lease))
        if refund:
            await self._adjust_by(grant, -1 if grant.settings.rpm else 0, -grant.tokens)
        await self.flush()

    async def _adjust_by(self, grant: SharedGrant, requests: int, tokens: int) -> None:
        if not requests and not tokens:
            return
        settings = grant.settings
        with contextlib.suppress(SharedStateUnavailable):
            await self.store.run(lambda client: self._adjust(
                keys=self._keys_of(grant.key)[:2],
                args=[settings.rpm or 0, settings.tpm or 0, requests, tokens], client=client))

    def _background(self, work: Any) -> None:
        task = asyncio.ensure_future(work)
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def flush(self) -> None:
        """Wait for corrections sent in the background (each bounded by the store's timeout)."""
        while self._pending:
            await asyncio.gather(*list(self._pending), return_exceptions=True)

    def _start_renewing(self) -> None:
        if self._renewer is None or self._renewer.done():
            self._renewer = asyncio.get_running_loop().create_task(self._renew_forever(), name="lease-renewal")

    async def _renew_forever(self) -> None:
        ttl = self.store.settings.lease_ttl
        while any(self._leases.values()):
            await asyncio.sleep(ttl / 3)
            for key, leases in list(self._leases.items()):
                if not leases:
                    self._leases.pop(key, None)
                    continue
                keys, args = [self._keys_of(key)[2]], [int(ttl * 1000), *leases]
                with contextlib.suppress(SharedStateUnavailable):
                    await self.store.run(lambda client, keys=keys, args=args: self._renew(  # type: ignore[misc]
                        keys=keys, args=args, client=client))

    async def close(self) -> None:
        if self._renewer is not None:
            self._renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._renewer
        await self.flush()


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
