"""Foreign and malformed messages on the bus's subjects never stall or crash a reader.

A plain nats-py client, as another application would, publishes what the
wire format (``hms_bus.backends.nats.wire``) does not expect: JSON nested
5,000 deep, an hms-shaped payload whose time is "yesterday", bytes that are
not UTF-8... Each is delivered as documented (``src="nats"``, the parsed
JSON or the text as ``data``) within seconds, counted in ``status()``, and
every field of every event reads without raising.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import math
import time

import pytest

pytest.importorskip("nats")

import nats  # noqa: E402
from nats_fixtures import server, url  # noqa: E402, F401 (pytest fixtures)

from hms_bus import Bus, VirtualClock  # noqa: E402
from hms_bus.backends import nats_backend  # noqa: E402

_n = itertools.count()

DEEP = b"[" * 5000 + b"]" * 5000
TOO_DEEP_FOR_THE_BUS = b"[" * 150 + b"]" * 150
YESTERDAY = {"id": "evt-0000beef-000001", "time": "yesterday", "src": "x", "data": {"a": 1}}
BAD_ID = {"id": "evt-x", "time": 1630238400.0, "src": "x", "data": 1}
GOOD = {"id": "evt-0000beef-000007", "time": 1630238400.5, "src": "java-app", "data": {"k": [1]}}

PAYLOADS: list[tuple[str, bytes]] = [
    ("deep", DEEP),
    ("yesterday", json.dumps(YESTERDAY).encode()),
    ("bytes", b"\xff\xfe not json"),
    ("huge_int", b'{"n": 1180591620717411303424}'),
    ("too_deep", TOO_DEEP_FOR_THE_BUS),
    ("nan", b"NaN"),
    ("bad_id", json.dumps(BAD_ID).encode()),
    ("plain", b'{"order": 1}'),
    ("good", json.dumps(GOOD).encode()),
]
"""(subject's last token, payload) that a foreign client publishes, in this order."""


def publish_foreign(url: str, payloads, headers=None, pause: float = 0.0) -> None:
    base, prefix = url.split("?")[0], url.split("prefix=")[1].split("&")[0]

    async def main():
        nc = await nats.connect(base)
        js = nc.jetstream()
        for name, payload in payloads:
            await js.publish(f"{prefix}.ext.{name}", payload, headers=headers)
            if pause:
                await asyncio.sleep(pause)
        await nc.close()

    asyncio.run(main())


def check_readable(events) -> None:
    for ev in events:
        assert isinstance(ev.ts, str) and isinstance(repr(ev), str)
        assert json.dumps(ev.to_dict())
        assert math.isfinite(ev.time)


def expected_data(name: str):
    return {
        "deep": DEEP.decode(),
        "yesterday": YESTERDAY,
        "bytes": "\ufffd\ufffd not json",
        "huge_int": '{"n": 1180591620717411303424}',
        "too_deep": TOO_DEEP_FOR_THE_BUS.decode(),
        "nan": "NaN",
        "bad_id": BAD_ID,
        "plain": {"order": 1},
        "good": {"k": [1]},
    }[name]


def test_malformed_payloads_are_delivered_as_documented_live_and_kept(url, caplog):
    """Was: replay hung 120 s and a deliver="all" subscription held back live events."""
    live: list = []
    with Bus(nats_backend(url), clock=VirtualClock(), src="hms") as bus:
        bus.subscribe("ext.*", live.append)
        before = bus.publish("ext.own", {"n": 0})
        with caplog.at_level(logging.WARNING, logger="hms_bus.nats"):
            publish_foreign(url, PAYLOADS)
            after = bus.publish("ext.own", {"n": 1})
            t0 = time.monotonic()
            bus.flush(10)
            kept = bus.replay("ext.*", since=0)
            late: list = []
            bus.subscribe("ext.*", late.append)  # kept events first
            bus.flush(10)
        assert time.monotonic() - t0 < 5
        status = bus.status()
    for got in (live, kept, late):
        assert [e.topic for e in got] == ["ext.own", *(f"ext.{n}" for n, _ in PAYLOADS), "ext.own"]
        assert got[0] == before and got[-1] == after
        middle = got[1:-1]
        assert [e.data for e in middle] == [expected_data(n) for n, _ in PAYLOADS]
        assert [e.src for e in middle] == ["nats"] * 8 + ["java-app"]
        assert middle[-1].id == "evt-0000beef-000007" and middle[-1].time == 1630238400.5
        assert all(e.id.startswith("evt-nats-") for e in middle[:-1])
        check_readable(got)
    assert (status["foreign"], status["malformed"], status["as_text"]) == (8, 2, 5)
    assert "claims to be an hms event but breaks the wire format" in caplog.text
    assert "is not JSON the bus accepts; delivered as text" in caplog.text


def test_replay_since_a_time_is_not_stalled_by_a_bad_time(url):
    """Was: an hms-shaped payload with "time": "yesterday" hung replay(since=...)."""
    with Bus(nats_backend(url)) as bus:
        ev = bus.publish("ext.own")
        publish_foreign(url, [("yesterday", json.dumps(YESTERDAY).encode())])
        t0 = time.monotonic()
        got = bus.replay("ext.*", since=ev.time - 1)
        assert time.monotonic() - t0 < 5
    assert [e.topic for e in got] == ["ext.own", "ext.yesterday"]
    check_readable(got)


def test_a_message_id_reused_after_the_duplicate_window_is_delivered_every_time(url):
    """Was: live subscribers dropped a reused Msg-Id that the stream had stored."""
    live: list = []
    with Bus(nats_backend(url + "&duplicate_window=1")) as bus:
        bus.subscribe("ext.*", live.append)
        bus.flush(5)
        refund = [("refund", b'{"amount": 250}')]
        publish_foreign(url, refund, headers={"Nats-Msg-Id": "refund-1"})
        time.sleep(1.3)  # past the stream's duplicate window
        publish_foreign(url, refund, headers={"Nats-Msg-Id": "refund-1"})
        bus.publish("ext.own")  # stored after them: flush waits until it is back
        bus.flush(5)
        kept = bus.replay("ext.refund")
    assert [e.topic for e in live] == ["ext.refund", "ext.refund", "ext.own"]
    assert [e.data for e in kept] == [{"amount": 250}] * 2


def test_an_hms_event_stored_twice_reaches_readers_once(url):
    """A re-send after the duplicate window is stored twice; readers drop the copy."""
    body = json.dumps(GOOD).encode()
    msg_id = {"Nats-Msg-Id": "evt-0000beef-000007.0a1b2c3d"}  # as an hms bus writes it
    live: list = []
    with Bus(nats_backend(url + "&duplicate_window=1")) as bus:
        bus.subscribe("ext.*", live.append)
        bus.flush(5)
        publish_foreign(url, [("good", body)], headers=msg_id)
        time.sleep(1.3)
        publish_foreign(url, [("good", body)], headers=msg_id)
        bus.publish("ext.own")  # stored after them: flush waits until it is back
        bus.flush(5)
        kept = bus.replay("ext.good")
        assert bus.backend.stream_info().state.messages == 3
        assert bus.status()["copies_dropped"] == 1
    assert [e.id for e in live][:-1] == [e.id for e in kept] == ["evt-0000beef-000007"]


def test_a_flood_of_foreign_messages_does_not_hold_back_own_events(url):
    got: list = []
    with Bus(nats_backend(url)) as bus:
        bus.subscribe(">", got.append)
        bus.flush(5)
        publish_foreign(url, [("deep", DEEP)] * 200)
        mine = bus.publish("ext.own")
        bus.flush(10)
    assert got[-1] == mine and len(got) == 201


def test_a_subject_that_is_not_a_valid_topic_is_skipped_and_counted(url, caplog):
    """NATS allows a no-break space in a subject; a bus topic may not hold one."""
    got: list = []
    with Bus(nats_backend(url)) as bus:
        bus.subscribe(">", got.append)
        bus.flush(5)
        with caplog.at_level(logging.WARNING, logger="hms_bus.nats"):
            publish_foreign(url, [("a\u00a0b", b"{}"), ("fine", b"{}")])
            bus.publish("ext.own")  # stored after them: flush waits until it is back
            bus.flush(5)
            kept = bus.replay()
        status = bus.status()
    assert [e.topic for e in got] == [e.topic for e in kept] == ["ext.fine", "ext.own"]
    assert status["skipped"] == 1 and status["foreign"] == 1
    assert "is not a valid topic" in caplog.text


def test_an_empty_message_with_a_status_header_is_data_not_flow_control(url):
    """A stored message always comes with a $JS.ACK reply; one whose body is empty and
    whose headers say "Status" (as the server's heartbeats do) is a foreign event. It
    used to be taken for a heartbeat, which stalled live delivery and every replay."""
    live: list = []
    with Bus(nats_backend(url)) as bus:
        bus.subscribe("ext.>", live.append)
        bus.flush(5)
        publish_foreign(url, [("status", b"")], headers={"Status": "200", "Description": "x"})
        publish_foreign(url, [("after", b'{"n": 1}')])
        bus.publish("ext.own")
        bus.flush(10)
        started = time.monotonic()
        kept = bus.replay("ext.>")
        assert time.monotonic() - started < 5
        counts = bus.status()
    assert [(e.topic, e.data) for e in live] == [
        ("ext.status", ""),
        ("ext.after", {"n": 1}),
        ("ext.own", None),
    ]
    assert [e.topic for e in kept] == ["ext.status", "ext.after", "ext.own"]
    assert counts["foreign"] == 2 and counts["feed_resets"] == 0
