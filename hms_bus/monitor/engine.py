"""The engine: rules in, alert notices out, on event time alone.

One :class:`Engine` serves the live :class:`~hms_bus.monitor.Monitor` and
:func:`~hms_bus.monitor.backtest` alike; neither reads a clock of its own.
Time moves in two ways:

* :meth:`Engine.ingest` -- an event stamped ``t`` arrived;
* :meth:`Engine.advance` -- the clock says it is now ``now`` (the monitor
  calls it when a virtual clock moves, or from a ticker under the wall clock).

Every track that can change without new events has a wake-up time in a heap
(its window's next relevant expiry, a ``for_``, ``keep_firing_for`` or
repeat deadline). Before an event at ``t`` is counted, every wake-up at or
before ``t`` runs, in time order, each at its own instant. So the notices and
their stamps do not depend on how often the clock was looked at: the same
events give the same timeline live, simulated, or replayed.

An event older than the engine's "now" (possible on a distributed bus, or in
an unsorted recording) is counted as ``late`` for every rule whose window it
has already left, and ignored by that rule; for a rule whose window still
holds it, it counts as arriving now (``reordered`` in the stats).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from heapq import heappop, heappush
from typing import Any

from ..errors import HmsBusError
from ..topics import TopicIndex
from .evaluators import Evaluator, make_evaluator
from .lifecycle import Track
from .rules import Rule

__all__ = ["Engine", "validate_rules"]

INF = math.inf
Observe = Callable[[float, Any], None]


def validate_rules(rules: object) -> list[Rule]:
    """Return ``rules`` as a list, or raise if it is not a list of distinctly named rules."""
    if isinstance(rules, Rule):
        rules = [rules]
    if isinstance(rules, (str, bytes)) or not isinstance(rules, Iterable):
        raise TypeError(f"rules must be a list of rules such as [frequency(...)], got {rules!r}")
    rules = list(rules)
    seen: set[str] = set()
    for rule in rules:
        if not isinstance(rule, Rule):
            raise TypeError(
                f"{rule!r} is not a rule; build rules with frequency(), absence(), "
                f"threshold() or ratio()"
            )
        if rule.name in seen:
            raise ValueError(
                f"two rules are named {rule.name!r}; alerts go to 'alerts.<name>', "
                f"so give each rule its own name"
            )
        seen.add(rule.name)
    return rules


class Engine:
    """Evaluates ``rules`` over events, starting at epoch seconds ``start``.

    ``records`` holds every notice made so far (the alert timeline) and
    :meth:`take` hands out the ones not yet taken.
    """

    def __init__(self, rules: Iterable[Rule], start: float) -> None:
        self.rules = validate_rules(rules)
        self.start = self.now = float(start)
        self.records: list[dict[str, Any]] = []
        self._out: list[dict[str, Any]] = []
        self._heap: list[tuple[float, int, Track]] = []
        self._seq = 0
        self.due = INF
        self.evaluators: dict[str, Evaluator] = {}
        self.routes: dict[str, list[Observe]] = {}
        for rule in self.rules:
            ev = make_evaluator(rule, self)
            self.evaluators[rule.name] = ev
            for pattern, fn in ev.entries():
                self.routes.setdefault(pattern, []).append(fn)
            if rule.kind == "absence":
                self.schedule(ev.track, start + rule.window)  # the end of the warm-up
        grouped = [e.window for e in self.evaluators.values() if e.group_by]
        self._sweep_every = min(grouped) if grouped else INF
        self._sweep_at = self.start + self._sweep_every
        self._index: TopicIndex[list[Observe]] = TopicIndex()
        for pattern, fns in self.routes.items():
            self._index.add(pattern, fns)

    # -- time -------------------------------------------------------------------

    def schedule(self, tr: Track, when: float) -> None:
        """Wake ``tr`` at ``when`` (earlier wake-ups already asked for still happen)."""
        tr.scheduled = when
        self._seq += 1
        heappush(self._heap, (when, self._seq, tr))
        if when < self.due:
            self.due = when

    def advance(self, now: float) -> None:
        """Run every wake-up due at or before ``now``, then make ``now`` the present."""
        heap = self._heap
        while heap and heap[0][0] <= now:
            when, _, tr = heappop(heap)
            if tr.scheduled != when:
                continue  # superseded by an earlier wake-up that already ran
            tr.scheduled = INF
            if when > self.now:
                self.now = when
            tr.ev.wake(tr, when)
            if tr.scheduled <= when:
                raise HmsBusError(
                    f"monitor bug: rule {tr.ev.rule.name!r} asked to be woken again at "
                    f"the instant it was woken; please report it"
                )
        if now > self.now:
            self.now = now
        self.due = heap[0][0] if heap else INF
        if now >= self._sweep_at:
            for ev in self.evaluators.values():
                ev.sweep(now)
            self._sweep_at = now + self._sweep_every

    # -- events -----------------------------------------------------------------

    def ingest(self, t: float, event: Any, fns: list[Observe]) -> None:
        """Hand ``event`` stamped ``t`` to ``fns`` (one pattern's observers)."""
        if t >= self.due:
            self.advance(t)
        now = self.now
        if t >= now:
            self.now = t
            for fn in fns:
                fn(t, event)
            return
        for fn in fns:
            ev: Evaluator = fn.__self__  # type: ignore[attr-defined]
            if t + ev.window <= now:
                ev.matched += 1
                ev.late += 1
            else:
                ev.reordered += 1
                fn(now, event)

    def feed(self, t: float, event: Any) -> None:
        """Route ``event`` by its topic, as the live monitor's subscriptions would."""
        for fns in self._index.lookup(event.topic):
            self.ingest(t, event, fns)

    # -- notices ----------------------------------------------------------------

    def notice(self, tr: Track, state: str, at: float, value: Any, repeat: int) -> None:
        """Record a notice (called by the lifecycle)."""
        ev = tr.ev
        rule = ev.rule
        ev.notices["repeat" if repeat else state] += 1
        rec = {
            "at": at,
            "rule": rule.name,
            "state": state,
            "value": value,
            "bound": rule.bound,
            "window": rule.window,
            "group": tr.group,
            "since": tr.since,
            "event_ids": ev.event_ids(tr),
            "labels": dict(rule.labels),
            "repeat": repeat,
            "kind": rule.kind,
            "summary": rule.describe(value),
        }
        self.records.append(rec)
        self._out.append(rec)

    def take(self) -> list[dict[str, Any]]:
        """The notices made since the last call, oldest first."""
        out = self._out
        if out:
            self._out = []
        return out

    def stats(self) -> dict[str, dict[str, Any]]:
        """Per-rule counters, by rule name."""
        return {name: ev.stats() for name, ev in self.evaluators.items()}

    def active(self) -> list[dict[str, Any]]:
        """The incidents firing now: rule, group, since, value."""
        return [
            {"rule": name, "group": tr.group, "since": tr.since, "value": tr.value}
            for name, ev in self.evaluators.items()
            for tr in ev.tracks.values()
            if tr.state == 2
        ]
