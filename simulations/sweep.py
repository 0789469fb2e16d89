"""``sweep()``: run a grid of parameter settings over many seeds, in parallel, and compare.

The instructors' question is "which error-storm threshold should we use?":
a low threshold hears the bank failing sooner but also cries wolf more.
``sweep("bank_outage", {"monitor.threshold": [3, 5, 8]}, seeds=range(1, 11))``
runs every setting with every seed (the same seeds for every setting, so the
settings face the same days) and tabulates time to detect against false
alerts, payments and dollars.

Monitor and scoring parameters (``monitor.*``, ``score.*``) do not change the
simulated events: every actor draws from its own random stream and the
monitor only listens. So each (scenario, other settings, seed) is simulated
once, without a monitor, and every rule variant is backtested on the
recorded events (:func:`hms_bus.monitor.backtest`), which gives the same
alerts as a live monitor. Days run in a process pool (``workers``, by
default one per core) or on any :class:`concurrent.futures.Executor` you
pass, e.g. a Dask cluster's ``client.get_executor()``.
"""

from __future__ import annotations

import gc
import itertools
import multiprocessing
import os
import sys
import threading
import warnings
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor
from functools import cached_property
from pathlib import Path
from typing import Any

import pandas as pd

from hms_bus.topics import matches

from . import ida
from .output import check_out, write_all
from .params import lookup, parse_slot, slot_name
from .runner import (
    IncidentWarning,
    check_hours,
    check_seed,
    incidents_outside,
    no_gc,
    progress_bar,
)
from .scenario import Scenario, idle
from .scoring import firing_notices, score_incidents, spans, summarise, tally_events
from .watchers import monitor_rules

__all__ = ["Sweep", "sweep", "parse_seeds", "parse_setting", "REPLAYABLE", "SWEEP_FILES"]

REPLAYABLE = ("monitor.", "score.")
"""Parameter prefixes that change only the rules and the scoring, never the events."""

RUN_COLUMNS = (
    "seed",
    "incidents",
    "detected",
    "time_to_detect_s",
    "detected_by",
    "alerts_fired",
    "false_alerts",
    "payments_sent",
    "payments_failed",
    "payments_in_flight",
    "dollars_disbursed",
    "payment_p95_s",
    "hlt_wait_p95_s",
    "events",
)
"""What ``Sweep.runs`` keeps of each run's summary."""

SWEEP_FILES = ("sweep_runs.csv", "sweep_incidents.csv", "sweep_table.csv", "sweep.png")
"""What :meth:`Sweep.save` writes."""


class Sweep:
    """A grid of runs.

    ``runs`` has one row per (scenario, setting, seed), ``incidents`` one row
    per scored incident, and ``table`` one row per (scenario, setting) with
    detection, false alerts, payments and dollars. :meth:`plot` draws the
    trade-off; :meth:`save` writes it all.
    """

    def __init__(
        self,
        scenarios: list[str],
        names: list[str],
        runs: pd.DataFrame,
        incidents: pd.DataFrame,
        *,
        baseline: str | None = None,
        fixed: Mapping[str, Any] | None = None,
        hours: float = ida.SIM_HOURS,
    ) -> None:
        self.scenarios = scenarios
        self.scenario = scenarios[0]
        self.names = names
        self.runs = runs
        self.incidents = incidents
        self.baseline = baseline
        self.fixed = dict(fixed or {})
        self.hours = hours

    def __repr__(self) -> str:
        return (
            f"<Sweep {', '.join(self.scenarios)}: {len(self.runs)} runs over "
            f"{', '.join(self.names) or 'no parameter'}>"
        )

    @cached_property
    def table(self) -> pd.DataFrame:
        """One row per scenario and setting, over its seeds."""
        return _table(self.runs, self.incidents, self.names, self.baseline)

    def title(self) -> str:
        seeds = sorted(set(self.runs["seed"]))
        over = ", ".join(self.names) or "no parameter"
        text = f"Sweep of {', '.join(self.scenarios)} over {over}; seeds {_seeds(seeds)}"
        text += f"; {self.hours:g} h"
        if self.baseline:
            text += f"; false alerts on {self.baseline}"
        if self.fixed:
            text += "; with " + ", ".join(f"{k}={_num(v)}" for k, v in self.fixed.items())
        return text

    def report(self) -> str:
        shown = self.table.to_string(index=False, float_format=_fmt, na_rep="-")
        return self.title() + "\n\n" + shown

    def plot(self, *, fig: Any = None) -> Any:
        """Time to detect against false alerts per setting (spread over seeds),
        and payments sent and failed per setting. Without ``fig`` a new pyplot
        figure, so ``plt.show()`` shows it."""
        from . import plots

        if fig is None:
            import matplotlib.pyplot as plt

            fig = plt.figure(figsize=(11, 4.8), layout="constrained")
        plots.draw_sweep(fig, self)
        return fig

    def save(self, out: str | Path, *, force: bool = False) -> dict[str, Path]:
        """Write :data:`SWEEP_FILES` under ``out``, all or nothing; a file of
        that name the kit did not write there is refused unless ``force``."""
        out = check_out(out, SWEEP_FILES, force=force)
        from matplotlib.figure import Figure

        def plot(path: Path) -> None:
            fig = Figure(figsize=(11, 4.8), layout="constrained")
            self.plot(fig=fig)
            fig.savefig(path, dpi=100, format="png")

        written = write_all(
            out,
            {
                "sweep_runs.csv": lambda p: self.runs.to_csv(p, index=False),
                "sweep_incidents.csv": lambda p: self.incidents.to_csv(p, index=False),
                "sweep_table.csv": lambda p: self.table.to_csv(p, index=False),
                "sweep.png": plot,
            },
        )
        return {name.split(".")[0].replace("sweep_", ""): p for name, p in written.items()}


def sweep(
    scenario: str | Scenario | Sequence[str | Scenario] = "bank_outage",
    grid: Mapping[str, Sequence[Any]] | None = None,
    *,
    seeds: Iterable[int] = range(1, 11),
    hours: float = ida.SIM_HOURS,
    baseline: str | Scenario | None = None,
    workers: int | None = None,
    executor: Executor | None = None,
    progress: bool | None = None,
    **kw: Any,
) -> Sweep:
    """Run every combination of ``grid`` (dotted name -> values) with every seed.

    :param scenario: one scenario (name, path or :class:`Scenario`) or a list.
    :param baseline: a scenario (e.g. ``"calm"``) run with the same grid and
        seeds, whose false alerts the table and plot show beside each row.
    :param workers: processes to use (default: one per core); 1 runs here.
    :param executor: any :class:`concurrent.futures.Executor` (a thread or
        process pool, Dask's ``client.get_executor()``); the sweep submits to
        it and leaves it open.

    Keyword arguments are fixed overrides applied to every run.

    Each seed and each scenario is given once (a repeat is refused); a
    baseline that is also one of the swept scenarios is simulated once. A
    grid over a field of an incident that happens in none of the scenarios
    (``flood.start_h`` while ``flood.hours`` is 0) is refused.
    """
    grid = dict({"monitor.threshold": [3, 5, 8]} if grid is None else grid)
    listed = [scenario] if isinstance(scenario, (str, Scenario, Path)) else list(scenario)
    if not listed:
        raise ValueError("scenario is an empty list; give at least one, e.g. 'bank_outage'")
    bases = [Scenario.load(s).override(**kw) for s in listed]
    names_given = [s.name for s in bases]
    for i, name in enumerate(names_given):
        if name in names_given[:i]:
            raise ValueError(f"scenario {name!r} is given twice; give each scenario once")
    base_line = Scenario.load(baseline).override(**kw) if baseline is not None else None
    swept_too = False
    if base_line is not None and base_line.name in names_given:
        same = bases[names_given.index(base_line.name)]
        if dict(same) != dict(base_line):
            raise ValueError(
                f"the baseline {base_line.name!r} has the name of a swept scenario but other "
                f"values; rename one of them"
            )
        swept_too = True  # its rows are already in the sweep: simulate it once
    checked: dict[str, list[Any]] = {}
    for name, values in grid.items():
        canonical, spec = lookup(name)
        if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or not values:
            raise ValueError(f"grid[{name!r}] must be a non-empty list of values, got {values!r}")
        # Check every value before the first long run starts.
        checked[canonical] = [spec.check(canonical, v) for v in values]
        twice = [v for i, v in enumerate(checked[canonical]) if v in checked[canonical][:i]]
        if twice:
            raise ValueError(f"grid[{name!r}] lists {twice[0]!r} twice; give each value once")
    seeds = [check_seed(s) for s in seeds]
    if not seeds:
        raise ValueError("seeds is empty; give at least one, e.g. range(1, 11)")
    twice = [s for i, s in enumerate(seeds) if s in seeds[:i]]
    if twice:
        raise ValueError(f"seeds lists {twice[0]} twice; give each seed once")
    hours = check_hours(hours)
    names = list(checked)
    replay = [n for n in names if n.startswith(REPLAYABLE)]
    other = [n for n in names if n not in replay]
    variants = [dict(zip(replay, c, strict=True)) for c in _product(checked, replay)]
    sims = [dict(zip(other, c, strict=True)) for c in _product(checked, other)]
    everyone = bases + ([base_line] if base_line is not None and not swept_too else [])
    for name in names:
        text = idle_everywhere(everyone, name, checked)
        if text:
            raise ValueError(f"{text} (in every scenario of the sweep)")
    tasks = []
    for sc in everyone:
        for sim in sims:
            day_sc = sc.override(sim)
            for variant in variants:
                for text in incidents_outside(day_sc.override(variant), hours):
                    warnings.warn(text, IncidentWarning, stacklevel=2)
            for seed in seeds:
                tasks.append((day_sc, seed, hours, variants))
    results = _execute(tasks, workers, executor, progress)
    runs, incidents = [], []
    for (day_sc, seed, _, _), outcome in zip(tasks, results, strict=True):
        for variant, (summary, scores) in zip(variants, outcome, strict=True):
            setting = {n: {**_of(day_sc, other), **variant}[n] for n in names}
            head = {"scenario": day_sc.name, **setting}
            runs.append({**head, **{k: summary[k] for k in RUN_COLUMNS}})
            incidents.extend({**head, "seed": seed, **row} for row in scores)
    run_cols = ["scenario", *names, *RUN_COLUMNS]
    inc_cols = ["scenario", *names, "seed", "incident", "kind", "start_h", "end_h", "detected",
                "time_to_detect_s", "detected_by", "alerts"]  # fmt: skip
    runs_df = _ordered(pd.DataFrame(runs, columns=run_cols), names)
    inc_df = _ordered(pd.DataFrame(incidents, columns=inc_cols), names)
    return Sweep(
        [s.name for s in bases],
        names,
        runs_df,
        inc_df,
        baseline=base_line.name if base_line is not None else None,
        fixed={lookup(k.replace("__", "."))[0]: v for k, v in kw.items()},
        hours=hours,
    )


def idle_everywhere(
    scenarios: Sequence[Scenario], name: str, grid: Mapping[str, Sequence[Any]]
) -> str | None:
    """A sentence when ``name`` is a field of an incident that happens in none of
    ``scenarios`` under any setting of ``grid`` (its hours stay 0), else None."""
    texts = []
    for sc in scenarios:
        hours = _hours_of(name)
        if hours in grid and any(v > 0 for v in grid[hours]):
            return None
        text = idle(sc.override({name: grid[name][0]}) if name in grid else sc, name)
        if text is None:
            return None
        texts.append(text)
    return texts[0] if texts else None


def _hours_of(name: str) -> str | None:
    slot = parse_slot(name)
    return slot_name(slot[0], slot[1], "hours") if slot else None


def _product(checked: dict[str, list[Any]], names: list[str]) -> list[tuple]:
    return list(itertools.product(*(checked[n] for n in names)))


def _of(sc: Scenario, names: list[str]) -> dict[str, Any]:
    return {n: sc[n] for n in names}


def _ordered(df: pd.DataFrame, names: list[str]) -> pd.DataFrame:
    """Rows by scenario (in the order given), then setting, then seed."""
    order = {name: i for i, name in enumerate(dict.fromkeys(df["scenario"]))}
    df = df.assign(_sc=df["scenario"].map(order))
    df = df.sort_values(["_sc", *names, "seed"], kind="stable").drop(columns="_sc")
    return df.reset_index(drop=True)


def day_task(
    scenario: Scenario, seed: int, hours: float, variants: list[dict[str, Any]]
) -> list[tuple[dict[str, Any], list[dict[str, Any]]]]:
    """Simulate one day without a monitor, then score every rule variant on its
    events: one (summary, incident scores) pair per variant. Runs in a worker."""
    with no_gc():
        out = _score_variants(scenario, seed, hours, variants)
    gc.collect(0)  # the day's garbage only: a forked worker must not touch its parent's heap
    return out


def _score_variants(
    scenario: Scenario, seed: int, hours: float, variants: list[dict[str, Any]]
) -> list[tuple[dict[str, Any], list[dict[str, Any]]]]:
    from hms_bus.monitor import backtest

    from .runner import simulate

    day = simulate(scenario, seed=seed, hours=hours, monitor=False)
    counts = tally_events(day.events)
    start, until = day.start, day.start + hours * 3600
    by_topic: dict[str, list] = {}
    for ev in day.events:
        by_topic.setdefault(ev.topic, []).append(ev)
    # Rules are evaluated independently, so a rule that is the same in every
    # variant is backtested once, on only the events it watches.
    cache: dict[str, Any] = {}

    def timeline_of(rule: Any) -> Any:
        key = repr(rule)
        if key not in cache:
            pats = [pat for pat, _ in rule.patterns()]
            wanted = {t for t in by_topic if any(matches(p, t) for p in pats)}
            events = sorted((ev for t in wanted for ev in by_topic[t]), key=lambda ev: ev.seq)
            cache[key] = backtest([rule], events, start=start, until=until)
        return cache[key]

    out = []
    for v in variants:
        sc = scenario.override(v)
        rules = monitor_rules(sc)
        # Only non-empty timelines are joined: pandas < 3 warns (FutureWarning) when an
        # empty frame's column dtypes could change the result's, and 3.0 changed the rule.
        parts = [t for t in (timeline_of(rule) for rule in rules) if len(t)]
        timeline = (
            pd.concat(parts, ignore_index=True)
            if parts
            else backtest([], [], start=start, until=until)
        )
        found = spans(timeline, start, hours)
        scores = score_incidents(day.incidents, found, sc["score.grace_s"])
        summary = summarise(
            scenario=sc.name, seed=seed, hours=hours, counts=counts, incidents=day.incidents,
            scores=scores, found=found, notices=len(timeline), pages=firing_notices(timeline),
        )  # fmt: skip
        out.append((summary, scores))
    return out


def _execute(tasks: list, workers: int | None, executor: Executor | None, progress: Any) -> list:
    with progress_bar(len(tasks), progress, unit="day", desc="sweep") as bar:
        if executor is None:
            n = (os.cpu_count() or 1) if workers is None else workers
            if isinstance(n, bool) or not isinstance(n, int) or n < 1:
                raise ValueError(f"workers must be a whole number of 1 or more, got {workers!r}")
            n = min(n, len(tasks))
            if n <= 1:
                out = []
                for task in tasks:
                    out.append(day_task(*task))
                    bar.update(1)
                return out
            with ProcessPoolExecutor(n, mp_context=_context()) as pool:
                return _submit(pool, tasks, bar)
        return _submit(executor, tasks, bar)


def _submit(executor: Executor, tasks: list, bar: Any) -> list:
    futures = [executor.submit(day_task, *task) for task in tasks]
    try:
        for future in futures:
            future.add_done_callback(lambda _: bar.update(1))
        return [f.result() for f in futures]
    except BaseException:
        for f in futures:
            f.cancel()
        raise


def _context() -> Any:
    """Fork where it is safe (POSIX, no other thread running): workers start at
    once, with the simulation already imported, and a script needs no
    ``if __name__ == "__main__":`` guard. Otherwise the platform's default
    (spawn or forkserver), which re-imports the calling script in each worker."""
    methods = multiprocessing.get_all_start_methods()
    if "fork" in methods and threading.active_count() == 1 and sys.platform != "darwin":
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context()


def _table(
    runs: pd.DataFrame, incidents: pd.DataFrame, names: list[str], baseline: str | None
) -> pd.DataFrame:
    keys = ["scenario", *names]
    rows = []
    by_incident = {k: g for k, g in incidents.groupby(keys, sort=False)} if len(incidents) else {}
    for key, g in runs.groupby(keys, sort=False):
        key = key if isinstance(key, tuple) else (key,)
        inc = by_incident.get(key if len(key) > 1 else key[0], incidents.iloc[0:0])
        ttd = inc.loc[inc["detected"].astype(bool), "time_to_detect_s"].astype(float)
        rows.append(
            {
                **dict(zip(keys, key, strict=True)),
                "runs": len(g),
                "incidents": len(inc),
                "detected": int(inc["detected"].astype(bool).sum()),
                "detect_median_s": ttd.median() if len(ttd) else float("nan"),
                "detect_min_s": ttd.min() if len(ttd) else float("nan"),
                "detect_max_s": ttd.max() if len(ttd) else float("nan"),
                "false_alerts_mean": g["false_alerts"].mean(),
                "false_alerts_max": int(g["false_alerts"].max()),
                "payments_sent_mean": g["payments_sent"].mean(),
                "payments_failed_mean": g["payments_failed"].mean(),
                "dollars_mean": g["dollars_disbursed"].mean(),
            }
        )
    table = pd.DataFrame(rows)
    if baseline is not None and names:
        base = table.loc[table["scenario"] == baseline, [*names, "false_alerts_mean",
                                                         "false_alerts_max"]]  # fmt: skip
        base = base.rename(columns={"false_alerts_mean": "baseline_false_alerts_mean",
                                    "false_alerts_max": "baseline_false_alerts_max"})  # fmt: skip
        table = table.merge(base, on=names, how="left")
    elif baseline is not None:
        b = table[table["scenario"] == baseline].iloc[0]
        table["baseline_false_alerts_mean"] = b["false_alerts_mean"]
        table["baseline_false_alerts_max"] = b["false_alerts_max"]
    return table


def parse_seeds(text: str) -> list[int]:
    """Read ``"1-10"``, ``"3"`` or ``"1,4,9"`` (or a mix: ``"1-3,7"``) as seeds."""
    seeds: list[int] = []
    for part in text.split(","):
        before = len(seeds)
        part = part.strip()
        try:
            if "-" in part:
                lo, hi = (int(x) for x in part.split("-", 1))
                if hi < lo or lo < 0:
                    raise ValueError
                seeds.extend(range(lo, hi + 1))
            else:
                seeds.append(int(part))
                if seeds[-1] < 0:
                    raise ValueError
        except ValueError:
            raise ValueError(
                f"cannot read seeds {text!r} (at {part!r}); write e.g. '1-10', '7' or '1,4,9'"
            ) from None
        again = [s for i, s in enumerate(seeds) if i >= before and s in seeds[:i]]
        if again:
            raise ValueError(f"seed {again[0]} is given twice in {text!r}; give each seed once")
    return seeds


def parse_setting(text: str) -> tuple[str, list[Any]]:
    """Read ``"monitor.threshold=3,5,8"`` as a canonical name and its checked values."""
    name, sep, values = text.partition("=")
    name = name.strip()
    if not sep or not values.strip() or not name:
        raise ValueError(
            f"cannot read {text!r}; write NAME=VALUE[,VALUE...], e.g. monitor.threshold=3,5,8"
        )
    canonical, spec = lookup(name)
    return canonical, [spec.check(canonical, v.strip()) for v in values.split(",")]


def _seeds(seeds: list[int]) -> str:
    if seeds == list(range(seeds[0], seeds[-1] + 1)) and len(seeds) > 2:
        return f"{seeds[0]}-{seeds[-1]}"
    return ",".join(map(str, seeds))


def _num(x: Any) -> str:
    return f"{x:g}" if isinstance(x, float) else str(x)


def _fmt(x: float) -> str:
    return f"{x:,.1f}"
