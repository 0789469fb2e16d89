"""The public API and the two dependency lists stay honest."""

from __future__ import annotations

import re
import subprocess
import sys
import zipfile
from pathlib import Path
from types import ModuleType

import pytest
import yaml

import hms_bus

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10 reads TOML with the tomli backport
    import tomli as tomllib

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


def test_wheel_declares_the_mit_licence_without_deprecation_warnings(tmp_path):
    """The SPDX licence reaches the wheel's metadata, and building prints no warning."""
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "-v", "-w", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert build.returncode == 0, build.stdout[-2000:] + build.stderr[-2000:]
    output = build.stdout + build.stderr
    assert "deprecat" not in output.lower(), [
        line for line in output.splitlines() if "deprecat" in line.lower()
    ]
    (wheel,) = tmp_path.glob("hms_bus_kit-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        (meta,) = [n for n in names if n.endswith(".dist-info/METADATA")]
        metadata = zf.read(meta).decode()
    assert "License-Expression: MIT" in metadata.splitlines()
    assert "License-File: LICENSE" in metadata.splitlines()
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    assert "Programming Language :: Python :: 3.10" in metadata
    # What README promises a pip user: the scenarios, their authoring guide, the golden file.
    for shipped in (
        "simulations/bank_outage.json",
        "simulations/SCENARIOS.md",
        "simulations/ida.out",
    ):
        assert shipped in names, shipped


def test_readme_installs_only_what_exists():
    """No instruction to pip-install the kit by a name no index publishes."""
    texts = [
        ROOT / "README.md",
        *sorted(ROOT.glob("*/*.md")),
        *sorted((ROOT / "notebooks").glob("*.ipynb")),
        *sorted((ROOT / "hms_bus").rglob("*.py")),
        *sorted((ROOT / "simulations").rglob("*.py")),
    ]
    for path in texts:
        text = path.read_text()
        assert "install 'hms-bus-kit" not in text, path
        assert 'install "hms-bus-kit' not in text, path
