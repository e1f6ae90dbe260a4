"""The connection to the shared-state Redis, and what happens when it is gone.

`SharedStore.run` is the only way the gateway talks to Redis. Every command is bounded
by `command_timeout`, and a failure opens a circuit around Redis itself for
`retry_interval` seconds: calls meanwhile do not wait on a dead socket, they get
`SharedStateUnavailable` at once and the caller applies `on_unavailable` (open: the
process's own limits; closed: refuse). A probe pings Redis every `retry_interval`
seconds, so the health entry `portico.shared_state` and the gauge
`portico_shared_state_up` follow Redis even without traffic, and shared limits resume
as soon as it answers again.

URLs: `redis://` and `rediss://` (TLS) for one server, `unix://` for a socket,
`redis+cluster://` / `rediss+cluster://` with one or more comma-separated seed nodes for
Redis Cluster, and `redis+sentinel://` / `rediss+sentinel://` with comma-separated
sentinels, then `/<master name>[/<db>]`, for Sentinel. A password in the URL is never
logged: errors name the host only.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import urllib.parse
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from prometheus_client import Gauge
from redis.asyncio import Redis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.sentinel import Sentinel
from redis.exceptions import RedisError

from ..config import ConfigError, RedisSettings

log = logging.getLogger("portico.shared")

# Labelled so that a gateway without a `redis:` section exports no series at all (an
# unlabelled gauge would read 0, "down", where nothing is configured).
SHARED_STATE_UP = Gauge(
    "portico_shared_state_up",
    "1 while the shared-state Redis answers, 0 while it does not (limits then follow redis.on_unavailable).",
    ["store"],
    multiprocess_mode="min",
)
SHARED_STATE_FAILURES = Gauge(
    "portico_shared_state_unavailable_seconds",
    "Unix time at which the shared-state Redis was last found unreachable (0: never).",
    ["store"],
    multiprocess_mode="max",
)

#: The health entry that follows the shared-state store.
HEALTH_SERVICE = "portico.shared_state"

T = TypeVar("T")


class SharedStateUnavailable(Exception):
    """Redis did not answer in time, refused, or its circuit is open."""


@dataclass(frozen=True, slots=True)
class Endpoint:
    """What a URL asks for, with the parts the clients need."""

    kind: str  # "single", "cluster" or "sentinel"
    url: str  # for single: the URL as given; otherwise rebuilt per kind
    nodes: tuple[tuple[str, int], ...] = ()
    service: str = ""
    db: int = 0
    username: str | None = None
    password: str | None = None
    tls: bool = False

    def describe(self) -> str:
        """Where the store is, without credentials (for logs and errors)."""
        if self.kind == "single":
            parts = urllib.parse.urlsplit(self.url)
            host = parts.hostname or parts.path
            return f"{parts.scheme}://{host}{f':{parts.port}' if parts.port else ''}"
        nodes = ",".join(f"{h}:{p}" for h, p in self.nodes)
        return f"{self.kind} {nodes}{f' ({self.service})' if self.service else ''}"


def parse_url(url: str) -> Endpoint:
    """Split a shared-state URL; ConfigError (naming `redis.url`, never its password) when wrong."""
    parts = urllib.parse.urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme in ("redis", "rediss", "unix"):
        return Endpoint("single", url, tls=scheme == "rediss")
    base, _, kind = scheme.partition("+")
    if base not in ("redis", "rediss") or kind not in ("cluster", "sentinel"):
        raise ConfigError(f"redis.url: unsupported scheme {scheme!r}; use redis://, rediss://, unix://, "
                          "redis+cluster://, rediss+cluster://, redis+sentinel:// or rediss+sentinel://")
    credentials, _, hosts = parts.netloc.rpartition("@")
    username, _, password = credentials.partition(":")
    nodes: list[tuple[str, int]] = []
    for node in filter(None, hosts.split(",")):
        host, _, port = node.rpartition(":") if ":" in node else (node, "", "")
        try:
            nodes.append((host.strip("[]") or node, int(port) if port else (26379 if kind == "sentinel" else 6379)))
        except ValueError:
            raise ConfigError(f"redis.url: {node!r} is not host:port") from None
    if not nodes:
        raise ConfigError("redis.url: names no host")
    path = [p for p in parts.path.split("/") if p]
    service, db = "", 0
    if kind == "sentinel":
        if not path:
            raise ConfigError("redis.url: a Sentinel URL names the master after the hosts: "
                              "redis+sentinel://host:26379/mymaster[/db]")
        service = urllib.parse.unquote(path[0])
        db_text = path[1] if len(path) > 1 else "0"
    else:
        db_text = path[0] if path else "0"
    try:
        db = int(db_text)
    except ValueError:
        raise ConfigError(f"redis.url: the database {db_text!r} is not a number") from None
    return Endpoint(kind, url, tuple(nodes), service, db,
                    urllib.parse.unquote(username) or None, urllib.parse.unquote(password) or None,
                    tls=base == "rediss")


def connect(settings: RedisSettings) -> tuple[Any, Endpoint]:
    """A pooled asyncio client for `settings.url` (connections are opened on first use)."""
    endpoint = parse_url(settings.url.get_secret_value())
    timeouts: dict[str, Any] = {
        "socket_timeout": settings.command_timeout,
        "socket_connect_timeout": settings.connect_timeout,
    }
    if endpoint.kind == "single":
        return Redis.from_url(endpoint.url, max_connections=settings.max_connections, **timeouts), endpoint
    if endpoint.kind == "cluster":
        client = RedisCluster(
            startup_nodes=[ClusterNode(host, port) for host, port in endpoint.nodes],
            username=endpoint.username, password=endpoint.password, ssl=endpoint.tls,
            max_connections=settings.max_connections, **timeouts)
        return client, endpoint
    sentinel = Sentinel(  # type: ignore[no-untyped-call]
        list(endpoint.nodes), sentinel_kwargs={**timeouts, "ssl": endpoint.tls},
        username=endpoint.username, password=endpoint.password, ssl=endpoint.tls,
        db=endpoint.db, max_connections=settings.max_connections, **timeouts)
    return sentinel.master_for(endpoint.service), endpoint


class SharedStore:
    """The shared-state client with its circuit, probe, gauge and health entry."""

    def __init__(self, settings: RedisSettings, client: Any | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        if client is None:
            client, self.endpoint = connect(settings)
        else:
            self.endpoint = parse_url(settings.url.get_secret_value())
        self.client = client
        self.prefix = settings.key_prefix
        self._clock = clock
        self._open_until = 0.0
        self._up: bool | None = None
        self._listeners: list[Callable[[bool], None]] = []
        self._probe: asyncio.Task[None] | None = None
        self._up_gauge = SHARED_STATE_UP.labels(store="redis")
        self._failed_gauge = SHARED_STATE_FAILURES.labels(store="redis")
        self._up_gauge.set(1)
        self._failed_gauge.set(0)

    @property
    def fail_open(self) -> bool:
        return self.settings.on_unavailable == "open"

    @property
    def up(self) -> bool:
        """Whether Redis answered the last time it was asked (True before the first ask)."""
        return self._up is not False

    def on_change(self, listener: Callable[[bool], None]) -> None:
        """`listener(up)` at every change between reachable and unreachable."""
        self._listeners.append(listener)
        listener(self.up)

    def key(self, *parts: str) -> str:
        """A key of ours. The `{...}` hash tag keeps one limit's keys in one Cluster slot,
        which its Lua script needs."""
        head, *rest = parts
        return ":".join((f"{self.prefix}{{{head}}}", *rest))

    async def run(self, operation: Callable[[Any], Awaitable[T]]) -> T:
        """`await operation(client)` within `command_timeout`; SharedStateUnavailable when
        the circuit is open, or Redis fails or is late (which opens the circuit)."""
        if self._clock() < self._open_until:
            raise SharedStateUnavailable(f"the shared-state store ({self.endpoint.describe()}) is unreachable")
        try:
            async with asyncio.timeout(self.settings.command_timeout + self.settings.connect_timeout):
                result = await operation(self.client)
        except (RedisError, OSError, TimeoutError) as exc:
            self._failed(exc)
            raise SharedStateUnavailable(
                f"the shared-state store ({self.endpoint.describe()}) is unreachable: {type(exc).__name__}") from None
        self._set_up(True)
        return result

    def _failed(self, exc: BaseException) -> None:
        self._open_until = self._clock() + self.settings.retry_interval
        if self._up is not False:
            # The exception's text may carry the URL; its type is enough to tell why.
            log.warning("shared-state store %s unreachable (%s); %s for %.1f s",
                        self.endpoint.describe(), type(exc).__name__,
                        "using each process's own limits" if self.fail_open else "refusing limited calls",
                        self.settings.retry_interval)
        self._set_up(False)

    def _set_up(self, up: bool) -> None:
        if up:
            self._open_until = 0.0
        if self._up is None and up:
            self._up = True  # the first answer: listeners were told "up" already
            return
        if self._up is up:
            return
        if up and self._up is False:
            log.warning("shared-state store %s reachable again; shared limits resume", self.endpoint.describe())
        self._up = up
        self._up_gauge.set(1 if up else 0)
        if not up:
            self._failed_gauge.set(time.time())
        for listener in self._listeners:
            listener(up)

    def start(self) -> None:
        """Start the probe (on the running loop)."""
        if self._probe is None:
            self._probe = asyncio.get_running_loop().create_task(self._probe_forever(), name="shared-state-probe")

    async def _probe_forever(self) -> None:
        while True:
            # Past the circuit's cooldown a ping either closes it or opens it again.
            with contextlib.suppress(SharedStateUnavailable):
                await self.run(lambda client: client.ping())
            await asyncio.sleep(self.settings.retry_interval)

    async def close(self) -> None:
        if self._probe is not None:
            self._probe.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._probe
            self._probe = None
        with contextlib.suppress(RedisError, OSError, TimeoutError):
            await self.client.aclose()
