"""Scenarios, parameter checks, the sweep and the command line, with a golden output.

The golden file ``simulations/ida.out`` is what ``GOLDEN_ARGS`` prints, as
SimPy keeps ``carwash.out`` beside ``carwash.py``. When the model changes on
purpose, regenerate it and review the diff::

    python -m simulations run bank_outage --seed 7 --hours 2 \\
        --set outage.start_h=1 --set outage.hours=0.5 --events 12 --no-save \\
        > simulations/ida.out
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from simulations import PARAMS, Scenario, run, scenarios, sweep
from simulations.__main__ import main
from simulations.runner import progress_bar
from simulations.sweep import parse_seeds, parse_setting

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "simulations" / "ida.out"
GOLDEN_ARGS = [
    "run", "bank_outage", "--seed", "7", "--hours", "2",
    "--set", "outage.start_h=1", "--set", "outage.hours=0.5", "--events", "12", "--no-save",
]  # fmt: skip
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


def test_run_with_no_arguments_runs_the_default_scenario(monkeypatch, capsys):
    import simulations.__main__ as cli

    seen = {}

    def fake_run(scenario, **kw):
        seen.update(kw, scenario=scenario)
        raise ValueError("stop here")

    monkeypatch.setattr(cli, "run", fake_run)
    assert main(["run"]) == 2
    assert seen["scenario"] == "bank_outage" and seen["seed"] == 7 and seen["hours"] == 24
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
