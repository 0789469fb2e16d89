"""The notebooks: their shape, and proof that nbval catches a changed number.

``make test`` runs every notebook under ``pytest --nbval`` and compares each
cell's output with the stored one. These tests check what nbval cannot: that
stored outputs come from a full run, that exercises check themselves, that the
path through the notebooks is linked in order, and that a change to a number
in a notebook really does fail the run.
"""

from __future__ import annotations

import configparser
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import hms_bus

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
SANITIZE = ROOT / "tests" / "nbval_sanitize.cfg"

PATH = [
    "00-index.ipynb",
    "01-first-taste.ipynb",
    "02-anatomy-of-an-event.ipynb",
    "03-topics-and-wildcards.ipynb",
    "04-behind-the-curtain.ipynb",
    "05-retention-and-replay.ipynb",
    "06-monitor.ipynb",
    "07-alert-routing.ipynb",
    "08-hurricane-ida-simulation.ipynb",
    "09-governors-dashboard.ipynb",
    "10-nats-backend.ipynb",
    "11-kafka-backend.ipynb",
    "12-for-instructors.ipynb",
]
"""The learner's path, in order."""

EXISTING = [name for name in PATH if (NOTEBOOKS / name).exists()]
LESSONS = [name for name in EXISTING if name != "00-index.ipynb"]


def load(name: str) -> dict:
    return json.loads((NOTEBOOKS / name).read_text(encoding="utf-8"))


def code_cells(nb: dict) -> list[dict]:
    return [c for c in nb["cells"] if c["cell_type"] == "code"]


def source(cell: dict) -> str:
    src = cell["source"]
    return src if isinstance(src, str) else "".join(src)


def tags(cell: dict) -> list[str]:
    return cell.get("metadata", {}).get("tags", [])


def output_text(output: dict) -> str:
    if "text" in output:
        return source({"source": output["text"]})
    if output["output_type"] == "error":
        return f"{output['ename']}: {output['evalue']}"
    return "".join(source({"source": v}) for v in output.get("data", {}).values())


def links(text: str) -> list[str]:
    return re.findall(r"\]\(([\w-]+\.ipynb)\)", text)


def test_every_notebook_of_the_path_exists():
    assert EXISTING == PATH
    assert sorted(p.name for p in NOTEBOOKS.glob("*.ipynb")) == PATH


def test_index_links_every_notebook_in_order():
    text = "".join(source(c) for c in load("00-index.ipynb")["cells"])
    assert links(text)[: len(PATH) - 1] == PATH[1:]


@pytest.mark.parametrize("name", EXISTING)
def test_notebook_ends_with_a_link_to_the_next(name):
    """The last notebook links back to the index."""
    last = load(name)["cells"][-1]
    assert last["cell_type"] == "markdown"
    following = PATH[(PATH.index(name) + 1) % len(PATH)]
    assert links(source(last)) == [following]


@pytest.mark.parametrize("name", LESSONS)
def test_notebook_starts_with_what_the_learner_will_be_able_to_do(name):
    first = load(name)["cells"][0]
    assert first["cell_type"] == "markdown"
    assert "you will be able to" in source(first)


@pytest.mark.parametrize("name", EXISTING)
def test_stored_outputs_come_from_one_full_run(name):
    """Counts run 1, 2, 3... in order: outputs are from a fresh top-to-bottom
    run, and plain ``nbstripout`` (which would leave nbval nothing to compare)
    was not used."""
    nb = load(name)
    assert nb["metadata"]["kernelspec"]["name"] == "python3"
    counts = [c["execution_count"] for c in code_cells(nb) if source(c).strip()]
    assert counts == list(range(1, len(counts) + 1))


@pytest.mark.parametrize("name", LESSONS)
def test_notebook_ends_with_key_points(name):
    """The cell before the link to the next notebook sums the lesson up."""
    cells = load(name)["cells"]
    points = source(cells[-2])
    assert cells[-2]["cell_type"] == "markdown" and points.startswith("## Key points")
    assert points.count("\n* ") >= 3, points


@pytest.mark.parametrize("name", EXISTING)
def test_error_cells_are_tagged_and_store_their_error(name):
    """A cell shows an error only when tagged ``raises-exception``, and then it must."""
    for cell in code_cells(load(name)):
        errors = [o for o in cell["outputs"] if o["output_type"] == "error"]
        assert bool(errors) == ("raises-exception" in tags(cell)), source(cell)


@pytest.mark.parametrize("name", EXISTING)
def test_errors_shown_on_purpose_show_their_last_line_only(name):
    """``%xmode Minimal`` in the cell: the stored traceback is the error line
    alone, not 40 lines of the library's insides."""
    for cell in code_cells(load(name)):
        if "raises-exception" in tags(cell):
            assert source(cell).startswith("%xmode Minimal\n"), source(cell)
            (error,) = [o for o in cell["outputs"] if o["output_type"] == "error"]
            assert len(error["traceback"]) == 1, error["traceback"]


PUBLIC = {
    "hms_bus": set(hms_bus.__all__),
    "hms_bus.monitor": set(hms_bus.monitor.__all__),
    "hms_bus.server": set(hms_bus.server.__all__),
    "simulations": {"run", "sweep", "scenarios", "Scenario"},
}
"""What notebooks may import: each package's public names (for simulations,
the four the notebooks are meant to teach)."""


@pytest.mark.parametrize("name", EXISTING)
def test_notebooks_use_only_the_public_api(name):
    code = "\n".join(source(c) for c in code_cells(load(name)))
    modules = re.findall(r"(?:from|import) (hms_bus[\w.]*|simulations[\w.]*)", code)
    for module in modules:
        assert module in PUBLIC, f"{module} is not a public module"
    for module, attr in re.findall(r"\b(hms_bus(?:\.monitor|\.server)?)\.(\w+)", code):
        assert attr in PUBLIC[module] or f"{module}.{attr}" in PUBLIC, f"{module}.{attr}"
    for module, names in re.findall(r"from ([\w.]+) import ([\w, ]+)", code):
        if module in PUBLIC:
            for imported in names.split(","):
                assert imported.strip() in PUBLIC[module], f"{module}.{imported.strip()}"
    assert not re.search(r"\._[A-Za-z]", code), "private attribute used"


@pytest.mark.parametrize("name", [n for n in LESSONS if n != "01-first-taste.ipynb"])
def test_every_bus_runs_on_a_virtual_clock(name):
    code = "\n".join(source(c) for c in code_cells(load(name)))
    calls = re.findall(r"\bBus\((.*)", code)
    # A notebook without a Bus of its own drives simulations, whose every run
    # makes a fresh bus on a virtual clock.
    assert calls or "from simulations import" in code
    assert all("clock=" in call for call in calls), calls


@pytest.mark.parametrize("name", EXISTING)
def test_no_wall_clock_time_reaches_a_stored_output(name):
    """Every timestamp shown is on the virtual clocks' August 2021 days."""
    for cell in code_cells(load(name)):
        for output in cell["outputs"]:
            for stamp in re.findall(r"\d{4}-\d\d-\d\dT[\d:.]+", output_text(output)):
                assert stamp.startswith(("2021-08-29", "2021-08-30")), stamp


def test_sanitizers_leave_deterministic_values_alone():
    """Sanitizing is for addresses and temp paths, never ids, times or counts."""
    cfg = configparser.ConfigParser()
    cfg.read(SANITIZE)
    patterns = [re.compile(cfg[s]["regex"]) for s in cfg.sections()]
    assert patterns
    for kept in ["2021-08-29T12:00:00.000Z", "evt-d82c07cd-000001", "(26, 10)", "'27'"]:
        assert not any(p.search(kept) for p in patterns), kept
    for noisy in ["<Line2D at 0x7f3a2c1b9e50>", "/tmp/ipykernel_4123/2081.py"]:
        assert any(p.search(noisy) for p in patterns), noisy


def run_nbval(nb: dict, name: str, tmp_path: Path) -> str:
    """Write ``nb`` as ``name`` under ``tmp_path``, run nbval on it, return what it printed."""
    copy = tmp_path / name
    copy.write_text(json.dumps(nb), encoding="utf-8")
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-p",
            "ipc_kernels",
            "--nbval",
            "--nbval-current-env",
            "--nbval-sanitize-with",
            str(SANITIZE),
            "--rootdir",
            str(tmp_path),
            copy.name,
        ],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests")])},
        capture_output=True,
        text=True,
        timeout=120,
    )
    out = run.stdout + run.stderr
    assert run.returncode == 1, out
    return out


def edit(nb: dict, old: str, new: str) -> None:
    """Replace ``old`` by ``new`` in the one code cell that holds it."""
    cells = [c for c in code_cells(nb) if old in source(c)]
    assert len(cells) == 1, old
    cells[0]["source"] = source(cells[0]).replace(old, new)


def test_changing_a_number_in_a_notebook_fails_nbval_with_both_values(tmp_path):
    """Publish 26 payments instead of 25: nbval reports the stored 27 and the new 28."""
    nb = load("01-first-taste.ipynb")
    edit(nb, "range(25)", "range(26)")
    out = run_nbval(nb, "01-first-taste.ipynb", tmp_path)
    assert "1 failed" in out, out
    assert re.search(r"'27' == '28'", out), out
    assert 'len(replay("payments.sent"))' in out, out


def test_changing_a_rule_threshold_fails_nbval_with_both_values(tmp_path):
    """The chapter's stub with THRESH = 6 pages 19 times, not 20: nbval says so."""
    nb = load("06-monitor.ipynb")
    edit(nb, "WINDOW, THRESH = 60, 5", "WINDOW, THRESH = 60, 6")
    out = run_nbval(nb, "06-monitor.ipynb", tmp_path)
    assert re.search(r"'20' == '19'", out), out
    assert "len(chapter_alerts)" in out, out


CAPTURING = ("interact(", "interactive(", "interact_manual(", "Output(", ".capture(", "with out")
"""Widget code that captures cell output into an Output widget. Headless
execution (nbval, nbconvert, ``make notebooks``) then hangs now and then:
nbclient answers the capture on the kernel's shell channel while it waits on
that channel (jupyter/nbclient#312). Widgets whose values the code sets do not
trigger it."""


@pytest.mark.parametrize("name", EXISTING)
def test_no_widget_captures_output(name):
    code = "\n".join(source(c) for c in code_cells(load(name)))
    for pattern in CAPTURING:
        assert pattern not in code, f"{name} uses {pattern!r}; set widget values instead"


@pytest.mark.parametrize(
    "name", ["08-hurricane-ida-simulation.ipynb", "09-governors-dashboard.ipynb"]
)
def test_widget_notebooks_store_their_widget_state(name):
    """Saved state lets JupyterLab and Voila draw the widgets before any cell
    runs; without it they show as ``VBox(children=...`` text."""
    nb = load(name)
    state = nb["metadata"]["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    shown = [
        o["data"]["application/vnd.jupyter.widget-view+json"]["model_id"]
        for c in code_cells(nb)
        for o in c["outputs"]
        if "application/vnd.jupyter.widget-view+json" in o.get("data", {})
    ]
    assert shown and all(model in state for model in shown)


def test_index_gives_time_and_prerequisites_and_maps_the_six_concepts():
    text = "".join(source(c) for c in load("00-index.ipynb")["cells"])
    rows = [line for line in text.splitlines() if re.match(r"\| \d+ \| \[", line)]
    assert len(rows) == len(PATH) - 1
    for row in rows:
        time, needs = [cell.strip() for cell in row.strip("|").split("|")][3:5]
        assert re.fullmatch(r"\d+ min", time) and needs, row
    for concept in ("Event", "Topic", "Publisher", "Subscriber", "Stream retention", "Alert rule"):
        assert re.search(rf"^\| {concept} \|", text, re.M), concept


def test_instructor_notebook_lists_common_mistakes_for_every_notebook():
    text = "".join(source(c) for c in load("12-for-instructors.ipynb")["cells"])
    table = text[text.index("## Common mistakes") :]
    for number in range(1, len(PATH)):
        assert re.search(rf"^\| {number:02d} ", table, re.M), number
