"""The live monitor: the four rule kinds, their windows' edges and the alert lifecycle."""

from __future__ import annotations

import threading
import time

import pandas as pd
import pytest

import hms_bus
from hms_bus import Bus, VirtualClock, WallClock
from hms_bus.monitor import (
    Callback,
    Monitor,
    Receiver,
    Router,
    absence,
    backtest,
    default_rules,
    frequency,
    ratio,
    threshold,
)

T0 = VirtualClock("2021-08-29T12:00:00Z").now()


@pytest.fixture
def alerts(bus):
    got = []
    bus.subscribe("alerts.*", got.append, deliver="new")
    return got


def states(alerts):
    """(seconds after T0, rule, state) for each alert event."""
    out = []
    for ev in alerts:
        at = hms_bus.clock.to_epoch(ev["data"]["at"])
        out.append((round(at - T0, 3), ev["data"]["rule"], ev["data"]["state"]))
    return out


def at(clock, seconds):
    clock.set(T0 + seconds)


# -- the chapter's rule ---------------------------------------------------------


def test_default_rule_is_the_chapters_error_storm():
    assert default_rules() == [frequency("error_storm", "*.error", count=5, window=60)]


def test_error_storm_gives_one_firing_and_one_resolved_notice(bus, clock, alerts):
    """Twenty errors in 40 s are one incident: the chapter's stub would alert 16 times."""
    with Monitor(bus):
        for i in range(20):
            at(clock, 2 * i)
            bus.publish("payments.error", {"n": i})
        at(clock, 600)
    assert states(alerts) == [(8, "error_storm", "firing"), (90, "error_storm", "resolved")]
    firing, resolved = (ev["data"] for ev in alerts)
    assert firing["value"] == 5 and firing["bound"] == 5 and firing["window"] == 60
    assert resolved["value"] == 4 and resolved["since"] == firing["since"]
    assert set(firing) >= {"rule", "state", "value", "bound", "window", "group", "since"}
    assert set(firing) >= {"event_ids", "labels", "repeat", "at", "duration"}
    assert resolved["duration"] == 82  # the error at 30 s left at 90 s


def test_firing_notice_names_the_events_that_triggered_it(bus, clock, alerts):
    with Monitor(bus):
        sent = [bus.publish("bank.error", {"n": i}) for i in range(5)]
    assert alerts[0]["data"]["event_ids"] == [ev.id for ev in sent]
    assert alerts[0]["src"] == "hms-monitor"


def test_five_errors_less_than_a_window_apart_fire(bus, clock, alerts):
    with Monitor(bus):
        for s in (0, 10, 20, 30, 59.999):
            at(clock, s)
            bus.publish("bank.error")
    assert [s for _, _, s in states(alerts)] == ["firing"]


def test_five_errors_exactly_a_window_apart_do_not_fire(bus, clock, alerts):
    """An event at e counts while e <= t < e + window: the first has left at 60 s."""
    with Monitor(bus) as mon:
        for s in (0, 10, 20, 30, 60):
            at(clock, s)
            bus.publish("bank.error")
        assert mon.stats()["error_storm"]["firing"] == 0
    assert alerts == []


def test_sliding_window_catches_a_storm_across_a_minute_boundary(bus, clock, alerts):
    """Three errors at 58 s and two at 61 s: a tumbling 60 s window would miss them."""
    with Monitor(bus):
        for s in (58, 58, 58, 61, 61):
            at(clock, s)
            bus.publish("bank.error")
    assert states(alerts) == [(61, "error_storm", "firing")]


def test_alerts_reach_the_chapters_alerts_subscriber_on_the_default_bus(default_bus, clock):
    seen = []
    hms_bus.subscribe("alerts.*", lambda ev: seen.append(ev["topic"]))
    with Monitor():
        for _ in range(5):
            hms_bus.publish("payments.error", {"code": 502})
    assert seen == ["alerts.error_storm"]


def test_monitor_ignores_events_published_before_it_started(bus, clock, alerts):
    for _ in range(5):
        bus.publish("bank.error")
    with Monitor(bus) as mon:
        bus.publish("bank.error")
        assert mon.stats()["error_storm"]["matched"] == 1
    assert alerts == []


def test_closed_monitor_stops_watching(bus, clock, alerts):
    mon = Monitor(bus)
    mon.close()
    mon.close()
    for _ in range(10):
        bus.publish("bank.error")
    at(clock, 100)
    assert alerts == [] and mon.stats()["error_storm"]["matched"] == 0
    assert "closed" in repr(mon)


# -- frequency per group ------------------------------------------------------------


def test_frequency_per_group_alerts_each_group_once(bus, clock, alerts):
    rule = frequency("retry_storm", "payments.retry", count=3, window=60, group_by="user")
    with Monitor(bus, [rule]) as mon:
        for user in ("A", "B", "A", "A", "B", "A"):
            bus.publish("payments.retry", {"user": user})
        bus.publish("payments.retry", {"nobody": 1})
        assert mon.stats()["retry_storm"]["skipped"] == 1
        assert [a["group"] for a in mon.active()] == ["A"]
    assert [(a["data"]["group"], a["data"]["state"]) for a in alerts] == [("A", "firing")]


def test_frequency_grouped_by_src(bus, clock, alerts):
    rule = frequency("noisy", "*.error", count=2, window=10, group_by="src")
    with Monitor(bus, [rule]):
        bus.publish("bank.error", src="hms-ach")
        bus.publish("bank.error", src="hms-hlt")
        bus.publish("bank.error", src="hms-ach")
        at(clock, 30)
    assert [(a["data"]["group"], a["data"]["state"]) for a in alerts] == [
        ("hms-ach", "firing"),
        ("hms-ach", "resolved"),
    ]


def test_idle_groups_are_forgotten(bus, clock):
    rule = frequency("per_user", "payments.sent", count=100, window=10, group_by="user")
    with Monitor(bus, [rule]) as mon:
        for i in range(50):
            bus.publish("payments.sent", {"user": f"CIT-{i}"})
        assert mon.stats()["per_user"]["groups"] == 50
        at(clock, 25)
        assert mon.stats()["per_user"]["groups"] == 0


# -- absence ---------------------------------------------------------------------


def test_absence_fires_when_time_passes_with_no_events_at_all(bus, clock, alerts):
    rule = absence("bank_down", "payments.sent", window=300)
    with Monitor(bus, [rule]):
        at(clock, 299)
        assert alerts == []
        at(clock, 1000)  # one jump: the alert is stamped when the window ran out
        at(clock, 5000)
        bus.publish("payments.sent")
    assert states(alerts) == [(300, "bank_down", "firing"), (5000, "bank_down", "resolved")]


def test_absence_waits_a_window_after_the_last_event(bus, clock, alerts):
    rule = absence("bank_down", "payments.sent", count=2, window=60)
    with Monitor(bus, [rule]):
        for s in (10, 20, 30):
            at(clock, s)
            bus.publish("payments.sent")
        at(clock, 500)
    # Fewer than 2 within 60 s once the event at 20 leaves, at 80 s.
    assert states(alerts) == [(80, "bank_down", "firing")]


def test_absence_does_not_re_alert_while_the_silence_lasts(bus, clock, alerts):
    rule = absence("heartbeat", "ops.heartbeat", window=60)
    with Monitor(bus, [rule]) as mon:
        for s in range(0, 3600, 7):
            at(clock, s)
        assert mon.stats()["heartbeat"]["firing"] == 1
    assert len(alerts) == 1


# -- threshold -------------------------------------------------------------------------


def test_threshold_p95_latency_fires_and_resolves_when_slow_calls_leave(bus, clock, alerts):
    rule = threshold("bank_slow", "bank.latency", field="ms", agg="p95", above=2000, window=60)
    with Monitor(bus, [rule]) as mon:
        for i in range(19):
            at(clock, i)
            bus.publish("bank.latency", {"ms": 100})
        at(clock, 19)
        bus.publish("bank.latency", {"ms": 2500})  # p95 of 20 is the 19th value: 100
        at(clock, 20)
        bus.publish("bank.latency", {"ms": 2600})  # now the 20th of 21: 2500
        bus.publish("bank.latency", {"note": "no ms"})
        bus.publish("bank.latency", {"ms": "slow"})
        at(clock, 200)
        stats = mon.stats()["bank_slow"]
    assert states(alerts) == [(20, "bank_slow", "firing"), (80, "bank_slow", "resolved")]
    assert alerts[0]["data"]["value"] == 2500
    assert stats["skipped"] == 2 and stats["matched"] == 23


def test_threshold_below_and_mean(bus, clock, alerts):
    rule = threshold("slow_sales", "payments.sent", field="amount", below=500, window=10)
    with Monitor(bus, [rule]):
        bus.publish("payments.sent", {"amount": 1000})
        at(clock, 1)
        bus.publish("payments.sent", {"amount": 100})  # mean 550
        at(clock, 2)
        bus.publish("payments.sent", {"amount": 100})  # mean 400
        at(clock, 10)  # the 1000 left: mean 100, still below
        at(clock, 13)  # empty: no data, resolved
    assert states(alerts) == [(2, "slow_sales", "firing"), (12, "slow_sales", "resolved")]


def test_threshold_max_falls_when_the_peak_leaves(bus, clock, alerts):
    rule = threshold("spike", "bank.latency", field="ms", agg="max", above=1000, window=5)
    with Monitor(bus, [rule]):
        bus.publish("bank.latency", {"ms": 5000})
        at(clock, 3)
        bus.publish("bank.latency", {"ms": 10})
        at(clock, 100)
    assert states(alerts) == [(0, "spike", "firing"), (5, "spike", "resolved")]


# -- ratio -----------------------------------------------------------------------------


def test_ratio_of_failed_payments(bus, clock, alerts):
    rule = ratio("failing", "payments.failed", of="payments.*", above=0.05, window=60, min_of=10)
    with Monitor(bus, [rule]) as mon:
        for s in range(19):
            at(clock, s)
            bus.publish("payments.sent")
        at(clock, 19)
        bus.publish("payments.failed")  # 1 of 20 attempts is 5 %: not above
        assert alerts == []
        at(clock, 20)
        bus.publish("payments.failed")  # 2 of 21
        at(clock, 70)
        stats = mon.stats()["failing"]
        at(clock, 200)
    # At 71 s only 9 attempts are left in the window: fewer than min_of, no verdict.
    assert states(alerts) == [(20, "failing", "firing"), (71, "failing", "resolved")]
    assert alerts[0]["data"]["value"] == pytest.approx(2 / 21)
    assert stats["window_num"] == 2 and stats["window_of"] == 10
    assert stats["matched"] == 21


# -- lifecycle options ---------------------------------------------------------------


def test_for_waits_before_firing_and_stamps_the_exact_instant(bus, clock, alerts):
    rule = frequency("storm", "*.error", count=2, window=100, for_=30)
    with Monitor(bus, [rule]):
        bus.publish("bank.error")
        bus.publish("bank.error")
        at(clock, 29)
        assert alerts == []
        at(clock, 45)
    assert states(alerts) == [(30, "storm", "firing")]
    assert alerts[0]["data"]["since"] == "2021-08-29T12:00:00.000Z"


def test_pending_alert_that_clears_before_for_never_fires(bus, clock, alerts):
    rule = frequency("storm", "*.error", count=2, window=10, for_=30)
    with Monitor(bus, [rule]) as mon:
        bus.publish("bank.error")
        bus.publish("bank.error")
        at(clock, 100)
        assert mon.stats()["storm"]["cancelled"] == 1
    assert alerts == []


def test_keep_firing_for_rides_out_a_short_dip(bus, clock, alerts):
    rule = frequency("storm", "*.error", count=2, window=10, keep_firing_for=15)
    with Monitor(bus, [rule]):
        bus.publish("bank.error")
        bus.publish("bank.error")  # firing at 0; falls below 2 at 10
        at(clock, 20)
        bus.publish("bank.error")
        bus.publish("bank.error")  # holds again at 20, before 10 + 15
        at(clock, 200)
    assert states(alerts) == [(0, "storm", "firing"), (45, "storm", "resolved")]


def test_clear_bound_gives_hysteresis(bus, clock, alerts):
    rule = frequency("storm", "*.error", count=4, window=10, clear=2)
    with Monitor(bus, [rule]):
        for s in (0, 1, 2, 3, 11, 12):
            at(clock, s)
            bus.publish("bank.error")
        at(clock, 100)
    # Fires at 3 (4 events); below 4 at 10 but holds while 2 or more remain.
    assert states(alerts) == [(3, "storm", "firing"), (21, "storm", "resolved")]


def test_events_that_restore_the_clear_bound_stop_the_keep_firing_countdown(bus, clock, alerts):
    rule = frequency("storm", "*.error", count=3, window=2, clear=2, keep_firing_for=5)
    with Monitor(bus, [rule]):
        for _ in range(3):
            bus.publish("bank.error")  # firing at 0; all gone at 2: countdown to 7
        at(clock, 4)
        bus.publish("bank.error")
        bus.publish("bank.error")  # 2 >= clear: countdown forgotten; gone at 6: new countdown
        at(clock, 100)
    assert states(alerts) == [(0, "storm", "firing"), (11, "storm", "resolved")]


def test_repeat_interval_counts_in_bus_time(bus, clock, alerts):
    rule = absence("bank_down", "payments.sent", window=60, repeat_interval=600)
    with Monitor(bus, [rule]) as mon:
        at(clock, 2000)
        bus.publish("payments.sent")
        assert mon.stats()["bank_down"]["repeats"] == 3
    assert states(alerts) == [
        (60, "bank_down", "firing"),
        (660, "bank_down", "firing"),
        (1260, "bank_down", "firing"),
        (1860, "bank_down", "firing"),
        (2000, "bank_down", "resolved"),
    ]
    assert [a["data"]["repeat"] for a in alerts] == [0, 1, 2, 3, 0]


def test_labels_travel_with_the_alert(bus, clock, alerts):
    rule = frequency("storm", "*.error", count=1, window=10, labels={"severity": "page"})
    with Monitor(bus, [rule]):
        bus.publish("bank.error")
    assert alerts[0]["data"]["labels"] == {"severity": "page"}


# -- the wall clock ----------------------------------------------------------------------


def test_wall_clock_absence_fires_with_no_events_and_close_stops_the_ticker():
    with Bus(clock=WallClock(), src="test") as bus:
        got = []
        bus.subscribe("alerts.*", got.append, deliver="new")
        mon = Monitor(bus, [absence("quiet", "ops.ping", window=0.2)], tick=0.02)
        deadline = time.monotonic() + 5
        while not got and time.monotonic() < deadline:
            time.sleep(0.01)
        mon.close()
        assert not mon._ticker.is_alive()
        assert [ev["data"]["state"] for ev in got] == ["firing"]


# -- bad input ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: frequency("x", "*.error", count=0, window=60), r"count=0 must be at least 1"),
        (lambda: frequency("x", "*.error", count=-2, window=60), r"count=-2"),
        (lambda: frequency("x", "*.error", count=5, window=0), r"window=0 is not a valid"),
        (lambda: absence("x", "a.b", window=-1), r"window=-1 is not a valid"),
        (lambda: frequency("x", "pay*", count=5, window=60), r"pattern='pay\*' is not a valid"),
        (lambda: ratio("x", "a.b", of="a.>.c", above=0.1, window=5), r"of='a.>.c'"),
        (lambda: threshold("x", "a.b", field="ms", agg="median", above=1, window=5), "agg="),
        (lambda: threshold("x", "a.b", field="ms", window=5), "exactly one of above= or below="),
        (lambda: threshold("x", "a", field="ms", above=1, below=2, window=5), "exactly one"),
        (lambda: frequency("a.b", "*.error", count=5, window=60), r"name='a.b' must be one"),
        (lambda: frequency("x", "*.error", count=5, window=60, clear=7), r"clear=7.0 must be"),
        (lambda: absence("x", "a.b", count=3, window=60, clear=1), r"clear=1.0 must be at least"),
        (lambda: frequency("x", "*.error", count=5, window=60, for_=-1), r"for_=-1"),
        (lambda: frequency("x", "a", count=5, window=60, repeat_interval=0), "repeat_interval=0"),
        (lambda: ratio("x", "a", of="b", above=-0.1, window=5), r"above=-0.1"),
        (lambda: ratio("x", "a", of="b", above=0.1, window=5, min_of=0), r"min_of=0"),
    ],
)
def test_bad_rule_arguments_raise_value_error_naming_them(make, match):
    with pytest.raises(ValueError, match=match):
        make()


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: frequency("x", "*.error", count=2.5, window=60), "count must be a whole"),
        (lambda: frequency("x", "*.error", count=5, window="1m"), "window must be seconds"),
        (lambda: frequency("x", "a", count=5, window=60, labels={"sev": 1}), "labels must map"),
        (lambda: frequency("x", "a", count=5, window=60, group_by=3), "group_by must be"),
        (lambda: threshold("x", "a", field="", above=1, window=60), "field must name"),
    ],
)
def test_bad_rule_types_raise_type_error(make, match):
    with pytest.raises(TypeError, match=match):
        make()


def test_windows_accept_timedelta():
    from datetime import timedelta

    rule = frequency("x", "*.error", count=5, window=timedelta(minutes=1), for_=timedelta(0))
    assert rule.window == 60.0


def test_monitor_rejects_bad_arguments(bus):
    rule = frequency("x", "*.error", count=5, window=60)
    with pytest.raises(ValueError, match="two rules are named 'x'"):
        Monitor(bus, [rule, rule])
    with pytest.raises(TypeError, match="is not a rule"):
        Monitor(bus, ["*.error"])
    with pytest.raises(TypeError, match="bus must be a hms_bus Bus"):
        Monitor("memory://")
    with pytest.raises(ValueError, match="give router= or receivers=, not both"):
        Monitor(bus, router=object(), receivers=[])
    assert bus.status()["subscriptions"] == 0


# -- rules that cannot work -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "of", "above", "hint"),
    [
        ("payments.failed", "payments.*", 5, "did you mean 0.05 for 5 %"),
        ("payments.failed", "payments.>", 20, "did you mean 0.2 for 20 %"),
        ("payments.failed", ">", 1, "did you mean 0.01 for 1 %"),
        ("payments.*", "payments.*", 1.5, "did you mean 0.015 for 1.5 %"),
        ("*.failed", "*.*", 2, "share is at most 1"),
    ],
)
def test_a_ratio_whose_pattern_is_covered_by_of_refuses_a_bound_of_one_or_more(
    pattern, of, above, hint
):
    with pytest.raises(ValueError, match=hint):
        ratio("failing", pattern, of=of, above=above, window=60)


@pytest.mark.parametrize(
    ("pattern", "of"),
    [
        ("payments.retry", "payments.sent"),  # retries per payment can exceed 1
        ("payments.*", "payments.sent"),  # of does not cover pattern
        ("payments.>", "payments.*"),  # payments.a.b is not a payments.* event
        ("*.failed", "payments.*"),  # partly overlapping
    ],
)
def test_a_ratio_of_patterns_that_do_not_nest_may_go_above_one(pattern, of):
    assert ratio("per_payment", pattern, of=of, above=1.5, window=60).bound == 1.5


def test_a_ratio_above_one_fires_when_retries_outnumber_payments(bus, clock, alerts):
    rule = ratio("retrying", "payments.retry", of="payments.sent", above=1.5, window=60)
    with Monitor(bus, [rule]):
        bus.publish("payments.sent")
        for _ in range(2):
            bus.publish("payments.retry")
        at(clock, 1)
    assert states(alerts) == [(0, "retrying", "firing")]
    assert alerts[0]["data"]["value"] == 2.0


# -- an instant is decided once everything at it is known ---------------------------------


def test_a_notice_carries_the_value_of_its_whole_instant(bus, clock, alerts):
    """Twenty errors at one instant: the alert fires at the fifth, and says twenty."""
    with Monitor(bus) as mon:
        for _ in range(20):
            bus.publish("bank.error")
        assert mon.stats()["error_storm"]["firing"] == 1  # decided at the fifth
        assert alerts == []  # the notice waits for the instant to be complete
        at(clock, 1)
    assert states(alerts) == [(0, "error_storm", "firing")]
    assert alerts[0]["data"]["value"] == 20 and len(alerts[0]["data"]["event_ids"]) == 10
    assert alerts[0]["data"]["summary"] == "20 *.error events within 60 s (alert at 5)"


def test_a_monitor_closed_mid_instant_still_sends_what_that_instant_decided(bus, clock, alerts):
    with Monitor(bus):
        sent = [bus.publish("bank.error") for _ in range(5)]
    assert states(alerts) == [(0, "error_storm", "firing")]
    assert alerts[0]["data"]["event_ids"] == [ev.id for ev in sent]


def test_a_heartbeat_due_as_the_monitor_closes_is_not_called_missing(bus, clock, alerts):
    with Monitor(bus, [absence("bank_down", "payments.sent", window=60)]):
        bus.publish("payments.sent")
        at(clock, 60)  # closed at 60 s: the next heartbeat may be arriving right now
    assert alerts == []


def test_the_state_at_an_instant_waits_for_the_clock_to_move_on(bus, clock, alerts):
    with Monitor(bus, [absence("bank_down", "payments.sent", window=60)]):
        bus.publish("payments.sent")
        at(clock, 60)
        assert alerts == []
        at(clock, 60.5)
    assert states(alerts) == [(60, "bank_down", "firing")]
    assert alerts[0]["ts"] == "2021-08-29T12:01:00.500Z"  # published when it was known


# -- pending is visible --------------------------------------------------------------------------


def test_pending_incidents_show_in_active_and_in_the_timeline_on_request(bus, clock):
    rule = frequency("storm", "*.error", count=2, window=10, for_=30)
    with Monitor(bus, [rule]) as mon:
        bus.publish("bank.error")
        bus.publish("bank.error")
        at(clock, 5)
        assert mon.active() == []
        assert mon.active(pending=True) == [
            {
                "rule": "storm",
                "group": None,
                "state": "pending",
                "since": "2021-08-29T12:00:00.000Z",
                "value": 2,
            }
        ]
        assert mon.stats()["storm"]["pending"] == 1
        at(clock, 40)  # the errors left at 10 s, before for_ ran out
        timeline = mon.timeline(pending=True)
        assert mon.timeline().empty
    assert list(zip(timeline["state"], timeline["at"].dt.second, strict=True)) == [
        ("pending", 0),
        ("cancelled", 10),
    ]
    events = bus.replay("*.error")
    again = backtest([rule], events, start=mon.started, until=clock.now(), pending=True)
    pd.testing.assert_frame_equal(timeline, again)


# -- closing, flushing ---------------------------------------------------------------------------


def test_closing_with_an_open_incident_tells_its_receivers_it_ended(bus, clock):
    got = []
    with bus.collect("monitor.closed") as closed:
        with Monitor(
            bus,
            [absence("bank_down", "payments.sent", window=60)],
            receivers=[Callback(got.append)],
        ) as mon:
            at(clock, 100)
        assert mon.timeline()["state"].tolist() == ["firing"]  # rule history only
    assert [(d["state"], d["at"], d["reason"]) for d in got] == [
        ("firing", "2021-08-29T12:01:00.000Z", ""),
        ("ended", "2021-08-29T12:01:40.000Z", "monitor closed"),
    ]
    assert got[1]["summary"].startswith("still firing when the monitor closed; last seen: only 0")
    (event,) = closed
    assert event["data"]["at"] == "2021-08-29T12:01:40.000Z"
    assert [n["rule"] for n in event["data"]["open"]] == ["bank_down"]
    assert [e["state"] for e in mon.router.log] == ["firing", "ended"]


def test_closing_with_nothing_open_says_nothing(bus, clock):
    with bus.collect("monitor.closed") as closed:
        with Monitor(bus):
            at(clock, 100)
    assert closed == []


def test_a_router_elsewhere_hears_of_incidents_ended_by_a_closing_monitor(bus, clock):
    got = []
    router = Router()
    router.route(Callback(got.append))
    sub = router.listen(bus)
    with Monitor(bus, [absence("bank_down", "payments.sent", window=60)]):
        at(clock, 100)
    sub.unsubscribe()
    assert [d["state"] for d in got] == ["firing", "ended"]


def test_flush_waits_for_every_receiver_and_the_router_is_public(bus, clock):
    class Slow(Receiver):
        asynchronous = True
        name = "slow"

        def __init__(self):
            self.done, self.threads = [], []

        def deliver(self, notice):
            def later():
                time.sleep(0.2)
                self.done.append(notice["state"])
                self.on_outcome(notice, self, None, 1)

            t = threading.Thread(target=later)
            self.threads.append(t)
            t.start()

        def flush(self, timeout=None):
            for t in self.threads:
                t.join(timeout)

    slow = Slow()
    with Monitor(bus, receivers=[slow]) as mon:
        assert isinstance(mon.router, Router)
        for _ in range(5):
            bus.publish("bank.error")
        at(clock, 1)
        assert mon.router.log[0]["status"] == "queued"
        mon.flush(5)
        assert slow.done == ["firing"] and mon.router.log[0]["status"] == "sent"
    Monitor(bus).flush()  # no receivers: nothing to wait for


# -- one name and one type for time --------------------------------------------------------------


def test_the_change_instant_is_at_everywhere_and_ts_is_the_publish_time(bus, clock, alerts):
    from hms_bus.monitor.timeline import COLUMNS

    got = []
    with Monitor(
        bus, [absence("bank_down", "payments.sent", window=60)], receivers=[Callback(got.append)]
    ) as mon:
        at(clock, 90)
        bus.publish("payments.sent")
        at(clock, 120)
        timeline = mon.timeline()
        log = mon.router.deliveries()
    assert COLUMNS[0] == "at" and "ts" not in COLUMNS
    assert list(timeline.columns) == list(COLUMNS)
    assert str(timeline["at"].dtype) == "datetime64[ns, UTC]"
    assert str(log["at"].dtype) == "datetime64[ns, UTC]"
    assert timeline["at"].tolist() == log["at"].tolist()
    stamps = ["2021-08-29T12:01:00.000Z", "2021-08-29T12:01:30.000Z"]
    assert [d["at"] for d in got] == stamps
    assert [a["data"]["at"] for a in alerts] == stamps
    assert [a["ts"] for a in alerts] == ["2021-08-29T12:01:30.000Z", "2021-08-29T12:02:00.000Z"]
    assert [pd.Timestamp(s) for s in stamps] == timeline["at"].tolist()


def test_a_silence_that_starts_at_the_instant_an_incident_fires_covers_it(bus, clock):
    """Both happen at one instant, which is decided as a whole: the silence is in force."""
    got = []
    router = Router()
    router.route(Callback(got.append))
    with Monitor(bus, [frequency("storm", "*.error", count=3, window=60)], router=router):
        for _ in range(3):
            bus.publish("bank.error")
        router.silence(rule="storm", duration=3600, comment="known")
        at(clock, 600)
    assert got == [] and [e["status"] for e in router.log] == ["silenced", "not_sent"]


def test_every_monitor_has_a_router_that_takes_receivers_later(bus, clock):
    got = []
    with Monitor(bus) as mon:
        for _ in range(5):
            bus.publish("bank.error")
        at(clock, 1)
        mon.router.route(Callback(got.append))
        at(clock, 100)
    assert got == []  # it never heard of the firing, so it hears of no resolve
    assert [(e["state"], e["status"]) for e in mon.router.log] == [
        ("firing", "unrouted"),
        ("resolved", "not_sent"),
    ]
    with pytest.raises(TypeError, match="router must be a hms_bus.monitor.Router"):
        Monitor(bus, router="pager")


# -- review round two: values that break arithmetic, groups, one instant ----------------------


def test_group_by_keeps_true_one_and_one_point_zero_apart(bus, clock):
    """JSON's true, 1 and 1.0 are three label values (Prometheus labels are strings);
    Python's dict would count them as one group."""
    rule = frequency("storm", "*.error", count=3, window=60, group_by="user")
    with Monitor(bus, rule) as mon:
        for user in (1, 1, True, True, 1.0, 1.0):
            bus.publish("a.error", {"user": user})
            clock.advance(1)
        assert mon.timeline().empty
        assert mon.stats()["storm"]["groups"] == 3
        bus.publish("a.error", {"user": True})
        clock.advance(1)
        assert [(n["state"], n["group"]) for n in mon.active()] == [("firing", True)]


def test_a_mean_of_huge_values_neither_overflows_nor_loses_its_notice(bus, clock):
    """The mean of 1e308 and 1e308 is 1e308 (avg_over_time), not infinity; and a firing
    notice reaches the bus and the receivers."""
    heard = []
    quiet = threshold("big", "m.x", field="v", agg="mean", above=1e308, window=10)
    loud = threshold("bigger", "m.x", field="v", agg="mean", above=1e307, window=10)
    with Monitor(bus, [quiet, loud], receivers=[Callback(heard.append)]) as mon:
        for _ in range(2):
            bus.publish("m.x", {"v": 1e308})
        clock.advance(1)
        rows = mon.timeline()
        assert list(rows["rule"]) == ["bigger"] and list(rows["value"]) == [1e308]
    assert [n["rule"] for n in heard if n["state"] == "firing"] == ["bigger"]
    assert [e.data["value"] for e in bus.replay("alerts.bigger")][:1] == [1e308]


def test_a_mean_after_a_huge_value_leaves_does_not_page(bus, clock):
    """1e20 then four 1s: once 1e20 has left, the mean is 1.0, live and in a backtest."""
    rule = threshold("low", "m.x", field="v", agg="mean", below=0.5, window=10)
    start = clock.now()
    with Monitor(bus, rule) as mon:
        bus.publish("m.x", {"v": 1e20})
        clock.advance(5)
        for _ in range(4):
            bus.publish("m.x", {"v": 1})
        clock.advance(9)
        assert mon.timeline().empty
    assert backtest(rule, bus.replay("m.x"), start=start, until=clock.now()).empty


@pytest.mark.parametrize("first", ["bank.error", "bank.down"])
def test_a_source_and_its_target_firing_at_one_instant_mute_the_target_in_any_order(
    bus, clock, first
):
    """Alertmanager decides inhibition by what fires when it sends: publish order within
    one instant must not decide whether the operator is paged twice."""
    router = Router()
    heard = []
    router.route(Callback(heard.append))
    router.inhibit(source={"rule": "bank_down"}, target={"rule": "error_storm"})
    rules = [
        frequency("error_storm", "bank.error", count=1, window=60),
        frequency("bank_down", "bank.down", count=1, window=60),
    ]
    with Monitor(bus, rules, router=router):
        clock.advance(10)
        bus.publish(first)
        bus.publish("bank.down" if first == "bank.error" else "bank.error")
        clock.advance(200)
    log = router.deliveries()
    storm = log[(log["rule"] == "error_storm") & (log["state"] == "firing")]
    assert list(storm["status"]) == ["inhibited"]
    assert [n["rule"] for n in heard if n["state"] == "firing"] == ["bank_down"]


@pytest.mark.parametrize(
    ("above", "hint"),
    [
        (1, "did you mean 0.01 for 1 %"),
        (100, "as a fraction below 1, e.g. 0.2 for 20 %"),
        (250, "as a fraction below 1"),
    ],
)
def test_a_ratio_bound_hint_never_suggests_a_bound_that_is_refused(above, hint):
    with pytest.raises(ValueError, match=hint) as err:
        ratio("x", "payments.failed", of="payments.*", above=above, window=60)
    assert "also matches of='payments.*'" in str(err.value)
    assert "did you mean 1 for" not in str(err.value)


def test_flush_on_a_wall_clock_returns_once_the_page_is_out():
    """Was: flush() returned before the ticker had decided the instant, so nobody had
    been paged yet (the page came a tick later)."""
    heard: list = []
    bus = Bus(clock=WallClock())
    with Monitor(
        bus,
        frequency("storm", "*.error", count=5, window=60),
        receivers=[Callback(heard.append)],
        tick=5.0,
    ) as mon:
        for _ in range(5):
            bus.publish("bank.error")
        time.sleep(0.002)  # the fifth error's instant is now in the past
        mon.flush(5)
        assert [n["state"] for n in heard] == ["firing"]
        assert list(mon.router.deliveries()["status"]) == ["sent"]
    bus.close()
