"""Retention and replay: what a backend keeps, and reading it back.

The same rules on every backend (see ``conftest.py``). Time-based retention
is measured on the bus clock in memory and on the server's clock on NATS, so
the shared rules here bound retention by count.
"""

from __future__ import annotations


def test_replayed_events_equal_the_published_ones(make_bus, clock):
    bus = make_bus(clock=clock, src="hms-ach")
    sent = [bus.publish("payments.sent", {"n": n, "nested": [1, {"k": "v"}]}) for n in range(5)]
    bus.publish("other.topic", 0)
    got = bus.replay("payments.*")
    assert got == sent
    assert [e.to_dict() for e in got] == [e.to_dict() for e in sent]
    assert [(e.time, e.seq, e.bus_id) for e in got] == [(e.time, e.seq, e.bus_id) for e in sent]


def test_replay_since_until_limit(bus, clock):
    for n in range(10):
        bus.publish("m.x", n)
        clock.advance(60)
    assert [e["data"] for e in bus.replay("m.*", since="2021-08-29T12:03:00Z")] == list(
        range(3, 10)
    )
    window = bus.replay("m.x", since=120 + clock.now() - 600, until=clock.now() - 300)
    assert [e["data"] for e in window] == [2, 3, 4, 5]
    assert [e["data"] for e in bus.replay(">", limit=2)] == [0, 1]
    assert bus.replay(">", limit=0) == []
    assert bus.replay("nothing.here") == []


def test_since_and_until_include_their_instant(bus, clock):
    first = bus.publish("edge.x", 1)
    clock.advance(10)
    second = bus.publish("edge.x", 2)
    assert bus.replay(since=first.time, until=first.time) == [first]
    assert bus.replay(since=second.time) == [second]


def test_replay_reads_its_own_writes_at_once(bus):
    """No flush needed: a replay sees every event published before it."""
    sent = [bus.publish("own.x", n) for n in range(200)]
    assert bus.replay("own.*") == sent


def test_max_retained_keeps_the_newest_events(make_bus, clock, received):
    bus = make_bus(clock=clock, max_retained=3)
    for n in range(5):
        bus.publish("r.x", n)
    assert [e["data"] for e in bus.replay()] == [2, 3, 4]
    bus.subscribe("r.*", received.append)
    bus.flush(10)
    assert [e["data"] for e in received] == [2, 3, 4]


def test_wildcards_select_the_same_events_in_replay_and_delivery(bus):
    topics = ["pay.sent", "pay.sent.eu", "pay.failed", "bank.error", "pay"]
    for t in topics:
        bus.publish(t)
    for pattern, want in [
        ("pay.*", ["pay.sent", "pay.failed"]),
        ("pay.>", ["pay.sent", "pay.sent.eu", "pay.failed"]),
        ("*.error", ["bank.error"]),
        ("pay", ["pay"]),
        (">", topics),
    ]:
        got: list[str] = []
        bus.subscribe(pattern, lambda e, got=got: got.append(e.topic))
        bus.flush(10)
        assert got == want, pattern
        assert [e.topic for e in bus.replay(pattern)] == want, pattern


def test_a_1000_token_topic_and_pattern_deliver(bus):
    deep = ".".join(["a"] * 1000)
    got: list = []
    bus.subscribe(deep, got.append)
    bus.subscribe(".".join(["*"] * 1000), got.append)
    bus.subscribe(".".join(["a"] * 999 + [">"]), got.append)
    ev = bus.publish(deep, {"n": 1})
    bus.flush(10)
    assert got == [ev, ev, ev]
    assert bus.replay(deep) == [ev]
