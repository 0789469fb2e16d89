"""Listeners: your own subscribers on a simulated day's bus, while it runs.

Runs are two simulated hours with the bank's outage moved to 01:00, as in
``test_simulation.py``.
"""

from __future__ import annotations

import pandas as pd
import pytest

from hms_bus import Bus, HmsBusError
from simulations import Result, run

EARLY_OUTAGE = {"outage.start_h": 1, "outage.hours": 0.5}


class Live:
    """A listener that counts sent payments and keeps alert notices, noting
    how far the simulated clock was from each event when it arrived."""

    def __init__(self) -> None:
        self.calls: list[dict] = []
        self.bus: Bus | None = None
        self.sent = 0
        self.dollars = 0
        self.alerts: list = []
        self.lag: list[float] = []

    def __call__(self, bus: Bus) -> None:
        self.bus = bus
        self.calls.append(bus.status())
        bus.subscribe("payments.sent", self.on_sent, name="test-dashboard")
        bus.subscribe("alerts.*", self.on_alert, name="test-pager")

    def on_sent(self, ev) -> None:
        self.sent += 1
        self.dollars += ev["data"]["amount"]
        self.lag.append(self.bus.clock.now() - ev.time)

    def on_alert(self, ev) -> None:
        self.alerts.append(ev)
        self.lag.append(self.bus.clock.now() - ev.time)


@pytest.fixture(scope="module")
def live() -> tuple[Live, Result]:
    listener = Live()
    result = run("bank_outage", seed=7, hours=2, overrides=EARLY_OUTAGE, listeners=[listener])
    return listener, result


def test_a_listener_is_called_once_with_the_runs_bus_before_the_first_event(live):
    listener, _ = live
    assert len(listener.calls) == 1
    assert isinstance(listener.bus, Bus)
    status = listener.calls[0]
    assert status["published"] == 0
    assert status["subscriptions"] > 0  # the ledger, pager, dashboard and monitor are on


def test_a_listener_counts_sent_payments_live_as_the_summary_does(live):
    listener, result = live
    assert listener.sent > 0
    assert listener.sent == result.summary["payments_sent"]
    assert listener.dollars == result.summary["dollars_disbursed"]


def test_a_listener_sees_the_same_alert_notices_as_the_result(live):
    listener, result = live
    assert len(listener.alerts) > 0
    seen = pd.DataFrame(
        [(e.id, e.ts, e["data"]["rule"], e["data"]["state"]) for e in listener.alerts],
        columns=["id", "ts", "rule", "state"],
    )
    pd.testing.assert_frame_equal(seen, result.alerts[["id", "ts", "rule", "state"]])


def test_listeners_hear_each_event_at_its_simulated_time(live):
    """Delivery is live: the simulated clock has not moved on when a
    listener's subscriber gets an event."""
    listener, _ = live
    assert listener.lag and max(map(abs, listener.lag)) < 1e-6


def test_the_bus_is_closed_once_the_run_returns(live):
    listener, _ = live
    with pytest.raises(HmsBusError):
        listener.bus.publish("too.late", {})


def test_listening_does_not_change_the_day(live):
    _, result = live
    plain = run("bank_outage", seed=7, hours=2, overrides=EARLY_OUTAGE)
    pd.testing.assert_frame_equal(result.events, plain.events)
    assert result.summary == plain.summary


def test_every_listener_is_called_in_the_order_given():
    order = []
    run(
        "calm",
        seed=1,
        hours=0.1,
        listeners=(lambda b: order.append("a"), lambda b: order.append("b")),
    )
    assert order == ["a", "b"]


def test_a_listener_that_is_not_callable_is_refused_by_name():
    with pytest.raises(TypeError, match=r"listeners\[1\] is 42, not a callable"):
        run("calm", seed=1, hours=0.1, listeners=[print, 42])


def test_a_single_function_for_listeners_says_to_wrap_it_in_a_list():
    with pytest.raises(TypeError, match=r"listeners=\[fn\]"):
        run("calm", seed=1, hours=0.1, listeners=print)


def test_listeners_that_are_not_a_collection_are_refused():
    with pytest.raises(TypeError, match=r"listeners must be .* got 7"):
        run("calm", seed=1, hours=0.1, listeners=7)
    with pytest.raises(TypeError, match=r"listeners must be .* got 'print'"):
        run("calm", seed=1, hours=0.1, listeners="print")


def test_a_failing_listener_setup_stops_the_run_and_closes_its_bus():
    buses = []

    def broken(bus):
        buses.append(bus)
        raise RuntimeError("no screen attached")

    with pytest.raises(RuntimeError, match="no screen attached"):
        run("calm", seed=1, hours=0.1, listeners=[broken])
    with pytest.raises(HmsBusError):
        buses[0].publish("too.late", {})
