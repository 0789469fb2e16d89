"""``run()``: one simulated day from a scenario name, a seed and overrides."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from hms_bus import Bus

from . import ida
from .results import Result
from .scenario import DEFAULT_SCENARIO, Scenario
from .watchers import monitor_rules

__all__ = ["run", "check_seed", "check_hours", "progress_bar"]

MAX_HOURS = 24 * 30
"""The longest run, in simulated hours."""

BAR = "{desc}: {percentage:3.0f}%|{bar}| {n:.1f}/{total:g} simulated h [{elapsed}<{remaining}]"


def run(
    scenario: str | Scenario = DEFAULT_SCENARIO,
    *,
    seed: int = ida.RANDOM_SEED,
    hours: float = ida.SIM_HOURS,
    overrides: Mapping[str, Any] | None = None,
    progress: bool | None = None,
    listeners: Iterable[Callable[[Bus], Any]] = (),
    **kw: Any,
) -> Result:
    """Simulate one Ida relief day and return its :class:`~simulations.Result`.

    :param scenario: a stored scenario's name (see ``scenarios()``) or a
        :class:`Scenario`.
    :param seed: the same seed gives the same events, ids and alerts.
    :param hours: simulated hours to run, from midnight.
    :param overrides: parameters to change, by dotted name, e.g.
        ``{"monitor.threshold": 3}``; keyword arguments do the same
        (``**{"bank.failure_rate": 0.2}`` or ``bank__failure_rate=0.2``).
    :param progress: show a progress bar on stderr; by default only when
        stderr is a terminal, and only once a run takes more than 2 s.
    :param listeners: callables to watch the day live. Each is called once
        with the run's :class:`~hms_bus.Bus`, after the simulation's own
        ledger, pager, monitor and dashboard have subscribed and before the
        first event, so it can ``bus.subscribe(...)``; its subscribers then
        get every event while the virtual clock shows that event's time.
        The bus is closed when ``run`` returns: do not keep it.
    """
    sc = Scenario.load(scenario).override(overrides, **kw)
    seed = check_seed(seed)
    hours = check_hours(hours)
    listeners = ida.check_listeners(listeners)
    with progress_bar(hours, progress, desc=sc.name, bar_format=BAR) as bar:

        def step(t: float) -> None:
            bar.update(t / 3600 - bar.n)

        day = ida.simulate(
            sc, seed=seed, hours=hours, rules=monitor_rules, progress=step, listeners=listeners
        )
    return Result(sc, day)


def check_seed(seed: object) -> int:
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a whole number of 0 or more, e.g. 7; got {seed!r}")
    return seed


def check_hours(hours: object) -> float:
    if (
        isinstance(hours, bool)
        or not isinstance(hours, (int, float))
        or not (0 < hours <= MAX_HOURS)
    ):
        raise ValueError(f"hours={hours!r} is out of range; allowed: (0, {MAX_HOURS}] h")
    return hours


def progress_bar(total: float, enabled: bool | None, **kw: Any) -> Any:
    """A tqdm bar on stderr; off when ``enabled`` is False, or when None and
    stderr is not a terminal. It appears only if the work lasts over 2 s."""
    from tqdm import tqdm

    if enabled is None:
        enabled = sys.stderr.isatty()
    return tqdm(total=total, disable=not enabled, delay=2, file=sys.stderr, leave=False, **kw)
