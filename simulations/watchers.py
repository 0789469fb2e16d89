"""Who listens to the Ida day: the governor's dashboard, the pager, the audit
ledger, and the monitor's rules.

None of them changes what happens in the simulation; they only subscribe to
the bus, as the chapter's dashboards and alerting tools do.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hms_bus import Bus

__all__ = ["Dashboard", "Pager", "AuditLedger", "monitor_rules"]

LATENCY_WINDOW_S = 300  # s over which the bank's p95 latency is measured
FAILURE_WINDOW_S = 600  # s over which the share of failed payments is measured
FAILURE_MIN_PAYMENTS = 10  # payments in that window before the share means anything
HLT_WAIT_WINDOW_S = 300  # s over which the p95 wait for HMS-HLT is measured
REJECTED_WINDOW_S = 60  # s over which HMS-HLT's rejections are counted


class Dashboard:
    """The governor's dashboard: live counters kept from bus subscriptions."""

    def __init__(self, bus: Bus) -> None:
        self.requests = self.approved = self.denied = self.sent = self.failed = 0
        self.dollars = 0
        self.snapshots: list[dict[str, float]] = []
        bus.subscribe("portal.request", self._request, name="dashboard")
        bus.subscribe("hlt.checked", self._checked, name="dashboard")
        bus.subscribe("payments.*", self._payment, name="dashboard")

    def _request(self, ev: Any) -> None:
        self.requests += 1

    def _checked(self, ev: Any) -> None:
        if ev.data["outcome"] == "evacuated":
            self.approved += 1
        else:
            self.denied += 1

    def _payment(self, ev: Any) -> None:
        if ev.topic == "payments.sent":
            self.sent += 1
            self.dollars += ev.data["amount"]
        elif ev.topic == "payments.failed":
            self.failed += 1

    def snapshot(self, hour: float) -> None:
        self.snapshots.append(
            {
                "hour": hour,
                "requests": self.requests,
                "approved": self.approved,
                "payments_sent": self.sent,
                "payments_failed": self.failed,
                "dollars": self.dollars,
            }
        )


class Pager:
    """The on-call pager: hears every alert and pages a human when one fires."""

    def __init__(self, bus: Bus) -> None:
        self.alerts: list[Any] = []
        self.pages = 0
        self._bus = bus
        bus.subscribe("alerts.*", self._on_alert, name="pager")

    def _on_alert(self, ev: Any) -> None:
        self.alerts.append(ev)
        data = ev.data
        if data.get("state") == "firing":
            self.pages += 1
            self._bus.publish(
                "pager.page",
                {"rule": data.get("rule"), "to": "on-call", "alert": ev.id},
                src="pager",
            )


class AuditLedger:
    """The compliance ledger: keeps every event on the bus, in order."""

    def __init__(self, bus: Bus) -> None:
        self.events: list[Any] = []
        bus.subscribe(">", self.events.append, name="audit-ledger")


def monitor_rules(p: Mapping[str, Any]) -> list:
    """The monitor's rules for a run: the chapter's error storm (its count and
    window set by ``monitor.threshold`` and ``monitor.window``), three that
    watch the payments themselves and two that watch HMS-HLT's queue (each
    off when its parameter is 0)."""
    from hms_bus.monitor import absence, frequency, ratio, threshold

    keep = {"keep_firing_for": p["monitor.keep_firing_s"]}
    rules = [
        frequency(
            "error_storm",
            "*.error",
            count=p["monitor.threshold"],
            window=p["monitor.window"],
            **keep,
        )
    ]
    if p["monitor.absence_s"] > 0:
        rules.append(
            absence("payments_stalled", "payments.sent", window=p["monitor.absence_s"], **keep)
        )
    if p["monitor.latency_p95_s"] > 0:
        rules.append(
            threshold(
                "bank_slow",
                "bank.response",
                field="latency_ms",
                agg="p95",
                above=p["monitor.latency_p95_s"] * 1000,
                window=LATENCY_WINDOW_S,
                **keep,
            )
        )
    if p["monitor.failure_ratio"] > 0:
        rules.append(
            ratio(
                "payments_failing",
                "payments.failed",
                of="payments.*",
                above=p["monitor.failure_ratio"],
                window=FAILURE_WINDOW_S,
                min_of=FAILURE_MIN_PAYMENTS,
                **keep,
            )
        )
    if p["monitor.hlt_wait_p95_s"] > 0:
        rules.append(
            threshold(
                "hlt_backlog",
                "hlt.checked",
                field="wait_ms",
                agg="p95",
                above=p["monitor.hlt_wait_p95_s"] * 1000,
                window=HLT_WAIT_WINDOW_S,
                **keep,
            )
        )
    if p["monitor.rejected_count"] > 0:
        rules.append(
            frequency(
                "requests_rejected",
                "hlt.rejected",
                count=p["monitor.rejected_count"],
                window=REJECTED_WINDOW_S,
                **keep,
            )
        )
    return rules


MONITOR_PREFIX = "monitor."
"""Parameters under this prefix change only the rules above, never the simulated events."""
