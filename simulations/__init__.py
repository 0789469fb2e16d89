"""Simulations that drive the hms_bus: the Hurricane Ida relief day.

    from simulations import run, sweep, scenarios, Scenario

    result = run("bank_outage", seed=7, hours=24, **{"monitor.threshold": 3})
    result.summary          # payments, dollars, time to detect, false alerts...
    result.events           # a pandas DataFrame, one row per event
    result.alerts           # the alert timeline (firing / resolved)
    result.plot_rates()     # a matplotlib Figure

    table = sweep("bank_outage", {"monitor.threshold": [3, 5, 8]}, seeds=range(1, 11))

    # watch the day live: each listener gets the run's bus before the first event
    run("bank_outage", listeners=[lambda bus: bus.subscribe("alerts.*", print)])

``scenarios()`` lists the stored scenarios; ``Scenario.load(name).table()``
shows every parameter with its range. The model itself is
:mod:`simulations.ida`.
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
