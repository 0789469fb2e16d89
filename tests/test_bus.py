"""Delivery: semantics, isolation, re-entrancy, threads, bad input."""

from __future__ import annotations

import logging
import threading

import pytest

from hms_bus import Bus, HmsBusError, VirtualClock


def test_publish_before_subscribe_is_delivered_by_default(bus, received):
    bus.publish("payments.sent", {"amount": 1000})
    bus.subscribe("payments.*", received.append)
    assert [e["topic"] for e in received] == ["payments.sent"]


def test_deliver_new_gets_live_events_only(bus, received):
    bus.publish("payments.sent", {"n": 1})
    bus.subscribe("payments.*", received.append, deliver="new")
    bus.publish("payments.sent", {"n": 2})
    assert [e["data"]["n"] for e in received] == [2]


def test_deliver_from_a_time(bus, clock, received):
    bus.publish("a.b", {"n": 1})
    clock.advance(60)
    bus.publish("a.b", {"n": 2})
    bus.subscribe("a.b", received.append, deliver="2021-08-29T12:00:30Z")
    bus.publish("a.b", {"n": 3})
    assert [e["data"]["n"] for e in received] == [2, 3]


def test_deliver_rejects_nonsense(bus):
    with pytest.raises(ValueError, match="deliver='al'.*'all', 'new'"):
        bus.subscribe("a.b", print, deliver="al")


def test_each_subscription_gets_each_event_once_in_order(bus):
    log: list[tuple[str, int]] = []
    bus.subscribe("a.*", lambda e: log.append(("first", e["data"])))
    bus.subscribe("a.>", lambda e: log.append(("second", e["data"])))
    bus.subscribe("b.*", lambda e: log.append(("never", e["data"])))
    for n in range(3):
        bus.publish("a.x", n)
    assert log == [
        ("first", 0),
        ("second", 0),
        ("first", 1),
        ("second", 1),
        ("first", 2),
        ("second", 2),
    ]


def test_subscriber_error_does_not_stop_delivery(bus, received, caplog):
    def broken(ev):
        raise RuntimeError("dashboard crashed")

    errors: list = []
    bus.subscribe("bus.subscriber_error", errors.append)
    sub = bus.subscribe("payments.*", broken)
    bus.subscribe("payments.*", received.append)
    with caplog.at_level(logging.ERROR, logger="hms_bus"):
        ev = bus.publish("payments.sent", {"amount": 1000})
    assert received == [ev]
    assert sub.errors == 1
    assert "broken failed on " + ev.id in caplog.text
    [err] = errors
    assert err["data"]["event_id"] == ev.id
    assert err["data"]["subscriber"].endswith("broken")
    assert err["data"]["error"] == "RuntimeError: dashboard crashed"
    # The failed event is still kept: nothing is lost.
    assert bus.replay("payments.*") == [ev]


def test_failing_subscriber_of_errors_cannot_loop(bus, caplog):
    calls = []

    def always_fails(ev):
        calls.append(ev["topic"])
        raise ValueError("nope")

    bus.subscribe(">", always_fails)
    with caplog.at_level(logging.ERROR, logger="hms_bus"):
        bus.publish("a.b")
    assert calls == ["a.b", "bus.subscriber_error"]
    assert len(bus.replay()) == 2


def test_publish_from_a_callback_is_delivered_after_the_current_event(bus):
    seen: list[tuple[str, str]] = []

    def monitor(ev):
        seen.append(("monitor", ev["topic"]))
        if ev["topic"] == "bank.error":
            bus.publish("alerts.error_storm", {"count": 1})

    bus.subscribe(">", monitor)
    bus.subscribe(">", lambda ev: seen.append(("audit", ev["topic"])))
    bus.publish("bank.error")
    assert seen == [
        ("monitor", "bank.error"),
        ("audit", "bank.error"),
        ("monitor", "alerts.error_storm"),
        ("audit", "alerts.error_storm"),
    ]


def test_subscribe_and_unsubscribe_inside_a_callback_are_safe(bus):
    got: dict[str, list] = {"late": [], "victim": []}
    victim = bus.subscribe("a.b", lambda e: got["victim"].append(e["data"]))

    def churn(ev):
        if ev["data"] == 1:
            bus.unsubscribe(victim)
            bus.subscribe("a.b", lambda e: got["late"].append(e["data"]))

    bus.subscribe("a.b", churn)
    bus.publish("a.b", 0)
    bus.publish("a.b", 1)
    bus.publish("a.b", 2)
    assert got["victim"] == [0, 1]  # subscribed before churn, so it got 1 first
    assert got["late"] == [0, 1, 2]  # kept events 0 and 1, then live 2, once each


def test_unsubscribe_during_delivery_skips_the_rest(bus):
    got = []
    later = None

    def first(ev):
        later.unsubscribe()

    bus.subscribe("a.b", first)
    later = bus.subscribe("a.b", got.append)
    bus.publish("a.b")
    assert got == []


def test_subscription_is_a_context_manager(bus, received):
    with bus.subscribe("a.b", received.append, deliver="new") as sub:
        bus.publish("a.b", 1)
    bus.publish("a.b", 2)
    assert [e["data"] for e in received] == [1]
    assert not sub.active
    sub.unsubscribe()  # twice is harmless


def test_collect_records_events_in_a_block(bus):
    bus.publish("alerts.old")
    with bus.collect("alerts.*") as alerts:
        bus.publish("alerts.x")
        bus.publish("other.x")
    assert [e["topic"] for e in alerts] == ["alerts.x"]


def test_concurrent_publishers_lose_nothing_and_duplicate_nothing():
    bus = Bus(src="threads")
    counts: dict[str, int] = {}
    lock = threading.Lock()

    def count(ev):
        with lock:
            counts[ev.id] = counts.get(ev.id, 0) + 1

    bus.subscribe("t.*", count)
    bus.subscribe("t.>", count, name="second")
    n_threads, per_thread = 8, 2_000
    barrier = threading.Barrier(n_threads)

    def worker(i):
        barrier.wait()
        for n in range(per_thread):
            bus.publish(f"t.{i}", n)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    bus.flush(timeout=10)
    assert len(counts) == n_threads * per_thread
    assert set(counts.values()) == {2}
    kept = bus.replay()
    assert len(kept) == n_threads * per_thread
    assert [e.seq for e in kept] == sorted(e.seq for e in kept)


def test_concurrent_subscribers_get_history_and_live_exactly_once():
    bus = Bus()
    stop = threading.Event()

    def publisher():
        n = 0
        while not stop.is_set() and n < 50_000:
            bus.publish("p.x", n)
            n += 1

    t = threading.Thread(target=publisher)
    t.start()
    subs = []
    for _ in range(20):
        got: list[int] = []
        subs.append(got)
        bus.subscribe("p.x", lambda e, got=got: got.append(e["data"]))
    stop.set()
    t.join()
    bus.flush(timeout=10)
    total = len(bus.replay())
    for got in subs:
        assert got == list(range(total))


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


def test_closed_bus_says_so():
    bus = Bus()
    bus.close()
    with pytest.raises(HmsBusError, match="Cannot publish: this bus has been closed"):
        bus.publish("a.b")


def test_buses_are_independent(received):
    a, b = Bus(clock=VirtualClock()), Bus(clock=VirtualClock())
    a.subscribe(">", received.append)
    b.publish("x.y")
    assert received == [] and b.replay()[0]["topic"] == "x.y" and a.replay() == []


def test_flush_inside_a_callback_returns(bus, received):
    bus.subscribe("a.b", lambda e: bus.flush(timeout=1))
    bus.subscribe("a.b", received.append)
    bus.publish("a.b")
    assert len(received) == 1


def test_status_counts(bus):
    bus.subscribe("a.*", print, deliver="new")
    bus.publish("x.y")
    assert bus.status()["published"] == 1
    assert bus.status()["subscriptions"] == 1


def test_subscribing_while_events_are_queued_delivers_each_once(bus):
    """Events queued behind the current one arrive live, not also as history."""
    got: list[str] = []

    def producer(ev):
        bus.publish("a.queued1")
        bus.publish("a.queued2")
        bus.subscribe("a.*", lambda e: got.append(e["topic"]))

    bus.subscribe("a.start", producer)
    bus.publish("a.start")
    assert got == ["a.start", "a.queued1", "a.queued2"]


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
