"""The alert lifecycle: inactive -> pending -> firing -> resolved, once per incident.

Each rule (and each group of a grouped rule) has a :class:`Track`. Every time
the rule's value may have changed -- an event arrived, an event left the
window, a timer ran out -- the engine calls :func:`step` with the instant and
the value:

* **inactive**: when the rule *fires* (value past ``bound``) an incident
  starts (``since``). With ``for_ = 0`` it fires at once; otherwise it is
  **pending**.
* **pending**: if the rule stops firing before ``for_`` has passed, the
  incident is dropped quietly (counted in stats as ``cancelled``); once
  ``for_`` has passed it fires, stamped exactly ``since + for_``. Pending
  and cancelled are recorded as rows (``timeline(pending=True)``), like
  Prometheus's ``alertstate="pending"``, but never sent to anyone.
* **firing**: one ``firing`` notice went out. The incident goes on while the
  value *holds* (past ``clear``, which defaults to ``bound``). When it stops
  holding, a ``keep_firing_for`` countdown starts; if the value holds again
  before it ends, the countdown is forgotten, otherwise one ``resolved``
  notice goes out, stamped when the countdown ended. With a
  ``repeat_interval``, a firing notice is re-sent every interval (counted in
  bus time from the first one), numbered by its ``repeat`` field.

Stamps are the exact instants the conditions changed, not the moments the
engine happened to look, which is why live monitoring, simulated time and a
backtest produce the same timeline. :func:`step` is given the value at an
instant only once everything at that instant is known (see
:mod:`~hms_bus.monitor.engine`), and calling it twice at one instant with
the same value changes nothing.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .engine import Engine
    from .evaluators import Evaluator

__all__ = ["Track", "step", "due", "INACTIVE", "PENDING", "FIRING", "STATE_NAMES"]

INACTIVE, PENDING, FIRING = 0, 1, 2
STATE_NAMES = ("inactive", "pending", "firing")
INF = math.inf


class Track:
    """The state of one rule for one group: its window(s) and its incident."""

    __slots__ = (
        "ev",
        "group",
        "w",
        "w2",
        "state",
        "since",
        "fired_at",
        "clear_since",
        "repeats",
        "scheduled",
        "value",
        "dirty",
    )

    def __init__(self, ev: Evaluator, group: Any, w: Any, w2: Any = None) -> None:
        self.ev = ev
        self.group = group
        self.w = w
        self.w2 = w2
        self.state = INACTIVE
        self.since = 0.0
        self.fired_at = 0.0
        self.clear_since: float | None = None
        self.repeats = 0
        self.scheduled = INF
        self.value: Any = None
        self.dirty = False  # an arrival at the open instant left its verdict to the instant's end


def step(eng: Engine, tr: Track, t: float, value: Any) -> None:
    """Move ``tr`` along the lifecycle given ``value`` at instant ``t``."""
    rule = tr.ev.rule
    tr.value = value
    state = tr.state
    if state == INACTIVE:
        if not rule.fires(value):
            return
        tr.since = t
        if rule.for_ > 0:
            tr.state = PENDING
            eng.notice(tr, "pending", t, value, 0)
            return
        _fire(eng, tr, t, value)
        return
    if state == PENDING:
        if not rule.fires(value):
            tr.state = INACTIVE
            tr.ev.cancelled += 1
            eng.notice(tr, "cancelled", t, value, 0)
            return
        at = tr.since + rule.for_
        if t >= at:
            _fire(eng, tr, at, value)
        return
    # FIRING
    interval = rule.repeat_interval
    end = INF
    if rule.holds(value):
        tr.clear_since = None
    else:
        if tr.clear_since is None:
            tr.clear_since = t
        end = tr.clear_since + rule.keep_firing_for
    if interval:
        nxt = tr.fired_at + (tr.repeats + 1) * interval
        while nxt <= t and nxt < end:
            tr.repeats += 1
            eng.notice(tr, "firing", nxt, value, tr.repeats)
            nxt = tr.fired_at + (tr.repeats + 1) * interval
    if t >= end:
        tr.state = INACTIVE
        tr.clear_since = None
        eng.notice(tr, "resolved", end, value, 0)


def _fire(eng: Engine, tr: Track, at: float, value: Any) -> None:
    tr.state = FIRING
    tr.fired_at = at
    tr.repeats = 0
    tr.clear_since = None
    eng.notice(tr, "firing", at, value, 0)


def due(tr: Track) -> float:
    """When ``tr``'s lifecycle next needs a look with no new events (inf: never)."""
    state = tr.state
    if state == INACTIVE:
        return INF
    rule = tr.ev.rule
    if state == PENDING:
        return tr.since + rule.for_
    when = INF
    if tr.clear_since is not None:
        when = tr.clear_since + rule.keep_firing_for
    if rule.repeat_interval:
        when = min(when, tr.fired_at + (tr.repeats + 1) * rule.repeat_interval)
    return when
