"""Pictures of a day and of a sweep, in fixed colours.

Every topic family and incident kind has its own colour here, so the same
thing looks the same in every figure and every run. True alerts are solid
red bars; false alerts are hatched grey bars, so the eye can count them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from hms_bus.event import format_ts

__all__ = [
    "FAMILY_COLOURS",
    "INCIDENT_COLOURS",
    "DayView",
    "draw_day",
    "draw_compact",
    "draw_sweep",
]

FIGSIZE = (11, 9.5)
"""Width and height of the full day figure, in inches."""

FAMILY_COLOURS = {
    "portal": "#1f77b4",
    "hlt": "#9467bd",
    "ach": "#ff7f0e",
    "bank": "#8c564b",
    "payments": "#2ca02c",
    "bridge": "#17becf",
    "service": "#bcbd22",
    "proposal": "#7f7f7f",
    "alerts": "#d62728",
    "pager": "#e377c2",
    "bus": "#000000",
}
"""One colour per topic family (the topic's first token); others are grey."""

SENT, FAILED = "#2ca02c", "#d62728"
TRUE_ALERT, FALSE_ALERT = "#d62728", "#7f7f7f"
INCIDENT_COLOURS = {
    "outage": "#7f7f7f",
    "slowdown": "#e6a23c",
    "link_drop": "#17becf",
    "flood": "#9467bd",
    "understaffed": "#bcbd22",
}
"""One shade per incident kind."""

SMOOTH_MIN = 5  # minutes of the rolling mean drawn over per-minute counts


@dataclass
class DayView:
    """What the day pictures need, read once from a Result's ledger."""

    title: str
    hours: float
    start: float
    minutes: int
    families: dict[str, np.ndarray]  # family -> events per minute
    sent: np.ndarray  # payments sent per minute
    failed: np.ndarray  # payments failed per minute
    wait_t: np.ndarray  # hours of each HLT check
    wait_s: np.ndarray  # its wait, in seconds
    spans: list[dict[str, Any]]  # rows of Result.spans
    incidents: list[Any]  # Result.scheduled

    @classmethod
    def of(cls, result: Any) -> DayView:
        ledger, start, hours = result.ledger, result.start, result.hours
        minutes = max(1, int(np.ceil(hours * 60)))
        n = len(ledger)
        times = np.fromiter((ev.time for ev in ledger), float, n) - start
        idx = np.minimum((times // 60).astype(int), minutes - 1)
        topics = np.array([ev.topic for ev in ledger], dtype=object)
        fams = np.array([t.split(".", 1)[0] for t in topics.tolist()], dtype=object)
        families = {
            fam: np.bincount(idx[fams == fam], minlength=minutes)
            for fam in sorted(set(fams.tolist()))
        }
        sent = np.bincount(idx[topics == "payments.sent"], minlength=minutes)
        failed = np.bincount(idx[topics == "payments.failed"], minlength=minutes)
        checked = [
            (ev.time - start, ev.data["wait_ms"]) for ev in ledger if ev.topic == "hlt.checked"
        ]
        wait = np.array(checked, dtype=float).reshape(-1, 2)
        changed = result.scenario.changed_text()
        title = f"Ida relief day: {result.scenario.name}, seed {result.seed}"
        if changed:
            title += f"; changed: {changed}"
        return cls(
            title=title,
            hours=hours,
            start=start,
            minutes=minutes,
            families=families,
            sent=sent,
            failed=failed,
            wait_t=wait[:, 0] / 3600,
            wait_s=wait[:, 1] / 1000,
            spans=result.spans.to_dict("records"),
            incidents=result.scheduled,
        )

    @property
    def x(self) -> np.ndarray:
        return (np.arange(self.minutes) + 0.5) / 60


def _smooth(counts: np.ndarray) -> np.ndarray:
    """A centred rolling mean over ``SMOOTH_MIN`` minutes (shorter at the ends)."""
    half = SMOOTH_MIN // 2
    sums = np.concatenate([[0.0], np.cumsum(counts, dtype=float)])
    idx = np.arange(len(counts))
    lo, hi = np.maximum(idx - half, 0), np.minimum(idx + half + 1, len(counts))
    return (sums[hi] - sums[lo]) / (hi - lo)


def _shade(ax: Any, view: DayView, *, label: bool) -> None:
    for inc in view.incidents:
        ax.axvspan(
            inc.start_h, min(inc.end_h, view.hours), color=INCIDENT_COLOURS[inc.kind],
            alpha=0.2, lw=0, label=inc.title if label else None,
        )  # fmt: skip


def _lanes(ax: Any, view: DayView, *, bottom: float = 0.0, height: float = 1.0) -> None:
    """One lane per rule; true alerts solid, false alerts hatched."""
    rules = list(dict.fromkeys(s["rule"] for s in view.spans))
    if not rules:
        ax.text(0.5, bottom + height / 2, "no alert fired", transform=ax.transAxes,
                ha="center", va="center", color="0.4")  # fmt: skip
        return
    step = height / len(rules)
    seen = set()
    for span in view.spans:
        lane = rules.index(span["rule"])
        lo = bottom + height - (lane + 1) * step
        true = span["true_alert"]
        kind = "true alert" if true else "false alert"
        ax.axvspan(
            span["start_h"], span["end_h"], ymin=lo + 0.15 * step,
            ymax=lo + 0.85 * step, facecolor=TRUE_ALERT if true else "none",
            edgecolor=TRUE_ALERT if true else FALSE_ALERT, hatch=None if true else "////",
            lw=0.8, label=None if kind in seen else kind,
        )  # fmt: skip
        seen.add(kind)
    for lane, rule in enumerate(rules):
        ax.text(
            1.002, bottom + height - (lane + 0.5) * step, rule, transform=ax.transAxes,
            va="center", ha="left", fontsize="x-small",
        )  # fmt: skip


def draw_day(fig: Any, view: DayView) -> None:
    """The full day figure: payments, one panel per busy family, HLT wait, alert lanes."""
    axes = fig.subplot_mosaic(
        [["pay", "pay"], ["portal", "hlt"], ["ach", "bank"], ["wait", "wait"],
         ["lanes", "lanes"]],
        sharex=True, height_ratios=[2.2, 1.4, 1.4, 1.2, 1.3],
    )  # fmt: skip
    pay, lanes = axes["pay"], axes["lanes"]
    x = view.x
    pay.plot(x, _smooth(view.sent), color=SENT, lw=1.2, label="payments sent")
    pay.plot(x, _smooth(view.failed), color=FAILED, lw=1.2, label="payments failed")
    pay.set_ylabel("payments / min")
    pay.set_title("The governor's view: payments sent and failed", fontsize="medium", loc="left")
    for fam, what in (("portal", "requests"), ("hlt", "HLT checks, rejections, errors"),
                      ("ach", "ACH events"), ("bank", "bank answers")):  # fmt: skip
        ax = axes[fam]
        counts = view.families.get(fam, np.zeros(view.minutes))
        ax.plot(x, _smooth(counts), color=FAMILY_COLOURS[fam], lw=1)
        ax.set_title(f"{fam}.*: {what} / min", fontsize="small", loc="left")
    _wait_panel(axes["wait"], view)
    _lanes(lanes, view)
    lanes.set_yticks([])
    lanes.set_ylabel("alerts", fontsize="small")
    for ax in axes.values():
        _shade(ax, view, label=ax is pay)
        ax.set_xlim(0, view.hours)
    for ax in (pay, axes["portal"], axes["hlt"], axes["ach"], axes["bank"]):
        ax.set_ylim(bottom=-0.03 * ax.get_ylim()[1])  # a line at 0 stays visible
    lanes.set_ylim(0, 1)
    handles, labels = pay.get_legend_handles_labels()
    lh, ll = lanes.get_legend_handles_labels()
    pay.legend(handles + lh, labels + ll, loc="upper left", fontsize="x-small", ncol=3)
    for name in ("lanes", "ach", "bank"):
        axes[name].tick_params(labelbottom=True)
    lanes.set_xlabel(f"hours since {format_ts(view.start)[:16]}Z (5-minute rolling means)")
    fig.suptitle(view.title)


def _wait_panel(ax: Any, view: DayView) -> None:
    """p95 of citizens' wait for HMS-HLT per 10 minutes: the backlog."""
    bins = max(1, int(np.ceil(view.hours * 6)))
    edges = np.linspace(0, bins / 6, bins + 1)
    which = np.clip(np.searchsorted(edges, view.wait_t, side="right") - 1, 0, bins - 1)
    p95 = np.full(bins, np.nan)
    for b in np.unique(which):
        p95[b] = np.percentile(view.wait_s[which == b], 95)
    ax.step(edges[:-1], p95, where="post", color=FAMILY_COLOURS["hlt"], lw=1)
    top = np.nanmax(p95) if np.isfinite(p95).any() else 0.0
    top = max(1.0, top * 1.1)
    ax.set_ylim(-0.03 * top, top)  # a calm day reads as a flat line just above the axis
    ax.set_title("citizens' wait for an HMS-HLT case worker: p95 per 10 min (s)",
                 fontsize="small", loc="left")  # fmt: skip


def draw_compact(ax: Any, view: DayView) -> None:
    """One axes: events per minute by family (fixed colours), incidents, alert lanes."""
    x = view.x
    for fam, counts in view.families.items():
        if counts.sum() >= 10:
            ax.plot(x, _smooth(counts), lw=0.9, color=FAMILY_COLOURS.get(fam, "0.5"), label=fam)
    _shade(ax, view, label=True)
    ax.set_yscale("symlog", linthresh=10)
    ax.set_xlim(0, view.hours)
    top = ax.get_ylim()[1]
    ax.set_ylim(0, top * 6)  # room above the lines for the alert lanes
    _lanes(ax, view, bottom=0.78, height=0.21)
    ax.set_xlabel(f"hours since {format_ts(view.start)[:16]}Z")
    ax.set_ylabel("events per minute (5-min mean)")
    ax.set_title(view.title, fontsize="medium")
    ax.legend(loc="upper left", fontsize="x-small", ncol=4, bbox_to_anchor=(0, 0.77))


def draw_sweep(fig: Any, sweep: Any) -> None:
    """Time to detect against false alerts for every setting, spread over seeds,
    and payments sent and failed per setting."""
    import textwrap

    left, right = fig.subplots(1, 2, width_ratios=[3, 2])
    table, names = sweep.table, sweep.names
    xcol = "baseline_false_alerts_mean" if sweep.baseline else "false_alerts_mean"
    for scenario, rows in table.groupby("scenario", sort=False):
        if rows["incidents"].sum() == 0:
            continue
        x, y = rows[xcol], rows["detect_median_s"]
        yerr = [y - rows["detect_min_s"], rows["detect_max_s"] - y]
        line = left.errorbar(x, y, yerr=yerr, fmt="o-", capsize=3, label=scenario)
        # Settings that land on the same point share one label.
        labels: dict[tuple[float, float], list[str]] = {}
        for xi, yi, (_, row) in zip(x, y, rows.iterrows(), strict=True):
            labels.setdefault((xi, yi), []).append(_setting(row, names))
        for (xi, yi), texts in labels.items():
            left.annotate(" " + " | ".join(texts), (xi, yi), fontsize="x-small",
                          color=line[0].get_color())  # fmt: skip
    base = f" on {sweep.baseline}" if sweep.baseline else ""
    left.set_xlabel(f"false alerts per run{base} (mean over seeds)")
    left.set_ylabel("time to detect (s): median, bars min-max")
    left.set_title("Hear it sooner, or cry wolf less?", fontsize="medium", loc="left")
    left.set_xlim(left=-0.05 * max(1.0, float(table[xcol].max())),
                  right=max(1.0, float(table[xcol].max())) * 1.3)  # fmt: skip
    if left.get_legend_handles_labels()[0]:
        left.legend(fontsize="small")
    labels = [f"{sc}\n{_setting(row, names)}" for sc, (_, row) in
              zip(table["scenario"], table.iterrows(), strict=True)]  # fmt: skip
    ypos = np.arange(len(table))
    right.barh(ypos, table["payments_sent_mean"], color=SENT, label="sent")
    right.barh(ypos, table["payments_failed_mean"], left=table["payments_sent_mean"],
               color=FAILED, label="failed")  # fmt: skip
    right.set_yticks(ypos, labels, fontsize="x-small")
    right.invert_yaxis()
    right.set_xlabel("payments per run (mean over seeds)")
    right.legend(fontsize="small", loc="lower right")
    fig.suptitle("\n".join(textwrap.wrap(sweep.title(), 120)), fontsize="medium")


def _setting(row: Any, names: list[str]) -> str:
    return ", ".join(f"{n.split('.', 1)[-1]}={_g(row[n])}" for n in names)


def _g(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)
