"""The engine: rules in, alert notices out, on event time alone.

One :class:`Engine` serves the live :class:`~hms_bus.monitor.Monitor` and
:func:`~hms_bus.monitor.backtest` alike; neither reads a clock of its own.
Time moves in two ways:

* :meth:`Engine.ingest` -- an event stamped ``t`` arrived;
* :meth:`Engine.advance` -- the clock says it is now ``now`` (the monitor
  calls it when a virtual clock moves, or from a ticker under the wall clock).

**Instants settle once.** The engine's ``now`` is the *open instant*: more
events stamped ``now`` may still come. The state of a rule at an instant is
decided only when everything at that instant is known -- the events that
arrive, the events that leave the window, the ``for_``, ``keep_firing_for``
and repeat deadlines -- that is, once time has moved past it (a later event,
or the clock). So a heartbeat that leaves the window at the very instant the
next one arrives never looks missing, and no rule says "resolved" and
"firing" at one instant. An arrival may still decide at once when nothing
else at that instant could change the verdict (see
:mod:`~hms_bus.monitor.evaluators`): the fifth error fires as it arrives, so
``stats()`` and ``active()`` show it at once. Its notice is held until the
instant is complete, and then carries the value *at* that instant (twenty
errors at one instant make a notice saying twenty, not five).

Every track that can change without new events has a wake-up time in a heap
(its window's next relevant expiry, a ``for_``, ``keep_firing_for`` or
repeat deadline). Moving past an instant runs the wake-ups before it in time
order, each at its own instant, so the notices and their stamps do not
depend on how often the clock was looked at: the same events give the same
timeline live, simulated, or replayed.

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
from .lifecycle import FIRING, PENDING, STATE_NAMES, Track
from .rules import Rule

__all__ = ["Engine", "validate_rules", "NOTICE_STATES"]

INF = math.inf
Observe = Callable[[float, Any], None]

NOTICE_STATES = ("firing", "resolved", "ended")
"""States of the notices sent to people. ``pending`` and ``cancelled`` rows
are only recorded (``timeline(pending=True)``)."""


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

    ``records`` holds every firing and resolved notice made so far (the
    alert timeline), ``history`` the same plus the ``pending`` and
    ``cancelled`` rows, and :meth:`take` hands out the notices not yet taken.
    """

    def __init__(self, rules: Iterable[Rule], start: float) -> None:
        self.rules = validate_rules(rules)
        self.start = self.now = float(start)
        self.records: list[dict[str, Any]] = []
        self.history: list[dict[str, Any]] = []
        self._out: list[dict[str, Any]] = []
        self._heap: list[tuple[float, int, Track]] = []
        self._dirty: list[Track] = []
        self._held: list[tuple[dict[str, Any], Track]] = []
        self._deciding = False
        self._seq = 0
        self.due = INF
        self.evaluators: dict[str, Evaluator] = {}
        self.routes: dict[str, list[Observe]] = {}
        for rule in self.rules:
            evaluator = make_evaluator(rule, self)
            self.evaluators[rule.name] = evaluator
            for pattern, fn in evaluator.entries():
                self.routes.setdefault(pattern, []).append(fn)
            if rule.kind == "absence":
                self.schedule(evaluator.track, start + rule.window)  # the end of the warm-up
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

    def mark(self, tr: Track) -> None:
        """Decide ``tr`` when the open instant ends (an arrival could not decide it)."""
        tr.dirty = True
        self._dirty.append(tr)

    def advance(self, now: float) -> None:
        """Time has reached ``now``: settle every instant before it; ``now`` is open."""
        if now <= self.now:
            return
        heap = self._heap
        if self._held or self._dirty or (heap and heap[0][0] <= self.now):
            self.settle()
        if heap and heap[0][0] < now:
            self._deciding = True
            while heap and heap[0][0] < now:
                when, _, tr = heappop(heap)
                if tr.scheduled != when:
                    continue  # superseded by an earlier wake-up that already ran
                tr.scheduled = INF
                self.now = when
                tr.ev.wake(tr, when)
                if tr.scheduled <= when:
                    self._check(tr, when)
            self._deciding = False
        self.now = now
        self.due = heap[0][0] if heap else INF
        if now >= self._sweep_at:
            for evaluator in self.evaluators.values():
                evaluator.sweep(now)
            self._sweep_at = now + self._sweep_every

    def settle(self) -> None:
        """Decide the open instant: every event stamped ``now`` has been seen.

        :meth:`advance` does this when time moves on; call it directly only
        when no more events can come at ``now`` (the end of a recording).
        """
        now = self.now
        held = self.release()
        heap = self._heap
        self._deciding = True
        while heap and heap[0][0] <= now:
            when, _, tr = heappop(heap)
            if tr.scheduled != when:
                continue
            tr.scheduled = INF
            if not tr.dirty:
                tr.ev.wake(tr, now)
                self._check(tr, now)
        dirty = self._dirty
        if dirty:
            self._dirty = []
            for tr in dirty:
                tr.dirty = False
                tr.ev.wake(tr, now)
                self._check(tr, now)
        self._deciding = False
        for rec, tr in held:  # decided early: now say what the whole instant showed
            tr.value = value = tr.ev.current(tr, now)
            rec["value"] = value
            rec["event_ids"] = tr.ev.event_ids(tr)
            rec["summary"] = tr.ev.rule.summary(rec["state"], value)
        self.due = heap[0][0] if heap else INF

    def release(self) -> list[tuple[dict[str, Any], Track]]:
        """Hand out the notices decided early at the open instant, as they stand.

        :meth:`settle` completes them first; a monitor that closes mid-instant
        sends them as they are. Returns them with their tracks.
        """
        held = self._held
        if held:
            self._held = []
            self._out.extend(rec for rec, _ in held if rec["state"] in NOTICE_STATES)
        return held

    def _check(self, tr: Track, when: float) -> None:
        if tr.scheduled <= when:
            raise HmsBusError(
                f"monitor bug: rule {tr.ev.rule.name!r} asked to be woken again at "
                f"the instant it was decided; please report it"
            )

    # -- events -----------------------------------------------------------------

    def ingest(self, t: float, event: Any, fns: list[Observe]) -> None:
        """Hand ``event`` stamped ``t`` to ``fns`` (one pattern's observers)."""
        now = self.now
        if t > now:
            if self._dirty or self._held or self.due < t or t >= self._sweep_at:
                self.advance(t)
            else:
                self.now = t
            for fn in fns:
                fn(t, event)
            return
        if t == now:
            for fn in fns:
                fn(t, event)
            return
        for fn in fns:
            evaluator: Evaluator = fn.__self__  # type: ignore[attr-defined]
            if t + evaluator.window <= now:
                evaluator.matched += 1
                evaluator.late += 1
            else:
                evaluator.reordered += 1
                fn(now, event)

    def feed(self, t: float, event: Any) -> None:
        """Route ``event`` by its topic, as the live monitor's subscriptions would."""
        for fns in self._index.lookup(event.topic):
            self.ingest(t, event, fns)

    # -- notices ----------------------------------------------------------------

    def notice(self, tr: Track, state: str, at: float, value: Any, repeat: int) -> None:
        """Record a notice or a pending row (called by the lifecycle)."""
        rec = self._record(tr, state, at, value, repeat)
        self.history.append(rec)
        if state in ("firing", "resolved"):
            tr.ev.notices["repeat" if repeat else state] += 1
            self.records.append(rec)
            if self._deciding:
                self._out.append(rec)
        if not self._deciding:
            self._held.append((rec, tr))

    def _record(
        self, tr: Track, state: str, at: float, value: Any, repeat: int, reason: str = ""
    ) -> dict[str, Any]:
        rule = tr.ev.rule
        return {
            "at": at,
            "rule": rule.name,
            "state": state,
            "value": value,
            "bound": rule.bound,
            "window": rule.window,
            "group": tr.group,
            "since": tr.since,
            "fired_at": tr.fired_at,  # set before a firing notice is made
            "event_ids": tr.ev.event_ids(tr),
            "labels": dict(rule.labels),
            "repeat": repeat,
            "kind": rule.kind,
            "summary": rule.summary(state, value),
            "reason": reason,
        }

    def take(self) -> list[dict[str, Any]]:
        """The notices made since the last call, oldest first."""
        out = self._out
        if out:
            self._out = []
        return out

    def end(self, at: float, reason: str) -> list[dict[str, Any]]:
        """``ended`` notices for the incidents firing now, when watching stops at ``at``.

        They are not part of the timeline (a backtest stopped at ``at`` has
        none); they tell the people who were paged that nobody watches any more.
        """
        return [
            self._record(tr, "ended", at, tr.value, 0, reason)
            for evaluator in self.evaluators.values()
            for tr in evaluator.tracks.values()
            if tr.state == FIRING
        ]

    def stats(self) -> dict[str, dict[str, Any]]:
        """Per-rule counters, by rule name."""
        return {name: evaluator.stats() for name, evaluator in self.evaluators.items()}

    def active(self, pending: bool = False) -> list[dict[str, Any]]:
        """The incidents firing now (and pending ones if asked): rule, group, state,
        since, value."""
        wanted = (FIRING, PENDING) if pending else (FIRING,)
        return [
            {
                "rule": name,
                "group": tr.group,
                "state": STATE_NAMES[tr.state],
                "since": tr.since,
                "value": tr.value,
            }
            for name, evaluator in self.evaluators.items()
            for tr in evaluator.tracks.values()
            if tr.state in wanted
        ]
