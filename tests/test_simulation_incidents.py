"""Incidents: lists of them in scenario files, each kind's effect on the day, and scoring.

Runs are short (a few simulated hours with the incidents moved early),
except the shipped two-outage + flood example, which runs its full day.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from simulations import IncidentWarning, Scenario, run
from simulations.ida import BRIDGE_PING_S
from simulations.incidents import Incident
from simulations.runner import Day, simulate

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bad_day():
    return run("bad_day", seed=7, progress=False)


def test_the_two_outage_and_flood_example_scores_all_three_incidents(bad_day):
    s = bad_day.summary
    assert (s["incidents"], s["detected"], s["false_alerts"]) == (3, 3, 0)
    inc = bad_day.incidents
    assert list(inc["incident"]) == ["bank outage", "request flood", "bank outage #2"]
    assert inc["detected"].all()
    assert list(inc["detected_by"]) == ["error_storm", "requests_rejected", "error_storm"]
    assert (inc["time_to_detect_s"] < 300).all()
    assert s["detected_by"] == "error_storm, requests_rejected, error_storm"
    assert s["time_to_detect_s"] == inc["time_to_detect_s"].max()


def test_the_second_outages_alerts_count_as_true_and_page(bad_day):
    spans = bad_day.spans
    second = spans[(spans.start_h >= 17) & (spans.start_h < 17.5 + 0.25)]
    assert len(second) >= 2 and second["true_alert"].all()
    assert bad_day.incidents.iloc[2]["alerts"] == len(second)
    assert bad_day.summary["pages"] == bad_day.summary["alerts_fired"]


def test_a_flood_is_rejected_by_hlt_and_seen_by_a_rule(bad_day):
    rejected = bad_day.select("hlt.rejected")
    bots = bad_day.select("portal.request")
    bots = bots[bots["citizen"].str.startswith("BOT-")]
    assert len(rejected) == bad_day.summary["rejected"] == len(bots) > 1000
    assert rejected["hour"].between(13, 14.1).all()
    assert set(rejected["citizen"]) == set(bots["citizen"])


def test_actors_keep_their_own_random_streams_so_a_flood_changes_no_citizens_outcome():
    """The flood's bots draw from their own stream: every real citizen is checked
    with the same outcome with and without the flood."""
    over = {"landfall.at_h": 1}
    plain = run("calm", seed=4, hours=2, **over)
    flooded = run("calm", seed=4, hours=2, **over, **{"flood.start_h": 0.5, "flood.hours": 1})

    def outcomes(r):
        checked = r.select("hlt.checked")
        return dict(zip(checked["citizen"], checked["outcome"], strict=True))

    assert outcomes(plain) == outcomes(flooded)
    assert flooded.summary["rejected"] > 0 == plain.summary["rejected"]


def test_a_link_drop_makes_calls_hang_until_acks_timeout():
    r = run("calm", seed=5, hours=2, **{"link_drop.start_h": 1, "link_drop.hours": 0.5})
    timeouts = r.select("ach.error")
    assert len(timeouts) > 0 and (timeouts["reason"] == "timeout").all()
    bank = r.select("bank.*")
    called = bank["hour"] * 3600 - bank["latency_ms"] / 1000
    assert not called.between(3600, 5400 - 1e-9).any()  # no call reached the bank
    down = r.select("bridge.partner.down")["hour"] * 3600
    assert len(down) == 1 and 3600 <= down.iloc[0] < 3600 + BRIDGE_PING_S
    assert r.summary["detected"] == 1 and r.incidents.iloc[0]["incident"] == "partner link drop"


def test_understaffing_builds_a_backlog_that_the_backlog_rule_sees():
    over = {"landfall.at_h": 1, "understaffed.start_h": 1, "understaffed.hours": 1,
            "understaffed.workers": 1, "hlt.service_s": 8}  # fmt: skip
    r = run("landfall_surge", seed=7, hours=3, **over)
    waits = r.select("hlt.checked")
    during = waits[waits["hour"].between(1.2, 2)]
    before = waits[waits["hour"] < 1]
    assert during["wait_ms"].quantile(0.95) > 20_000 > before["wait_ms"].max()
    assert r.summary["hlt_wait_max_s"] == waits["wait_ms"].max() / 1000
    assert r.summary["detected_by"] == "hlt_backlog"
    assert r.summary["false_alerts"] == 0


def test_the_stored_landfall_surge_reports_the_hlt_backlog():
    r = run("landfall_surge", seed=7, progress=False)
    assert r.summary["hlt_wait_p95_s"] > 10 and r.summary["hlt_wait_max_s"] > 30
    assert r.summary["detected_by"] == "hlt_backlog"


def test_an_alert_outside_every_incident_and_grace_is_false(bad_day):
    sp = bad_day.spans
    for row in sp.itertuples():
        inside = any(
            i.start_h <= row.start_h <= i.end_h + 900 / 3600 for i in bad_day.incidents.itertuples()
        )
        assert row.true_alert == inside


def test_an_incident_after_the_run_ends_warns_and_is_not_scored():
    with pytest.warns(IncidentWarning, match=r"bank outage 14h-15.5h starts after the 2 h run"):
        r = run("bank_outage", seed=7, hours=2)
    assert r.summary["incidents"] == 0 and r.summary["detected_by"] is None


def test_an_incident_cut_by_the_end_of_the_run_is_still_scored():
    r = run("bank_outage", seed=7, hours=1.25, **{"outage.start_h": 1})
    assert r.summary["incidents"] == 1 and r.summary["detected"] == 1


# -- incidents in scenarios ------------------------------------------------------------


def test_incident_lists_become_numbered_parameters():
    sc = Scenario.load("bad_day")
    assert sc["outage.start_h"] == 10 and sc["outage.2.start_h"] == 17
    assert sc["flood.per_hour"] == 8000
    assert [i.text() for i in sc.incidents] == [
        "bank outage 10h-11h", "request flood 13h-14h", "bank outage #2 17h-17.5h",
    ]  # fmt: skip
    moved = sc.override({"outage.2.start_h": 20, "outage.1.hours": 2})
    assert moved["outage.hours"] == 2 and moved.changed == {
        "outage.2.start_h": 20, "outage.hours": 2,
    }  # fmt: skip
    assert [i.name for i in moved.incidents] == ["outage", "flood", "outage.2"]


def test_a_third_incident_can_be_added_by_parameter():
    sc = Scenario.load("bad_day").override({"slowdown.start_h": 20, "slowdown.hours": 1})
    assert [i.kind for i in sc.incidents] == ["outage", "flood", "outage", "slowdown"]
    assert sc.incidents[-1] == Incident("slowdown", 1, 20.0, 1.0, {"factor": 20.0})


@pytest.mark.parametrize(
    ("incidents", "match"),
    [
        ([{"kind": "outtage", "start_h": 1, "hours": 1}], r"kind 'outtage'; use one of outage"),
        ([{"kind": "outage", "start_h": 1}], r"incident 1 \(outage\) needs hours"),
        ([{"kind": "flood", "start_h": 1, "hours": 1, "rate": 5}], r"has no field 'rate'"),
        ([{"kind": "outage", "start_h": 1, "hours": -1}], r"outage.hours=-1 is out of range"),
        ({"kind": "outage"}, r"'incidents' must be a list"),
        (["outage"], r"incident 1 must be an object"),
        ([{"kind": "understaffed", "start_h": 1, "hours": 1, "workers": 1.5}],
         r"understaffed.workers must be a whole number"),
    ],
)  # fmt: skip
def test_bad_incident_lists_are_refused_with_the_file_and_the_fix(tmp_path, incidents, match):
    path = tmp_path / "mine.json"
    path.write_text(json.dumps({"incidents": incidents}))
    with pytest.raises(ValueError, match=match) as caught:
        Scenario.load(str(path))
    assert "mine.json" in str(caught.value)


def test_a_scenario_round_trips_through_its_file_form(tmp_path):
    sc = Scenario.load("bad_day").override({"monitor.threshold": 3})
    path = tmp_path / "copy.json"
    path.write_text(json.dumps(sc.to_dict()))
    back = Scenario.load(path)
    assert dict(back) == dict(sc) and back.name == "copy"


def test_scenarios_pickle_with_their_changes():
    import pickle

    sc = Scenario.load("bad_day").override({"monitor.threshold": 3})
    back = pickle.loads(pickle.dumps(sc))
    assert dict(back) == dict(sc) and back.changed == sc.changed and back.name == "bad_day"


# -- the model and the harness -----------------------------------------------------------


def test_simulate_returns_a_typed_day_and_the_model_uses_public_simpy_only():
    day = simulate(Scenario.load("calm"), seed=1, hours=0.2)
    assert isinstance(day, Day) and day.bus_status["published"] == len(day.events)
    model = (ROOT / "simulations" / "ida.py").read_text()
    assert not re.search(r"\benv\._", model) and "_now" not in model


def test_the_bus_is_closed_even_when_the_model_fails(monkeypatch):
    import simulations.ida as ida

    buses = []
    real = ida.Relief.__init__

    def spy(self, env, bus, clock, seed):
        buses.append(bus)
        real(self, env, bus, clock, seed)

    def broken(*args):
        raise RuntimeError("portal crashed")
        yield

    monkeypatch.setattr(ida.Relief, "__init__", spy)
    monkeypatch.setattr(ida, "citizen", broken)
    with pytest.raises(RuntimeError, match="portal crashed"):
        run("calm", seed=1, hours=0.5)
    from hms_bus import HmsBusError

    with pytest.raises(HmsBusError):
        buses[0].publish("too.late", {})


def test_an_alert_in_the_grace_after_an_incident_is_true_and_detects_it():
    """Scoring alone: an alert up to score.grace_s after the incident ends counts."""
    from simulations.scoring import score_incidents

    def span(rule, start_s):
        return {"rule": rule, "group": None, "start_s": start_s, "end_s": start_s + 60}

    outage = [Incident("outage", 1, 1.0, 0.5)]  # 3600 s to 5400 s
    found = [span("late", 5400 + 600), span("too_late", 5400 + 901), span("early", 3000)]
    scores = score_incidents(outage, found, grace_s=900)
    assert [s["true_alert"] for s in found] == [True, False, False]
    assert scores == [{
        "incident": "bank outage", "kind": "outage", "start_h": 1.0, "end_h": 1.5,
        "detected": True, "time_to_detect_s": 2400.0, "detected_by": "late", "alerts": 1,
    }]  # fmt: skip
    assert score_incidents(outage, [span("early", 3000)], 900)[0]["detected_by"] == "missed"
