"""Bedrock's errors as domain exceptions: error responses (the exception's name in the
`x-amzn-ErrorType` header or the body's `__type`) and exception frames of an event
stream, which may arrive after HTTP 200."""

from __future__ import annotations

import json
from collections.abc import Mapping

from ...errors import (
    UpstreamAuth,
    UpstreamError,
    UpstreamModelNotFound,
    UpstreamRateLimited,
    UpstreamTimeout,
    UpstreamUnavailable,
    parse_retry_after,
    upstream_error,
)
from ..http import HttpProvider

#: The HTTP status each documented exception comes with (an exception frame carries
#: only its name).
_STATUS_OF_EXCEPTION = {
    "validationexception": 400,
    "servicequotaexceededexception": 400,
    "accessdeniedexception": 403,
    "unrecognizedclientexception": 403,
    "invalidsignatureexception": 403,
    "expiredtokenexception": 403,
    "resourcenotfoundexception": 404,
    "modeltimeoutexception": 408,
    "conflictexception": 400,
    "modelerrorexception": 424,
    "modelstreamerrorexception": 424,
    "throttlingexception": 429,
    "modelnotreadyexception": 429,
    "internalserverexception": 500,
    "serviceunavailableexception": 503,
}
#: Signing and credential failures arrive as 403 under these names.
_CREDENTIAL_FAULTS = frozenset({
    "accessdeniedexception", "unrecognizedclientexception", "invalidsignatureexception", "expiredtokenexception",
    "missingauthenticationtokenexception", "incompletesignatureexception", "signaturedoesnotmatch",
})


def exception_name(headers: Mapping[str, str], body: bytes) -> str:
    """`ThrottlingException` from `x-amzn-ErrorType: ThrottlingException:http://...` or
    from the body's `__type` (which may be namespaced, `com.amazon...#Name`)."""
    name = headers.get("x-amzn-errortype", "") or headers.get("x-amzn-ErrorType", "")
    if not name:
        try:
            data = json.loads(body)
        except ValueError:
            data = None
        if isinstance(data, dict):
            name = str(data.get("__type") or data.get("code") or "")
    return name.split(":", 1)[0].rsplit("#", 1)[-1]


def _message(body: bytes) -> str:
    try:
        data = json.loads(body)
    except ValueError:
        return ""
    if not isinstance(data, dict):
        return ""
    return str(data.get("message") or data.get("Message") or "")


def error_from_response(provider: HttpProvider, status: int, headers: Mapping[str, str], body: bytes) -> UpstreamError:
    """The domain exception for an error response."""
    err = error_for(provider, exception_name(headers, body), _message(body), status=status,
                    retry_after=parse_retry_after(headers))
    request_id = headers.get("x-amzn-requestid", "")
    if request_id:
        err.metadata["request_id"] = provider.scrub(request_id)
    return err


def error_from_exception_frame(provider: HttpProvider, name: str, payload: bytes, message: str = "") -> UpstreamError:
    """The domain exception for an exception frame mid-stream (its message in the JSON
    payload), or an error frame (`:error-code`, its message in `:error-message`)."""
    status = _STATUS_OF_EXCEPTION.get(name.lower(), 500)
    return error_for(provider, name, message or _message(payload), status=status)


def error_for(provider: HttpProvider, name: str, message: str, *, status: int,
              retry_after: float | None = None) -> UpstreamError:
    pname = provider.name
    text = f"provider {pname!r}: {provider.scrub(message) or name or f'HTTP {status}'}"
    code = provider.scrub(name)
    meta = {"upstream_code": code} if code else {}
    key = name.lower()
    err: UpstreamError
    if key in _CREDENTIAL_FAULTS:
        # Either the credentials are wrong or they lack bedrock:InvokeModel on the model.
        err = UpstreamAuth(text, provider=pname, status=status, metadata=meta)
    elif key == "resourcenotfoundexception":
        err = UpstreamModelNotFound(text, provider=pname, status=status, metadata=meta)
    elif key == "servicequotaexceededexception":
        # AWS: "resubmit your request later" -- a per-account quota window, not spent credit.
        err = UpstreamRateLimited(text, provider=pname, status=status, metadata=meta, retry_after=retry_after)
    elif key == "modelnotreadyexception":
        # The model is being loaded; AWS's own SDKs retry this. No work was done.
        err = UpstreamUnavailable(text, provider=pname, status=status, metadata=meta, retry_after=retry_after,
                                  retry_safe=True)
    elif key == "modeltimeoutexception":
        err = UpstreamTimeout(text, provider=pname, status=status, metadata=meta)
    elif key in ("modelerrorexception", "modelstreamerrorexception"):
        err = UpstreamUnavailable(text, provider=pname, status=status, metadata=meta)
    else:
        err = upstream_error(status, text, provider=pname, code=code, retry_after=retry_after)
    return err
