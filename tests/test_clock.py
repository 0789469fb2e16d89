"""Clocks: thread-safe, finite, in range, and listeners hear every move in order."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone

import pytest

from hms_bus import VirtualClock
from hms_bus.clock import MAX_TIME, MIN_TIME, to_epoch


def test_clock_never_runs_backwards(clock):
    with pytest.raises(ValueError, match="never goes back"):
        clock.set("2021-08-29T11:00:00Z")
    with pytest.raises(ValueError, match="never goes back"):
        clock.advance(-1)


def test_moves_from_many_threads_add_up_exactly():
    """Was: 4 threads x 20,000 advance(1) moved 78,820 s, with spurious errors."""
    clock = VirtualClock(0)
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def mover():
        barrier.wait()
        try:
            for _ in range(20_000):
                clock.advance(1)
        except BaseException as exc:  # pragma: no cover - what the test looks for
            errors.append(exc)

    threads = [threading.Thread(target=mover) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert clock.now() == 80_000


def test_listeners_hear_each_move_once_and_in_time_order():
    clock = VirtualClock(0)
    heard: list[float] = []
    clock.on_advance(heard.append)

    def mover():
        for _ in range(2_000):
            clock.advance(0.5)

    threads = [threading.Thread(target=mover) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert heard == [0.5 * n for n in range(1, 8_001)]


def test_a_failing_listener_does_not_keep_the_others_from_hearing():
    clock = VirtualClock(0)
    heard: list[float] = []

    def broken(t):
        raise RuntimeError("listener crashed")

    clock.on_advance(broken)
    clock.on_advance(heard.append)
    with pytest.raises(RuntimeError, match="listener crashed"):
        clock.advance(5)
    assert heard == [5] and clock.now() == 5


def test_stop_listening():
    clock = VirtualClock(0)
    heard: list[float] = []
    stop = clock.on_advance(heard.append)
    clock.advance(1)
    stop()
    stop()  # twice is harmless
    clock.advance(1)
    assert heard == [1]


def test_a_listener_may_move_the_clock_again():
    clock = VirtualClock(0)

    def catch_up(t):
        if t < 10:
            clock.set(10)

    clock.on_advance(catch_up)
    clock.advance(1)
    assert clock.now() == 10


@pytest.mark.parametrize(
    ("when", "message"),
    [
        (float("nan"), "when=nan is not a time; give finite epoch seconds"),
        (float("inf"), "when=inf is not a time"),
        (MAX_TIME + 0.001, "is outside the times the bus can show"),
        (MIN_TIME - 1, "is outside the times the bus can show"),
        (10**400, "when=an int of 1329 bits is outside"),
        (datetime.max, "when=datetime.datetime\\(9999, 12, 31, 23, 59, 59, 999999\\) is outside"),
        (
            datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=1))),
            "is outside the times the bus can show: from 0001-01-01T00:00:00Z",
        ),
    ],
)
def test_to_epoch_refuses_what_no_clock_can_show(when, message):
    with pytest.raises(ValueError, match=message):
        to_epoch(when)


def test_the_first_and_last_instants_are_accepted():
    assert to_epoch("0001-01-01T00:00:00Z") == MIN_TIME
    assert to_epoch(MAX_TIME) == MAX_TIME
    assert to_epoch(datetime(9999, 12, 31, 23, 59, 59, 999000)) == pytest.approx(MAX_TIME)


def test_refused_moves_leave_the_clock_where_it_was(clock):
    before = clock.now()
    for bad in (float("nan"), float("inf"), 1e12):
        with pytest.raises(ValueError):
            clock.advance(bad)
    with pytest.raises(TypeError, match="advance\\(\\) takes seconds as a number"):
        clock.advance("60")
    assert clock.now() == before
    clock.advance(timedelta(minutes=1))
    assert clock.iso() == "2021-08-29T12:01:00.000Z"


def test_numpy_numbers_are_numbers():
    np = pytest.importorskip("numpy")
    clock = VirtualClock(np.int64(0))
    clock.advance(np.int64(5))
    clock.advance(np.float32(0.5))
    assert clock.now() == 5.5 and type(clock.now()) is float
    with pytest.raises(ValueError, match="cannot advance by nan s"):
        clock.advance(np.float64("nan"))


@pytest.mark.parametrize(
    ("text", "epoch"),
    [
        ("2021-08-29T12:00:00Z", 1630238400.0),
        ("2021-08-29T12:00:00.5Z", 1630238400.5),
        ("2021-08-29T12:00:00,25+0000", 1630238400.25),
        ("20210829T120000Z", 1630238400.0),
        ("2021-08-29T14:00:00+02:00", 1630238400.0),
        ("2021-08-29 12:00", 1630238400.0),
        ("2021-08-29T12:00:00.123456789Z", 1630238400.123456),
    ],
)
def test_iso_times_read_the_same_on_every_python(text, epoch):
    """Python 3.10's fromisoformat refuses most of these; 3.11's reads them all."""
    assert VirtualClock(text).now() == epoch
