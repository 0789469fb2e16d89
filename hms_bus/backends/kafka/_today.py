"""Delivery for today's ``Backend`` interface, on top of append/read/listen.

A stand-in until the bus's own dispatcher (issue 11) lands: it keeps the
subscriptions and calls subscribers on the feed's thread, with the same rule
the dispatcher uses (kept events up to the feed's position, then live
events). Delete this module, and the mixin, once the dispatcher is on main.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from typing import TYPE_CHECKING, Any

from ...topics import TopicIndex
from ..base import ALL, NEW

if TYPE_CHECKING:
    from ...bus import Subscription
    from ...event import Event

__all__ = ["TodaysDelivery"]


class TodaysDelivery:
    """Mixin: ``publish``/``subscribe``/``replay`` as today's Bus calls them."""

    def __init__(self) -> None:
        self._index: TopicIndex[Subscription] = TopicIndex()
        self._keys: dict[Any, int] = {}
        self._skips: dict[Any, tuple[int, float]] = {}
        self._joining = 0
        self._joins: deque[tuple[Any, Any, Any]] = deque()
        self._position: Any = None  # of the last event handed out

    def publish(self, event: Event) -> None:
        self.append(event)  # type: ignore[attr-defined]
        return None

    def deliver(self, event: Any = None, due: Any = None) -> None:
        """Nothing to do here: events come back through the feed."""

    def subscribe(self, sub: Subscription, start: str | float) -> None:
        if self.feed is None:  # type: ignore[attr-defined]
            self.bus.lock.release()  # type: ignore[attr-defined]
            try:
                self._position = self.listen(self._hand_out)  # type: ignore[attr-defined]
            finally:
                self.bus.lock.acquire()  # type: ignore[attr-defined]
        skip = None
        if start != ALL:
            skip = (self.bus.published, math.inf if start == NEW else float(start))  # type: ignore[attr-defined]
        self._joining += 1
        self._joins.append((sub, start, skip))  # before any event that arrives from now on
        self.feed.submit(self._run_joins)  # type: ignore[attr-defined]

    def _run_joins(self) -> None:
        while self._joins:
            self._join(*self._joins.popleft())

    def _join(self, sub: Subscription, start: str | float, skip: Any) -> None:
        feed = self.feed  # type: ignore[attr-defined]
        bus = self.bus  # type: ignore[attr-defined]
        try:
            if start != NEW and sub.active:
                since = None if start == ALL else float(start)
                events = self.read(sub.pattern, since, None, None, self._position)  # type: ignore[attr-defined]
                for ev in events:
                    if sub.active:
                        _call(sub, ev, bus.subscriber_failed)
        except Exception as exc:  # the events stay in Kafka; live delivery goes on
            feed.last_error = f"kept events for {sub.name}: {exc!r}"
        finally:
            with bus.lock:
                if sub.active:
                    self._keys[sub] = self._index.add(sub.pattern, sub)
                    if skip is not None:
                        self._skips[sub] = skip
                self._joining -= 1

    def _hand_out(self, ev: Event, position: Any) -> None:
        if self._joins:
            self._run_joins()
        self._position = position
        bus = self.bus  # type: ignore[attr-defined]
        with bus.lock:
            subs = self._index.lookup(ev.topic)
        own = bus.id
        for sub in subs:
            if not sub.active:
                continue
            skip = self._skips.get(sub)
            if skip and ev.bus_id == own and ev.seq <= skip[0] and ev.time < skip[1]:
                continue
            _call(sub, ev, bus.subscriber_failed)

    def unsubscribe(self, sub: Subscription) -> None:
        key = self._keys.pop(sub, None)
        if key is not None:
            self._index.remove(sub.pattern, key)
        self._skips.pop(sub, None)

    def replay(
        self, pattern: str, since: float | None, until: float | None, limit: int | None, now: float
    ) -> list[Event]:
        return self.read(pattern, since, until, limit)  # type: ignore[attr-defined]

    def flush(self, timeout: float | None = None) -> None:
        deadline = None if timeout is None else time.monotonic() + timeout
        feed = self.feed  # type: ignore[attr-defined]
        while True:
            published = self.bus.published  # type: ignore[attr-defined]
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            self.flush_stored(left)  # type: ignore[attr-defined]
            if feed is None or feed.thread is threading.current_thread():
                return
            while self._joining:
                if deadline is not None and time.monotonic() > deadline:
                    raise TimeoutError("flush() timed out waiting for kept events")
                time.sleep(0.002)
            if published == self.bus.published:  # type: ignore[attr-defined]
                return

    def _delivery_status(self) -> dict:
        return {"subscriptions": len(self._index)}


def _call(sub: Subscription, ev: Event, failed: Any) -> None:
    try:
        sub.fn(ev)
    except Exception as exc:
        failed(sub, ev, exc)
