"""Replaying a recorded day through changed rules: ``backtest()`` and ``load_events()``.

``run`` (or ``python -m simulations run``) writes a report folder;
:func:`load_events` reads its ``events.csv`` back with ``data`` as dicts, in
the shape :func:`hms_bus.monitor.backtest` takes. :func:`backtest` goes one
step further: it re-scores the recorded day with the monitor parameters
changed (``monitor.threshold=3``), without simulating anything again::

    python -m simulations backtest out/ --set monitor.threshold=3

The simulation's own events are replayed; the alerts and pages the recorded
monitor added are left out, since the changed rules make their own.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from hms_bus.clock import to_epoch

from .params import lookup
from .results import EVENT_COLUMNS, Result, alerts_frame, incidents_frame, report_lines
from .scenario import Scenario
from .scoring import MONITOR_TOPICS, firing_notices, score_incidents, spans, summarise, tally
from .sweep import REPLAYABLE
from .watchers import monitor_rules

__all__ = ["Replay", "backtest", "load_events", "load_day"]


def load_events(path: str | Path) -> pd.DataFrame:
    """The events a run wrote (``events.csv``, or the folder holding it), with
    columns :data:`~simulations.results.EVENT_COLUMNS` and ``data`` as dicts."""
    path = Path(path).expanduser()
    if path.is_dir():
        path = path / "events.csv"
    if not path.is_file():
        raise ValueError(f"no events file at {str(path)!r}; give a folder that 'run' wrote")
    df = pd.read_csv(path, dtype={"ts": str, "topic": str, "src": str, "id": str, "data": str},
                     keep_default_na=False)  # fmt: skip
    missing = [c for c in EVENT_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(
            f"{str(path)!r} lacks the column(s) {', '.join(missing)}; "
            f"it is not an events.csv written by 'run'"
        )
    try:
        df["data"] = [json.loads(text) if text else None for text in df["data"]]
    except json.JSONDecodeError as exc:
        raise ValueError(f"{str(path)!r} has a data cell that is not JSON: {exc}") from None
    df["time"] = df["time"].astype(float)
    return df


class Recorded:
    """A day read back from a report folder."""

    def __init__(self, scenario: Scenario, seed: int, hours: float, start: float, events: Any):
        self.scenario, self.seed, self.hours, self.start = scenario, seed, hours, start
        self.events = events


def load_day(out: str | Path) -> Recorded:
    """The scenario, seed, hours and events of the day a run wrote under ``out``."""
    out = Path(out).expanduser()
    meta_path = out / "summary.json"
    if not meta_path.is_file():
        raise ValueError(
            f"no summary.json in {str(out)!r}; give a folder written by "
            f"'python -m simulations run ... --out FOLDER'"
        )
    try:
        meta = json.loads(meta_path.read_text())
        scenario = Scenario(meta["scenario"], meta["params"])
        scenario.changed = dict(meta.get("changed", {}))
        return Recorded(
            scenario, meta["seed"], meta["hours"], to_epoch(meta["start"]), load_events(out)
        )
    except (KeyError, TypeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{str(meta_path)!r} is not a run's summary ({exc!r})") from None


class Replay:
    """A recorded day scored again with changed rules: ``summary``, ``alerts``,
    ``spans``, ``incidents`` and :meth:`report`, as a :class:`Result` has them."""

    def __init__(self, recorded: Recorded | Result, scenario: Scenario) -> None:
        from hms_bus.monitor import backtest as run_rules

        if isinstance(recorded, Result):
            pairs = [(ev.topic, ev.data) for ev in recorded.ledger]
            own = [ev for ev in recorded.ledger if not ev.topic.startswith(MONITOR_TOPICS)]
            start, seed, hours = recorded.start, recorded.seed, recorded.hours
        else:
            df = recorded.events
            pairs = list(zip(df["topic"], df["data"], strict=True))
            own = df[~df["topic"].str.startswith(MONITOR_TOPICS)].reset_index(drop=True)
            start, seed, hours = recorded.start, recorded.seed, recorded.hours
        self.scenario, self.seed, self.hours, self.start = scenario, seed, hours, start
        incidents = [i for i in scenario.incidents if i.start_h < hours]
        timeline = run_rules(monitor_rules(scenario), own, start=start, until=start + hours * 3600)
        self._spans = spans(timeline, start, hours)
        self._scores = score_incidents(incidents, self._spans, scenario["score.grace_s"])
        self.alerts = alerts_frame(timeline, [], start)
        self.incidents = incidents_frame(self._scores)
        self.summary = summarise(
            scenario=scenario.name, seed=seed, hours=hours, counts=tally(pairs),
            incidents=incidents, scores=self._scores, found=self._spans,
            notices=len(timeline), pages=firing_notices(timeline),
        )  # fmt: skip

    @property
    def spans(self) -> pd.DataFrame:
        cols = ["rule", "group", "start_h", "end_h", "resolved", "true_alert"]
        rows = [{**s, "start_h": s["start_s"] / 3600, "end_h": s["end_s"] / 3600}
                for s in self._spans]  # fmt: skip
        return pd.DataFrame(rows, columns=cols) if rows else pd.DataFrame(columns=cols)

    def report(self) -> str:
        lines = report_lines(
            self.scenario, self.seed, self.hours, self.summary, self._scores, self.alerts,
            self._spans,
        )  # fmt: skip
        lines[0] = "Backtest on recorded events: " + lines[0]
        return "\n".join(lines)


def backtest(
    recorded: str | Path | Result | Recorded,
    overrides: Mapping[str, Any] | None = None,
    **kw: Any,
) -> Replay:
    """Score a recorded day again with changed monitor or scoring parameters.

    :param recorded: a folder that ``run`` wrote, or a :class:`Result`.
    :param overrides: ``monitor.*`` and ``score.*`` parameters to change;
        keyword arguments do the same (``monitor__threshold=3``). Other
        parameters would change the events themselves: run the day again.
    """
    if isinstance(recorded, (str, Path)):
        recorded = load_day(recorded)
    elif not isinstance(recorded, (Result, Recorded)):
        raise TypeError(f"backtest takes a report folder or a Result, got {recorded!r}")
    changes = {**(overrides or {}), **{k.replace("__", "."): v for k, v in kw.items()}}
    for name in changes:
        canonical = lookup(name)[0]
        if not canonical.startswith(REPLAYABLE):
            raise ValueError(
                f"{canonical} changes the simulated events, so a recorded day cannot show "
                f"its effect; backtest takes monitor.* and score.* parameters; use "
                f"'run' (or sweep) to simulate with {canonical} changed"
            )
    return Replay(recorded, recorded.scenario.override(changes))
