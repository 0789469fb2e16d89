"""Command line for the Ida relief simulation.

    python -m simulations run [SCENARIO | FILE.json] --seed 7 --hours 24 --out out/
    python -m simulations sweep bank_outage [MORE...] --set monitor.threshold=3,5,8 --seeds 1-10
    python -m simulations backtest out/ --set monitor.threshold=3
    python -m simulations scenarios [--params [NAME]]

``run`` prints the summary, the incidents and the alert timeline and writes
events, alerts, incidents, the dashboard, the summary and the plot under
``--out``. ``sweep`` prints time to detect against false alerts, payments and
dollars for every setting and writes the tables and ``sweep.png``.
``backtest`` re-scores a day ``run`` wrote with changed monitor parameters.
Parameters are changed with ``--set NAME=VALUE`` (repeatable).

Every mistake is reported on one line, before any work starts when it can
be known then; outputs are written all at once or not at all. ``--out`` may
be a new folder or one that holds other files: the report replaces only the
files an earlier run wrote there and nobody changed since (listed in its
``.simulations-report.json``); any other file of a report's name is refused
unless ``--force``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any, NoReturn

from . import ida
from .output import check_out
from .results import OUTPUT_FILES
from .runner import check_hours, check_seed, incidents_outside, run
from .scenario import DEFAULT_SCENARIO, Scenario, broken_scenarios, idle, scenarios
from .sweep import SWEEP_FILES, _hours_of, idle_everywhere, parse_seeds, parse_setting, sweep


class CliError(Exception):
    """A mistake on the command line, reported as one line."""


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise CliError(f"{message} (see 'python -m simulations {self._hint()} --help')")

    def _hint(self) -> str:
        return self.prog.split("simulations", 1)[-1].strip() or ""


def _parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="python -m simulations",
        description="Simulate the Hurricane Ida relief day on the hms_bus.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--hours", type=float, default=ida.SIM_HOURS, help="simulated hours")
        p.add_argument("--out", default="out", help="where to write the report (default out/)")
        p.add_argument(
            "--force", action="store_true",
            help="replace files in --out that an earlier run did not write (or that were "
            "edited since); without it they are refused, before simulating",
        )  # fmt: skip
        p.add_argument(
            "--no-progress", action="store_true", help="never show a progress bar on stderr"
        )

    r = sub.add_parser("run", help="simulate one day and write a report")
    r.add_argument(
        "scenario",
        nargs="?",
        default=DEFAULT_SCENARIO,
        help=f"a stored scenario (default {DEFAULT_SCENARIO}) or a scenario file's path",
    )
    common(r)
    r.add_argument("--seed", type=int, default=ida.RANDOM_SEED, help="random seed (default 7)")
    r.add_argument(
        "--set", action="append", default=[], metavar="NAME=VALUE",
        help="change a parameter, e.g. monitor.threshold=3 (repeatable)",
    )  # fmt: skip
    r.add_argument(
        "--events", type=int, default=0, metavar="N", help="also print the first N events"
    )
    r.add_argument("--no-save", action="store_true", help="print only; write nothing")

    s = sub.add_parser("sweep", help="compare parameter settings over many seeds")
    s.add_argument(
        "scenario", nargs="*", default=[DEFAULT_SCENARIO],
        help=f"one or more scenarios (default {DEFAULT_SCENARIO})",
    )  # fmt: skip
    common(s)
    s.add_argument(
        "--set", action="append", default=[], metavar="NAME=V1,V2,...",
        help="values to try, e.g. monitor.threshold=3,5,8 (repeatable: a grid)",
    )  # fmt: skip
    s.add_argument("--seeds", default="1-10", help="seeds, e.g. 1-10 or 1,4,9 (default 1-10)")
    s.add_argument("--baseline", metavar="SCENARIO", help="count false alerts on this one too")
    s.add_argument("--workers", type=int, default=None, help="processes (default: one per core)")
    s.add_argument("--no-save", action="store_true", help="print only; write nothing")

    b = sub.add_parser("backtest", help="re-score a recorded day with changed monitor rules")
    b.add_argument("recorded", help="a folder written by 'run' (e.g. out/)")
    b.add_argument(
        "--set", action="append", default=[], metavar="NAME=VALUE",
        help="a monitor.* or score.* parameter to change (repeatable)",
    )  # fmt: skip

    c = sub.add_parser("scenarios", help="list the stored scenarios")
    c.add_argument(
        "--params", nargs="?", const="", default=None, metavar="NAME",
        help="list every parameter: the defaults, or the values of scenario NAME",
    )  # fmt: skip
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        parser = _parser()
        args = parser.parse_args(sys.argv[1:] if argv is None else argv)
        if args.command is None:
            parser.print_help(sys.stderr)
            return 2
        command = {"run": _run, "sweep": _sweep, "backtest": _backtest, "scenarios": _scenarios}
        return command[args.command](args)
    except (CliError, ValueError, TypeError) as exc:
        return _fail(exc, 2)
    except OSError as exc:
        return _fail(exc, 1)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def _fail(exc: BaseException, code: int) -> int:
    text = " ".join(str(exc).split()) or type(exc).__name__
    print(f"error: {text}", file=sys.stderr)
    return code


def _settings(texts: list[str], *, single: bool) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for text in texts:
        name, values = parse_setting(text)
        if single and len(values) != 1:
            raise CliError(f"--set {text!r}: give one value per parameter here; try 'sweep'")
        if name in found:
            raise CliError(
                f"{name} is set twice ({_joined(found[name])}, then {_joined(values)}); "
                f"give it once"
            )
        found[name] = values[0] if single else values
    return found


def _joined(value: Any) -> str:
    return ",".join(map(str, value)) if isinstance(value, list) else str(value)


def _refuse_outside(sc: Scenario, hours: float) -> None:
    outside = incidents_outside(sc, hours)
    if outside:
        raise CliError(outside[0])


def _run(args: argparse.Namespace) -> int:
    overrides = _settings(args.set, single=True)
    if args.events < 0:
        raise CliError(f"--events must be 0 or more, got {args.events}")
    sc = Scenario.load(args.scenario).override(overrides)
    seed, hours = check_seed(args.seed), check_hours(args.hours)
    for name in overrides:
        text = idle(sc, name)
        if text and _hours_of(name) not in overrides:
            raise CliError(text)
    _refuse_outside(sc, hours)
    out = None if args.no_save else check_out(args.out, OUTPUT_FILES, force=args.force)
    wall = time.perf_counter()
    result = run(sc, seed=seed, hours=hours, progress=False if args.no_progress else None)
    print(result.report(events=args.events), flush=True)
    if out is not None:
        paths = result.save(out, force=args.force)
        names = ", ".join(p.name for p in paths.values())
        print(f"\nReport written to {_shown(args.out)} ({names})")
    wall = time.perf_counter() - wall
    n = result.summary["events"]
    print(
        f"simulated {hours:g} h: {n:,} events in {result.wall_s:.2f} s "
        f"({n / result.wall_s:,.0f} events/s); {wall:.2f} s with the report",
        file=sys.stderr,
    )
    return 0


def _sweep(args: argparse.Namespace) -> int:
    grid = _settings(args.set, single=False)
    seeds, hours = parse_seeds(args.seeds), check_hours(args.hours)
    loaded = [Scenario.load(name) for name in args.scenario]
    # Settings with one value are fixed for every run, unless none has several:
    # then they are the grid (and with no --set at all, the default grid).
    fixed = {name: values[0] for name, values in grid.items() if len(values) == 1}
    if any(len(values) > 1 for values in grid.values()):
        grid = {name: values for name, values in grid.items() if len(values) > 1}
    else:
        grid, fixed = grid or {"monitor.threshold": [3, 5, 8]}, {}
    extra = [Scenario.load(args.baseline)] if args.baseline else []
    given = {**fixed, **grid}
    for name in given:
        if _hours_of(name) not in given:
            text = idle_everywhere([sc.override(fixed) for sc in [*loaded, *extra]], name, grid)
            if text:
                raise CliError(text)
    for sc in [*loaded, *extra]:
        for name, values in grid.items():
            for value in values:
                _refuse_outside(sc.override(fixed).override({name: value}), hours)
        _refuse_outside(sc.override(fixed), hours)
    out = None if args.no_save else check_out(args.out, SWEEP_FILES, force=args.force)
    result = sweep(
        loaded,
        grid,
        seeds=seeds,
        hours=hours,
        baseline=args.baseline,
        workers=args.workers,
        progress=False if args.no_progress else None,
        **fixed,
    )
    print(result.report(), flush=True)
    if out is not None:
        paths = result.save(out, force=args.force)
        names = ", ".join(p.name for p in paths.values())
        print(f"\nSweep written to {_shown(args.out)} ({names})")
    return 0


def _backtest(args: argparse.Namespace) -> int:
    from .replay import backtest

    changes = _settings(args.set, single=True)
    print(backtest(args.recorded, changes).report())
    return 0


def _scenarios(args: argparse.Namespace) -> int:
    for name, description in scenarios().items():
        mark = " (default)" if name == DEFAULT_SCENARIO else ""
        print(f"{name:<20} {description}{mark}")
    for name, problem in broken_scenarios().items():
        print(f"warning: {name}.json is skipped: {problem}", file=sys.stderr)
    if args.params is not None:
        sc = Scenario.load(args.params) if args.params else Scenario("defaults")
        print()
        print(f"Parameters of {sc.name}:" if args.params else "Parameters (defaults):")
        print(sc.table())
    return 0


def _shown(out: str) -> str:
    return Path(out).as_posix().rstrip("/") + "/"


if __name__ == "__main__":
    sys.exit(main())
