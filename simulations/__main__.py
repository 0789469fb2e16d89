"""Command line for the kit's simulations: ``python -m simulations run``.

Until the Hurricane Ida simulation lands, ``run`` plays the chapter's quick demo.
"""

from __future__ import annotations

import runpy
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] != ["run"]:
        print("usage: python -m simulations run", file=sys.stderr)
        return 2
    runpy.run_path(str(Path(__file__).with_name("quick_demo.py")), run_name="__main__")
    return 0


if __name__ == "__main__":
    sys.exit(main())
