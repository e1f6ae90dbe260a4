"""Feeds the standard grpc.health.v1 service.

`""` and `portico.v1.LLMService` follow the process: SERVING from start-up until
shutdown, whatever the providers do, so one provider's outage does not pull every
replica out of its load balancer. `portico.provider.<name>` follows each provider's
periodic probe. At shutdown every entry turns NOT_SERVING and every `Watch` stream ends
right after saying so: an idle watcher must not hold the process for the whole grace
period the real calls get.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
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
        self._changed = asyncio.Condition()
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
            async with self._changed:
                while not self._closed and self._status.get(request.service, _UNKNOWN) == last:
                    await self._changed.wait()
                status, closed = self._status.get(request.service, _UNKNOWN), self._closed
            if status != last:
                await context.write(health_pb2.HealthCheckResponse(status=status))
                last = status
            if closed:
                return

    async def set(self, service: str, status: int) -> None:
        async with self._changed:
            if not self._closed:
                self._status[service] = status
                self._changed.notify_all()

    async def close(self) -> None:
        """Every entry NOT_SERVING for good; each Watch sends that, then ends."""
        async with self._changed:
            self._closed = True
            self._status = dict.fromkeys(self._status, _NOT_SERVING)
            self._changed.notify_all()


class HealthReporter:
    def __init__(self, providers: dict[str, Provider], probe_timeout: float = 5.0) -> None:
        self.servicer = HealthServicer()
        self.providers = providers
        self.probe_timeout = probe_timeout
        # Providers start out trusted; the first probe runs right after start-up.
        self.provider_ok: dict[str, bool] = dict.fromkeys(providers, True)
        self._task: asyncio.Task[None] | None = None

    async def start(self, probe_interval: float) -> None:
        for service in ("", SERVICE_NAME):
            await self.servicer.set(service, _SERVING)
        for name in self.providers:
            await self.servicer.set(PROVIDER_PREFIX + name, _SERVING)
        if probe_interval > 0:
            self._task = asyncio.create_task(self._probe_forever(probe_interval), name="health-probe")

    async def set_provider(self, name: str, ok: bool) -> None:
        if self.provider_ok.get(name) != ok:
            log.warning("provider %s is now %s", name, "SERVING" if ok else "NOT_SERVING")
        self.provider_ok[name] = ok
        await self.servicer.set(PROVIDER_PREFIX + name, _SERVING if ok else _NOT_SERVING)

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
