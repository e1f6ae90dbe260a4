"""Anthropic's errors as domain exceptions: error bodies, `error` events mid-stream, and
the `anthropic-ratelimit-*` headers of a 429."""

from __future__ import annotations

import datetime
import json
import re
from collections.abc import Mapping
from typing import Any

from ...errors import (
    ContextLengthExceeded,
    UpstreamError,
    UpstreamQuotaExceeded,
    UpstreamTimeout,
    parse_retry_after,
    upstream_error,
)
from ..http import HttpProvider

#: The HTTP status each documented error type comes with (an `error` event mid-stream
#: carries only the type).
_STATUS_OF_ERROR_TYPE = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}
#: Besides the shared hints: "input length and `max_tokens` exceed context limit: ...".
_CONTEXT_LIMIT = re.compile(r"exceeds? (the )?context limit", re.IGNORECASE)
_RATE_LIMITS = ("requests", "tokens", "input-tokens", "output-tokens")


def error_from_response(provider: HttpProvider, status: int, headers: Mapping[str, str], body: bytes) -> UpstreamError:
    """The domain exception for an error response."""
    message, kind, request_id = _error_fields(body)
    retry_after = parse_retry_after(headers)
    exhausted: list[str] = []
    if status == 429:
        wait, exhausted = _rate_limit_wait(headers)
        if retry_after is None:
            retry_after = wait
    err = _error_for(provider, kind, message, status=status, retry_after=retry_after,
                    request_id=headers.get("request-id") or request_id)
    if exhausted:
        err.metadata["rate_limits_exhausted"] = ",".join(exhausted)
    return err


def error_from_event(provider: HttpProvider, data: Mapping[str, Any]) -> UpstreamError:
    """The domain exception for an `error` event, which may arrive after HTTP 200."""
    err = data.get("error")
    if not isinstance(err, dict):
        err = {}
    kind = str(err.get("type") or "api_error")
    return _error_for(provider, kind, str(err.get("message") or ""), status=_STATUS_OF_ERROR_TYPE.get(kind, 500),
                     request_id=str(data.get("request_id") or ""))


def _error_for(
    provider: HttpProvider,
    kind: str,
    message: str,
    *,
    status: int,
    retry_after: float | None = None,
    request_id: str = "",
) -> UpstreamError:
    """The domain exception for an Anthropic error type (from a body or an event)."""
    name = provider.name
    text = f"provider {name!r}: {provider.scrub(message) or f'HTTP {status}'}"
    meta = {"upstream_code": provider.scrub(kind)} if kind else {}
    err: UpstreamError
    if kind == "billing_error" or status == 402:
        err = UpstreamQuotaExceeded(text, provider=name, status=status, metadata=meta)
    elif kind == "timeout_error":
        err = UpstreamTimeout(text, provider=name, status=status, metadata=meta)
    elif status == 400 and _CONTEXT_LIMIT.search(message):
        err = ContextLengthExceeded(text, provider=name, status=status, metadata=meta)
    else:
        err = upstream_error(status, text, provider=name, code=meta.get("upstream_code", ""),
                             retry_after=retry_after)
    if request_id:
        err.metadata["request_id"] = provider.scrub(request_id)
    return err


def _error_fields(body: bytes) -> tuple[str, str, str]:
    """(message, error type, request id) from `{"type":"error","error":{...},"request_id":...}`."""
    try:
        data = json.loads(body)
    except ValueError:
        return "", "", ""
    if not isinstance(data, dict):
        return "", "", ""
    err = data.get("error")
    if not isinstance(err, dict):
        return "", "", str(data.get("request_id") or "")
    return str(err.get("message") or ""), str(err.get("type") or ""), str(data.get("request_id") or "")


def _rate_limit_wait(headers: Mapping[str, str]) -> tuple[float | None, list[str]]:
    """Seconds until every exhausted `anthropic-ratelimit-*` limit resets, and their names."""
    exhausted: list[str] = []
    wait: float | None = None
    now = datetime.datetime.now(datetime.UTC)
    for limit in _RATE_LIMITS:
        if headers.get(f"anthropic-ratelimit-{limit}-remaining") != "0":
            continue
        exhausted.append(limit)
        reset = headers.get(f"anthropic-ratelimit-{limit}-reset", "")
        try:
            at = datetime.datetime.fromisoformat(reset)
        except ValueError:
            continue
        if at.tzinfo is None:
            at = at.replace(tzinfo=datetime.UTC)
        seconds = max(0.0, (at - now).total_seconds())
        wait = seconds if wait is None else max(wait, seconds)
    return wait, exhausted
