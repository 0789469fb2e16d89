"""hms_bus.monitor: alert rules that fire once, resolve, reach people, and backtest.

from hms_bus.monitor import Monitor
with Monitor():                      # the chapter's rule: 5 *.error within 60 s
    ...                              # alerts arrive on alerts.error_storm
"""

from __future__ import annotations

from .backtest import backtest
from .monitor import Monitor
from .rules import Rule, absence, default_rules, frequency, ratio, threshold

__all__ = [
    "Monitor",
    "Rule",
    "absence",
    "backtest",
    "default_rules",
    "frequency",
    "ratio",
    "threshold",
]
