"""Clocks: where the bus gets "now" from.

Everything on the bus that depends on time (timestamps, retention, the
monitor's windows) asks the bus's clock, never ``time.time()`` directly. The
:class:`WallClock` reads the machine's time; the :class:`VirtualClock` moves
only when told, so a simulated 24 h day runs in seconds and gives the same
timestamps every run.
"""

from __future__ import annotations

import math
import re
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from numbers import Real

__all__ = ["Clock", "WallClock", "VirtualClock", "to_epoch", "MIN_TIME", "MAX_TIME"]

_ISO = re.compile(
    r"(\d{4})-?(\d{2})-?(\d{2})[T ](\d{2}):?(\d{2})(?::?(\d{2})(?:[.,](\d+))?)?"
    r"(Z|[+-]\d{2}(?::?\d{2})?)?"
)


def _from_iso(text: str) -> datetime:
    """ISO-8601 text as a datetime, the same on every Python: 3.11 reads fractions
    of any length, ``,5``, ``+0000`` and ``20210829T120000Z``; 3.10 does not."""
    m = _ISO.fullmatch(text)
    if m is None:  # a date alone, or something fromisoformat may still know
        return datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith("Z") else text)
    year, month, day, hour, minute, second, fraction, zone = m.groups()
    micro = int((fraction or "0")[:6].ljust(6, "0"))
    tz = None
    if zone:
        if zone == "Z":
            tz = timezone.utc
        else:
            digits = zone[1:].replace(":", "")
            offset = timedelta(hours=int(digits[:2]), minutes=int(digits[2:4] or 0))
            tz = timezone(offset if zone[0] == "+" else -offset)
    return datetime(
        int(year), int(month), int(day), int(hour), int(minute), int(second or 0), micro, tz
    )


DEFAULT_START = "2021-08-29T00:00:00Z"
"""Where a :class:`VirtualClock` starts unless told: the day Hurricane Ida made landfall."""

MIN_TIME = -62135596800.0
"""The earliest time the bus takes, 0001-01-01T00:00:00.000Z, in epoch seconds."""

MAX_TIME = 253402300799.999
"""The latest time the bus takes, 9999-12-31T23:59:59.999Z: the last instant an
event's ``ts`` can print (ISO-8601 years have four digits)."""


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

    It is thread-safe: moves from several threads add up exactly, and
    listeners hear each move in time order, one at a time. Times are finite
    and between :data:`MIN_TIME` and :data:`MAX_TIME`; anything else raises
    ``ValueError`` and leaves the clock where it was.

    >>> clock = VirtualClock("2021-08-29T12:00:00Z")
    >>> clock.advance(90)
    >>> clock.iso()
    '2021-08-29T12:01:30.000Z'
    """

    virtual = True

    def __init__(self, start: datetime | str | float = DEFAULT_START) -> None:
        self._now = to_epoch(start, what="start")
        self._listeners: list[Callable[[float], object]] = []
        # Re-entrant: a listener may move the clock again.
        self._lock = threading.RLock()

    def now(self) -> float:
        return self._now

    def advance(self, seconds: float | timedelta) -> None:
        """Move forward by ``seconds`` (a number or a timedelta)."""
        step = seconds
        if type(step) is not float:
            if isinstance(step, timedelta):
                step = step.total_seconds()
            elif isinstance(step, bool) or not isinstance(step, Real):
                raise TypeError(f"advance() takes seconds as a number, got {seconds!r}")
            try:
                step = float(step)
            except OverflowError:
                step = math.inf
        if not 0 <= step < math.inf:
            if step < 0:
                raise ValueError(f"cannot advance by {_show(seconds)} s: a clock never goes back")
            raise ValueError(
                f"cannot advance by {_show(seconds)} s: give a finite number of seconds"
            )
        with self._lock:  # read and write under one lock: no lost moves
            t = self._now + step
            if t > MAX_TIME:
                raise ValueError(
                    f"cannot advance by {_show(seconds)} s from {self.iso()}: the clock "
                    f"stops at {_iso(MAX_TIME)} (MAX_TIME)"
                )
            self._move(t)

    def set(self, when: datetime | str | float) -> None:
        """Move forward to ``when``; moving backwards raises ``ValueError``."""
        if type(when) is float and MIN_TIME <= when <= MAX_TIME:
            t = when  # the simulation's hot path: to_epoch's answer, without the call
        else:
            t = to_epoch(when)
        with self._lock:
            if t < self._now:
                raise ValueError(
                    f"cannot set the clock back from {self.iso()} to "
                    f"{_iso(t)}; a clock never goes back"
                )
            self._move(t)

    def _move(self, t: float) -> None:
        """Set the time and tell every listener (under the lock, so in order).

        A listener that raises does not keep the others from hearing; the
        first error is raised once all have been told.
        """
        self._now = t
        error: BaseException | None = None
        for fn in tuple(self._listeners):
            try:
                fn(t)
            except Exception as exc:
                error = error or exc
        if error is not None:
            raise error

    def on_advance(self, fn: Callable[[float], object]) -> Callable[[], None]:
        if not callable(fn):
            raise TypeError(f"on_advance() takes a function of the time, got {fn!r}")
        with self._lock:
            self._listeners.append(fn)

        def stop() -> None:
            with self._lock:
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


def to_epoch(
    when: datetime | str | float | timedelta, *, now: float | None = None, what: str = "when"
) -> float:
    """Turn a datetime, ISO-8601 text, epoch seconds or a timedelta into epoch seconds.

    Naive datetimes and ISO text without an offset are taken as UTC. A
    ``timedelta`` means "that long before ``now``" (``since=timedelta(hours=1)``).
    The result is finite and between :data:`MIN_TIME` and :data:`MAX_TIME`,
    else ``ValueError``; ``what`` names the argument in errors.
    """
    if isinstance(when, bool):
        raise TypeError(f"{what}= expects a time, got {when!r}")
    if type(when) is float or type(when) is int or isinstance(when, Real):
        try:
            return _in_range(float(when), when, what)
        except OverflowError:
            return _in_range(math.inf, when, what)
    if isinstance(when, timedelta):
        if now is None:
            raise TypeError(f"a timedelta ({when}) needs a reference time here")
        return _in_range(now - when.total_seconds(), when, what)
    moment = when
    if isinstance(when, str):
        text = when.strip()
        try:
            moment = _from_iso(text)
        except ValueError:
            raise ValueError(
                f"cannot read {text!r} as a time; use ISO-8601 such as "
                f"'2021-08-29T12:00:00Z', a datetime, or epoch seconds"
            ) from None
    if isinstance(moment, datetime):
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=timezone.utc)
        try:
            t = moment.timestamp()
        except (OverflowError, ValueError):  # an offset pushed it past year 1 or 9999
            t = math.inf
        return _in_range(t, when, what)
    raise TypeError(
        f"{what}= expects a time (datetime, ISO-8601 text or epoch seconds), got "
        f"{when!r} of type {type(when).__name__}"
    )


def _show(value: object) -> str:
    """A value for an error message: numbers plainly (numpy's too), huge ints by size."""
    if isinstance(value, int) and value.bit_length() > 128:
        return f"an int of {value.bit_length()} bits"  # str() refuses very long ints
    return str(value) if isinstance(value, Real) else repr(value)


def _in_range(t: float, given: object, what: str) -> float:
    if MIN_TIME <= t <= MAX_TIME:
        return t
    if isinstance(given, float) and not math.isfinite(given):
        raise ValueError(
            f"{what}={_show(given)} is not a time; give finite epoch seconds, a datetime or "
            f"ISO-8601 text (or leave it out where that means no bound)"
        )
    raise ValueError(
        f"{what}={_show(given)} is outside the times the bus can show: from "
        f"0001-01-01T00:00:00Z ({MIN_TIME}) to {_iso(MAX_TIME)} ({MAX_TIME}) in epoch "
        f"seconds; leave it out where that means no bound"
    )
