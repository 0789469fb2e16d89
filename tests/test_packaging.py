"""The public API and the two dependency lists stay honest."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
import yaml

import hms_bus

ROOT = Path(__file__).resolve().parents[1]


def test_all_matches_what_is_exported():
    exported = {
        name
        for name in dir(hms_bus)
        if not name.startswith("_")
        and name != "annotations"
        and (name in hms_bus.__all__ or not isinstance(getattr(hms_bus, name), ModuleType))
    }
    assert set(hms_bus.__all__) == exported
    for name in hms_bus.__all__:
        assert getattr(hms_bus, name) is not None


def test_import_hms_bus_stays_light():
    """The monitor, the server (subprocess, ctypes) and the backends load on first use."""
    code = (
        "import sys, hms_bus\n"
        "heavy = [m for m in sys.modules if m.startswith(('hms_bus.monitor', 'hms_bus.server',"
        " 'hms_bus.backends.')) and m != 'hms_bus.backends.base'"
        " or m in ('subprocess', 'ctypes', 'nats', 'logging')]\n"
        "print(heavy)\n"
        "from hms_bus import monitor\n"
        "print(monitor.Monitor.__name__, hms_bus.server.__name__, hms_bus.MemoryBackend.__name__)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.splitlines() == ["[]", "Monitor hms_bus.server MemoryBackend"]


def test_unknown_attribute_says_so():
    with pytest.raises(AttributeError, match="module 'hms_bus' has no attribute 'nope'"):
        hms_bus.nope  # noqa: B018


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
