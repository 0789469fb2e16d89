"""Notebook 08: how long a slider change keeps the kernel busy (target < 1 s).

Runs the notebook's own cells in a kernel up to the slider board, then times
the notebook's ``redraw()`` (an eight-hour day, its rates plot as a PNG, the
headline) for several threshold values, interleaved with the peer a naive
slider would re-run instead: the full 24 h day. Prints medians and the ratio,
from this one run.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import nbformat
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "08-hurricane-ida-simulation.ipynb"
ROUNDS = 5

TIMER = """
import json, time
def _timed(fn):
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started
"""


def main() -> None:
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = NotebookClient(
        nb,
        timeout=300,
        kernel_name="python3",
        resources={"metadata": {"path": str(NOTEBOOK.parent)}},
    )
    with client.setup_kernel():
        for index, cell in enumerate(nb.cells):
            if cell.cell_type == "code" and "widgets.VBox(" in cell.source:
                break
            if cell.cell_type == "code":
                client.execute_cell(cell, index)
        probe = nbformat.v4.new_code_cell(
            TIMER
            + f"""
slider_s, full_s = [], []
for n in range({ROUNDS}):
    sliders["threshold"].value = 3 + n
    slider_s.append(_timed(redraw))
    full_s.append(_timed(lambda: run("bank_outage", seed=7, progress=False)))
sliders["threshold"].value = 5
print(json.dumps({{"slider": slider_s, "full": full_s}}))
"""
        )
        nb.cells.append(probe)
        client.execute_cell(probe, len(nb.cells) - 1)
    times = json.loads(probe.outputs[-1]["text"])
    slider, full = statistics.median(times["slider"]), statistics.median(times["full"])
    print(
        f"notebook 08 slider redraw (8 h day + plot + PNG): median {slider:.2f} s "
        f"over {ROUNDS} changes (target < 1 s: {'met' if slider < 1 else 'NOT met'})"
    )
    print(f"peer, re-running the full 24 h day alone:        median {full:.2f} s")
    print(f"ratio slider / full day: {slider / full:.2f}")


if __name__ == "__main__":
    main()
