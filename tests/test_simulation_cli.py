"""Scenarios, parameter checks, the sweep and the command line, with a golden output.

The golden file ``simulations/ida.out`` is what ``GOLDEN_ARGS`` prints, as
SimPy keeps ``carwash.out`` beside ``carwash.py``. When the model or the
monitor changes on purpose, regenerate it with ``make golden`` and review
the diff.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from sim_cli import fails, no_run  # noqa: F401 (a helper and a pytest fixture)

from simulations import PARAMS, Scenario, golden, run, scenarios, sweep
from simulations.__main__ import main
from simulations.runner import progress_bar
from simulations.sweep import parse_seeds, parse_setting

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = golden.PATH
GOLDEN_ARGS = golden.ARGS
SHORT = {"outage.start_h": 1, "outage.hours": 0.5}


# -- scenarios and parameters ------------------------------------------------------


def test_the_four_required_scenarios_are_stored_with_descriptions():
    found = scenarios()
    assert {"calm", "landfall_surge", "bank_slowdown", "bank_outage"} <= set(found)
    assert all(found.values())


def test_scenario_files_set_what_their_names_promise():
    assert Scenario.load("calm")["citizens.surge"] == 1
    assert Scenario.load("bank_outage")["outage.hours"] > 0
    assert Scenario.load("bank_slowdown")["slowdown.hours"] > 0
    assert Scenario.load("landfall_surge")["outage.hours"] == 0


def test_unknown_scenario_lists_the_valid_ones():
    with pytest.raises(ValueError, match=r"unknown scenario 'hurricane'.*bank_outage.*calm"):
        run("hurricane")


def test_unknown_parameter_lists_the_valid_names():
    with pytest.raises(
        ValueError, match=r"unknown parameter 'monitor.treshold'.*monitor\.threshold"
    ):
        run("calm", hours=1, **{"monitor.treshold": 3})


def test_out_of_range_value_names_parameter_value_and_range():
    with pytest.raises(
        ValueError, match=r"bank\.failure_rate=1\.5 is out of range; allowed: \[0, 1\]"
    ):
        run("calm", hours=1, **{"bank.failure_rate": 1.5})
    with pytest.raises(
        ValueError, match=r"hlt\.service_s=0 is out of range; allowed: \(0, 3600\] s"
    ):
        Scenario.load("calm").override({"hlt.service_s": 0})


def test_whole_number_parameters_refuse_fractions_and_text():
    with pytest.raises(ValueError, match=r"monitor\.threshold must be a whole number .*2\.5"):
        Scenario.load("calm").override({"monitor.threshold": 2.5})
    with pytest.raises(ValueError, match=r"monitor\.threshold='three' is not a number"):
        Scenario.load("calm").override({"monitor.threshold": "three"})
    with pytest.raises(ValueError, match=r"bank\.lines must be a number .* got True"):
        Scenario.load("calm").override({"bank.lines": True})


def test_text_values_are_read_as_the_parameters_type():
    sc = Scenario.load("calm").override({"monitor.threshold": "3", "outage.start_h": "2.5"})
    assert sc["monitor.threshold"] == 3 and isinstance(sc["monitor.threshold"], int)
    assert sc["outage.start_h"] == 2.5


def test_every_parameter_default_is_within_its_own_range():
    for name, spec in PARAMS.items():
        assert spec.check(name, spec.default) == spec.default


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"seed": -1}, r"seed must be a whole number of 0 or more.*-1"),
        ({"seed": "7"}, r"seed must be a whole number"),
        ({"hours": 0}, r"hours=0 is out of range; allowed: \(0, 720\] h"),
        ({"hours": 1000}, r"hours=1000 is out of range"),
    ],
)
def test_bad_seed_or_hours_is_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        run("calm", **kwargs)


# -- sweep ---------------------------------------------------------------------------


def test_sweep_runs_every_setting_with_every_seed():
    sw = sweep("bank_outage", {"monitor.threshold": [3, 8]}, seeds=[1, 2], hours=2, **SHORT)
    assert len(sw.runs) == 4
    assert list(sw.runs["monitor.threshold"]) == [3, 3, 8, 8]
    assert list(sw.table["monitor.threshold"]) == [3, 8]
    assert list(sw.table["runs"]) == [2, 2]
    one = run("bank_outage", seed=2, hours=2, **SHORT, **{"monitor.threshold": 8})
    row = sw.runs.iloc[3]
    assert row["time_to_detect_s"] == one.summary["time_to_detect_s"]
    assert row["false_alerts"] == one.summary["false_alerts"]
    assert "monitor.threshold" in sw.report()


def test_sweep_checks_the_grid_before_running():
    with pytest.raises(ValueError, match=r"monitor\.threshold=0 is out of range"):
        sweep("bank_outage", {"monitor.threshold": [3, 0]}, seeds=[1])
    with pytest.raises(ValueError, match=r"unknown parameter 'threshold'"):
        sweep("bank_outage", {"threshold": [3]}, seeds=[1])
    with pytest.raises(ValueError, match=r"non-empty list"):
        sweep("bank_outage", {"monitor.threshold": []}, seeds=[1])
    with pytest.raises(ValueError, match=r"seeds is empty"):
        sweep("bank_outage", {"monitor.threshold": [3]}, seeds=[])


def test_seed_and_setting_text_is_parsed_or_explained():
    assert parse_seeds("1-3,7") == [1, 2, 3, 7]
    assert parse_setting("monitor.threshold=3,5,8") == ("monitor.threshold", [3, 5, 8])
    with pytest.raises(ValueError, match=r"cannot read seeds '5-1'"):
        parse_seeds("5-1")
    with pytest.raises(ValueError, match=r"write NAME=VALUE"):
        parse_setting("monitor.threshold")


# -- command line ----------------------------------------------------------------


def test_golden_output_matches_ida_out():
    """Same seed, same day: the printed summary, alert timeline and first
    events match the stored file, in a fresh interpreter with its own hash seed."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONHASHSEED": "123"}
    out = subprocess.run(
        [sys.executable, "-m", "simulations", *GOLDEN_ARGS],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=120,
        check=True,
    )
    assert out.stdout == GOLDEN.read_text()


def test_run_prints_the_summary_and_says_where_the_report_is(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["run", "calm", "--hours", "1", "--no-progress"]) == 0
    out, err = capsys.readouterr()
    assert "payments_sent" in out and "dollars_disbursed" in out
    assert "Report written to out/ (events.csv, alerts.csv" in out
    assert (tmp_path / "out" / "rates.png").is_file()
    assert "events/s" in err


def test_run_with_no_arguments_runs_the_default_scenario(monkeypatch, capsys, tmp_path):
    import simulations.__main__ as cli

    monkeypatch.chdir(tmp_path)  # the default --out is ./out, which must not decide this test

    seen = {}

    def fake_run(scenario, **kw):
        seen.update(kw, scenario=scenario)
        raise ValueError("stop here")

    monkeypatch.setattr(cli, "run", fake_run)
    assert main(["run"]) == 2
    assert seen["scenario"].name == "bank_outage" and seen["seed"] == 7 and seen["hours"] == 24
    assert "error: stop here" in capsys.readouterr().err


def test_cli_errors_are_one_line_and_exit_2(capsys):
    assert main(["run", "nowhere", "--no-save"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: unknown scenario 'nowhere'; choose one of:")
    assert main(["run", "calm", "--set", "bank.failure_rate=2", "--no-save"]) == 2
    assert "bank.failure_rate=2.0 is out of range" in capsys.readouterr().err
    assert main(["run", "calm", "--set", "monitor.threshold=3,5"]) == 2
    assert "try 'sweep'" in capsys.readouterr().err


def test_cli_sweep_prints_the_table_and_writes_csv(tmp_path, capsys):
    argv = ["sweep", "bank_outage", "--set", "monitor.threshold=3,8", "--seeds", "1-2"]
    argv += ["--hours", "2", "--out", str(tmp_path), "--no-progress"]
    # The early outage comes from a second --set holding one value each.
    argv += ["--set", "outage.start_h=1", "--set", "outage.hours=0.5"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "detect_median_s" in out and "false_alerts_mean" in out
    assert (tmp_path / "sweep_table.csv").read_text().count("\n") == 3


def test_cli_lists_scenarios_and_parameters(capsys):
    assert main(["scenarios", "--params"]) == 0
    out = capsys.readouterr().out
    assert "bank_outage" in out and "(default)" in out
    assert "monitor.threshold" in out and "[1, 10000] errors" in out
    assert "Parameters (defaults):" in out and "(none; add one with" in out


def test_cli_shows_a_named_scenarios_own_values(capsys):
    assert main(["scenarios", "--params", "bad_day"]) == 0
    out = capsys.readouterr().out
    assert "Parameters of bad_day:" in out
    assert "outage.2.start_h" in out and "flood.per_hour" in out
    line = next(x for x in out.splitlines() if x.startswith("flood.per_hour"))
    assert "8000" in line


def test_progress_bar_is_off_when_stderr_is_not_a_terminal_or_when_asked():
    with progress_bar(10, None) as bar:
        assert bar.disable  # pytest captures stderr: not a terminal
    with progress_bar(10, False) as bar:
        assert bar.disable
    with progress_bar(10, True) as bar:
        assert not bar.disable


def test_the_progress_bar_counts_simulated_hours(monkeypatch):
    import io

    from tqdm import tqdm

    import simulations.runner as runner

    stream, bars = io.StringIO(), []

    def eager(total, enabled, **kw):
        bars.append(tqdm(total=total, file=stream, mininterval=0, **kw))
        return bars[-1]

    monkeypatch.setattr(runner, "progress_bar", eager)
    runner.run("calm", hours=1.5)
    assert bars[0].n == pytest.approx(1.5)
    assert "1.5/1.5 simulated h" in stream.getvalue()


# -- bad input: one line, exit code, no traceback, nothing half-written -------------


@pytest.mark.parametrize("command", ["run", "sweep"])
def test_out_that_is_a_file_is_refused_before_simulating(command, tmp_path, capsys, no_run):
    target = tmp_path / "report.txt"
    target.write_text("keep me")
    line = fails([command, "calm", "--hours", "1", "--out", str(target)], capsys)
    assert "is a file" in line
    assert target.read_text() == "keep me"


@pytest.mark.parametrize("command", ["run", "sweep"])
def test_out_that_cannot_be_made_is_refused_before_simulating(command, tmp_path, capsys, no_run):
    blocker = tmp_path / "file"
    blocker.write_text("")
    line = fails([command, "calm", "--hours", "1", "--out", str(blocker / "out")], capsys)
    assert "cannot make output folder" in line and "is a file" in line


def test_out_where_the_system_refuses_writes_is_refused(capsys, no_run):
    line = fails(["run", "calm", "--hours", "1", "--out", "/proc/hms-report"], capsys)
    assert line.startswith("error: cannot write to '/proc/hms-report'")


def test_a_folder_named_like_an_output_file_is_refused_and_nothing_written(
    tmp_path, capsys, no_run
):
    (tmp_path / "out" / "events.csv").mkdir(parents=True)
    line = fails(["run", "calm", "--hours", "1", "--out", str(tmp_path / "out")], capsys)
    assert "events.csv' is a folder" in line
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["events.csv"]


def test_a_write_that_fails_after_the_run_leaves_no_half_written_folder(
    tmp_path, capsys, monkeypatch
):
    """The report is printed, the error is one line (exit 1), and the folder the
    CLI was about to make does not exist: no temporary or partial files."""
    import simulations.results as results

    def broken(events, path):
        path.write_text("partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(results, "write_events_csv", broken)
    out = tmp_path / "new" / "out"
    line = fails(["run", "calm", "--hours", "0.5", "--out", str(out), "--no-progress"], capsys, 1)
    assert "No space left on device" in line
    assert not out.exists()


def test_an_existing_report_survives_a_failed_rewrite(tmp_path, capsys, monkeypatch):
    out = tmp_path / "out"
    assert main(["run", "calm", "--hours", "0.5", "--out", str(out), "--no-progress"]) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    capsys.readouterr()
    import simulations.results as results

    monkeypatch.setattr(results, "write_events_csv", lambda e, p: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        main(["run", "calm", "--hours", "0.7", "--out", str(out), "--no-progress"])
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


@pytest.fixture
def shelf(tmp_path, monkeypatch):
    """A scenarios folder with two good files and the broken ones given."""
    import simulations.scenario as scenario

    monkeypatch.setattr(scenario, "SCENARIO_DIR", tmp_path)
    (tmp_path / "calm.json").write_text('{"description": "calm", "citizens": {"surge": 1}}')
    (tmp_path / "quiet.json").write_text('{"description": "quiet"}')
    (tmp_path / "broken.json").write_text('{"description": "oops", ')
    (tmp_path / "listed.json").write_text('[{"kind": "outage"}]')
    return tmp_path


def test_a_broken_scenario_file_does_not_hide_the_others(shelf, capsys):
    assert main(["scenarios"]) == 0
    out, err = capsys.readouterr()
    assert "calm" in out and "quiet" in out and "broken" not in out
    warned = err.strip().splitlines()
    assert len(warned) == 2
    assert warned[0].startswith("warning: broken.json is skipped: scenario file broken.json")
    assert "is not valid JSON" in warned[0]
    assert "listed.json is skipped" in warned[1]


def test_an_unknown_scenario_is_named_even_beside_a_broken_file(shelf, capsys, no_run):
    line = fails(["run", "nosuch", "--no-save"], capsys)
    assert line.startswith("error: unknown scenario 'nosuch'; choose one of: calm, quiet")
    assert "unreadable: broken.json, listed.json" in line


def test_a_broken_scenario_file_is_reported_by_name(shelf, capsys, no_run):
    line = fails(["run", "broken", "--no-save"], capsys)
    assert "scenario file broken.json is not valid JSON" in line


def test_a_scenario_file_nested_a_thousand_deep_is_refused(tmp_path, capsys, no_run):
    deep = tmp_path / "deep.json"
    deep.write_text('{"a": ' * 5000 + "1" + "}" * 5000)
    assert "deep.json is nested too deeply" in fails(["run", str(deep), "--no-save"], capsys)
    deep.write_text('{"a": ' * 900 + "1" + "}" * 900)
    assert "unknown parameter 'a.a.a" in fails(["run", str(deep), "--no-save"], capsys)


def test_a_scenario_file_holding_a_list_is_refused(shelf, capsys, no_run):
    line = fails(["run", "listed", "--no-save"], capsys)
    assert "listed.json must hold a JSON object" in line and "not a list" in line


def test_negative_events_are_refused(capsys, no_run):
    assert "--events must be 0 or more, got -3" in fails(
        ["run", "calm", "--events", "-3", "--no-save"], capsys
    )


@pytest.mark.parametrize("command", ["run", "sweep"])
def test_a_parameter_set_twice_is_refused(command, capsys, no_run):
    line = fails(
        [command, "calm", "--set", "monitor.threshold=3", "--set", "monitor.threshold=8",
         "--no-save"], capsys,
    )  # fmt: skip
    assert "monitor.threshold is set twice (3, then 8); give it once" in line


def test_a_fraction_for_a_whole_number_says_whole_number(capsys, no_run):
    line = fails(["run", "calm", "--set", "monitor.threshold=3.5", "--no-save"], capsys)
    assert "monitor.threshold must be a whole number" in line and "3.5" in line
    assert "not a number" not in line


@pytest.mark.parametrize("command", ["run", "sweep"])
def test_an_incident_after_the_run_ends_is_refused(command, capsys, tmp_path, no_run):
    out = tmp_path / "out"
    line = fails([command, "bank_outage", "--set", "outage.start_h=30", "--out", str(out)], capsys)
    assert "bank outage 30h-31.5h starts after the 24 h run ends" in line
    assert not out.exists()


def test_a_misspelt_parameter_gets_a_suggestion(capsys, no_run):
    line = fails(["run", "calm", "--set", "monitor.treshold=3", "--no-save"], capsys)
    assert "unknown parameter 'monitor.treshold'; did you mean 'monitor.threshold'" in line


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["run", "calm", "--seed", "abc"], "invalid int value: 'abc'"),
        (["run", "calm", "--hours", "nan", "--no-save"], "hours=nan is out of range"),
        (["run", "calm", "--set", "monitor.threshold", "--no-save"], "write NAME=VALUE"),
        (["run", "calm", "--set", "bank.failure_rate=inf", "--no-save"], "out of range"),
        (["sweep", "calm", "--seeds", "5-1", "--no-save"], "cannot read seeds '5-1'"),
        (["sweep", "calm", "--workers", "0", "--no-save"], "workers must be"),
        (["sweep", "calm", "--set", "monitor.threshold=3,3", "--no-save"], "lists 3 twice"),
        (["backtest", "nowhere/"], "no summary.json in 'nowhere'"),
        (["nosuchcommand"], "invalid choice: 'nosuchcommand'"),
    ],
)
def test_other_bad_input_is_one_line(argv, words, capsys, monkeypatch):
    import simulations.__main__ as cli

    monkeypatch.setattr(cli, "run", lambda *a, **k: pytest.fail("simulated"))
    assert words in fails(argv, capsys)


def test_run_takes_a_scenario_file_by_path(tmp_path, capsys):
    path = tmp_path / "my_day.json"
    path.write_text(
        '{"description": "mine", "citizens": {"surge": 1},'
        ' "incidents": [{"kind": "link_drop", "start_h": 0.25, "hours": 0.25}]}'
    )
    assert main(["run", str(path), "--hours", "0.75", "--no-save", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "Hurricane Ida relief day: my_day (seed 7, 0.75 h)" in out
    assert "partner link drop      0.25h-0.5h    detected after" in out


def test_subprocess_errors_print_no_traceback(tmp_path):
    """The real entry point, as an instructor types it."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    bad = tmp_path / "day.json"
    bad.write_text("[1, 2]")
    for argv in (["run", str(bad)], ["run", "calm", "--events", "-3"]):
        done = subprocess.run(
            [sys.executable, "-m", "simulations", *argv], capture_output=True, text=True,
            env=env, cwd=tmp_path, timeout=120,
        )  # fmt: skip
        assert done.returncode == 2
        assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
        assert not (tmp_path / "out").exists()


def test_cli_backtest_replays_a_recorded_day_with_changed_rules(tmp_path, capsys):
    out = tmp_path / "out"
    base = ["--hours", "2", "--set", "outage.start_h=1", "--set", "outage.hours=0.5"]
    assert main(["run", "bank_outage", *base, "--out", str(out), "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["backtest", str(out), "--set", "monitor.threshold=3"]) == 0
    replayed = capsys.readouterr().out
    assert main(["run", "bank_outage", *base, "--set", "monitor.threshold=3", "--no-save",
                 "--no-progress"]) == 0  # fmt: skip
    fresh = capsys.readouterr().out
    assert replayed.startswith("Backtest on recorded events: Hurricane Ida relief day: bank_outage")
    # From the "changed:" line to the end of the alert timeline: as a fresh run.
    head = fresh.split("\n", 1)[1].split("\nReport")[0]
    assert replayed.split("\n", 1)[1].rstrip("\n") == head.rstrip("\n")
    line = fails(["backtest", str(out), "--set", "bank.lines=3"], capsys)
    assert "bank.lines changes the simulated events" in line
