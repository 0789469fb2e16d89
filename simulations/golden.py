"""The golden output: ``simulations/ida.out`` is what :data:`ARGS` prints.

SimPy keeps ``carwash.out`` beside ``carwash.py`` and diffs it in CI; the
test ``test_golden_output_matches_ida_out`` does the same here. When the
model or the monitor changes on purpose, regenerate the file and review the
diff::

    python -m simulations.golden        # or: make golden
    git diff simulations/ida.out
"""

from __future__ import annotations

import contextlib
import io
import sys
from pathlib import Path

__all__ = ["ARGS", "PATH", "render"]

PATH = Path(__file__).resolve().parent / "ida.out"
"""Where the golden output lives."""

ARGS = [
    "run", "bank_outage", "--seed", "7", "--hours", "2",
    "--set", "outage.start_h=1", "--set", "outage.hours=0.5", "--events", "12", "--no-save",
]  # fmt: skip
"""The command line (after ``python -m simulations``) whose output is golden."""


def render() -> str:
    """What ``python -m simulations`` prints on stdout for :data:`ARGS`."""
    from .__main__ import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        code = main(ARGS)
    if code != 0:
        raise SystemExit(f"the golden command failed with exit code {code}")
    return out.getvalue()


if __name__ == "__main__":
    if sys.argv[1:]:  # --help or anything else: say what this does, change nothing
        print(
            f"usage: python -m simulations.golden\n\nRewrites {PATH} with the output of "
            f"'python -m simulations {' '.join(ARGS)}'; review it with git diff.",
            file=sys.stderr,
        )
        raise SystemExit(0 if sys.argv[1:] in (["-h"], ["--help"]) else 2)
    PATH.write_text(render())
    print(f"wrote {PATH}", file=sys.stderr)
