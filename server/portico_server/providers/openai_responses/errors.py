"""Failures reported inside a stream (HTTP 200): `response.failed`, whose response carries
an `error` object, and the `error` event. Failed HTTP calls are read as for every
OpenAI-compatible server (`openai_compat.errors`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ...errors import UpstreamError, upstream_error
from ..openai_compat.errors import Scrub

#: Error codes of failed responses whose status the event does not state.
_STATUS_OF_CODE = {
    "server_error": 500,
    "rate_limit_exceeded": 429,
    "insufficient_quota": 429,
    "context_length_exceeded": 400,
    "vector_store_timeout": 504,
}


def error_from_event(kind: str, data: Mapping[str, Any], *, provider: str, scrub: Scrub) -> UpstreamError:
    """The domain exception for a `response.failed` or `error` event."""
    err: Any = data
    if kind == "response.failed":
        response = data.get("response")
        err = response.get("error") if isinstance(response, dict) else None
    if not isinstance(err, Mapping):
        err = {}
    message = scrub(str(err.get("message") or "")) or f"the response stream reported {kind}"
    code = str(err.get("code") or err.get("type") or "")
    status = _STATUS_OF_CODE.get(code)
    if status is None:
        # `invalid_prompt`, `invalid_image`, ...: the request; anything else: the server.
        status = 400 if code.startswith("invalid_") else 500
    return upstream_error(status, f"provider {provider!r}: {message}", provider=provider, code=scrub(code))
