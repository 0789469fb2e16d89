"""Getting alerts to people: receivers, routes, silences and inhibition."""

from __future__ import annotations

import io
import json

import pytest

from hms_bus.monitor import (
    Callback,
    ConsolePager,
    JsonLinesFile,
    Monitor,
    Router,
    absence,
    frequency,
)

STORM = frequency("error_storm", "*.error", count=3, window=60, labels={"team": "payments"})
BANK = absence("bank_down", "payments.sent", window=120, labels={"severity": "page"})


def storm(bus, clock, n=3):
    for _ in range(n):
        bus.publish("bank.error", {"code": 502})
    clock.advance(600)


# -- receivers --------------------------------------------------------------------------


def test_console_pager_prints_a_red_alert_and_a_green_resolve(bus, clock):
    out = io.StringIO()
    with Monitor(bus, [STORM], receivers=[ConsolePager(out, color=True)]):
        storm(bus, clock)
    first, second = out.getvalue().splitlines()
    assert first.startswith("\x1b[41;97m") and "🚨 FIRING error_storm" in first
    assert "at 2021-08-29T12:00:00.000Z: 3 *.error events within 60 s" in first
    assert "✅ RESOLVED error_storm" in second and "after 60 s" in second


def test_console_pager_without_colour(bus, clock):
    out = io.StringIO()
    with Monitor(bus, [STORM], receivers=[ConsolePager(out, color=False)]):
        storm(bus, clock)
    assert "\x1b" not in out.getvalue()
    with pytest.raises(ValueError, match="color='red'"):
        ConsolePager(color="red")


def test_json_lines_file_appends_one_notice_per_line(bus, clock, tmp_path):
    path = tmp_path / "alerts.jsonl"
    with Monitor(bus, [STORM], receivers=[JsonLinesFile(path)]):
        storm(bus, clock)
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [(x["rule"], x["state"]) for x in lines] == [
        ("error_storm", "firing"),
        ("error_storm", "resolved"),
    ]
    assert lines[0]["labels"] == {"team": "payments"} and len(lines[0]["event_ids"]) == 3
    with pytest.raises(ValueError, match="does not exist"):
        JsonLinesFile(tmp_path / "nope" / "alerts.jsonl")


def test_callback_gets_the_published_data_and_failures_are_reported(bus, clock):
    got = []

    def broken(data):
        raise RuntimeError("pager offline")

    with bus.collect("monitor.delivery_failed") as failures:
        with Monitor(bus, [STORM], receivers=[Callback(got.append), Callback(broken)]) as mon:
            storm(bus, clock)
    assert [d["state"] for d in got] == ["firing", "resolved"]
    assert got[0]["since"] == "2021-08-29T12:00:00.000Z"
    assert [f["data"]["error"] for f in failures] == ["RuntimeError: pager offline"]
    statuses = [(e["receiver"], e["state"], e["status"]) for e in mon.router.log]
    assert statuses == [
        ("list.append", "firing", "sent"),
        (
            "test_callback_gets_the_published_data_and_failures_are_reported.<locals>.broken",
            "firing",
            "failed",
        ),
        ("list.append", "resolved", "sent"),
        (
            "test_callback_gets_the_published_data_and_failures_are_reported.<locals>.broken",
            "resolved",
            "not_sent",
        ),
    ]
    with pytest.raises(TypeError, match="Callback needs a function"):
        Callback("print")


# -- routes -------------------------------------------------------------------------------


def test_routes_by_rule_name_and_labels(bus, clock):
    pages, chat, everything = [], [], []
    router = Router()
    router.route(Callback(pages.append), labels={"severity": "page"})
    router.route(Callback(chat.append), rule="error_*", send_resolved=False)
    router.route(Callback(everything.append))
    with Monitor(bus, [STORM, BANK], router=router):
        storm(bus, clock)
    # bank_down is still firing when the monitor closes: its pager hears it ended.
    assert [(d["rule"], d["state"]) for d in pages] == [
        ("bank_down", "firing"),
        ("bank_down", "ended"),
    ]
    assert [(d["rule"], d["state"]) for d in chat] == [("error_storm", "firing")]
    assert len(everything) == 4


def test_receiver_on_two_routes_gets_a_notice_once(bus, clock):
    got = []
    rec = Callback(got.append)
    router = Router()
    router.route(rec, rule="error_storm")
    router.route(rec, labels={"team": "payments"})
    with Monitor(bus, [STORM], router=router):
        storm(bus, clock)
    assert len(got) == 2


def test_unrouted_notices_are_logged(bus, clock):
    router = Router()
    router.route(Callback(lambda d: None), rule="something_else")
    with Monitor(bus, [STORM], router=router):
        storm(bus, clock)
    assert [e["status"] for e in router.log] == ["unrouted", "unrouted"]


# -- silences -----------------------------------------------------------------------------


def test_silence_mutes_delivery_but_keeps_history(bus, clock):
    got = []
    router = Router()
    router.route(Callback(got.append))
    with Monitor(bus, [STORM], router=router) as mon:
        s = router.silence(rule="error_storm", duration=3600, comment="bank maintenance")
        storm(bus, clock)
        assert got == []
        assert list(mon.timeline()["state"]) == ["firing", "resolved"]
    assert [(e["status"], e["detail"]) for e in router.log] == [
        ("silenced", f"silence {s.id}: bank maintenance"),
        ("not_sent", "the receiver was not told it was firing"),
    ]


def test_resolve_reaches_whoever_heard_of_the_incident_even_after_a_silence_began(bus, clock):
    got = []
    router = Router()
    router.route(Callback(got.append))
    with Monitor(bus, [STORM], router=router):
        for _ in range(3):
            bus.publish("bank.error")
        clock.advance(1)  # the firing at 0 s went out
        router.silence({"team": "payments"}, duration=3600, comment="too late")
        clock.advance(600)
    assert [d["state"] for d in got] == ["firing", "resolved"]


def test_silence_window_start_and_end(bus, clock):
    got = []
    router = Router()
    router.route(Callback(got.append))
    rule = frequency("error_storm", "*.error", count=1, window=10)
    with Monitor(bus, [rule], router=router):
        router.silence(rule="error_storm", start=clock.now() + 100, end=clock.now() + 200)
        for _ in range(3):  # at 0, 150 and 300 s
            bus.publish("bank.error")
            clock.advance(150)
    # The incident at 150 s is silenced; its resolve is therefore not sent either.
    assert [(d["state"], d["at"][11:19]) for d in got] == [
        ("firing", "12:00:00"),
        ("resolved", "12:00:10"),
        ("firing", "12:05:00"),
        ("resolved", "12:05:10"),
    ]


def test_silence_and_inhibit_reject_bad_input():
    router = Router()
    with pytest.raises(ValueError, match="exactly one of end= or duration="):
        router.silence(rule="x")
    with pytest.raises(ValueError, match="would mute every alert"):
        router.silence(end=10)
    with pytest.raises(ValueError, match="duration= needs a start"):
        router.silence(rule="x", duration=60)
    with pytest.raises(ValueError, match="is not after its start"):
        router.silence(rule="x", start=100, end=50)
    with pytest.raises(TypeError, match="maps a label to a str"):
        router.silence({"rule": 3}, end=10)
    with pytest.raises(ValueError, match="non-empty source and target"):
        router.inhibit(source={}, target={"rule": "x"})
    with pytest.raises(ValueError, match="at least one receiver"):
        router.route()
    with pytest.raises(TypeError, match="is not a receiver"):
        router.route(print)


# -- inhibition ---------------------------------------------------------------------------


def test_bank_down_inhibits_the_error_storm_it_causes(bus, clock):
    got = []
    router = Router()
    router.route(Callback(got.append))
    router.inhibit(source={"rule": "bank_down"}, target={"rule": "error_storm"})
    with Monitor(bus, [STORM, BANK], router=router) as mon:
        clock.advance(150)  # bank_down fires at 120 s
        for _ in range(3):
            bus.publish("bank.error")  # the storm it causes: muted
        clock.advance(600)
        bus.publish("payments.sent")  # the bank is back
        for _ in range(3):
            bus.publish("bank.error")  # a storm on its own: delivered
    assert [(d["rule"], d["state"]) for d in got] == [
        ("bank_down", "firing"),
        ("bank_down", "resolved"),
        ("error_storm", "firing"),
        ("error_storm", "ended"),
    ]
    assert list(mon.timeline()["rule"]).count("error_storm") == 3
    assert [e["status"] for e in router.log if e["rule"] == "error_storm"][0] == "inhibited"


def test_inhibition_with_equal_labels_only_mutes_the_same_region(bus, clock):
    got = []
    router = Router()
    router.route(Callback(got.append))
    router.inhibit(source={"rule": "down_*"}, target={"kind": "frequency"}, equal=("region",))
    rules = [
        absence("down_east", "east.ok", window=60, labels={"region": "east"}),
        frequency("storm_east", "east.error", count=1, window=60, labels={"region": "east"}),
        frequency("storm_west", "west.error", count=1, window=60, labels={"region": "west"}),
    ]
    with Monitor(bus, rules, router=router):
        clock.advance(61)
        bus.publish("east.error")
        bus.publish("west.error")
    assert [(d["rule"], d["state"]) for d in got if d["state"] == "firing"] == [
        ("down_east", "firing"),
        ("storm_west", "firing"),
    ]


def test_router_listens_to_alerts_from_a_monitor_elsewhere(bus, clock):
    got = []
    router = Router()
    router.route(Callback(got.append))
    sub = router.listen(bus)
    with Monitor(bus, [STORM]):
        storm(bus, clock)
        bus.publish("alerts.test", {"msg": "hello from ops"})  # the chapter's manual alert
    sub.unsubscribe()
    assert [d["state"] for d in got] == ["firing", "resolved"]


def test_console_pager_marks_an_ended_incident_apart_from_an_all_clear(bus, clock):
    out = io.StringIO()
    with Monitor(bus, [BANK], receivers=[ConsolePager(out, color=True)]):
        clock.advance(200)
    firing, ended = out.getvalue().splitlines()
    assert "🚨 FIRING bank_down" in firing
    assert ended.startswith("\x1b[43;30m⏹️ ENDED bank_down at 2021-08-29T12:03:20.000Z")
    assert "(after 80 s; monitor closed)" in ended and "✅" not in ended
