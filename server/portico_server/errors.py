"""Domain exceptions: what went wrong, in Portico's words.

Code below the servicer raises these; `status.py` is the one place that turns them into
gRPC statuses with `google.rpc` details. Each class names its `ErrorReason` value.

    PorticoError
    ├── InvalidRequest            bad input, with field violations
    ├── RequestTooLarge           over the gateway's or the provider's limit
    ├── UnknownProvider / UnknownModel
    ├── NotFound / AlreadyExists  a named resource (a vector collection) is missing / taken
    ├── CapabilityUnsupported     e.g. embeddings on a chat-only provider
    ├── UpstreamError             the provider said no or failed
    │   ├── UpstreamBadRequest, ContextLengthExceeded, UpstreamAuth,
    │   │   UpstreamModelNotFound, UpstreamQuotaExceeded
    │   └── retryable: UpstreamRateLimited, UpstreamUnavailable, UpstreamOverloaded,
    │       UpstreamConnection, UpstreamProtocol, UpstreamTimeout (UpstreamDeadlineExceeded:
    │       the caller's deadline passed first), UpstreamPoolExhausted
    └── RateLimited (BudgetExhausted), CircuitOpen, DeadlineExceeded, ShuttingDown, Overloaded, Cancelled,
        Unauthenticated, PermissionDenied

Two flags describe each failure. `retryable`: may trying again (or another provider)
help? `retry_safe`: can sending the same request again not start a second generation,
because this one certainly started none (it never left the gateway, or the provider
refused it before doing any work)? Callers' clients re-send a call by themselves only
when both hold, so one call is never billed twice. The class gives the usual answer;
code that knows more (the connection failed before the request was written; the
stream already produced output) overrides it on the instance.
"""

from __future__ import annotations

import datetime
import email.utils
import math
import time
from collections.abc import Mapping

#: The longest wait an upstream's hint may ask of a caller; longer hints are cut to this.
MAX_RETRY_DELAY = 3600.0


class PorticoError(Exception):
    """Base of every error Portico reports to callers."""

    reason = "ERROR_REASON_INTERNAL"
    retryable = False  # may a retry or a fallback to another provider help?
    #: Did this request certainly start no generation at a provider? Unknown is False.
    retry_safe = False
    #: The longest retry delay this error may name (RetryInfo).
    max_retry_delay = MAX_RETRY_DELAY

    def __init__(
        self,
        message: str,
        *,
        provider: str = "",
        metadata: Mapping[str, str] | None = None,
        retry_after: float | None = None,
        retry_safe: bool | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.provider = provider
        self.metadata: dict[str, str] = dict(metadata or {})
        if provider:
            self.metadata.setdefault("provider", provider)
        self.retry_after = clamp_retry_delay(retry_after, self.max_retry_delay)
        if retry_safe is not None:
            self.retry_safe = retry_safe


class InvalidRequest(PorticoError):
    reason = "ERROR_REASON_INVALID_REQUEST"
    retry_safe = True

    def __init__(self, violations: list[tuple[str, str]], message: str = "") -> None:
        """`violations` are (field path, description) pairs, e.g. ("messages[0].role", ...)."""
        self.violations = violations
        text = message or "; ".join(f"{f}: {d}" for f, d in violations) or "invalid request"
        super().__init__(text)


class RequestTooLarge(PorticoError):
    reason = "ERROR_REASON_REQUEST_TOO_LARGE"
    retry_safe = True

    def __init__(self, message: str, *, limit: str, field: str = "", provider: str = "") -> None:
        super().__init__(message, provider=provider, metadata={"limit": limit})
        self.field = field


class UnknownProvider(PorticoError):
    reason = "ERROR_REASON_UNKNOWN_PROVIDER"
    retry_safe = True


class UnknownModel(PorticoError):
    reason = "ERROR_REASON_UNKNOWN_MODEL"
    retry_safe = True


class NotFound(PorticoError):
    """A named resource, such as a vector collection, does not exist."""

    reason = "ERROR_REASON_NOT_FOUND"
    retry_safe = True

    def __init__(self, resource: str, name: str, message: str = "") -> None:
        super().__init__(message or f"no {resource} named {name!r}", metadata={"resource": resource, "name": name})


class AlreadyExists(PorticoError):
    """A resource with that name exists already."""

    reason = "ERROR_REASON_ALREADY_EXISTS"
    retry_safe = True

    def __init__(self, resource: str, name: str, message: str = "") -> None:
        super().__init__(message or f"a {resource} named {name!r} exists already",
                         metadata={"resource": resource, "name": name})


class CapabilityUnsupported(PorticoError):
    reason = "ERROR_REASON_CAPABILITY_UNSUPPORTED"
    retry_safe = True


class ModelFeatureUnsupported(CapabilityUnsupported):
    """A valid request asks for a feature (reasoning controls) the model it went to lacks:
    FAILED_PRECONDITION rather than INVALID_ARGUMENT, since the same request to another
    model would be served."""


class UpstreamError(PorticoError):
    """The provider refused or failed. `status` is its HTTP status (0 if none)."""

    reason = "ERROR_REASON_UPSTREAM_UNAVAILABLE"

    def __init__(
        self,
        message: str,
        *,
        provider: str = "",
        status: int = 0,
        retry_after: float | None = None,
        metadata: Mapping[str, str] | None = None,
        retry_safe: bool | None = None,
    ) -> None:
        meta = dict(metadata or {})
        if status:
            meta.setdefault("upstream_status", str(status))
        super().__init__(message, provider=provider, metadata=meta, retry_after=retry_after, retry_safe=retry_safe)
        self.status = status


class UpstreamBadRequest(UpstreamError):
    reason = "ERROR_REASON_UPSTREAM_BAD_REQUEST"
    retry_safe = True


class ContextLengthExceeded(UpstreamError):
    reason = "ERROR_REASON_CONTEXT_LENGTH_EXCEEDED"
    retry_safe = True


class UpstreamAuth(UpstreamError):
    reason = "ERROR_REASON_UPSTREAM_AUTH"
    retry_safe = True


class UpstreamModelNotFound(UpstreamError):
    reason = "ERROR_REASON_UPSTREAM_MODEL_NOT_FOUND"
    retry_safe = True


class UpstreamQuotaExceeded(UpstreamError):
    reason = "ERROR_REASON_UPSTREAM_QUOTA_EXCEEDED"
    retry_safe = True


class UpstreamRateLimited(UpstreamError):
    reason = "ERROR_REASON_UPSTREAM_RATE_LIMITED"
    retry_safe = True
    retryable = True


class UpstreamUnavailable(UpstreamError):
    reason = "ERROR_REASON_UPSTREAM_UNAVAILABLE"
    retryable = True


class UpstreamOverloaded(UpstreamError):
    reason = "ERROR_REASON_UPSTREAM_OVERLOADED"
    retry_safe = True
    retryable = True


class UpstreamConnection(UpstreamError):
    reason = "ERROR_REASON_UPSTREAM_CONNECTION"
    retryable = True


class UpstreamPoolExhausted(UpstreamError):
    """Waiting for a pooled connection to the provider took too long: nothing was sent."""

    reason = "ERROR_REASON_UPSTREAM_POOL_EXHAUSTED"
    retryable = True
    retry_safe = True


class UpstreamProtocol(UpstreamError):
    reason = "ERROR_REASON_UPSTREAM_PROTOCOL"
    retryable = True


class UpstreamTimeout(UpstreamError):
    reason = "ERROR_REASON_UPSTREAM_TIMEOUT"
    retryable = True


class UpstreamDeadlineExceeded(UpstreamTimeout):
    """The upstream had not finished when the caller's own deadline passed: the caller's
    DEADLINE_EXCEEDED, not a provider fault, and no time is left to retry."""

    reason = "ERROR_REASON_DEADLINE_EXCEEDED"
    retryable = False


class RateLimited(PorticoError):
    reason = "ERROR_REASON_RATE_LIMITED"
    retry_safe = True


class BudgetExhausted(RateLimited):
    """A caller spent its token budget for the day or month; RetryInfo says when the
    window resets, however far away that is."""

    max_retry_delay = 32 * 24 * 3600.0


class CircuitOpen(PorticoError):
    reason = "ERROR_REASON_CIRCUIT_OPEN"
    retry_safe = True
    retryable = True


class DeadlineExceeded(PorticoError):
    reason = "ERROR_REASON_DEADLINE_EXCEEDED"


class ShuttingDown(PorticoError):
    reason = "ERROR_REASON_SHUTTING_DOWN"
    retry_safe = True


class Overloaded(PorticoError):
    """The gateway is at its own limit of calls or streams (shedding.py): nothing was done."""

    reason = "ERROR_REASON_OVERLOADED"
    retry_safe = True


class Cancelled(PorticoError):
    reason = "ERROR_REASON_CANCELLED"


class Unauthenticated(PorticoError):
    reason = "ERROR_REASON_UNAUTHENTICATED"
    retry_safe = True


class PermissionDenied(PorticoError):
    reason = "ERROR_REASON_PERMISSION_DENIED"
    retry_safe = True


_CONTEXT_HINTS = (
    "context_length_exceeded",
    "context length",
    "context window",
    "prompt is too long",
    "maximum context",
    "too many tokens",
    "input is too long",
    "exceeds the maximum number of tokens",
)


def looks_like_context_overflow(text: str) -> bool:
    """Whether an upstream 400's code or message says the prompt does not fit."""
    lowered = text.lower()
    return any(hint in lowered for hint in _CONTEXT_HINTS)


def clamp_retry_delay(seconds: float | None, longest: float = MAX_RETRY_DELAY) -> float | None:
    """A retry hint made safe: None for nonsense (NaN, negative), at most `longest`
    (an hour unless the gateway itself knows better, as for a budget's window)."""
    if seconds is None or math.isnan(seconds) or seconds < 0:
        return None
    return min(seconds, longest)


def _number(text: str) -> float | None:
    try:
        return float(text)
    except (ValueError, OverflowError):
        return None


def parse_retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds to wait from `retry-after-ms` or `retry-after` (delta seconds or HTTP date).

    Whatever an upstream puts there ("inf", "1e20", "soon", "-3") gives a delay between
    zero and an hour, or None; never an exception.
    """
    ms = headers.get("retry-after-ms")
    if ms:
        millis = _number(ms)
        if millis is not None:
            delay = clamp_retry_delay(millis / 1000.0)
            if delay is not None:
                return delay
    value = headers.get("retry-after")
    if not value:
        return None
    seconds = _number(value)
    if seconds is not None:
        return clamp_retry_delay(seconds)
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=datetime.UTC)
    return clamp_retry_delay(max(0.0, parsed.timestamp() - time.time()))


def upstream_error(
    status: int,
    message: str,
    *,
    provider: str,
    code: str = "",
    retry_after: float | None = None,
) -> UpstreamError:
    """Map an upstream HTTP error status (plus the provider's error code/type) to an exception.

    `message` must already be safe to show a caller (no key, no raw body dump).
    """
    code_l = code.lower()
    cls: type[UpstreamError]
    if status in (400, 422) or (status == 413 and "token" in code_l + message.lower()):
        overflow = looks_like_context_overflow(code) or looks_like_context_overflow(message)
        cls = ContextLengthExceeded if overflow else UpstreamBadRequest
    elif status == 413:
        cls = UpstreamBadRequest
    elif status in (401, 403):
        cls = UpstreamAuth
    elif status == 404:
        cls = UpstreamModelNotFound
    elif status == 408:
        cls = UpstreamTimeout
    elif status == 429:
        quota = "insufficient_quota" in code_l or "quota" in code_l
        cls = UpstreamQuotaExceeded if quota else UpstreamRateLimited
    elif status == 529 or "overloaded" in code_l:
        cls = UpstreamOverloaded
    elif status >= 500:
        cls = UpstreamUnavailable
    else:
        cls = UpstreamBadRequest
    meta = {"upstream_code": code} if code else None
    if cls is UpstreamQuotaExceeded:
        retry_after = None  # waiting does not refill a quota
    # 408 and 503 say the server did not take the request on (RFC 9110 15.5.9, 15.6.4);
    # a 500, 502 or 504 may come after the model already ran.
    safe = True if status in (408, 503) else None
    return cls(message, provider=provider, status=status, retry_after=retry_after, metadata=meta, retry_safe=safe)
