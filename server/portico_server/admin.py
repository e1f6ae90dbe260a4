"""The AdminService servicer: converts messages and delegates to the gateway, which owns
the state (breakers in resilience/breaker.py, route pins on the Router, reloads in app.py).
Failures leave through the same error table as LLMService's."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeAlias

import grpc
from google.protobuf.timestamp_pb2 import Timestamp
from portico.v1 import admin_service_pb2 as pb
from portico.v1 import admin_service_pb2_grpc, llm_service_pb2

from .admin_history import AdminEvent, EventKind
from .errors import InvalidRequest, PorticoError
from .resilience.breaker import BreakerState, CircuitBreaker
from .status import internal_status, to_rpc_status

if TYPE_CHECKING:
    from .app import Gateway

Context: TypeAlias = grpc.aio.ServicerContext[Any, Any]

_STATES = {
    BreakerState.CLOSED: llm_service_pb2.BREAKER_STATE_CLOSED,
    BreakerState.OPEN: llm_service_pb2.BREAKER_STATE_OPEN,
    BreakerState.HALF_OPEN: llm_service_pb2.BREAKER_STATE_HALF_OPEN,
}
_KINDS = {
    EventKind.SWITCH: pb.ADMIN_EVENT_KIND_SWITCH,
    EventKind.RELOAD: pb.ADMIN_EVENT_KIND_RELOAD,
    EventKind.BREAKER_RESET: pb.ADMIN_EVENT_KIND_BREAKER_RESET,
}


class AdminServicer(admin_service_pb2_grpc.AdminServiceServicer):
    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway

    async def ListBreakers(self, request: pb.ListBreakersRequest, context: Context) -> pb.ListBreakersResponse:
        rows: list[pb.BreakerInfo] = []
        for provider in self.gateway.providers.values():
            if not provider.settings.breaker.enabled:
                continue
            breakers = self.gateway.dispatcher.breakers.of_provider(provider.name)
            rows += [breaker_info(b) for b in breakers] or [pb.BreakerInfo(
                provider=provider.name, key=provider.name, state=llm_service_pb2.BREAKER_STATE_CLOSED)]
        return pb.ListBreakersResponse(breakers=rows)

    async def ResetBreaker(self, request: pb.ResetBreakerRequest, context: Context) -> pb.ResetBreakerResponse:
        try:
            if not request.provider:
                raise InvalidRequest([("provider", "is required")])
            breakers = self.gateway.reset_breaker(request.provider, request.reason)
        except PorticoError as exc:
            await _abort(context, exc)
        return pb.ResetBreakerResponse(breakers=[breaker_info(b) for b in breakers])

    async def SwitchRoute(self, request: pb.SwitchRouteRequest, context: Context) -> pb.SwitchRouteResponse:
        try:
            if not request.route:
                raise InvalidRequest([("route", "is required: a model group, an alias or \"default\"")])
            previous = self.gateway.switch_route(request.route, request.target, request.reason)
        except PorticoError as exc:
            await _abort(context, exc)
        return pb.SwitchRouteResponse(route=request.route, target=request.target, previous_target=previous)

    async def ReloadConfig(self, request: pb.ReloadConfigRequest, context: Context) -> pb.ReloadConfigResponse:
        try:
            providers = await self.gateway.reload(request.reason)
        except PorticoError as exc:
            await _abort(context, exc)
        return pb.ReloadConfigResponse(providers=providers, config_path=self.gateway.config_path or "")

    async def ListAdminEvents(
        self, request: pb.ListAdminEventsRequest, context: Context
    ) -> pb.ListAdminEventsResponse:
        if request.page_size < 0:
            await _abort(context, InvalidRequest([("page_size", "must not be negative")]))
        events = self.gateway.history.newest_first(request.page_size)
        return pb.ListAdminEventsResponse(events=[_event(e) for e in events])


def breaker_info(breaker: CircuitBreaker) -> pb.BreakerInfo:
    info = pb.BreakerInfo(
        provider=breaker.provider,
        key=breaker.key,
        state=_STATES[breaker.state],
        consecutive_failures=breaker.consecutive_failures,
        times_opened=breaker.times_opened,
        successes=breaker.successes,
        failures=breaker.failures,
        rejections=breaker.rejections,
    )
    opened = breaker.opened_at_wall()
    if opened is not None:
        info.opened_at.CopyFrom(_timestamp(opened))
        if breaker.state is BreakerState.OPEN:
            info.next_trial_at.CopyFrom(_timestamp(opened + breaker.settings.recovery))
    return info


def _event(event: AdminEvent) -> pb.AdminEvent:
    return pb.AdminEvent(time=_timestamp(event.time), kind=_KINDS[event.kind], subject=event.subject,
                         reason=event.reason, ok=event.ok, detail=event.detail)


def _timestamp(seconds: float) -> Timestamp:
    stamp = Timestamp()
    stamp.FromNanoseconds(int(seconds * 1e9))
    return stamp


async def _abort(context: Context, exc: BaseException) -> None:
    status = to_rpc_status(exc) if isinstance(exc, PorticoError) else internal_status()
    await context.abort(status.code, status.details, status.trailing_metadata)
