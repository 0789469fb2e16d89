"""Sliding windows over event time: counts and aggregates of the last W seconds.

A window is driven by the events themselves, not by fixed buckets: an event at
time ``e`` is inside the window at every instant ``t`` with
``e <= t < e + width``. Events arrive in time order, so adding is an append
and expiring pops from the left (amortised O(1) per event).

Aggregates stay cheap as the window slides:

* ``mean`` keeps a running sum, recomputed exactly (``math.fsum``) once as
  many values have left as the window holds, so rounding cannot drift.
* ``max`` and ``min`` keep a monotonic deque: the candidates that can still
  become the extreme, each added and removed once.
* percentiles keep the values in a sorted list (``bisect.insort`` on the way
  in, a bisected ``del`` on the way out) and read either the nearest rank
  (``pNN``, the default) or, for ``pNNi``, interpolate between the two ranks
  around ``q * (n - 1)`` as Prometheus's ``quantile_over_time`` does.
"""

from __future__ import annotations

import math
from bisect import bisect_left, insort
from collections import deque
from typing import Any

__all__ = ["CountWindow", "ValueWindow", "nearest_rank", "interpolated"]


class CountWindow:
    """The events of the last ``width`` seconds, oldest first.

    ``times`` and ``events`` are parallel deques; the evaluators read them
    directly on their hot path.
    """

    __slots__ = ("width", "times", "events")

    def __init__(self, width: float) -> None:
        self.width = width
        self.times: deque[float] = deque()
        self.events: deque[Any] = deque()

    def add(self, t: float, event: Any) -> None:
        """Add ``event`` seen at ``t`` (not earlier than the newest one)."""
        self.times.append(t)
        self.events.append(event)

    def expire(self, now: float) -> None:
        """Drop the events that are out of the window at ``now``."""
        times, width = self.times, self.width
        while times and times[0] + width <= now:
            times.popleft()
            self.events.popleft()

    def __len__(self) -> int:
        return len(self.times)

    def next_expiry(self) -> float | None:
        """When the oldest event leaves, or None if the window is empty."""
        return self.times[0] + self.width if self.times else None

    def drops_below(self, k: int) -> float | None:
        """When the count falls below ``k`` if nothing new arrives (None if already below)."""
        n = len(self.times)
        return self.times[n - k] + self.width if n >= k else None

    def newest(self, limit: int) -> list[Any]:
        """The newest ``limit`` events, oldest first."""
        n = len(self.events)
        return [self.events[i] for i in range(max(0, n - limit), n)]


def nearest_rank(sorted_values: list[float], q: float) -> float:
    """The ``q``-quantile (0 < q <= 1) by nearest rank: the smallest value with at least
    ``q`` of the values at or below it."""
    n = len(sorted_values)
    return sorted_values[max(0, math.ceil(q * n - 1e-9) - 1)]


def interpolated(sorted_values: list[float], q: float) -> float:
    """The ``q``-quantile (0 < q <= 1) as Prometheus's ``quantile_over_time``
    computes it: rank ``q * (n - 1)``, linear between the values either side."""
    n = len(sorted_values)
    rank = q * (n - 1)
    lower = math.floor(rank)
    upper = min(n - 1, lower + 1)
    weight = rank - lower
    return sorted_values[lower] * (1 - weight) + sorted_values[upper] * weight


_CANCEL = 2.0**16
"""A mean's running sum is recounted exactly when a value arriving or leaving is
this many times larger than the sum it leaves: the cancellation may have lost
the small values' digits (1e20 + 1 - 1e20 is 0 in floating point)."""


def _exact_sum(values: Any) -> float:
    """The correctly rounded sum, or infinity when it is too large for a float."""
    try:
        return math.fsum(values)
    except OverflowError:  # an intermediate sum overflowed
        return math.inf


class ValueWindow(CountWindow):
    """A :class:`CountWindow` that also aggregates one number per event.

    :param agg: ``"mean"``, ``"max"``, ``"min"``, ``"pNN"`` (nearest rank) or
        ``"pNNi"`` (interpolated).
    """

    __slots__ = ("agg", "values", "_sum", "_gone", "_mono", "_sorted", "_q", "_quantile")

    def __init__(self, width: float, agg: str) -> None:
        super().__init__(width)
        self.agg = agg
        self.values: deque[float] = deque()
        self._sum = 0.0
        self._gone = 0
        self._mono: deque[tuple[float, float]] = deque()
        self._sorted: list[float] = []
        self._q = int(agg[1:].rstrip("i")) / 100 if agg.startswith("p") else 0.0
        self._quantile = interpolated if agg.endswith("i") else nearest_rank

    def add(self, t: float, event: Any, x: float = 0.0) -> None:  # type: ignore[override]
        self.times.append(t)
        self.events.append(event)
        self.values.append(x)
        agg = self.agg
        if agg == "mean":
            total = self._sum + x
            self._sum = total
            if abs(x) > _CANCEL * abs(total):  # (1e20 + 1) - 1e20: recount exactly
                self._sum = _exact_sum(self.values)
                self._gone = 0
        elif agg == "max":
            mono = self._mono
            while mono and mono[-1][1] <= x:
                mono.pop()
            mono.append((t, x))
        elif agg == "min":
            mono = self._mono
            while mono and mono[-1][1] >= x:
                mono.pop()
            mono.append((t, x))
        else:
            insort(self._sorted, x)

    def expire(self, now: float) -> None:
        times, width = self.times, self.width
        if not times or times[0] + width > now:
            return
        agg, values = self.agg, self.values
        while times and times[0] + width <= now:
            times.popleft()
            self.events.popleft()
            x = values.popleft()
            if agg == "mean":
                self._sum -= x
                self._gone += 1
                if abs(x) > _CANCEL * abs(self._sum):  # a big value left a small sum:
                    self._gone = len(values)  # its rounding may be most of it; recount
            elif agg in ("max", "min"):
                mono = self._mono
                while mono and mono[0][0] + width <= now:
                    mono.popleft()
            else:
                srt = self._sorted
                del srt[bisect_left(srt, x)]
        if agg == "mean" and (self._gone >= len(values) or not math.isfinite(self._sum)):
            self._sum = _exact_sum(values)
            self._gone = 0

    def value(self) -> float | None:
        """The aggregate of the values in the window, or None when it is empty."""
        n = len(self.values)
        if not n:
            return None
        agg = self.agg
        if agg == "mean":
            total = self._sum
            if math.isfinite(total):
                return total / n
            return math.fsum(x / n for x in self.values)  # the sum overflowed; the mean does not
        if agg in ("max", "min"):
            return self._mono[0][1]
        return self._quantile(self._sorted, self._q)
