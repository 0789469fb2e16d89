"""Scenarios: named parameter sets for the Ida day, stored as JSON next to this file.

Every parameter has a dotted name (``bank.failure_rate``), a default (the
constants at the top of :mod:`simulations.ida`), a type and an allowed range.
A scenario file such as ``bank_outage.json`` changes a few of them::

    {"description": "...", "outage": {"start_h": 14, "hours": 1.5}}

and :meth:`Scenario.override` changes more, e.g. ``monitor.threshold=3``.
Unknown names and out-of-range values raise ``ValueError`` saying what is
allowed.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import ida

__all__ = ["PARAMS", "Param", "Scenario", "scenarios", "DEFAULT_SCENARIO"]

HERE = Path(__file__).resolve().parent
DEFAULT_SCENARIO = "bank_outage"
"""What ``run()`` and ``python -m simulations run`` use unless told."""


@dataclass(frozen=True)
class Param:
    """One tunable number: its default, type, allowed range and meaning."""

    default: float
    kind: type
    lo: float
    hi: float
    unit: str
    help: str
    open_lo: bool = False  # True when ``lo`` itself is not allowed

    def check(self, name: str, value: Any) -> float:
        """Return ``value`` as this parameter's type, or raise ValueError."""
        if isinstance(value, str):
            value = _parse(name, value, self)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(
                f"{name} must be a number ({self.range_text()}), got {value!r} "
                f"of type {type(value).__name__}"
            )
        if self.kind is int and value != int(value):
            raise ValueError(f"{name} must be a whole number ({self.range_text()}), got {value!r}")
        too_low = value <= self.lo if self.open_lo else value < self.lo
        if too_low or value > self.hi or value != value:
            raise ValueError(f"{name}={value!r} is out of range; allowed: {self.range_text()}")
        return self.kind(value)

    def range_text(self) -> str:
        left = "(" if self.open_lo else "["
        unit = f" {self.unit}" if self.unit else ""
        return f"{left}{_num(self.lo)}, {_num(self.hi)}]{unit}"


def _num(x: float) -> str:
    return f"{x:g}" if isinstance(x, float) else str(x)


def _parse(name: str, text: str, param: Param) -> float:
    try:
        return int(text) if param.kind is int else float(text)
    except ValueError:
        raise ValueError(
            f"{name}={text!r} is not a number; allowed: {param.range_text()}"
        ) from None


_H = 24 * 30  # a month: the longest a run or window may last, in hours
PARAMS: dict[str, Param] = {
    "citizens.per_hour": Param(ida.CITIZENS_PER_HOUR, float, 0, 1e6, "requests/h",
                               "requests per hour when the day profile is 1.0"),
    "citizens.surge": Param(ida.SURGE, float, 1, 50, "x",
                            "requests multiply by this right after landfall"),
    "citizens.surge_hours": Param(ida.SURGE_HOURS, float, 0, _H, "h",
                                  "the surge decays by a factor e in this time", True),
    "landfall.at_h": Param(ida.LANDFALL_H, float, 0, _H, "h",
                           "hours after the start when the storm makes landfall"),
    "hlt.workers": Param(ida.HLT_WORKERS, int, 1, 100_000, "",
                         "HMS-HLT case workers checking records in parallel"),
    "hlt.service_s": Param(ida.HLT_SERVICE_S, float, 0, 3600, "s",
                           "mean time to check one record", True),
    "hlt.evacuated": Param(ida.HLT_EVACUATED, float, 0, 1, "",
                           "share of citizens with a medical evacuation on record"),
    "hlt.error_rate": Param(ida.HLT_ERROR_RATE, float, 0, 1, "",
                            "share of checks where the records system fails"),
    "ach.amount": Param(ida.ACH_AMOUNT, int, 1, 1_000_000, "$", "dollars per approved request"),
    "ach.timeout_s": Param(ida.ACH_TIMEOUT_S, float, 0, 3600, "s",
                           "how long ACH waits for one bank call", True),
    "ach.retries": Param(ida.ACH_RETRIES, int, 0, 10, "", "extra attempts after a failed one"),
    "ach.backoff_s": Param(ida.ACH_BACKOFF_S, float, 0, 3600, "s",
                           "wait before the first retry; doubles each time"),
    "bank.lines": Param(ida.BANK_LINES, int, 1, 100_000, "",
                        "concurrent connections the bank accepts"),
    "bank.latency_s": Param(ida.BANK_LATENCY_S, float, 0, 600, "s",
                            "median bank response time", True),
    "bank.latency_sigma": Param(ida.BANK_LATENCY_SIGMA, float, 0, 3, "",
                                "spread of the log-normal latency"),
    "bank.failure_rate": Param(ida.BANK_FAILURE_RATE, float, 0, 1, "",
                               "share of bank calls answered with HTTP 500"),
    "slowdown.start_h": Param(14, float, 0, _H, "h", "when the bank slows down"),
    "slowdown.hours": Param(0, float, 0, _H, "h", "how long it stays slow (0: never)"),
    "slowdown.factor": Param(ida.SLOWDOWN_FACTOR, float, 1, 1000, "x",
                             "latency multiplies by this while slow"),
    "outage.start_h": Param(14, float, 0, _H, "h", "when the bank goes down"),
    "outage.hours": Param(0, float, 0, _H, "h", "how long it stays down (0: never)"),
    "monitor.threshold": Param(5, int, 1, 10_000, "errors",
                               "the error-storm rule fires at this many *.error events ..."),
    "monitor.window": Param(60, float, 0, 86_400, "s", "... within this sliding window", True),
    "monitor.keep_firing_s": Param(300, float, 0, 86_400, "s",
                                   "an alert resolves only after its condition is clear this long"),
    "monitor.absence_s": Param(600, float, 0, 86_400, "s",
                               "alert when no payment was sent for this long (0: off)"),
    "monitor.latency_p95_s": Param(10, float, 0, 3600, "s",
                                   "alert when the bank's p95 latency exceeds this (0: off)"),
    "monitor.failure_ratio": Param(0.2, float, 0, 1, "",
                                   "alert when this share of payments fails (0: off)"),
    "score.grace_s": Param(900, float, 0, 86_400, "s",
                           "an alert up to this long after an incident still counts as true"),
    "load.scale": Param(1, float, 0, 100, "x",
                        "multiplies arrivals, HLT workers and bank lines (for big runs)", True),
}  # fmt: skip
"""Every parameter of the Ida day, by dotted name."""


def scenarios() -> dict[str, str]:
    """The stored scenarios, name -> one-line description."""
    return {path.stem: _read(path).get("description", "") for path in _files()}


def _files() -> list[Path]:
    return sorted(HERE.glob("*.json"))


def _read(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"scenario file {path} is not valid JSON: {exc}") from None


def _flatten(tree: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            yield from _flatten(value, name + ".")
        else:
            yield name, value


class Scenario(Mapping):
    """A named, validated set of parameters: read it like a dict.

    >>> s = Scenario.load("bank_outage").override({"monitor.threshold": 3})
    >>> s["monitor.threshold"]
    3
    """

    def __init__(self, name: str, params: Mapping[str, Any] | None = None, description: str = ""):
        self.name = name
        self.description = description
        values = {k: p.default for k, p in PARAMS.items()}
        values.update(_checked(params or {}, f"scenario {name!r}"))
        self._values = values
        self.changed: dict[str, Any] = {}
        """The overrides applied on top of the stored scenario."""

    @classmethod
    def load(cls, name: str | Scenario) -> Scenario:
        """The stored scenario called ``name`` (see :func:`scenarios`)."""
        if isinstance(name, Scenario):
            return name
        if not isinstance(name, str):
            raise TypeError(f"scenario must be a name such as 'calm', got {name!r}")
        path = HERE / f"{name}.json"
        if not path.is_file():
            raise ValueError(f"unknown scenario {name!r}; choose one of: {', '.join(scenarios())}")
        raw = _read(path)
        description = raw.pop("description", "")
        return cls(name, dict(_flatten(raw)), description)

    def override(self, changes: Mapping[str, Any] | None = None, **kw: Any) -> Scenario:
        """A copy with some parameters changed; ``monitor__threshold=3`` is
        accepted for ``monitor.threshold=3``."""
        merged = dict(changes or {})
        merged.update({k.replace("__", "."): v for k, v in kw.items()})
        if not merged:
            return self
        new = Scenario(self.name, {**self._values, **merged}, self.description)
        new.changed = {**self.changed, **_checked(merged, "override")}
        return new

    def __getitem__(self, key: str) -> Any:
        return self._values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        extra = "".join(f", {k}={v!r}" for k, v in self.changed.items())
        return f"Scenario({self.name!r}{extra})"

    def table(self) -> str:
        """Every parameter with its value, range and meaning, as text."""
        rows = [
            f"{k:<22} {_num(v):>10}  {PARAMS[k].range_text():<24} {PARAMS[k].help}"
            for k, v in self._values.items()
        ]
        return "\n".join(rows)


def _checked(params: Mapping[str, Any], where: str) -> dict[str, Any]:
    out = {}
    for name, value in params.items():
        spec = PARAMS.get(name)
        if spec is None:
            raise ValueError(
                f"unknown parameter {name!r} in {where}; valid names: {', '.join(PARAMS)}"
            )
        out[name] = spec.check(name, value)
    return out
