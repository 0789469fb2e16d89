"""Results of one simulated day: events and alerts as DataFrames, a summary, a plot.

:class:`Result` is what :func:`simulations.run` returns. Tables are built on
first use from the audit ledger (every event, in publish order) and the
pager's log (every alert), so a run that only needs the summary stays fast.
"""

from __future__ import annotations

import json
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from hms_bus.event import format_ts

from .ida import no_gc

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from .ida import Day
    from .scenario import Scenario

__all__ = ["Result", "SUMMARY_KEYS"]

BASE_COLUMNS = ("ts", "time", "hour", "topic", "src", "id")
"""The columns every event row has; data fields follow, one column per key."""

FIGSIZE = (11, 4.5)
"""Width and height of the rates plot, in inches."""

SUMMARY_KEYS = (
    "scenario",
    "seed",
    "hours",
    "events",
    "requests",
    "approved",
    "payments_sent",
    "payments_failed",
    "dollars_disbursed",
    "payment_p50_s",
    "payment_p95_s",
    "incident",
    "time_to_detect_s",
    "detected_by",
    "alerts_fired",
    "false_alerts",
    "pages",
    "subscriber_errors",
)
"""The summary's keys, in the order they print.

``requests`` counts portal requests, ``approved`` the HLT checks that found a
medical evacuation; ``payment_p50_s``/``payment_p95_s`` measure sent payments
from ACH's start to the bank's answer, retries included. ``incident`` is the
first scheduled bank outage or slowdown; ``time_to_detect_s`` runs from its
start to the first alert that starts firing during it (or up to
``score.grace_s`` after it), ``detected_by`` names that alert's rule, or says
``missed``. An alert that starts firing outside every incident (plus grace)
counts in ``false_alerts``. ``subscriber_errors`` counts
``bus.subscriber_error`` events: a listener that raised, which should be 0.
"""


class Result:
    """What one simulated day produced.

    ``events`` (one row per event), ``alerts`` (the firing/resolved
    timeline), ``spans`` (one row per firing alert, start to end),
    ``dashboard`` (the governor's counters every 10 simulated minutes),
    ``summary`` (a dict) and :meth:`plot_rates`. ``ledger`` keeps the raw
    :class:`hms_bus.Event` objects.
    """

    def __init__(self, scenario: Scenario, day: Day) -> None:
        self.scenario = scenario
        self.seed = day.seed
        self.hours = day.hours
        self.start = day.start
        self.ledger = day.events
        self.incidents = day.incidents
        self.wall_s = day.wall_s
        self.in_flight_payments = day.in_flight_payments
        """Payments ACH had started but not finished when the run ended."""
        self._day = day
        self.summary = self._summarise()

    def __repr__(self) -> str:
        s = self.summary
        return (
            f"<Result {s['scenario']} seed={s['seed']} {s['hours']:g} h: {s['events']:,} events, "
            f"{s['payments_sent']:,} payments sent, {s['alerts_fired']} alerts>"
        )

    # -- tables -------------------------------------------------------------

    @cached_property
    def events(self) -> pd.DataFrame:
        """One row per event: ts, time (UTC), hour (since the start), topic,
        src, id, then one column per data field (empty where absent)."""
        with no_gc():
            return _frame(self.ledger, self.start)

    @cached_property
    def alerts(self) -> pd.DataFrame:
        """The alert timeline: one row per ``alerts.*`` event, firing or resolved."""
        rows = []
        for ev in self._day.alerts:
            d = ev.data
            rows.append(
                {
                    "ts": ev.ts,
                    "hour": (ev.time - self.start) / 3600,
                    "rule": d.get("rule"),
                    "state": d.get("state"),
                    "value": d.get("value"),
                    "bound": d.get("bound"),
                    "window": d.get("window"),
                    "group": d.get("group"),
                    "summary": d.get("summary"),
                    "id": ev.id,
                }
            )
        cols = ["ts", "hour", "rule", "state", "value", "bound", "window", "group", "summary", "id"]
        return pd.DataFrame(rows, columns=cols)

    @cached_property
    def spans(self) -> pd.DataFrame:
        """One row per firing alert: rule, group, start and end hour, and
        whether it overlaps a scheduled incident (``true_alert``)."""
        return pd.DataFrame(
            self._spans(),
            columns=["rule", "group", "start_h", "end_h", "resolved", "true_alert"],
        )

    @cached_property
    def dashboard(self) -> pd.DataFrame:
        """What the governor's dashboard showed, every 10 simulated minutes."""
        return pd.DataFrame(self._day.dashboard.snapshots)

    # -- summary ------------------------------------------------------------

    def _spans(self) -> list[dict[str, Any]]:
        open_: dict[tuple, dict[str, Any]] = {}
        spans: list[dict[str, Any]] = []
        grace = self.scenario["score.grace_s"]
        for ev in self._day.alerts:
            d = ev.data
            key = (d.get("rule"), d.get("group"))
            t = ev.time - self.start
            if d.get("state") == "firing" and key not in open_:
                span = {"rule": key[0], "group": key[1], "start_h": t / 3600, "end_h": None}
                span["resolved"] = False
                span["true_alert"] = any(
                    i["start_s"] <= t <= i["end_s"] + grace for i in self.incidents
                )
                open_[key] = span
                spans.append(span)
            elif d.get("state") == "resolved" and key in open_:
                span = open_.pop(key)
                span["end_h"] = t / 3600
                span["resolved"] = True
        for span in open_.values():
            span["end_h"] = self.hours
        return spans

    def _summarise(self) -> dict[str, Any]:
        day = self._day
        dash = day.dashboard
        lat = np.asarray(dash.latencies, dtype=float) / 1000.0
        spans = self._spans()
        incident = self.incidents[0] if self.incidents else None
        detect, by = None, None
        if incident is not None:
            grace = self.scenario["score.grace_s"]
            for span in spans:
                t = span["start_h"] * 3600
                if incident["start_s"] <= t <= incident["end_s"] + grace:
                    detect, by = round(t - incident["start_s"], 3), span["rule"]
                    break
        errors = sum(1 for ev in self.ledger if ev.topic == "bus.subscriber_error")
        summary = {
            "scenario": self.scenario.name,
            "seed": self.seed,
            "hours": self.hours,
            "events": len(self.ledger),
            "requests": dash.requests,
            "approved": dash.approved,
            "payments_sent": dash.sent,
            "payments_failed": dash.failed,
            "dollars_disbursed": dash.dollars,
            "payment_p50_s": _pct(lat, 50),
            "payment_p95_s": _pct(lat, 95),
            "incident": _incident_text(incident),
            "time_to_detect_s": detect,
            "detected_by": by if incident is None or by else "missed",
            "alerts_fired": len(spans),
            "false_alerts": sum(1 for s in spans if not s["true_alert"]),
            "pages": day.pages,
            "subscriber_errors": errors,
        }
        if incident is None:
            summary["detected_by"] = None
        return summary

    # -- output -------------------------------------------------------------

    def report(self, *, events: int = 0) -> str:
        """The summary as a text table, then the alert timeline, then the
        first ``events`` events (none unless asked)."""
        lines = [f"Hurricane Ida relief day: {self.scenario.name} (seed {self.seed})", ""]
        width = max(map(len, self.summary))
        for key, value in self.summary.items():
            lines.append(f"  {key:<{width}}  {_show(value)}")
        lines += ["", f"Alert timeline ({len(self._day.alerts)} notices):"]
        for ev in self._day.alerts:
            d = ev.data
            group = f" [{d.get('group')}]" if d.get("group") is not None else ""
            lines.append(
                f"  {ev.ts}  {d.get('state', '?'):<8} {d.get('rule')}{group}"
                f"  value={_show(d.get('value'))} bound={_show(d.get('bound'))}"
            )
        if not self._day.alerts:
            lines.append("  (none)")
        if events:
            lines += ["", f"First {min(events, len(self.ledger))} events:"]
            for ev in self.ledger[:events]:
                lines.append(f"  {ev.ts} {ev.id} {ev.src:<9} {ev.topic:<20} {_data(ev.data)}")
        return "\n".join(lines)

    def plot_rates(self, *, ax: Any = None) -> Figure:
        """Events per simulated minute by topic family (the first token),
        with alert firing spans shaded and the incident windows marked.

        Without ``ax`` the plot gets a new pyplot figure, so ``plt.show()``
        (or a notebook cell's end) shows it; close it with ``plt.close(fig)``
        when you are done. With ``ax`` it draws there and returns that
        axes' figure.
        """
        if ax is None:
            import matplotlib.pyplot as plt

            fig, ax = plt.subplots(figsize=FIGSIZE, layout="constrained")
        self._draw_rates(ax)
        return ax.figure

    def _draw_rates(self, ax: Any) -> None:
        minutes = max(1, int(np.ceil(self.hours * 60)))
        times = np.fromiter((ev.time for ev in self.ledger), float, len(self.ledger))
        idx = np.minimum(((times - self.start) // 60).astype(int), minutes - 1)
        families = np.array([ev.topic.split(".", 1)[0] for ev in self.ledger])
        x = (np.arange(minutes) + 0.5) / 60
        for fam in sorted(set(families.tolist())):
            counts = np.bincount(idx[families == fam], minlength=minutes)
            if counts.sum() >= 10:
                ax.plot(x, counts, lw=0.8, label=fam)
        for i in self.incidents:
            ax.axvspan(
                i["start_s"] / 3600, i["end_s"] / 3600, color="0.6", alpha=0.25,
                hatch="//", label=f"bank {i['kind']}",
            )  # fmt: skip
        # One lane per rule along the top, so overlapping alerts stay readable.
        spans = self._spans()
        lanes = {rule: n for n, rule in enumerate(dict.fromkeys(s["rule"] for s in spans))}
        labelled: set[str] = set()
        for span in spans:
            top = 0.99 - 0.06 * lanes[span["rule"]]
            ax.axvspan(
                span["start_h"], span["end_h"], ymin=top - 0.05, ymax=top, color="red",
                alpha=0.35, label=None if labelled else "alert firing",
            )  # fmt: skip
            if span["rule"] not in labelled:
                labelled.add(span["rule"])
                ax.text(
                    span["end_h"], top - 0.025, f" {span['rule']}", va="center", fontsize="x-small",
                    transform=ax.get_xaxis_transform(), color="darkred",
                )  # fmt: skip
        ax.set_yscale("symlog", linthresh=10)
        ax.set_xlim(0, self.hours)
        ax.set_xlabel(f"hours since {format_ts(self.start)[:16]}Z")
        ax.set_ylabel("events per minute")
        ax.set_title(f"Ida relief day: {self.scenario.name}, seed {self.seed}")
        ax.set_ylim(top=ax.get_ylim()[1] * 4)  # room for the alert lanes
        ax.legend(loc="upper left", fontsize="small", ncol=2)

    def save(self, out: str | Path) -> dict[str, Path]:
        """Write events.csv, alerts.csv, dashboard.csv, summary.json and
        rates.png under ``out`` (created if missing); return the paths."""
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        paths = {
            "events": out / "events.csv",
            "alerts": out / "alerts.csv",
            "dashboard": out / "dashboard.csv",
            "summary": out / "summary.json",
            "plot": out / "rates.png",
        }
        self.events.to_csv(paths["events"], index=False)
        self.alerts.to_csv(paths["alerts"], index=False)
        self.dashboard.to_csv(paths["dashboard"], index=False)
        meta = {
            "summary": self.summary,
            "params": dict(self.scenario),
            "incidents": self.incidents,
        }
        paths["summary"].write_text(json.dumps(meta, indent=2) + "\n")
        # A figure outside pyplot: nothing left open, and no GUI backend
        # is started by a command-line run.
        from matplotlib.figure import Figure

        fig = Figure(figsize=FIGSIZE, layout="constrained")
        self._draw_rates(fig.add_subplot())
        fig.savefig(paths["plot"], dpi=110)
        return paths


def _frame(ledger: list, start: float) -> pd.DataFrame:
    n = len(ledger)
    fields: dict[str, tuple[list[int], list[Any]]] = {}
    for i, ev in enumerate(ledger):
        data = ev.data
        if not isinstance(data, dict):
            data = {} if data is None else {"data": data}
        for key, value in data.items():
            field = fields.get(key)
            if field is None:
                field = fields[key] = ([], [])
            field[0].append(i)
            field[1].append(value)
    times = np.fromiter((ev.time for ev in ledger), float, n)
    columns: dict[str, Any] = {
        "ts": _iso(times),
        "time": pd.to_datetime(times, unit="s", utc=True),
        "hour": (times - start) / 3600,
        "topic": pd.Categorical([ev.topic for ev in ledger]),
        "src": pd.Categorical([ev.src for ev in ledger]),
        "id": [ev.id for ev in ledger],
    }
    for key, (rows, values) in fields.items():
        columns[f"data.{key}" if key in columns else key] = _column(n, rows, values)
    return pd.DataFrame(columns)


def _column(n: int, rows: list[int], values: list[Any]) -> Any:
    """One data field as a column of ``n`` rows, empty where events lack it:
    whole numbers as nullable Int64, other numbers as float, the rest as is."""
    kinds = set(map(type, values))
    idx = np.asarray(rows, dtype=np.intp)
    if kinds <= {int, float} and kinds:
        if kinds == {int}:
            data = np.zeros(n, dtype=np.int64)
            data[idx] = values
            mask = np.ones(n, dtype=bool)
            mask[idx] = False
            return pd.arrays.IntegerArray(data, mask)
        data = np.full(n, np.nan)
        data[idx] = values
        return data
    out: list[Any] = [None] * n
    for i, value in zip(rows, values, strict=True):
        out[i] = value
    return out


def _iso(times: np.ndarray) -> np.ndarray:
    """Event timestamps as ``Event.ts`` writes them, for many at once."""
    ms = np.round(times * 1000).astype("int64").astype("datetime64[ms]")
    return np.char.add(np.datetime_as_string(ms, unit="ms"), "Z")


def _pct(values: np.ndarray, q: float) -> float | None:
    if values.size == 0:
        return None
    return round(float(np.percentile(values, q)), 3)


def _incident_text(incident: dict[str, Any] | None) -> str | None:
    if incident is None:
        return None
    return f"bank {incident['kind']} {incident['start_s'] / 3600:g}h-{incident['end_s'] / 3600:g}h"


def _show(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.3f}".rstrip("0").rstrip(".") if value != int(value) else f"{value:,.0f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def _data(data: Any) -> str:
    if isinstance(data, dict):
        return " ".join(f"{k}={v}" for k, v in data.items())
    return "" if data is None else str(data)
