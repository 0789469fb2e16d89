"""Retention: the bus's 24 h "DVR" of recent events, with replay.

:class:`Retention` keeps events for a time window (24 h unless told) and at
most ``max_retained`` of them, oldest out first. Time is the bus clock's.
Events arrive in time order, so expiring is a pointer moving forward
(amortised O(1) per event) and ``replay(since=..., until=...)`` finds its
range by bisection.

The module-level :func:`replay` reads the default bus, as in the chapter::

    from hms_bus import retention
    for e in retention.replay("payments.*")[-10:]:
        print(e)
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from collections.abc import Iterator
from datetime import datetime, timedelta
from numbers import Real
from typing import TYPE_CHECKING

from .topics import matches

if TYPE_CHECKING:
    from .event import Event

__all__ = ["Retention", "replay", "DEFAULT_WINDOW_S", "DEFAULT_MAX_RETAINED"]

DEFAULT_WINDOW_S = 24 * 3600.0
"""How long events are kept unless told otherwise: 24 h, in seconds."""

DEFAULT_MAX_RETAINED = 1_000_000
"""How many events are kept at most unless told otherwise."""

_COMPACT_AT = 4096


def _event_time(ev: Event) -> float:
    return ev.time


class Retention:
    """A time- and count-bounded buffer of events in publish order.

    :param window: how long to keep events, in seconds or as a timedelta;
        ``math.inf`` keeps them until ``max_retained`` pushes them out.
    :param max_retained: how many events to keep at most; None for no limit.

    Not thread-safe on its own: the bus calls it under its lock.
    """

    def __init__(
        self,
        window: float | timedelta = DEFAULT_WINDOW_S,
        max_retained: int | None = DEFAULT_MAX_RETAINED,
    ) -> None:
        if isinstance(window, timedelta):
            window = window.total_seconds()
        if (
            isinstance(window, bool)
            or not isinstance(window, Real)
            or not window > 0  # also false for nan
        ):
            raise ValueError(
                f"retention window must be a positive number of seconds or a "
                f"timedelta, got {window!r}; e.g. 24 * 3600"
            )
        if max_retained is not None and (
            isinstance(max_retained, bool) or not isinstance(max_retained, int) or max_retained <= 0
        ):
            raise ValueError(
                f"max_retained must be a positive int or None, got {max_retained!r}; e.g. 1_000_000"
            )
        try:
            self.window = float(window)
        except OverflowError:  # an int beyond float's range: as good as forever
            self.window = math.inf
        self.max_retained = max_retained
        self._buf: list[Event | None] = []
        self._head = 0  # index of the oldest kept event in _buf
        self._expires_at = float("-inf")  # when the oldest kept event leaves
        self._max = float("inf") if max_retained is None else max_retained
        self.expired = 0
        """How many events left because of age."""
        self.evicted = 0
        """How many events left because the buffer was full."""

    def __len__(self) -> int:
        return len(self._buf) - self._head

    def __iter__(self) -> Iterator[Event]:
        return iter(self._buf[self._head :])  # type: ignore[arg-type]

    def append(self, ev: Event) -> None:
        """Keep ``ev`` (whose time is not older than the last one's)."""
        buf = self._buf
        buf.append(ev)
        if ev.time >= self._expires_at:
            self.expire(ev.time)
        if len(buf) - self._head > self._max:
            buf[self._head] = None
            self._head += 1
            self.evicted += 1
            self._after_drop()

    def expire(self, now: float) -> None:
        """Drop events older than the window, measured back from ``now``."""
        cutoff = now - self.window
        buf = self._buf
        head = self._head
        end = len(buf)
        while head < end and buf[head].time <= cutoff:  # type: ignore[union-attr]
            buf[head] = None
            head += 1
        self.expired += head - self._head
        self._head = head
        self._after_drop()

    def _after_drop(self) -> None:
        head = self._head
        buf = self._buf
        if head >= _COMPACT_AT and head * 2 >= len(buf):
            del buf[:head]
            self._head = head = 0
        oldest = buf[head] if head < len(buf) else None
        # With nothing kept, the next append looks again.
        self._expires_at = float("-inf") if oldest is None else oldest.time + self.window

    def replay(
        self,
        pattern: str = ">",
        *,
        since: float | None = None,
        until: float | None = None,
        limit: int | None = None,
        now: float | None = None,
        max_seq: int | None = None,
    ) -> list[Event]:
        """Kept events matching ``pattern``, oldest first.

        ``since`` and ``until`` (epoch seconds, inclusive) narrow the range;
        ``limit`` keeps the first ``limit`` of them. ``now`` expires old events
        first; ``max_seq`` leaves out events published after that sequence.
        """
        if now is not None:
            self.expire(now)
        if limit == 0:
            return []
        buf = self._buf
        lo, hi = self._head, len(buf)
        if since is not None:
            lo = bisect_left(buf, since, lo, hi, key=_event_time)
        if until is not None:
            hi = bisect_right(buf, until, lo, hi, key=_event_time)
        out: list[Event] = []
        full = pattern == ">"
        seen: dict[str, bool] = {}
        for i in range(lo, hi):
            ev = buf[i]
            assert ev is not None
            if max_seq is not None and ev.seq > max_seq:
                break
            hit = full or seen.get(ev.topic)
            if hit is None:
                hit = seen[ev.topic] = matches(pattern, ev.topic)
            if hit:
                out.append(ev)
                if limit is not None and len(out) >= limit:
                    break
        return out


def replay(
    pattern: str = ">",
    *,
    since: datetime | str | float | timedelta | None = None,
    until: datetime | str | float | timedelta | None = None,
    limit: int | None = None,
) -> list[Event]:
    """Replay the default bus's kept events; see :meth:`hms_bus.Bus.replay`."""
    from .bus import get_bus

    return get_bus().replay(pattern, since=since, until=until, limit=limit)
