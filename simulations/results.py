"""Results of one simulated day: events and alerts as DataFrames, scores, a report, plots.

:class:`Result` is what :func:`simulations.run` returns. Tables are built on
first use from the audit ledger (every event, in publish order) and the
monitor's timeline, so a run that only needs the summary stays fast.
"""

from __future__ import annotations

import json
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from hms_bus.event import format_ts
from hms_bus.topics import matches, validate_pattern

from .output import check_out, write_all
from .scoring import (
    INSTANT,
    SUMMARY_KEYS,
    epoch_seconds,
    firing_notices,
    score_incidents,
    spans,
    summarise,
    tally_events,
)

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from .incidents import Incident
    from .runner import Day

__all__ = ["Result", "SUMMARY_KEYS", "EVENT_COLUMNS", "OUTPUT_FILES", "events_frame"]

EVENT_COLUMNS = ("ts", "time", "hour", "topic", "src", "id", "data")
"""The columns of ``Result.events`` and of ``events.csv``, whatever the scenario:
``ts`` the publish time as ISO text, ``time`` the same in epoch seconds (full
precision), ``hour`` hours since the simulated midnight, and ``data`` the
payload (a dict; JSON text in the CSV). :meth:`Result.select` spreads a
topic's data fields into columns."""

OUTPUT_FILES = (
    "events.csv",
    "alerts.csv",
    "incidents.csv",
    "dashboard.csv",
    "summary.json",
    "rates.png",
)
"""What :meth:`Result.save` writes."""

SHORT_NAMES = dict(zip(OUTPUT_FILES, ("events", "alerts", "incidents", "dashboard", "summary",
                                      "plot"), strict=True))  # fmt: skip
"""The keys of the dict :meth:`Result.save` returns."""


class Result:
    """What one simulated day produced.

    ``summary`` (a dict, keys in :data:`SUMMARY_KEYS`), ``events`` (one row
    per event), ``alerts`` (the monitor's timeline), ``spans`` (one row per
    firing alert, true or false), ``incidents`` (one row per scheduled
    incident, scored), ``dashboard`` (the governor's counters every 10
    simulated minutes), :meth:`report`, :meth:`plot_rates` and
    :meth:`save`. ``ledger`` keeps the raw :class:`hms_bus.Event` objects.
    """

    def __init__(self, day: Day) -> None:
        self.scenario = day.scenario
        self.seed = day.seed
        self.hours = day.hours
        self.start = day.start
        self.ledger = day.events
        self.wall_s = day.wall_s
        self.in_flight_payments = day.in_flight_payments
        """Payments ACH had started but not finished when the run ended."""
        self._day = day
        self._scheduled = day.incidents
        counts = tally_events(self.ledger)
        timeline = day.timeline
        self._spans = spans(timeline, self.start, self.hours)
        grace = self.scenario["score.grace_s"]
        self._scores = score_incidents(self._scheduled, self._spans, grace)
        self.summary = summarise(
            scenario=self.scenario.name,
            seed=self.seed,
            hours=self.hours,
            counts=counts,
            incidents=self._scheduled,
            scores=self._scores,
            found=self._spans,
            notices=len(timeline),
            pages=firing_notices(timeline),
        )

    def __repr__(self) -> str:
        s = self.summary
        return (
            f"<Result {s['scenario']} seed={s['seed']} {s['hours']:g} h: {s['events']:,} events, "
            f"{s['payments_sent']:,} payments sent, {s['alerts_fired']} alerts, "
            f"{s['detected']}/{s['incidents']} incidents detected>"
        )

    @property
    def scheduled(self) -> list[Incident]:
        """The scenario's incidents that fall in the run (what ``incidents`` scores)."""
        return list(self._scheduled)

    @property
    def changed(self) -> dict[str, Any]:
        """The parameters changed from the stored scenario for this run."""
        return dict(self.scenario.changed)

    # -- tables -------------------------------------------------------------

    @cached_property
    def events(self) -> pd.DataFrame:
        """One row per event, columns :data:`EVENT_COLUMNS`."""
        return events_frame(self.ledger, self.start)

    def select(self, pattern: str) -> pd.DataFrame:
        """The events whose topic matches ``pattern`` (``payments.*``), with
        their data fields as columns instead of ``data``."""
        return select(self.events, pattern)

    @cached_property
    def alerts(self) -> pd.DataFrame:
        """The monitor's alert timeline: ``ts`` (when the notice was
        published on the bus), ``hour`` (the change instant in hours since
        midnight), the timeline's own columns (``at`` is the change instant),
        and ``id`` (the alert event's id on the bus)."""
        return alerts_frame(self._day.timeline, self._day.alerts, self.start)

    @cached_property
    def spans(self) -> pd.DataFrame:
        """One row per firing alert: rule, group, start and end hour, whether it
        resolved, and whether it was a true alert (during an incident, plus grace)."""
        rows = [
            {
                "rule": s["rule"],
                "group": s["group"],
                "start_h": s["start_s"] / 3600,
                "end_h": s["end_s"] / 3600,
                "resolved": s["resolved"],
                "true_alert": s["true_alert"],
            }
            for s in self._spans
        ]
        cols = ["rule", "group", "start_h", "end_h", "resolved", "true_alert"]
        return pd.DataFrame(rows, columns=cols)

    @cached_property
    def incidents(self) -> pd.DataFrame:
        """One row per scheduled incident in the run: what, when, and whether
        (how soon, by which rule) an alert caught it."""
        return incidents_frame(self._scores)

    @cached_property
    def dashboard(self) -> pd.DataFrame:
        """What the governor's dashboard showed, every 10 simulated minutes."""
        return pd.DataFrame(self._day.dashboard.snapshots)

    # -- output -------------------------------------------------------------

    def report(self, *, events: int = 0) -> str:
        """The summary as text, the incidents and how they were caught, the
        alert timeline, then the first ``events`` events (none unless asked)."""
        lines = report_lines(
            self.scenario, self.seed, self.hours, self.summary, self._scores, self.alerts,
            self._spans,
        )  # fmt: skip
        if events:
            lines += ["", f"First {min(events, len(self.ledger))} events:"]
            for ev in self.ledger[:events]:
                lines.append(f"  {ev.ts} {ev.id} {ev.src:<9} {ev.topic:<20} {_data(ev.data)}")
        return "\n".join(lines)

    def plot_rates(self, *, ax: Any = None) -> Figure:
        """The day as pictures.

        Without ``ax``: a new pyplot figure (so ``plt.show()`` or a notebook
        cell's end shows it) with panels sharing the time axis: payments sent
        and failed (the governor's view), portal requests and HLT checks,
        ACH and bank traffic, citizens' wait for HMS-HLT, and one lane per
        alert rule, true alerts solid and false ones hatched. Incidents are
        shaded in every panel. Close it with ``plt.close(fig)`` when done.

        With ``ax``: a compact view on that axes (events per minute by topic
        family, incidents and alert lanes), returning its figure.
        """
        from . import plots

        if ax is not None:
            plots.draw_compact(ax, plots.DayView.of(self))
            return ax.figure
        import matplotlib.pyplot as plt

        fig = plt.figure(figsize=plots.FIGSIZE, layout="constrained")
        plots.draw_day(fig, plots.DayView.of(self))
        return fig

    def save(self, out: str | Path, *, force: bool = False) -> dict[str, Path]:
        """Write :data:`OUTPUT_FILES` under ``out`` (created if missing), all
        or nothing; return the paths by short name (``events``, ``plot``...).

        Files an earlier ``save`` wrote there are replaced; any other file of
        that name (yours, or a report edited since) is refused unless ``force``."""
        out = check_out(out, OUTPUT_FILES, force=force)
        from matplotlib.figure import Figure

        from . import plots

        def plot(path: Path) -> None:
            # A figure outside pyplot: nothing left open, no GUI backend started.
            fig = Figure(figsize=plots.FIGSIZE, layout="constrained")
            plots.draw_day(fig, plots.DayView.of(self))
            fig.savefig(path, dpi=100, format="png")

        meta = {
            "summary": self.summary,
            "scenario": self.scenario.name,
            "changed": self.changed,
            "seed": self.seed,
            "hours": self.hours,
            "start": format_ts(self.start),
            "params": dict(self.scenario),
            "incidents": [i.to_dict() for i in self._scheduled],
        }
        written = write_all(
            out,
            {
                "events.csv": lambda p: write_events_csv(self.events, p),
                "alerts.csv": lambda p: write_alerts_csv(self.alerts, p),
                "incidents.csv": lambda p: self.incidents.to_csv(p, index=False),
                "dashboard.csv": lambda p: self.dashboard.to_csv(p, index=False),
                "summary.json": lambda p: p.write_text(json.dumps(meta, indent=2) + "\n"),
                "rates.png": plot,
            },
        )
        return {SHORT_NAMES[name]: path for name, path in written.items()}


# -- tables, shared with replayed days -----------------------------------------


def events_frame(ledger: list, start: float) -> pd.DataFrame:
    """Events as a DataFrame with :data:`EVENT_COLUMNS`."""
    n = len(ledger)
    times = np.fromiter((ev.time for ev in ledger), float, n)
    return pd.DataFrame(
        {
            "ts": _iso(times),
            "time": times,
            "hour": (times - start) / 3600,
            "topic": pd.Categorical([ev.topic for ev in ledger]),
            "src": pd.Categorical([ev.src for ev in ledger]),
            "id": [ev.id for ev in ledger],
            "data": [ev.data for ev in ledger],
        },
        columns=list(EVENT_COLUMNS),
    )


def select(events: pd.DataFrame, pattern: str) -> pd.DataFrame:
    """Rows of ``events`` whose topic matches ``pattern``, data fields as columns."""
    pattern = validate_pattern(pattern)
    topics = [t for t in pd.unique(events["topic"]) if matches(pattern, t)]
    rows = events[events["topic"].isin(topics)]
    fields = pd.DataFrame.from_records(
        [d if isinstance(d, dict) else {"value": d} for d in rows["data"]], index=rows.index
    )
    base = rows.drop(columns="data")
    clash = [c for c in fields.columns if c in base.columns]
    return base.join(fields.rename(columns={c: f"data.{c}" for c in clash}))


def alerts_frame(timeline: Any, alert_events: list, start: float) -> pd.DataFrame:
    """The timeline with the change instant named ``at``, plus ``ts`` (when the
    notice was published), ``hour`` and ``id`` from the alert events; columns
    the monitor's timeline already has are kept as it gives them."""
    df = timeline.rename(columns={INSTANT: "at"}).reset_index(drop=True)
    n = len(df)
    same = len(alert_events) == n
    extra = {
        "ts": [ev.ts for ev in alert_events] if same else [None] * n,
        "hour": (epoch_seconds(df["at"]) - start) / 3600 if n else np.zeros(0),
    }
    for pos, (name, values) in enumerate(extra.items()):
        if name not in df.columns:
            df.insert(pos, name, values)
    if "id" not in df.columns:
        df["id"] = [ev.id for ev in alert_events] if same else [None] * n
    return df


def incidents_frame(scores: list[dict[str, Any]]) -> pd.DataFrame:
    cols = ["incident", "kind", "start_h", "end_h", "detected", "time_to_detect_s",
            "detected_by", "alerts"]  # fmt: skip
    return pd.DataFrame(scores, columns=cols)


def write_events_csv(events: pd.DataFrame, path: Path) -> None:
    """events.csv: every column as is, ``hour`` to the microsecond hour and
    ``data`` as compact JSON."""
    out = events.copy()
    out["hour"] = out["hour"].round(7)
    out["data"] = [json.dumps(d, separators=(",", ":")) for d in out["data"]]
    out.to_csv(path, index=False)


def write_alerts_csv(alerts: pd.DataFrame, path: Path) -> None:
    """alerts.csv in events.csv's formats: instants as ISO text to the
    millisecond (``2021-08-29T01:02:30.848Z``, as ``ts`` and the report
    print them), ``hour`` to 7 decimals, other numbers to 6, lists and
    dicts as compact JSON."""
    out = _json_cells(alerts)
    for col in out.columns:
        kind = out[col].dtype
        if isinstance(kind, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_any_dtype(kind):
            secs = epoch_seconds(out[col]) if len(out) else np.zeros(0)
            out[col] = [None if s != s else format_ts(s) for s in secs]
        elif pd.api.types.is_float_dtype(kind):
            out[col] = out[col].round(7 if col == "hour" else 6)
    out.to_csv(path, index=False)


def report_lines(
    scenario: Any,
    seed: int,
    hours: float,
    summary: dict[str, Any],
    scores: list[dict[str, Any]],
    alerts: pd.DataFrame,
    found: list[dict[str, Any]],
) -> list[str]:
    changed = scenario.changed_text() or "nothing (the stored scenario)"
    lines = [
        f"Hurricane Ida relief day: {scenario.name} (seed {seed}, {hours:g} h)",
        f"changed: {changed}",
        "",
    ]
    width = max(map(len, summary))
    for key, value in summary.items():
        lines.append(f"  {key:<{width}}  {_show(value)}")
    s = summary
    lines.append(
        f"  (approved {_show(s['approved'])} = {_show(s['payments_sent'])} sent + "
        f"{_show(s['payments_failed'])} failed + {_show(s['payments_in_flight'])} "
        f"still in flight when the run ended)"
    )
    lines += ["", f"Incidents ({s['incidents']} scheduled, {s['detected']} detected):"]
    for row in scores:
        when = f"{row['start_h']:g}h-{row['end_h']:g}h"
        if row["detected"]:
            alerts_n = f", {row['alerts']} alerts" if row["alerts"] != 1 else ", 1 alert"
            how = (
                f"detected after {_show(row['time_to_detect_s'])} s by {row['detected_by']}"
                f"{alerts_n}"
            )
        else:
            how = "MISSED: no alert fired during it"
        lines.append(f"  {row['incident']:<22} {when:<13} {how}")
    if not scores:
        lines.append("  (none)")
    false_rows = {f["row"] for f in found if not f["true_alert"]}
    lines += ["", f"Alert timeline ({len(alerts)} notices):"]
    for i, row in enumerate(alerts.itertuples(index=False)):
        group = f" [{row.group}]" if isinstance(row.group, str) else ""
        flag = "  (false alert)" if i in false_rows else ""
        lines.append(
            f"  {format_ts(_epoch_one(row.at))}  {row.state:<8} {row.rule}{group}"
            f"  value={_show(row.value)} bound={_show(row.bound)}{flag}"
        )
    if len(alerts) == 0:
        lines.append("  (none)")
    return lines


def _json_cells(df: pd.DataFrame) -> pd.DataFrame:
    out = df.copy()
    for col in out.columns:
        if out[col].dtype == object and any(isinstance(v, (list, dict)) for v in out[col]):
            out[col] = [json.dumps(v, separators=(",", ":")) for v in out[col]]
    return out


def _epoch_one(ts: Any) -> float:
    return (ts - pd.Timestamp(0, tz="UTC")).total_seconds()


def _iso(times: np.ndarray) -> np.ndarray:
    """Event timestamps as ``Event.ts`` writes them, for many at once."""
    ms = np.round(times * 1000).astype("int64").astype("datetime64[ms]")
    return np.char.add(np.datetime_as_string(ms, unit="ms"), "Z")


def _show(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if value != value:
            return "-"
        return f"{value:,.3f}".rstrip("0").rstrip(".") if value != int(value) else f"{value:,.0f}"
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def _data(data: Any) -> str:
    if isinstance(data, dict):
        return " ".join(f"{k}={v}" for k, v in data.items())
    return "" if data is None else str(data)
