"""The alert timeline: notices as bus data and as a pandas DataFrame.

A notice is recorded with epoch seconds (``at``, ``since``). On the bus it
travels as JSON with ISO-8601 text; in a DataFrame the times become UTC
timestamps. Both views have the same fields, so what a subscriber to
``alerts.*`` sees, what ``Monitor.timeline()`` shows and what ``backtest()``
returns line up column for column.
"""

from __future__ import annotations

from typing import Any

from ..event import format_ts

__all__ = ["COLUMNS", "to_data", "frame"]

COLUMNS = (
    "ts",
    "rule",
    "state",
    "value",
    "bound",
    "window",
    "group",
    "since",
    "duration",
    "repeat",
    "event_ids",
    "labels",
    "kind",
    "summary",
)
"""The timeline's columns, in order. ``ts`` is when the notice applies (the
instant the condition changed); ``duration`` the seconds since the incident
started."""


def to_data(rec: dict[str, Any]) -> dict[str, Any]:
    """The JSON data published on ``alerts.<rule>`` for notice ``rec``."""
    out = {k: rec[k] for k in COLUMNS[1:] if k not in ("since", "duration")}
    out["at"] = format_ts(rec["at"])
    out["since"] = format_ts(rec["since"])
    out["duration"] = round(rec["at"] - rec["since"], 6)
    return out


def frame(records: list[dict[str, Any]]):
    """The notices as a DataFrame with :data:`COLUMNS` (empty but typed when none)."""
    try:
        import pandas as pd
    except ImportError:  # pragma: no cover - pandas is in the sim extra
        raise ImportError(
            "the alert timeline is a pandas DataFrame; install it with "
            "pip install pandas (in a clone of the kit: pip install -e '.[sim]')"
        ) from None
    rows = [
        {
            **rec,
            "ts": rec["at"],
            "duration": round(rec["at"] - rec["since"], 6),
            "event_ids": list(rec["event_ids"]),
            "labels": dict(rec["labels"]),
        }
        for rec in records
    ]
    df = pd.DataFrame(rows, columns=list(COLUMNS))
    for col in ("ts", "since"):
        df[col] = pd.to_datetime(df[col].astype("float64"), unit="s", utc=True)
    df["repeat"] = df["repeat"].astype("int64")
    df["duration"] = df["duration"].astype("float64")
    return df
