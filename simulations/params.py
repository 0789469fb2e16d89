"""The Ida day's tunable parameters: each one's default, unit, range and meaning, once.

Parameters have dotted names (``bank.failure_rate``). Scenario files, the
``--set NAME=VALUE`` option and :meth:`Scenario.override` change them; the
model (:mod:`simulations.ida`) reads them by name. Incidents are parameters
too: each kind in :data:`KINDS` has a start, a length and its own fields,
and the first incident of a kind is addressed as ``outage.start_h``, the
second as ``outage.2.start_h``, and so on.
"""

from __future__ import annotations

import difflib
import math
import re
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Param", "Kind", "PARAMS", "KINDS", "lookup", "suggest", "slot_name", "parse_slot"]

MAX_H = 24 * 30
"""The longest a run, an incident or a window may last, in hours (a month)."""


@dataclass(frozen=True)
class Param:
    """One tunable number: default, unit, meaning and the allowed range."""

    default: float
    unit: str
    help: str
    lo: float = 0
    hi: float = MAX_H
    whole: bool = False  # True: whole numbers only (workers, retries, counts)
    open_lo: bool = False  # True: ``lo`` itself is not allowed

    def check(self, name: str, value: Any) -> float:
        """``value`` as this parameter's type, or a ValueError naming the
        parameter, the value and what is allowed."""
        if isinstance(value, str):
            value = _parse(name, value, self)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(
                f"{name} must be a number ({self.range_text()}), got {value!r} "
                f"of type {type(value).__name__}"
            )
        too_low = value <= self.lo if self.open_lo else value < self.lo
        if not math.isfinite(value) or too_low or value > self.hi:
            raise ValueError(f"{name}={value!r} is out of range; allowed: {self.range_text()}")
        if self.whole:
            if value != int(value):
                raise ValueError(
                    f"{name} must be a whole number ({self.range_text()}), got {value!r}"
                )
            return int(value)
        return float(value)

    def range_text(self) -> str:
        left = "(" if self.open_lo else "["
        unit = f" {self.unit}" if self.unit else ""
        kind = ", whole" if self.whole else ""
        return f"{left}{_num(self.lo)}, {_num(self.hi)}]{unit}{kind}"


def _num(x: float) -> str:
    return f"{x:g}" if isinstance(x, float) else str(x)


def _parse(name: str, text: str, param: Param) -> float:
    try:
        value = float(text.strip())
    except ValueError:
        raise ValueError(
            f"{name}={text!r} is not a number; allowed: {param.range_text()}"
        ) from None
    return int(value) if param.whole and value.is_integer() else value


P = Param
PARAMS: dict[str, Param] = {
    "citizens.per_hour": P(1000, "requests/h", "requests per hour when the day profile is 1.0",
                           hi=1e6),
    "citizens.surge": P(3.0, "x", "requests multiply by this right after landfall", lo=1, hi=50),
    "citizens.surge_hours": P(6, "h", "the surge's extra decays by a factor e in this time",
                              open_lo=True),
    "landfall.at_h": P(12, "h", "hours after midnight when the storm makes landfall"),
    "hlt.workers": P(8, "", "HMS-HLT case workers checking records in parallel", lo=1,
                     hi=100_000, whole=True),
    "hlt.service_s": P(2.0, "s", "mean time to check one record (exponential)", hi=3600,
                       open_lo=True),
    "hlt.evacuated": P(0.7, "", "share of citizens with a medical evacuation on record", hi=1),
    "hlt.error_rate": P(0.002, "", "share of checks where the records system fails", hi=1),
    "ach.amount": P(1000, "$", "dollars wired per approved request", lo=1, hi=1_000_000,
                    whole=True),
    "ach.timeout_s": P(30, "s", "how long ACH waits for one bank call", hi=3600, open_lo=True),
    "ach.retries": P(2, "", "extra attempts after a failed one", hi=10, whole=True),
    "ach.backoff_s": P(5, "s", "wait before the first retry; doubles each time", hi=3600),
    "bank.lines": P(20, "", "concurrent connections the bank API accepts", lo=1, hi=100_000,
                    whole=True),
    "bank.latency_s": P(0.8, "s", "median bank response time (log-normal)", hi=600,
                        open_lo=True),
    "bank.latency_sigma": P(0.5, "", "spread of the log-normal latency", hi=3),
    "bank.failure_rate": P(0.005, "", "share of bank calls answered with HTTP 500", hi=1),
    "monitor.threshold": P(5, "errors", "the error-storm rule fires at this many *.error "
                           "events ...", lo=1, hi=10_000, whole=True),
    "monitor.window": P(60, "s", "... within this sliding window", hi=86_400, open_lo=True),
    "monitor.keep_firing_s": P(300, "s", "an alert resolves only after its condition is "
                               "clear this long", hi=86_400),
    "monitor.absence_s": P(600, "s", "alert when no payment was sent for this long (0: off)",
                           hi=86_400),
    "monitor.latency_p95_s": P(10, "s", "alert when the bank's p95 latency over 5 min "
                               "exceeds this (0: off)", hi=3600),
    "monitor.failure_ratio": P(0.2, "", "alert when this share of payments fails within "
                               "10 min (0: off)", hi=1),
    "monitor.hlt_wait_p95_s": P(10, "s", "alert when citizens' p95 wait for HMS-HLT over "
                                "5 min exceeds this (0: off)", hi=86_400),
    "monitor.rejected_count": P(20, "requests", "alert when HMS-HLT rejects this many unknown "
                                "requesters within 60 s (0: off)", hi=1_000_000, whole=True),
    "score.grace_s": P(900, "s", "an alert up to this long after an incident still counts "
                       "as true", hi=86_400),
    "load.scale": P(1, "x", "multiplies arrivals, HLT workers and bank lines (for big runs)",
                    hi=100, open_lo=True),
}  # fmt: skip
"""Every fixed parameter of the Ida day, by dotted name."""


@dataclass(frozen=True)
class Kind:
    """A kind of incident: what it does, its title in reports and its own fields."""

    title: str
    help: str
    fields: dict[str, Param] = field(default_factory=dict)


START = P(14, "h", "when it starts, in hours after midnight")
HOURS = P(0, "h", "how long it lasts (0: it does not happen)")
KINDS: dict[str, Kind] = {
    "outage": Kind("bank outage", "the bank refuses every call at once (HTTP 503)"),
    "slowdown": Kind("bank slowdown", "the bank answers `factor` times slower",
                     {"factor": P(20, "x", "latency multiplies by this while slow", lo=1,
                                  hi=1000)}),
    "link_drop": Kind("partner link drop", "the link to the bank is cut: calls hang "
                      "until ACH's timeout, and the bridge reports the partner down"),
    "flood": Kind("request flood", "a bot sends bogus requests, which HMS-HLT checks "
                  "and rejects; they load its case workers",
                  {"per_hour": P(6000, "requests/h", "bogus requests per hour", hi=1e6)}),
    "understaffed": Kind("HLT understaffed", "HMS-HLT works with fewer case workers "
                         "(each leaves after finishing the case in hand)",
                         {"workers": P(2, "", "case workers left", hi=100_000,
                                       whole=True)}),
}  # fmt: skip
"""The incident kinds a scenario can schedule; each also has ``start_h`` and ``hours``."""

_SLOT = re.compile(r"^([a-z_]+)(?:\.([0-9]+))?\.([a-z_]+)$")


def fields_of(kind: str) -> dict[str, Param]:
    """The fields of incident ``kind``: ``start_h``, ``hours`` and its own."""
    return {"start_h": START, "hours": HOURS, **KINDS[kind].fields}


def slot_name(kind: str, n: int, name: str) -> str:
    """The dotted name of field ``name`` of the ``n``-th incident of ``kind``
    (``outage.start_h`` for the first, ``outage.2.start_h`` for the second)."""
    return f"{kind}.{name}" if n == 1 else f"{kind}.{n}.{name}"


def parse_slot(name: str) -> tuple[str, int, str] | None:
    """``(kind, n, field)`` when ``name`` addresses an incident field, else None."""
    found = _SLOT.match(name)
    if found is None or found[1] not in KINDS or found[3] not in fields_of(found[1]):
        return None
    n = int(found[2]) if found[2] else 1
    return (found[1], n, found[3]) if 1 <= n <= 99 else None


def lookup(name: str) -> tuple[str, Param]:
    """The canonical name and :class:`Param` of ``name``, or a ValueError
    that suggests the nearest valid names."""
    if not isinstance(name, str):
        raise TypeError(f"a parameter name is text such as 'monitor.threshold', got {name!r}")
    spec = PARAMS.get(name)
    if spec is not None:
        return name, spec
    slot = parse_slot(name)
    if slot is not None:
        kind, n, fld = slot
        return slot_name(kind, n, fld), fields_of(kind)[fld]
    raise ValueError(f"unknown parameter {name!r}; {suggest(name)}")


def known_names() -> list[str]:
    """Every fixed name and the first incident slot of every kind."""
    slots = [slot_name(k, 1, f) for k in KINDS for f in fields_of(k)]
    return [*PARAMS, *slots]


def suggest(name: str) -> str:
    """A "did you mean" hint for a misspelt parameter name."""
    names = known_names()
    close = difflib.get_close_matches(name, names, n=3, cutoff=0.6)
    if not close and "." in name:
        tail = name.rsplit(".", 1)[1]
        close = [n for n in names if n.endswith("." + tail)][:3]
    hint = f"did you mean {' or '.join(map(repr, close))}? " if close else ""
    return f"{hint}'python -m simulations scenarios --params' lists them all"
