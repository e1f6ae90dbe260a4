"""The LLMService servicer: converts, asks the router, calls the provider, converts back.

It holds no provider logic. Failures leave through `fail`, which uses the one error
table in status.py; anything unexpected becomes INTERNAL without leaking details. Every
answer and every error carries the call's request id in the `x-request-id` trailer.
Request size and item counts are checked before decoding, in intake.py.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeAlias, TypeVar

import grpc
from portico.v1 import llm_service_pb2 as pb
from portico.v1 import llm_service_pb2_grpc

from . import convert, offload, paging, scripted_trace
from .call import CallContext
from .capabilities import CapabilityResolver
from .domain import ChatRequest, CompletionResponse, StopReason
from .errors import PorticoError, ShuttingDown
from .health import HealthReporter
from .providers.base import estimate_tokens
from .resilience.balance import Stats
from .resilience.hedge import hedge_delays, hedged
from .router import Plan, Router, Target
from .status import internal_status, to_rpc_status

log = logging.getLogger("portico.servicer")

Req = TypeVar("Req")
Resp = TypeVar("Resp")
Context: TypeAlias = grpc.aio.ServicerContext[Any, Any]

#: The trailing metadata key that carries the call's request id (AIP-155).
REQUEST_ID_KEY = "x-request-id"


@dataclass(frozen=True, slots=True)
class _Status:
    """A `grpc.Status` (which abort_with_status reads attribute by attribute)."""

    code: grpc.StatusCode
    details: str
    trailing_metadata: tuple[tuple[str, str | bytes], ...]


def _begin(context: Context, request: Any) -> str:
    """The call's request id, already set in the trailers of a successful answer."""
    request_id = _request_id(context, request)
    context.set_trailing_metadata(((REQUEST_ID_KEY, request_id),))
    return request_id


def _end(context: Context, request_id: str) -> None:
    """Trailers of a successful answer: the request id and the attempt trace.
    (Today only `fake` replies script a trace: scripted_trace.py.)"""
    context.set_trailing_metadata(((REQUEST_ID_KEY, request_id), *scripted_trace.trailers()))


def _request_id(context: Context, request: Any) -> str:
    header = next((v for k, v in context.invocation_metadata() or () if k == REQUEST_ID_KEY), "")
    return convert.request_id(request, header if isinstance(header, str) else "")


async def fail(context: Context, exc: BaseException) -> None:
    """Abort a call refused before its request was decoded (intake.py)."""
    await _fail(context, exc, "decoding", _request_id(context, None))


async def _fail(context: Context, exc: BaseException, rpc: str, request_id: str) -> None:
    if isinstance(exc, PorticoError):
        status = to_rpc_status(exc)
    else:
        log.error("unexpected error in %s (request %s): %s", rpc, request_id, type(exc).__name__, exc_info=exc)
        status = internal_status()
    # Aborting replaces the trailers set so far, so the request id goes in again.
    await context.abort_with_status(_Status(
        code=status.code,
        details=status.details,
        trailing_metadata=(*tuple(status.trailing_metadata or ()), (REQUEST_ID_KEY, request_id),
                           *scripted_trace.trailers()),
    ))


def _unary(
    handler: Callable[[LLMServicer, Req, Context, str], Awaitable[Resp]],
) -> Callable[[LLMServicer, Req, Context], Awaitable[Resp]]:
    """Run a unary handler with the call's request id, turning any exception into a status
    with details."""

    async def wrapper(self: LLMServicer, request: Req, context: Context) -> Resp:
        request_id = _begin(context, request)
        try:
            response = await handler(self, request, context, request_id)
            _end(context, request_id)
            return response
        except grpc.aio.AbortError:
            raise
        except Exception as exc:
            await _fail(context, exc, handler.__name__, request_id)
            raise  # not reached: abort raises

    wrapper.__name__ = handler.__name__
    return wrapper


class LLMServicer(llm_service_pb2_grpc.LLMServiceServicer):
    def __init__(
        self,
        router: Router,
        capabilities: CapabilityResolver,
        health: HealthReporter,
    ) -> None:
        self.router = router
        self.capabilities = capabilities
        self.health = health
        self.shutting_down = False

    def _admit(self, request: Any) -> None:
        if self.shutting_down:
            raise ShuttingDown("the gateway is shutting down; retry on another replica")
        convert.check_names(request)

    @_unary
    async def Chat(self, request: pb.ChatRequest, context: Context, request_id: str) -> pb.CompletionResponse:
        self._admit(request)
        call = convert.call_context(request, context.time_remaining(), request_id)
        chat = await offload.run(convert.chat_request, request, "")
        plan = self.router.plan(request.provider, request.model, call=call,
                                estimated_tokens=estimate_tokens(chat) + (chat.max_tokens or 0))
        result, target = await _run_plan(plan, chat, call, self.router.stats)
        return convert.completion(result, target.provider.name)

    async def StreamChat(  # type: ignore[override]  # writes through context, returns nothing
        self, request: pb.ChatRequest, context: Context
    ) -> None:
        # Written with context.write() rather than as a generator: when the caller cancels
        # or its deadline passes, this coroutine is cancelled and `aclosing` closes the
        # provider's stream (and its upstream HTTP response) right away.
        request_id = _begin(context, request)
        written = False
        try:
            self._admit(request)
            provider, model = self.router.route(request.provider, request.model)
            chat = await offload.run(convert.chat_request, request, model)
            provider.check_passthrough(chat.passthrough)
            call = convert.call_context(request, context.time_remaining(), request_id)
            first = True
            write, encode = context.write, convert.chunk
            async with contextlib.aclosing(provider.stream(chat, call)) as chunks:
                async for chunk in chunks:
                    if first or chunk.is_final:
                        chunk.model = chunk.model or model
                        chunk.provider = provider.name
                        first = False
                    await write(encode(chunk))  # deltas arrive encoded; intake.py passes bytes through
                    written = True
            _end(context, request_id)
        except grpc.aio.AbortError:
            raise
        except Exception as exc:
            if written and isinstance(exc, PorticoError):
                exc.retry_safe = False  # the caller already has part of an answer
            await _fail(context, exc, "StreamChat", request_id)

    @_unary
    async def Embed(self, request: pb.EmbedRequest, context: Context, request_id: str) -> pb.EmbedResponse:
        self._admit(request)
        provider, model = self.router.route(request.provider, request.model, embedding=True)
        embed = convert.embed_request(request, model)
        result = await provider.embed(embed, convert.call_context(request, context.time_remaining(), request_id))
        return convert.embed_response(result, provider.name)

    @_unary
    async def CountTokens(
        self, request: pb.CountTokensRequest, context: Context, request_id: str
    ) -> pb.CountTokensResponse:
        self._admit(request)
        provider, model = self.router.route(request.provider, request.model)
        chat = await offload.run(convert.count_tokens_request, request, model)
        call = convert.call_context(None, context.time_remaining(), request_id)
        return convert.token_count(await provider.count_tokens(chat, call), provider.name)

    @_unary
    async def GetCapabilities(
        self, request: pb.GetCapabilitiesRequest, context: Context, request_id: str
    ) -> pb.GetCapabilitiesResponse:
        self._admit(request)
        provider, model = self.router.route(request.provider, request.model)
        caps = await self.capabilities.resolve(provider, model)
        return convert.capabilities(caps, provider.name)

    @_unary
    async def ListProviders(
        self, request: pb.ListProvidersRequest, context: Context, request_id: str
    ) -> pb.ListProvidersResponse:
        self._admit(request)
        size = paging.page_size(request.page_size)
        start = paging.decode_token(request.page_token)
        providers = list(self.router.providers.values())
        page = providers[start : start + size]
        more = start + size < len(providers)
        return pb.ListProvidersResponse(
            providers=[
                pb.ProviderInfo(
                    name=provider.name,
                    kind=provider.configured_kind(),
                    models=provider.models(),
                    health=pb.PROVIDER_HEALTH_SERVING if self.health.provider_ok.get(provider.name)
                    else pb.PROVIDER_HEALTH_NOT_SERVING,
                    default_model=provider.default_model(),
                )
                for provider in page
            ],
            next_page_token=paging.encode_token(start + size) if more else "",
        )


# --- Minimal plan runner: plain fallback over the plan (and hedging when the route asks
# for it), until the resilience dispatcher (retries, breakers, limits, attempt trace)
# takes its place. Keep everything of it here. ---
_REFUSALS = (StopReason.CONTENT_FILTER, StopReason.REFUSAL)


async def _run_plan(
    plan: Plan, chat: ChatRequest, call: CallContext, stats: Stats
) -> tuple[CompletionResponse, Target]:
    async def attempt(target: Target) -> CompletionResponse:
        request = dataclasses.replace(chat, model=target.model)
        target.provider.check_passthrough(request.passthrough)
        return await target.provider.chat(request, call)

    if plan.hedge is not None and len(plan) > 1:
        calls = [functools.partial(attempt, t) for t in plan]
        delay_for = hedge_delays(plan.hedge, [t.name for t in plan], stats)
        result, index = await hedged(calls, delay_for, give_up=lambda exc: plan.fallback_for(exc) is None)
        return result, plan[index]
    target, tried = plan[0], list[Target]()
    while True:
        try:
            result = await attempt(target)
        except PorticoError as exc:
            tried.append(target)
            following = plan.fallback_for(exc, tried)
            if following is None:
                raise
            target = following
            continue
        tried.append(target)
        following = plan.fallback_for_refusal(tried) if result.stop_reason in _REFUSALS else None
        if following is None:
            return result, target
        target = following
