"""What the servicer tells about each LLMService call: a `CallRecord` begun when the call
starts, given its answer (or its failure) and, for a stream, each chunk as it is written;
when the call ends, the record feeds the metrics (metrics.py) and the call log line
(calllog.py). Nothing here waits or allocates much: it runs on every call.
"""

from __future__ import annotations

import time
from contextvars import ContextVar
from typing import Any

import grpc

from . import calllog, metrics
from .call import CallContext
from .domain import StreamChunk, Usage
from .errors import PorticoError
from .resilience.trace import Trace

#: The GenAI operation of each method that is one (`gen_ai.operation.name`).
_OPERATIONS = {"Chat": "chat", "StreamChat": "chat", "Embed": "embeddings"}

_in_flight = metrics.Children(metrics.IN_FLIGHT)
_calls = metrics.Children(metrics.CALLS)
_duration = metrics.Children(metrics.OPERATION_DURATION)
_token_usage = metrics.Children(metrics.TOKEN_USAGE)
_tokens = metrics.Children(metrics.TOKENS)
_first_chunk = metrics.Children(metrics.TIME_TO_FIRST_CHUNK)
_per_chunk = metrics.Children(metrics.TIME_PER_OUTPUT_CHUNK)
_overhead = metrics.Children(metrics.OVERHEAD)
_attempts = metrics.Children(metrics.ATTEMPTS)
_retries = metrics.Children(metrics.RETRIES)


class CallRecord:
    """The facts of one call, gathered while it runs."""

    __slots__ = (
        "_gap", "_in_flight", "call", "chunks", "code", "first_chunk", "last_chunk", "method", "model",
        "operation", "provider", "reason", "request_id", "request_model", "started", "tokens", "trace",
    )

    def __init__(self, method: str, request: Any, request_id: str, trace: Trace | None) -> None:
        self.started = time.monotonic()
        self.method = method
        self.operation = _OPERATIONS.get(method, "")
        self.request_id = request_id
        self.request_model: str = getattr(request, "model", "") if request is not None else ""
        self.trace = trace
        #: Set by the servicer once the call context exists (caller, tags).
        self.call: CallContext | None = None
        self.provider = ""
        self.model = ""
        #: (input, output, cache_read, cache_creation, reasoning), when the provider said.
        self.tokens: tuple[int, int, int, int, int] | None = None
        self.code = grpc.StatusCode.OK
        self.reason = ""
        self.first_chunk: float | None = None
        self.last_chunk = 0.0
        self.chunks = 0
        self._gap: Any = None
        self._in_flight = _in_flight(method)
        self._in_flight.inc()
        if method == "StreamChat":
            metrics.OPEN_STREAMS.inc()
        _current.set(self)

    # -- while the call runs ------------------------------------------------------------

    def answered(self, response: Any) -> None:
        """A unary answer (a protobuf response): who answered, with what model and usage."""
        self.provider = getattr(response, "provider", "")
        self.model = getattr(response, "model", "")
        if self.operation and response.HasField("usage") and not self._from_cache():
            u = response.usage
            self.tokens = (u.prompt_token_count, u.completion_token_count, u.cache_read_token_count,
                           u.cache_creation_token_count, u.reasoning_token_count)

    def chunk(self, chunk: StreamChunk) -> None:
        """A stream chunk, just written to the caller."""
        now = time.monotonic()
        self.chunks += 1
        if self.first_chunk is None:
            self.first_chunk = now
            self.provider, self.model = chunk.provider, chunk.model
            labels = self._genai_labels()
            _first_chunk(*labels).observe(now - self.started)
            self._gap = _per_chunk(*labels)
        else:
            self._gap.observe(now - self.last_chunk)
        self.last_chunk = now
        if chunk.is_final and chunk.usage is not None and not self._from_cache():
            self.tokens = _domain_tokens(chunk.usage)
            self.model = chunk.model or self.model

    def _from_cache(self) -> bool:
        # A cached answer used no tokens: its usage is the original call's, already counted.
        return self.trace is not None and self.trace.cache.endswith("hit")

    def failed(self, code: grpc.StatusCode, exc: BaseException | None) -> None:
        self.code = code
        self.reason = exc.reason if isinstance(exc, PorticoError) else ""

    def aborted(self, context: Any) -> None:
        """The call was aborted with a status of its own (not through the error table)."""
        code = context.code()
        self.code = code if isinstance(code, grpc.StatusCode) else grpc.StatusCode.UNKNOWN

    def cancelled(self, context: Any) -> None:
        """The caller went away, or its deadline passed, while the call ran."""
        left = context.time_remaining()
        expired = left is not None and left <= 0
        self.code = grpc.StatusCode.DEADLINE_EXCEEDED if expired else grpc.StatusCode.CANCELLED

    # -- when it ends -------------------------------------------------------------------

    def end(self) -> None:
        """Count the call and write its log line; once, whatever happened."""
        self._in_flight.dec()
        if self.method == "StreamChat":
            metrics.OPEN_STREAMS.dec()
        duration = time.monotonic() - self.started
        trace = self.trace if self.trace is not None and self.trace.active else None
        if trace is not None and trace.attempts and not self.provider:
            last = trace.attempts[-1]  # a failed call: the last target it tried
            self.provider, self.model = last.provider, self.model or last.model
        _calls(self.method, self.code.name).inc()
        if self.operation:
            self._genai_metrics(duration)
        retries = 0
        if trace is not None:
            _overhead(self.method).observe(trace.overhead_ms() / 1000)
            retries = _attempt_metrics(trace)
        if calllog.CALLS.isEnabledFor(calllog.INFO):
            calllog.write(self, duration, retries)

    def _genai_labels(self) -> tuple[str, str, str]:
        return (self.operation, self.provider, metrics.MODELS.label(self.request_model or self.model))

    def _genai_metrics(self, duration: float) -> None:
        labels = self._genai_labels()
        error_type = "" if self.code is grpc.StatusCode.OK else (self.reason or self.code.name)
        _duration(*labels, error_type).observe(duration)
        if self.tokens is None:
            return
        inputs, outputs, cache_read, cache_creation, reasoning = self.tokens
        _token_usage(*labels, "input").observe(inputs)
        _token_usage(*labels, "output").observe(outputs)
        if cache_read or cache_creation or reasoning:
            provider, model = labels[1], labels[2]
            for kind, count in (("cache_read", cache_read), ("cache_creation", cache_creation),
                                ("reasoning", reasoning)):
                if count:
                    _tokens(provider, model, kind).inc(count)


_current: ContextVar[CallRecord | None] = ContextVar("portico_call_record", default=None)


def bound(call: CallContext) -> CallContext:
    """Note the running call's context (its caller and tags) on its record; returns it."""
    record = _current.get()
    if record is not None:
        record.call = call
    return call


def _domain_tokens(usage: Usage) -> tuple[int, int, int, int, int]:
    return (usage.prompt_tokens, usage.completion_tokens, usage.cache_read_tokens,
            usage.cache_creation_tokens, usage.reasoning_tokens)


def _attempt_metrics(trace: Trace) -> int:
    """Count the trace's attempts; returns how many were retries. A plan tries each
    target once, so a target seen again in the trace is the retry of an attempt."""
    seen: set[tuple[str, str]] = set()
    retries = 0
    for attempt in trace.attempts:
        _attempts(attempt.provider, attempt.outcome, attempt.status).inc()
        target = (attempt.provider, attempt.model)
        if target in seen:
            retries += 1
            _retries(attempt.provider).inc()
        seen.add(target)
    return retries
