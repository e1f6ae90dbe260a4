"""`fake`: a deterministic provider for tests and demos.

Answers come from configuration: `replies` are consumed in order, then the first of
`rules` whose `when_contains` is in the last user message, then the default — an echo of
the last user message. A reply can carry tool calls, reasoning (plain text, or parts with
signatures and redacted payloads, returned in `parts` as a signing provider returns them),
metadata, a stop reason, a delay, or an error of any reason in the error table. A streamed
reply can act out a mid-stream failover (`failover`), and any reply can script the
attempt trace the gateway returns in its trailers (`attempts`). The last
request is kept, so a test can see what a second turn sent back. Embeddings are unit vectors derived from a
SHA-256 of the text, so they are the same in every process and on every machine.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import math
import struct
from collections import deque
from collections.abc import AsyncGenerator
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from .. import errors, vectors
from ..call import NO_CALL, CallContext
from ..config import ProviderSettings
from ..domain import (
    Capabilities,
    ChatRequest,
    CompletionResponse,
    ContentPart,
    EmbedRequest,
    EmbedResponse,
    FailoverMarker,
    ReasoningPart,
    Role,
    Source,
    StopReason,
    StreamChunk,
    StreamFailover,
    ToolCall,
    ToolCallDelta,
    Usage,
)
from ..resilience import trace as attempt_trace
from . import registry
from .base import Provider, estimate_tokens


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ScriptedToolCall(_Strict):
    name: str
    arguments: str = "{}"
    id: str = ""


class ScriptedReasoning(_Strict):
    """A thought as a signing provider returns it."""

    text: str = ""
    signature: str = ""
    redacted: str = ""
    source: str = "fake"


class ScriptedError(_Strict):
    #: An ErrorReason name with or without the ERROR_REASON_ prefix, e.g. UPSTREAM_RATE_LIMITED.
    reason: str
    message: str = "scripted failure"
    retry_after: float | None = None
    #: For a stream: fail after this many content chunks have been sent (0: before any).
    after_chunks: int = 0
    #: Override the reason's own answer to "may the caller re-send this request?",
    #: e.g. true for UPSTREAM_CONNECTION to act out a connection refused before sending.
    retry_safe: bool | None = None


class ScriptedAttempt(_Strict):
    """One entry of the attempt trace, in the trailers' format."""

    provider: str
    model: str = ""
    outcome: Literal["ok", "error", "skipped"] = "ok"
    status: str = "OK"  # a gRPC code name
    reason: str = ""  # an ErrorReason name, or ""
    duration_ms: float = Field(default=0.0, ge=0)
    wait_ms: float = Field(default=0.0, ge=0)


class ScriptedContinuation(_Strict):
    """What the target taking over streams after a failover."""

    content: str


class ScriptedFailover(_Strict):
    """A stream whose target fails after `after_chunks` content chunks. With the request's
    `stream_failover` unset (NONE) the stream ends with the failure, as the gateway's
    honest default; with RESTART or CONTINUE a marker chunk names the target taking over
    and `then` streams: the whole new answer (restart) or the rest of it (continue)."""

    after_chunks: int = Field(gt=0)
    provider: str
    model: str = ""
    reason: str = "UPSTREAM_UNAVAILABLE"
    then: ScriptedContinuation


class ScriptedReply(_Strict):
    content: str | None = None  # None with no tool calls: echo the last user message
    tool_calls: list[ScriptedToolCall] = Field(default_factory=list)
    reasoning: str = ""
    #: Thoughts with signatures, before the text in `parts`; their text is the reasoning.
    reasoning_parts: list[ScriptedReasoning] = Field(default_factory=list)
    #: Provider extras (a response id, ...), on the answer and the first and final chunk.
    metadata: dict[str, str] = Field(default_factory=dict)
    stop_reason: Literal["end_turn", "max_tokens", "stop_sequence", "tool_calls",
                         "content_filter", "refusal", "other"] | None = None
    #: Seconds to wait before answering (before the first chunk when streaming).
    delay: float = Field(default=0.0, ge=0)
    error: ScriptedError | None = None
    failover: ScriptedFailover | None = None
    #: The attempt trace to return in the trailers (`portico-attempts`), and the overhead.
    attempts: list[ScriptedAttempt] = Field(default_factory=list)
    overhead_ms: float = Field(default=0.0, ge=0)


class FakeRule(ScriptedReply):
    when_contains: str


class FakeOptions(_Strict):
    replies: list[ScriptedReply] = Field(default_factory=list)
    rules: list[FakeRule] = Field(default_factory=list)
    #: Characters per content delta when streaming.
    chunk_size: int = Field(default=4, gt=0)
    #: Seconds between streamed chunks.
    chunk_delay: float = Field(default=0.0, ge=0)
    embedding_dimensions: int = Field(default=64, gt=0, le=8192)
    context_window: int = Field(default=32768, gt=0)
    #: What the health probe reports; false makes `portico.provider.<name>` NOT_SERVING.
    healthy: bool = True
    #: Report the request's reasoning controls, cache breakpoints and media types in the
    #: answer's metadata (`received_reasoning`, `received_cache`, `received_media`), so
    #: clients in other processes can check what reached the provider.
    report_controls: bool = False


_ERRORS: dict[str, type[errors.PorticoError]] = {
    cls.reason: cls
    for cls in (
        errors.UpstreamBadRequest, errors.ContextLengthExceeded, errors.UpstreamAuth,
        errors.UpstreamModelNotFound, errors.UpstreamRateLimited, errors.UpstreamQuotaExceeded,
        errors.UpstreamUnavailable, errors.UpstreamOverloaded, errors.UpstreamConnection, errors.UpstreamPoolExhausted,
        errors.UpstreamProtocol, errors.UpstreamTimeout, errors.RateLimited, errors.CircuitOpen,
        errors.DeadlineExceeded, errors.ShuttingDown, errors.PermissionDenied, errors.Unauthenticated,
        errors.UnknownModel, errors.CapabilityUnsupported, errors.PorticoError,
    )
}

_STOP = {s.value: s for s in StopReason}


def received_controls(request: ChatRequest) -> dict[str, str]:
    """The request's reasoning controls, cache breakpoints and media types as metadata
    text ("effort=high budget=4096"; "messages[0]=3600 tools[1]=default"; ...)."""
    out: dict[str, str] = {}
    if request.reasoning is not None:
        effort = request.reasoning.effort.value if request.reasoning.effort else "none"
        out["received_reasoning"] = f"effort={effort} budget={request.reasoning.budget_tokens or 0}"
    marks: list[str] = []
    media: list[str] = []
    for i, message in enumerate(request.messages):
        for j, part in enumerate(message.parts):
            if part.cache is not None:
                marks.append(f"messages[{i}].parts[{j}]={part.cache.ttl_seconds or 'default'}")
            if part.media is not None:
                media.append(f"messages[{i}].parts[{j}]={part.media.mime_type}")
        if message.cache is not None:
            marks.append(f"messages[{i}]={message.cache.ttl_seconds or 'default'}")
    marks += [f"tools[{i}]={t.cache.ttl_seconds or 'default'}" for i, t in enumerate(request.tools) if t.cache]
    if marks:
        out["received_cache"] = " ".join(marks)
    if media:
        out["received_media"] = " ".join(media)
    return out


class FakeProvider(Provider):
    kind: ClassVar[str] = "fake"
    Options = FakeOptions
    options: FakeOptions

    def __init__(self, settings: ProviderSettings) -> None:
        super().__init__(settings)
        self._replies: deque[ScriptedReply] = deque(self.options.replies)
        self._call_ids = itertools.count(1)
        #: The last request received, for tests to inspect.
        self.last_request: ChatRequest | None = None
        #: The call context of the last request (its deadline, tags, priority).
        self.last_call: CallContext = NO_CALL
        #: How many streams were closed by the caller before they finished.
        self.streams_closed_early = 0
        self.stream_closed = asyncio.Event()

    # -- chat ---------------------------------------------------------------------------

    def _pick(self, request: ChatRequest, call: CallContext) -> ScriptedReply:
        self.last_request = request
        self.last_call = call
        reply = self._choose(request)
        if reply.attempts:
            attempt_trace.script([attempt_trace.Attempt(**a.model_dump()) for a in reply.attempts], reply.overhead_ms)
        return reply

    def _choose(self, request: ChatRequest) -> ScriptedReply:
        if self._replies:
            return self._replies.popleft()
        prompt = _last_user_text(request)
        for rule in self.options.rules:
            if rule.when_contains in prompt:
                return rule
        return _ECHO

    def _raise(self, scripted: ScriptedError) -> None:
        name = scripted.reason.upper()
        if not name.startswith("ERROR_REASON_"):
            name = "ERROR_REASON_" + name
        cls = _ERRORS.get(name)
        if cls is None:
            raise errors.PorticoError(f"fake: unknown scripted reason {scripted.reason!r}")
        raise cls(scripted.message, provider=self.name, retry_after=scripted.retry_after,
                  retry_safe=scripted.retry_safe)

    def _answer(self, reply: ScriptedReply, request: ChatRequest) -> CompletionResponse:
        calls = [
            ToolCall(id=c.id or f"call_{next(self._call_ids)}", name=c.name, arguments=c.arguments)
            for c in reply.tool_calls
        ]
        if reply.content is not None:
            content = reply.content
        else:
            content = "" if calls else _last_user_text(request)
        stop = _STOP[reply.stop_reason] if reply.stop_reason else (
            StopReason.TOOL_CALLS if calls else StopReason.END_TURN
        )
        if request.max_tokens is not None and len(content) > 4 * request.max_tokens:
            content, stop = content[: 4 * request.max_tokens], StopReason.MAX_TOKENS
        thoughts = [ReasoningPart(text=r.text, signature=r.signature, redacted=r.redacted, source=r.source)
                    for r in reply.reasoning_parts]
        if reply.reasoning and not thoughts:
            thoughts = [ReasoningPart(text=reply.reasoning, source="fake")]
        reasoning = "".join(t.text for t in thoughts)
        parts = [ContentPart(reasoning=t) for t in thoughts]
        if content:
            parts.append(ContentPart(text=content))
        prompt_tokens = estimate_tokens(request)
        completion_tokens = (len(content) + len(reasoning) + 3) // 4 + sum(
            (len(c.arguments) + 3) // 4 for c in calls
        )
        return CompletionResponse(
            content=content,
            tool_calls=calls,
            stop_reason=stop,
            raw_stop_reason=stop.value,
            usage=Usage(
                prompt_tokens=prompt_tokens,
                completion_tokens=completion_tokens,
                total_tokens=prompt_tokens + completion_tokens,
                reasoning_tokens=(len(reasoning) + 3) // 4,
            ),
            model=request.model,
            provider=self.name,
            reasoning_content=reasoning,
            parts=parts,
            metadata={**reply.metadata, **(received_controls(request) if self.options.report_controls else {})},
        )

    async def chat(self, request: ChatRequest, call: CallContext = NO_CALL) -> CompletionResponse:
        reply = self._pick(request, call)
        if reply.delay:
            await asyncio.sleep(reply.delay)
        if reply.error is not None:
            self._raise(reply.error)
        return self._answer(reply, request)

    async def stream(self, request: ChatRequest, call: CallContext = NO_CALL) -> AsyncGenerator[StreamChunk, None]:
        reply = self._pick(request, call)
        answer = self._answer(reply, request)
        finished = False
        opening = dict(answer.metadata)

        def first(chunk: StreamChunk) -> StreamChunk:
            """The first chunk carries the metadata, as real providers' first events do."""
            nonlocal opening
            if opening:
                chunk.metadata, opening = opening, {}
            return chunk

        try:
            if reply.delay:
                await asyncio.sleep(reply.delay)
            if reply.error is not None and reply.error.after_chunks == 0:
                self._raise(reply.error)
            size = self.options.chunk_size
            for start in range(0, len(answer.reasoning_content), size):
                yield first(StreamChunk(reasoning_content=answer.reasoning_content[start : start + size]))
                await self._pause()
            for sent, start in enumerate(range(0, len(answer.content), size), start=1):
                yield first(StreamChunk(content=answer.content[start : start + size]))
                if reply.error is not None and sent == reply.error.after_chunks:
                    self._raise(reply.error)
                if reply.failover is not None and sent == reply.failover.after_chunks:
                    answer = self._fail_over(reply.failover, answer, start + size, call)
                    yield StreamChunk(failover=FailoverMarker(
                        mode=call.stream_failover, provider=reply.failover.provider,
                        model=reply.failover.model or answer.model, reason=_reason_name(reply.failover.reason),
                    ))
                    for at in range(0, len(reply.failover.then.content), size):
                        yield StreamChunk(content=reply.failover.then.content[at : at + size])
                        await self._pause()
                    break
                await self._pause()
            for index, tool_call in enumerate(answer.tool_calls):
                # Arguments arrive in pieces, as real providers send them.
                args = tool_call.arguments
                pieces = [args[i : i + size] for i in range(0, len(args), size)] or [""]
                for n, piece in enumerate(pieces):
                    yield first(StreamChunk(tool_call_deltas=[ToolCallDelta(
                        index=index, id=tool_call.id if n == 0 else "", name=tool_call.name if n == 0 else "",
                        arguments_delta=piece,
                    )]))
                    await self._pause()
            finished = True
            yield StreamChunk(
                tool_calls=answer.tool_calls,
                stop_reason=answer.stop_reason,
                raw_stop_reason=answer.raw_stop_reason,
                is_final=True,
                usage=answer.usage,
                model=answer.model,
                provider=self.name,
                parts=answer.parts,
                metadata=dict(answer.metadata),
            )
        finally:
            if not finished:
                self.streams_closed_early += 1
            self.stream_closed.set()

    def _fail_over(
        self, script: ScriptedFailover, answer: CompletionResponse, sent_chars: int, call: CallContext
    ) -> CompletionResponse:
        """The answer the final chunk describes once `script.provider` took over."""
        if call.stream_failover is StreamFailover.NONE:
            self._raise(ScriptedError(reason=script.reason, message="the upstream dropped the stream"))
        text = script.then.content
        if call.stream_failover is StreamFailover.CONTINUE:
            text = answer.content[:sent_chars] + text
        answer.content = text
        answer.parts = [p for p in answer.parts if p.reasoning is not None] + [ContentPart(text=text)]
        answer.model = script.model or answer.model
        return answer

    async def _pause(self) -> None:
        if self.options.chunk_delay:
            await asyncio.sleep(self.options.chunk_delay)

    # -- the rest -----------------------------------------------------------------------

    async def embed(self, request: EmbedRequest, call: CallContext = NO_CALL) -> EmbedResponse:
        dims = request.dimensions or self.options.embedding_dimensions
        packed = [vectors.pack(hash_embedding(text, dims)) for text in request.inputs]
        tokens = sum((len(t) + 3) // 4 for t in request.inputs)
        return EmbedResponse(
            vectors=packed,
            usage=Usage(prompt_tokens=tokens, total_tokens=tokens),
            model=request.model,
            provider=self.name,
        )

    def accepts_model(self, model: str) -> bool:
        return not self.settings.models or model in self.models()

    async def health_check(self) -> bool:
        return self.options.healthy

    async def discover_capabilities(self, model: str) -> Capabilities | None:
        return Capabilities(
            model=model,
            context_window=self.options.context_window,
            max_output_tokens=self.options.context_window // 4,
            supports_tools=True,
            supports_streaming=True,
            supports_embeddings=True,
            supports_vision=False,
            supports_response_format=True,
            source=Source.PROVIDER,
        )


_ECHO = ScriptedReply()


def _reason_name(reason: str) -> str:
    name = reason.upper()
    return name if name.startswith("ERROR_REASON_") else "ERROR_REASON_" + name


def _last_user_text(request: ChatRequest) -> str:
    for message in reversed(request.messages):
        if message.role is Role.USER:
            return message.text()
    return ""


def hash_embedding(text: str, dimensions: int) -> list[float]:
    """A unit vector from SHA-256 of the text: stable across processes and machines."""
    out: list[float] = []
    counter = 0
    data = text.encode()
    while len(out) < dimensions:
        block = hashlib.sha256(counter.to_bytes(4, "big") + data).digest()
        # Eight unsigned 32-bit ints per block, mapped to [-1, 1).
        out.extend(v / 2147483648.0 - 1.0 for v in struct.unpack(">8I", block))
        counter += 1
    del out[dimensions:]
    norm = math.sqrt(sum(v * v for v in out)) or 1.0
    return [v / norm for v in out]


registry.register("fake", FakeProvider)
