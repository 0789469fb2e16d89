"""Scoring a day: what the events add up to, and how well the alerts matched the incidents.

Two inputs, each with one function, so a live run, a sweep that backtests
recorded events and ``python -m simulations backtest`` all score alike:

* :func:`tally` counts the events (requests, payments, waits...);
* :func:`spans` turns an alert timeline (``Monitor.timeline()`` or
  ``backtest()``, columns :data:`hms_bus.monitor.timeline.COLUMNS`) into
  firing spans, and :func:`score_incidents` matches them with the incidents.

An alert *detects* an incident when it starts firing during it or up to
``score.grace_s`` after it ends, or when it is still firing as the incident
starts (an alert for an earlier incident that overlaps or ends just before:
the incident is detected at once, time to detect 0). An alert that does
neither for any incident is a *false alert*.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any

import numpy as np

from hms_bus.monitor.timeline import COLUMNS

from .incidents import Incident

__all__ = ["SUMMARY_KEYS", "INSTANT", "Tally", "tally", "spans", "score_incidents", "summarise"]

INSTANT = COLUMNS[0]
"""The timeline column holding the instant a notice applies (the change instant)."""

_TOPIC_DATA = attrgetter("topic", "data")

MONITOR_TOPICS = ("alerts.", "pager.")
"""Events the monitor and the pager add to a day; everything else is the simulation's."""

SUMMARY_KEYS = (
    "scenario",
    "seed",
    "hours",
    "events",
    "requests",
    "rejected",
    "approved",
    "payments_sent",
    "payments_failed",
    "payments_in_flight",
    "dollars_disbursed",
    "payment_p50_s",
    "payment_p95_s",
    "hlt_wait_p95_s",
    "hlt_wait_max_s",
    "incidents",
    "detected",
    "incident",
    "time_to_detect_s",
    "detected_by",
    "alerts_fired",
    "false_alerts",
    "pages",
    "subscriber_errors",
)
"""The summary's keys, in the order they print.

``requests`` counts portal requests (a flood's bogus ones too); ``rejected``
the bogus ones HMS-HLT turned away; ``approved`` the checks that found a
medical evacuation. Every approved request ends as ``payments_sent``,
``payments_failed`` or, when the run stops first, ``payments_in_flight``.
``payment_p50_s``/``payment_p95_s`` measure sent payments from ACH's start
to the bank's answer, retries included; ``hlt_wait_p95_s``/``hlt_wait_max_s``
how long citizens waited for an HMS-HLT case worker (the backlog).

``incidents`` counts the scheduled incidents in the run and ``detected`` those
an alert caught; ``incident`` lists them (``bank outage 14h-15.5h, ...``) and
``detected_by`` names, in the same order, the rule that caught each (or
``missed``). ``time_to_detect_s`` is the longest time to detect among the
caught ones (for one incident, its time). ``alerts_fired`` counts firing
spans, ``false_alerts`` those outside every incident (plus grace), ``pages``
the pager's pages. ``subscriber_errors`` counts ``bus.subscriber_error``
events: a subscriber that raised, which should be 0.
"""


@dataclass
class Tally:
    """What a day's events add up to (monitor and pager events apart)."""

    events: int = 0
    monitor_events: int = 0
    requests: int = 0
    rejected: int = 0
    approved: int = 0
    initiated: int = 0
    sent: int = 0
    failed: int = 0
    dollars: int = 0
    subscriber_errors: int = 0
    payment_ms: list[float] = field(default_factory=list)
    hlt_wait_ms: list[float] = field(default_factory=list)


def tally_events(events: Iterable[Any]) -> Tally:
    """Count :class:`hms_bus.Event` objects (a day's ledger)."""
    return tally(map(_TOPIC_DATA, events))


def tally(events: Iterable[tuple[str, Any]]) -> Tally:
    """Count ``(topic, data)`` pairs, e.g. ``zip(df["topic"], df["data"])``."""
    t = Tally()
    payment_ms, waits = t.payment_ms, t.hlt_wait_ms
    n = 0
    for topic, data in events:
        n += 1
        if topic == "portal.request":
            t.requests += 1
        elif topic == "hlt.checked":
            waits.append(data["wait_ms"])
            if data["outcome"] == "evacuated":
                t.approved += 1
        elif topic == "ach.initiated":
            t.initiated += 1
        elif topic == "payments.sent":
            t.sent += 1
            t.dollars += data["amount"]
            payment_ms.append(data["latency_ms"])
        elif topic == "payments.failed":
            t.failed += 1
        elif topic == "hlt.rejected":
            t.rejected += 1
        elif topic == "bus.subscriber_error":
            t.subscriber_errors += 1
        elif topic.startswith(MONITOR_TOPICS):
            t.monitor_events += 1
    t.events = n
    return t


def spans(timeline: Any, start: float, hours: float) -> list[dict[str, Any]]:
    """One dict per firing alert (rule, group, start_s, end_s, resolved, and
    ``row``, the timeline row that started it) from an alert timeline
    DataFrame; times in seconds since ``start``."""
    if len(timeline) == 0:
        return []
    times = epoch_seconds(timeline[INSTANT]) - start
    out: list[dict[str, Any]] = []
    open_: dict[tuple, dict[str, Any]] = {}
    rules, groups, states = timeline["rule"], timeline["group"], timeline["state"]
    rows = zip(times.tolist(), rules, groups, states, strict=True)
    for row, (t, rule, group, state) in enumerate(rows):
        key = (rule, group)
        if state == "firing":
            if key not in open_:
                span = {"rule": rule, "group": group, "start_s": t, "end_s": None, "row": row}
                span["resolved"] = False
                open_[key] = span
                out.append(span)
        elif state != "pending" and key in open_:
            span = open_.pop(key)
            span["end_s"] = t
            span["resolved"] = state == "resolved"
    for span in open_.values():
        span["end_s"] = hours * 3600.0
    # By start, then rule: the same order however the timeline's rows were interleaved.
    return sorted(out, key=lambda s: (s["start_s"], s["rule"], str(s["group"])))


def score_incidents(
    incidents: Sequence[Incident], found: list[dict[str, Any]], grace_s: float
) -> list[dict[str, Any]]:
    """Per incident: detected, time_to_detect_s, detected_by and how many alerts
    fired in it. Marks each span's ``true_alert``."""
    rows = []
    for span in found:
        span["true_alert"] = any(_during(span, i, grace_s) for i in incidents)
    for inc in incidents:
        inside = [s for s in found if _during(s, inc, grace_s)]
        first = min(inside, key=lambda s: max(s["start_s"], inc.start_s), default=None)
        rows.append(
            {
                "incident": inc.title,
                "kind": inc.kind,
                "start_h": inc.start_h,
                "end_h": inc.end_h,
                "detected": first is not None,
                "time_to_detect_s": None
                if first is None
                else round(max(first["start_s"] - inc.start_s, 0.0), 3),
                "detected_by": "missed" if first is None else first["rule"],
                "alerts": len(inside),
            }
        )
    return rows


def _during(span: dict[str, Any], inc: Incident, grace_s: float) -> bool:
    """Whether ``span`` belongs to ``inc``: it starts firing during the incident or
    up to ``grace_s`` after it, or it is already firing when the incident starts
    (an alert for an earlier, overlapping or back-to-back incident)."""
    if inc.start_s <= span["start_s"] <= inc.end_s + grace_s:
        return True
    end = span["end_s"]
    return span["start_s"] < inc.start_s and (end is None or end > inc.start_s)


def summarise(
    *,
    scenario: str,
    seed: int,
    hours: float,
    counts: Tally,
    incidents: Sequence[Incident],
    scores: list[dict[str, Any]],
    found: list[dict[str, Any]],
    notices: int,
    pages: int,
) -> dict[str, Any]:
    """The summary dict (keys in :data:`SUMMARY_KEYS` order).

    ``notices`` and ``pages`` are how many alert notices and pages the day's
    monitor made, which with the simulation's own events give ``events``.
    """
    lat = np.asarray(counts.payment_ms, dtype=float) / 1000.0
    waits = np.asarray(counts.hlt_wait_ms, dtype=float) / 1000.0
    caught = [s for s in scores if s["detected"]]
    return {
        "scenario": scenario,
        "seed": seed,
        "hours": hours,
        "events": counts.events - counts.monitor_events + notices + pages,
        "requests": counts.requests,
        "rejected": counts.rejected,
        "approved": counts.approved,
        "payments_sent": counts.sent,
        "payments_failed": counts.failed,
        "payments_in_flight": counts.initiated - counts.sent - counts.failed,
        "dollars_disbursed": counts.dollars,
        "payment_p50_s": _pct(lat, 50),
        "payment_p95_s": _pct(lat, 95),
        "hlt_wait_p95_s": _pct(waits, 95),
        "hlt_wait_max_s": round(float(waits.max()), 3) if waits.size else None,
        "incidents": len(incidents),
        "detected": len(caught),
        "incident": ", ".join(i.text() for i in incidents) or None,
        "time_to_detect_s": max((s["time_to_detect_s"] for s in caught), default=None),
        "detected_by": ", ".join(s["detected_by"] for s in scores) or None,
        "alerts_fired": len(found),
        "false_alerts": sum(1 for s in found if not s["true_alert"]),
        "pages": pages,
        "subscriber_errors": counts.subscriber_errors,
    }


def firing_notices(timeline: Any) -> int:
    """How many notices in ``timeline`` start or repeat a firing (what the pager pages)."""
    return int((timeline["state"] == "firing").sum()) if len(timeline) else 0


def epoch_seconds(col: Any) -> np.ndarray:
    """A column of UTC timestamps as epoch seconds."""
    import pandas as pd

    return (col - pd.Timestamp(0, tz="UTC")).dt.total_seconds().to_numpy()


def _pct(values: np.ndarray, q: float) -> float | None:
    if values.size == 0:
        return None
    return round(float(np.percentile(values, q)), 3)
