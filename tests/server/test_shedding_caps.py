"""The load shedder's arithmetic: each worker's share of a gateway-wide cap, what each
priority may fill, and the RetryInfo delay it estimates from how long calls hold slots."""

from __future__ import annotations

import pytest
from portico_server.config import LoadSettings
from portico_server.domain import Priority
from portico_server.errors import Overloaded
from portico_server.shedding import DEFAULT_RETRY_DELAY, MAX_RETRY_DELAY, Kind, LoadShedder, worker_share


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize("workers", [1, 2, 3, 4, 8])
@pytest.mark.parametrize("total", [1, 2, 5, 16, 1000, 1024])
def test_worker_shares_add_up_to_the_gateway_cap(total: int, workers: int):
    shares = [worker_share(total, w, workers) for w in range(1, workers + 1)]
    assert sum(shares) == max(total, workers)  # each worker lets at least one call in
    assert max(shares) - min(shares) <= 1


@pytest.mark.parametrize(("cap", "low", "high"), [(2, 1, 3), (10, 8, 11), (1024, 819, 1127), (1, 1, 2)])
def test_low_priority_fills_less_of_a_cap_and_high_priority_has_a_reserve_above_it(cap: int, low: int, high: int):
    load = LoadShedder(LoadSettings(max_in_flight=cap))
    assert [load.cap(Kind.CALL, p) for p in (Priority.LOW, Priority.NORMAL, Priority.HIGH)] == [low, cap, high]


def test_without_a_reserve_high_priority_stops_at_the_cap_too():
    load = LoadShedder(LoadSettings(max_in_flight=4, high_priority_reserve=0))
    assert load.cap(Kind.CALL, Priority.HIGH) == 4


def test_a_cap_set_to_null_sheds_nothing():
    load = LoadShedder(LoadSettings(max_in_flight=None, max_streams=None))
    slots = [load.admit(Kind.STREAM, Priority.LOW) for _ in range(5000)]
    assert load.in_use(Kind.STREAM) == 0 and load.cap(Kind.STREAM, Priority.LOW) is None
    for slot in slots:
        slot.release()


def shed_delay(load: LoadShedder, priority: Priority = Priority.NORMAL) -> float:
    with pytest.raises(Overloaded) as caught:
        load.admit(Kind.CALL, priority)
    assert caught.value.retry_after is not None
    return caught.value.retry_after


def test_the_retry_delay_follows_how_long_calls_hold_their_slots_and_how_many_were_shed():
    clock = Clock()
    load = LoadShedder(LoadSettings(max_in_flight=2, high_priority_reserve=0), clock=clock)
    first = [load.admit(Kind.CALL, Priority.NORMAL) for _ in range(2)]
    clock.now += 4.0
    for slot in first:
        slot.release()
        slot.release()  # a second release changes nothing
    assert load.in_use(Kind.CALL) == 0

    [load.admit(Kind.CALL, Priority.NORMAL) for _ in range(2)]
    # Calls hold a slot 4 s; with two running one ends every 2 s on average.
    assert 0.8 * 2.0 <= shed_delay(load) <= 1.2 * 2.0
    # Each caller shed just before competes for the same freed slots: the hint grows.
    assert 0.8 * 4.0 <= shed_delay(load) <= 1.2 * 4.0
    assert 0.8 * 6.0 <= shed_delay(load) <= 1.2 * 6.0
    # After several average durations the earlier refusals have come back or gone away.
    clock.now += 40.0
    assert 0.8 * 2.0 <= shed_delay(load) <= 1.2 * 2.0


def test_before_any_call_ended_the_retry_delay_is_the_default():
    load = LoadShedder(LoadSettings(max_in_flight=1, high_priority_reserve=0))
    load.admit(Kind.CALL, Priority.NORMAL)
    assert shed_delay(load) == DEFAULT_RETRY_DELAY


def test_the_retry_delay_stays_within_bounds():
    clock = Clock()
    load = LoadShedder(LoadSettings(max_in_flight=1, high_priority_reserve=0), clock=clock)
    load.admit(Kind.CALL, Priority.NORMAL).release()  # a call of no duration at all
    load.admit(Kind.CALL, Priority.NORMAL)
    assert shed_delay(load) >= 0.05
    slow = LoadShedder(LoadSettings(max_in_flight=1, high_priority_reserve=0), clock=clock)
    slot = slow.admit(Kind.CALL, Priority.NORMAL)
    clock.now += 3600
    slot.release()
    slow.admit(Kind.CALL, Priority.NORMAL)
    assert shed_delay(slow) == MAX_RETRY_DELAY
