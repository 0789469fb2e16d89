"""No input breaks a bus: each bad input gets a clear error at the call that
received it, or works, and afterwards the same bus still delivers, replays and
flushes."""

from __future__ import annotations

import math
from datetime import timedelta

import pytest

import hms_bus
from hms_bus import Bus, MemoryBackend, VirtualClock

DEEP = ".".join(["a"] * 1000)
DEEP_STARS = ".".join(["*"] * 1000)


def still_works(bus: Bus) -> None:
    """The same bus delivers live, replays, flushes and serves history."""
    live: list = []
    bus.subscribe("check.*", live.append, deliver="new")
    ev = bus.publish("check.after", {"ok": True})
    bus.flush(timeout=5)
    assert live == [ev]
    assert bus.replay("check.*")[-1] == ev
    late: list = []
    bus.subscribe("check.*", late.append)  # deliver="all": kept events first
    bus.flush(timeout=5)
    assert late and late[-1] == ev


def circular() -> dict:
    data: dict = {"user": "CIT-883"}
    data["self"] = data
    return data


# (id, call(bus, clock), exception, words the message must hold)
REFUSED = [
    # topics and patterns
    (
        "topic-list",
        lambda b, c: b.publish(["a", "b"]),
        TypeError,
        r"topic must be a str.*\['a', 'b'\] of type list",
    ),
    (
        "topic-nul",
        lambda b, c: b.publish("a\x00b"),
        ValueError,
        r"'a\\x00b' contains '\\x00' \(U\+0000\).*not a printable",
    ),
    ("topic-control", lambda b, c: b.publish("a.\x1bb"), ValueError, r"'\\x1b' \(U\+001B\)"),
    (
        "topic-nbsp",
        lambda b, c: b.publish("payments.\u00a0sent"),
        ValueError,
        "whitespace.*U\\+00A0 NO-BREAK SPACE.*'payments.sent'",
    ),
    (
        "topic-ideographic-space",
        lambda b, c: b.publish("a\u3000b"),
        ValueError,
        "whitespace.*U\\+3000 IDEOGRAPHIC SPACE.*'a.b'",
    ),
    (
        "topic-line-separator",
        lambda b, c: b.publish("a\u2028b"),
        ValueError,
        "whitespace.*U\\+2028",
    ),
    (
        "topic-zero-width-space",
        lambda b, c: b.publish("a\u200bb"),
        ValueError,
        "U\\+200B ZERO WIDTH SPACE.*not a printable",
    ),
    (
        "pattern-nul",
        lambda b, c: b.subscribe("a.\x00", print),
        ValueError,
        r"pattern 'a.\\x00' contains '\\x00'",
    ),
    (
        "pattern-em-space",
        lambda b, c: b.subscribe("a\u2003*", print),
        ValueError,
        "pattern.*whitespace.*U\\+2003 EM SPACE",
    ),
    # data
    (
        "data-huge-int",
        lambda b, c: b.publish("a.b", {"n": 10**10000}),
        ValueError,
        r"data\['n'\] = an int of 33220 bits is outside the 64-bit range.*str\(n\)",
    ),
    (
        "data-int-above-64-bit",
        lambda b, c: b.publish("a.b", {"n": 2**64}),
        ValueError,
        r"data\['n'\] = 18446744073709551616 is outside the 64-bit range",
    ),
    (
        "data-int-below-64-bit",
        lambda b, c: b.publish("a.b", [-(2**63) - 1]),
        ValueError,
        r"data\[0\] = -9223372036854775809 is outside",
    ),
    (
        "data-circular",
        lambda b, c: b.publish("a.b", circular()),
        ValueError,
        r"data\['self'\] refers back to a dict or list that contains it \(circular data\)",
    ),
    (
        "data-too-deep",
        lambda b, c: b.publish("a.b", nested(101)),
        ValueError,
        r"nests more than 100 dicts and lists deep.*at most 100 levels",
    ),
    (
        "data-far-too-deep",
        lambda b, c: b.publish("a.b", nested(100_000)),
        ValueError,
        "nests more than 100",
    ),
    (
        "data-nan",
        lambda b, c: b.publish("a.b", {"x": math.nan}),
        TypeError,
        r"data\['x'\] = nan is not valid JSON",
    ),
    (
        "data-inf-in-list",
        lambda b, c: b.publish("a.b", {"x": [1.0, math.inf]}),
        TypeError,
        r"data\['x'\]\[1\] = inf is not valid JSON",
    ),
    # times
    (
        "since-nan",
        lambda b, c: b.replay(since=math.nan),
        ValueError,
        "since=nan is not a time.*leave it out",
    ),
    ("until-nan", lambda b, c: b.replay(until=math.nan), ValueError, "until=nan is not a time"),
    (
        "since-after-until",
        lambda b, c: b.replay(since=c.now(), until=c.now() - 1),
        ValueError,
        "since=.*is after until=.*swap them",
    ),
    (
        "since-year-10000",
        lambda b, c: b.replay(since=1e12),
        ValueError,
        "since=1000000000000.0 is outside the times the bus can show.*9999-12-31T23:59:59.999Z",
    ),
    (
        "deliver-nan",
        lambda b, c: b.subscribe("a.b", print, deliver=math.nan),
        ValueError,
        "deliver=nan is not a time",
    ),
    (
        "deliver-inf",
        lambda b, c: b.subscribe("a.b", print, deliver=-math.inf),
        ValueError,
        "deliver=-inf is not a time; give finite epoch seconds",
    ),
    (
        "deliver-future",
        lambda b, c: b.subscribe("a.b", print, deliver=c.now() + 60),
        ValueError,
        r"deliver=1630238460.0 is in the future \(2021-08-29T12:01:00.000Z, and the bus "
        r"clock says 2021-08-29T12:00:00.000Z\).*deliver='new'",
    ),
    (
        "deliver-future-text",
        lambda b, c: b.subscribe("a.b", print, deliver="2030-01-01T00:00:00Z"),
        ValueError,
        "in the future",
    ),
    (
        "deliver-negative-timedelta",
        lambda b, c: b.subscribe("a.b", print, deliver=timedelta(hours=-1)),
        ValueError,
        "in the future",
    ),
    (
        "replay-limit-negative",
        lambda b, c: b.replay(limit=-1),
        ValueError,
        "limit must be a non-negative int",
    ),
    # the clock the bus runs on
    (
        "advance-nan",
        lambda b, c: c.advance(math.nan),
        ValueError,
        "cannot advance by nan s: give a finite number",
    ),
    (
        "advance-inf",
        lambda b, c: c.advance(math.inf),
        ValueError,
        "cannot advance by inf s: give a finite number",
    ),
    ("advance-huge-int", lambda b, c: c.advance(10**400), ValueError, "give a finite number"),
    (
        "advance-past-year-9999",
        lambda b, c: c.advance(1e12),
        ValueError,
        r"cannot advance by 1000000000000.0 s from 2021-08-29T12:00:00.000Z: the clock "
        r"stops at 9999-12-31T23:59:59.999Z",
    ),
    ("set-nan", lambda b, c: c.set(math.nan), ValueError, "when=nan is not a time"),
    ("set-back", lambda b, c: c.set("2021-08-29T11:00:00Z"), ValueError, "never goes back"),
    # construction and module functions
    ("clock-nan", lambda b, c: VirtualClock(math.nan), ValueError, "start=nan is not a time"),
    (
        "clock-year-10000",
        lambda b, c: VirtualClock(1e12),
        ValueError,
        "start=1000000000000.0 is outside",
    ),
    (
        "clock-class-not-instance",
        lambda b, c: Bus(clock=VirtualClock),
        TypeError,
        r"got the class VirtualClock; create one, e.g. clock=VirtualClock\(\)",
    ),
    (
        "clock-returns-nan",
        lambda b, c: Bus(clock=BadClock()),
        ValueError,
        "returned nan from now\\(\\); a clock must return epoch seconds",
    ),
    (
        "retention-nan",
        lambda b, c: Bus(retention=math.nan),
        ValueError,
        "retention window must be a positive number.*got nan",
    ),
    (
        "retention-with-backend",
        lambda b, c: Bus(MemoryBackend(), retention=60),
        ValueError,
        r"Bus\(backend=..., retention=60\): retention and max_retained configure the default",
    ),
    (
        "max-retained-with-backend",
        lambda b, c: Bus(MemoryBackend(), max_retained=None),
        ValueError,
        "max_retained=None",
    ),
    (
        "unsubscribe-none",
        lambda b, c: hms_bus.unsubscribe(None),
        TypeError,
        "unsubscribe\\(\\) takes the Subscription that subscribe\\(\\) returned, got None",
    ),
    (
        "use-bus-with-options",
        lambda b, c: hms_bus.use(b, retention=5),
        TypeError,
        "use\\(\\) got a Bus and keyword arguments \\(retention\\)",
    ),
    (
        "flush-timeout-nan",
        lambda b, c: b.flush(timeout=math.nan),
        ValueError,
        r"flush\(timeout=...\) takes seconds as a finite number >= 0.*got nan",
    ),
    ("flush-timeout-negative", lambda b, c: b.flush(timeout=-1), ValueError, "got -1"),
    (
        "subscribe-name-not-str",
        lambda b, c: b.subscribe("a.b", print, name=5),
        TypeError,
        "name must be a str",
    ),
]


class BadClock:
    def now(self) -> float:
        return math.nan


def nested(depth: int) -> list:
    data: list = []
    for _ in range(depth - 1):
        data = [data]
    return data


# The table REFUSED runs on every backend, memory included, in
# tests/contract/test_contract_bad_input.py: each call refused with its type and
# words, nothing half-done, and the same bus still working afterwards.


def test_a_1000_token_pattern_delivers_and_the_bus_keeps_delivering(bus):
    """Was: RecursionError in the index lookup, after which nothing was delivered."""
    got: list = []
    bus.subscribe(DEEP, got.append)
    bus.subscribe(DEEP_STARS, got.append)
    bus.subscribe(".".join(["a"] * 999 + [">"]), got.append)
    ev = bus.publish(DEEP, {"n": 1})
    assert got == [ev, ev, ev]
    still_works(bus)


def test_a_100000_token_topic_and_pattern_work(bus):
    topic = ".".join(["t"] * 100_000)
    got: list = []
    sub = bus.subscribe(topic, got.append)
    bus.subscribe(".".join(["*"] * 99_999 + [">"]), got.append)
    ev = bus.publish(topic)
    assert got == [ev, ev]
    assert bus.replay(topic) == [ev]
    sub.unsubscribe()
    still_works(bus)


def test_limit_zero_replays_nothing(bus):
    bus.publish("a.b")
    assert bus.replay(limit=0) == []
    assert bus.backend.retention.replay(limit=0) == []
    still_works(bus)


def test_an_unprintable_subscriber_error_is_logged_during_publish(bus, caplog):
    """Was: publish() raised from the error report. (The report and the later
    subscribers are checked on every backend in tests/contract.)"""

    class Unprintable(Exception):
        def __str__(self) -> str:
            raise RuntimeError("no words")

    def broken(ev):
        raise Unprintable

    bus.subscribe("a.b", broken)
    bus.publish("a.b")  # the memory bus delivers before publish returns
    assert "Unprintable: <str() of this exception raised RuntimeError>" in caplog.text
    still_works(bus)


def test_the_clock_class_is_refused_before_any_publish():
    with pytest.raises(TypeError, match="got the class VirtualClock"):
        hms_bus.use(None, clock=VirtualClock)


def test_retention_infinity_keeps_events_until_max_retained(clock):
    bus = Bus(clock=clock, retention=math.inf, max_retained=3)
    for n in range(5):
        bus.publish("a.b", n)
        clock.advance(10**9)
    assert [e["data"] for e in bus.replay()] == [2, 3, 4]
    still_works(bus)


def test_deliver_at_the_current_instant_is_not_the_future(bus, clock):
    ev = bus.publish("a.b")
    got: list = []
    bus.subscribe("a.b", got.append, deliver=clock.now())
    assert got == [ev]


def test_extreme_clock_times_print(bus):
    first = Bus(clock=VirtualClock(hms_bus.clock.MIN_TIME)).publish("a.b")
    last = Bus(clock=VirtualClock(hms_bus.clock.MAX_TIME)).publish("a.b")
    assert first["ts"] == "0001-01-01T00:00:00.000Z"
    assert last["ts"] == "9999-12-31T23:59:59.999Z"
    clock = VirtualClock(hms_bus.clock.MAX_TIME - 1)
    clock.advance(1)  # exactly to the end is allowed
    with pytest.raises(ValueError, match="the clock stops at"):
        clock.advance(0.001)
