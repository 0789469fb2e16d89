"""The alert timeline: notices as bus data and as a pandas DataFrame.

A notice is recorded with epoch seconds (``at``, ``since``). On the bus, to
receivers and in files it travels as JSON with ISO-8601 text; in a DataFrame
the times are UTC ``pandas.Timestamp`` values. Both views have the same
fields under the same names, so what a subscriber to ``alerts.*`` sees, what
``Monitor.timeline()`` shows and what ``backtest()`` returns line up column
for column.

Time has one name per meaning: ``at`` is the instant the alert's state
changed; ``since`` the instant the incident started. ``ts`` is kept for
what it means on every event, when the bus *published* it: an
``alerts.<rule>`` event's own ``ts`` can be later than its ``at`` (a resolve
is known only once time has moved past it).
"""

from __future__ import annotations

from typing import Any

from ..event import format_ts

__all__ = ["COLUMNS", "TIME_COLUMNS", "TIME_DTYPE", "to_data", "frame", "timestamps"]

COLUMNS = (
    "at",
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
    "reason",
)
"""The timeline's columns, in order, which are also the keys of a notice's data.

``at`` is when the notice applies (the instant the condition changed);
``state`` is ``firing`` or ``resolved`` (and ``ended`` for the notice a closing
monitor sends; ``pending`` and ``cancelled`` for the rows of
``timeline(pending=True)``); ``value`` and ``bound`` are explained per rule
kind in :mod:`hms_bus.monitor.rules`; ``since`` is when the incident started
and ``duration`` the seconds from ``since`` to ``at``; ``repeat`` numbers
re-sent firing notices (0 for the first); ``event_ids`` are the newest events
behind the value; ``reason`` says why a notice came late or at all (``monitor
closed``, ``silence 3 ended``), empty for plain ones."""

TIME_COLUMNS = ("at", "since")
"""Columns holding instants: UTC timestamps in a DataFrame, ISO-8601 text in data."""


TIME_DTYPE = "datetime64[ns, UTC]"
"""The one dtype of every instant in the monitor's DataFrames."""


def timestamps(seconds: Any):
    """Epoch seconds (a sequence) as a pandas Series of UTC timestamps (:data:`TIME_DTYPE`).

    Rounded to the microsecond: a float cannot hold 14:00:02.507 exactly, and
    a learner should not read ``14:00:02.506999969``.
    """
    import pandas as pd

    series = pd.Series(seconds, dtype="float64")
    return pd.to_datetime(series, unit="s", utc=True).astype(TIME_DTYPE).dt.round("us")


def to_data(rec: dict[str, Any]) -> dict[str, Any]:
    """The JSON data published on ``alerts.<rule>`` (and sent to receivers) for ``rec``."""
    out = {k: rec.get(k, "") for k in COLUMNS if k not in ("duration", "event_ids", "labels")}
    out["at"] = format_ts(rec["at"])
    out["since"] = format_ts(rec["since"])
    out["duration"] = round(rec["at"] - rec["since"], 6)
    out["event_ids"] = list(rec["event_ids"])
    out["labels"] = dict(rec["labels"])
    return {k: out[k] for k in COLUMNS}


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
            "duration": round(rec["at"] - rec["since"], 6),
            "event_ids": list(rec["event_ids"]),
            "labels": dict(rec["labels"]),
        }
        for rec in records
    ]
    df = pd.DataFrame(rows, columns=list(COLUMNS))
    for col in TIME_COLUMNS:
        df[col] = timestamps(df[col].to_numpy(dtype="float64"))
    df["repeat"] = df["repeat"].astype("int64")
    df["duration"] = df["duration"].astype("float64")
    df["reason"] = df["reason"].astype("object")
    return df
