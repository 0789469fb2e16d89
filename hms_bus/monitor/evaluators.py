"""Evaluators: the running state of one rule inside one engine.

A :class:`~hms_bus.monitor.rules.Rule` is configuration; an evaluator holds
what changes: the sliding windows (one :class:`~hms_bus.monitor.lifecycle.Track`
per group), and the counters shown by ``Monitor.stats()``. Each kind
implements three things:

* ``observe(t, event)`` -- a matching event arrived at ``t``, the engine's
  open instant (more events stamped ``t`` may still come);
* ``wake(track, t)`` -- the instant ``t`` is complete (or a time the track
  asked for has come and nothing can happen at it): decide;
* ``value_due(track)`` -- when the value could next change with no new
  event, *in a way that matters*: a count that can only fall is only watched
  while falling could end an incident or start one.

An arrival may decide at once only when no later arrival at the same instant
could reverse the verdict: five errors are five whatever else arrives, so a
frequency rule fires on the fifth; but a mean, a percentile or a ratio can
move either way, and an absence rule's "too few" can be undone by the next
event. Such verdicts are left to the end of the instant
(:meth:`~hms_bus.monitor.engine.Engine.mark`). ``direction`` says which way
an arrival can move the value.

Both paths end in :meth:`Evaluator.decide`, which runs the lifecycle and asks
the engine to wake the track at the earliest instant anything can change.
``current(track, t)`` is the value at ``t`` from what has arrived so far.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from ..topics import matches
from .lifecycle import FIRING, INACTIVE, PENDING, Track, due, step
from .rules import Absence, Frequency, Ratio, Rule, Threshold
from .windows import CountWindow, ValueWindow

if TYPE_CHECKING:
    from .engine import Engine

__all__ = ["Evaluator", "make_evaluator", "MAX_EVENT_IDS"]

MAX_EVENT_IDS = 10
"""How many triggering event ids an alert carries at most (the newest ones)."""

INF = math.inf
_MISSING = object()


class Evaluator:
    """Shared machinery: tracks per group, counters, settling."""

    direction = 0
    """+1 if an arrival can only raise the value, -1 if only lower it, 0 if either."""

    def __init__(self, rule: Rule, eng: Engine) -> None:
        self.rule = rule
        high = rule.op in (">", ">=")
        # The verdict an arrival can give for good: for a value that only rises
        # under arrivals, "past the bound" (high rules) or "not past it" (low rules).
        self.final: bool | None = None if not self.direction else high == (self.direction > 0)
        self.eng = eng
        self.window = rule.window
        self.matched = 0
        self.late = 0
        self.reordered = 0
        self.skipped = 0
        self.cancelled = 0
        self.notices = {"firing": 0, "resolved": 0, "repeat": 0}
        self.tracks: dict[Any, Track] = {}
        self.group_by = rule.group_by
        self.track = None if self.group_by else self._new_track(None)

    # -- tracks ---------------------------------------------------------------

    def _new_track(self, group: Any, lookup: Any = None) -> Track:
        tr = Track(self, group, self._new_window())
        self.tracks[lookup] = tr
        return tr

    def _new_window(self) -> Any:
        return CountWindow(self.window)

    def _track_for(self, event: Any) -> Track | None:
        """The track of ``event``'s group, or None (counted as skipped) if it has none."""
        if self.group_by == "src":
            key = event.src
        else:
            data = event.data
            key = data.get(self.group_by, _MISSING) if isinstance(data, dict) else _MISSING
            if key is _MISSING or isinstance(key, (dict, list)):
                self.skipped += 1
                return None
        # JSON's true, 1 and 1.0 are different label values, as in Prometheus
        # (Python's dict would take them for one key).
        lookup = (key.__class__, key)
        tr = self.tracks.get(lookup)
        return tr if tr is not None else self._new_track(key, lookup)

    def sweep(self, now: float) -> None:
        """Forget idle groups: inactive, nothing scheduled, every event expired."""
        if not self.group_by:
            return
        idle = [
            key
            for key, tr in self.tracks.items()
            if tr.state == INACTIVE and tr.scheduled == INF and _empty_at(tr, now)
        ]
        for key in idle:
            del self.tracks[key]

    # -- the lifecycle --------------------------------------------------------

    def decide(self, tr: Track, t: float, value: Any) -> None:
        step(self.eng, tr, t, value)
        when = min(due(tr), self.value_due(tr))
        if when < tr.scheduled:
            self.eng.schedule(tr, when)

    def arrived(self, tr: Track, t: float, value: Any) -> None:
        """Act on ``value`` after an arrival at the open instant ``t``."""
        state = tr.state
        rule = self.rule
        verdict = rule.holds(value) if state == FIRING else rule.fires(value)
        if state == INACTIVE and not verdict:
            if tr.scheduled == INF:
                when = self.value_due(tr)
                if when < INF:
                    self.eng.schedule(tr, when)
            return
        if verdict is self.final:
            self.decide(tr, t, value)
        elif not tr.dirty:
            self.eng.mark(tr)

    def value_due(self, tr: Track) -> float:
        raise NotImplementedError

    def current(self, tr: Track, t: float) -> Any:
        """The value at ``t`` from the events arrived so far (expiring what left)."""
        raise NotImplementedError

    def wake(self, tr: Track, t: float) -> None:
        """The instant ``t`` is complete for ``tr`` (or a deadline came): decide."""
        self.decide(tr, t, self.current(tr, t))

    def observe(self, t: float, event: Any) -> None:
        raise NotImplementedError

    def entries(self) -> list[tuple[str, Any]]:
        """(pattern, callable) pairs the engine routes matching events to."""
        return [(self.rule.pattern, self.observe)]

    def event_ids(self, tr: Track) -> list[str]:
        return [ev.id for ev in tr.w.newest(MAX_EVENT_IDS)]

    def stats(self) -> dict[str, Any]:
        firing = [tr for tr in self.tracks.values() if tr.state == FIRING]
        pending = sum(1 for tr in self.tracks.values() if tr.state == PENDING)
        return {
            "kind": self.rule.kind,
            "matched": self.matched,
            "late": self.late,
            "reordered": self.reordered,
            "skipped": self.skipped,
            "firing": self.notices["firing"],
            "resolved": self.notices["resolved"],
            "repeats": self.notices["repeat"],
            "cancelled": self.cancelled,
            "active": len(firing),
            "pending": pending,
            "groups": len(self.tracks),
        }


def _empty_at(tr: Track, now: float) -> bool:
    for w in (tr.w, tr.w2):
        if w is not None:
            w.expire(now)
            if w.times:
                return False
    return True


class CountEvaluator(Evaluator):
    """Frequency (fires at count >= N) and absence (fires at count < N)."""

    direction = 1

    def __init__(self, rule: Frequency | Absence, eng: Engine) -> None:
        super().__init__(rule, eng)
        self.n = rule.count
        self.clear = rule.clear
        self.high = rule.kind == "frequency"
        self.warm = eng.start + rule.window if not self.high else -INF

    def observe(self, t: float, event: Any) -> None:
        self.matched += 1
        tr = self.track if self.track is not None else self._track_for(event)
        if tr is None:
            return
        w = tr.w
        times = w.times
        times.append(t)
        w.events.append(event)
        if times[0] + self.window <= t:
            w.expire(t)
        n = len(times)
        state = tr.state
        if self.high:
            if state == INACTIVE:
                if n >= self.n:
                    self.decide(tr, t, n)  # final: later arrivals only add to n
            elif n >= (self.clear if state == FIRING else self.n):
                self.decide(tr, t, n)
            elif not tr.dirty:
                self.eng.mark(tr)
            return
        if t < self.warm:
            return  # warming up: the end of the warm-up is already scheduled
        if state == INACTIVE and n >= self.n and tr.scheduled != INF:
            return  # a later count only delays the alarm the track is already waiting for
        self.arrived(tr, t, n)

    def current(self, tr: Track, t: float) -> Any:
        tr.w.expire(t)
        return len(tr.w.times) if t >= self.warm else None

    def value_due(self, tr: Track) -> float:
        w = tr.w
        if tr.state == FIRING:
            # While firing, only a fall in the count can matter when it could
            # restore 'holds' (frequency) or end it again (absence).
            if self.high:
                k = self.clear
            elif tr.clear_since is not None:
                k = self.clear
            else:
                return INF
        elif self.high:
            if tr.state == INACTIVE:
                return INF
            k = self.n
        else:
            if self.eng.now < self.warm:
                return self.warm
            k = self.n
        when = w.drops_below(k)
        return INF if when is None else when


class ThresholdEvaluator(Evaluator):
    """An aggregate of ``data[field]`` over the window, against a bound."""

    def __init__(self, rule: Threshold, eng: Engine) -> None:
        self.field = rule.field
        self.agg = rule.agg
        self.direction = {"max": 1, "min": -1}.get(rule.agg, 0)
        super().__init__(rule, eng)

    def _new_window(self) -> Any:
        return ValueWindow(self.window, self.agg)

    def observe(self, t: float, event: Any) -> None:
        self.matched += 1
        data = event.data
        x = data.get(self.field) if isinstance(data, dict) else None
        if x.__class__ is not float and x.__class__ is not int:
            if isinstance(x, bool) or not isinstance(x, (int, float)):
                self.skipped += 1
                return
            x = float(x)
        if not -INF < x < INF:
            self.skipped += 1
            return
        tr = self.track if self.track is not None else self._track_for(event)
        if tr is None:
            return
        w = tr.w
        w.add(t, event, x)
        w.expire(t)
        self.arrived(tr, t, w.value())

    def current(self, tr: Track, t: float) -> Any:
        tr.w.expire(t)
        return tr.w.value()

    def value_due(self, tr: Track) -> float:
        times = tr.w.times
        return times[0] + self.window if times else INF


class RatioEvaluator(Evaluator):
    """Numerator events over denominator events within the window."""

    def __init__(self, rule: Ratio, eng: Engine) -> None:
        super().__init__(rule, eng)
        self.of = rule.of
        self.min_of = rule.min_of
        self._both: dict[str, bool] = {}

    def _new_track(self, group: Any, lookup: Any = None) -> Track:
        tr = Track(self, group, CountWindow(self.window), CountWindow(self.window))
        self.tracks[lookup] = tr
        return tr

    def entries(self) -> list[tuple[str, Any]]:
        return [(self.rule.pattern, self.observe), (self.of, self.observe_of)]

    def _in_both(self, topic: str) -> bool:
        both = self._both.get(topic)
        if both is None:
            both = self._both[topic] = matches(self.rule.pattern, topic) and matches(self.of, topic)
        return both

    def observe(self, t: float, event: Any) -> None:
        self._add(t, event, True, self._in_both(event.topic))

    def observe_of(self, t: float, event: Any) -> None:
        if not self._in_both(event.topic):  # else observe() counted it in both windows
            self._add(t, event, False, True)

    def _add(self, t: float, event: Any, num: bool, den: bool) -> None:
        self.matched += 1
        tr = self.track
        if num:
            tr.w.add(t, event)
        if den:
            tr.w2.add(t, event)
        tr.w.expire(t)
        tr.w2.expire(t)
        self.arrived(tr, t, self._value(tr))

    def _value(self, tr: Track) -> float | None:
        den = len(tr.w2.times)
        return len(tr.w.times) / den if den >= self.min_of else None

    def current(self, tr: Track, t: float) -> Any:
        tr.w.expire(t)
        tr.w2.expire(t)
        return self._value(tr)

    def value_due(self, tr: Track) -> float:
        a, b = tr.w.times, tr.w2.times
        first = min(a[0] if a else INF, b[0] if b else INF)
        return first + self.window

    def stats(self) -> dict[str, Any]:
        out = super().stats()
        tr = self.track
        now = self.eng.now
        tr.w.expire(now)  # what the windows hold at "now" (later arrivals only add)
        tr.w2.expire(now)
        out["window_num"], out["window_of"] = len(tr.w.times), len(tr.w2.times)
        return out


def make_evaluator(rule: Rule, eng: Engine) -> Evaluator:
    """The evaluator for ``rule``'s kind."""
    if isinstance(rule, (Frequency, Absence)):
        return CountEvaluator(rule, eng)
    if isinstance(rule, Threshold):
        return ThresholdEvaluator(rule, eng)
    if isinstance(rule, Ratio):
        return RatioEvaluator(rule, eng)
    raise TypeError(
        f"{rule!r} is not a monitor rule; build one with frequency(), absence(), "
        f"threshold() or ratio()"
    )
