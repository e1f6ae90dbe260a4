"""The attempt trace the gateway returns in trailing metadata, and answers that carry it.

Every Chat answer, every error and the end of every stream carry `portico-attempts` (a
JSON array, one object per attempt: which target, how it ended, how long it took, how
long the gateway waited before it) and `portico-overhead-ms` (the gateway's own time).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ._enums import enum_name
from .v1 import llm_service_pb2, types_pb2

ATTEMPTS_KEY = "portico-attempts"
OVERHEAD_KEY = "portico-overhead-ms"


@dataclass(frozen=True, slots=True)
class Attempt:
    """One try at one target, in the order the gateway made them."""

    provider: str
    model: str
    #: "ok", "error" or "skipped" (e.g. an open breaker or a target too slow for the deadline).
    outcome: str
    #: "OK" or the gRPC status code name the attempt ended with, e.g. "UNAVAILABLE".
    status: str
    #: The `ErrorReason` name of a failed attempt, else "".
    reason: str
    duration_ms: float
    #: Retry backoff or queue wait spent before this attempt.
    wait_ms: float


@dataclass(frozen=True, slots=True)
class Trace:
    attempts: list[Attempt]
    #: The gateway's own milliseconds (total minus time waiting on upstreams); None when
    #: the gateway sent no figure.
    overhead_ms: float | None


NO_TRACE = Trace([], None)


def trace_from_metadata(metadata: Iterable[tuple[str, Any]] | None) -> Trace:
    """The trace in a call's trailing metadata. A missing or malformed entry gives an
    empty list (or None): the trace describes an answer, it must never hide one."""
    attempts: list[Attempt] = []
    overhead: float | None = None
    for key, value in metadata or ():
        text = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
        if key == ATTEMPTS_KEY:
            attempts = _attempts(text)
        elif key == OVERHEAD_KEY:
            try:
                overhead = float(text)
            except ValueError:
                overhead = None
            if overhead is not None and not math.isfinite(overhead):
                overhead = None
    return Trace(attempts, overhead)


def _attempts(text: str) -> list[Attempt]:
    try:
        items = json.loads(text)
    except json.JSONDecodeError:
        return []
    if not isinstance(items, list):
        return []
    return [_attempt(item) for item in items if isinstance(item, dict)]


def _attempt(item: dict[str, Any]) -> Attempt:
    def text(name: str) -> str:
        value = item.get(name)
        return value if isinstance(value, str) else ""

    def number(name: str) -> float:
        value = item.get(name)
        return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0

    return Attempt(
        provider=text("provider"),
        model=text("model"),
        outcome=text("outcome"),
        status=text("status"),
        reason=text("reason"),
        duration_ms=number("duration_ms"),
        wait_ms=number("wait_ms"),
    )


class MessageView:
    """A protobuf message with a few readable extras; attribute reads the class does not
    name (fields, HasField, SerializeToString, ...) go to the message."""

    __slots__ = ("message",)
    message: Any

    def __init__(self, message: Any) -> None:
        self.message = message

    def __getattr__(self, name: str) -> Any:
        if name == "message":  # not set yet (copy, unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.message, name)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, MessageView):
            return bool(self.message == other.message)
        return bool(self.message == other)

    __hash__ = None  # type: ignore[assignment]  # mutable, as the message

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r})"


class _Traced(MessageView):
    """A response message with the gateway's attempt trace beside it."""

    __slots__ = ("attempts", "overhead_ms")

    def __init__(self, message: Any, trace: Trace = NO_TRACE) -> None:
        super().__init__(message)
        #: Each attempt the gateway made for this answer, in order.
        self.attempts: list[Attempt] = trace.attempts
        #: The gateway's own milliseconds, or None when it sent none.
        self.overhead_ms: float | None = trace.overhead_ms

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({self.message!r}, attempts={self.attempts!r}, "
                f"overhead_ms={self.overhead_ms!r})")


class ChatResponse(_Traced):
    """A `CompletionResponse` with the gateway's attempt trace beside it.

    Fields read as on the message (`response.content`, `response.usage`, ...); `message`
    is the protobuf message itself. Pass the response back in a conversation as is.
    """

    __slots__ = ()
    message: llm_service_pb2.CompletionResponse

    def __init__(self, message: llm_service_pb2.CompletionResponse, trace: Trace = NO_TRACE) -> None:
        super().__init__(message, trace)

    @property
    def content(self) -> str:
        return self.message.content

    @property
    def role(self) -> types_pb2.Role:
        return self.message.role

    @property
    def tool_calls(self) -> Any:
        return self.message.tool_calls

    @property
    def stop_reason(self) -> types_pb2.StopReason:
        return self.message.stop_reason

    @property
    def stop_reason_name(self) -> str:
        """Why the answer ended, as a word: "end_turn", "max_tokens", "stop_sequence",
        "tool_calls", "content_filter", "refusal" or "other"."""
        return enum_name(types_pb2.StopReason, self.message.stop_reason)

    @property
    def raw_stop_reason(self) -> str:
        return self.message.raw_stop_reason

    @property
    def usage(self) -> types_pb2.Usage:
        return self.message.usage

    @property
    def model(self) -> str:
        return self.message.model

    @property
    def provider(self) -> str:
        return self.message.provider

    @property
    def reasoning_content(self) -> str:
        return self.message.reasoning_content

    @property
    def metadata(self) -> Any:
        return self.message.metadata

    @property
    def parts(self) -> Any:
        return self.message.parts


class EmbedResult(_Traced):
    """An `EmbedResponse` with the gateway's attempt trace beside it; fields read as on
    the message, `message` is the message itself."""

    __slots__ = ()
    message: llm_service_pb2.EmbedResponse

    def __init__(self, message: llm_service_pb2.EmbedResponse, trace: Trace = NO_TRACE) -> None:
        super().__init__(message, trace)

    @property
    def embeddings(self) -> Any:
        return self.message.embeddings

    @property
    def usage(self) -> types_pb2.Usage:
        return self.message.usage

    @property
    def model(self) -> str:
        return self.message.model

    @property
    def provider(self) -> str:
        return self.message.provider


class TokenCount(_Traced):
    """A `CountTokensResponse` with the gateway's attempt trace beside it; fields read as
    on the message, `message` is the message itself."""

    __slots__ = ()
    message: llm_service_pb2.CountTokensResponse

    def __init__(self, message: llm_service_pb2.CountTokensResponse, trace: Trace = NO_TRACE) -> None:
        super().__init__(message, trace)

    @property
    def token_count(self) -> int:
        return self.message.token_count

    @property
    def source(self) -> llm_service_pb2.TokenCountSource:
        return self.message.source

    @property
    def source_name(self) -> str:
        """"provider" (the provider counted: exact) or "estimate"."""
        return enum_name(llm_service_pb2.TokenCountSource, self.message.source)

    @property
    def provider(self) -> str:
        return self.message.provider

    @property
    def model(self) -> str:
        return self.message.model


class Provider(MessageView):
    """A `ProviderInfo` message (name, kind, models, default_model, health), with
    `health_name`."""

    __slots__ = ()
    message: llm_service_pb2.ProviderInfo

    def __init__(self, message: llm_service_pb2.ProviderInfo) -> None:
        super().__init__(message)

    @property
    def name(self) -> str:
        return self.message.name

    @property
    def kind(self) -> str:
        return self.message.kind

    @property
    def health(self) -> llm_service_pb2.ProviderHealth:
        return self.message.health

    @property
    def health_name(self) -> str:
        """"serving", "not_serving", or "unspecified" before the first probe."""
        return enum_name(llm_service_pb2.ProviderHealth, self.message.health)

    @property
    def breaker_state_name(self) -> str:
        """"closed", "open", "half_open", or "unspecified" when it has no breaker."""
        return enum_name(llm_service_pb2.BreakerState, self.message.breaker_state)
