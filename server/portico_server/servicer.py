"""The LLMService servicer: converts, asks the router, calls the provider, converts back.

It holds no provider logic. Failures leave through `fail`, which uses the one error
table in status.py; anything unexpected becomes INTERNAL without leaking details.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import grpc
from portico.v1 import llm_service_pb2 as pb
from portico.v1 import llm_service_pb2_grpc

from . import convert, offload
from .capabilities import CapabilityResolver
from .errors import PorticoError, ShuttingDown
from .health import HealthReporter
from .router import Router
from .status import internal_status, to_rpc_status

log = logging.getLogger("portico.servicer")

Req = TypeVar("Req")
Resp = TypeVar("Resp")


async def fail(context: grpc.aio.ServicerContext[Any, Any], exc: BaseException) -> None:
    if isinstance(exc, PorticoError):
        await context.abort_with_status(to_rpc_status(exc))
    log.error("unexpected error in %s", type(exc).__name__, exc_info=exc)
    await context.abort_with_status(internal_status())


def _unary(
    handler: Callable[[LLMServicer, Req, grpc.aio.ServicerContext[Any, Any]], Awaitable[Resp]],
) -> Callable[[LLMServicer, Req, grpc.aio.ServicerContext[Any, Any]], Awaitable[Resp]]:
    """Run a unary handler, turning any exception into a status with details."""

    async def wrapper(self: LLMServicer, request: Req, context: grpc.aio.ServicerContext[Any, Any]) -> Resp:
        try:
            return await handler(self, request, context)
        except grpc.aio.AbortError:
            raise
        except Exception as exc:
            await fail(context, exc)
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
        # Request size and item counts are checked before decoding, in intake.py.
        self.router = router
        self.capabilities = capabilities
        self.health = health
        self.shutting_down = False

    def _admit(self, request: Any) -> None:
        if self.shutting_down:
            raise ShuttingDown("the gateway is shutting down; retry on another replica")

    @_unary
    async def Chat(self, request: pb.ChatRequest, context: grpc.aio.ServicerContext[Any, Any]) -> pb.CompletionResponse:
        self._admit(request)
        provider, model = self.router.route(request.provider, request.model)
        chat = await offload.run(convert.chat_request, request, model)
        call = convert.call_context(request, context.time_remaining())
        result = await provider.chat(chat, call)
        return convert.completion(result, provider.name)

    async def StreamChat(  # type: ignore[override]  # writes through context, returns nothing
        self, request: pb.ChatRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> None:
        # Written with context.write() rather than as a generator: when the caller cancels
        # or its deadline passes, this coroutine is cancelled and `aclosing` closes the
        # provider's stream (and its upstream HTTP response) right away.
        try:
            self._admit(request)
            provider, model = self.router.route(request.provider, request.model)
            chat = await offload.run(convert.chat_request, request, model)
            call = convert.call_context(request, context.time_remaining())
            first = True
            write, encode = context.write, convert.chunk
            async with contextlib.aclosing(provider.stream(chat, call)) as chunks:
                async for chunk in chunks:
                    if first or chunk.is_final:
                        chunk.model = chunk.model or model
                        chunk.provider = provider.name
                        first = False
                    await write(encode(chunk))  # deltas arrive encoded; intake.py passes bytes through
        except grpc.aio.AbortError:
            raise
        except Exception as exc:
            await fail(context, exc)

    @_unary
    async def Embed(self, request: pb.EmbedRequest, context: grpc.aio.ServicerContext[Any, Any]) -> pb.EmbedResponse:
        self._admit(request)
        provider, model = self.router.route(request.provider, request.model, embedding=True)
        embed = convert.embed_request(request, model)
        result = await provider.embed(embed, convert.call_context(request, context.time_remaining()))
        return convert.embed_response(result, provider.name)

    @_unary
    async def CountTokens(
        self, request: pb.CountTokensRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.CountTokensResponse:
        self._admit(request)
        provider, model = self.router.route(request.provider, request.model)
        chat = await offload.run(convert.count_tokens_request, request, model)
        call = convert.call_context(None, context.time_remaining())
        return convert.token_count(await provider.count_tokens(chat, call), provider.name)

    @_unary
    async def GetCapabilities(
        self, request: pb.GetCapabilitiesRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.GetCapabilitiesResponse:
        self._admit(request)
        provider, model = self.router.route(request.provider, request.model)
        caps = await self.capabilities.resolve(provider, model)
        return convert.capabilities(caps, provider.name)

    @_unary
    async def ListProviders(
        self, request: pb.ListProvidersRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.ListProvidersResponse:
        self._admit(request)
        return pb.ListProvidersResponse(providers=[
            pb.ProviderInfo(
                name=name,
                kind=provider.settings.kind,
                models=provider.models(),
                health=pb.PROVIDER_HEALTH_SERVING if self.health.provider_ok.get(name)
                else pb.PROVIDER_HEALTH_NOT_SERVING,
                default_model=provider.default_model(),
            )
            for name, provider in self.router.providers.items()
        ])
