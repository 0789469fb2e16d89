"""Delivery: order, deliver modes, re-entrancy, failing subscribers, threads.

The same rules on every backend (see ``conftest.py``).
"""

from __future__ import annotations

import logging
import threading

import pytest

from hms_bus import HmsBusError


def test_publish_before_subscribe_is_delivered_by_default(bus, received):
    ev = bus.publish("payments.sent", {"user": "CIT-883", "amount": 1000})
    bus.subscribe("payments.*", received.append)
    bus.flush(10)
    assert received == [ev]


def test_deliver_new_gets_live_events_only(bus, received):
    bus.publish("payments.sent", {"n": 1})
    bus.subscribe("payments.*", received.append, deliver="new")
    bus.publish("payments.sent", {"n": 2})
    bus.flush(10)
    assert [e["data"]["n"] for e in received] == [2]


def test_deliver_new_skips_events_published_just_before(bus, received):
    """Even the ones still on their way to the store when subscribing."""
    bus.subscribe("other.*", print)  # a feed that already runs, on fed backends
    for n in range(2000):
        bus.publish("a.b", n)
    bus.subscribe("a.b", received.append, deliver="new")
    bus.publish("a.b", "after")
    bus.flush(20)
    assert [e["data"] for e in received] == ["after"]


def test_deliver_from_a_time_skips_earlier_events_still_on_their_way(bus, clock, received):
    bus.subscribe("other.*", print)
    for n in range(1000):
        bus.publish("a.b", n)
    clock.advance(60)
    for n in range(1000, 2000):
        bus.publish("a.b", n)
    bus.subscribe("a.b", received.append, deliver="2021-08-29T12:00:30Z")
    bus.flush(20)
    assert [e["data"] for e in received] == list(range(1000, 2000))


def test_deliver_from_a_time_uses_the_events_own_time(bus, clock, received):
    bus.publish("a.b", {"n": 1})
    clock.advance(60)
    bus.publish("a.b", {"n": 2})
    bus.subscribe("a.b", received.append, deliver="2021-08-29T12:00:30Z")
    bus.publish("a.b", {"n": 3})
    bus.flush(10)
    assert [e["data"]["n"] for e in received] == [2, 3]


def test_deliver_at_the_current_instant_includes_that_instant(bus, clock, received):
    ev = bus.publish("a.b")
    bus.subscribe("a.b", received.append, deliver=clock.now())
    bus.flush(10)
    assert received == [ev]


def test_kept_events_first_then_live_each_once_in_order(bus):
    log: list[tuple[str, int]] = []
    for n in range(3):
        bus.publish("a.x", n)
    bus.subscribe("a.*", lambda e: log.append(("first", e["data"])))
    bus.subscribe("a.>", lambda e: log.append(("second", e["data"])))
    bus.subscribe("b.*", lambda e: log.append(("never", e["data"])))
    for n in range(3, 6):
        bus.publish("a.x", n)
    bus.flush(10)
    assert [n for who, n in log if who == "first"] == list(range(6))
    assert [n for who, n in log if who == "second"] == list(range(6))
    live = [(w, n) for w, n in log if n >= 3]  # in the order they subscribed
    assert live == [(w, n) for n in range(3, 6) for w in ("first", "second")]


def test_each_subscription_gets_each_event_once_in_order(bus):
    log: list[tuple[str, int]] = []
    bus.subscribe("a.*", lambda e: log.append(("first", e["data"])))
    bus.subscribe("a.>", lambda e: log.append(("second", e["data"])))
    bus.subscribe("b.*", lambda e: log.append(("never", e["data"])))
    for n in range(3):
        bus.publish("a.x", n)
    bus.flush(10)
    assert log == [(w, n) for n in range(3) for w in ("first", "second")]


def test_one_order_across_topics_for_every_subscriber(bus):
    seen: dict[str, list[str]] = {"all": [], "a": [], "b": []}
    bus.subscribe(">", lambda e: seen["all"].append(e.id))
    bus.subscribe("a.>", lambda e: seen["a"].append(e.id))
    bus.subscribe("b.>", lambda e: seen["b"].append(e.id))
    sent = [bus.publish(f"{'ab'[n % 2]}.x", n).id for n in range(40)]
    bus.flush(10)
    assert seen["all"] == sent
    assert seen["a"] == sent[0::2] and seen["b"] == sent[1::2]


def test_subscriber_error_does_not_stop_delivery(bus, received, caplog):
    def broken(ev):
        raise RuntimeError("dashboard crashed")

    errors: list = []
    bus.subscribe("bus.subscriber_error", errors.append)
    sub = bus.subscribe("payments.*", broken, name="broken")
    bus.subscribe("payments.*", received.append)
    with caplog.at_level(logging.ERROR, logger="hms_bus"):
        ev = bus.publish("payments.sent", {"amount": 1000})
        bus.flush(10)
    assert received == [ev]
    assert sub.errors == 1
    assert "broken failed on " + ev.id in caplog.text
    [err] = errors
    assert err["data"]["event_id"] == ev.id
    assert err["data"]["subscriber"] == "broken"
    assert err["data"]["error"] == "RuntimeError: dashboard crashed"
    assert bus.replay("payments.*") == [ev]  # nothing is lost


def test_failing_subscriber_of_errors_cannot_loop(bus, caplog):
    calls = []

    def always_fails(ev):
        calls.append(ev["topic"])
        raise ValueError("nope")

    bus.subscribe(">", always_fails)
    with caplog.at_level(logging.ERROR, logger="hms_bus"):
        bus.publish("a.b")
        bus.flush(10)
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
    bus.flush(10)
    assert seen == [
        ("monitor", "bank.error"),
        ("audit", "bank.error"),
        ("monitor", "alerts.error_storm"),
        ("audit", "alerts.error_storm"),
    ]


def test_callbacks_may_publish_and_flush_waits_for_the_chain(bus, received):
    def relay(ev):
        if ev["data"] < 5:
            bus.publish("chain.next", ev["data"] + 1)

    bus.subscribe("chain.*", relay)
    bus.subscribe("chain.*", received.append)
    bus.publish("chain.start", 0)
    bus.flush(20)
    assert [e["data"] for e in received] == [0, 1, 2, 3, 4, 5]


def test_subscribe_and_unsubscribe_inside_a_callback_are_safe(bus):
    got: dict[str, list] = {"late": [], "victim": []}
    victim = bus.subscribe("a.b", lambda e: got["victim"].append(e["data"]))

    def churn(ev):
        if ev["data"] == 1:
            bus.unsubscribe(victim)
            bus.subscribe("a.b", lambda e: got["late"].append(e["data"]))

    bus.subscribe("a.b", churn)
    for n in range(3):
        bus.publish("a.b", n)
        bus.flush(10)
    assert got["victim"] == [0, 1]  # subscribed before churn, so it got 1 first
    assert got["late"] == [0, 1, 2]  # kept events 0 and 1, then live 2, once each


def test_subscribing_while_events_are_queued_delivers_each_once(bus):
    """Events published just before a subscription made in a callback reach it once."""
    got: list[str] = []

    def producer(ev):
        bus.publish("a.queued1")
        bus.publish("a.queued2")
        bus.subscribe("a.*", lambda e: got.append(e["topic"]))

    bus.subscribe("a.start", producer)
    bus.publish("a.start")
    bus.flush(10)
    assert got == ["a.start", "a.queued1", "a.queued2"]


def test_unsubscribe_during_delivery_skips_the_rest(bus):
    got = []
    later = None

    def first(ev):
        later.unsubscribe()

    bus.subscribe("a.b", first)
    later = bus.subscribe("a.b", got.append)
    bus.publish("a.b")
    bus.flush(10)
    assert got == []


def test_subscription_is_a_context_manager(bus, received):
    with bus.subscribe("a.b", received.append, deliver="new") as sub:
        bus.publish("a.b", 1)
        bus.flush(10)
    bus.publish("a.b", 2)
    bus.flush(10)
    assert [e["data"] for e in received] == [1]
    assert not sub.active
    sub.unsubscribe()  # twice is harmless


def test_collect_records_events_in_a_block(bus):
    bus.publish("alerts.old")
    with bus.collect("alerts.*") as alerts:
        bus.publish("alerts.x")
        bus.publish("other.x")
    assert [e["topic"] for e in alerts] == ["alerts.x"]


def test_flush_inside_a_callback_returns(bus, received):
    bus.subscribe("a.b", lambda e: bus.flush(timeout=5))
    bus.subscribe("a.b", received.append)
    bus.publish("a.b")
    bus.flush(10)
    assert len(received) == 1


def test_status_counts_published_and_subscriptions(bus):
    bus.subscribe("a.*", print, deliver="new")
    bus.publish("x.y")
    bus.flush(10)
    status = bus.status()
    assert status["published"] == 1 and status["subscriptions"] == 1


def test_concurrent_publishers_lose_nothing_and_duplicate_nothing(bus):
    counts: dict[str, int] = {}
    lock = threading.Lock()

    def count(ev):
        with lock:
            counts[ev.id] = counts.get(ev.id, 0) + 1

    bus.subscribe("t.*", count)
    bus.subscribe("t.>", count, name="second")
    n_threads, per_thread = 4, 500
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
    bus.flush(timeout=30)
    assert len(counts) == n_threads * per_thread
    assert set(counts.values()) == {2}
    kept = bus.replay()
    assert len(kept) == n_threads * per_thread
    assert [e.seq for e in kept] == sorted(e.seq for e in kept)


def test_concurrent_subscribers_get_history_and_live_exactly_once(bus):
    stop = threading.Event()

    def publisher():
        n = 0
        while not stop.is_set() and n < 5_000:
            bus.publish("p.x", n)
            n += 1

    t = threading.Thread(target=publisher)
    t.start()
    subs = []
    for _ in range(10):
        got: list[int] = []
        subs.append(got)
        bus.subscribe("p.x", lambda e, got=got: got.append(e["data"]))
    stop.set()
    t.join()
    bus.flush(timeout=30)
    total = len(bus.replay())
    for got in subs:
        assert got == list(range(total))


def test_closed_bus_refuses_publish_and_subscribe(bus):
    bus.close()
    with pytest.raises(HmsBusError, match="Cannot publish: this bus has been closed"):
        bus.publish("a.b")
    with pytest.raises(HmsBusError, match="Cannot subscribe: this bus has been closed"):
        bus.subscribe("a.b", print)
