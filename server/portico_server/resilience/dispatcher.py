"""Runs a call over the router's plan: for each target in turn, rate limits → circuit
breaker → retries → provider, and on to the next target when that may help.

Where a failure goes is the plan's answer (`Plan.fallback_for`): after a retryable
failure (once its retries are spent), an open breaker, a quota cooldown or a full queue,
the next untried target; a request too long for the context window or refused on content
policy, the route's configured target for that class; anything else (an invalid request,
the caller's deadline) ends the call. An answer refused on content policy asks
`Plan.fallback_for_refusal`. A route with `hedge:` runs its unary calls hedged
(hedge.py), each target through the same pipeline. Every attempt goes into the call's
`Trace`; the figures in `LiveStats`, which routing reads.

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
import functools
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from .. import errors, metrics, tracing
from ..call import CallContext
from ..domain import (
    ChatRequest,
    CompletionResponse,
    EmbedRequest,
    EmbedResponse,
    FailoverMarker,
    Message,
    Role,
    StopReason,
    StreamChunk,
    StreamFailover,
    TokenCount,
)
from ..health import HealthReporter
from ..router import Plan, Target
from .breaker import Breakers, BreakerState, CircuitBreaker, is_upstream_failure
from .hedge import hedge_delays, hedged
from .limits import Limits, Ticket, estimate_call_tokens, provider_key, used_tokens
from .retry import with_retries
from .stats import LiveStats
from .trace import Trace

log = logging.getLogger("portico.dispatcher")

T = TypeVar("T")


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


#: Stop reasons of an answer the model refused to give.
_REFUSALS = (StopReason.CONTENT_FILTER, StopReason.REFUSAL)


def _check_deadline(call: CallContext, target: Target) -> None:
    if call.remaining() == 0.0:
        raise errors.DeadlineExceeded(
            f"the call's deadline passed before {target.name} could be tried", provider=target.provider.name)


class _Upstream:
    """The bookkeeping of one upstream call: breaker, stats, trace and span, settled once."""

    def __init__(self, dispatcher: Dispatcher, target: Target, trace: Trace, wait: float,
                 operation: str, request: object | None) -> None:
        self.d, self.target, self.trace, self.wait = dispatcher, target, trace, wait
        self.operation, self.request = operation, request
        #: The attempt's client span, when tracing is on.
        self.span: tracing.Attempt | None = None
        self.names = (target.name, target.provider.name)
        self.breaker: CircuitBreaker | None = dispatcher.breakers.get(
            target.provider.name, target.model, target.provider.settings.breaker)
        self.trial = False
        self.started = time.monotonic()
        self.answered = False  # has the first token (a unary answer) been timed?

    async def begin(self) -> None:
        """Raises CircuitOpen (recorded as a skipped attempt) when the breaker refuses."""
        try:
            self.trial = self.breaker.allow() if self.breaker is not None else False
            if self.trial and self.breaker is not None:
                await self._claim_trial(self.breaker)
        except errors.CircuitOpen as exc:
            self.trace.failed(self.target.provider.name, self.target.model, exc, 0.0, self.wait, skipped=True)
            raise
        self.started = time.monotonic()
        self.d.stats.started(*self.names)
        if tracing.enabled:
            self.span = tracing.start_attempt(self.operation, self.target.provider, self.target.model, self.request)

    async def _claim_trial(self, breaker: CircuitBreaker) -> None:
        """With shared state, one replica at a time sends a half-open breaker's trial calls."""
        gate = self.d.breakers.trial_gate
        if gate is None or await gate(breaker):
            return
        breaker.trial_refused()
        self.trial = False
        raise errors.CircuitOpen(
            f"provider {breaker.provider!r} is failing: its circuit breaker ({breaker.key}) is half-open "
            "and another replica is sending its trial calls",
            provider=breaker.provider, retry_after=breaker.settings.recovery, metadata={"breaker": breaker.key})

    def first_token(self) -> None:
        self.answered = True
        self.d.stats.first_token(self.names, time.monotonic() - self.started)

    def succeeded(self, result: object | None = None) -> None:
        """`result`: a unary call's answer (a stream's final chunk went to `span.chunk`)."""
        if not self.answered:  # a unary answer: its first token came with the rest
            self.first_token()
        elapsed = time.monotonic() - self.started
        self.d.stats.ended(*self.names)
        self.d.stats.succeeded(self.names, elapsed)
        if self.breaker is not None:
            self.breaker.succeeded(self.trial)
        self.trace.ok(self.target.provider.name, self.target.model, elapsed, self.wait)
        if self.span is not None:
            self.span.succeeded(result)

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
        if self.span is not None:
            self.span.failed(exc)


class Dispatcher:
    def __init__(
        self,
        health: HealthReporter,
        *,
        stats: LiveStats | None = None,
        limits: Limits | None = None,
    ) -> None:
        self.health = health
        self.stats = stats or LiveStats()
        self.stats.availability = self.available
        self.limits = limits or Limits()
        self.breakers = Breakers(self._breaker_changed)
        health.probe_listeners.append(self.breakers.probe_result)
        self._cooldown_until: dict[str, float] = {}
        self._cooldown_timers: dict[str, asyncio.TimerHandle] = {}
        #: Told of each quota cooldown this replica starts (provider, seconds), so that
        #: shared state can pass it on.
        self.on_cooldown: Callable[[str, float], None] | None = None

    def _breaker_changed(self, provider: str, down: bool) -> None:
        self.health.mark(provider, "breaker", down)
        metrics.breaker_changed(provider, self.breakers.state(provider).value)

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
        self.cool_down(name, seconds)
        if self.on_cooldown is not None:
            self.on_cooldown(name, seconds)

    def cool_down(self, name: str, seconds: float) -> None:
        """Skip provider `name` for `seconds` (its quota is exhausted, here or on another replica)."""
        if seconds <= 0 or self.cooldown_left(name) >= seconds:
            return
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

    def available(self, target_name: str) -> bool:
        """False while the target's breaker is open or its provider cools down (routing
        moves such targets to the back of a plan)."""
        provider, _, model = target_name.partition("/")
        return self.cooldown_left(provider) == 0 and self.breakers.admits(provider, model)

    # -- what ListProviders shows ---------------------------------------------------------

    def view(self, provider: str) -> ProviderView:
        breakers = self.breakers.of_provider(provider)
        return ProviderView(
            breaker=self.breakers.state(provider),
            breaker_open_seconds=max((b.time_left_open() for b in breakers), default=0.0),
            cooldown_seconds=self.cooldown_left(provider),
            latency=self.stats.latency_ewma(provider),
            ttft=self.stats.ttft_ewma(provider),
            error_rate=self.stats.error_rate(provider),
            in_flight=self.stats.in_flight(provider),
            queue_depth=self.limits.queue_depth(provider_key(provider)),
        )

    # -- unary calls ----------------------------------------------------------------------

    async def chat(self, plan: Plan, request: ChatRequest, call: CallContext, trace: Trace) -> CompletionResponse:
        async def send(target: Target) -> CompletionResponse:
            target.provider.check_passthrough(request.passthrough)
            return await target.provider.chat(dataclasses.replace(request, model=target.model), call)

        def refused(result: CompletionResponse) -> bool:
            return result.stop_reason in _REFUSALS

        result, target = await self._unary(plan, call, trace, _Send(
            send, _tokens(plan, request), lambda r: used_tokens(r.usage), refused, hedge=True,
            operation="chat", request=request))
        result.model = result.model or target.model
        result.provider = target.provider.name
        return result

    async def embed(self, plan: Plan, request: EmbedRequest, call: CallContext, trace: Trace) -> EmbedResponse:
        async def send(target: Target) -> EmbedResponse:
            return await target.provider.embed(dataclasses.replace(request, model=target.model), call)

        tokens = sum(len(text) for text in request.inputs) // 4 + 1
        result, target = await self._unary(plan, call, trace, _Send(send, tokens, lambda r: used_tokens(r.usage),
                                                                     operation="embeddings"))
        result.model = result.model or target.model
        result.provider = target.provider.name
        return result

    async def count_tokens(self, plan: Plan, request: ChatRequest, call: CallContext,
                           trace: Trace) -> tuple[TokenCount, Target]:
        async def send(target: Target) -> TokenCount:
            return await target.provider.count_tokens(dataclasses.replace(request, model=target.model), call)

        return await self._unary(plan, call, trace, _Send(send, 0, lambda r: None, operation="count_tokens"))

    async def _unary(self, plan: Plan, call: CallContext, trace: Trace, send: _Send[T]) -> tuple[T, Target]:
        trace.active = True
        if not plan:
            raise errors.UnknownModel("the route has no target")
        if send.hedge and plan.hedge is not None and len(plan) > 1:
            return await self._hedged(plan, call, trace, send)
        target, tried = plan[0], list[Target]()
        while True:
            try:
                result = await self._on_target(target, call, trace, send, _has_next(plan, tried, target))
            except errors.PorticoError as exc:
                tried.append(target)
                following = plan.fallback_for(exc, tried)
                if following is None:
                    raise
                log.info("%s failed (%s); trying %s", target.name, exc.reason, following.name)
                target = following
                continue
            tried.append(target)
            following = plan.fallback_for_refusal(tried) if send.refused(result) else None
            if following is None:
                return result, target
            log.info("%s refused the request on content policy; trying %s", target.name, following.name)
            target = following

    async def _hedged(self, plan: Plan, call: CallContext, trace: Trace, send: _Send[T]) -> tuple[T, Target]:
        """Ask the plan's targets in turn, each after the hedge delay; the first answer wins
        and the calls still running are cancelled (closing their upstream connections)."""
        assert plan.hedge is not None
        calls = [functools.partial(self._on_target, target, call, trace, send, True) for target in plan]
        delay_for = hedge_delays(plan.hedge, [t.name for t in plan], self.stats)
        result, index = await hedged(calls, delay_for, give_up=lambda exc: plan.fallback_for(exc) is None)
        return result, plan[index]

    async def _on_target(self, target: Target, call: CallContext, trace: Trace, send: _Send[T], has_next: bool) -> T:
        self._skip_if_down(target, trace, has_next)
        async with self._admitted(target, call, send.tokens, trace) as ticket:
            waits = [ticket.waited]  # the queue wait goes with the first attempt

            async def attempt(wait: float) -> T:
                _check_deadline(call, target)
                upstream = _Upstream(self, target, trace, (wait + waits.pop()) if waits else wait,
                                     send.operation, send.request)
                await upstream.begin()
                try:
                    result = await send.call(target)
                except BaseException as exc:
                    upstream.failed(exc)
                    raise
                upstream.succeeded(result)
                return result

            result = await with_retries(attempt, target.provider.settings.retry, call)
            ticket.settle(send.used(result))
            return result

    def _skip_if_down(self, target: Target, trace: Trace, has_next: bool) -> None:
        """Refuse a target in quota cooldown; pass over one whose probe fails when
        another target is left to try."""
        self._check_cooldown(target, trace)
        if has_next and "probe" in self.health.problems(target.provider.name):
            exc = errors.UpstreamUnavailable(
                f"provider {target.provider.name!r} fails its health probe", provider=target.provider.name,
                retry_safe=True)
            trace.failed(target.provider.name, target.model, exc, 0.0, 0.0, skipped=True)
            raise exc

    @contextlib.asynccontextmanager
    async def _admitted(self, target: Target, call: CallContext, tokens: int, trace: Trace) -> AsyncIterator[Ticket]:
        """Pass every rate limit of the target (provider, deployment, group), holding the
        slots until the block ends. A refusal is a skipped attempt in the trace."""
        started = time.monotonic()
        keys = self.limits.keys_for(target)
        async with contextlib.AsyncExitStack() as stack:
            try:
                ticket = await stack.enter_async_context(self.limits.admit_all(keys, call, tokens if keys else 0))
            except errors.PorticoError as exc:
                trace.failed(target.provider.name, target.model, exc, 0.0, time.monotonic() - started, skipped=True)
                raise
            if keys:
                metrics.queue_wait(target.provider.name, ticket.waited)
            yield ticket

    # -- streams --------------------------------------------------------------------------

    async def stream(self, plan: Plan, request: ChatRequest, call: CallContext,
                     trace: Trace) -> AsyncGenerator[StreamChunk, None]:
        trace.active = True
        if not plan:
            raise errors.UnknownModel("the route has no target")
        tokens = _tokens(plan, request)
        sent = False  # has any chunk reached the caller?
        text: list[str] = []  # the answer's text so far, kept only for CONTINUE
        keep_text = call.stream_failover is StreamFailover.CONTINUE
        marker: FailoverMarker | None = None
        current = request
        target, tried = plan[0], list[Target]()
        while True:
            try:
                self._skip_if_down(target, trace, _has_next(plan, tried, target))
                # The slots are held for the stream's whole life.
                async with self._admitted(target, call, tokens, trace) as ticket:
                    upstream, chunks, first = await self._open_stream(target, current, call, trace, ticket.waited)
                    async with contextlib.aclosing(chunks):
                        try:
                            if marker is not None:
                                yield StreamChunk(failover=marker)
                                marker = None
                            chunk: StreamChunk | None = first
                            stamp = True
                            while chunk is not None:
                                if stamp or chunk.is_final:
                                    chunk.model = chunk.model or target.model
                                    chunk.provider = target.provider.name
                                    stamp = False
                                if chunk.is_final:
                                    ticket.settle(used_tokens(chunk.usage))
                                if keep_text and chunk.content:
                                    text.append(chunk.content)
                                if upstream.span is not None:
                                    upstream.span.chunk(chunk)
                                yield chunk
                                sent = True
                                chunk = await anext(chunks, None)
                        except BaseException as exc:
                            upstream.failed(exc)
                            raise
                    upstream.succeeded()
                    return
            except errors.PorticoError as exc:
                if sent:
                    exc.retry_safe = False  # the caller already has part of an answer
                tried.append(target)
                following = plan.fallback_for(exc, tried)
                if following is None or (sent and call.stream_failover is StreamFailover.NONE):
                    raise
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
                target = following

    async def _open_stream(
        self, target: Target, request: ChatRequest, call: CallContext, trace: Trace, queued: float
    ) -> tuple[_Upstream, AsyncGenerator[StreamChunk, None], StreamChunk | None]:
        """Start the target's stream and wait for its first chunk, with retries: until
        then nothing has reached the caller."""
        waits = [queued]  # the queue wait goes with the first attempt

        async def attempt(wait: float) -> tuple[_Upstream, AsyncGenerator[StreamChunk, None], StreamChunk | None]:
            _check_deadline(call, target)
            upstream = _Upstream(self, target, trace, (wait + waits.pop()) if waits else wait, "chat", request)
            await upstream.begin()
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


@dataclass(frozen=True, slots=True)
class _Send(Generic[T]):
    """One kind of unary call: how to send it to a target, what it is charged against
    tokens per minute before and after, whether an answer is a refusal, whether the
    route's hedging applies (chat only: an embedding is cheap to wait for), and what its
    client spans say (the GenAI operation name and, for a chat, the request)."""

    call: Callable[[Target], Awaitable[T]]
    tokens: int
    used: Callable[[T], int | None]
    refused: Callable[[T], bool] = lambda result: False
    hedge: bool = False
    operation: str = "chat"
    request: object | None = None


def _has_next(plan: Plan, tried: list[Target], current: Target) -> bool:
    """Whether the plan has a target left besides `current` and those tried."""
    done = {t.name for t in tried} | {current.name}
    return any(t.name not in done for t in plan)


def _tokens(plan: Plan, request: ChatRequest) -> int:
    """The call's token estimate: the one its plan was made with, else estimated now."""
    return plan.estimated_tokens if plan.estimated_tokens is not None else estimate_call_tokens(request)
