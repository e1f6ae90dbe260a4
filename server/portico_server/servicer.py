"""The LLMService servicer: converts, asks the router for a plan, hands it to the
dispatcher (retries, breakers, fallback: resilience/), converts back.

It holds no provider logic. Failures leave through `fail`, which uses the one error
table in status.py; anything unexpected becomes INTERNAL without leaking details. Every
answer and every error carries the call's request id in the `x-request-id` trailer, and
calls that reach a provider carry the attempt trace (resilience/trace.py).
Request size and item counts are checked before decoding, in intake.py. Admission
(`_admit`) refuses calls while shutting down, then sheds load (shedding.py) before the
request is checked or any upstream work starts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeAlias, TypeVar

import grpc
from portico.v1 import llm_service_pb2 as pb
from portico.v1 import llm_service_pb2_grpc

from . import convert, observe, offload, paging
from .auth import current_caller
from .call import CallContext
from .callers import CallerPolicies
from .capabilities import CapabilityResolver
from .config import LoadSettings
from .domain import EmbedRequest, EmbedResponse
from .errors import PorticoError, ShuttingDown
from .health import HealthReporter
from .providers.base import Provider
from .resilience.breaker import BreakerState
from .resilience.dispatcher import Dispatcher
from .resilience.limits import estimate_call_tokens, used_tokens
from .resilience.trace import TRAILER_BUDGET, Trace
from .router import Plan, Router
from .shedding import Kind, LoadShedder
from .status import internal_status, to_rpc_status

log = logging.getLogger("portico.servicer")

Req = TypeVar("Req")
Resp = TypeVar("Resp")
Servicer = TypeVar("Servicer")
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


async def fail(context: Context, exc: BaseException, method: str = "") -> None:
    """Abort a call refused before its request was decoded (intake.py)."""
    request_id = _request_id(context, None)
    record = observe.CallRecord(method or "unknown", None, request_id, None)
    try:
        await _fail(context, exc, "decoding", request_id, record=record)
    finally:
        record.end()


async def _fail(
    context: Context, exc: BaseException, rpc: str, request_id: str, trace: Trace | None = None,
    record: observe.CallRecord | None = None,
) -> None:
    if isinstance(exc, PorticoError):
        status = to_rpc_status(exc)
    else:
        log.error("unexpected error in %s (request %s): %s", rpc, request_id, type(exc).__name__, exc_info=exc)
        status = internal_status()
    if record is not None:
        record.failed(status.code, exc)
    # Aborting replaces the trailers set so far, so the request id goes in again.
    trailers = (*tuple(status.trailing_metadata or ()), (REQUEST_ID_KEY, request_id))
    if trace is not None:
        # Binary trailers travel base64-encoded: a third larger than their bytes.
        used = sum(len(k) + len(v) * 4 // 3 + 8 for k, v in trailers)
        trailers = (*trailers, *trace.metadata(TRAILER_BUDGET - used - len(status.details)))
    await context.abort_with_status(_Status(
        code=status.code, details=status.details, trailing_metadata=trailers))


def unary(
    handler: Callable[[Servicer, Req, Context, str, Trace], Awaitable[Resp]],
) -> Callable[[Servicer, Req, Context], Awaitable[Resp]]:
    """Run a unary handler with the call's request id and attempt trace, turning any
    exception into a status with details. VectorService's handlers use it too."""

    async def wrapper(self: Servicer, request: Req, context: Context) -> Resp:
        request_id = _begin(context, request)
        trace = Trace.begin()
        record = observe.CallRecord(handler.__name__, request, request_id, trace)
        try:
            response = await handler(self, request, context, request_id, trace)
            record.answered(response)
        except grpc.aio.AbortError:
            record.aborted(context)
            raise
        except asyncio.CancelledError:
            record.cancelled(context)
            raise
        except Exception as exc:
            await _fail(context, exc, handler.__name__, request_id, trace, record)
            raise  # not reached: abort raises
        finally:
            record.end()
        if trace.active:
            context.set_trailing_metadata(((REQUEST_ID_KEY, request_id), *trace.metadata()))
        return response

    wrapper.__name__ = handler.__name__
    return wrapper


class LLMServicer(llm_service_pb2_grpc.LLMServiceServicer):
    def __init__(
        self,
        router: Router,
        capabilities: CapabilityResolver,
        health: HealthReporter,
        dispatcher: Dispatcher | None = None,
        callers: CallerPolicies | None = None,
        load: LoadShedder | None = None,
    ) -> None:
        self.router = router
        self.capabilities = capabilities
        self.health = health
        self.dispatcher = dispatcher or Dispatcher(health)
        #: What each caller key may use, how fast and how much (auth.py says who calls).
        self.callers = callers
        self.load = load or LoadShedder(LoadSettings())
        self.shutting_down = False

    def _admit(self, request: Any, context: Context, kind: Kind | None = Kind.CALL) -> str:
        """Checks before any work, in order; returns the caller's name ("" when the gateway
        is open), which the auth interceptor established before the request was decoded.
        `kind`: what the call counts against for load shedding (None: nothing, for calls
        answered from memory)."""
        if self.shutting_down:
            raise ShuttingDown("the gateway is shutting down; retry on another replica")
        if kind is not None:
            # The slot is held until the RPC is over, whichever way it ends.
            slot = self.load.admit(kind, convert.priority(request))
            context.add_done_callback(lambda _: slot.release())
        convert.check_names(request)
        return current_caller()

    def admit(self, request: Any, context: Context) -> str:
        """`_admit` for VectorService calls: the same shutdown check and load shedding."""
        return self._admit(request, context)

    def _permit(self, caller: str, plan: Plan, model: str) -> None:
        if caller and self.callers is not None:
            self.callers.permit(caller, plan, model)

    def _spend(self, call: CallContext, tokens: int) -> Any:
        """The caller's rate limits and budget, held for the block (`async with`)."""
        if call.caller and self.callers is not None:
            return self.callers.admit(call.caller, call, tokens)
        return _NO_LIMITS

    @unary
    async def Chat(
        self, request: pb.ChatRequest, context: Context, request_id: str, trace: Trace
    ) -> pb.CompletionResponse:
        trace.active = True
        caller = self._admit(request, context)
        call = observe.bound(convert.call_context(request, context.time_remaining(), request_id, caller))
        chat = await offload.run(convert.chat_request, request, "")
        tokens = estimate_call_tokens(chat)
        plan = self.router.plan(request.provider, request.model, call=call, estimated_tokens=tokens)
        self._permit(caller, plan, request.model)
        async with self._spend(call, tokens) as spend:
            result = await self.dispatcher.chat(plan, chat, call, trace)
            spend.settle(used_tokens(result.usage))
        return convert.completion(result, result.provider)

    async def StreamChat(  # type: ignore[override]  # writes through context, returns nothing
        self, request: pb.ChatRequest, context: Context
    ) -> None:
        # Written with context.write() rather than as a generator: when the caller cancels
        # or its deadline passes, this coroutine is cancelled and `aclosing` closes the
        # provider's stream (and its upstream HTTP response) right away.
        request_id = _begin(context, request)
        trace = Trace.begin()
        record = observe.CallRecord("StreamChat", request, request_id, trace)
        written = False
        trace.active = True
        try:
            caller = self._admit(request, context, Kind.STREAM)
            call = convert.call_context(request, context.time_remaining(), request_id, caller)
            record.call = call
            chat = await offload.run(convert.chat_request, request, "")
            tokens = estimate_call_tokens(chat)
            plan = self.router.plan(request.provider, request.model, call=call, estimated_tokens=tokens)
            self._permit(caller, plan, request.model)
            write, encode = context.write, convert.chunk
            async with (self._spend(call, tokens) as spend,
                        contextlib.aclosing(self.dispatcher.stream(plan, chat, call, trace)) as chunks):
                async for chunk in chunks:
                    if chunk.is_final:
                        spend.settle(used_tokens(chunk.usage))
                    await write(encode(chunk))  # deltas arrive encoded; intake.py passes bytes through
                    record.chunk(chunk)
                    written = True
        except grpc.aio.AbortError:
            record.aborted(context)
            raise
        except asyncio.CancelledError:
            record.cancelled(context)
            raise
        except Exception as exc:
            if written and isinstance(exc, PorticoError):
                exc.retry_safe = False  # the caller already has part of an answer
            await _fail(context, exc, "StreamChat", request_id, trace, record)
        else:
            context.set_trailing_metadata(((REQUEST_ID_KEY, request_id), *trace.metadata()))
        finally:
            record.end()

    @unary
    async def Embed(
        self, request: pb.EmbedRequest, context: Context, request_id: str, trace: Trace
    ) -> pb.EmbedResponse:
        trace.active = True
        caller = self._admit(request, context)
        call = observe.bound(convert.call_context(request, context.time_remaining(), request_id, caller))
        result = await self.embed(request.provider, request.model, convert.embed_request(request, ""), call, trace)
        return convert.embed_response(result, result.provider)

    async def embed(
        self, provider: str, model: str, request: EmbedRequest, call: CallContext, trace: Trace
    ) -> EmbedResponse:
        """The gateway's one embedding path (Embed, and VectorService's texts): routing,
        the caller's permissions and limits, then the dispatcher's retries, breakers and
        fallbacks."""
        plan = self.router.plan(provider, model, embedding=True, call=call)
        self._permit(call.caller, plan, model)
        async with self._spend(call, sum(len(text) for text in request.inputs) // 4 + 1) as spend:
            result = await self.dispatcher.embed(plan, request, call, trace)
            spend.settle(used_tokens(result.usage))
        return result

    @unary
    async def CountTokens(
        self, request: pb.CountTokensRequest, context: Context, request_id: str, trace: Trace
    ) -> pb.CountTokensResponse:
        trace.active = True
        caller = self._admit(request, context)
        call = observe.bound(convert.call_context(None, context.time_remaining(), request_id, caller))
        chat = await offload.run(convert.count_tokens_request, request, "")
        plan = self.router.plan(request.provider, request.model, call=call)
        self._permit(caller, plan, request.model)
        async with self._spend(call, 0) as spend:
            count, target = await self.dispatcher.count_tokens(plan, chat, call, trace)
            spend.settle(0)  # counting generates nothing
        return convert.token_count(count, target.provider.name)

    @unary
    async def GetCapabilities(
        self, request: pb.GetCapabilitiesRequest, context: Context, request_id: str, trace: Trace
    ) -> pb.GetCapabilitiesResponse:
        caller = self._admit(request, context)
        plan = self.router.plan(request.provider, request.model)
        self._permit(caller, plan, request.model)
        provider, model = plan[0].provider, plan[0].model
        caps = await self.capabilities.resolve(provider, model)
        return convert.capabilities(caps, provider.name)

    @unary
    async def ListProviders(
        self, request: pb.ListProvidersRequest, context: Context, request_id: str, trace: Trace
    ) -> pb.ListProvidersResponse:
        self._admit(request, context, None)
        size = paging.page_size(request.page_size)
        start = paging.decode_token(request.page_token)
        providers = list(self.router.providers.values())
        page = providers[start : start + size]
        more = start + size < len(providers)
        return pb.ListProvidersResponse(
            providers=[self._provider_info(provider) for provider in page],
            next_page_token=paging.encode_token(start + size) if more else "",
        )

    def _provider_info(self, provider: Provider) -> pb.ProviderInfo:
        live = self.dispatcher.view(provider.name)
        return pb.ProviderInfo(
            name=provider.name,
            kind=provider.configured_kind(),
            models=provider.models(),
            health=pb.PROVIDER_HEALTH_SERVING if self.health.provider_ok.get(provider.name)
            else pb.PROVIDER_HEALTH_NOT_SERVING,
            default_model=provider.default_model(),
            breaker_state=_BREAKER_STATES[live.breaker] if provider.settings.breaker.enabled
            else pb.BREAKER_STATE_UNSPECIFIED,
            breaker_open_seconds=live.breaker_open_seconds,
            cooldown_seconds=live.cooldown_seconds,
            latency_ms=(live.latency or 0.0) * 1000,
            ttft_ms=(live.ttft or 0.0) * 1000,
            error_rate=live.error_rate,
            in_flight=live.in_flight,
            queue_depth=live.queue_depth,
        )


class _NoLimits:
    """The `async with` of a call no caller limit or budget applies to."""

    async def __aenter__(self) -> _NoLimits:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    def settle(self, used_tokens: int | None) -> None:
        return None


_NO_LIMITS = _NoLimits()

_BREAKER_STATES = {
    BreakerState.CLOSED: pb.BREAKER_STATE_CLOSED,
    BreakerState.OPEN: pb.BREAKER_STATE_OPEN,
    BreakerState.HALF_OPEN: pb.BREAKER_STATE_HALF_OPEN,
}
