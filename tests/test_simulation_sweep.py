"""Sweeps (backtested rule variants, process pools, executors, several scenarios)
and backtests of recorded days.

Runs are two simulated hours with the bank's outage moved to 01:00.
"""

from __future__ import annotations

import sys
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

import pandas as pd
import pytest

import simulations
from hms_bus.monitor import backtest as monitor_backtest
from simulations import Sweep, backtest, load_events, run, sweep
from simulations.scoring import INSTANT
from simulations.sweep import RUN_COLUMNS
from simulations.watchers import monitor_rules

SHORT = {"outage.start_h": 1, "outage.hours": 0.5}
sweep_module = sys.modules["simulations.sweep"]


@pytest.fixture(scope="module")
def grid() -> Sweep:
    return sweep(
        "bank_outage", {"monitor.threshold": [3, 8], "ach.retries": [0, 2]},
        seeds=[1, 2], hours=2, workers=1, **SHORT,
    )  # fmt: skip


def test_a_sweep_gives_the_same_table_as_one_run_per_cell(grid):
    """Backtested rule variants score exactly as a live monitor in run() does."""
    rows = []
    for row in grid.runs.itertuples(index=False):
        setting = {"monitor.threshold": row[1], "ach.retries": row[2]}
        s = run("bank_outage", seed=row.seed, hours=2, **SHORT, **setting).summary
        rows.append({"scenario": s["scenario"], **setting, **{k: s[k] for k in RUN_COLUMNS}})
    pd.testing.assert_frame_equal(grid.runs, pd.DataFrame(rows, columns=grid.runs.columns))
    assert len(grid.runs) == 8 and grid.runs["time_to_detect_s"].notna().all()


def test_a_monitor_only_sweep_simulates_each_seed_once(monkeypatch):
    calls = []
    real = sweep_module.day_task

    def counting(scenario, seed, hours, variants):
        calls.append((seed, len(variants)))
        return real(scenario, seed, hours, variants)

    monkeypatch.setattr(sweep_module, "day_task", counting)
    sw = sweep("bank_outage", {"monitor.threshold": [3, 5, 8], "monitor.window": [30, 60]},
               seeds=[1, 2], hours=2, workers=1, **SHORT)  # fmt: skip
    assert sorted(calls) == [(1, 6), (2, 6)]
    assert len(sw.runs) == 12


def test_the_table_shows_what_a_non_monitor_parameter_changes(grid):
    t = grid.table.set_index(["monitor.threshold", "ach.retries"])
    assert {"payments_sent_mean", "payments_failed_mean", "dollars_mean"} <= set(t.columns)
    # Without retries, a call refused during the outage fails the payment at once.
    assert t.loc[(3, 0), "payments_failed_mean"] != t.loc[(3, 2), "payments_failed_mean"]
    assert t.loc[(3, 0), "dollars_mean"] == 1000 * t.loc[(3, 0), "payments_sent_mean"]
    assert (t["runs"] == 2).all() and (t["incidents"] == 2).all()


@pytest.mark.parametrize(
    "make",
    [lambda: ThreadPoolExecutor(2), lambda: ProcessPoolExecutor(2)],
    ids=["thread", "process"],
)
def test_any_executor_gives_the_same_runs(grid, make):
    with make() as pool:
        sw = sweep("bank_outage", {"monitor.threshold": [3, 8], "ach.retries": [0, 2]},
                   seeds=[1, 2], hours=2, executor=pool, **SHORT)  # fmt: skip
        assert pool.submit(int, "7").result() == 7  # the sweep left it open
    pd.testing.assert_frame_equal(sw.runs, grid.runs)


def test_the_default_process_pool_gives_the_same_runs(grid):
    sw = sweep("bank_outage", {"monitor.threshold": [3, 8], "ach.retries": [0, 2]},
               seeds=[1, 2], hours=2, workers=2, **SHORT)  # fmt: skip
    pd.testing.assert_frame_equal(sw.runs, grid.runs)


def test_several_scenarios_in_one_sweep_with_a_calm_baseline():
    sw = sweep(["bank_outage", "bank_slowdown"], {"monitor.threshold": [3, 8]}, seeds=[1],
               hours=2, baseline="calm", workers=1, **{**SHORT, "slowdown.start_h": 1})  # fmt: skip
    t = sw.table
    assert list(t["scenario"]) == ["bank_outage"] * 2 + ["bank_slowdown"] * 2 + ["calm"] * 2
    calm = t[t.scenario == "calm"].set_index("monitor.threshold")["false_alerts_mean"]
    for row in t.itertuples():
        assert row.baseline_false_alerts_mean == calm[row[2]]
    assert "false alerts on calm" in sw.report()


def test_sweep_plot_and_files(grid, tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = grid.plot()
    left = fig.axes[0]
    assert left.get_xlabel().startswith("false alerts per run")
    assert "time to detect" in left.get_ylabel()
    texts = [t.get_text() for t in left.texts]
    assert any("threshold=3, retries=0" in t for t in texts)
    plt.close(fig)
    paths = grid.save(tmp_path / "sw")
    assert sorted(p.name for p in (tmp_path / "sw").iterdir()) == sorted(
        [
            "sweep_runs.csv",
            "sweep_incidents.csv",
            "sweep_table.csv",
            "sweep.png",
            ".simulations-report.json",
        ]
    )
    assert paths["sweep"].read_bytes()[:4] == b"\x89PNG"


def test_sweep_checks_everything_before_running(monkeypatch):
    monkeypatch.setattr(sweep_module, "_execute", lambda *a: pytest.fail("it ran"))
    with pytest.raises(ValueError, match=r"monitor\.threshold=0 is out of range"):
        sweep("bank_outage", {"monitor.threshold": [3, 0]}, seeds=[1])
    with pytest.raises(ValueError, match=r"unknown parameter 'threshold'; did you mean"):
        sweep("bank_outage", {"threshold": [3]}, seeds=[1])
    with pytest.raises(ValueError, match=r"non-empty list"):
        sweep("bank_outage", {"monitor.threshold": []}, seeds=[1])
    with pytest.raises(ValueError, match=r"seeds is empty"):
        sweep("bank_outage", {"monitor.threshold": [3]}, seeds=[])
    with pytest.raises(ValueError, match=r"unknown scenario 'nope'"):
        sweep(["bank_outage", "nope"], {"monitor.threshold": [3]}, seeds=[1])


def test_workers_must_be_a_positive_whole_number():
    with pytest.raises(ValueError, match=r"workers must be a whole number of 1 or more, got 0"):
        sweep("calm", {"monitor.threshold": [3]}, seeds=[1], hours=0.1, workers=0)


# -- backtests of recorded days --------------------------------------------------------


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    result = run("bank_outage", seed=7, hours=2, **SHORT)
    out = tmp_path_factory.mktemp("rec") / "out"
    result.save(out)
    return result, out


def test_monitor_backtest_accepts_what_run_wrote(recorded):
    """hms_bus.monitor.backtest() on events.csv as load_events reads it gives
    the recorded alerts, to the instant."""
    result, out = recorded
    events = load_events(out)
    assert isinstance(events["data"].iloc[1], dict)
    own = events[~events["topic"].str.startswith(("alerts.", "pager."))]
    until = result.start + 2 * 3600
    timeline = monitor_backtest(monitor_rules(result.scenario), own, start=result.start,
                                until=until)  # fmt: skip
    replayed = timeline[[INSTANT, "rule", "state", "value"]].rename(columns={INSTANT: "at"})
    live = result.alerts[["at", "rule", "state", "value"]]
    assert len(live) > 0
    pd.testing.assert_frame_equal(replayed, live)


def test_a_recorded_day_replayed_with_a_changed_threshold_matches_a_fresh_run(recorded):
    _, out = recorded
    replay = backtest(out, {"monitor.threshold": 3})
    fresh = run("bank_outage", seed=7, hours=2, **SHORT, **{"monitor.threshold": 3})
    assert replay.summary == fresh.summary
    pd.testing.assert_frame_equal(replay.incidents, fresh.incidents)
    same = backtest(fresh, monitor__threshold=3)
    assert same.summary == fresh.summary


def test_backtest_refuses_parameters_that_change_the_events(recorded):
    _, out = recorded
    with pytest.raises(ValueError, match=r"bank\.lines changes the simulated events"):
        backtest(out, {"bank.lines": 3})


def test_load_events_says_what_is_wrong(tmp_path):
    with pytest.raises(ValueError, match=r"no events file"):
        load_events(tmp_path)
    (tmp_path / "events.csv").write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match=r"lacks the column\(s\) ts, time"):
        load_events(tmp_path)


def test_the_public_api_lists_what_it_exports():
    for name in simulations.__all__:
        assert hasattr(simulations, name), name
