"""Backtests and rule tests: the live engine's results, from recorded events."""

from __future__ import annotations

import random

import pandas as pd
import pytest

from hms_bus import Bus, VirtualClock
from hms_bus.monitor import (
    Monitor,
    absence,
    assert_alerts,
    backtest,
    check_rules,
    default_rules,
    frequency,
    ratio,
    ruletest,
    threshold,
)

RULES = [
    frequency("error_storm", "*.error", count=5, window=60, keep_firing_for=20),
    frequency("per_user", "payments.retry", count=2, window=60, group_by="user"),
    absence("bank_down", "payments.sent", count=2, window=120, repeat_interval=300),
    threshold("bank_slow", "bank.latency", field="ms", agg="p95", above=1500, window=60, for_=15),
    threshold("avg_amount", "payments.sent", field="amount", below=200, window=90, clear=400),
    ratio("failing", "payments.failed", of="payments.*", above=0.2, window=60, min_of=5),
]


def scenario(bus, clock, seed=7, n=1500):
    """A seeded day of traffic with quiet spells, storms and slow bank calls."""
    rng = random.Random(seed)
    for i in range(n):
        clock.advance(rng.choice([0, 0.5, 1, 3, 10, 45, 200]) if i % 97 else 400)
        kind = rng.random()
        if kind < 0.3:
            bus.publish("payments.sent", {"amount": rng.choice([50, 100, 1000]), "user": "u1"})
        elif kind < 0.4:
            bus.publish("payments.failed", {"user": rng.choice("abc")})
        elif kind < 0.5:
            bus.publish("payments.retry", {"user": rng.choice("abcd")})
        elif kind < 0.7:
            bus.publish("bank.latency", {"ms": rng.choice([80, 120, 900, 2500])})
        elif kind < 0.8:
            bus.publish("bank.latency", {"unit": "ms"})  # lacks the field: skipped
        else:
            bus.publish(rng.choice(["bank.error", "payments.error"]), {"code": 502})


def live_run(seed=7):
    clock = VirtualClock("2021-08-29T00:00:00Z")
    bus = Bus(clock=clock, src="sim", max_retained=None)
    with Monitor(bus, RULES) as mon:
        scenario(bus, clock, seed)
        clock.advance(3600)
        return bus, mon, mon.timeline(), mon.stats(), clock.now()


def test_live_and_backtest_timelines_are_identical():
    """The same events give the same notices, stamps, values and ids, live or replayed."""
    bus, mon, live, stats, end = live_run()
    events = [ev for ev in bus.replay() if not ev.topic.startswith("alerts.")]
    again = backtest(RULES, events, start=mon.started, until=end)
    assert len(live) > 40
    assert set(live["rule"]) == {r.name for r in RULES}
    assert set(live["state"]) == {"firing", "resolved"} and live["repeat"].max() > 0
    pd.testing.assert_frame_equal(live, again)
    assert again.attrs["stats"] == stats


def test_backtest_of_replay_including_alert_events_is_the_same(bus, clock):
    """Alert events in a recording match none of these rules, so they change nothing."""
    _, mon, live, _, end = live_run()
    everything = mon.bus.replay()
    assert any(ev.topic.startswith("alerts.") for ev in everything)
    pd.testing.assert_frame_equal(live, backtest(RULES, everything, start=mon.started, until=end))


def test_backtest_publishes_nothing(bus, clock):
    for _ in range(5):
        bus.publish("bank.error")
    events = bus.replay()
    with bus.collect("alerts.>") as seen:
        df = backtest(default_rules(), events)
    assert list(df["state"]) == ["firing"] and seen == []


def test_backtest_from_a_dataframe_with_iso_timestamps():
    df = pd.DataFrame(
        {
            "ts": [f"2021-08-29T12:00:{s:02d}Z" for s in (0, 5, 10, 15, 20)],
            "topic": ["bank.error"] * 5,
            "data": [{"code": 502}] * 5,
        }
    )
    out = backtest(default_rules(), df, until="2021-08-29T12:10:00Z")
    assert list(out["state"]) == ["firing", "resolved"]
    assert str(out["at"][0]) == "2021-08-29 12:00:20+00:00"
    assert str(out["at"][1]) == "2021-08-29 12:01:00+00:00"
    assert out["event_ids"][0] == ["row-0", "row-1", "row-2", "row-3", "row-4"]


def test_backtest_counts_late_events_visibly():
    """An event older than the window's edge is counted as late, not dropped silently."""
    df = pd.DataFrame(
        {
            "time": [1000.0, 1100.0, 1090.0, 1020.0],
            "topic": ["bank.error"] * 4,
            "data": [None] * 4,
        }
    )
    stats = backtest(default_rules(), df).attrs["stats"]["error_storm"]
    assert stats["matched"] == 4 and stats["late"] == 1 and stats["reordered"] == 1


def test_backtest_rejects_bad_input():
    with pytest.raises(TypeError, match="events must be a list of Events"):
        backtest(default_rules(), "bank.error")
    with pytest.raises(TypeError, match=r"events\[0\] is"):
        backtest(default_rules(), [{"topic": "bank.error"}])
    with pytest.raises(ValueError, match="lacks the column"):
        backtest(default_rules(), pd.DataFrame({"topic": ["a"]}))
    with pytest.raises(ValueError, match="is before the last event"):
        backtest(
            default_rules(),
            pd.DataFrame({"time": [10.0], "topic": ["a.error"], "data": [1]}),
            until=5,
        )


def test_empty_backtest_gives_an_empty_typed_timeline():
    df = backtest(default_rules(), [])
    assert df.empty and list(df.columns)[:3] == ["at", "rule", "state"]


# -- rule tests ------------------------------------------------------------------------


def test_rule_test_from_the_module_docstring_passes():
    text = ruletest.__doc__.split("::", 1)[1].split("\n\n")[1]
    result = assert_alerts(default_rules(), text)
    assert result.ok and len(result.got) == 2


def test_rule_test_reports_missing_and_unexpected_alerts():
    result = check_rules(
        default_rules(),
        """
        given:
          0s  bank.error  x5 every 10s
        expect:
          41s error_storm firing
        """,
    )
    assert not result.ok
    assert [m[:3] for m in result.missing] == [(41.0, "error_storm", "firing")]
    assert [u[:3] for u in result.unexpected] == [(40.0, "error_storm", "firing")]
    with pytest.raises(AssertionError, match="missing +41s error_storm firing"):
        assert_alerts(
            default_rules(), "given:\n 0 bank.error x5 every 10s\nexpect:\n 41 error_storm firing"
        )


def test_rule_test_with_groups_data_and_until():
    rules = [
        frequency("retry", "payments.retry", count=2, window=60, group_by="user"),
        threshold("slow", "bank.latency", field="ms", agg="max", above=1000, window=30),
    ]
    assert_alerts(
        rules,
        """
        # two retries by CIT-1, one by CIT-2
        given:
          10s   payments.retry  {"user": "CIT-1"}  x2 every 5s
          20s   payments.retry  {"user": "CIT-2"}
          1m    bank.latency    {"ms": 2500}
        expect:
          15s   retry  firing    group=CIT-1
          1m10s retry  resolved  group=CIT-1
          1m    slow   firing
          1m30s slow   resolved
          until 1h
        """,
    )


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("0s bank.error", "start with 'given:'"),
        ("given:\n 5q bank.error", "cannot read '5q' as a time"),
        ("given:\n 5s bank.error {oops}", "the data is not JSON"),
        ("given:\n 5s", "an event line is"),
        ("expect:\n 5s storm started", "an expect line is"),
        ("expect:\n 5s storm firing severity=page", "unknown option 'severity=page'"),
    ],
)
def test_rule_test_scenario_errors_name_the_line(text, match):
    with pytest.raises(ValueError, match=match):
        check_rules(default_rules(), text)
