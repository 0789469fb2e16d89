"""The public API and the two dependency lists stay honest."""

from __future__ import annotations

import re
from pathlib import Path
from types import ModuleType

import pytest
import yaml

import hms_bus

ROOT = Path(__file__).resolve().parents[1]


def test_all_matches_what_is_exported():
    exported = {
        name
        for name, value in vars(hms_bus).items()
        if not name.startswith("_")
        and name != "annotations"
        and (name in hms_bus.__all__ or not isinstance(value, ModuleType))
    }
    assert set(hms_bus.__all__) == exported
    for name in hms_bus.__all__:
        assert getattr(hms_bus, name) is not None


def _name(req: str) -> str:
    return re.split(r"[<>=!\[ ;]", req, maxsplit=1)[0].lower()


def test_environment_yml_lists_the_same_dependencies_as_pyproject():
    tomllib = pytest.importorskip("tomllib")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = {
        _name(r)
        for reqs in project["optional-dependencies"].values()
        for r in reqs
        if not r.startswith("hms-bus-kit")
    } | {_name(r) for r in project["dependencies"]}
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    listed: set[str] = set()
    for dep in env["dependencies"]:
        if isinstance(dep, dict):
            listed |= {_name(d) for d in dep["pip"]}
        elif _name(dep) not in ("python", "pip"):
            listed.add(_name(dep))
    assert listed == wanted
