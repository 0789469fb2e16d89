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
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from typing import Any

from ..errors import HmsBusError
from ..event import format_ts
from .engine import Engine
from .rules import Rule, default_rules, seconds
from .timeline import frame, to_data

__all__ = ["Monitor", "ALERT_SRC"]

log = logging.getLogger("hms_bus")

ALERT_SRC = "hms-monitor"
"""The ``src`` of the alert events a monitor publishes."""


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
        if receivers is not None:
            from .router import Router

            router = Router()
            for receiver in _as_list(receivers):
                router.route(receiver)
        self.router = router
        if router is not None:
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
        engine, lock, emit = self.engine, self._lock, self._emit
        ingest = engine.ingest

        def observe(ev: Any) -> None:
            with lock:
                ingest(ev.time, ev, fns)
                out = engine._out
                if out:
                    engine._out = []
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

    def _tick(self) -> None:
        while not self._stopping.wait(self.tick):
            try:
                self._on_time(self.clock.now() - self.tick)
            except HmsBusError as exc:  # the bus was closed under us
                log.warning("monitor stopped: %s", exc)
                return

    def _emit(self, notices: list[dict[str, Any]]) -> None:
        publish, router = self.bus.publish, self.router
        for rec in notices:
            publish("alerts." + rec["rule"], to_data(rec), src=ALERT_SRC)
            if router is not None:
                router.handle(rec)

    # -- reading ------------------------------------------------------------------

    def timeline(self):
        """Every notice so far as a pandas DataFrame (columns in ``timeline.COLUMNS``)."""
        with self._lock:
            records = list(self.engine.records)
        return frame(records)

    def stats(self) -> dict[str, dict[str, Any]]:
        """Per-rule counters: ``matched``, ``late``, ``reordered``, ``skipped``,
        ``firing``, ``resolved``, ``repeats``, ``cancelled``, ``active``, ``groups``."""
        with self._lock:
            return self.engine.stats()

    def active(self) -> list[dict[str, Any]]:
        """The incidents firing now, with ``since`` as ISO text."""
        with self._lock:
            rows = self.engine.active()
        for row in rows:
            row["since"] = format_ts(row["since"])
        return rows

    @property
    def started(self) -> float:
        """When the monitor started, in epoch seconds (what ``backtest(start=...)`` takes)."""
        return self.engine.start

    # -- ending -------------------------------------------------------------------

    def close(self) -> None:
        """Stop watching: unsubscribe, stop following the clock, close receivers."""
        if self._closed:
            return
        self._closed = True
        for sub in self._subs:
            sub.unsubscribe()
        self._stop_clock()
        self._stopping.set()
        if self._ticker is not None and self._ticker is not threading.current_thread():
            self._ticker.join()
        if self.router is not None:
            self.router.close()

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
