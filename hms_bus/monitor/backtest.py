"""Backtest: run rules over recorded events and get the alert timeline back.

``backtest(rules, events)`` feeds the events to the same
:class:`~hms_bus.monitor.engine.Engine` the live monitor uses, in the order
given, and publishes nothing. For the same events, the same start and the
same end, the timeline equals the live monitor's, row for row.

Where it stops: with ``until``, watching stops at that instant exactly as
when a live monitor is closed then: every instant before it is decided, and
``until`` itself only as far as events stamped ``until`` decide it (the next
heartbeat might have arrived at that very instant). Without ``until`` the
recording is taken as complete, so its last instant is decided too.

``events`` is a list of :class:`~hms_bus.Event` (what ``replay(...)``
returns) or a pandas DataFrame with at least the columns ``ts`` (timestamps,
ISO text or epoch seconds), ``topic`` and ``data``; ``src`` and ``id`` are
used when present. A ``time`` column of epoch seconds, when present, is
preferred over ``ts`` because it keeps the bus's full precision.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from ..clock import to_epoch
from ..event import Event
from .engine import Engine
from .rules import Rule
from .timeline import frame

__all__ = ["backtest", "run"]


class Row:
    """A recorded event from a DataFrame, shaped like an Event for the engine."""

    __slots__ = ("topic", "data", "src", "id")

    def __init__(self, topic: str, data: Any, src: str, id: str) -> None:
        self.topic = topic
        self.data = data
        self.src = src
        self.id = id


def backtest(
    rules: Iterable[Rule] | Rule,
    events: Any,
    *,
    start: datetime | str | float | None = None,
    until: datetime | str | float | None = None,
    pending: bool = False,
):
    """Run ``rules`` over ``events``; return the alert timeline as a DataFrame.

    :param start: when watching began (absence rules warm up for a window
        from here); the first event's time unless told. Pass
        ``monitor.started`` to reproduce a live monitor.
    :param until: let time run on to here after the last event, so that
        resolves, absences and repeats after it happen too; watching stops
        at ``until`` as a closed monitor's does (see the module docstring).
    :param pending: also show the ``pending`` and ``cancelled`` rows of rules
        with ``for_``, as ``Monitor.timeline(pending=True)`` does.

    The columns are :data:`~hms_bus.monitor.timeline.COLUMNS`, ``at`` first.
    The rules' counters (as ``Monitor.stats()`` gives them) are in
    ``df.attrs["stats"]``.
    """
    engine = run(rules, events, start=start, until=until)
    df = frame(engine.history if pending else engine.records)
    df.attrs["stats"] = engine.stats()
    return df


def run(rules: Any, events: Any, *, start: Any = None, until: Any = None) -> Engine:
    """Like :func:`backtest` but return the finished engine (records and stats)."""
    times, items = _rows(events)
    if start is None:
        start = times[0] if times else 0.0
    engine = Engine(rules, to_epoch(start))
    feed = engine.feed
    for t, ev in zip(times, items, strict=True):
        feed(t, ev)
    if until is None:
        engine.settle()  # a recording is complete: nothing more can come at its last instant
    else:
        end = to_epoch(until)
        if end < engine.now:
            raise ValueError(
                f"until={until!r} is before the last event; give a time at or after it"
            )
        engine.advance(end)
    return engine


def _rows(events: Any) -> tuple[list[float], list[Any]]:
    if _is_frame(events):
        return _frame_rows(events)
    if isinstance(events, (str, bytes, dict)) or not isinstance(events, Iterable):
        raise TypeError(
            f"events must be a list of Events (from replay()) or a DataFrame with "
            f"ts/topic/data columns, got {type(events).__name__}"
        )
    items = list(events)
    for i, ev in enumerate(items):
        if not isinstance(ev, Event):
            raise TypeError(
                f"events[{i}] is {ev!r}, not an Event; pass replay(...)'s list or a DataFrame"
            )
    return [ev.time for ev in items], items


def _is_frame(obj: Any) -> bool:
    return type(obj).__name__ == "DataFrame" and hasattr(obj, "columns")


def _frame_rows(df: Any) -> tuple[list[float], list[Any]]:
    import pandas as pd

    missing = [c for c in ("topic", "data") if c not in df.columns]
    if "ts" not in df.columns and "time" not in df.columns:
        missing.insert(0, "ts")
    if missing:
        raise ValueError(
            f"the DataFrame lacks the column(s) {', '.join(missing)}; it needs ts (or time), "
            f"topic and data, as replay() events give them"
        )
    if "time" in df.columns:
        times = [float(t) for t in df["time"]]
    else:
        ts = df["ts"]
        if pd.api.types.is_numeric_dtype(ts):
            times = [float(t) for t in ts]
        else:
            stamps = pd.to_datetime(ts, utc=True)
            times = [t.timestamp() for t in stamps]
    n = len(df)
    topics = list(df["topic"])
    datas = list(df["data"])
    srcs = list(df["src"]) if "src" in df.columns else ["backtest"] * n
    ids = list(df["id"]) if "id" in df.columns else [f"row-{i}" for i in range(n)]
    items = [Row(*r) for r in zip(topics, datas, srcs, ids, strict=True)]
    return times, items
