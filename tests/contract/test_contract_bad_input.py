"""Bad input on every backend: the table of ``tests/test_bad_input.py``, per engine.

Each bad input gets its clear error, changes nothing, and the same bus still
delivers, replays and flushes (``still_works``), whatever stores its events.
"""

from __future__ import annotations

import pytest
from test_bad_input import REFUSED, still_works


@pytest.mark.parametrize(
    ("call", "exc", "message"),
    [pytest.param(call, exc, message, id=name) for name, call, exc, message in REFUSED],
)
def test_bad_input_is_refused_clearly_and_the_bus_still_works(bus, clock, call, exc, message):
    before = (clock.now(), bus.status()["published"], len(bus.replay()))
    with pytest.raises(exc, match=message):
        call(bus, clock)
    assert (clock.now(), bus.status()["published"], len(bus.replay())) == before
    still_works(bus)


def test_an_unprintable_subscriber_error_is_reported_and_delivery_goes_on(bus):
    class Unprintable(Exception):
        def __str__(self) -> str:
            raise RuntimeError("no words")

    def broken(ev):
        raise Unprintable

    errors: list = []
    after: list = []
    bus.subscribe("bus.subscriber_error", errors.append)
    bus.subscribe("a.b", broken)
    bus.subscribe("a.b", after.append)
    ev = bus.publish("a.b")
    bus.flush(10)
    assert after == [ev]
    assert errors[0]["data"]["error"] == (
        "Unprintable: <str() of this exception raised RuntimeError>"
    )
    still_works(bus)


def test_a_subscriber_raising_system_exit_does_not_stop_the_others(bus, received):
    """On a fed backend the worker reports it; locally it stops that publish, like
    KeyboardInterrupt, and the rest get the event with the next flush."""

    def quits(ev):
        raise SystemExit(3)

    bus.subscribe("a.b", quits)
    bus.subscribe("a.b", received.append)
    try:
        ev = bus.publish("a.b")
    except SystemExit:
        ev = bus.replay("a.b")[0]
    bus.flush(10)
    assert received == [ev]
    still_works(bus)
