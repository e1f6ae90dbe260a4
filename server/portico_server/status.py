"""The error table: domain exceptions to gRPC statuses with `google.rpc` details.

This is the only place that decides which status code a failure gets. Every status
carries one ErrorInfo (domain "portico"), plus RetryInfo where waiting helps and
BadRequest for invalid fields. ErrorInfo's metadata always holds `retry_safe`, "true" or
"false": whether re-sending the request cannot start a second generation at a provider.
Clients retry on their own only an UNAVAILABLE status that says "true".
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
#: The ErrorInfo metadata key that tells clients whether re-sending the call is safe.
RETRY_SAFE_KEY = "retry_safe"

_CODE_BY_REASON: dict[str, grpc.StatusCode] = {
    "ERROR_REASON_INVALID_REQUEST": grpc.StatusCode.INVALID_ARGUMENT,
    "ERROR_REASON_REQUEST_TOO_LARGE": grpc.StatusCode.INVALID_ARGUMENT,
    "ERROR_REASON_UNKNOWN_PROVIDER": grpc.StatusCode.NOT_FOUND,
    "ERROR_REASON_UNKNOWN_MODEL": grpc.StatusCode.NOT_FOUND,
    "ERROR_REASON_CAPABILITY_UNSUPPORTED": grpc.StatusCode.INVALID_ARGUMENT,
    "ERROR_REASON_NOT_FOUND": grpc.StatusCode.NOT_FOUND,
    "ERROR_REASON_ALREADY_EXISTS": grpc.StatusCode.ALREADY_EXISTS,
    "ERROR_REASON_UPSTREAM_BAD_REQUEST": grpc.StatusCode.INVALID_ARGUMENT,
    "ERROR_REASON_CONTEXT_LENGTH_EXCEEDED": grpc.StatusCode.INVALID_ARGUMENT,
    "ERROR_REASON_UPSTREAM_AUTH": grpc.StatusCode.FAILED_PRECONDITION,
    "ERROR_REASON_UPSTREAM_MODEL_NOT_FOUND": grpc.StatusCode.NOT_FOUND,
    "ERROR_REASON_UPSTREAM_RATE_LIMITED": grpc.StatusCode.RESOURCE_EXHAUSTED,
    "ERROR_REASON_UPSTREAM_QUOTA_EXCEEDED": grpc.StatusCode.RESOURCE_EXHAUSTED,
    "ERROR_REASON_UPSTREAM_UNAVAILABLE": grpc.StatusCode.UNAVAILABLE,
    "ERROR_REASON_UPSTREAM_OVERLOADED": grpc.StatusCode.UNAVAILABLE,
    "ERROR_REASON_UPSTREAM_CONNECTION": grpc.StatusCode.UNAVAILABLE,
    "ERROR_REASON_UPSTREAM_POOL_EXHAUSTED": grpc.StatusCode.UNAVAILABLE,
    "ERROR_REASON_UPSTREAM_PROTOCOL": grpc.StatusCode.UNAVAILABLE,
    "ERROR_REASON_UPSTREAM_TIMEOUT": grpc.StatusCode.UNAVAILABLE,
    "ERROR_REASON_RATE_LIMITED": grpc.StatusCode.RESOURCE_EXHAUSTED,
    "ERROR_REASON_CIRCUIT_OPEN": grpc.StatusCode.UNAVAILABLE,
    "ERROR_REASON_DEADLINE_EXCEEDED": grpc.StatusCode.DEADLINE_EXCEEDED,
    "ERROR_REASON_SHUTTING_DOWN": grpc.StatusCode.UNAVAILABLE,
    "ERROR_REASON_UNAUTHENTICATED": grpc.StatusCode.UNAUTHENTICATED,
    "ERROR_REASON_PERMISSION_DENIED": grpc.StatusCode.PERMISSION_DENIED,
    "ERROR_REASON_CANCELLED": grpc.StatusCode.CANCELLED,
    "ERROR_REASON_OVERLOADED": grpc.StatusCode.RESOURCE_EXHAUSTED,
    "ERROR_REASON_INTERNAL": grpc.StatusCode.INTERNAL,
}

#: Reasons whose RetryInfo is sent even without a known delay: waiting is the remedy.
_DEFAULT_RETRY_DELAY = {
    "ERROR_REASON_UPSTREAM_RATE_LIMITED": 1.0,
    "ERROR_REASON_RATE_LIMITED": 1.0,
}


# A status leaves as two trailers: `grpc-message` (the message, percent-encoded) and
# `grpc-status-details-bin` (the whole Status, message included, base64-encoded). gRPC
# refuses trailers past 8 KiB in all, so everything a caller sent and we echo is clipped
# here, and the violations list is cut short, which keeps any status under 6 KiB on the wire.
MAX_MESSAGE_BYTES = 512
MAX_METADATA_KEY_BYTES = 64
MAX_METADATA_VALUE_BYTES = 128
MAX_METADATA_ENTRIES = 12
MAX_FIELD_BYTES = 128
MAX_DESCRIPTION_BYTES = 160
MAX_VIOLATIONS = 8
_ELLIPSIS = "..."


def clip(text: str, max_bytes: int) -> str:
    """`text` cut to at most `max_bytes` of UTF-8, ending in "..." when it was cut."""
    encoded = text.encode("utf-8")
    if len(encoded) <= max_bytes:
        return text
    return encoded[: max_bytes - len(_ELLIPSIS)].decode("utf-8", "ignore") + _ELLIPSIS


def _violations(pairs: list[tuple[str, str]]) -> error_details_pb2.BadRequest:
    shown = [
        error_details_pb2.BadRequest.FieldViolation(
            field=clip(f, MAX_FIELD_BYTES), description=clip(d, MAX_DESCRIPTION_BYTES)
        )
        for f, d in pairs[:MAX_VIOLATIONS]
    ]
    if len(pairs) > MAX_VIOLATIONS:
        shown[-1].description = clip(
            f"{shown[-1].description} (and {len(pairs) - MAX_VIOLATIONS} more problems not listed)",
            MAX_DESCRIPTION_BYTES + 48,
        )
    return error_details_pb2.BadRequest(field_violations=shown)


def code_for(exc: errors.PorticoError) -> grpc.StatusCode:
    if isinstance(exc, errors.ModelFeatureUnsupported):
        return grpc.StatusCode.FAILED_PRECONDITION
    return _CODE_BY_REASON.get(exc.reason, grpc.StatusCode.INTERNAL)


def _pack(message: object) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)  # type: ignore[arg-type]
    return packed


def to_rpc_status(exc: errors.PorticoError) -> grpc.Status:
    """The gRPC status (code, message, details trailer) for a domain exception."""
    code = code_for(exc)
    # Every configured secret is removed here too, whatever path the error took.
    metadata = {
        clip(k, MAX_METADATA_KEY_BYTES): clip(redact(v), MAX_METADATA_VALUE_BYTES)
        for k, v in list(exc.metadata.items())[:MAX_METADATA_ENTRIES]
    }
    metadata[RETRY_SAFE_KEY] = "true" if exc.retry_safe else "false"
    details = [_pack(error_details_pb2.ErrorInfo(reason=exc.reason, domain=DOMAIN, metadata=metadata))]
    delay = exc.retry_after if exc.retry_after is not None else _DEFAULT_RETRY_DELAY.get(exc.reason)
    # Whoever set it: finite, from 0 to the longest the error allows.
    delay = errors.clamp_retry_delay(delay, exc.max_retry_delay)
    if delay is not None:
        seconds = math.floor(delay)
        details.append(_pack(error_details_pb2.RetryInfo(
            retry_delay=duration_pb2.Duration(seconds=seconds, nanos=int((delay - seconds) * 1e9))
        )))
    if isinstance(exc, errors.InvalidRequest) and exc.violations:
        details.append(_pack(_violations(exc.violations)))
    elif isinstance(exc, errors.RequestTooLarge) and exc.field:
        details.append(_pack(_violations([(exc.field, exc.message)])))
    message = clip(redact(exc.message), MAX_MESSAGE_BYTES)
    status = status_pb2.Status(code=code.value[0], message=message, details=details)
    return rpc_status.to_status(status)


def internal_status() -> grpc.Status:
    """For a bug: no traceback, no secret, no upstream body in what the caller sees."""
    exc = errors.PorticoError("internal error in the gateway; the server log has the details")
    return to_rpc_status(exc)

