"""The dispatcher and the backend interface: small, private-free, robust."""

from __future__ import annotations

import logging
import re
import sys
import threading
import time
from pathlib import Path

import pytest

from hms_bus import Bus, VirtualClock
from hms_bus.backends.base import Backend

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "contract"))
from loopback import LoopbackBackend  # noqa: E402


def test_backends_touch_no_private_name_of_the_bus_an_event_or_a_subscription():
    pattern = re.compile(r"bus\._|sub\._|ev\._")
    hits = [
        f"{path.relative_to(ROOT)}:{n}: {line.strip()}"
        for path in sorted((ROOT / "hms_bus" / "backends").rglob("*.py"))
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if pattern.search(line)
    ]
    assert hits == []


def test_the_backend_interface_is_six_methods_and_attach():
    methods = {
        name
        for name, value in vars(Backend).items()
        if callable(value) and not name.startswith("_")
    }
    assert methods == {"attach", "append", "read", "listen", "flush", "close", "status"}


def test_subscribers_run_inside_publish_on_a_local_backend(bus):
    got: list = []
    bus.subscribe("a.b", got.append)
    ev = bus.publish("a.b")
    assert got == [ev]  # no flush needed


def test_a_fed_backend_delivers_on_one_worker_thread():
    threads: set[str] = set()
    with Bus(LoopbackBackend(), clock=VirtualClock()) as bus:
        bus.subscribe("a.*", lambda ev: threads.add(threading.current_thread().name))
        for n in range(20):
            bus.publish("a.b", n)
        bus.flush(5)
    assert threads == {"hms-bus-deliver"}


def test_a_failed_history_read_is_tried_again_and_nothing_is_lost(caplog):
    """A server away when a subscription joins: its kept events are still stored, so
    the read is tried again until it works; live events wait, in order. (Was: the
    subscriber silently got live events only.)"""

    class Flaky(LoopbackBackend):
        failures = 3

        def read(self, pattern, since, until, limit, upto=None):
            if upto is not None and self.failures:
                self.failures -= 1
                raise ConnectionError("store offline")
            return super().read(pattern, since, until, limit, upto)

    got: list = []
    with Bus(Flaky(), clock=VirtualClock()) as bus:
        kept = bus.publish("a.b", 1)
        with caplog.at_level(logging.ERROR, logger="hms_bus"):
            bus.subscribe("a.b", got.append, name="late")
            live = bus.publish("a.b", 2)
            bus.flush(10)
        assert bus.status()["history_retries"] == 3
    assert got == [kept, live]
    assert "could not read the kept events for subscriber late" in caplog.text
    assert "ConnectionError: store offline); trying again" in caplog.text


def test_a_history_read_that_never_works_gives_up_when_the_bus_closes(caplog):
    class Offline(LoopbackBackend):
        def read(self, pattern, since, until, limit, upto=None):
            if upto is not None:
                raise ConnectionError("store offline")
            return super().read(pattern, since, until, limit, upto)

    bus = Bus(Offline(), clock=VirtualClock())
    bus.publish("a.b", 1)
    with caplog.at_level(logging.ERROR, logger="hms_bus"):
        bus.subscribe("a.b", lambda ev: None, name="late")
        with pytest.raises(TimeoutError, match="a subscriber may be blocked"):
            bus.flush(0.5)
        started = time.monotonic()
        bus.close()
    assert time.monotonic() - started < 2
    assert "it receives live events only" in caplog.text


def test_a_feed_that_fails_to_start_raises_from_subscribe():
    class NoFeed(LoopbackBackend):
        def listen(self, sink):
            raise ConnectionError("no feed today")

    with Bus(NoFeed(), clock=VirtualClock()) as bus:
        with pytest.raises(ConnectionError, match="no feed today"):
            bus.subscribe("a.b", print)
        bus.publish("a.b")  # publishing still works
        assert len(bus.replay()) == 1


def test_status_shows_subscriptions_and_queue(bus):
    bus.subscribe("a.*", print, deliver="new")
    status = bus.status()
    assert status["subscriptions"] == 1 and status["queued"] == 0


def test_flush_returns_while_another_thread_keeps_publishing():
    """flush() waits for what was published before it (and what subscribers publish
    meanwhile), not for a publisher that never stops. (Was: it never returned.)"""
    stop = threading.Event()
    got: list = []
    with Bus(LoopbackBackend(), clock=VirtualClock()) as bus:
        bus.subscribe("a.>", got.append)

        def publish_forever():
            while not stop.is_set():
                bus.publish("a.b", 1)
                time.sleep(0.0002)

        publisher = threading.Thread(target=publish_forever)
        publisher.start()
        try:
            time.sleep(0.2)
            before = bus.publish("a.b", "mark")
            started = time.monotonic()
            bus.flush(10)
            assert time.monotonic() - started < 5
            assert before in got
        finally:
            stop.set()
            publisher.join()


def test_flush_waits_for_what_subscribers_publish_meanwhile():
    got: list = []
    with Bus(LoopbackBackend(), clock=VirtualClock()) as bus:
        bus.subscribe("a.b", lambda ev: bus.publish("a.c", ev.data + 1) if ev.data < 5 else None)
        bus.subscribe("a.c", got.append)
        bus.subscribe("a.c", lambda ev: bus.publish("a.b", ev.data))
        bus.publish("a.b", 0)
        bus.flush(10)
        assert [e.data for e in got] == [1, 2, 3, 4, 5]


def test_flush_on_a_closed_bus_returns_at_once():
    bus = Bus(LoopbackBackend(), clock=VirtualClock())
    bus.subscribe("a.b", lambda ev: None)
    bus.publish("a.b")
    bus.close()
    started = time.monotonic()
    bus.flush()
    assert time.monotonic() - started < 1
