"""Simulations that drive the hms_bus: the Hurricane Ida relief day.

    from simulations import run, sweep, backtest, scenarios, Scenario

    result = run("bad_day", seed=7, **{"monitor.threshold": 3})
    result.summary          # payments, dollars, HLT wait, incidents detected, false alerts
    result.incidents        # each scheduled incident: detected, how soon, by which rule
    result.events           # one row per event: ts, time, hour, topic, src, id, data
    result.select("payments.*")   # those events, data fields as columns
    result.alerts           # the monitor's alert timeline (firing / resolved)
    result.plot_rates()     # payments, traffic per family, HLT wait, alert lanes

    sw = sweep("bank_outage", {"monitor.threshold": [3, 5, 8]}, seeds=range(1, 11))
    sw.table, sw.plot()     # time to detect against false alerts, payments, dollars

    backtest("out/", monitor__threshold=3)   # a day `run` wrote, scored with other rules

    # watch the day live: each listener gets the run's bus before the first event
    run("bank_outage", listeners=[lambda bus: bus.subscribe("alerts.*", print)])

``scenarios()`` lists the stored scenarios; ``Scenario.load(name).table()``
shows every parameter with its range; ``simulations/SCENARIOS.md`` explains
how to write one. The model is :mod:`simulations.ida`, the harness that runs
it :mod:`simulations.runner`.
"""

from __future__ import annotations

from .params import KINDS, PARAMS
from .replay import backtest, load_events
from .results import Result
from .runner import IncidentWarning, run
from .scenario import DEFAULT_SCENARIO, Scenario, scenarios
from .sweep import Sweep, sweep

__all__ = [
    "DEFAULT_SCENARIO",
    "IncidentWarning",
    "KINDS",
    "PARAMS",
    "Result",
    "Scenario",
    "Sweep",
    "backtest",
    "load_events",
    "run",
    "scenarios",
    "sweep",
]
