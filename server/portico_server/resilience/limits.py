"""Rate limits with priority: concurrency, requests and tokens per minute, per key.

A key is a provider (`provider:NAME`), a deployment, i.e. one provider serving one model
(`deployment:NAME/MODEL`), or a model group (`group:NAME`). A call passes every key of
its target in that order (`Limits.keys_for`) and holds a `Ticket` until it is over; a
stream holds it until its last chunk.

Over a limit a call waits in the key's queue: higher priority first, first come first
served within one. Only the head of the queue is ever admitted, so a large call is not
starved by smaller ones behind it. A call leaves the queue when it is admitted, cancelled,
displaced by a higher-priority arrival while the queue is full, or when its deadline
passes. Refusals are `errors.RateLimited` (RESOURCE_EXHAUSTED, retry-safe) with the
expected wait as RetryInfo; a deadline passed in the queue is DEADLINE_EXCEEDED.

Requests and tokens per minute are token buckets that hold one minute's allowance and
refill continuously, so a full minute's worth may start at once and the rest is spread
evenly. Everything runs on the event loop's thread: each state change ends in `_pump`,
which admits queue heads until one must wait, and arms a timer when that wait is the
buckets' refill, so no wake-up depends on another call finishing.

With a `redis:` section the same limits also hold across every worker and replica
(`shared.limits.SharedLimits`): a call first passes this process's limits (the queue and
its priorities), then the shared ones. The local limits stay as they are, so they are
what remains when Redis is unreachable under `on_unavailable: open`.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from .. import metrics
from ..call import CallContext
from ..config import GatewayConfig, LimitSettings, expand_api_keys
from ..domain import ChatRequest, Priority, Usage
from ..errors import CircuitOpen, DeadlineExceeded, RateLimited
from ..providers.base import estimate_tokens
from ..router import Target
from ..shared.limits import SharedGrant, SharedLimits

#: Priorities from the one served first.
_ORDER = (Priority.HIGH, Priority.NORMAL, Priority.LOW)
#: The expected wait named in a refusal when nothing better is known yet.
_DEFAULT_RETRY = 1.0
#: Weight of the newest hold time in the moving average used to predict waits.
_HOLD_WEIGHT = 0.2
#: Bucket arithmetic is in floats; this much short of a whole token still counts as there.
_EPSILON = 1e-9


def provider_key(provider: str) -> str:
    return f"provider:{provider}"


def deployment_key(provider: str, model: str) -> str:
    return f"deployment:{provider}/{model}"


def group_key(group: str) -> str:
    return f"group:{group}"


class Timer(Protocol):
    def cancel(self) -> None: ...


class Clock(Protocol):
    """Time for the buckets and the waits; tests drive a manual one."""

    def now(self) -> float: ...

    def call_later(self, delay: float, callback: Callable[[], None]) -> Timer: ...


class LoopClock:
    """`time.monotonic` (the clock of `CallContext.deadline`) and the running loop's timers."""

    def now(self) -> float:
        return time.monotonic()

    def call_later(self, delay: float, callback: Callable[[], None]) -> Timer:
        return asyncio.get_running_loop().call_later(delay, callback)


class QueueDeadlineExceeded(DeadlineExceeded):
    """The call's deadline passed while it waited for a rate-limit slot; it was never sent."""

    retry_safe = True


def estimate_call_tokens(request: ChatRequest) -> int:
    """What a chat call is charged against tokens per minute before its usage is known."""
    return estimate_tokens(request) + (request.max_tokens or 0)


def used_tokens(usage: Usage | None) -> int | None:
    """The tokens a provider reported for a call; None when it reported none."""
    if usage is None:
        return None
    total = usage.total_tokens or usage.prompt_tokens + usage.completion_tokens
    return total or None


class _Bucket:
    """`capacity` tokens refilled evenly over a minute; the level may go below zero when a
    call used more than it was charged, which delays the calls after it."""

    def __init__(self, per_minute: int, now: float) -> None:
        self.capacity = float(per_minute)
        self.rate = per_minute / 60.0
        self.level = self.capacity
        self.stamp = now

    def refill(self, now: float) -> None:
        if now > self.stamp:
            self.level = min(self.capacity, self.level + (now - self.stamp) * self.rate)
        self.stamp = now

    def wait(self, amount: float, now: float) -> float:
        """Seconds until `amount` tokens are there (0: now)."""
        self.refill(now)
        missing = amount - self.level
        return 0.0 if missing <= _EPSILON else missing / self.rate

    def resize(self, per_minute: int, now: float) -> None:
        self.refill(now)
        self.capacity = float(per_minute)
        self.rate = per_minute / 60.0
        self.level = min(self.level, self.capacity)


def _resized(bucket: _Bucket | None, per_minute: int | None, now: float) -> _Bucket | None:
    if per_minute is None:
        return None
    if bucket is None:
        return _Bucket(per_minute, now)
    bucket.resize(per_minute, now)
    return bucket


@dataclass(slots=True, eq=False)
class _Grant:
    """One call's hold on one key."""

    limiter: KeyLimiter
    tokens: int  # charged against tokens per minute so far
    started: float
    released: bool = False


@dataclass(slots=True, eq=False)
class _Waiter:
    priority: Priority
    cost: int
    future: asyncio.Future[_Grant]
    deadline_timer: Timer | None = None
    queued: bool = True


class KeyLimiter:
    """The limits and the queue of one key."""

    def __init__(self, key: str, settings: LimitSettings, clock: Clock) -> None:
        self.key = key
        self.clock = clock
        self.in_flight = 0
        self.queued = 0
        self._queues: dict[Priority, deque[_Waiter]] = {p: deque() for p in _ORDER}
        self._timer: Timer | None = None
        self._hold_average: float | None = None
        self.settings = settings
        now = clock.now()
        self._rpm = _Bucket(settings.rpm, now) if settings.rpm else None
        self._tpm = _Bucket(settings.tpm, now) if settings.tpm else None

    # -- admission -------------------------------------------------------------------

    async def acquire(self, call: CallContext, estimated_tokens: int) -> _Grant:
        # A call larger than a whole minute's tokens waits for a full bucket instead of
        # forever; its real usage is charged when it settles.
        cost = max(0, min(estimated_tokens, int(self._tpm.capacity))) if self._tpm else 0
        now = self.clock.now()
        if not self.queued and self._wait(cost, now) == 0.0:
            return self._grant(cost, now)
        remaining = call.remaining()
        if remaining is not None:
            expected = self._bucket_wait_behind(call.priority, cost, now)
            if expected > remaining:
                raise self._refusal(
                    f"the requests and tokens per minute of {self.key} admit this call in "
                    f"{expected:.1f} s, after its deadline", expected)
        if self.queued >= self.settings.queue and not self._displace_for(call.priority):
            delay = self._expected_wait(call.priority, cost, now)
            raise self._refusal(
                f"the {self._blocking_limit(cost, now)} limit of {self.key} is reached and its queue "
                f"of {self.settings.queue} is full", delay)
        waiter = _Waiter(call.priority, cost, asyncio.get_running_loop().create_future())
        self._queues[call.priority].append(waiter)
        self.queued += 1
        metrics.queue_depth(self.key, self.queued)
        if remaining is not None:
            waiter.deadline_timer = self.clock.call_later(remaining, lambda: self._expire(waiter))
        self._pump()
        try:
            return await waiter.future
        except asyncio.CancelledError:
            future = waiter.future
            if future.done() and not future.cancelled() and future.exception() is None:
                # Admitted in the same turn of the loop as the cancellation: hand it back.
                self.release(future.result(), refund=True)
            else:
                self._leave(waiter)
            raise

    def _wait(self, cost: int, now: float) -> float:
        """Seconds until a call of `cost` tokens fits (0: now; inf: when a call ends)."""
        limit = self.settings.concurrency
        if limit is not None and self.in_flight >= limit:
            return math.inf
        wait = 0.0
        if self._rpm is not None:
            wait = self._rpm.wait(1, now)
        if self._tpm is not None:
            wait = max(wait, self._tpm.wait(cost, now))
        return wait

    def _grant(self, cost: int, now: float) -> _Grant:
        self.in_flight += 1
        if self._rpm is not None:
            self._rpm.level -= 1
        if self._tpm is not None:
            self._tpm.level -= cost
        return _Grant(self, cost, now)

    def _pump(self) -> None:
        """Admit queue heads while they fit; arm a timer when the head waits for a refill."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        now = self.clock.now()
        while self.queued:
            head = self._head()
            if head.future.done():
                # Cancelled: its task has not yet run to take itself out.
                self._dequeue(head)
                continue
            wait = self._wait(head.cost, now)
            if wait == 0.0:
                self._dequeue(head)
                head.future.set_result(self._grant(head.cost, now))
            elif wait != math.inf:
                self._timer = self.clock.call_later(wait, self._pump)
                return
            else:
                return

    def _head(self) -> _Waiter:
        return next(q[0] for q in self._queues.values() if q)

    def _dequeue(self, waiter: _Waiter) -> None:
        if waiter.queued:
            self._queues[waiter.priority].remove(waiter)
            waiter.queued = False
            self.queued -= 1
            metrics.queue_depth(self.key, self.queued)
        if waiter.deadline_timer is not None:
            waiter.deadline_timer.cancel()
            waiter.deadline_timer = None

    def _leave(self, waiter: _Waiter) -> None:
        """`waiter` gives up; the call behind it may fit where it did not."""
        was_queued = waiter.queued
        self._dequeue(waiter)
        if was_queued:
            self._pump()

    def _expire(self, waiter: _Waiter) -> None:
        if waiter.future.done():
            return
        self._leave(waiter)
        waiter.future.set_exception(QueueDeadlineExceeded(
            f"the call's deadline passed while it waited for a slot of {self.key}; it was not sent",
            metadata={"limit_key": self.key}))

    def _displace_for(self, priority: Priority) -> bool:
        """Make room in a full queue by refusing its newest call of the lowest priority,
        if that is below `priority`. False when there is none."""
        for lower in reversed(_ORDER):
            if lower >= priority:
                return False
            if self._queues[lower]:
                victim = self._queues[lower][-1]
                self._dequeue(victim)
                if victim.future.done():
                    return True  # cancelled already; its place is free
                victim.future.set_exception(self._refusal(
                    "the queue is full and a call of higher priority took this call's place",
                    self._expected_wait(lower, victim.cost, self.clock.now())))
                return True
        return False

    # -- the end of a call -----------------------------------------------------------

    def settle(self, grant: _Grant, used: int) -> None:
        """Charge what the call really used instead of its estimate."""
        if self._tpm is not None and used >= 0:
            self._tpm.refill(self.clock.now())
            self._tpm.level -= used - grant.tokens
        grant.tokens = used
        if self.queued:
            self._pump()

    def release(self, grant: _Grant, *, refund: bool = False) -> None:
        """The call is over. `refund`: it never reached the provider, so its request and
        tokens go back too."""
        if grant.released:
            return
        grant.released = True
        self.in_flight -= 1
        now = self.clock.now()
        if refund:
            if self._rpm is not None:
                self._rpm.refill(now)
                self._rpm.level = min(self._rpm.capacity, self._rpm.level + 1)
            if self._tpm is not None:
                self._tpm.refill(now)
                self._tpm.level = min(self._tpm.capacity, self._tpm.level + grant.tokens)
        else:
            held = now - grant.started
            average = self._hold_average
            self._hold_average = held if average is None else average + _HOLD_WEIGHT * (held - average)
        if self.queued:
            self._pump()

    # -- hot reload ------------------------------------------------------------------

    def reconfigure(self, settings: LimitSettings) -> None:
        """New limits for this key; calls in flight and in the queue stay."""
        now = self.clock.now()
        self.settings = settings
        self._rpm = _resized(self._rpm, settings.rpm, now)
        self._tpm = _resized(self._tpm, settings.tpm, now)
        self._pump()

    # -- telling callers when to come back -------------------------------------------

    def _ahead_of(self, priority: Priority) -> list[_Waiter]:
        return [w for p in _ORDER if p >= priority for w in self._queues[p]]

    def _bucket_wait_behind(self, priority: Priority, cost: int, now: float) -> float:
        """Seconds until the buckets hold enough for the calls ahead of a new call and the
        call itself (concurrency aside)."""
        ahead = self._ahead_of(priority)
        wait = 0.0
        if self._rpm is not None:
            wait = self._rpm.wait(len(ahead) + 1, now)
        if self._tpm is not None:
            wait = max(wait, self._tpm.wait(sum(w.cost for w in ahead) + cost, now))
        return wait

    def _expected_wait(self, priority: Priority, cost: int, now: float) -> float:
        wait = self._bucket_wait_behind(priority, cost, now)
        limit = self.settings.concurrency
        if limit is not None and self.in_flight >= limit:
            ahead = len(self._ahead_of(priority))
            hold = self._hold_average if self._hold_average is not None else _DEFAULT_RETRY
            wait = max(wait, hold * (ahead // limit + 1))
        return wait if wait > 0 else _DEFAULT_RETRY

    def _blocking_limit(self, cost: int, now: float) -> str:
        """Which limit holds calls back: the one the head of the queue waits for, or the
        one a call of `cost` tokens would wait for when nobody queues."""
        if self.queued:
            cost = self._head().cost
        limit = self.settings.concurrency
        if limit is not None and self.in_flight >= limit:
            return "concurrency"
        if self._rpm is not None and self._rpm.wait(1, now) > 0:
            return "rpm"
        if self._tpm is not None and self._tpm.wait(cost, now) > 0:
            return "tpm"
        return "concurrency"

    def _refusal(self, message: str, delay: float) -> RateLimited:
        return RateLimited(
            f"rate limit: {message}; retry in about {delay:.1f} s",
            metadata={"limit_key": self.key},
            retry_after=delay,
            retry_safe=True,
        )


@dataclass(slots=True, eq=False)
class Ticket:
    """A call's hold on its keys, released when the `admit` block ends."""

    grants: list[_Grant] = field(default_factory=list)
    #: Seconds the call waited in queues before it was admitted.
    waited: float = 0.0
    #: Its holds on the limits shared with the other replicas (none without Redis).
    shared: list[SharedGrant] = field(default_factory=list)
    shared_limits: SharedLimits | None = None

    def settle(self, used_tokens: int | None) -> None:
        """Correct the tokens-per-minute charge with what the provider reported (None:
        it reported nothing, the estimate stays)."""
        if used_tokens is None:
            return
        for grant in self.grants:
            if not grant.released:
                grant.limiter.settle(grant, used_tokens)
        if self.shared_limits is not None:
            for shared in self.shared:
                self.shared_limits.settle(shared, used_tokens)


class Limits:
    """Every key's limits. One instance per gateway; `update` applies a reloaded file."""

    def __init__(
        self,
        config: GatewayConfig | Mapping[str, LimitSettings] | None = None,
        *,
        clock: Clock | None = None,
        shared: SharedLimits | None = None,
    ) -> None:
        self.clock: Clock = clock or LoopClock()
        #: The limits' shared counterparts in Redis; None: this process counts alone.
        self.shared = shared
        self._limiters: dict[str, KeyLimiter] = {}
        self.update(config)

    @staticmethod
    def settings_of(config: GatewayConfig | Mapping[str, LimitSettings] | None) -> dict[str, LimitSettings]:
        """Key -> limits of every key that has a limit."""
        if config is None:
            return {}
        if not isinstance(config, GatewayConfig):
            return {k: v for k, v in config.items() if v.limited}
        keys: dict[str, LimitSettings] = {}
        # A provider with several `api_keys` has the limits once per key: the upstream
        # counts each key on its own. `group_limits` of its name limit the keys together.
        for provider in (instance for p in config.providers for instance in expand_api_keys(p)):
            keys[provider_key(provider.name)] = provider.limits
            for model, settings in provider.model_limits.items():
                keys[deployment_key(provider.name, model)] = settings
        for group, settings in config.group_limits.items():
            keys[group_key(group)] = settings
        return {k: v for k, v in keys.items() if v.limited}

    def update(self, config: GatewayConfig | Mapping[str, LimitSettings] | None) -> None:
        """Apply new limits. A key that loses its limits lets its queue go and is no longer
        checked; calls holding tickets finish as they are."""
        wanted = self.settings_of(config)
        for key, limiter in list(self._limiters.items()):
            if key not in wanted:
                limiter.reconfigure(LimitSettings())
                del self._limiters[key]
        for key, settings in wanted.items():
            if key in self._limiters:
                self._limiters[key].reconfigure(settings)
            else:
                self._limiters[key] = KeyLimiter(key, settings, self.clock)

    def keys_for(self, target: Target) -> list[str]:
        """The limited keys `target` must pass, in admission order: provider, deployment,
        the provider's keys together (for an instance of a provider with several
        `api_keys`, named `<name>#<n>`), group. Empty when none is limited (the call is
        not counted at all)."""
        if not self._limiters:
            return []
        name = target.provider.name
        candidates = [provider_key(name), deployment_key(name, target.model)]
        keys_of, numbered, _ = name.partition("#")
        if numbered:
            candidates.append(group_key(keys_of))
        if target.group and target.group != keys_of:
            candidates.append(group_key(target.group))
        return [key for key in candidates if key in self._limiters]

    def queue_depth(self, key: str) -> int:
        """Calls waiting for a slot of `key` now."""
        limiter = self._limiters.get(key)
        return limiter.queued if limiter is not None else 0

    def in_flight(self, key: str) -> int:
        """Calls holding a slot of `key` now."""
        limiter = self._limiters.get(key)
        return limiter.in_flight if limiter is not None else 0

    def admit(self, target_key: str, call: CallContext, estimated_tokens: int) -> _Admission:
        """`async with limits.admit(key, call, tokens) as ticket:` waits for a slot of one key."""
        return self.admit_all((target_key,), call, estimated_tokens)

    def admit_all(self, keys: Sequence[str], call: CallContext, estimated_tokens: int) -> _Admission:
        """Wait for a slot of each of `keys` in order; on a refusal the slots already taken
        are handed back whole (the call was never sent)."""
        limiters = [self._limiters[key] for key in keys if key in self._limiters]
        if not limiters:
            return _UNLIMITED
        return _Admission(limiters, call, estimated_tokens, self.shared)


class _Admission:
    """The `async with` of `Limits.admit`: enter waits and holds, exit releases."""

    __slots__ = ("_call", "_limiters", "_shared", "_ticket", "_tokens")

    def __init__(self, limiters: list[KeyLimiter], call: CallContext, estimated_tokens: int,
                 shared: SharedLimits | None = None) -> None:
        self._limiters = limiters
        self._call = call
        self._tokens = estimated_tokens
        self._shared = shared
        self._ticket = Ticket(shared_limits=shared)

    async def __aenter__(self) -> Ticket:
        ticket = self._ticket
        clock = self._limiters[0].clock
        started = clock.now()
        try:
            for limiter in self._limiters:
                ticket.grants.append(await limiter.acquire(self._call, self._tokens))
            if self._shared is not None:
                for limiter in self._limiters:
                    held = await self._shared.acquire(limiter.key, limiter.settings, self._tokens, self._call.remaining)
                    if held is not None:
                        ticket.shared.append(held)
        except BaseException:
            for grant in ticket.grants:
                grant.limiter.release(grant, refund=True)
            await self._release_shared(refund=True)
            raise
        ticket.waited = clock.now() - started
        return ticket

    async def __aexit__(self, kind: object, exc: BaseException | None, tb: object) -> None:
        # A refusal inside this block (by a key admitted in a nested block, or an open
        # breaker) means the call never left: this key's request and tokens go back.
        refund = isinstance(exc, _NEVER_SENT)
        for grant in self._ticket.grants:
            grant.limiter.release(grant, refund=refund)
        await self._release_shared(refund=refund)

    async def _release_shared(self, *, refund: bool) -> None:
        if self._shared is not None and self._ticket.shared:
            # Shielded: a cancelled call still hands its lease back now, not at its expiry.
            await asyncio.shield(asyncio.gather(
                *(self._shared.release(grant, refund=refund) for grant in self._ticket.shared)))


#: Failures that say the call never left the gateway.
_NEVER_SENT = (RateLimited, QueueDeadlineExceeded, CircuitOpen)


class _Unlimited(_Admission):
    """No key of the target is limited: nothing to wait for, count or release."""

    def __init__(self) -> None:
        super().__init__([], CallContext(), 0)

    async def __aenter__(self) -> Ticket:
        return _NO_TICKET

    async def __aexit__(self, kind: object, exc: BaseException | None, tb: object) -> None:
        return None


_NO_TICKET = Ticket()
_UNLIMITED = _Unlimited()

