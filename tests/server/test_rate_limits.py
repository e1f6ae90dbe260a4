"""Rate limits with priority, on a clock the test moves: the queue's order, its bounds,
requests and tokens per minute, and the hand-back of slots nobody used."""

from __future__ import annotations

import asyncio
import heapq
import itertools
import random
from collections.abc import Callable

import pytest
from portico_server.call import CallContext
from portico_server.config import ConfigError, LimitSettings, parse_config
from portico_server.domain import Priority
from portico_server.errors import RateLimited
from portico_server.providers.fake import FakeProvider
from portico_server.resilience.limits import (
    Limits,
    QueueDeadlineExceeded,
    Ticket,
    deployment_key,
    group_key,
    provider_key,
)
from portico_server.router import Target

KEY = provider_key("up")


class _ManualTimer:
    def __init__(self) -> None:
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class ManualClock:
    """Time stands still until `advance`, which fires the timers that fall due in order."""

    def __init__(self) -> None:
        self.time = 1000.0
        self._timers: list[tuple[float, int, _ManualTimer, Callable[[], None]]] = []
        self._seq = itertools.count()

    def now(self) -> float:
        return self.time

    def call_later(self, delay: float, callback: Callable[[], None]) -> _ManualTimer:
        timer = _ManualTimer()
        heapq.heappush(self._timers, (self.time + delay, next(self._seq), timer, callback))
        return timer

    async def advance(self, seconds: float) -> None:
        end = self.time + seconds
        while self._timers and self._timers[0][0] <= end:
            when, _, timer, callback = heapq.heappop(self._timers)
            self.time = max(self.time, when)
            if not timer.cancelled:
                callback()
        self.time = end
        await _run_ready()


async def _run_ready() -> None:
    """Let every task that can run do so (the loop's ready queue, several rounds)."""
    for _ in range(20):
        await asyncio.sleep(0)


def limits(clock: ManualClock, **settings: int) -> Limits:
    return Limits({KEY: LimitSettings(**settings)}, clock=clock)


def call(priority: Priority = Priority.NORMAL, timeout: float | None = None) -> CallContext:
    return CallContext.with_timeout(timeout, priority=priority)


async def hold(lim: Limits, key: str = KEY, tokens: int = 0, ctx: CallContext | None = None) -> tuple[Ticket, object]:
    """Take a slot and keep it until the returned admission is exited."""
    admission = lim.admit(key, ctx or call(), tokens)
    ticket = await admission.__aenter__()
    return ticket, admission


async def leave(admission: object) -> None:
    await admission.__aexit__(None, None, None)  # type: ignore[attr-defined]


async def test_queued_calls_are_served_high_then_normal_then_low_first_come_first_served_within_one():
    clock = ManualClock()
    lim = limits(clock, concurrency=1)
    _, first = await hold(lim)
    served: list[str] = []

    async def one(name: str, priority: Priority) -> None:
        async with lim.admit(KEY, call(priority), 0):
            served.append(name)

    order = [("low-1", Priority.LOW), ("normal-1", Priority.NORMAL), ("high-1", Priority.HIGH),
             ("normal-2", Priority.NORMAL), ("high-2", Priority.HIGH), ("low-2", Priority.LOW)]
    tasks = []
    for name, priority in order:
        tasks.append(asyncio.create_task(one(name, priority)))
        await _run_ready()  # each joins the queue before the next arrives
    assert lim.queue_depth(KEY) == 6 and served == []
    await leave(first)
    await asyncio.gather(*tasks)
    assert served == ["high-1", "high-2", "normal-1", "normal-2", "low-1", "low-2"]
    assert lim.queue_depth(KEY) == 0 and lim.in_flight(KEY) == 0


async def test_a_cancelled_waiter_leaves_the_queue_at_once_and_is_never_admitted():
    clock = ManualClock()
    lim = limits(clock, concurrency=1)
    _, first = await hold(lim)
    admitted: list[str] = []

    async def one(name: str) -> None:
        async with lim.admit(KEY, call(), 0):
            admitted.append(name)

    doomed = asyncio.create_task(one("doomed"))
    await _run_ready()
    survivor = asyncio.create_task(one("survivor"))
    await _run_ready()
    assert lim.queue_depth(KEY) == 2
    doomed.cancel()
    with pytest.raises(asyncio.CancelledError):
        await doomed
    assert lim.queue_depth(KEY) == 1
    await leave(first)
    await survivor
    assert admitted == ["survivor"]


async def test_a_waiter_cancelled_in_the_turn_it_was_admitted_hands_its_slot_on():
    clock = ManualClock()
    lim = limits(clock, concurrency=1, rpm=60)
    _, first = await hold(lim)
    reached: list[str] = []

    async def one(name: str) -> None:
        async with lim.admit(KEY, call(), 0):
            reached.append(name)

    late = asyncio.create_task(one("late"))
    await _run_ready()
    after = asyncio.create_task(one("after"))
    await _run_ready()
    await leave(first)  # admits "late" (its future is set) ...
    late.cancel()  # ... before its task could run
    with pytest.raises(asyncio.CancelledError):
        await late
    await after
    assert reached == ["after"]
    assert lim.in_flight(KEY) == 0


async def test_a_full_queue_refuses_with_the_expected_wait():
    clock = ManualClock()
    lim = limits(clock, concurrency=1, queue=2)
    _, first = await hold(lim)
    clock.time += 4.0  # one call held for 4 s teaches the expected hold time
    await leave(first)
    _, second = await hold(lim)
    waiting = [asyncio.create_task(hold(lim)) for _ in range(2)]
    await _run_ready()
    with pytest.raises(RateLimited) as info:
        await hold(lim)
    err = info.value
    assert err.retry_safe and err.metadata["limit_key"] == KEY
    assert "the concurrency limit of provider:up is reached and its queue of 2 is full" in err.message
    # Two calls ahead, one at a time, about 4 s each: the newcomer's turn is in about 12 s.
    assert err.retry_after == pytest.approx(12.0)
    for task in waiting:
        task.cancel()
    await leave(second)


async def test_a_higher_priority_arrival_takes_the_place_of_the_newest_lowest_one():
    clock = ManualClock()
    lim = limits(clock, concurrency=1, queue=2)
    _, first = await hold(lim)
    old_low = asyncio.create_task(hold(lim, ctx=call(Priority.LOW)))
    await _run_ready()
    new_low = asyncio.create_task(hold(lim, ctx=call(Priority.LOW)))
    await _run_ready()
    high = asyncio.create_task(hold(lim, ctx=call(Priority.HIGH)))
    await _run_ready()
    with pytest.raises(RateLimited, match="higher priority"):
        await new_low
    assert lim.queue_depth(KEY) == 2
    await leave(first)
    _, admission = await high
    assert not old_low.done()
    await leave(admission)
    _, admission = await old_low
    await leave(admission)
    # A low-priority arrival never displaces anyone.
    _, first = await hold(lim)
    queued = [asyncio.create_task(hold(lim, ctx=call(Priority.LOW))) for _ in range(2)]
    await _run_ready()
    with pytest.raises(RateLimited, match="is full"):
        await hold(lim, ctx=call(Priority.LOW))
    for task in queued:
        task.cancel()
    await leave(first)


async def test_a_waiter_whose_deadline_passes_leaves_the_queue_and_frees_its_place():
    clock = ManualClock()
    lim = limits(clock, concurrency=1, queue=1)
    _, first = await hold(lim)
    short = asyncio.create_task(hold(lim, ctx=call(timeout=2.0)))
    await _run_ready()
    with pytest.raises(RateLimited):
        await hold(lim)  # the queue of one is taken
    await clock.advance(2.0)
    with pytest.raises(QueueDeadlineExceeded) as info:
        await short
    assert info.value.retry_safe
    assert lim.queue_depth(KEY) == 0
    waiting = asyncio.create_task(hold(lim))
    await _run_ready()
    assert lim.queue_depth(KEY) == 1
    await leave(first)
    _, admission = await waiting
    await leave(admission)


async def test_requests_per_minute_refill_one_request_per_share_of_the_minute():
    clock = ManualClock()
    lim = limits(clock, rpm=2)
    held = [await hold(lim), await hold(lim)]  # a minute's allowance at once
    third = asyncio.create_task(hold(lim))
    await _run_ready()
    assert not third.done() and lim.queue_depth(KEY) == 1
    await clock.advance(29.9)
    assert not third.done()
    await clock.advance(0.1)  # 60 s / 2 requests
    assert third.done()
    assert third.result()[0].waited == pytest.approx(30.0)
    held.append(third.result())
    for _, admission in held:
        await leave(admission)
    assert lim.in_flight(KEY) == 0


async def test_a_request_that_cannot_start_before_its_deadline_is_refused_at_once():
    clock = ManualClock()
    lim = limits(clock, rpm=1)
    await hold(lim)
    with pytest.raises(RateLimited) as info:
        await hold(lim, ctx=call(timeout=10.0))
    assert info.value.retry_after == pytest.approx(60.0)
    assert "admit this call in 60.0 s, after its deadline" in info.value.message
    assert lim.queue_depth(KEY) == 0


async def test_tokens_per_minute_are_corrected_by_the_real_usage():
    clock = ManualClock()
    lim = limits(clock, tpm=600)  # 10 tokens a second
    ticket, big = await hold(lim, tokens=600)
    small = asyncio.create_task(hold(lim, tokens=100))
    await _run_ready()
    assert not small.done()
    ticket.settle(100)  # used 100 of the 600 it was charged: 500 come back at once
    await _run_ready()
    assert small.done()
    await leave(big)
    _, admission = small.result()
    await leave(admission)


async def test_usage_above_the_estimate_delays_the_calls_after_it():
    clock = ManualClock()
    lim = limits(clock, tpm=600)
    ticket, admission = await hold(lim, tokens=100)
    ticket.settle(700)  # 100 tokens in debt now
    await leave(admission)
    nxt = asyncio.create_task(hold(lim, tokens=50))
    await _run_ready()
    await clock.advance(14.9)  # debt 100 + 50 needed at 10 a second: 15 s
    assert not nxt.done()
    await clock.advance(0.1)
    assert nxt.done()


async def test_the_head_of_the_queue_is_not_starved_by_smaller_calls_behind_it():
    clock = ManualClock()
    lim = limits(clock, tpm=600)
    await hold(lim, tokens=550)
    big = asyncio.create_task(hold(lim, tokens=300))
    await _run_ready()
    small = asyncio.create_task(hold(lim, tokens=10))  # would fit now, but waits its turn
    await _run_ready()
    assert not small.done()
    await clock.advance(25.0)  # 50 + 250 = 300 for the head
    assert big.done() and not small.done()
    await clock.advance(1.0)
    assert small.done()


async def test_a_call_larger_than_a_whole_minute_waits_for_a_full_bucket_not_forever():
    clock = ManualClock()
    lim = limits(clock, tpm=600)
    await hold(lim, tokens=300)
    huge = asyncio.create_task(hold(lim, tokens=5000))
    await _run_ready()
    await clock.advance(30.0)
    assert huge.done()


async def test_a_refusal_by_a_later_key_hands_back_the_earlier_keys_allowance():
    clock = ManualClock()
    group = group_key("chat")
    lim = Limits({KEY: LimitSettings(rpm=1), group: LimitSettings(concurrency=1, queue=0)}, clock=clock)
    _, holder = await hold(lim, key=group)
    with pytest.raises(RateLimited):
        async with lim.admit_all([KEY, group], call(), 0):
            pytest.fail("admitted past a full group")
    # The provider's one request a minute was given back: it is still there.
    await admitted_at_once(lim)
    await clock.advance(60.0)
    # The same with one block per key, nested, as a pipeline composes them.
    with pytest.raises(RateLimited):
        async with lim.admit(KEY, call(), 0), lim.admit(group, call(), 0):
            pytest.fail("admitted past a full group")
    await admitted_at_once(lim)
    await leave(holder)


async def admitted_at_once(lim: Limits) -> None:
    attempt = asyncio.create_task(hold(lim))
    await _run_ready()
    assert attempt.done(), "had to wait: the allowance was not given back"
    attempt.cancel()


async def test_keys_come_from_the_configuration_and_only_limited_ones_count():
    config = parse_config({
        "providers": [
            {"name": "up", "kind": "fake", "models": ["m"], "limits": {"concurrency": 2},
             "model_limits": {"m": {"rpm": 10}, "other": {"queue": 5}}},
            {"name": "free", "kind": "fake", "models": ["m"]},
        ],
        "groups": {"chat": {"deployments": ["up/m"]}},
        "group_limits": {"chat": {"tpm": 1000}},
    })
    lim = Limits(config)
    up = FakeProvider(config.providers[0])
    free = FakeProvider(config.providers[1])
    assert lim.keys_for(Target(up, "m", "chat")) == [
        provider_key("up"), deployment_key("up", "m"), group_key("chat")]
    assert lim.keys_for(Target(up, "other")) == [provider_key("up")]
    assert lim.keys_for(Target(free, "m")) == []
    assert Limits(parse_config({"providers": [{"name": "x", "kind": "fake"}]})).keys_for(Target(free, "m")) == []


async def test_reloaded_limits_apply_to_the_queue_and_a_removed_limit_lets_it_go():
    clock = ManualClock()
    lim = limits(clock, concurrency=1)
    _, first = await hold(lim)
    waiting = [asyncio.create_task(hold(lim)) for _ in range(3)]
    await _run_ready()
    lim.update({KEY: LimitSettings(concurrency=2)})
    await _run_ready()
    assert sum(t.done() for t in waiting) == 1 and lim.queue_depth(KEY) == 2
    lim.update({})
    await _run_ready()
    assert all(t.done() for t in waiting)
    assert lim.keys_for(Target(FakeProvider(parse_config(
        {"providers": [{"name": "up", "kind": "fake"}]}).providers[0]), "m")) == []
    await leave(first)


@pytest.mark.parametrize(("limits", "complaint"), [
    ({"concurrency": 0}, "providers[0].limits.concurrency: Input should be greater than 0"),
    ({"queue": -1}, "providers[0].limits.queue: Input should be greater than or equal to 0"),
    ({"rps": 5}, "providers[0].limits.rps: Extra inputs are not permitted"),
])
def test_a_wrong_limit_names_its_key(limits: dict[str, int], complaint: str):
    with pytest.raises(ConfigError) as info:
        parse_config({"providers": [{"name": "up", "kind": "fake", "limits": limits}]}, "portico.yaml")
    assert f"portico.yaml: {complaint}" in str(info.value)
    with pytest.raises(ConfigError, match=r"group_limits\.chat\.tpm"):
        parse_config({"group_limits": {"chat": {"tpm": 0}}}, "portico.yaml")


async def test_under_contention_every_waiter_is_served_once_in_order_and_the_limit_holds():
    clock = ManualClock()
    lim = limits(clock, concurrency=3, queue=1000)
    holders = [await hold(lim) for _ in range(3)]
    rng = random.Random(9)
    served: list[int] = []
    peak = 0

    async def one(seq: int, priority: Priority) -> None:
        nonlocal peak
        async with lim.admit(KEY, call(priority), 0):
            peak = max(peak, lim.in_flight(KEY))
            served.append(seq)
            for _ in range(rng.randrange(3)):
                await asyncio.sleep(0)  # hold the slot across a few turns of the loop

    arrivals = [(seq, rng.choice(list(Priority))) for seq in range(300)]
    tasks = [asyncio.create_task(one(seq, priority)) for seq, priority in arrivals]
    await _run_ready()
    assert lim.queue_depth(KEY) == 300
    cancelled = set(rng.sample(range(300), 50))
    for seq in cancelled:
        tasks[seq].cancel()
    for _, admission in holders:
        await leave(admission)
    await asyncio.gather(*tasks, return_exceptions=True)
    expected = sorted((seq for seq, _ in arrivals if seq not in cancelled), key=lambda s: (-arrivals[s][1], s))
    assert served == expected
    assert peak <= 3 and lim.in_flight(KEY) == 0 and lim.queue_depth(KEY) == 0
