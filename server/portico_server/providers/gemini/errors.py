"""Gemini's errors (`google.rpc.Status`-shaped JSON) -> Portico's upstream errors."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from ...errors import (
    UpstreamAuth,
    UpstreamError,
    UpstreamOverloaded,
    UpstreamQuotaExceeded,
    UpstreamTimeout,
    clamp_retry_delay,
    upstream_error,
)


def google_error(
    status: int, err: Mapping[str, Any], retry_after: float | None, *, provider: str, scrub: Callable[[str], str]
) -> UpstreamError:
    """Map a `google.rpc.Status`-shaped error (`{code, message, status, details}`) that came
    with HTTP `status`. `scrub` cleans text from upstream before it reaches the caller."""
    message = scrub(str(err.get("message") or "")) or f"HTTP {status}"
    text = f"provider {provider!r}: {message}"
    rpc_status = str(err.get("status") or "")
    reason = ""
    long_quota = ""
    details = err.get("details")
    for detail in details if isinstance(details, list) else []:
        if not isinstance(detail, dict):
            continue
        kind = str(detail.get("@type", ""))
        if kind.endswith("google.rpc.ErrorInfo"):
            reason = str(detail.get("reason") or "")
        elif kind.endswith("google.rpc.RetryInfo") and retry_after is None:
            retry_after = _duration_seconds(detail.get("retryDelay"))
        elif kind.endswith("google.rpc.QuotaFailure"):
            long_quota = long_quota or _long_quota(detail)
    code = scrub(reason or rpc_status)
    meta = {"upstream_code": code} if code else None
    if status == 429 and long_quota:
        # A daily quota does not refill in the seconds RetryInfo suggests: waiting is not
        # the remedy, so no retry delay goes to the caller.
        quota_meta = {**(meta or {}), "quota_id": scrub(long_quota)[:200]}
        return UpstreamQuotaExceeded(text, provider=provider, status=status, metadata=quota_meta)
    # A bad key is a 400 INVALID_ARGUMENT with reason API_KEY_INVALID, not a 401.
    if reason.startswith("API_KEY_") or rpc_status in ("UNAUTHENTICATED", "PERMISSION_DENIED"):
        return UpstreamAuth(text, provider=provider, status=status, metadata=meta)
    if status == 503 and "overload" in message.lower():
        return UpstreamOverloaded(text, provider=provider, status=status, retry_after=retry_after, metadata=meta)
    if status == 504 or rpc_status == "DEADLINE_EXCEEDED":
        return UpstreamTimeout(text, provider=provider, status=status, metadata=meta)
    return upstream_error(status, text, provider=provider, code=code, retry_after=retry_after)


def error_object(body: bytes) -> dict[str, Any]:
    """The error object of an error response's body; empty when there is none."""
    try:
        data = json.loads(body)
    except ValueError:
        return {}
    if isinstance(data, list) and data:
        data = data[0]  # some endpoints wrap the error in a list
    if isinstance(data, dict):
        err = data.get("error", data)
        if isinstance(err, dict):
            return err
        if isinstance(err, str):
            return {"message": err}
    return {}


def stream_error(data: Mapping[str, Any], *, provider: str, scrub: Callable[[str], str]) -> UpstreamError:
    """Map an `{"error": {...}}` stream event. It came after HTTP 200, so the status is the
    object's `code` (500 when that is no HTTP error status)."""
    err = data.get("error")
    obj = err if isinstance(err, dict) else {"message": str(err)}
    code = obj.get("code")
    status = code if isinstance(code, int) and 400 <= code <= 599 else 500
    return google_error(status, obj, None, provider=provider, scrub=scrub)


#: Words in a QuotaFailure violation's quotaId or quotaMetric that name a quota counted
#: over a day or longer (e.g. "GenerateRequestsPerDayPerProjectPerModel-FreeTier").
_LONG_QUOTA_WORDS = ("perday", "per_day", "per-day", "daily", "permonth", "per_month", "monthly")


def _long_quota(detail: Mapping[str, Any]) -> str:
    """The id of the first violated quota counted per day (or longer); "" if none is."""
    violations = detail.get("violations")
    for violation in violations if isinstance(violations, list) else []:
        if not isinstance(violation, dict):
            continue
        quota_id = str(violation.get("quotaId") or "")
        metric = str(violation.get("quotaMetric") or "")
        text = f"{quota_id} {metric}".lower()
        if any(word in text for word in _LONG_QUOTA_WORDS):
            return quota_id or metric
    return ""


def _duration_seconds(value: Any) -> float | None:
    """A protobuf JSON Duration ("20s", "20.706s") in seconds; None when it is not one
    ("infs", "nans", negative), so a hint that makes no sense is ignored."""
    if not isinstance(value, str) or not value.endswith("s"):
        return None
    try:
        seconds = float(value[:-1])
    except (ValueError, OverflowError):
        return None
    return clamp_retry_delay(seconds)
