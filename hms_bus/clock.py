"""Clocks: where the bus gets "now" from.

Everything on the bus that depends on time (timestamps, retention, the
monitor's windows) asks the bus's clock, never ``time.time()`` directly. The
:class:`WallClock` reads the machine's time; the :class:`VirtualClock` moves
only when told, so a simulated 24 h day runs in seconds and gives the same
timestamps every run.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone

__all__ = ["Clock", "WallClock", "VirtualClock", "to_epoch"]

DEFAULT_START = "2021-08-29T00:00:00Z"
"""Where a :class:`VirtualClock` starts unless told: the day Hurricane Ida made landfall."""


class Clock:
    """The interface of a clock: ``now()`` in epoch seconds (UTC).

    Clocks may also tell listeners when time moves (``on_advance``), which is
    how the monitor notices silence. A wall clock has no such moments, so its
    users poll instead.
    """

    virtual = False
    """True when time moves only when the program says so."""

    def now(self) -> float:
        raise NotImplementedError

    def on_advance(self, fn: Callable[[float], object]) -> Callable[[], None]:
        """Call ``fn(now)`` whenever the clock moves; return a function that stops it."""
        return lambda: None


class WallClock(Clock):
    """The machine's UTC time."""

    def now(self) -> float:
        return time.time()

    def __repr__(self) -> str:
        return "WallClock()"


class VirtualClock(Clock):
    """A clock that moves only when you move it.

    :param start: the first instant: a datetime, ISO-8601 text or epoch
        seconds; by default the morning of Hurricane Ida's landfall.

    >>> clock = VirtualClock("2021-08-29T12:00:00Z")
    >>> clock.advance(90)
    >>> clock.iso()
    '2021-08-29T12:01:30.000Z'
    """

    virtual = True

    def __init__(self, start: datetime | str | float = DEFAULT_START) -> None:
        self._now = to_epoch(start)
        self._listeners: list[Callable[[float], object]] = []
        self._lock = threading.Lock()

    def now(self) -> float:
        return self._now

    def advance(self, seconds: float | timedelta) -> None:
        """Move forward by ``seconds`` (a number or a timedelta)."""
        if isinstance(seconds, timedelta):
            seconds = seconds.total_seconds()
        if not isinstance(seconds, (int, float)) or isinstance(seconds, bool):
            raise TypeError(f"advance() takes seconds as a number, got {seconds!r}")
        if seconds < 0:
            raise ValueError(f"cannot advance by {seconds} s: a clock never goes back")
        self.set(self._now + seconds)

    def set(self, when: datetime | str | float) -> None:
        """Move forward to ``when``; moving backwards raises ``ValueError``."""
        t = to_epoch(when)
        with self._lock:
            if t < self._now:
                raise ValueError(
                    f"cannot set the clock back from {self.iso()} to "
                    f"{_iso(t)}; a clock never goes back"
                )
            self._now = t
            listeners = tuple(self._listeners)
        for fn in listeners:
            fn(t)

    def on_advance(self, fn: Callable[[float], object]) -> Callable[[], None]:
        self._listeners.append(fn)

        def stop() -> None:
            if fn in self._listeners:
                self._listeners.remove(fn)

        return stop

    def iso(self) -> str:
        """The current time as ISO-8601 UTC text."""
        return _iso(self._now)

    def __repr__(self) -> str:
        return f"VirtualClock({self.iso()!r})"


def _iso(t: float) -> str:
    from .event import format_ts

    return format_ts(t)


def to_epoch(when: datetime | str | float, *, now: float | None = None) -> float:
    """Turn a datetime, ISO-8601 text, epoch seconds or a timedelta into epoch seconds.

    Naive datetimes and ISO text without an offset are taken as UTC. A
    ``timedelta`` means "that long before ``now``" (``since=timedelta(hours=1)``).
    """
    if isinstance(when, bool):
        raise TypeError(f"expected a time, got {when!r}")
    if isinstance(when, (int, float)):
        return float(when)
    if isinstance(when, timedelta):
        if now is None:
            raise TypeError(f"a timedelta ({when}) needs a reference time here")
        return now - when.total_seconds()
    if isinstance(when, str):
        text = when.strip()
        try:
            when = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith("Z") else text)
        except ValueError:
            raise ValueError(
                f"cannot read {text!r} as a time; use ISO-8601 such as "
                f"'2021-08-29T12:00:00Z', a datetime, or epoch seconds"
            ) from None
    if isinstance(when, datetime):
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        return when.timestamp()
    raise TypeError(
        f"expected a time (datetime, ISO-8601 text or epoch seconds), got "
        f"{when!r} of type {type(when).__name__}"
    )
