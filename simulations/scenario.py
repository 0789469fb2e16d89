"""Scenarios: named parameter sets for the Ida day, stored as JSON files.

The stored scenarios sit next to this module (``bank_outage.json``...); any
other file works by its path (``run("~/my_day.json")``). A file changes a few
parameters and lists its incidents::

    {"description": "...", "landfall": {"at_h": 12},
     "incidents": [{"kind": "outage", "start_h": 14, "hours": 1.5}]}

:meth:`Scenario.override` changes more, e.g. ``monitor.threshold=3``.
Unknown names suggest the nearest valid ones; out-of-range values name the
range. ``simulations/SCENARIOS.md`` is the authoring guide.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from .incidents import Incident, from_list, from_values
from .params import KINDS, PARAMS, fields_of, lookup, parse_slot, slot_name

__all__ = ["Scenario", "scenarios", "broken_scenarios", "idle", "DEFAULT_SCENARIO", "SCENARIO_DIR"]

SCENARIO_DIR = Path(__file__).resolve().parent
"""Where the stored scenarios live."""

DEFAULT_SCENARIO = "bank_outage"
"""What ``run()`` and ``python -m simulations run`` use unless told."""


def _scan() -> tuple[dict[str, str], dict[str, str]]:
    good, broken = {}, {}
    for path in sorted(SCENARIO_DIR.glob("*.json")):
        try:
            good[path.stem] = Scenario.from_file(path).description
        except (ValueError, TypeError) as exc:  # one bad file never hides the others
            broken[path.stem] = " ".join(str(exc).split())
    return good, broken


def scenarios() -> dict[str, str]:
    """The stored scenarios that load, name -> one-line description
    (:func:`broken_scenarios` names the ones that do not)."""
    return _scan()[0]


def broken_scenarios() -> dict[str, str]:
    """Stored scenario files that cannot be loaded, name -> what is wrong."""
    return _scan()[1]


class Scenario(Mapping):
    """A named, validated set of parameters: read it like a dict.

    :param name: what reports call it.
    :param params: dotted names to values, e.g. ``{"outage.start_h": 3}``;
        every other parameter keeps its default.
    :param description: one line for people.
    :param incidents: incidents as a scenario file lists them, e.g.
        ``[{"kind": "flood", "start_h": 9, "hours": 1}]``.

    >>> s = Scenario.load("bank_outage").override({"monitor.threshold": 3})
    >>> s["monitor.threshold"], s.changed
    (3, {'monitor.threshold': 3})
    """

    def __init__(
        self,
        name: str,
        params: Mapping[str, Any] | None = None,
        description: str = "",
        incidents: list | None = None,
    ) -> None:
        if not isinstance(name, str) or not name:
            raise TypeError(f"a scenario's name must be text such as 'night_outage', got {name!r}")
        where = f"scenario {name!r}"
        given = dict(params or {})
        if incidents is not None:
            listed = from_list(incidents, where)
            twice = sorted(set(listed) & set(given))
            if twice:
                raise ValueError(f"{where} sets {twice[0]} both in its incidents and directly")
            given.update(listed)
        self.name = name
        self.description = description
        values: dict[str, Any] = {k: p.default for k, p in PARAMS.items()}
        for kind in KINDS:
            values.update({slot_name(kind, 1, f): p.default for f, p in fields_of(kind).items()})
        values.update(_checked(given, where))
        self._values = values
        self.incidents: list[Incident] = from_values(values)
        """The incidents this scenario schedules, in start order."""
        self.changed: dict[str, Any] = {}
        """The overrides applied on top of the stored scenario."""

    @classmethod
    def load(cls, name: str | Path | Scenario) -> Scenario:
        """A stored scenario by name (see :func:`scenarios`), or a scenario file by path."""
        if isinstance(name, Scenario):
            return name
        if isinstance(name, Path):
            return cls.from_file(name)
        if not isinstance(name, str):
            raise TypeError(f"scenario must be a name such as 'calm' or a path, got {name!r}")
        if name.endswith(".json") or "/" in name or "\\" in name:
            return cls.from_file(Path(name))
        path = SCENARIO_DIR / f"{name}.json"
        if not path.is_file():
            good, broken = _scan()
            note = f" (unreadable: {', '.join(f'{n}.json' for n in broken)})" if broken else ""
            raise ValueError(
                f"unknown scenario {name!r}; choose one of: {', '.join(good)}{note}, "
                f"or give a file's path"
            )
        return cls.from_file(path)

    @classmethod
    def from_file(cls, path: str | Path) -> Scenario:
        """The scenario stored in the JSON file at ``path``; its name is the file's stem."""
        path = Path(path).expanduser()
        try:
            raw = json.loads(path.read_text(encoding="utf-8"), object_pairs_hook=_once)
        except _Twice as exc:
            key, first, then = exc.args
            raise ValueError(
                f"scenario file {path.name} gives {key!r} twice in one object "
                f"({_shown(first)}, then {_shown(then)}); keep one"
            ) from None
        except FileNotFoundError:
            raise ValueError(f"no scenario file {str(path)!r}") from None
        except IsADirectoryError:
            raise ValueError(f"{str(path)!r} is a folder, not a scenario file") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ValueError(f"cannot read scenario file {str(path)!r}: {exc}") from None
        except json.JSONDecodeError as exc:
            raise ValueError(f"scenario file {path.name} is not valid JSON: {exc}") from None
        except RecursionError:
            raise ValueError(f"scenario file {path.name} is nested too deeply") from None
        if not isinstance(raw, dict):
            raise ValueError(
                f"scenario file {path.name} must hold a JSON object such as "
                f'{{"description": "...", "incidents": [...]}}, not a {type(raw).__name__}'
            )
        description = raw.pop("description", "")
        if not isinstance(description, str):
            raise ValueError(
                f"scenario file {path.name}: description must be text such as "
                f'"description": "a quiet night", got {_shown(description)}'
            )
        if "incidents" in raw and raw["incidents"] is None:
            raise ValueError(
                f"scenario file {path.name}: 'incidents' must be a list such as "
                f'[{{"kind": "outage", "start_h": 14, "hours": 1.5}}], got null; write [] for none'
            )
        incidents = raw.pop("incidents", None)
        try:
            params = dict(_flatten(raw))
            sc = cls(path.stem, params, description, incidents)
            for name in sc._values:
                # A field of an incident given without its hours, which default to 0.
                slot = parse_slot(name)
                if (
                    slot
                    and slot[2] != "hours"
                    and _given(params, name)
                    and not _given(params, slot_name(slot[0], slot[1], "hours"))
                ):
                    text = idle(sc, name)
                    if text:
                        raise ValueError(text)
            return sc
        except RecursionError:
            raise ValueError(f"scenario file {path.name} is nested too deeply") from None
        except (ValueError, TypeError) as exc:
            text = str(exc).removeprefix(f"scenario {path.stem!r}: ")
            raise ValueError(f"scenario file {path.name}: {text}") from None

    def override(self, changes: Mapping[str, Any] | None = None, **kw: Any) -> Scenario:
        """A copy with some parameters changed; ``monitor__threshold=3`` is
        accepted for ``monitor.threshold=3``."""
        if changes is not None and not isinstance(changes, Mapping):
            raise TypeError(f"overrides must be a dict of names to values, got {changes!r}")
        merged: dict[str, Any] = {}
        for key, value in [*(changes or {}).items(), *kw.items()]:
            canonical = lookup(key.replace("__", "."))[0] if isinstance(key, str) else key
            if canonical in merged:
                raise ValueError(f"{canonical} is given twice; give it once")
            merged[canonical] = value
        if not merged:
            return self
        new = Scenario(self.name, {**self._values, **merged}, self.description)
        new.changed = {**self.changed, **_checked(merged, "override")}
        return new

    def __getitem__(self, key: str) -> Any:
        if key not in self._values and isinstance(key, str) and parse_slot(key):
            return fields_of(parse_slot(key)[0])[parse_slot(key)[2]].default
        return self._values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        extra = "".join(f", {k}={v!r}" for k, v in self.changed.items())
        return f"Scenario({self.name!r}{extra})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (self.name, self._values, self.description, self.changed))

    def changed_text(self) -> str:
        """The overrides as ``name=value`` pairs, or ``""``."""
        return ", ".join(f"{k}={_num(v)}" for k, v in self.changed.items())

    def table(self) -> str:
        """Every parameter with its value, range and meaning, then the scheduled incidents."""
        rows = [_row(k, self._values[k], PARAMS[k]) for k in PARAMS]
        rows += ["", "incidents (kind: " + ", ".join(KINDS) + "):"]
        for inc in self.incidents:
            for fld, spec in fields_of(inc.kind).items():
                name = slot_name(inc.kind, inc.n, fld)
                rows.append(_row(name, self._values[name], spec))
        if not self.incidents:
            rows.append("  (none; add one with e.g. --set outage.hours=1.5)")
        return "\n".join(rows)

    def to_dict(self) -> dict[str, Any]:
        """This scenario as a scenario file holds it (only what differs from the defaults)."""
        out: dict[str, Any] = {"description": self.description}
        for key, spec in PARAMS.items():
            if self._values[key] != spec.default:
                head, tail = key.split(".", 1)
                out.setdefault(head, {})[tail] = self._values[key]
        out["incidents"] = [i.to_dict() for i in self.incidents]
        return out


def _rebuild(name: str, values: dict, description: str, changed: dict) -> Scenario:
    sc = Scenario(name, values, description)
    sc.changed = dict(changed)
    return sc


def _row(name: str, value: Any, spec: Any) -> str:
    return f"{name:<22} {_num(value):>10}  {spec.range_text():<26} {spec.help}"


def _num(x: Any) -> str:
    return f"{x:g}" if isinstance(x, float) else str(x)


def _flatten(tree: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            yield from _flatten(value, name + ".")
        elif _is_group(name):
            example = next(k for k in [*PARAMS, *_slot_names()] if k.startswith(name + "."))
            raise ValueError(
                f"{name!r} holds parameters: write an object such as "
                f'"{name}": {{"{example[len(name) + 1 :]}": ...}}, got {_shown(value)}'
            )
        else:
            yield name, value


def _slot_names() -> list[str]:
    return [slot_name(k, 1, f) for k in KINDS for f in fields_of(k)]


def _is_group(name: str) -> bool:
    """Whether ``name`` is a prefix of parameter names (``monitor``, ``outage``)."""
    return any(k.startswith(name + ".") for k in [*PARAMS, *_slot_names()])


def _given(params: Mapping[str, Any], name: str) -> bool:
    """Whether file parameters ``params`` set ``name`` (``outage.1.hours`` sets it too)."""
    for key in params:
        try:
            if lookup(key)[0] == name:
                return True
        except (ValueError, TypeError):
            pass
    return False


def idle(sc: Scenario, name: str) -> str | None:
    """A sentence when ``name`` is a field of an incident that does not happen in
    ``sc`` (its hours are 0), so setting it changes nothing; else None."""
    slot = parse_slot(name)
    if slot is None or slot[2] == "hours":
        return None
    kind, n, _ = slot
    hours = slot_name(kind, n, "hours")
    if sc[hours] > 0:
        return None
    return (
        f"{name}={_num(sc[name])} is set but {hours} is 0: the {KINDS[kind].title} would not "
        f"happen; also set {hours}, e.g. {hours}=1"
    )


class _Twice(ValueError):
    """A JSON object with a key given twice."""


def _once(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object's keys and values, refusing a key given twice."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _Twice(key, out[key], value)
        out[key] = value
    return out


def _shown(value: Any) -> str:
    """``value`` as JSON writes it (null, true, [1, 2])."""
    try:
        return json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)


def _checked(params: Mapping[str, Any], where: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in params.items():
        try:
            canonical, spec = lookup(name)
        except ValueError as exc:
            raise ValueError(f"{exc} (in {where})") from None
        out[canonical] = spec.check(canonical, value)
    return out
