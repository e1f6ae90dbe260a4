"""The error table: domain exceptions to gRPC statuses with `google.rpc` details.

This is the only place that decides which status code a failure gets. Every status
carries one ErrorInfo (domain "portico"), plus RetryInfo where waiting helps and
BadRequest for invalid fields.
"""

from __future__ import annotations

import math

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from . import errors
from .redaction import redact

DOMAIN = "portico"

_CODE_BY_REASON: dict[str, grpc.StatusCode] = {
    "ERROR_REASON_INVALID_REQUEST": grpc.StatusCode.INVALID_ARGUMENT,
    "ERROR_REASON_REQUEST_TOO_LARGE": grpc.StatusCode.INVALID_ARGUMENT,
    "ERROR_REASON_UNKNOWN_PROVIDER": grpc.StatusCode.NOT_FOUND,
    "ERROR_REASON_UNKNOWN_MODEL": grpc.StatusCode.NOT_FOUND,
    "ERROR_REASON_CAPABILITY_UNSUPPORTED": grpc.StatusCode.INVALID_ARGUMENT,
    "ERROR_REASON_UPSTREAM_BAD_REQUEST": grpc.StatusCode.INVALID_ARGUMENT,
    "ERROR_REASON_CONTEXT_LENGTH_EXCEEDED": grpc.StatusCode.INVALID_ARGUMENT,
    "ERROR_REASON_UPSTREAM_AUTH": grpc.StatusCode.FAILED_PRECONDITION,
    "ERROR_REASON_UPSTREAM_MODEL_NOT_FOUND": grpc.StatusCode.NOT_FOUND,
    "ERROR_REASON_UPSTREAM_RATE_LIMITED": grpc.StatusCode.RESOURCE_EXHAUSTED,
    "ERROR_REASON_UPSTREAM_QUOTA_EXCEEDED": grpc.StatusCode.RESOURCE_EXHAUSTED,
    "ERROR_REASON_UPSTREAM_UNAVAILABLE": grpc.StatusCode.UNAVAILABLE,
    "ERROR_REASON_UPSTREAM_OVERLOADED": grpc.StatusCode.UNAVAILABLE,
    "ERROR_REASON_UPSTREAM_CONNECTION": grpc.StatusCode.UNAVAILABLE,
    "ERROR_REASON_UPSTREAM_PROTOCOL": grpc.StatusCode.UNAVAILABLE,
    "ERROR_REASON_UPSTREAM_TIMEOUT": grpc.StatusCode.UNAVAILABLE,
    "ERROR_REASON_UPSTREAM_POOL_EXHAUSTED": grpc.StatusCode.UNAVAILABLE,
    "ERROR_REASON_RATE_LIMITED": grpc.StatusCode.RESOURCE_EXHAUSTED,
    "ERROR_REASON_CIRCUIT_OPEN": grpc.StatusCode.UNAVAILABLE,
    "ERROR_REASON_DEADLINE_EXCEEDED": grpc.StatusCode.DEADLINE_EXCEEDED,
    "ERROR_REASON_SHUTTING_DOWN": grpc.StatusCode.UNAVAILABLE,
    "ERROR_REASON_UNAUTHENTICATED": grpc.StatusCode.UNAUTHENTICATED,
    "ERROR_REASON_PERMISSION_DENIED": grpc.StatusCode.PERMISSION_DENIED,
    "ERROR_REASON_CANCELLED": grpc.StatusCode.CANCELLED,
    "ERROR_REASON_INTERNAL": grpc.StatusCode.INTERNAL,
}

#: Reasons whose RetryInfo is sent even without a known delay: waiting is the remedy.
_DEFAULT_RETRY_DELAY = {
    "ERROR_REASON_UPSTREAM_RATE_LIMITED": 1.0,
    "ERROR_REASON_RATE_LIMITED": 1.0,
}


def code_for(exc: errors.PorticoError) -> grpc.StatusCode:
    return _CODE_BY_REASON.get(exc.reason, grpc.StatusCode.INTERNAL)


def _pack(message: object) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)  # type: ignore[arg-type]
    return packed


def to_rpc_status(exc: errors.PorticoError) -> grpc.Status:
    """The gRPC status (code, message, details trailer) for a domain exception."""
    code = code_for(exc)
    # Every configured secret is removed here too, whatever path the error took.
    metadata = {key: redact(value) for key, value in exc.metadata.items()}
    details = [
        _pack(error_details_pb2.ErrorInfo(reason=exc.reason, domain=DOMAIN, metadata=metadata))
    ]
    delay = exc.retry_after if exc.retry_after is not None else _DEFAULT_RETRY_DELAY.get(exc.reason)
    delay = errors.clamp_retry_delay(delay)  # whoever set it: finite, 0 to an hour
    if delay is not None:
        seconds = math.floor(delay)
        details.append(_pack(error_details_pb2.RetryInfo(
            retry_delay=duration_pb2.Duration(seconds=seconds, nanos=int((delay - seconds) * 1e9))
        )))
    if isinstance(exc, errors.InvalidRequest) and exc.violations:
        details.append(_pack(error_details_pb2.BadRequest(field_violations=[
            error_details_pb2.BadRequest.FieldViolation(field=f, description=d) for f, d in exc.violations
        ])))
    elif isinstance(exc, errors.RequestTooLarge) and exc.field:
        details.append(_pack(error_details_pb2.BadRequest(field_violations=[
            error_details_pb2.BadRequest.FieldViolation(field=exc.field, description=exc.message)
        ])))
    status = status_pb2.Status(code=code.value[0], message=redact(exc.message), details=details)
    return rpc_status.to_status(status)


def internal_status() -> grpc.Status:
    """For a bug: no traceback, no secret, no upstream body in what the caller sees."""
    exc = errors.PorticoError("internal error in the gateway; the server log has the details")
    return to_rpc_status(exc)

