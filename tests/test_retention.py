"""Retention: a time window and a count bound, in bus time, with replay."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hms_bus import Bus, VirtualClock
from hms_bus.retention import Retention


def test_events_older_than_the_window_are_gone(clock):
    bus = Bus(clock=clock, retention=timedelta(hours=24))
    bus.publish("a.old")
    clock.advance(timedelta(hours=23))
    bus.publish("a.mid")
    clock.advance(timedelta(hours=1))  # the first is now exactly 24 h old
    assert [e["topic"] for e in bus.replay()] == ["a.mid"]
    clock.advance(timedelta(hours=23))
    assert [e["topic"] for e in bus.replay()] == []


def test_window_is_measured_by_the_bus_clock_not_the_machine(clock):
    bus = Bus(clock=VirtualClock("2000-01-01T00:00:00Z"), retention=60)
    bus.publish("a.b")
    # Decades of wall-clock time have passed since 2000; the bus clock has not moved.
    assert len(bus.replay()) == 1


def test_max_retained_drops_the_oldest(clock):
    bus = Bus(clock=clock, max_retained=3)
    for n in range(5):
        bus.publish("a.b", n)
    assert [e["data"] for e in bus.replay()] == [2, 3, 4]
    assert bus.backend.retention.evicted == 2


def test_replay_since_until_limit_and_pattern(bus, clock):
    for minute in range(10):
        bus.publish("payments.sent" if minute % 2 else "payments.failed", minute)
        clock.advance(60)
    start = datetime(2021, 8, 29, 12, 3, tzinfo=timezone.utc)
    got = bus.replay("payments.sent", since=start, until="2021-08-29T12:07:00Z")
    assert [e["data"] for e in got] == [3, 5, 7]
    assert [e["data"] for e in bus.replay(since=start, limit=2)] == [3, 4]
    assert [e["data"] for e in bus.replay(since=timedelta(minutes=3))] == [7, 8, 9]
    assert bus.replay("payments.sent")[-2:] == bus.replay(
        "payments.sent", since=start.timestamp() + 240
    )


def test_replay_uses_bisection_not_a_scan(clock):
    """Replaying a narrow range from a big buffer reads only that range."""
    r = Retention(window=10**9, max_retained=None)
    bus = Bus(clock=clock)
    events = []
    for _ in range(50_000):
        events.append(bus.publish("a.b"))
        clock.advance(1)
    for ev in events:
        r.append(ev)
    calls = 0
    import hms_bus.retention as mod

    real = mod._event_time

    def counting(ev):
        nonlocal calls
        calls += 1
        return real(ev)

    mod._event_time = counting
    try:
        got = r.replay(since=events[25_000].time, until=events[25_002].time)
    finally:
        mod._event_time = real
    assert len(got) == 3
    assert calls < 64


def test_memory_stays_bounded_under_a_flood(clock):
    bus = Bus(clock=clock, max_retained=1000)
    for n in range(20_000):
        bus.publish("flood.x", n)
    r = bus.backend.retention
    assert len(r) == 1000
    assert len(r._buf) <= 2 * 1000 + 4096  # compaction keeps the list small


@given(st.lists(st.floats(min_value=0, max_value=100), min_size=1, max_size=60), st.floats(1, 50))
def test_window_property_keeps_exactly_the_recent_events(gaps, window):
    clock = VirtualClock(0)
    bus = Bus(clock=clock, retention=window)
    times = []
    for g in gaps:
        clock.advance(g)
        times.append(bus.publish("a.b").time)
    now = clock.now()
    kept = [e.time for e in bus.replay()]
    assert kept == [t for t in times if t > now - window]


@given(st.lists(st.integers(0, 5), min_size=1, max_size=40), st.integers(0, 40), st.integers(0, 40))
def test_replay_range_property(gaps, a, b):
    clock = VirtualClock(0)
    bus = Bus(clock=clock)
    for g in gaps:
        clock.advance(g)
        bus.publish("a.b")
    lo, hi = min(a, b), max(a, b)
    got = [e.time for e in bus.replay(since=float(lo), until=float(hi))]
    assert got == [e.time for e in bus.replay() if lo <= e.time <= hi]


def test_bad_retention_settings():
    with pytest.raises(ValueError, match="retention window must be a positive.*got -1"):
        Bus(retention=-1)
    with pytest.raises(ValueError, match="retention window must be a positive.*got nan"):
        Retention(float("nan"))
    with pytest.raises(ValueError, match="max_retained must be a positive int or None, got 0"):
        Bus(max_retained=0)


def test_status_counts_only_unexpired_events(clock):
    bus = Bus(clock=clock)
    bus.publish("a.b")
    clock.advance(25 * 3600)
    assert bus.status()["retained"] == 0
