"""Replicate's errors as domain exceptions: the problem-details bodies of failed calls
(`{"title", "detail", "status"}`), failed or canceled predictions, and `error` events."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from ...errors import UpstreamError, UpstreamQuotaExceeded, parse_retry_after, upstream_error

Scrub = Callable[[str], str]


def error_from_response(status: int, headers: Mapping[str, str], body: bytes, *,
                        provider: str, scrub: Scrub) -> UpstreamError:
    """A failed call as an exception. 402 is Replicate's "insufficient credit"."""
    title, detail = _problem(body)
    text = scrub(detail or title) or f"HTTP {status}"
    message = f"provider {provider!r}: {text}"
    code = scrub(title)
    if status == 402:
        return UpstreamQuotaExceeded(message, provider=provider, status=status,
                                     metadata={"upstream_code": code} if code else None)
    return upstream_error(status, message, provider=provider, code=code, retry_after=parse_retry_after(headers))


def error_from_prediction(prediction: Mapping[str, Any], *, provider: str, scrub: Scrub) -> UpstreamError:
    """A prediction that ended `failed` or `canceled`. The model ran and gave up (or
    someone stopped it): an upstream failure, not the caller's request."""
    status = str(prediction.get("status") or "")
    error = prediction.get("error")
    detail = scrub(error if isinstance(error, str) else json.dumps(error)) if error else ""
    text = detail or f"the prediction ended {status}"
    err = upstream_error(500, f"provider {provider!r}: {text}", provider=provider, code=f"prediction_{status}")
    err.metadata["prediction_id"] = scrub(str(prediction.get("id") or ""))
    return err


def error_from_event(data: str, *, provider: str, scrub: Scrub) -> UpstreamError:
    """An `error` event of a prediction's stream (`{"detail": ...}`, or bare text)."""
    detail = data
    try:
        value = json.loads(data)
    except ValueError:
        value = None
    if isinstance(value, dict):
        detail = str(value.get("detail") or value.get("error") or "")
    text = scrub(detail) or "error event in the prediction's stream"
    return upstream_error(500, f"provider {provider!r}: {text}", provider=provider, code="prediction_failed")


def _problem(body: bytes) -> tuple[str, str]:
    try:
        data = json.loads(body)
    except ValueError:
        return "", ""
    if not isinstance(data, dict):
        return "", ""
    detail = data.get("detail")
    if isinstance(detail, list):  # a FastAPI-style list of field errors
        detail = "; ".join(str(d.get("msg", d)) if isinstance(d, dict) else str(d) for d in detail[:5])
    return str(data.get("title") or ""), str(detail or "").strip()
