"""Whatever an upstream writes in its retry hints (`Retry-After: inf`, `1e20`, `soon`,
`retry-after-ms: inf`, Gemini's `retryDelay: "infs"`), the caller gets a sane status and
a retry delay between zero and an hour — never UNKNOWN or INTERNAL."""

from __future__ import annotations

import json
from typing import Any

import grpc
import pytest
from dialects import BY_NAME, JSON
from harness import rpc_details, running_gateway
from portico.v1 import llm_service_pb2 as pb
from portico.v1 import types_pb2 as t
from portico_server.errors import parse_retry_after
from portico_server.providers.gemini.errors import google_error
from portico_server.providers.openai_compat.errors import parse_duration
from upstream import Reply, Upstream

HOUR = 3600.0
RATE_LIMITED = (grpc.StatusCode.RESOURCE_EXHAUSTED, "ERROR_REASON_UPSTREAM_RATE_LIMITED")
QUOTA = (grpc.StatusCode.RESOURCE_EXHAUSTED, "ERROR_REASON_UPSTREAM_QUOTA_EXCEEDED")
UNAVAILABLE = (grpc.StatusCode.UNAVAILABLE, "ERROR_REASON_UPSTREAM_UNAVAILABLE")

BODIES = {
    "openai": {"error": {"message": "Rate limit reached", "type": "requests", "code": "rate_limit_exceeded"}},
    "anthropic": {"type": "error", "error": {"type": "rate_limit_error", "message": "Number of requests exceeded"}},
    "gemini": {"error": {"code": 429, "message": "Resource exhausted", "status": "RESOURCE_EXHAUSTED"}},
    "ollama": {"error": "too many requests"},
}


def gemini_body(*details: dict[str, Any]) -> dict[str, Any]:
    return {"error": {**BODIES["gemini"]["error"], "details": list(details)}}


def retry_info(delay: Any) -> dict[str, Any]:
    return {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": delay}


def quota_failure(quota_id: str, metric: str = "generativelanguage.googleapis.com/generate_requests") -> dict[str, Any]:
    return {"@type": "type.googleapis.com/google.rpc.QuotaFailure",
            "violations": [{"quotaMetric": metric, "quotaId": quota_id, "quotaValue": "250"}]}


# (dialect, HTTP status, headers, body (None: the dialect's 429 body), (code, reason), retry delay)
CASES: dict[str, tuple[str, int, dict[str, str], Any, tuple[grpc.StatusCode, str], float | None]] = {
    "retry-after inf": ("openai", 429, {"retry-after": "inf"}, None, RATE_LIMITED, HOUR),
    "retry-after 1e20": ("openai", 429, {"retry-after": "1e20"}, None, RATE_LIMITED, HOUR),
    "retry-after soon": ("openai", 429, {"retry-after": "soon"}, None, RATE_LIMITED, 1.0),
    "retry-after nan": ("openai", 429, {"retry-after": "nan"}, None, RATE_LIMITED, 1.0),
    "retry-after negative": ("openai", 429, {"retry-after": "-30"}, None, RATE_LIMITED, 1.0),
    "retry-after far date": ("openai", 429, {"retry-after": "Fri, 31 Dec 9999 23:59:59 GMT"}, None,
                             RATE_LIMITED, HOUR),
    "retry-after-ms inf": ("openai", 429, {"retry-after-ms": "inf"}, None, RATE_LIMITED, HOUR),
    "retry-after-ms nan, retry-after 7": ("openai", 429, {"retry-after-ms": "nan", "retry-after": "7"}, None,
                                          RATE_LIMITED, 7.0),
    "x-ratelimit-reset huge": ("openai", 429, {"x-ratelimit-remaining-requests": "0",
                                               "x-ratelimit-reset-requests": "99999999999999h"}, None,
                               RATE_LIMITED, HOUR),
    "503 retry-after inf": ("openai", 503, {"retry-after": "inf"}, {"error": {"message": "down"}}, UNAVAILABLE, HOUR),
    "anthropic retry-after 1e20": ("anthropic", 429, {"retry-after": "1e20"}, None, RATE_LIMITED, HOUR),
    "anthropic reset far away": ("anthropic", 429, {"anthropic-ratelimit-requests-remaining": "0",
                                                    "anthropic-ratelimit-requests-reset": "9999-12-31T23:59:59Z"},
                                 None, RATE_LIMITED, HOUR),
    "anthropic reset soon": ("anthropic", 429, {"anthropic-ratelimit-requests-remaining": "0",
                                                "anthropic-ratelimit-requests-reset": "soon"}, None, RATE_LIMITED, 1.0),
    "gemini retryDelay infs": ("gemini", 429, {}, gemini_body(retry_info("infs")), RATE_LIMITED, HOUR),
    "gemini retryDelay nans": ("gemini", 429, {}, gemini_body(retry_info("nans")), RATE_LIMITED, 1.0),
    "gemini retryDelay negative": ("gemini", 429, {}, gemini_body(retry_info("-5s")), RATE_LIMITED, 1.0),
    "gemini retryDelay 1e400s": ("gemini", 429, {}, gemini_body(retry_info("1e400s")), RATE_LIMITED, HOUR),
    "gemini retryDelay not a string": ("gemini", 429, {}, gemini_body(retry_info(7)), RATE_LIMITED, 1.0),
    "gemini details not a list": ("gemini", 429, {}, {"error": {**BODIES["gemini"]["error"], "details": "x"}},
                                  RATE_LIMITED, 1.0),
    "gemini per-minute quota": ("gemini", 429, {}, gemini_body(
        quota_failure("GenerateRequestsPerMinutePerProjectPerModel-FreeTier"), retry_info("20s")), RATE_LIMITED, 20.0),
    "gemini per-day quota": ("gemini", 429, {}, gemini_body(
        quota_failure("GenerateRequestsPerDayPerProjectPerModel-FreeTier"), retry_info("20s")), QUOTA, None),
    "gemini daily metric": ("gemini", 429, {}, gemini_body(
        quota_failure("", "generativelanguage.googleapis.com/daily_requests")), QUOTA, None),
    "ollama retry-after inf": ("ollama", 429, {"retry-after": "inf"}, None, RATE_LIMITED, HOUR),
}


@pytest.mark.parametrize("stream", [False, True], ids=["unary", "stream"])
@pytest.mark.parametrize("case", list(CASES))
async def test_odd_retry_hints_give_sane_statuses(case: str, stream: bool) -> None:
    name, status, headers, body, (code, reason), delay = CASES[case]
    dialect = BY_NAME[name]
    payload = json.dumps(BODIES[name] if body is None else body).encode()
    async with Upstream() as up:
        up.add("POST", dialect.path(stream), Reply(status, {**JSON, **headers}, payload))
        async with running_gateway({"providers": [dialect.provider_config(up)]}) as gw:
            request = pb.ChatRequest(model=dialect.model, messages=[t.Message(role=t.ROLE_USER, content="hi")])
            with pytest.raises(grpc.aio.AioRpcError) as info:
                if stream:
                    async for _ in gw.stub.StreamChat(request):
                        pass
                else:
                    await gw.stub.Chat(request)
    details = rpc_details(info.value)
    assert (info.value.code(), details["reason"]) == (code, reason)
    if delay is None:
        assert details["retry_delay"] is None
    else:
        assert details["retry_delay"] == pytest.approx(delay, abs=1.0)


@pytest.mark.parametrize("headers", [
    {"retry-after": "inf"}, {"retry-after": "-inf"}, {"retry-after": "1e400"}, {"retry-after": "soon"},
    {"retry-after": "nan"}, {"retry-after": ""}, {"retry-after-ms": "inf"}, {"retry-after-ms": "-1"},
    {"retry-after": "Mon, 99 Foo 2025 99:99:99 GMT"}, {"retry-after": "Thu, 01 Jan 1970 00:00:00 GMT"},
])
def test_parse_retry_after_never_raises_and_stays_within_an_hour(headers: dict[str, str]) -> None:
    delay = parse_retry_after(headers)
    assert delay is None or 0.0 <= delay <= HOUR


@pytest.mark.parametrize("text", ["99999999999999h", "1e20s", "infs", "-5s", "", "s", "1.5m30s"])
def test_parse_duration_never_raises_and_stays_within_an_hour(text: str) -> None:
    delay = parse_duration(text)
    assert delay is None or 0.0 <= delay <= HOUR


def test_a_gemini_daily_quota_is_exhaustion_not_a_rate_limit() -> None:
    err = google_error(429, gemini_body(quota_failure("GenerateRequestsPerDayPerProjectPerModel-FreeTier"),
                                        retry_info("20s"))["error"], None, provider="g", scrub=str)
    assert err.reason == "ERROR_REASON_UPSTREAM_QUOTA_EXCEEDED"
    assert err.retry_after is None and not err.retryable
    assert err.metadata["quota_id"] == "GenerateRequestsPerDayPerProjectPerModel-FreeTier"
