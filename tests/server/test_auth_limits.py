"""Per-key requests and tokens per minute and token budgets, over real gRPC: refused at
once with RESOURCE_EXHAUSTED and RetryInfo, other keys untouched, budgets charged from
the usage the provider reported (unary and streamed), and the budget gauge."""

from __future__ import annotations

import datetime
import hashlib
import time
from typing import Any

import grpc
import pytest
from harness import rpc_details, running_gateway
from portico.v1 import llm_service_pb2 as pb
from portico.v1 import types_pb2 as t
from portico_server.budgets import window_bounds
from prometheus_client import REGISTRY

ALPHA = "pk-alpha-2b9d4e61f0"
BETA = "pk-beta-8c1a7f3e52"
FAKE = {"name": "fake", "kind": "fake", "models": ["fake-chat"], "retry": {"enabled": False}}


def sha(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def config(**alpha: Any) -> dict[str, Any]:
    return {"providers": [FAKE], "auth": {"keys": [{"name": alpha.pop("name"), "sha256": sha(ALPHA), **alpha},
                                                   {"name": "beta", "sha256": sha(BETA)}]}}


def chat(text: str = "hi") -> pb.ChatRequest:
    return pb.ChatRequest(model="fake-chat", messages=[t.Message(role=t.ROLE_USER, content=text)])


def bearer(key: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {key}"),)


async def refused(call: Any) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call
    return info.value


def budget_ratio(caller: str, window: str) -> float | None:
    return REGISTRY.get_sample_value("portico_caller_budget_used_ratio", {"caller": caller, "window": window})


async def test_requests_per_minute_refuse_the_next_call_with_a_retry_delay() -> None:
    async with running_gateway(config(name="rpm-caller", rpm=2)) as gw:
        for _ in range(2):
            await gw.stub.Chat(chat(), metadata=bearer(ALPHA))
        err = await refused(gw.stub.Chat(chat(), metadata=bearer(ALPHA)))
        other = await gw.stub.Chat(chat(), metadata=bearer(BETA))
    assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    details = rpc_details(err)
    assert details["reason"] == "ERROR_REASON_RATE_LIMITED"
    assert details["metadata"]["caller"] == "rpm-caller" and details["metadata"]["retry_safe"] == "true"
    # Two a minute: the next request's slot comes back in 30 s.
    assert 25 <= details["retry_delay"] <= 30.5
    assert "rpm-caller" in err.details() and "2 requests per minute" in err.details()
    assert other.content == "hi"


async def test_a_stream_counts_against_requests_per_minute() -> None:
    async with running_gateway(config(name="rpm-streamer", rpm=1)) as gw:
        chunks = [c async for c in gw.stub.StreamChat(chat(), metadata=bearer(ALPHA))]
        stream = gw.stub.StreamChat(chat(), metadata=bearer(ALPHA))
        err = await refused(stream.read())
    assert chunks[-1].final
    assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and rpc_details(err)["retry_delay"] > 50


async def test_tokens_per_minute_charge_the_reported_usage() -> None:
    long_text = "x" * 400  # about 100 prompt tokens, and the fake echoes it back: about 200 in all
    async with running_gateway(config(name="tpm-caller", tpm=100)) as gw:
        first = await gw.stub.Chat(chat(long_text), metadata=bearer(ALPHA))
        err = await refused(gw.stub.Chat(chat(), metadata=bearer(ALPHA)))
        other = await gw.stub.Chat(chat(long_text), metadata=bearer(BETA))
    assert first.usage.total_token_count > 100
    assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    details = rpc_details(err)
    assert details["reason"] == "ERROR_REASON_RATE_LIMITED" and "100 tokens per minute" in err.details()
    # The bucket went below zero by what the call used beyond the minute's 100 tokens,
    # refilling at 100 a minute: the wait is over a minute's share of that.
    overdraft = first.usage.total_token_count - 100
    assert details["retry_delay"] >= overdraft * 60 / 100
    assert other.content == long_text


def seconds_to_midnight_utc() -> float:
    return window_bounds("day", time.time())[1] - time.time()


async def test_a_spent_daily_budget_is_refused_until_midnight_utc() -> None:
    async with running_gateway(config(name="daily", budget={"tokens": 150, "per": "day"})) as gw:
        small = await gw.stub.Chat(chat("hello"), metadata=bearer(ALPHA))
        ratio_after_small = budget_ratio("daily", "day")
        big = await gw.stub.Chat(chat("y" * 400), metadata=bearer(ALPHA))
        err = await refused(gw.stub.Chat(chat(), metadata=bearer(ALPHA)))
        stream = gw.stub.StreamChat(chat(), metadata=bearer(ALPHA))
        streamed = await refused(stream.read())
        other = await gw.stub.Chat(chat(), metadata=bearer(BETA))
        expected_wait = seconds_to_midnight_utc()
    assert ratio_after_small == pytest.approx(small.usage.total_token_count / 150)
    assert small.usage.total_token_count + big.usage.total_token_count >= 150
    for e in (err, streamed):
        assert e.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        details = rpc_details(e)
        assert details["reason"] == "ERROR_REASON_RATE_LIMITED"
        meta = details["metadata"]
        assert (meta["caller"], meta["limit"], meta["window"]) == ("daily", "budget", "day")
        assert meta["budget_tokens"] == "150"
        assert meta["used_tokens"] == str(small.usage.total_token_count + big.usage.total_token_count)
        resets = datetime.datetime.fromtimestamp(window_bounds("day", time.time())[1], datetime.UTC)
        assert meta["resets_at"] == f"{resets:%Y-%m-%dT%H:%M:%SZ}"
        # Until the window resets, even when that is hours away (not cut to an hour).
        assert abs(details["retry_delay"] - expected_wait) < 10
    assert budget_ratio("daily", "day") == 1.0
    assert other.content == "hi"


async def test_a_stream_is_charged_the_usage_of_its_final_chunk() -> None:
    async with running_gateway(config(name="streamer", budget={"tokens": 10_000, "per": "month"})) as gw:
        chunks = [c async for c in gw.stub.StreamChat(chat("stream me"), metadata=bearer(ALPHA))]
        assert gw.gateway.callers.budget("streamer").used == chunks[-1].usage.total_token_count > 0  # type: ignore[union-attr]
    assert budget_ratio("streamer", "month") == pytest.approx(chunks[-1].usage.total_token_count / 10_000)


async def test_a_failed_call_charges_nothing() -> None:
    failing = {**FAKE, "options": {"replies": [{"error": {"reason": "UPSTREAM_UNAVAILABLE"}}]}}
    cfg = config(name="unlucky", budget={"tokens": 1_000, "per": "day"})
    cfg["providers"] = [failing]
    async with running_gateway(cfg) as gw:
        err = await refused(gw.stub.Chat(chat(), metadata=bearer(ALPHA)))
        assert err.code() == grpc.StatusCode.UNAVAILABLE
        assert gw.gateway.callers.budget("unlucky").used == 0  # type: ignore[union-attr]


def test_windows_are_utc_calendar_days_and_months() -> None:
    new_year_eve = datetime.datetime(2026, 12, 31, 23, 59, 30, tzinfo=datetime.UTC).timestamp()
    day_start, day_end = window_bounds("day", new_year_eve)
    month_start, month_end = window_bounds("month", new_year_eve)
    assert day_end - new_year_eve == 30
    assert utc(day_start) == datetime.datetime(2026, 12, 31, tzinfo=datetime.UTC)
    assert utc(month_start) == datetime.datetime(2026, 12, 1, tzinfo=datetime.UTC)
    assert utc(month_end) == datetime.datetime(2027, 1, 1, tzinfo=datetime.UTC)
    feb = datetime.datetime(2028, 2, 10, tzinfo=datetime.UTC).timestamp()
    assert utc(window_bounds("month", feb)[1]) == datetime.datetime(2028, 3, 1, tzinfo=datetime.UTC)


def utc(stamp: float) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(stamp, datetime.UTC)
