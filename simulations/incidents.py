"""Incidents: the bad stretches a scenario schedules (outages, slowdowns, floods...).

A scenario file lists them::

    "incidents": [
        {"kind": "outage", "start_h": 10, "hours": 1},
        {"kind": "flood", "start_h": 13, "hours": 1, "per_hour": 6000},
        {"kind": "outage", "start_h": 17, "hours": 0.5}
    ]

Inside a :class:`~simulations.Scenario` each incident is a few dotted
parameters (``outage.start_h``, ``outage.2.hours``, ``flood.per_hour``), so
``--set`` and sweeps reach them like any other parameter. The kinds and
their fields are in :data:`simulations.params.KINDS`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .params import KINDS, fields_of, parse_slot, slot_name

__all__ = ["Incident", "from_list", "from_values"]


@dataclass(frozen=True)
class Incident:
    """One scheduled incident: its kind, which one of that kind, when and how long."""

    kind: str
    n: int
    start_h: float
    hours: float
    extra: dict[str, float] = field(default_factory=dict)
    nth: int = field(default=0, compare=False)
    """Which one of its kind among those that happen (0: the same as ``n``);
    with ``outage.hours=0`` the second outage is the day's only one."""

    @property
    def start_s(self) -> float:
        return self.start_h * 3600.0

    @property
    def end_s(self) -> float:
        return (self.start_h + self.hours) * 3600.0

    @property
    def end_h(self) -> float:
        return self.start_h + self.hours

    @property
    def name(self) -> str:
        """Its parameter prefix: ``outage`` for the first outage, ``outage.2`` for the second."""
        return self.kind if self.n == 1 else f"{self.kind}.{self.n}"

    @property
    def title(self) -> str:
        """For people: ``bank outage``, ``bank outage #2``."""
        title = KINDS[self.kind].title
        nth = self.nth or self.n
        return title if nth == 1 else f"{title} #{nth}"

    def text(self) -> str:
        """``bank outage 14h-15.5h``"""
        return f"{self.title} {self.start_h:g}h-{self.end_h:g}h"

    def active(self, t: float) -> bool:
        """Whether simulated second ``t`` falls inside this incident."""
        return self.start_s <= t < self.end_s

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "start_h": self.start_h, "hours": self.hours, **self.extra}


def from_values(values: Mapping[str, Any]) -> list[Incident]:
    """The incidents that flat parameters schedule (those lasting more than 0 h),
    in start order."""
    slots: dict[tuple[str, int], dict[str, Any]] = {}
    for name, value in values.items():
        slot = parse_slot(name)
        if slot is not None:
            kind, n, fld = slot
            slots.setdefault((kind, n), {})[fld] = value
    found = []
    count: dict[str, int] = {}
    for (kind, n), given in sorted(slots.items()):
        spec = fields_of(kind)
        full = {k: given.get(k, p.default) for k, p in spec.items()}
        if full["hours"] > 0:
            extra = {k: v for k, v in full.items() if k not in ("start_h", "hours")}
            count[kind] = nth = count.get(kind, 0) + 1
            found.append(Incident(kind, n, full["start_h"], full["hours"], extra, nth))
    return sorted(found, key=lambda i: (i.start_h, i.kind, i.n))


def from_list(items: object, where: str) -> dict[str, Any]:
    """A scenario file's ``incidents`` list as flat parameters (not yet range-checked)."""
    if not isinstance(items, list):
        raise ValueError(
            f"{where}: 'incidents' must be a list such as "
            f'[{{"kind": "outage", "start_h": 14, "hours": 1.5}}], got {items!r}'
        )
    out: dict[str, Any] = {}
    count: dict[str, int] = {}
    for i, item in enumerate(items, 1):
        if not isinstance(item, Mapping):
            raise ValueError(f"{where}: incident {i} must be an object with a kind, got {item!r}")
        kind = item.get("kind")
        if not isinstance(kind, str):
            raise ValueError(
                f"{where}: incident {i} has kind {kind!r} ({_json_type(kind)}); write it as "
                f'text, one of {", ".join(KINDS)}, e.g. "kind": "outage"'
            )
        if kind not in KINDS:
            raise ValueError(
                f"{where}: incident {i} has kind {kind!r}; use one of {', '.join(KINDS)}"
            )
        spec = fields_of(kind)
        unknown = [k for k in item if k != "kind" and k not in spec]
        if unknown:
            raise ValueError(
                f"{where}: incident {i} ({kind}) has no field {unknown[0]!r}; "
                f"its fields are {', '.join(spec)}"
            )
        missing = [k for k in ("start_h", "hours") if k not in item]
        if missing:
            raise ValueError(
                f"{where}: incident {i} ({kind}) needs {' and '.join(missing)}, "
                f'e.g. {{"kind": "{kind}", "start_h": 14, "hours": 1}}'
            )
        if _is_zero(spec["hours"], item["hours"]):
            raise ValueError(
                f"{where}: incident {i} ({kind}) lasts 0 h, so it would not happen; "
                f"give it hours above 0 or remove it from the list"
            )
        count[kind] = n = count.get(kind, 0) + 1
        for key, value in item.items():
            if key != "kind":
                out[slot_name(kind, n, key)] = value
    return out


def _is_zero(spec: Any, value: object) -> bool:
    try:
        return spec.check("hours", value) == 0
    except ValueError:
        return False  # refused with its own message once the values are checked


def _json_type(value: object) -> str:
    """What JSON calls the type of ``value`` (a list, an object, null...)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, list):
        return "a list"
    return type(value).__name__


def outside(incidents: Iterable[Incident], hours: float) -> list[Incident]:
    """The incidents that start at or after the end of a run of ``hours``."""
    return [i for i in incidents if i.start_h >= hours]
