"""Runs a call over the router's plan: for each target in turn, rate limits → circuit
breaker → retries → provider, and on to the next target when that may help.

A target is left for the next one after a retryable failure (once its retries are
spent), an open breaker, a quota cooldown or a full queue. Other failures (an invalid
request, the caller's deadline) end the call at once. Every attempt goes into the call's
`Trace`; the figures in `LiveStats`.

A stream is retried and failed over only while nothing has reached the caller. After
its first chunk a broken stream ends with the upstream's error, unless the call opted in
to `stream_failover`: RESTART sends a marker chunk and then the next target's whole
answer; CONTINUE hands the text so far to the next target as the start of the assistant
turn and goes on after the marker.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Protocol, TypeVar

from .. import errors
from ..call import CallContext
from ..domain import (
    ChatRequest,
    CompletionResponse,
    EmbedRequest,
    EmbedResponse,
    FailoverMarker,
    Message,
    Role,
    StreamChunk,
    StreamFailover,
    TokenCount,
    Usage,
)
from ..health import HealthReporter
from ..providers.base import estimate_tokens
from ..router import Target
from .breaker import Breakers, BreakerState, CircuitBreaker, is_upstream_failure
from .retry import with_retries
from .stats import LiveStats
from .trace import Trace

log = logging.getLogger("portico.dispatcher")

T = TypeVar("T")


class Ticket(Protocol):
    def settle(self, used_tokens: int) -> None: ...


class Limiter(Protocol):
    """What the dispatcher needs of the rate limiter (resilience/limits.py)."""

    def keys_for(self, target: Target) -> list[str]: ...

    def admit(self, target_key: str, call: CallContext, estimated_tokens: int) -> AbstractAsyncContextManager[Ticket]:
        ...


class _FreeTicket:
    def settle(self, used_tokens: int) -> None:
        pass


class NoLimits:
    """The limiter when none is configured: every call is admitted at once."""

    def keys_for(self, target: Target) -> list[str]:
        return []

    def admit(self, target_key: str, call: CallContext, estimated_tokens: int) -> AbstractAsyncContextManager[Ticket]:
        return contextlib.nullcontext(_FreeTicket())


@dataclass(frozen=True, slots=True)
class ProviderView:
    """What `ListProviders` shows of a provider's live state."""

    breaker: BreakerState
    breaker_open_seconds: float
    cooldown_seconds: float
    latency: float | None
    ttft: float | None
    error_rate: float
    in_flight: int
    queue_depth: int


def may_fall_back(exc: BaseException) -> bool:
    """Whether another target may succeed where this one failed."""
    if not isinstance(exc, errors.PorticoError):
        return False
    if isinstance(exc, errors.UpstreamDeadlineExceeded | errors.DeadlineExceeded):
        return False  # the caller's own deadline: no time is left for anyone
    return exc.retryable or isinstance(exc, errors.RateLimited | errors.UpstreamQuotaExceeded)


def _used_tokens(usage: Usage | None) -> int:
    if usage is None:
        return 0
    return usage.total_tokens or usage.prompt_tokens + usage.completion_tokens


def _check_deadline(call: CallContext, target: Target) -> None:
    if call.remaining() == 0.0:
        raise errors.DeadlineExceeded(
            f"the call's deadline passed before {target.name} could be tried", provider=target.provider.name)


class _Upstream:
    """The bookkeeping of one upstream call: breaker, stats and trace, settled once."""

    def __init__(self, dispatcher: Dispatcher, target: Target, trace: Trace, wait: float) -> None:
        self.d, self.target, self.trace, self.wait = dispatcher, target, trace, wait
        self.names = (target.name, target.provider.name)
        self.breaker: CircuitBreaker | None = dispatcher.breakers.get(
            target.provider.name, target.model, target.provider.settings.breaker)
        self.trial = False
        self.started = time.monotonic()

    def begin(self) -> None:
        """Raises CircuitOpen (recorded as a skipped attempt) when the breaker refuses."""
        try:
            self.trial = self.breaker.allow() if self.breaker is not None else False
        except errors.CircuitOpen as exc:
            self.trace.failed(self.target.provider.name, self.target.model, exc, 0.0, self.wait, skipped=True)
            raise
        self.started = time.monotonic()
        self.d.stats.started(*self.names)

    def first_token(self) -> None:
        self.d.stats.first_token(self.names, time.monotonic() - self.started)

    def succeeded(self) -> None:
        elapsed = time.monotonic() - self.started
        self.d.stats.ended(*self.names)
        self.d.stats.succeeded(self.names, elapsed)
        if self.breaker is not None:
            self.breaker.succeeded(self.trial)
        self.trace.ok(self.target.provider.name, self.target.model, elapsed, self.wait)

    def failed(self, exc: BaseException) -> None:
        elapsed = time.monotonic() - self.started
        self.d.stats.ended(*self.names)
        upstream_fault = is_upstream_failure(exc)
        if upstream_fault:
            self.d.stats.failed(self.names)
        if self.breaker is not None:
            if upstream_fault:
                self.breaker.failed(self.trial)
            else:
                self.breaker.released(self.trial)
        if isinstance(exc, errors.UpstreamQuotaExceeded):
            self.d.start_cooldown(self.target)
        self.trace.failed(self.target.provider.name, self.target.model, exc, elapsed, self.wait)


class Dispatcher:
    def __init__(
        self,
        health: HealthReporter,
        *,
        stats: LiveStats | None = None,
        limits: Limiter | None = None,
    ) -> None:
        self.health = health
        self.stats = stats or LiveStats()
        self.limits: Limiter = limits or NoLimits()
        self.breakers = Breakers(lambda provider, down: health.mark(provider, "breaker", down))
        health.probe_listeners.append(self.breakers.probe_result)
        self._cooldown_until: dict[str, float] = {}
        self._cooldown_timers: dict[str, asyncio.TimerHandle] = {}

    def close(self) -> None:
        """Cancel pending timers (breaker recovery, cooldown ends): the gateway is stopping."""
        self.breakers.close()
        for timer in self._cooldown_timers.values():
            timer.cancel()
        self._cooldown_timers.clear()

    # -- quota cooldowns ----------------------------------------------------------------

    def cooldown_left(self, provider: str) -> float:
        return max(0.0, self._cooldown_until.get(provider, 0.0) - time.monotonic())

    def start_cooldown(self, target: Target) -> None:
        """The provider's quota or billing is exhausted: skip it for `quota_cooldown` s."""
        name, seconds = target.provider.name, target.provider.settings.quota_cooldown
        if seconds <= 0:
            return
        log.warning("provider %s: quota exhausted, cooling down for %.0f s", name, seconds)
        self._cooldown_until[name] = time.monotonic() + seconds
        self.health.mark(name, "cooldown", True)
        timer = self._cooldown_timers.pop(name, None)
        if timer is not None:
            timer.cancel()
        self._cooldown_timers[name] = asyncio.get_running_loop().call_later(seconds, self.end_cooldown, name)

    def end_cooldown(self, provider: str) -> None:
        self._cooldown_until.pop(provider, None)
        timer = self._cooldown_timers.pop(provider, None)
        if timer is not None:
            timer.cancel()
        self.health.mark(provider, "cooldown", False)

    def _check_cooldown(self, target: Target, trace: Trace) -> None:
        left = self.cooldown_left(target.provider.name)
        if left > 0:
            exc = errors.UpstreamQuotaExceeded(
                f"provider {target.provider.name!r} said its quota is exhausted; "
                f"it is skipped for another {left:.0f} s",
                provider=target.provider.name, metadata={"cooldown_seconds": f"{left:.0f}"})
            trace.failed(target.provider.name, target.model, exc, 0.0, 0.0, skipped=True)
            raise exc

    # -- what ListProviders shows ---------------------------------------------------------

    def view(self, provider: str) -> ProviderView:
        breakers = self.breakers.of_provider(provider)
        depth = getattr(self.limits, "queue_depth", None)
        return ProviderView(
            breaker=self.breakers.state(provider),
            breaker_open_seconds=max((b.time_left_open() for b in breakers), default=0.0),
            cooldown_seconds=self.cooldown_left(provider),
            latency=self.stats.latency_ewma(provider),
            ttft=self.stats.ttft_ewma(provider),
            error_rate=self.stats.error_rate(provider),
            in_flight=self.stats.in_flight(provider),
            queue_depth=int(depth(provider)) if callable(depth) else 0,
        )

    # -- unary calls ----------------------------------------------------------------------

    async def chat(self, targets: list[Target], request: ChatRequest, call: CallContext,
                   trace: Trace) -> CompletionResponse:
        tokens = estimate_tokens(request) + (request.max_tokens or 0)

        async def send(target: Target) -> CompletionResponse:
            target.provider.check_passthrough(request.passthrough)
            return await target.provider.chat(dataclasses.replace(request, model=target.model), call)

        result, target = await self._unary(targets, call, trace, send, tokens, lambda r: _used_tokens(r.usage))
        result.model = result.model or target.model
        result.provider = target.provider.name
        return result

    async def embed(self, targets: list[Target], request: EmbedRequest, call: CallContext,
                    trace: Trace) -> EmbedResponse:
        tokens = sum(len(text) for text in request.inputs) // 4 + 1

        async def send(target: Target) -> EmbedResponse:
            return await target.provider.embed(dataclasses.replace(request, model=target.model), call)

        result, target = await self._unary(targets, call, trace, send, tokens, lambda r: _used_tokens(r.usage))
        result.model = result.model or target.model
        result.provider = target.provider.name
        return result

    async def count_tokens(self, targets: list[Target], request: ChatRequest, call: CallContext,
                           trace: Trace) -> tuple[TokenCount, Target]:
        async def send(target: Target) -> TokenCount:
            return await target.provider.count_tokens(dataclasses.replace(request, model=target.model), call)

        return await self._unary(targets, call, trace, send, 0, lambda r: 0)

    async def _unary(
        self,
        targets: list[Target],
        call: CallContext,
        trace: Trace,
        send: Callable[[Target], Awaitable[T]],
        tokens: int,
        used: Callable[[T], int],
    ) -> tuple[T, Target]:
        trace.active = True
        for index, target in enumerate(targets):
            last = index == len(targets) - 1
            try:
                return await self._on_target(target, call, trace, send, tokens, used, last), target
            except errors.PorticoError as exc:
                if last or not may_fall_back(exc):
                    raise
                log.info("%s failed (%s); trying %s", target.name, exc.reason, targets[index + 1].name)
        raise errors.UnknownModel("the route has no target")

    async def _on_target(
        self,
        target: Target,
        call: CallContext,
        trace: Trace,
        send: Callable[[Target], Awaitable[T]],
        tokens: int,
        used: Callable[[T], int],
        last: bool,
    ) -> T:
        self._skip_if_down(target, trace, last)
        async with self._admitted(target, call, tokens, trace) as (tickets, queued):
            waits = [queued]  # the queue wait goes with the first attempt

            async def attempt(wait: float) -> T:
                _check_deadline(call, target)
                upstream = _Upstream(self, target, trace, (wait + waits.pop()) if waits else wait)
                upstream.begin()
                try:
                    result = await send(target)
                except BaseException as exc:
                    upstream.failed(exc)
                    raise
                upstream.succeeded()
                return result

            result = await with_retries(attempt, target.provider.settings.retry, call)
            for ticket in tickets:
                ticket.settle(used(result))
            return result

    def _skip_if_down(self, target: Target, trace: Trace, last: bool) -> None:
        """Refuse a target in quota cooldown; pass over one whose probe fails when
        another target is left to try."""
        self._check_cooldown(target, trace)
        if not last and "probe" in self.health.problems(target.provider.name):
            exc = errors.UpstreamUnavailable(
                f"provider {target.provider.name!r} fails its health probe", provider=target.provider.name,
                retry_safe=True)
            trace.failed(target.provider.name, target.model, exc, 0.0, 0.0, skipped=True)
            raise exc

    @contextlib.asynccontextmanager
    async def _admitted(
        self, target: Target, call: CallContext, tokens: int, trace: Trace
    ) -> AsyncIterator[tuple[list[Ticket], float]]:
        """Pass every rate limit of the target, in order; yields the tickets and the
        seconds spent queueing. A refusal is a skipped attempt in the trace."""
        started = time.monotonic()
        async with contextlib.AsyncExitStack() as stack:
            tickets = []
            try:
                for key in self.limits.keys_for(target):
                    tickets.append(await stack.enter_async_context(self.limits.admit(key, call, tokens)))
            except errors.PorticoError as exc:
                trace.failed(target.provider.name, target.model, exc, 0.0, time.monotonic() - started, skipped=True)
                raise
            yield tickets, time.monotonic() - started

    # -- streams --------------------------------------------------------------------------

    async def stream(self, targets: list[Target], request: ChatRequest, call: CallContext,
                     trace: Trace) -> AsyncGenerator[StreamChunk, None]:
        trace.active = True
        tokens = estimate_tokens(request) + (request.max_tokens or 0)
        sent = False  # has any chunk reached the caller?
        text: list[str] = []  # the answer's text so far, for CONTINUE
        marker: FailoverMarker | None = None
        current = request
        for index, target in enumerate(targets):
            last = index == len(targets) - 1
            try:
                self._skip_if_down(target, trace, last)
                async with self._admitted(target, call, tokens, trace) as (tickets, queued):
                    upstream, chunks, first = await self._open_stream(target, current, call, trace, queued)
                    async with contextlib.aclosing(chunks):
                        try:
                            if marker is not None:
                                yield StreamChunk(failover=marker)
                                marker = None
                            chunk: StreamChunk | None = first
                            usage: Usage | None = None
                            stamp = True
                            while chunk is not None:
                                if stamp or chunk.is_final:
                                    chunk.model = chunk.model or target.model
                                    chunk.provider = target.provider.name
                                    stamp = False
                                if chunk.content:
                                    text.append(chunk.content)
                                usage = chunk.usage or usage
                                yield chunk
                                sent = True
                                chunk = await anext(chunks, None)
                        except BaseException as exc:
                            upstream.failed(exc)
                            raise
                    upstream.succeeded()
                    for ticket in tickets:
                        ticket.settle(_used_tokens(usage))
                    return
            except errors.PorticoError as exc:
                if sent:
                    exc.retry_safe = False  # the caller already has part of an answer
                if last or not may_fall_back(exc) or (sent and call.stream_failover is StreamFailover.NONE):
                    raise
                following = targets[index + 1]
                if sent:
                    mode = call.stream_failover
                    marker = FailoverMarker(mode, following.provider.name, following.model, exc.reason)
                    if mode is StreamFailover.CONTINUE:
                        current = dataclasses.replace(request, messages=[
                            *request.messages, Message(role=Role.ASSISTANT, content="".join(text))])
                    else:
                        text.clear()
                        current = request
                    log.info("stream from %s broke (%s); %s to %s", target.name, exc.reason, mode.value, following.name)
                else:
                    log.info("%s failed (%s); trying %s", target.name, exc.reason, following.name)

    async def _open_stream(
        self, target: Target, request: ChatRequest, call: CallContext, trace: Trace, queued: float
    ) -> tuple[_Upstream, AsyncGenerator[StreamChunk, None], StreamChunk | None]:
        """Start the target's stream and wait for its first chunk, with retries: until
        then nothing has reached the caller."""
        waits = [queued]  # the queue wait goes with the first attempt

        async def attempt(wait: float) -> tuple[_Upstream, AsyncGenerator[StreamChunk, None], StreamChunk | None]:
            _check_deadline(call, target)
            upstream = _Upstream(self, target, trace, (wait + waits.pop()) if waits else wait)
            upstream.begin()
            chunks: AsyncGenerator[StreamChunk, None] | None = None
            try:
                target.provider.check_passthrough(request.passthrough)
                chunks = target.provider.stream(dataclasses.replace(request, model=target.model), call)
                first = await anext(chunks, None)
            except BaseException as exc:
                if chunks is not None:
                    with contextlib.suppress(Exception):
                        await chunks.aclose()
                upstream.failed(exc)
                raise
            upstream.first_token()
            return upstream, chunks, first

        return await with_retries(attempt, target.provider.settings.retry, call)
