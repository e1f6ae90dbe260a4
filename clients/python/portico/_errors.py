"""Exceptions the client raises, one class per gRPC status the gateway uses.

    PorticoError                      anything this client raises
    ├── StatusError                   the call ended with a non-OK gRPC status
    │   ├── InvalidArgumentError      bad input; `field_violations` names the fields
    │   ├── NotFoundError             unknown provider, model or alias
    │   ├── FailedPreconditionError   e.g. the provider rejected the gateway's key
    │   ├── ResourceExhaustedError    rate limited (`retry_after`) or out of quota
    │   ├── UnavailableError          the provider or gateway failed; see `retry_safe`
    │   │   └── ConnectionFailedError the gateway could not be reached at all
    │   ├── DeadlineExceededError     the call's timeout passed
    │   ├── UnauthenticatedError
    │   ├── PermissionDeniedError
    │   ├── CallCancelledError
    │   └── InternalError             a bug in the gateway
    ├── IncompleteStreamError         a stream ended without its final chunk
    └── ResponseParseError            `response_model` could not parse the answer

Every `StatusError` carries what the gateway put in its `google.rpc.Status` details:
`reason` (an `ErrorReason` value name such as "ERROR_REASON_UPSTREAM_RATE_LIMITED"),
`domain`, `metadata`, `retry_after` (seconds, from RetryInfo) and `field_violations`
(from BadRequest); `retry_safe` says whether sending the call again cannot start a
second generation; `request_id`, the id the gateway logged the call under; and
`attempts` and `overhead_ms`, the gateway's attempt trace.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import grpc

from ._trace import Attempt


@dataclass(frozen=True, slots=True)
class FieldViolation:
    """One invalid request field, from a `google.rpc.BadRequest` detail."""

    field: str
    description: str


class PorticoError(Exception):
    """Base of every exception this client raises."""


class StatusError(PorticoError):
    """The call ended with a non-OK gRPC status."""

    def __init__(
        self,
        code: grpc.StatusCode,
        message: str,
        *,
        reason: str = "",
        domain: str = "",
        metadata: Mapping[str, str] | None = None,
        retry_after: float | None = None,
        field_violations: Sequence[FieldViolation] = (),
        request_id: str = "",
        attempts: Sequence[Attempt] = (),
        overhead_ms: float | None = None,
    ) -> None:
        super().__init__(f"{code.name}: {message}" if message else code.name)
        self.code = code
        self.message = message
        #: The `ErrorReason` value name, or "" when the status carried no ErrorInfo.
        self.reason = reason
        self.domain = domain
        self.metadata: dict[str, str] = dict(metadata or {})
        #: Seconds to wait before trying again, when the gateway said (RetryInfo).
        self.retry_after = retry_after
        self.field_violations: list[FieldViolation] = list(field_violations)
        #: The call's request id (the `x-request-id` trailer): yours, or the one the
        #: gateway made; "" when the call did not reach the gateway.
        self.request_id = request_id
        #: Each attempt the gateway made before giving up (the `portico-attempts` trailer).
        self.attempts: list[Attempt] = list(attempts)
        #: The gateway's own milliseconds (`portico-overhead-ms`), or None.
        self.overhead_ms = overhead_ms

    @property
    def retry_safe(self) -> bool:
        """Whether the gateway said sending this call again cannot start a second
        generation at a provider (ErrorInfo metadata `retry_safe` = "true")."""
        return self.domain == "portico" and self.metadata.get("retry_safe") == "true"


class InvalidArgumentError(StatusError):
    """INVALID_ARGUMENT: the request (or what the provider made of it) is invalid."""


class NotFoundError(StatusError):
    """NOT_FOUND: no such provider, model, alias or vector collection."""


class AlreadyExistsError(StatusError):
    """ALREADY_EXISTS: a vector collection with that name exists already."""


class FailedPreconditionError(StatusError):
    """FAILED_PRECONDITION: an operator must fix something, e.g. the gateway's API key."""


class ResourceExhaustedError(StatusError):
    """RESOURCE_EXHAUSTED: rate limited (wait `retry_after`) or out of quota. A rate limit
    with a delay of 60 s or less was already waited out and retried by the client, within
    its retry policy and the call's deadline."""


class UnavailableError(StatusError):
    """UNAVAILABLE: the provider or the gateway failed. Trying again may help; it is safe
    only when `retry_safe` is true, and then the client has already done it."""


class ConnectionFailedError(UnavailableError):
    """The gateway could not be reached (no Portico error details in the status)."""


class DeadlineExceededError(StatusError):
    """DEADLINE_EXCEEDED: the call's timeout passed before the answer was ready."""


class UnauthenticatedError(StatusError):
    """UNAUTHENTICATED: the call carried no credentials or unknown ones."""


class PermissionDeniedError(StatusError):
    """PERMISSION_DENIED: the credentials do not allow this call."""


class CallCancelledError(StatusError):
    """CANCELLED: the call was cancelled."""


class InternalError(StatusError):
    """INTERNAL: a bug in the gateway."""


class IncompleteStreamError(PorticoError):
    """The stream ended with an OK status but without its final chunk."""


class ResponseParseError(PorticoError):
    """The answer's content did not parse as the requested `response_model`."""

    def __init__(self, message: str, *, response: Any) -> None:
        super().__init__(message)
        #: The `CompletionResponse` whose content failed to parse.
        self.response = response


STATUS_ERRORS: dict[grpc.StatusCode, type[StatusError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgumentError,
    grpc.StatusCode.NOT_FOUND: NotFoundError,
    grpc.StatusCode.ALREADY_EXISTS: AlreadyExistsError,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPreconditionError,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhaustedError,
    grpc.StatusCode.UNAVAILABLE: UnavailableError,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceededError,
    grpc.StatusCode.UNAUTHENTICATED: UnauthenticatedError,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDeniedError,
    grpc.StatusCode.CANCELLED: CallCancelledError,
    grpc.StatusCode.INTERNAL: InternalError,
}
