"""Circuit breakers, quota cooldowns, route pins and live figures shared by every replica
(and worker) through Redis, so that the gateway behaves as one.

How a change travels: the replica that sees it writes the state into a Redis hash and
publishes it on one pub/sub channel; the others, subscribed, adopt it within a round
trip (pub/sub, not polling: propagation costs nothing while nothing changes and takes
milliseconds when something does). The hashes are read again whenever the subscription
(re)starts, so a replica that starts late, or lost Redis for a while, catches up; what it
decided alone meanwhile it writes back.

What stays local: each replica counts its own consecutive failures (sharing the count
would cost a Redis write per successful call) — the first replica to reach the threshold
opens the breaker for all. Half-open trial calls are claimed in Redis (a counter with an
expiry), so that replicas do not all probe a recovering provider at once. Live figures
(latency, time to first token, error rate) are merged from every replica: each shares
its own once per `FIGURES_INTERVAL` in one round trip that also fetches the others', so
the hot path never waits on Redis.

Redis unreachable: every operation goes through `SharedStore.run` (a short timeout, and a
circuit around Redis itself); a failure is logged and dropped, and each replica keeps
deciding from its local state (fail open, whatever `redis.on_unavailable` says: a breaker
is a protection, not a limit) — a call waits on Redis at most one command timeout, and
only for a half-open trial claim.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from redis.exceptions import RedisError

from ..config import BreakerSettings
from ..resilience.breaker import BreakerState, CircuitBreaker
from ..resilience.dispatcher import Dispatcher
from ..resilience.stats import PeerFigures
from .redis import SharedStateUnavailable, SharedStore

log = logging.getLogger("portico.shared")

#: Seconds between two sharings of a replica's live figures.
FIGURES_INTERVAL = 1.0
#: A replica's shared figures older than this many intervals are left out (it stopped).
_FIGURES_STALE = 5
#: Seconds between attempts to subscribe again after Redis went away.
_RESUBSCRIBE = 0.5
#: Seconds a trial call's claim lasts unless the trial ends first (it ends with the call:
#: this bounds how long a replica that dies mid-trial keeps the others from trying).
TRIAL_LEASE = 30.0

# KEYS[1]: the trial counter; ARGV: the trial calls allowed at once, the lease in ms.
_CLAIM_TRIAL = """
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
if n > tonumber(ARGV[1]) then redis.call('DECR', KEYS[1]) return 0 end
return 1
"""
# KEYS[1]: the trial counter. A trial call ended: free its claim.
_END_TRIAL = """
if tonumber(redis.call('GET', KEYS[1]) or '0') > 0 then redis.call('DECR', KEYS[1]) end
return 0
"""


class SharedResilience:
    """Binds one replica's dispatcher (breakers, cooldowns, live figures) and route pins to
    the state in Redis. `settings_of(provider)` gives a provider's breaker settings (None:
    not configured here); `switch(route, target)` pins a route locally."""

    def __init__(
        self,
        store: SharedStore,
        dispatcher: Dispatcher,
        settings_of: Callable[[str], BreakerSettings | None],
        switch: Callable[[str, str], None],
    ) -> None:
        self.store = store
        self.dispatcher = dispatcher
        self.settings_of = settings_of
        self.switch = switch
        self.replica = uuid.uuid4().hex[:12]
        self.channel = store.key("resilience", "changes")
        self._breakers_key = store.key("resilience", "breakers")
        self._cooldowns_key = store.key("resilience", "cooldowns")
        self._routes_key = store.key("resilience", "routes")
        self._figures_key = store.key("resilience", "figures")
        self._claim_trial = store.client.register_script(_CLAIM_TRIAL)
        self._end_trial = store.client.register_script(_END_TRIAL)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._loops: list[asyncio.Task[None]] = []
        #: Whether the subscription is up (this replica hears the others).
        self.connected = asyncio.Event()
        self._down_logged = False

    # -- life cycle -------------------------------------------------------------------------

    def start(self) -> None:
        breakers = self.dispatcher.breakers
        breakers.on_local_change = self._breaker_changed
        breakers.trial_gate = self._trial_gate
        breakers.on_trial_end = self._trial_ended
        self.dispatcher.on_cooldown = self._cooldown_started
        self._loops = [asyncio.ensure_future(self._listen()), asyncio.ensure_future(self._share_figures())]

    async def close(self) -> None:
        breakers = self.dispatcher.breakers
        breakers.on_local_change = None
        breakers.trial_gate = None
        breakers.on_trial_end = None
        self.dispatcher.on_cooldown = None
        for task in [*self._loops, *self._tasks]:
            task.cancel()
        for task in [*self._loops, *self._tasks]:
            with contextlib.suppress(BaseException):
                await task
        with contextlib.suppress(SharedStateUnavailable):
            await self.store.run(lambda client: client.hdel(self._figures_key, self.replica))

    # -- this replica's changes, written and published ----------------------------------

    def reset(self, provider: str, breakers: list[CircuitBreaker]) -> None:
        """An operator reset `provider`'s breakers here: close them on every replica."""
        keys = [b.key for b in breakers] or [provider]
        self._spawn(self._write(lambda pipe: pipe.hdel(self._breakers_key, *keys),
                                {"kind": "reset", "provider": provider}))

    def switched(self, route: str, target: str) -> None:
        """An operator pinned `route` to `target` here ("": restored it): on every replica."""
        def write(pipe: Any) -> None:
            if target:
                pipe.hset(self._routes_key, route, target)
            else:
                pipe.hdel(self._routes_key, route)
        self._spawn(self._write(write, {"kind": "switch", "route": route, "target": target}))

    def reloaded(self, pinned: list[str]) -> None:
        """This replica reloaded its configuration, which ends route pins (the file has the
        last word): end them on every replica. `pinned`: the routes pinned before."""
        self._spawn(self._write(lambda pipe: pipe.delete(self._routes_key),
                                {"kind": "unpin", "routes": pinned}))

    def _breaker_changed(self, breaker: CircuitBreaker) -> None:
        if breaker.state is BreakerState.OPEN:
            opened = breaker.opened_at_wall() or time.time()
            entry = json.dumps({"provider": breaker.provider, "opened_at": opened})

            def opened_(pipe: Any) -> None:
                pipe.hset(self._breakers_key, breaker.key, entry)
                pipe.delete(self._trial_key(breaker))  # a failed trial's claim goes with it
            self._spawn(self._write(opened_, {
                "kind": "open", "key": breaker.key, "provider": breaker.provider, "opened_at": opened}))
        elif breaker.state is BreakerState.CLOSED:
            def write(pipe: Any) -> None:
                pipe.hdel(self._breakers_key, breaker.key)
                pipe.delete(self._trial_key(breaker))
            self._spawn(self._write(write, {"kind": "close", "key": breaker.key, "provider": breaker.provider}))

    def _cooldown_started(self, provider: str, seconds: float) -> None:
        until = time.time() + seconds
        self._spawn(self._write(lambda pipe: pipe.hset(self._cooldowns_key, provider, str(until)),
                                {"kind": "cooldown", "provider": provider, "until": until}))

    async def _write(self, stage: Callable[[Any], object], message: dict[str, Any]) -> None:
        """Write the state and publish the change in one round trip (dropped when Redis is away)."""
        message["from"] = self.replica

        async def write(client: Any) -> None:
            async with client.pipeline(transaction=False) as pipe:
                stage(pipe)
                pipe.publish(self.channel, json.dumps(message))
                await pipe.execute()
        try:
            await self.store.run(write)
        except SharedStateUnavailable as exc:
            self._unreachable("could not share a change", exc)

    async def _trial_gate(self, breaker: CircuitBreaker) -> bool:
        """Claim one of the breaker's trial calls across replicas (for `TRIAL_LEASE` at
        most, so that a replica that dies mid-trial does not block the others for good).
        Redis away: yes (this replica decides alone, as without Redis)."""
        lease_ms = int(TRIAL_LEASE * 1000)
        try:
            got = await self.store.run(lambda client: self._claim_trial(
                keys=[self._trial_key(breaker)], args=[breaker.settings.trial_calls, lease_ms]))
        except SharedStateUnavailable as exc:
            self._unreachable("could not claim a trial call", exc)
            return True
        return bool(got)

    def _trial_ended(self, breaker: CircuitBreaker) -> None:
        key = self._trial_key(breaker)

        async def free() -> None:
            try:
                await self.store.run(lambda client: self._end_trial(keys=[key]))
            except SharedStateUnavailable as exc:
                self._unreachable("could not free a trial call's claim", exc)
        self._spawn(free())

    # -- the others' changes, adopted -----------------------------------------------------

    async def _listen(self) -> None:
        while True:
            try:
                async with self.store.client.pubsub() as pubsub:
                    await asyncio.wait_for(pubsub.subscribe(self.channel), self._patience())
                    await self._catch_up()
                    self.connected.set()
                    if self._down_logged:
                        log.warning("shared state: Redis is reachable again; breakers and cooldowns are shared")
                        self._down_logged = False
                    while True:
                        message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                        if message is not None and message.get("type") == "message":
                            self._adopt(message["data"])
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError, TimeoutError, SharedStateUnavailable) as exc:
                self.connected.clear()
                self._unreachable("lost its subscription", exc)
            except Exception:  # a bug must not end the sharing for good
                self.connected.clear()
                log.exception("shared state: the subscription failed")
            await asyncio.sleep(_RESUBSCRIBE)

    async def _catch_up(self) -> None:
        """Adopt what changed while this replica was not listening, and write back what
        it decided alone meanwhile (its open breakers)."""
        async def read(client: Any) -> list[Any]:
            async with client.pipeline(transaction=False) as pipe:
                pipe.hgetall(self._breakers_key)
                pipe.hgetall(self._cooldowns_key)
                pipe.hgetall(self._routes_key)
                return list(await pipe.execute())
        breakers, cooldowns, routes = await self.store.run(read)
        shared_open = {_text(k) for k in breakers}
        for key, entry in breakers.items():
            found = json.loads(entry)
            self._adopt_open(_text(key), found["provider"], float(found["opened_at"]))
        for breaker in self.dispatcher.breakers.all():
            if breaker.state is BreakerState.OPEN and breaker.key not in shared_open:
                self._breaker_changed(breaker)
        now = time.time()
        for provider, until in cooldowns.items():
            if float(until) > now:
                self.dispatcher.cool_down(_text(provider), float(until) - now)
        for route, target in routes.items():
            self._adopt_switch(_text(route), _text(target))

    def _adopt(self, data: bytes | str) -> None:
        try:
            message = json.loads(data)
            if message.get("from") == self.replica:
                return
            kind = message["kind"]
            if kind == "open":
                self._adopt_open(message["key"], message["provider"], float(message["opened_at"]))
            elif kind == "close":
                found = self.dispatcher.breakers.by_key(message["key"])
                if found is not None:
                    found.adopt_closed()
            elif kind == "reset":
                for breaker in self.dispatcher.breakers.of_provider(message["provider"]):
                    breaker.adopt_closed()
            elif kind == "cooldown":
                self.dispatcher.cool_down(message["provider"], float(message["until"]) - time.time())
            elif kind == "switch":
                self._adopt_switch(message["route"], message["target"])
            elif kind == "unpin":
                for route in message["routes"]:
                    self._adopt_switch(route, "")
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("shared state: ignored a message it cannot read (%s)", exc)

    def _adopt_open(self, key: str, provider: str, opened_at: float) -> None:
        settings = self.settings_of(provider)
        if settings is None or not settings.enabled:
            return  # a provider this replica does not have (a configuration being rolled out)
        _, _, model = key.partition("/")
        breaker = self.dispatcher.breakers.get(provider, model, settings)
        if breaker is not None and breaker.key == key:
            breaker.adopt_open(opened_at)

    def _adopt_switch(self, route: str, target: str) -> None:
        try:
            self.switch(route, target)
        except Exception as exc:  # a route or target this replica's configuration lacks
            log.warning("shared state: could not pin route %s to %s here: %s", route, target or "(configured)", exc)

    # -- live figures -----------------------------------------------------------------------

    async def _share_figures(self) -> None:
        stats = self.dispatcher.stats
        while True:
            await asyncio.sleep(FIGURES_INTERVAL)
            mine = {name: [f.latency, f.ttft, f.error_rate, f.weight] for name, f in stats.share().items()}
            entry = json.dumps({"at": time.time(), "figures": mine})

            async def exchange(client: Any, entry: str = entry) -> Any:
                async with client.pipeline(transaction=False) as pipe:
                    pipe.hset(self._figures_key, self.replica, entry)
                    pipe.hgetall(self._figures_key)
                    return (await pipe.execute())[1]
            try:
                everyone = await self.store.run(exchange)
            except SharedStateUnavailable as exc:
                self._unreachable("could not share live figures", exc)
                continue
            stats.set_peers(self._peers(everyone))

    def _peers(self, everyone: dict[Any, Any]) -> dict[str, list[PeerFigures]]:
        peers: dict[str, list[PeerFigures]] = {}
        stale_before = time.time() - FIGURES_INTERVAL * _FIGURES_STALE
        for replica, entry in everyone.items():
            if _text(replica) == self.replica:
                continue
            with contextlib.suppress(ValueError, KeyError, TypeError):
                found = json.loads(entry)
                if float(found["at"]) < stale_before:
                    continue
                for name, (latency, ttft, error_rate, weight) in found["figures"].items():
                    peers.setdefault(name, []).append(PeerFigures(latency, ttft, error_rate, int(weight)))
        return peers

    # -- helpers ------------------------------------------------------------------------------

    def _trial_key(self, breaker: CircuitBreaker) -> str:
        return self.store.key("resilience", "trial", breaker.key)

    def _patience(self) -> float:
        return self.store.settings.command_timeout + self.store.settings.connect_timeout

    def _spawn(self, work: Awaitable[None]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _unreachable(self, what: str, exc: BaseException) -> None:
        if not self._down_logged:
            log.warning("shared state: Redis is unreachable (%s: %s); each replica decides from its own "
                        "breakers and cooldowns until it is back", what, type(exc).__name__)
            self._down_logged = True


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
