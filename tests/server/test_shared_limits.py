"""The shared limit scripts against a real redis-server: two processes' worth of
`SharedLimits` on one Redis see one set of counters, corrections and refunds included."""

from __future__ import annotations

import pytest
from portico_server.config import LimitSettings, RedisSettings
from portico_server.errors import RateLimited
from portico_server.shared.limits import SharedLimits
from portico_server.shared.redis import SharedStore
from redis_server import RedisServer


def no_deadline() -> float | None:
    return None


@pytest.fixture
async def pair(redis_server: RedisServer):  # type: ignore[no-untyped-def]
    stores = [SharedStore(RedisSettings(url=redis_server.url)) for _ in range(2)]  # type: ignore[arg-type]
    yield [SharedLimits(store) for store in stores]
    for store in stores:
        await store.close()


async def test_usage_reported_above_the_estimate_delays_the_next_call_on_another_replica(
        pair: list[SharedLimits]) -> None:
    one, other = pair
    tpm = LimitSettings(tpm=600, queue=0)
    grant = await one.acquire("provider:p", tpm, 100, no_deadline)
    assert grant is not None
    one.settle(grant, 590)  # the provider reported far more than estimated
    await one.release(grant, refund=False)
    with pytest.raises(RateLimited) as refused:
        await other.acquire("provider:p", tpm, 100, no_deadline)
    # 590 of 600 used: 100 more fit after 90 tokens' refill, 9 s at 10 tokens a second.
    assert refused.value.retry_after == pytest.approx(9.0, abs=0.5)
    assert refused.value.metadata["limit"] == "tpm"


async def test_a_call_never_sent_gives_its_request_back(pair: list[SharedLimits]) -> None:
    one, other = pair
    rpm = LimitSettings(rpm=1, queue=0)
    grant = await one.acquire("caller:c", rpm, 0, no_deadline)
    assert grant is not None
    with pytest.raises(RateLimited):
        await other.acquire("caller:c", rpm, 0, no_deadline)
    await one.release(grant, refund=True)
    assert await other.acquire("caller:c", rpm, 0, no_deadline) is not None


async def test_a_released_lease_frees_its_slot_at_once(pair: list[SharedLimits]) -> None:
    one, other = pair
    single = LimitSettings(concurrency=1, queue=0)
    grant = await one.acquire("group:g", single, 0, no_deadline)
    assert grant is not None
    with pytest.raises(RateLimited) as refused:
        await other.acquire("group:g", single, 0, no_deadline)
    assert refused.value.metadata["limit"] == "concurrency"
    await one.release(grant, refund=False)
    assert await other.acquire("group:g", single, 0, no_deadline) is not None
