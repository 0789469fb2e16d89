"""The in-memory backend: one process, no network, the default.

Delivery order, the same on every backend:

* Subscribers are called one at a time, in publish order; for one event, in
  the order they subscribed.
* An event published from inside a callback is queued and delivered after the
  current event has reached all its subscribers (breadth first), so every
  subscriber sees events in the same order.
* With several threads publishing, whichever thread is delivering also
  delivers the others' events; a ``publish`` call may therefore return before
  its subscribers have run. :meth:`MemoryBackend.flush` waits for them.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from datetime import timedelta
from typing import TYPE_CHECKING

from ..retention import DEFAULT_MAX_RETAINED, DEFAULT_WINDOW_S, Retention
from ..topics import TopicIndex
from .base import ALL, DRAIN, NEW, Backend

if TYPE_CHECKING:
    from ..bus import Bus, Subscription
    from ..event import Event

__all__ = ["MemoryBackend"]

_get_ident = threading.get_ident


class MemoryBackend(Backend):
    """Keeps events in a :class:`~hms_bus.retention.Retention` buffer and calls
    subscribers directly.

    :param retention: how long events are kept, seconds or a timedelta.
    :param max_retained: how many events are kept at most.
    """

    url = "memory://"

    def __init__(
        self,
        retention: float | timedelta = DEFAULT_WINDOW_S,
        max_retained: int | None = DEFAULT_MAX_RETAINED,
    ) -> None:
        self.retention = Retention(retention, max_retained)
        self._index: TopicIndex[Subscription] = TopicIndex()
        self._queue: deque[Event] = deque()
        self._direct: deque[tuple[Event, Subscription]] = deque()
        self._dispatching = False
        self._dispatched_seq = 0
        self._owner = 0  # the thread that is delivering

    def attach(self, bus: Bus) -> None:
        super().attach(bus)
        self._lock = bus.lock

    def publish(self, event: Event) -> tuple[Subscription, ...] | None:
        if self._dispatching or self._queue or self._direct:
            self.retention.append(event)
            self._queue.append(event)
            return None if self._dispatching else DRAIN
        # Nobody is delivering and nothing waits: this thread delivers now.
        # Look up first: should that fail, nothing has changed.
        subs = self._index.lookup(event.topic)
        self.retention.append(event)
        self._dispatching = True
        self._owner = _get_ident()
        self._dispatched_seq = event.seq
        return subs

    def deliver(self, event: Event | None = None, subs: object = DRAIN) -> None:
        # Whatever happens in here, _dispatching ends False unless this thread
        # is still delivering: a failure must never leave the bus unable to deliver.
        lock = self._lock
        if subs is DRAIN:
            with lock:
                if self._dispatching or not (self._queue or self._direct):
                    return
                event, subs = self._next()
                self._dispatching = True
                self._owner = _get_ident()
        try:
            while True:
                for sub in subs:  # type: ignore[attr-defined]
                    if sub.active:
                        try:
                            sub.fn(event)
                        except Exception as exc:
                            self.bus.subscriber_failed(sub, event, exc)
                        except BaseException:  # KeyboardInterrupt, SystemExit...
                            self._requeue(event, subs, sub)  # type: ignore[arg-type]
                            raise
                if not (self._queue or self._direct):
                    # Lock-free exit for the common case: step down, then
                    # look again, so an event queued meanwhile is not stranded.
                    self._dispatching = False
                    if self._queue or self._direct:
                        self.deliver()
                    return
                with lock:
                    event, subs = self._next()
        except BaseException:
            self._dispatching = False
            raise

    def _next(self) -> tuple[Event, tuple[Subscription, ...]]:
        """The next event and who gets it; a failure leaves both queues as they were."""
        if self._direct:
            ev, sub = self._direct.popleft()
            return ev, (sub,)
        ev = self._queue[0]
        subs = self._index.lookup(ev.topic)
        self._queue.popleft()
        self._dispatched_seq = ev.seq
        return ev, subs

    def _requeue(self, event: Event, subs: tuple[Subscription, ...], current: Subscription) -> None:
        """Put the subscribers after ``current`` first in line for ``event``: an
        interrupted delivery resumes with the next publish or flush."""
        rest = subs[subs.index(current) + 1 :]
        with self._lock:
            self._direct.extendleft((event, sub) for sub in reversed(rest))

    def subscribe(self, sub: Subscription, start: str | float) -> None:
        sub._key = self._index.add(sub.pattern, sub)
        if start == NEW:
            return
        since = None if start == ALL else float(start)
        # Events still queued will reach the new subscriber live; the ones
        # already delivered (or being delivered) come from the buffer.
        history = self.retention.replay(sub.pattern, since=since, max_seq=self._dispatched_seq)
        self._direct.extend((ev, sub) for ev in history)

    def unsubscribe(self, sub: Subscription) -> None:
        self._index.remove(sub.pattern, sub._key)

    def replay(
        self,
        pattern: str,
        since: float | None,
        until: float | None,
        limit: int | None,
        now: float,
    ) -> list[Event]:
        with self._lock:
            return self.retention.replay(pattern, since=since, until=until, limit=limit, now=now)

    def flush(self, timeout: float | None = None) -> None:
        """Deliver what is queued; wait while another thread is delivering."""
        if self._dispatching and self._owner == _get_ident():
            return  # called from a callback: the queue drains when it returns
        self.deliver()
        deadline = None if timeout is None else time.monotonic() + timeout
        while self._dispatching or self._queue or self._direct:
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(
                    f"flush() timed out after {timeout} s with "
                    f"{len(self._queue)} events still queued; a subscriber may be blocked"
                )
            time.sleep(0.001)
            self.deliver()

    def status(self) -> dict:
        with self._lock:
            self.retention.expire(self.bus.clock.now())
        return {
            "url": self.url,
            "retained": len(self.retention),
            "expired": self.retention.expired,
            "evicted": self.retention.evicted,
            "subscriptions": len(self._index),
            "queued": len(self._queue),
        }
