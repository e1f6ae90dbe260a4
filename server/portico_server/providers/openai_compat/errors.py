"""Upstream errors as domain exceptions: the error bodies and rate-limit headers of failed
calls, and error objects that arrive with HTTP 200 (mid-stream, or from a proxy)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from typing import Any

from ...errors import UpstreamError, clamp_retry_delay, parse_retry_after, upstream_error
from ..http import extract_error

#: Cleans text that came from upstream (the key and key-shaped strings removed).
Scrub = Callable[[str], str]


# Key-shaped strings that upstream messages echo (OpenAI's 401 quotes a masked key).
_KEY_SHAPES = re.compile(
    r"(?i)(?:\b(?:sk|gsk|xai|pplx|csk|fw|hf|nvapi|or)[-_][A-Za-z0-9*._\-]{6,})"
    r"|(?<=API key provided: )\S+"
)


def redact_key_shapes(text: str) -> str:
    return _KEY_SHAPES.sub("[redacted]", text)


def error_from_payload(err: Any, provider: str, scrub: Scrub | None = None) -> UpstreamError:
    """An error object sent with HTTP 200 (mid-stream, or by a proxy) as an exception.

    With no HTTP status to go by, the status is inferred from the error's code or type.
    """
    clean: Scrub = scrub or redact_key_shapes
    code: Any = ""
    if isinstance(err, str):
        message = err
    elif isinstance(err, dict):
        message = str(err.get("message") or "")
        code = err.get("code") if err.get("code") not in (None, "") else err.get("type")
    else:
        message = ""
    status = 0
    if isinstance(code, int) and 400 <= code < 600:
        status = code
    elif isinstance(code, str) and code.isdigit() and 400 <= int(code) < 600:
        status = int(code)
    code_text = str(code or "")
    if not status:
        lowered = code_text.lower()
        if "quota" in lowered or "rate_limit" in lowered or lowered in ("tokens", "requests"):
            status = 429
        elif "overloaded" in lowered:
            status = 529
        elif "auth" in lowered or "api_key" in lowered or "permission" in lowered:
            status = 401
        elif "not_found" in lowered:
            status = 404
        elif "invalid_request" in lowered or "context_length" in lowered or "bad_request" in lowered:
            status = 400
        else:
            status = 500
    text = clean(message) or "error event in the response stream"
    return upstream_error(status, f"provider {provider!r}: {text}", provider=provider,
                          code=clean(code_text) if not code_text.isdigit() else "")


def error_from_http(status: int, headers: Mapping[str, str], body: bytes, *,
                    provider: str, scrub: Scrub) -> UpstreamError:
    """A failed call (HTTP status >= 400) as an exception, with the request id and the
    remaining rate-limit budget from the headers as metadata."""
    message, code = extract_error(body)
    text = scrub(message or _detail_message(body)) or f"HTTP {status}"
    retry_after = parse_retry_after(headers)
    if retry_after is None and status == 429:
        retry_after = rate_limit_reset(headers)
    err = upstream_error(status, f"provider {provider!r}: {text}", provider=provider,
                         code=scrub(code) if not code.isdigit() else "", retry_after=retry_after)
    for header, key in (
        ("x-request-id", "upstream_request_id"),
        ("apim-request-id", "upstream_request_id"),  # Azure's
        ("x-ratelimit-remaining-requests", "ratelimit_remaining_requests"),
        ("x-ratelimit-remaining-tokens", "ratelimit_remaining_tokens"),
    ):
        if headers.get(header):
            err.metadata.setdefault(key, scrub(headers[header])[:100])
    return err


_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")


def parse_duration(value: str) -> float | None:
    """OpenAI's and Groq's rate-limit reset durations: "1s", "6m0s", "120ms", "2m59.56s"."""
    parts = _DURATION_PART.findall(value.strip())
    if not parts or "".join(n + u for n, u in parts) != value.strip():
        return None
    scale = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
    return clamp_retry_delay(sum(float(n) * scale[u] for n, u in parts))


def rate_limit_reset(headers: Mapping[str, str]) -> float | None:
    """Seconds until the exhausted request or token budget refills, from x-ratelimit-* headers."""
    waits: list[float] = []
    fallback: list[float] = []
    for budget in ("requests", "tokens"):
        reset = headers.get(f"x-ratelimit-reset-{budget}")
        seconds = parse_duration(reset) if reset else None
        if seconds is None:
            continue
        fallback.append(seconds)
        if headers.get(f"x-ratelimit-remaining-{budget}") == "0":
            waits.append(seconds)
    if waits:
        return max(waits)
    return min(fallback) if fallback else None


def _detail_message(body: bytes) -> str:
    """FastAPI-style `{"detail": ...}` bodies (validation errors of some servers)."""
    try:
        data = json.loads(body)
    except ValueError:
        return ""
    detail = data.get("detail") if isinstance(data, dict) else None
    if isinstance(detail, str):
        return detail
    if isinstance(detail, list):
        msgs = []
        for item in detail[:5]:
            if isinstance(item, dict):
                loc = ".".join(str(p) for p in item.get("loc") or [])
                msgs.append(f"{loc}: {item.get('msg', '')}" if loc else str(item.get("msg", "")))
        return "; ".join(msgs)
    return ""
