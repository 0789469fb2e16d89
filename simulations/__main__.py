"""Command line for the Ida relief simulation.

    python -m simulations run [SCENARIO] --seed 7 --hours 24 --out out/
    python -m simulations sweep bank_outage --set monitor.threshold=3,5,8 --seeds 1-10
    python -m simulations scenarios [--params]

``run`` prints the summary and the alert timeline and writes events, alerts,
the dashboard, the summary and the rates plot under ``--out``. ``sweep``
prints time to detect against false alerts for every setting. Parameters are
changed with ``--set NAME=VALUE`` (repeatable); ``scenarios --params`` lists
them all with their ranges.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from . import ida
from .runner import run
from .scenario import DEFAULT_SCENARIO, Scenario, scenarios
from .sweep import parse_seeds, parse_setting, sweep


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m simulations",
        description="Simulate the Hurricane Ida relief day on the hms_bus.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "scenario",
            nargs="?",
            default=DEFAULT_SCENARIO,
            help=f"a stored scenario (default {DEFAULT_SCENARIO}); "
            "see 'python -m simulations scenarios'",
        )
        p.add_argument("--hours", type=float, default=ida.SIM_HOURS, help="simulated hours")
        p.add_argument("--out", default="out", help="where to write the report (default out/)")
        p.add_argument(
            "--no-progress", action="store_true", help="never show a progress bar on stderr"
        )

    r = sub.add_parser("run", help="simulate one day and write a report")
    common(r)
    r.add_argument("--seed", type=int, default=ida.RANDOM_SEED, help="random seed (default 7)")
    r.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="change a parameter, e.g. monitor.threshold=3 (repeatable)",
    )
    r.add_argument(
        "--events", type=int, default=0, metavar="N", help="also print the first N events"
    )
    r.add_argument("--no-save", action="store_true", help="print only; write nothing")

    s = sub.add_parser("sweep", help="compare parameter settings over many seeds")
    common(s)
    s.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=V1,V2,...",
        help="values to try, e.g. monitor.threshold=3,5,8 (repeatable: a grid)",
    )
    s.add_argument("--seeds", default="1-10", help="seeds, e.g. 1-10 or 1,4,9 (default 1-10)")

    c = sub.add_parser("scenarios", help="list the stored scenarios")
    c.add_argument("--params", action="store_true", help="also list every parameter")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        return {"run": _run, "sweep": _sweep, "scenarios": _scenarios}[args.command](args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace) -> int:
    overrides = {}
    for text in args.set:
        name, values = parse_setting(text)
        if len(values) != 1:
            raise ValueError(f"--set {text!r}: run takes one value per parameter; try 'sweep'")
        overrides[name] = values[0]
    wall = time.perf_counter()
    result = run(
        args.scenario,
        seed=args.seed,
        hours=args.hours,
        overrides=overrides,
        progress=False if args.no_progress else None,
    )
    print(result.report(events=args.events))
    if not args.no_save:
        paths = result.save(args.out)
        names = ", ".join(p.name for p in paths.values())
        print(f"\nReport written to {Path(args.out).as_posix()}/ ({names})")
    wall = time.perf_counter() - wall
    n = result.summary["events"]
    print(
        f"simulated {args.hours:g} h: {n:,} events in {result.wall_s:.2f} s "
        f"({n / result.wall_s:,.0f} events/s); {wall:.2f} s with the report",
        file=sys.stderr,
    )
    return 0


def _sweep(args: argparse.Namespace) -> int:
    grid = dict(parse_setting(text) for text in args.set)
    result = sweep(
        args.scenario,
        grid or None,
        seeds=parse_seeds(args.seeds),
        hours=args.hours,
        progress=False if args.no_progress else None,
    )
    print(result.report())
    paths = result.save(args.out)
    names = ", ".join(p.name for p in paths.values())
    print(f"\nSweep written to {Path(args.out).as_posix()}/ ({names})")
    return 0


def _scenarios(args: argparse.Namespace) -> int:
    for name, description in scenarios().items():
        mark = " (default)" if name == DEFAULT_SCENARIO else ""
        print(f"{name:<16} {description}{mark}")
    if args.params:
        print()
        print(Scenario("defaults").table())
    return 0


if __name__ == "__main__":
    sys.exit(main())
