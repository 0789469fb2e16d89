"""The Ida relief day: determinism, the actors' behaviour, results and plots.

Runs are short (two simulated hours, with the bank's outage moved to 01:00)
except one full default day.
"""

from __future__ import annotations

import pandas as pd
import pytest

import hms_bus
from simulations import Result, Scenario, run
from simulations.ida import BRIDGE_PING_S, START
from simulations.output import MARKER
from simulations.results import EVENT_COLUMNS, OUTPUT_FILES, SUMMARY_KEYS

EARLY_OUTAGE = {"outage.start_h": 1, "outage.hours": 0.5}
OUT_S = (3600.0, 5400.0)  # the early outage, in seconds since the start


@pytest.fixture(scope="module")
def outage() -> Result:
    return run("bank_outage", seed=7, hours=2, overrides=EARLY_OUTAGE)


def test_same_seed_gives_identical_events_ids_and_alerts(outage):
    again = run("bank_outage", seed=7, hours=2, overrides=EARLY_OUTAGE)
    pd.testing.assert_frame_equal(outage.events, again.events)
    pd.testing.assert_frame_equal(outage.alerts, again.alerts)
    assert outage.summary == again.summary
    assert len(outage.alerts) > 0


def test_different_seeds_give_different_days(outage):
    other = run("bank_outage", seed=8, hours=2, overrides=EARLY_OUTAGE)
    assert list(other.events["id"][:3]) != list(outage.events["id"][:3])
    assert other.summary["requests"] != outage.summary["requests"]


def test_runs_are_independent_of_each_other_and_of_the_default_bus(outage):
    """A run uses its own bus: the default bus sees nothing, and an
    interleaved run with other settings does not change a repeat."""
    default = hms_bus.get_bus()
    before = default.status()["published"]
    run("calm", seed=1, hours=1, **{"bank.failure_rate": 0.5})
    again = run("bank_outage", seed=7, hours=2, overrides=EARLY_OUTAGE)
    assert default.status()["published"] == before
    assert list(again.events["id"]) == list(outage.events["id"])


def test_every_event_carries_its_simulated_time(outage):
    ev = outage.events
    assert ev["ts"].iloc[0] == START.replace("Z", ".000Z")
    assert ev["time"].is_monotonic_increasing
    assert ev["hour"].between(0, 2).all()
    assert list(ev["ts"]) == [e.ts for e in outage.ledger]
    assert list(ev["id"]) == [e.id for e in outage.ledger]
    assert ev["id"].is_unique


def test_events_have_a_fixed_column_set_whatever_the_scenario(outage):
    ev = outage.events
    assert len(ev) == outage.summary["events"] == len(outage.ledger)
    assert tuple(ev.columns) == EVENT_COLUMNS
    calm = run("calm", seed=1, hours=0.2)
    assert tuple(calm.events.columns) == EVENT_COLUMNS
    assert ev["data"].iloc[1] == {"citizen": "CIT-000001", "amount": 1000}
    assert ev["time"].dtype == float and ev["hour"].dtype == float


def test_select_spreads_a_topics_data_into_columns(outage):
    sent = outage.select("payments.sent")
    assert len(sent) == outage.summary["payments_sent"]
    assert (sent["amount"] == 1000).all()
    assert sent["citizen"].str.startswith("CIT-").all()
    both = outage.select("payments.*")
    assert set(both["topic"]) == {"payments.sent", "payments.failed"}
    assert "reason" in both.columns and "data" not in both.columns


def test_dashboard_counters_agree_with_the_event_log(outage):
    ev, s = outage.events, outage.summary
    topics = ev["topic"].value_counts()
    assert s["requests"] == topics["portal.request"]
    assert s["payments_sent"] == topics["payments.sent"]
    assert s["payments_failed"] == topics["payments.failed"]
    assert s["dollars_disbursed"] == outage.select("payments.sent")["amount"].sum()
    checked = outage.select("hlt.checked")
    assert s["approved"] == (checked["outcome"] == "evacuated").sum()
    last = outage.dashboard.iloc[-1]
    assert last["payments_sent"] == s["payments_sent"]
    assert last["approved"] == s["approved"] and last["dollars"] == s["dollars_disbursed"]
    assert outage.dashboard["hour"].is_monotonic_increasing


def test_payment_latency_percentiles_come_from_sent_payments(outage):
    lat = outage.select("payments.sent")["latency_ms"] / 1000
    assert outage.summary["payment_p50_s"] == pytest.approx(lat.quantile(0.5), abs=1e-3)
    assert outage.summary["payment_p95_s"] == pytest.approx(lat.quantile(0.95), abs=1e-3)


def test_every_approved_request_is_paid_or_failed_once(outage):
    initiated = set(outage.select("ach.initiated")["payment"])
    done = outage.select("payments.*")["payment"]
    assert done.is_unique
    assert set(done) <= initiated
    assert len(initiated) - len(done) == outage.in_flight_payments


def test_payments_still_in_flight_at_the_end_are_counted_and_explained():
    """Stopping while the bank's link is cut leaves calls hanging: the summary
    counts those payments, so sent + failed + in flight adds up to approved."""
    r = run("calm", seed=7, hours=1.2, **{"link_drop.start_h": 1, "link_drop.hours": 0.5})
    s = r.summary
    assert s["payments_in_flight"] == r.in_flight_payments > 0
    assert s["payments_sent"] + s["payments_failed"] + s["payments_in_flight"] == s["approved"]
    assert "still in flight when the run ended" in r.report()


def test_the_bank_refuses_every_call_made_during_the_outage(outage):
    bank = outage.select("bank.*")
    called = bank["hour"] * 3600 - bank["latency_ms"].astype(float) / 1000
    during = bank[(called >= OUT_S[0] - 1e-6) & (called < OUT_S[1])]
    assert len(during) > 0
    assert (during["status"] == 503).all()
    before = bank[called < OUT_S[0] - 1e-6]
    assert (before["status"] != 503).all()


def test_the_bridge_reports_the_partner_down_and_up_within_a_ping(outage):
    ev = outage.events
    down = ev.loc[ev.topic == "bridge.partner.down", "hour"] * 3600
    up = ev.loc[ev.topic == "bridge.partner.up", "hour"] * 3600
    assert len(down) == len(up) == 1
    assert OUT_S[0] <= down.iloc[0] < OUT_S[0] + BRIDGE_PING_S
    assert OUT_S[1] <= up.iloc[0] < OUT_S[1] + BRIDGE_PING_S


def test_the_outage_is_detected_and_paged(outage):
    s = outage.summary
    assert s["incident"] == "bank outage 1h-1.5h"
    assert s["detected_by"] == "error_storm"
    assert (s["incidents"], s["detected"]) == (1, 1)
    first = outage.alerts[outage.alerts.state == "firing"].iloc[0]
    assert s["time_to_detect_s"] == pytest.approx(first["hour"] * 3600 - OUT_S[0], abs=1e-3)
    assert 0 < s["time_to_detect_s"] < 600
    assert s["false_alerts"] == 0
    assert s["pages"] == (outage.alerts.state == "firing").sum()
    pages = outage.events[outage.events.topic == "pager.page"]
    assert len(pages) == s["pages"]
    assert set(outage.alerts["rule"]) >= {"error_storm", "payments_stalled", "payments_failing"}
    assert set(outage.alerts["state"]) == {"firing", "resolved"}


def test_the_ledger_hears_the_monitors_alerts_too(outage):
    topics = set(outage.events["topic"])
    assert {"alerts.error_storm", "proposal.approved", "portal.request"} <= topics
    assert outage.summary["subscriber_errors"] == 0


def test_monitor_threshold_and_window_set_the_error_storm_rule():
    over = {**EARLY_OUTAGE, "monitor.threshold": 12, "monitor.window": 120}
    r = run("bank_outage", seed=7, hours=2, overrides=over)
    storm = r.alerts[r.alerts.rule == "error_storm"]
    assert (storm["bound"] == 12).all() and (storm["window"] == 120).all()
    never = run(
        "bank_outage", seed=7, hours=2, overrides={**EARLY_OUTAGE, "monitor.threshold": 10_000}
    )
    assert "error_storm" not in set(never.alerts["rule"])
    assert never.summary["detected_by"] != "error_storm"


def test_a_lower_threshold_detects_no_later(outage):
    low = run("bank_outage", seed=7, hours=2, overrides={**EARLY_OUTAGE, "monitor.threshold": 2})
    assert low.summary["time_to_detect_s"] <= outage.summary["time_to_detect_s"]


def test_alerts_outside_any_incident_count_as_false():
    r = run("calm", seed=3, hours=1, **{"bank.failure_rate": 0.6, "monitor.threshold": 3})
    assert r.summary["incident"] is None and r.summary["time_to_detect_s"] is None
    assert r.summary["incidents"] == 0 and len(r.incidents) == 0
    assert r.summary["alerts_fired"] > 0
    assert r.summary["false_alerts"] == r.summary["alerts_fired"] == len(r.spans)
    assert not r.spans["true_alert"].any()


def test_a_calm_night_raises_no_alert():
    r = run("calm", seed=7, hours=3)
    assert r.summary["alerts_fired"] == 0 and r.summary["payments_failed"] == 0
    assert r.summary["detected_by"] is None


def test_a_bank_slowdown_stretches_latency_and_trips_the_latency_rule():
    r = run("bank_slowdown", seed=7, hours=2, **{"slowdown.start_h": 1, "slowdown.hours": 0.5})
    assert r.summary["payment_p95_s"] > 10
    assert r.summary["detected_by"] == "bank_slow"
    timeouts = r.select("ach.error")
    assert len(timeouts) > 0 and (timeouts["reason"] == "timeout").all()
    assert r.select("bank.*")["latency_ms"].max() > 10_000


def test_the_surge_after_landfall_raises_requests_and_hlt_can_degrade():
    r = run(
        "landfall_surge",
        seed=7,
        hours=3,
        **{
            "landfall.at_h": 1,
            "understaffed.start_h": 1,
            "understaffed.workers": 1,
            "hlt.service_s": 5,
            "citizens.surge": 6,
        },
    )
    per_hour = r.events[r.events.topic == "portal.request"].groupby(r.events.hour // 1).size()
    assert per_hour.loc[1] > 3 * per_hour.loc[0]
    assert (r.events.topic == "service.degraded").sum() >= 1


def test_summary_has_the_documented_keys_in_order(outage):
    assert tuple(outage.summary) == SUMMARY_KEYS
    assert outage.summary["scenario"] == "bank_outage" and outage.summary["seed"] == 7


@pytest.fixture
def pyplot():
    """pyplot on the Agg backend; figures a test leaves open are closed after it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    before = set(plt.get_fignums())
    yield plt
    for num in set(plt.get_fignums()) - before:
        plt.close(num)


def test_plot_rates_has_a_payments_panel_and_one_panel_per_busy_family(outage, pyplot):
    fig = outage.plot_rates()
    titles = [ax.get_title(loc="left") for ax in fig.axes]
    assert titles[0].startswith("The governor's view: payments sent and failed")
    for fam in ("portal", "hlt", "ach", "bank"):
        assert any(t.startswith(f"{fam}.*") for t in titles), titles
    pay = fig.axes[0]
    assert [line.get_label() for line in pay.get_lines()] == ["payments sent", "payments failed"]
    legend = [t.get_text() for t in pay.get_legend().get_texts()]
    assert "bank outage" in legend and "true alert" in legend
    assert "seed 7" in fig._suptitle.get_text()
    assert "changed: outage.start_h=1, outage.hours=0.5" in fig._suptitle.get_text()


def test_family_colours_are_fixed_whatever_else_is_drawn(outage, pyplot):
    """The same family has the same colour in every run and view."""
    from simulations.plots import FAMILY_COLOURS

    fig, ax = pyplot.subplots()
    outage.plot_rates(ax=ax)
    calm = run("calm", seed=2, hours=1)
    fig2, ax2 = pyplot.subplots()
    calm.plot_rates(ax=ax2)
    for axes in (ax, ax2):
        for line in axes.get_lines():
            assert line.get_color() == FAMILY_COLOURS[line.get_label()]


def test_false_alerts_are_drawn_unlike_true_ones(pyplot):
    r = run("calm", seed=3, hours=1, **{"bank.failure_rate": 0.6, "monitor.threshold": 3})
    fig = r.plot_rates()
    lanes = fig.axes[-1]
    bars = [p for p in lanes.patches if p.get_hatch()]
    assert len(bars) == r.summary["false_alerts"] > 0
    assert all(p.get_facecolor()[3] == 0 for p in bars)  # hollow, hatched


def test_plot_rates_without_ax_makes_a_figure_pyplot_can_show(outage, pyplot):
    """``plt.show()`` after ``plot_rates()`` shows the figure in a notebook."""
    fig = outage.plot_rates()
    assert fig.number in pyplot.get_fignums()
    assert pyplot.gcf() is fig


def test_plot_rates_draws_on_the_axes_it_is_given(outage, pyplot):
    fig, (left, right) = pyplot.subplots(1, 2)
    open_before = pyplot.get_fignums()
    assert outage.plot_rates(ax=right) is fig
    assert right.get_lines() and not left.get_lines()
    assert pyplot.get_fignums() == open_before  # no extra figure
    labels = {line.get_label() for line in right.get_lines()}
    assert {"payments", "portal", "bank"} <= labels


def test_save_writes_the_report_files(outage, tmp_path, pyplot):
    open_before = pyplot.get_fignums()
    paths = outage.save(tmp_path / "out")
    assert pyplot.get_fignums() == open_before  # saving leaves no figure open
    assert sorted(p.name for p in paths.values()) == sorted(OUTPUT_FILES)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted([*OUTPUT_FILES, MARKER])
    back = pd.read_csv(paths["events"])
    assert tuple(back.columns) == EVENT_COLUMNS and len(back) == len(outage.events)
    assert paths["plot"].read_bytes()[:4] == b"\x89PNG"


def test_scenario_objects_and_double_underscore_overrides_work():
    sc = Scenario.load("bank_outage").override(monitor__threshold=3, outage__start_h=0.25)
    r = run(sc, seed=7, hours=0.5)
    assert r.scenario["monitor.threshold"] == 3
    assert "monitor.threshold=3" in repr(sc)


def test_full_default_day_is_big_and_detects_the_outage():
    """The default 24 h day: over 100,000 events, the 14:00 outage detected
    by the error-storm rule within a minute, no false alerts."""
    r = run(seed=7, progress=False)
    s = r.summary
    assert s["scenario"] == "bank_outage" and s["hours"] == 24
    assert s["events"] >= 100_000
    assert s["detected_by"] == "error_storm" and s["time_to_detect_s"] < 60
    assert s["false_alerts"] == 0
    assert s["payments_failed"] > 0 and s["payments_sent"] > 10_000
    assert r.dashboard["hour"].iloc[-1] == 24


def test_a_failing_listener_is_counted_not_hidden(monkeypatch):
    from simulations.watchers import Dashboard

    def broken(self, ev):
        raise RuntimeError("dashboard screen cracked")

    monkeypatch.setattr(Dashboard, "_request", broken)
    r = run("calm", seed=7, hours=0.5)
    assert r.summary["subscriber_errors"] == (r.events.topic == "portal.request").sum() > 0
    assert r.summary["payments_sent"] > 0  # the rest of the day went on


def test_a_runs_bus_and_simpy_garbage_are_freed_when_it_returns():
    """Repeated runs in a loop or a notebook keep a flat memory: the closed bus
    (with its retained events) is gone as soon as run() returns, without
    anyone calling gc.collect()."""
    import weakref

    seen = []
    result = run("calm", seed=1, hours=0.5, listeners=[lambda bus: seen.append(weakref.ref(bus))])
    assert result.summary["events"] > 0
    assert seen[0]() is None
