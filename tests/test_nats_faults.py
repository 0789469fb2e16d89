"""Faults, against nats-servers started and killed here: nothing acked is lost.

A server that goes away, a server killed mid-publish, a 3-node cluster that
loses its stream leader, and a publishing program stopped with SIGTERM.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

pytest.importorskip("nats")

from hms_bus import Bus, HmsBusError  # noqa: E402
from hms_bus.backends import nats_backend  # noqa: E402
from hms_bus.server import NatsCluster, NatsServer  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def wait_for(cond, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


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
def test_cluster_survives_losing_the_stream_leader_and_readers_keep_its_replicas():
    """Also: a read-only replay, and a bus whose URL leaves out ?replicas=3, leave
    the stream's three replicas alone (was: cut to one)."""
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
        cluster.by_name(leader).start()
        env = {**os.environ, "PYTHONPATH": str(ROOT), "HMS_BUS_URL": cluster.url}
        out = subprocess.run(
            [sys.executable, "-m", "hms_bus", "replay", "c.x", "--limit", "1"],
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
        )
        assert out.returncode == 0 and out.stdout.count("\n") == 1, out.stderr
        with Bus(nats_backend(cluster.url)) as plain:
            assert plain.backend.stream_info().config.num_replicas == 3
        assert b.backend.stream_info().config.num_replicas == 3
        b.close()


SCRIPT = """
import sys, time
from hms_bus import Bus, VirtualClock
from hms_bus.backends import nats_backend
bus = Bus(nats_backend(sys.argv[1]), clock=VirtualClock())
for n in range(int(sys.argv[2])):
    bus.publish("term.x", {"n": n, "pad": "x" * 200})
print(bus.status()["acked"], flush=True)
time.sleep(60)
"""


@pytest.mark.nats
@pytest.mark.skipif(sys.platform == "win32", reason="SIGTERM")
def test_sigterm_on_a_publishing_program_stores_its_unflushed_events():
    """Was: SIGTERM lost what was not yet acked (Ctrl-C flushed)."""
    total = 20_000
    with NatsServer() as s:
        url = f"{s.url}?stream=TERM&prefix=term"
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        proc = subprocess.Popen(
            [sys.executable, "-c", SCRIPT, url, str(total)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        try:
            acked_then = int(proc.stdout.readline())
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(30) == 128 + signal.SIGTERM
        finally:
            proc.kill()
            proc.stdout.close()
            proc.stderr.close()
        assert acked_then < total  # the signal came while events were still queued
        with Bus(nats_backend(url, readonly=True)) as reader:
            assert reader.backend.stream_info().state.messages == total


def test_closing_while_the_server_is_away_names_the_events_it_gives_up(caplog):
    """close() cannot keep buffering: it logs how many events were not stored and the
    first one's id, rather than promising to send them later."""
    server = NatsServer().start()
    bus = Bus(nats_backend(server.url + "?outage_timeout=1"))
    try:
        bus.publish("a.b", 1)
        bus.flush(10)
        server.stop()
        lost = bus.publish("a.b", 2)
        with caplog.at_level("ERROR", logger="hms_bus.nats"), pytest.raises(HmsBusError):
            bus.close()
    finally:
        server.stop()
    (line,) = [r.getMessage() for r in caplog.records if "were not acknowledged" in r.getMessage()]
    assert line.startswith("1 events were not acknowledged") and lost.id in line
