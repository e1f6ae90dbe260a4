"""The LLMService servicer: converts, asks the router, calls the provider, converts back.

It holds no provider logic. Failures leave through `fail`, which uses the one error
table in status.py; anything unexpected becomes INTERNAL without leaking details. Every
answer and every error carries the call's request id in the `x-request-id` trailer.
Request size and item counts are checked before decoding, in intake.py.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, TypeAlias, TypeVar

import grpc
from portico.v1 import llm_service_pb2 as pb
from portico.v1 import llm_service_pb2_grpc

from . import convert, offload, paging
from .call import CallContext
from .capabilities import CapabilityResolver
from .domain import ChatRequest
from .errors import PorticoError, ShuttingDown
from .health import HealthReporter
from .providers.base import Provider
from .resilience.limits import Limits, Ticket, estimate_call_tokens, used_tokens
from .router import Router, Target
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
        trailing_metadata=(*tuple(status.trailing_metadata or ()), (REQUEST_ID_KEY, request_id)),
    ))


def _unary(
    handler: Callable[[LLMServicer, Req, Context, str], Awaitable[Resp]],
) -> Callable[[LLMServicer, Req, Context], Awaitable[Resp]]:
    """Run a unary handler with the call's request id, turning any exception into a status
    with details."""

    async def wrapper(self: LLMServicer, request: Req, context: Context) -> Resp:
        request_id = _begin(context, request)
        try:
            return await handler(self, request, context, request_id)
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
        limits: Limits | None = None,
    ) -> None:
        self.router = router
        self.capabilities = capabilities
        self.health = health
        self.limits = limits or Limits()
        self.shutting_down = False

    def _rate_limit_slot(
        self, provider: Provider, model: str, chat: ChatRequest, call: CallContext
    ) -> AbstractAsyncContextManager[Ticket]:
        """The call's rate-limit slot, held around the provider call (a whole stream).
        Stands here until the resilience dispatcher takes the provider call over."""
        keys = self.limits.keys_for(Target(provider, model))
        # Estimated only when something is limited: no cost on an unlimited gateway.
        return self.limits.admit_all(keys, call, estimate_call_tokens(chat) if keys else 0)

    def _admit(self, request: Any) -> None:
        if self.shutting_down:
            raise ShuttingDown("the gateway is shutting down; retry on another replica")
        convert.check_names(request)

    @_unary
    async def Chat(self, request: pb.ChatRequest, context: Context, request_id: str) -> pb.CompletionResponse:
        self._admit(request)
        provider, model = self.router.route(request.provider, request.model)
        chat = await offload.run(convert.chat_request, request, model)
        provider.check_passthrough(chat.passthrough)
        call = convert.call_context(request, context.time_remaining(), request_id)
        async with self._rate_limit_slot(provider, model, chat, call) as ticket:
            result = await provider.chat(chat, call)
            ticket.settle(used_tokens(result.usage))
        return convert.completion(result, provider.name)

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
            async with (
                self._rate_limit_slot(provider, model, chat, call) as ticket,
                contextlib.aclosing(provider.stream(chat, call)) as chunks,
            ):
                async for chunk in chunks:
                    if first or chunk.is_final:
                        chunk.model = chunk.model or model
                        chunk.provider = provider.name
                        first = False
                        if chunk.is_final:
                            ticket.settle(used_tokens(chunk.usage))
                    await write(encode(chunk))  # deltas arrive encoded; intake.py passes bytes through
                    written = True
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
