"""The harness that runs the Ida model: ``simulate()`` one day and ``run()`` it into a Result.

:mod:`simulations.ida` is the model (facilities and actors). This module
gives it a fresh virtual clock and bus, subscribes the watchers (audit
ledger, pager, dashboard, monitor) and the caller's listeners, runs SimPy in
chunks with the cycle collector paused, and always closes the bus.
"""

from __future__ import annotations

import gc
import sys
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import simpy

from hms_bus import Bus, Event, VirtualClock

from . import ida
from .incidents import Incident
from .params import MAX_H, parse_slot, slot_name
from .scenario import DEFAULT_SCENARIO, Scenario, idle
from .watchers import AuditLedger, Dashboard, Pager, monitor_rules

__all__ = [
    "Day",
    "IncidentWarning",
    "run",
    "simulate",
    "check_seed",
    "check_hours",
    "check_listeners",
    "incidents_outside",
    "progress_bar",
]

MAX_HOURS = MAX_H
"""The longest run, in simulated hours."""

CHUNK_S = 900  # s of simulated time between progress-bar updates
GC_GENERATION = 0  # the generation run() collects after a day (see no_gc)

BAR = "{desc}: {percentage:3.0f}%|{bar}| {n:.1f}/{total:g} simulated h [{elapsed}<{remaining}]"


class IncidentWarning(UserWarning):
    """A scheduled incident falls outside the simulated hours, or a changed
    incident setting has no effect because that incident lasts 0 h."""


@dataclass
class Day:
    """Everything one simulated day left behind, before it becomes a Result."""

    scenario: Scenario
    seed: int
    hours: float
    start: float  # epoch seconds of the simulated midnight
    events: list[Event]  # every event, in publish order (the audit ledger)
    alerts: list[Event]  # the alerts.* events, as the pager heard them
    timeline: Any  # the monitor's timeline DataFrame, or None without a monitor
    pages: int
    dashboard: Dashboard
    in_flight_payments: int
    incidents: list[Incident]
    bus_status: dict
    wall_s: float


def simulate(
    scenario: Scenario,
    *,
    seed: int = ida.RANDOM_SEED,
    hours: float = ida.SIM_HOURS,
    monitor: bool = True,
    progress: Callable[[float], None] | None = None,
    listeners: Iterable[Callable[[Bus], Any]] = (),
) -> Day:
    """Run one day of ``scenario`` (checked arguments) and return its :class:`Day`.

    A fresh virtual clock and a fresh bus per run keep runs independent: the
    same ``seed`` gives the same events, ids and alerts. ``monitor=False``
    leaves the monitor out (a sweep backtests the rules afterwards);
    ``progress`` is called with the simulated seconds done after each chunk.
    ``listeners`` are called once each with the bus, after the watchers have
    subscribed and before the first event.
    """
    wall = time.perf_counter()
    with no_gc():
        clock = VirtualClock(ida.START)
        bus = Bus(clock=clock, seed=seed, src="ida")
        mon = None
        try:
            ledger = AuditLedger(bus)
            pager = Pager(bus)
            if monitor:
                from hms_bus.monitor import Monitor

                mon = Monitor(bus, rules=monitor_rules(scenario))
            env = simpy.Environment()
            relief = ida.Relief(env, bus, clock, seed)
            dashboard = Dashboard(bus)
            incidents = scenario.incidents
            ach = ida.setup(env, relief, scenario, incidents, dashboard)
            for listener in listeners:
                listener(bus)
            end = hours * 3600.0
            for until in _chunks(end, CHUNK_S):
                env.run(until=until)
                relief.tick()
                if progress is not None:
                    progress(until)
            dashboard.snapshot(end / 3600)
            timeline = None
            if mon is not None:
                mon.close()
                timeline = mon.timeline()
            bus.flush()
            status = bus.status()
        finally:
            if mon is not None:
                mon.close()
            bus.close()
    return Day(
        scenario=scenario,
        seed=seed,
        hours=hours,
        start=relief.t0,
        events=ledger.events,
        alerts=pager.alerts,
        timeline=timeline,
        pages=pager.pages,
        dashboard=dashboard,
        in_flight_payments=ach.open,
        incidents=[i for i in incidents if i.start_h < hours],
        bus_status=status,
        wall_s=time.perf_counter() - wall,
    )


def run(
    scenario: str | Scenario = DEFAULT_SCENARIO,
    *,
    seed: int = ida.RANDOM_SEED,
    hours: float = ida.SIM_HOURS,
    overrides: Mapping[str, Any] | None = None,
    progress: bool | None = None,
    listeners: Iterable[Callable[[Bus], Any]] = (),
    **kw: Any,
):
    """Simulate one Ida relief day and return its :class:`~simulations.Result`.

    :param scenario: a stored scenario's name (see ``scenarios()``), a
        scenario file's path, or a :class:`Scenario`.
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

    An incident that starts after the run ends is left out of the scoring,
    with an :class:`IncidentWarning`; so is an override of an incident field
    whose incident does not happen (``flood.start_h`` with ``flood.hours`` 0).
    The command line refuses both.
    """
    from .results import Result

    sc = Scenario.load(scenario).override(overrides, **kw)
    seed = check_seed(seed)
    hours = check_hours(hours)
    listeners = check_listeners(listeners)
    for text in incidents_outside(sc, hours) + idle_changes(sc):
        warnings.warn(text, IncidentWarning, stacklevel=2)
    with no_gc():
        with progress_bar(hours, progress, desc=sc.name, bar_format=BAR) as bar:

            def step(t: float) -> None:
                bar.update(t / 3600 - bar.n)

            day = simulate(sc, seed=seed, hours=hours, progress=step, listeners=listeners)
        result = Result(day)
        del day
    # Everything the day made is still in the youngest generation; its
    # garbage (SimPy processes, the closed bus) goes now, older objects
    # (earlier results in a notebook) are not rescanned.
    gc.collect(GC_GENERATION)
    return result


def incidents_outside(scenario: Scenario, hours: float) -> list[str]:
    """A sentence for each incident that starts at or after the end of a run of ``hours``."""
    return [
        f"{inc.text()} starts after the {hours:g} h run ends; move it "
        f"(e.g. {inc.name}.start_h={max(0.0, hours / 2):g}) or run longer "
        f"(hours >= {inc.end_h:g})"
        for inc in scenario.incidents
        if inc.start_h >= hours
    ]


def idle_changes(scenario: Scenario) -> list[str]:
    """A sentence for each changed incident field whose incident does not happen
    (``flood.start_h`` changed while ``flood.hours`` stays 0)."""
    out = []
    for name in scenario.changed:
        slot = parse_slot(name)
        text = idle(scenario, name)
        if text and slot_name(slot[0], slot[1], "hours") not in scenario.changed:
            out.append(text)
    return out


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


def check_listeners(listeners: object) -> tuple[Callable[[Bus], Any], ...]:
    """``listeners`` as a tuple of callables, or a TypeError naming the bad value."""
    if callable(listeners):
        raise TypeError(
            f"listeners takes a list of callables, got the single {listeners!r}; "
            "wrap it: listeners=[fn]"
        )
    if isinstance(listeners, (str, bytes)) or not isinstance(listeners, Iterable):
        raise TypeError(
            f"listeners must be a list of callables that each take the bus, got {listeners!r}"
        )
    found = tuple(listeners)
    for i, fn in enumerate(found):
        if not callable(fn):
            raise TypeError(
                f"listeners[{i}] is {fn!r}, not a callable; give functions that take the bus, "
                "e.g. listeners=[lambda bus: bus.subscribe('payments.sent', count)]"
            )
    return found


@contextmanager
def no_gc() -> Iterator[None]:
    """Pause the cycle collector while a day runs. A run keeps every event
    alive, so the collector would only rescan a growing heap again and again
    (a third of the time of a million-event run). Everything the day made
    stays in the youngest generation, so its garbage (SimPy processes, the
    closed bus) is collected afterwards by ``gc.collect(0)`` without
    rescanning older objects, such as earlier results in a notebook."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collecting:
            gc.enable()


def _chunks(end: float, step: float) -> Iterator[float]:
    t = 0.0
    while t < end:
        t = min(t + step, end)
        yield t


def progress_bar(total: float, enabled: bool | None, **kw: Any) -> Any:
    """A tqdm bar on stderr; off when ``enabled`` is False, or when None and
    stderr is not a terminal. It appears only if the work lasts over 2 s."""
    from tqdm import tqdm

    if enabled is None:
        enabled = sys.stderr.isatty()
    return tqdm(total=total, disable=not enabled, delay=2, file=sys.stderr, leave=False, **kw)
