"""Nasty legal input for the workbench: scenario files with the wrong JSON types or
duplicate keys, incidents that do not happen, incidents that overlap, repeated
seeds and scenarios, report folders holding someone else's files, alerts.csv.

Every refusal is one line naming the file or the value and what to write
instead, given before any simulation starts.
"""

from __future__ import annotations

import json
import sys

import pandas as pd
import pytest
from sim_cli import fails, no_run  # noqa: F401 (a helper and a pytest fixture)

from hms_bus.event import format_ts
from simulations import IncidentWarning, Scenario, run, sweep
from simulations.__main__ import main
from simulations.incidents import Incident
from simulations.scoring import score_incidents
from simulations.sweep import parse_seeds

# -- F9: wrong JSON types anywhere in a scenario file ----------------------------------

WRONG = {"list": ["outage"], "object": {"a": 1}, "null": None, "number": 3, "bool": True,
         "text": "soon"}  # fmt: skip
GOOD = {
    "description": "a day",
    "monitor": {"threshold": 4},
    "incidents": [{"kind": "flood", "start_h": 1, "hours": 1, "per_hour": 100}],
}


def _places():
    """(label, field named in the error, a function putting a value there)."""

    def at(*path):
        def put(doc, value):
            node = doc
            for key in path[:-1]:
                node = node[key]
            node[path[-1]] = value

        return put

    return [
        ("description", "description", at("description")),
        ("monitor", "monitor", at("monitor")),
        ("monitor.threshold", "monitor.threshold", at("monitor", "threshold")),
        ("incidents", "incident", at("incidents")),
        ("incident", "incident 1", at("incidents", 0)),
        ("kind", "kind", at("incidents", 0, "kind")),
        ("start_h", "flood.start_h", at("incidents", 0, "start_h")),
        ("hours", "flood.hours", at("incidents", 0, "hours")),
        ("per_hour", "flood.per_hour", at("incidents", 0, "per_hour")),
    ]


NUMERIC = ("monitor.threshold", "start_h", "hours", "per_hour")
CASES = [
    (label, named, put, kind, value)
    for label, named, put in _places()
    for kind, value in WRONG.items()
    # What is right at that place is not a wrong type.
    if not (label == "description" and kind == "text")
    and not (label == "monitor" and kind == "object")
    and not (label == "kind" and kind == "text" and value in ("outage",))
    and not (label == "incident" and kind == "object")
    and not (label in NUMERIC and kind == "number")
]


@pytest.mark.parametrize(("label", "named", "put", "kind", "value"), CASES,
                         ids=[f"{c[0]}={c[3]}" for c in CASES])  # fmt: skip
def test_a_wrong_json_type_anywhere_is_one_line_naming_file_and_field(
    tmp_path, label, named, put, kind, value
):
    doc = json.loads(json.dumps(GOOD))
    put(doc, value)
    path = tmp_path / "mine.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(ValueError) as caught:
        Scenario.load(str(path))
    text = str(caught.value)
    assert "\n" not in text
    assert text.startswith("scenario file mine.json"), text
    assert named in text, text
    assert "unhashable" not in text and "object has no attribute" not in text


@pytest.mark.parametrize("value", [["outage"], {"name": "outage"}, None, 3])
def test_an_incident_kind_that_is_not_text_says_to_write_text(tmp_path, value):
    path = tmp_path / "kind.json"
    path.write_text(json.dumps({"incidents": [{"kind": value, "start_h": 1, "hours": 1}]}))
    with pytest.raises(ValueError, match=r"kind\.json: incident 1 has kind .* write it as text"):
        Scenario.load(path)


def test_incidents_null_is_refused_not_read_as_none(tmp_path):
    path = tmp_path / "nul.json"
    path.write_text('{"incidents": null}')
    with pytest.raises(ValueError, match=r"nul\.json: 'incidents' must be a list"):
        Scenario.load(path)


@pytest.fixture
def shelf(tmp_path, monkeypatch):
    """A scenarios folder with two good files and one whose incident kind is a list."""
    import simulations.scenario as scenario

    monkeypatch.setattr(scenario, "SCENARIO_DIR", tmp_path)
    (tmp_path / "calm.json").write_text('{"description": "calm", "citizens": {"surge": 1}}')
    (tmp_path / "quiet.json").write_text('{"description": "quiet"}')
    (tmp_path / "zz_kindlist.json").write_text(
        '{"description": "kind is a list",'
        ' "incidents": [{"kind": ["outage"], "start_h": 3, "hours": 1}]}'
    )
    return tmp_path


def test_a_file_with_a_list_kind_does_not_hide_the_other_scenarios(shelf, capsys):
    assert main(["scenarios"]) == 0
    out, err = capsys.readouterr()
    assert "calm" in out and "quiet" in out and "zz_kindlist" not in out
    (line,) = err.strip().splitlines()
    assert line.startswith("warning: zz_kindlist.json is skipped: scenario file zz_kindlist.json")
    assert "incident 1 has kind ['outage']" in line and "unhashable" not in line


def test_a_file_with_a_list_kind_does_not_hide_an_unknown_scenario(shelf, capsys, no_run):
    line = fails(["run", "nosuch", "--no-save"], capsys)
    assert line.startswith("error: unknown scenario 'nosuch'; choose one of: calm, quiet")
    assert "unreadable: zz_kindlist.json" in line


def test_a_file_with_a_list_kind_run_by_path_names_the_file(shelf, capsys, no_run):
    line = fails(["run", str(shelf / "zz_kindlist.json"), "--no-save"], capsys)
    assert "scenario file zz_kindlist.json: incident 1 has kind ['outage']" in line
    assert main(["scenarios", "--params", str(shelf / "zz_kindlist.json")]) == 2
    out, err = capsys.readouterr()
    assert "calm" in out and "Traceback" not in err and "unhashable" not in err
    assert err.splitlines()[-1].startswith("error: scenario file zz_kindlist.json: incident 1")


# -- F10: duplicate keys ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ('{"monitor": {"threshold": 3, "threshold": 8}}', "threshold"),
        ('{"incidents": [{"kind": "outage", "start_h": 1, "start_h": 2, "hours": 1}]}',
         "start_h"),
        ('{"description": "a", "description": "b"}', "description"),
    ],
)  # fmt: skip
def test_a_key_given_twice_in_a_scenario_file_is_refused_by_name(tmp_path, text, key):
    path = tmp_path / "dup.json"
    path.write_text(text)
    with pytest.raises(ValueError, match=rf"scenario file dup\.json .*'{key}' twice") as caught:
        Scenario.load(path)
    assert "\n" not in str(caught.value)


# -- F2: incidents that would not happen --------------------------------------------------


def test_setting_only_an_incidents_start_warns_from_python_with_the_fix():
    with pytest.warns(
        IncidentWarning,
        match=r"flood\.start_h=9 is set but flood\.hours is 0: the request flood would not "
        r"happen; also set flood\.hours, e.g\. flood\.hours=1",
    ):
        r = run("calm", hours=0.05, progress=False, **{"flood.start_h": 9})
    assert r.summary["incidents"] == 0
    with pytest.warns(IncidentWarning, match=r"flood\.per_hour=100 is set but flood\.hours"):
        run("calm", hours=0.05, progress=False, **{"flood.per_hour": 100})


def test_one_set_of_overrides_may_move_incidents_some_scenarios_lack():
    """As notebook 12 moves every incident kind early for several scenarios at once."""
    short = {"outage.start_h": 0.01, "slowdown.start_h": 0.01}
    assert Scenario.load("bank_outage").override(short)["slowdown.hours"] == 0
    sw = sweep("bank_outage", {"monitor.threshold": [3]}, seeds=[1], hours=0.05, workers=1,
               **short)  # fmt: skip
    assert len(sw.runs) == 1


def test_a_sweep_over_an_incident_that_never_happens_is_refused(monkeypatch):
    sweep_module = sys.modules["simulations.sweep"]

    monkeypatch.setattr(sweep_module, "_execute", lambda *a: pytest.fail("it ran"))
    with pytest.raises(ValueError, match=r"flood\.start_h=1 is set but flood\.hours is 0.*"
                                         r"in every scenario of the sweep"):  # fmt: skip
        sweep(["calm", "bank_outage"], {"flood.start_h": [1, 2]}, seeds=[1], hours=3)


def test_setting_an_incidents_start_after_the_day_with_no_hours_is_refused(capsys, no_run):
    line = fails(["run", "calm", "--set", "flood.start_h=30", "--no-save"], capsys)
    assert "flood.start_h=30 is set but flood.hours is 0" in line


def test_an_incident_can_still_be_removed_by_setting_its_hours_to_0():
    sc = Scenario.load("bank_outage").override({"outage.hours": 0})
    assert sc.incidents == []
    both = Scenario.load("calm").override({"flood.hours": 0, "flood.start_h": 3})
    assert both.incidents == []


def test_the_cli_refuses_an_incident_start_without_hours_before_simulating(capsys, no_run):
    line = fails(["run", "calm", "--set", "flood.start_h=9", "--hours", "10", "--no-save"], capsys)
    assert "flood.start_h=9 is set but flood.hours is 0" in line and "flood.hours=1" in line
    line = fails(["sweep", "calm", "--set", "flood.start_h=9", "--no-save"], capsys)
    assert "flood.start_h=9 is set but flood.hours is 0" in line
    line = fails(["sweep", "calm", "bank_outage", "--set", "slowdown.factor=5",
                  "--set", "monitor.threshold=3,5", "--no-save"], capsys)  # fmt: skip
    assert "slowdown.factor=5 is set but slowdown.hours is 0" in line


def test_the_cli_accepts_an_incident_field_swept_with_its_hours(capsys):
    argv = [
        "sweep",
        "calm",
        "--set",
        "flood.start_h=0.01",
        "--set",
        "flood.hours=0,0.01",
        "--seeds",
        "1",
        "--hours",
        "0.02",
        "--no-save",
        "--workers",
        "1",
        "--no-progress",
    ]
    assert main(argv) == 0
    assert "flood.hours" in capsys.readouterr().out


def test_a_file_setting_an_incident_field_without_hours_is_refused(tmp_path):
    path = tmp_path / "half.json"
    path.write_text('{"flood": {"start_h": 9}}')
    with pytest.raises(ValueError, match=r"half\.json: flood\.start_h=9 is set but flood\.hours"):
        Scenario.load(path)


def test_a_listed_incident_lasting_0_hours_is_refused(tmp_path):
    path = tmp_path / "zero.json"
    path.write_text(json.dumps({"incidents": [
        {"kind": "outage", "start_h": 1, "hours": 0},
        {"kind": "outage", "start_h": 3, "hours": 1},
    ]}))  # fmt: skip
    with pytest.raises(
        ValueError, match=r"zero\.json: incident 1 \(outage\) lasts 0 h, so it would not happen"
    ):
        Scenario.load(path)


def test_no_incident_is_titled_2_when_there_is_no_first_of_its_kind():
    alone = Scenario.load("calm").override({"outage.2.start_h": 1, "outage.2.hours": 1})
    assert [i.text() for i in alone.incidents] == ["bank outage 1h-2h"]
    assert alone.incidents[0].name == "outage.2"  # still set by its own parameters
    second = Scenario.load("bad_day").override({"outage.hours": 0})
    assert [i.title for i in second.incidents] == ["request flood", "bank outage"]
    both = Scenario.load("bad_day")
    assert [i.title for i in both.incidents] == ["bank outage", "request flood", "bank outage #2"]


# -- F1: an alert already firing when an incident starts ----------------------------------


def _span(rule, start_s, end_s):
    return {"rule": rule, "group": None, "start_s": start_s, "end_s": end_s}


def test_an_alert_still_firing_when_an_overlapping_incident_starts_detects_it_at_once():
    outage = Incident("outage", 1, 1.0, 1.0)  # 3600-7200 s
    link = Incident("link_drop", 1, 1.5, 1.0)  # 5400-9000 s
    found = [_span("error_storm", 3700, 9500)]
    scores = score_incidents([outage, link], found, grace_s=900)
    assert [s["detected"] for s in scores] == [True, True]
    assert [s["detected_by"] for s in scores] == ["error_storm", "error_storm"]
    assert [s["time_to_detect_s"] for s in scores] == [100.0, 0.0]
    assert found[0]["true_alert"]


def test_back_to_back_incidents_share_an_unbroken_alert():
    first = Incident("outage", 1, 1.0, 1.0)  # 3600-7200 s
    second = Incident("outage", 2, 2.02, 0.5)  # 7272-9072 s
    found = [_span("error_storm", 3610, 9600), _span("payments_stalled", 7900, 9000)]
    scores = score_incidents([first, second], found, grace_s=900)
    assert scores[1]["time_to_detect_s"] == 0.0 and scores[1]["detected_by"] == "error_storm"
    assert scores[1]["alerts"] == 2


def test_an_alert_that_resolved_as_the_incident_started_does_not_detect_it():
    inc = Incident("outage", 1, 1.0, 0.5)  # 3600-5400 s
    found = [_span("early", 3000, 3600)]
    assert score_incidents([inc], found, grace_s=900)[0]["detected_by"] == "missed"
    assert not found[0]["true_alert"]


def test_overlapping_incidents_in_a_real_day_are_all_detected():
    """The reviewer's overlap case, moved early: the link drops while the bank is out."""
    r = run("calm", seed=7, hours=3, progress=False, **{
        "outage.start_h": 1, "outage.hours": 1, "link_drop.start_h": 1.5, "link_drop.hours": 1,
    })  # fmt: skip
    inc = r.incidents.set_index("kind")
    assert bool(inc.loc["link_drop", "detected"]), r.incidents
    assert r.summary["detected"] == 2 and r.summary["false_alerts"] == 0


def test_back_to_back_incidents_in_a_real_day_detect_the_second_at_once():
    r = run("calm", seed=7, hours=3, progress=False, **{
        "outage.start_h": 1, "outage.hours": 1, "outage.2.start_h": 2.02, "outage.2.hours": 0.5,
    })  # fmt: skip
    second = r.incidents.iloc[1]
    assert second["incident"] == "bank outage #2"
    assert second["detected"] and second["time_to_detect_s"] == 0.0, r.incidents


# -- F3, F12: repeated seeds and scenarios in a sweep --------------------------------------


def test_a_seed_given_twice_is_refused():
    with pytest.raises(ValueError, match=r"seed 1 is given twice in '1,1'; give each seed once"):
        parse_seeds("1,1")
    with pytest.raises(ValueError, match=r"seed 3 is given twice in '1-5,3'"):
        parse_seeds("1-5,3")
    with pytest.raises(ValueError, match=r"seeds lists 1 twice; give each seed once"):
        sweep("calm", {"monitor.threshold": [3]}, seeds=[1, 1], hours=0.01, workers=1)


def test_the_cli_refuses_a_seed_given_twice_before_simulating(capsys, no_run):
    line = fails(["sweep", "calm", "--seeds", "1,1", "--no-save"], capsys)
    assert "seed 1 is given twice in '1,1'" in line


def test_a_baseline_also_swept_is_simulated_once(monkeypatch):
    sweep_module = sys.modules["simulations.sweep"]

    calls = []
    real = sweep_module.day_task

    def counting(sc, seed, hours, variants):
        calls.append((sc.name, seed))
        return real(sc, seed, hours, variants)

    monkeypatch.setattr(sweep_module, "day_task", counting)
    sw = sweep(["calm", "bank_outage"], {"monitor.threshold": [3, 5]}, seeds=[1, 2], hours=0.05,
               baseline="calm", workers=1, **{"outage.start_h": 0.01})  # fmt: skip
    assert sorted(calls) == sorted([(n, s) for n in ("calm", "bank_outage") for s in (1, 2)])
    assert list(sw.table["runs"]) == [2, 2, 2, 2]
    assert len(sw.runs) == 8
    assert "baseline_false_alerts_mean" in sw.table


def test_a_scenario_swept_twice_is_refused():
    with pytest.raises(ValueError, match=r"scenario 'calm' is given twice"):
        sweep(["calm", "calm"], {"monitor.threshold": [3]}, seeds=[1], hours=0.01, workers=1)


# -- F11: --out never replaces a file the kit did not write --------------------------------


def test_out_holding_a_users_file_is_refused_before_simulating(tmp_path, capsys, no_run):
    mine = tmp_path / "userdir"
    mine.mkdir()
    (mine / "summary.json").write_text("my precious notes")
    line = fails(["run", "calm", "--hours", "0.05", "--out", str(mine)], capsys)
    assert "summary.json" in line and "not written by" in line and "--force" in line
    assert (mine / "summary.json").read_text() == "my precious notes"
    assert [p.name for p in mine.iterdir()] == ["summary.json"]


def test_a_sweep_refuses_to_replace_a_users_file(tmp_path, capsys, no_run):
    (tmp_path / "sweep.png").write_text("my picture")
    line = fails(["sweep", "calm", "--out", str(tmp_path)], capsys)
    assert "sweep.png" in line and "--force" in line
    assert (tmp_path / "sweep.png").read_text() == "my picture"


def test_a_folder_the_kit_wrote_can_be_written_again(tmp_path, capsys):
    out = tmp_path / "out"
    args = ["run", "calm", "--hours", "0.05", "--no-progress", "--out", str(out)]
    assert main(args) == 0
    assert main(["run", "calm", "--hours", "0.1", "--no-progress", "--out", str(out)]) == 0
    assert json.loads((out / "summary.json").read_text())["hours"] == 0.1
    capsys.readouterr()


def test_a_report_file_edited_by_hand_is_not_replaced(tmp_path, capsys, no_run):
    from simulations.output import MARKER, check_out
    from simulations.results import OUTPUT_FILES

    out = tmp_path / "out"
    run("calm", hours=0.05, progress=False).save(out)
    assert (out / MARKER).is_file()
    check_out(out, OUTPUT_FILES)  # untouched: fine
    (out / "summary.json").write_text("my notes on top of the report")
    line = fails(["run", "calm", "--hours", "0.05", "--out", str(out)], capsys)
    assert "summary.json" in line and "--force" in line
    assert (out / "summary.json").read_text() == "my notes on top of the report"


def test_force_replaces_a_users_files(tmp_path, capsys):
    (tmp_path / "summary.json").write_text("old")
    argv = ["run", "calm", "--hours", "0.05", "--no-progress", "--out", str(tmp_path), "--force"]
    assert main(argv) == 0
    assert json.loads((tmp_path / "summary.json").read_text())["scenario"] == "calm"
    capsys.readouterr()


def test_other_files_in_the_folder_are_left_alone(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("mine")
    argv = ["run", "calm", "--hours", "0.05", "--no-progress", "--out", str(tmp_path)]
    assert main(argv) == 0
    assert (tmp_path / "notes.txt").read_text() == "mine"
    capsys.readouterr()


def test_save_from_python_refuses_a_users_file_too(tmp_path):
    (tmp_path / "events.csv").write_text("my data")
    r = run("calm", hours=0.05, progress=False)
    with pytest.raises(ValueError, match=r"events\.csv.*force=True"):
        r.save(tmp_path)
    assert (tmp_path / "events.csv").read_text() == "my data"
    r.save(tmp_path, force=True)
    assert (tmp_path / "events.csv").read_text() != "my data"


def test_a_foreign_marker_file_is_not_trusted(tmp_path):
    from simulations.output import MARKER, check_out

    (tmp_path / MARKER).write_text("not the kit's")
    (tmp_path / "events.csv").write_text("my data")
    with pytest.raises(ValueError, match=r"events\.csv"):
        check_out(tmp_path, ["events.csv"])


# -- F13: alerts.csv number and time formats ---------------------------------------------


def test_alerts_csv_has_short_numbers_and_one_timestamp_format(tmp_path):
    r = run("bank_outage", seed=7, hours=2, progress=False,
            **{"outage.start_h": 1, "outage.hours": 0.5})  # fmt: skip
    r.save(tmp_path)
    text = (tmp_path / "alerts.csv").read_text()
    back = pd.read_csv(tmp_path / "alerts.csv", dtype=str, keep_default_na=False)
    assert len(back) == len(r.alerts) > 0
    iso = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$"
    for col in ("ts", "at", "since"):
        assert back[col].str.match(iso).all(), back[col]
    assert "+00:00" not in text
    for col in ("hour", "value", "bound", "window", "duration"):
        digits = back[col].str.partition(".")[2].str.len()
        assert (digits <= 7).all(), back[col]
    events = pd.read_csv(tmp_path / "events.csv", nrows=3)
    assert events["ts"].str.match(iso).all()
    # The first firing's instant reads back as the report prints it.
    at = r.alerts["at"][0]
    assert f"{back['at'][0]}  firing" in r.report()
    assert back["at"][0] == format_ts((at - pd.Timestamp(0, tz="UTC")).total_seconds())
