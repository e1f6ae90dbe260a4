"""Feeds the standard grpc.health.v1 service.

`""`, `portico.v1.LLMService` and `portico.v1.VectorService` (when served) follow the
process: SERVING from start-up until shutdown, whatever the providers do, so one provider's outage does not pull every
replica out of its load balancer. `portico.provider.<name>` follows each provider's
periodic probe, its circuit breaker and its quota cooldown. At shutdown every entry
turns NOT_SERVING and every `Watch` stream ends right after saying so: an idle watcher
must not hold the process for the whole grace period the real calls get.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from typing import Any

import grpc
from grpc_health.v1 import health_pb2

from .providers.base import Provider

SERVICE_NAME = "portico.v1.LLMService"
PROVIDER_PREFIX = "portico.provider."
_SERVING = health_pb2.HealthCheckResponse.SERVING
_NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
_UNKNOWN = health_pb2.HealthCheckResponse.SERVICE_UNKNOWN

log = logging.getLogger("portico.health")


class HealthServicer:
    """grpc.health.v1 `Check` and `Watch` over a table of statuses that can be closed."""

    def __init__(self) -> None:
        self._status: dict[str, int] = {}
        # Replaced by a fresh event at every change: each Watch waits on the one it saw.
        self._changed = asyncio.Event()
        self._closed = False

    async def Check(
        self, request: health_pb2.HealthCheckRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> health_pb2.HealthCheckResponse:
        status = self._status.get(request.service)
        if status is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, "unknown service")
        return health_pb2.HealthCheckResponse(status=status)

    async def List(
        self, request: health_pb2.HealthListRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> health_pb2.HealthListResponse:
        return health_pb2.HealthListResponse(statuses={
            service: health_pb2.HealthCheckResponse(status=status)
            for service, status in self._status.items()
        })

    async def Watch(
        self, request: health_pb2.HealthCheckRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> None:
        last: int | None = None
        while True:
            status, closed = self._status.get(request.service, _UNKNOWN), self._closed
            if status != last:
                await context.write(health_pb2.HealthCheckResponse(status=status))
                last = status
                continue  # it may have changed again while we wrote
            if closed:
                return
            await self._changed.wait()

    def put(self, service: str, status: int) -> None:
        """Set an entry; every Watch of it sees the change."""
        if not self._closed and self._status.get(service) != status:
            self._status[service] = status
            self._wake()

    async def set(self, service: str, status: int) -> None:
        self.put(service, status)

    def remove(self, service: str) -> None:
        """Forget an entry: Check answers NOT_FOUND, a Watch sees SERVICE_UNKNOWN."""
        if not self._closed and self._status.pop(service, None) is not None:
            self._wake()

    def _wake(self) -> None:
        event, self._changed = self._changed, asyncio.Event()
        event.set()

    async def close(self) -> None:
        """Every entry NOT_SERVING for good; each Watch sends that, then ends."""
        self._closed = True
        self._status = dict.fromkeys(self._status, _NOT_SERVING)
        self._wake()


class HealthReporter:
    """Each provider's entry is SERVING while nothing holds it down: its probe failing
    ("probe"), its circuit breaker open ("breaker"), a quota cooldown ("cooldown")."""

    def __init__(self, providers: dict[str, Provider], probe_timeout: float = 5.0) -> None:
        self.servicer = HealthServicer()
        self.providers = providers
        self.probe_timeout = probe_timeout
        # Providers start out trusted; the first probe runs right after start-up.
        self.provider_ok: dict[str, bool] = dict.fromkeys(providers, True)
        self._problems: dict[str, set[str]] = {name: set() for name in providers}
        #: Called with (provider name, probe succeeded) after every probe.
        self.probe_listeners: list[Callable[[str, bool], None]] = []
        self._started = False
        self._task: asyncio.Task[None] | None = None

    async def start(self, probe_interval: float, services: Sequence[str] = (SERVICE_NAME,)) -> None:
        """`services`: the API services served, SERVING from now until shutdown."""
        for service in ("", *services):
            self.servicer.put(service, _SERVING)
        self._started = True
        for name in self.providers:
            self._publish(name)
        if probe_interval > 0:
            self._task = asyncio.create_task(self._probe_forever(probe_interval), name="health-probe")

    def replace_providers(self, providers: dict[str, Provider]) -> None:
        """The providers of a reloaded configuration: a new one starts SERVING (its probe
        follows), one kept keeps its state, one gone loses its entry."""
        for name in set(self.providers) - set(providers):
            self.provider_ok.pop(name, None)
            self._problems.pop(name, None)
            self.servicer.remove(PROVIDER_PREFIX + name)
        self.providers = providers
        for name in providers:
            self.provider_ok.setdefault(name, True)
            self._problems.setdefault(name, set())
            if self._started:
                self._publish(name)

    def problems(self, name: str) -> set[str]:
        """What holds the provider down now (empty: SERVING)."""
        return set(self._problems.get(name, ()))

    def mark(self, name: str, problem: str, present: bool) -> None:
        """Record that `problem` ("probe", "breaker", "cooldown") holds `name` down or not."""
        problems = self._problems.setdefault(name, set())
        if present:
            problems.add(problem)
        else:
            problems.discard(problem)
        ok = not problems
        if self.provider_ok.get(name) != ok:
            log.warning("provider %s is now %s%s", name, "SERVING" if ok else "NOT_SERVING",
                        "" if ok else f" ({', '.join(sorted(problems))})")
        self.provider_ok[name] = ok
        # A call still running on a provider that a reload removed leaves no entry behind.
        if self._started and name in self.providers:
            self._publish(name)

    def _publish(self, name: str) -> None:
        self.servicer.put(PROVIDER_PREFIX + name, _SERVING if self.provider_ok.get(name, True) else _NOT_SERVING)

    async def set_provider(self, name: str, ok: bool) -> None:
        """The outcome of a probe."""
        self.mark(name, "probe", not ok)
        for listener in self.probe_listeners:
            listener(name, ok)

    async def probe_once(self) -> None:
        names = list(self.providers)
        results = await asyncio.gather(*(self._probe(self.providers[n]) for n in names))
        for name, ok in zip(names, results, strict=True):
            await self.set_provider(name, ok)

    async def _probe(self, provider: Provider) -> bool:
        try:
            return await asyncio.wait_for(provider.health_check(), self.probe_timeout)
        except Exception as exc:  # a failing probe is a NOT_SERVING, never a crash
            log.info("health probe of %s failed: %s", provider.name, type(exc).__name__)
            return False

    async def _probe_forever(self, interval: float) -> None:
        while True:
            await self.probe_once()
            await asyncio.sleep(interval)

    async def shutdown(self) -> None:
        """Every entry NOT_SERVING, for good: the process is going away."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.servicer.close()
