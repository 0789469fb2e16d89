"""hms_bus.monitor: alert rules that fire once, resolve, reach people, and backtest.

from hms_bus.monitor import Monitor, ConsolePager
with Monitor(receivers=[ConsolePager()]):   # the chapter's rule: 5 *.error within 60 s
    ...                                      # notices also go to alerts.error_storm

The parts, one concept per module: ``rules`` (the four rule kinds),
``windows`` (sliding windows), ``lifecycle`` (pending, firing, resolved),
``evaluators`` and ``engine`` (rules over event time, each instant decided
once), ``monitor`` (live, on a bus), ``backtest`` (over recorded events),
``timeline`` (notices as data; ``timeline.COLUMNS``, ``at`` first),
``receivers`` and ``router`` (getting notices to people, silences,
inhibition), ``alertmanager`` (Alertmanager's webhook body), ``ruletest``
(given these events, expect these alerts).
"""

from __future__ import annotations

from .backtest import backtest
from .monitor import Monitor
from .receivers import Callback, ConsolePager, JsonLinesFile, Receiver, Webhook
from .router import Router
from .rules import Rule, absence, default_rules, frequency, ratio, threshold
from .ruletest import assert_alerts, check_rules

__all__ = [
    "Callback",
    "ConsolePager",
    "JsonLinesFile",
    "Monitor",
    "Receiver",
    "Router",
    "Rule",
    "Webhook",
    "absence",
    "assert_alerts",
    "backtest",
    "check_rules",
    "default_rules",
    "frequency",
    "ratio",
    "threshold",
]
