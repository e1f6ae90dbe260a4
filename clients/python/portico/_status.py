"""Turns a failed gRPC call into the matching typed exception, details decoded."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import grpc
from google.protobuf.message import DecodeError
from google.rpc import error_details_pb2, status_pb2

from ._errors import STATUS_ERRORS, ConnectionFailedError, FieldViolation, StatusError
from ._trace import trace_from_metadata

_DETAILS_KEY = "grpc-status-details-bin"
_REQUEST_ID_KEY = "x-request-id"
_PORTICO_DOMAIN = "portico"


def error_from_rpc(error: grpc.RpcError) -> StatusError:
    """The typed exception for a failed call (sync or asyncio), details decoded.

    Reads `google.rpc.Status` from the `grpc-status-details-bin` trailer: ErrorInfo
    gives reason, domain and metadata; RetryInfo `retry_after`; BadRequest the field
    violations. A status without them (a transport failure) still maps by its code.
    """
    code: grpc.StatusCode = error.code() or grpc.StatusCode.UNKNOWN
    message: str = error.details() or ""
    trailing = list(error.trailing_metadata() or ())
    details = _status_details(trailing)
    request_id = next((str(v) for k, v in trailing if k == _REQUEST_ID_KEY), "")
    trace = trace_from_metadata(trailing)

    reason = domain = ""
    metadata: dict[str, str] = {}
    retry_after: float | None = None
    violations: list[FieldViolation] = []
    for any_detail in details.details if details is not None else ():
        if any_detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            any_detail.Unpack(info)
            reason, domain, metadata = info.reason, info.domain, dict(info.metadata)
        elif any_detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            retry = error_details_pb2.RetryInfo()
            any_detail.Unpack(retry)
            retry_after = retry.retry_delay.seconds + retry.retry_delay.nanos / 1e9
        elif any_detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            any_detail.Unpack(bad)
            violations.extend(FieldViolation(v.field, v.description) for v in bad.field_violations)

    cls = STATUS_ERRORS.get(code, StatusError)
    if code is grpc.StatusCode.UNAVAILABLE and domain != _PORTICO_DOMAIN:
        # No Portico ErrorInfo: the call never reached the gateway (or a proxy in
        # front of it answered), which callers usually handle apart from provider outages.
        cls = ConnectionFailedError
    return cls(
        code,
        message,
        reason=reason,
        domain=domain,
        metadata=metadata,
        retry_after=retry_after,
        field_violations=violations,
        request_id=request_id,
        attempts=trace.attempts,
        overhead_ms=trace.overhead_ms,
    )


def _status_details(trailing: Iterable[tuple[str, Any]] | None) -> Any:
    for key, value in trailing or ():
        if key == _DETAILS_KEY and isinstance(value, bytes):
            try:
                return status_pb2.Status.FromString(value)
            except DecodeError:  # a malformed trailer must not hide the status itself
                return None
    return None
