"""The bus itself, on its default in-memory backend.

The delivery rules every backend shares are in ``tests/contract/``; here are
the bus's own checks and what is particular to local delivery (subscribers
run inside ``publish``; a KeyboardInterrupt stops that publish, not the bus).
"""

from __future__ import annotations

import logging

import pytest

from hms_bus import Bus, HmsBusError, VirtualClock


def test_deliver_rejects_nonsense(bus):
    with pytest.raises(ValueError, match="deliver='al'.*'all', 'new'"):
        bus.subscribe("a.b", print, deliver="al")


@pytest.mark.parametrize(
    ("call", "exc", "message"),
    [
        (lambda b: b.subscribe("a.b", "print"), TypeError, "fn must be callable.*'print'"),
        (lambda b: b.subscribe("pay*", print), ValueError, "wildcard inside the token"),
        (lambda b: b.publish("payments.*"), ValueError, "only in subscribe"),
        (lambda b: b.publish("a.b", src=""), TypeError, "src must be a non-empty str"),
        (lambda b: b.unsubscribe("sub"), TypeError, "Subscription that subscribe"),
        (lambda b: b.replay(limit=-1), ValueError, "limit must be"),
        (lambda b: b.replay(since="yesterday"), ValueError, "cannot read 'yesterday' as a time"),
    ],
)
def test_bad_input_table(bus, call, exc, message):
    with pytest.raises(exc, match=message):
        call(bus)


def test_buses_are_independent(received):
    a, b = Bus(clock=VirtualClock()), Bus(clock=VirtualClock())
    a.subscribe(">", received.append)
    b.publish("x.y")
    assert received == [] and b.replay()[0]["topic"] == "x.y" and a.replay() == []


# -- a failure anywhere in dispatch never leaves the bus stuck --------------------


def test_an_interrupted_delivery_resumes_with_the_next_publish(bus):
    """A subscriber raising KeyboardInterrupt stops publish(), not the bus: the
    subscribers after it still get that event, then the next ones."""
    got: list[str] = []
    calls = 0

    def interrupted(ev):
        nonlocal calls
        calls += 1
        if calls == 1:
            raise KeyboardInterrupt

    bus.subscribe("a.*", interrupted)
    bus.subscribe("a.*", lambda ev: got.append(ev["topic"]))
    with pytest.raises(KeyboardInterrupt):
        bus.publish("a.first")
    assert got == []
    bus.publish("a.second")
    assert got == ["a.first", "a.second"]
    assert calls == 2  # the interrupted subscriber is not called twice for a.first


def test_a_failing_lookup_changes_nothing_and_the_next_publish_delivers(clock, monkeypatch):
    from hms_bus.topics import TopicIndex

    bus = Bus(clock=clock)  # not closed: a stuck bus would make close() wait forever
    got: list = []
    bus.subscribe("a.*", got.append)
    real = TopicIndex.lookup

    def broken(self, topic):
        raise MemoryError("simulated")

    monkeypatch.setattr(TopicIndex, "lookup", broken)
    with pytest.raises(MemoryError):
        bus.publish("a.lost")
    monkeypatch.setattr(TopicIndex, "lookup", real)
    bus.flush(timeout=1)  # raises TimeoutError if dispatch state were stuck
    assert bus.replay() == [] and bus.published == 0  # refused whole, no gap in seq
    ev = bus.publish("a.next")
    assert got == [ev] and ev.seq == 1


def test_a_refused_publish_leaves_no_gap_in_seq(clock):
    from hms_bus import MemoryBackend

    class Refusing(MemoryBackend):
        refuse = True

        def append(self, event):
            if self.refuse:
                self.refuse = False
                raise HmsBusError("full")
            super().append(event)

    bus = Bus(Refusing(), clock=clock)
    with pytest.raises(HmsBusError, match="full"):
        bus.publish("a.b")
    assert bus.publish("a.b").seq == 1 and bus.published == 1


def test_reporting_a_failure_on_a_closed_bus_does_not_stop_delivery(caplog):
    bus = Bus(clock=VirtualClock())
    got: list = []

    def closes_then_fails(ev):
        bus.close()
        raise RuntimeError("after close")

    bus.subscribe("a.b", closes_then_fails)
    bus.subscribe("a.b", got.append)
    with caplog.at_level(logging.ERROR, logger="hms_bus"):
        ev = bus.publish("a.b")
    assert got == [ev]
    assert "could not publish bus.subscriber_error" in caplog.text
    assert "Cannot publish: this bus has been closed" in caplog.text


def test_a_custom_clock_is_checked_on_every_publish():
    class Flaky:
        t: float = 1_630_238_400.0

        def now(self) -> float:
            return self.t

    clock = Flaky()
    bus = Bus(clock=clock)
    clock.t = float("nan")
    with pytest.raises(ValueError, match="returned nan from now"):
        bus.publish("a.b")
    clock.t = 1_630_238_401.0
    assert bus.publish("a.b").ts == "2021-08-29T12:00:01.000Z" and bus.published == 1


def test_use_with_a_url_and_options_makes_a_new_default_bus(default_bus):
    import hms_bus

    made = hms_bus.use("memory://", retention=60, src="opts")
    assert hms_bus.get_bus() is made and made.src == "opts"
    assert made.backend.retention.window == 60


def test_an_interrupted_catch_up_resumes_with_the_next_flush(bus):
    """A KeyboardInterrupt while a new subscriber receives kept events stops that
    subscribe(); the rest of the kept events, then live ones, follow in order."""
    sent = [bus.publish("a.b", n) for n in range(3)]
    got: list = []

    def interrupted_once(ev):
        if ev["data"] == 0 and not got:
            got.append("interrupted")
            raise KeyboardInterrupt
        got.append(ev["data"])

    with pytest.raises(KeyboardInterrupt):
        bus.subscribe("a.b", interrupted_once)
    bus.flush(timeout=1)
    bus.publish("a.b", 3)
    assert got == ["interrupted", 1, 2, 3] and len(sent) == 3
