"""The live monitor: rules watching a bus, alerts published on ``alerts.<rule>``.

:class:`Monitor` subscribes to the patterns its rules watch, feeds matching
events to an :class:`~hms_bus.monitor.engine.Engine`, publishes each notice
on the bus and hands it to a router (and so to people).

It subscribes with ``deliver="new"``: a monitor judges what happens from the
moment it starts. Kept events carry old timestamps, and judging them as if
they were live would raise alarms about the past; to ask what the rules say
about history, use :func:`~hms_bus.monitor.backtest` on ``replay(...)``.

Time comes from the bus clock only. Under a :class:`~hms_bus.VirtualClock`
the monitor listens to the clock (``on_advance``), so absence alerts,
resolves, ``for_`` and repeats happen as soon as simulated time passes them,
stamped at the exact instant. Under the wall clock a small daemon thread
looks every ``tick`` seconds, ``tick`` seconds behind the clock (so an event
still being delivered is not mistaken for a late one).

An instant is decided once everything at it is known (see
:mod:`~hms_bus.monitor.engine`): the fifth error fires as it arrives, but a
heartbeat that is due at the very instant the clock shows is not called
missing until the clock moves on. So after ``clock.advance(60)`` an absence
alert for the instant 60 s appears at the next move, stamped 60 s.

Closing the monitor sends an ``ended`` notice for every incident still
firing to the receivers that heard it fire, and publishes them together on
``monitor.closed``, so nobody believes a page is still being watched.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from typing import Any

from ..errors import HmsBusError
from ..event import format_ts
from ..redact import kit_logger
from .engine import Engine
from .rules import Rule, default_rules, seconds
from .timeline import frame, to_data

__all__ = ["Monitor", "ALERT_SRC", "CLOSED_TOPIC"]

log = kit_logger("hms_bus")

ALERT_SRC = "hms-monitor"
"""The ``src`` of the alert events a monitor publishes."""

CLOSED_TOPIC = "monitor.closed"
"""Published by a monitor that closes while incidents are firing: ``at`` and
``open``, the ``ended`` notice of each (``alerts.<rule>`` carries only the
rules' own firing and resolved notices)."""


class Monitor:
    """Watch a bus with alert rules.

    :param bus: the bus to watch; the default bus (``hms_bus.get_bus()``) unless told.
    :param rules: the rules; :func:`~hms_bus.monitor.default_rules` (the
        chapter's error storm) unless told.
    :param router: a :class:`~hms_bus.monitor.Router` that delivers notices
        to receivers, with silences and inhibition.
    :param receivers: a shortcut: send every notice to each of these
        receivers (give ``router`` or ``receivers``, not both).
    :param tick: under the wall clock, how often (seconds) time-driven
        alerts are looked for.

    ``mon.router`` is the :class:`~hms_bus.monitor.Router` delivering the
    notices (an empty one, which delivers to nobody, unless you gave
    ``router`` or ``receivers``): add receivers with ``mon.router.route(...)``
    and silences with ``mon.router.silence(...)`` at any time, and read who
    was told what with ``mon.router.deliveries()``.

    >>> from hms_bus import Bus, VirtualClock
    >>> bus = Bus(clock=VirtualClock())
    >>> with Monitor(bus) as mon:
    ...     for _ in range(5):
    ...         _ = bus.publish("payments.error", {"code": 502})
    ...     mon.stats()["error_storm"]["firing"]
    1
    """

    def __init__(
        self,
        bus: Any = None,
        rules: Iterable[Rule] | Rule | None = None,
        *,
        router: Any = None,
        receivers: Iterable[Any] | None = None,
        tick: float = 0.25,
    ) -> None:
        from ..bus import Bus, get_bus

        if bus is None:
            bus = get_bus()
        if not isinstance(bus, Bus):
            raise TypeError(f"bus must be a hms_bus Bus (or None for the default), got {bus!r}")
        if router is not None and receivers is not None:
            raise ValueError(
                "give router= or receivers=, not both; add the receivers to the "
                "router with router.route(receiver)"
            )
        self.tick = seconds(tick, "tick")
        self.bus = bus
        self.clock = bus.clock
        self.engine = Engine(default_rules() if rules is None else rules, self.clock.now())
        self.rules = self.engine.rules
        from .router import Router

        if receivers is not None:
            router = Router()
            for receiver in _as_list(receivers):
                router.route(receiver)
        elif router is None:
            router = Router()
        elif not isinstance(router, Router):
            raise TypeError(f"router must be a hms_bus.monitor.Router, got {router!r}")
        self.router = router
        router.bind(self)
        self._lock = threading.Lock()
        self._closed = False
        self._subs: list[Any] = []
        self._stop_clock = lambda: None
        self._ticker: threading.Thread | None = None
        self._stopping = threading.Event()
        try:
            for pattern, fns in self.engine.routes.items():
                self._subs.append(
                    bus.subscribe(
                        pattern, self._observer(fns), deliver="new", name=f"monitor[{pattern}]"
                    )
                )
        except BaseException:
            self.close()
            raise
        if getattr(self.clock, "virtual", False):
            self._stop_clock = self.clock.on_advance(self._on_time)
        else:
            self._ticker = threading.Thread(target=self._tick, name="hms-monitor", daemon=True)
            self._ticker.start()

    # -- feeding the engine -------------------------------------------------------

    def _observer(self, fns: list) -> Any:
        lock, emit = self._lock, self._emit
        ingest, take = self.engine.ingest, self.engine.take

        def observe(event: Any) -> None:
            with lock:
                ingest(event.time, event, fns)
                out = take()
            if out:
                emit(out)

        return observe

    def _on_time(self, now: float) -> None:
        if self._closed:
            return
        with self._lock:
            self.engine.advance(now)
            out = self.engine.take()
        if out:
            self._emit(out)
        self.router.advance(now)

    def _tick(self) -> None:
        while not self._stopping.wait(self.tick):
            try:
                self._on_time(self.clock.now() - self.tick)
            except HmsBusError as exc:  # the bus was closed under us
                log.warning("monitor stopped: %s", exc)
                return

    def _emit(self, notices: list[dict[str, Any]]) -> None:
        publish = self.bus.publish
        for rec in notices:
            try:
                publish("alerts." + rec["rule"], to_data(rec), src=ALERT_SRC)
            except HmsBusError as exc:  # the bus was closed first; people still hear
                log.warning("could not publish %s %s: %s", rec["rule"], rec["state"], exc)
            except Exception as exc:  # never out of clock.advance(); receivers still hear
                log.error("could not publish %s %s: %r", rec["rule"], rec["state"], exc)
        self.router.handle_all(notices)

    # -- reading ------------------------------------------------------------------

    def timeline(self, *, pending: bool = False):
        """Every firing and resolved notice so far as a pandas DataFrame.

        The columns are :data:`~hms_bus.monitor.timeline.COLUMNS`: ``at``
        (a UTC timestamp) is the instant the state changed. With
        ``pending=True`` the rows of incidents that became ``pending``
        (waiting out ``for_``) or were ``cancelled`` before firing show too.
        The ``ended`` notices of :meth:`close` are not rule history and are
        not shown (they are on the bus and in the router's delivery log).
        """
        with self._lock:
            records = list(self.engine.history if pending else self.engine.records)
        return frame(records)

    def stats(self) -> dict[str, dict[str, Any]]:
        """Per-rule counters: ``matched``, ``late``, ``reordered``, ``skipped``,
        ``firing``, ``resolved``, ``repeats``, ``cancelled``, ``active``, ``groups``."""
        with self._lock:
            return self.engine.stats()

    def active(self, *, pending: bool = False) -> list[dict[str, Any]]:
        """The incidents firing now (with ``pending=True`` also those waiting out
        ``for_``): ``rule``, ``group``, ``state``, ``since`` (ISO text), ``value``."""
        with self._lock:
            rows = self.engine.active(pending)
        for row in rows:
            row["since"] = format_ts(row["since"])
        return rows

    @property
    def started(self) -> float:
        """When the monitor started, in epoch seconds (what ``backtest(start=...)`` takes)."""
        return self.engine.start

    # -- ending -------------------------------------------------------------------

    def flush(self, timeout: float | None = None) -> None:
        """Wait until the rules have seen every event published so far, every
        instant before the clock's "now" is decided, and every receiver has
        delivered (or given up on) the notices that gives.

        So after publishing five errors on a wall clock, ``flush()`` returns once
        the page is out, rather than a tick later. Webhooks post from a thread;
        after ``flush()`` the delivery log says ``sent`` or ``failed`` for each.
        As in :meth:`close`, the instant "now" itself stays open. Raises
        ``TimeoutError`` past ``timeout`` s.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        if not self._closed:
            self.bus.flush(timeout)  # a fed bus: the events reach the rules first
            now = self.clock.now()
            with self._lock:
                self.engine.advance(now)
                out = self.engine.take()
            if out:
                self._emit(out)
        self.router.flush(None if deadline is None else max(0.0, deadline - time.monotonic()))

    def close(self) -> None:
        """Stop watching: unsubscribe, stop following the clock, tell receivers, close them.

        Every instant before the clock's "now" is decided first. Each incident
        still firing then gets an ``ended`` notice, stamped now (``reason``
        "monitor closed"), sent to the receivers that heard it fire; together
        they are published once on ``monitor.closed``. Nobody watches those
        incidents any more, so nobody should believe the pages are still open.
        The instant "now" itself is not decided: its events may not all have
        arrived (a heartbeat due exactly now is not called missing).
        """
        if self._closed:
            return
        self._closed = True
        for sub in self._subs:
            sub.unsubscribe()
        self._stop_clock()
        self._stopping.set()
        if self._ticker is not None and self._ticker is not threading.current_thread():
            self._ticker.join()
        now = self.clock.now()
        with self._lock:
            self.engine.advance(now)
            self.engine.release()  # decided at "now" already: send them as they stand
            out = self.engine.take()
            ended = self.engine.end(now, "monitor closed")
        try:
            self._emit(out)
            if ended:
                self._announce_close(now, ended)
        finally:
            self.router.close()

    def _announce_close(self, now: float, ended: list[dict[str, Any]]) -> None:
        try:
            self.bus.publish(
                CLOSED_TOPIC,
                {"at": format_ts(now), "open": [to_data(rec) for rec in ended]},
                src=ALERT_SRC,
            )
        except HmsBusError as exc:  # the bus was closed first; receivers still hear
            log.warning("could not publish %s: %s", CLOSED_TOPIC, exc)
        self.router.advance(now)
        for rec in ended:
            self.router.handle(rec)

    def __enter__(self) -> Monitor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        names = ", ".join(r.name for r in self.rules)
        state = "closed" if self._closed else "watching"
        return f"<Monitor [{names}] on {self.bus!r} ({state})>"


def _as_list(receivers: Any) -> list[Any]:
    if isinstance(receivers, (str, bytes)) or not isinstance(receivers, Iterable):
        raise TypeError(f"receivers must be a list such as [ConsolePager()], got {receivers!r}")
    return list(receivers)
