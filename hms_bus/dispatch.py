"""The dispatcher: the delivery rules, written once for every backend.

Each :class:`~hms_bus.Bus` owns one :class:`Dispatcher`. It keeps the
subscription index and calls subscribers; the backend only stores and
carries events (see :mod:`hms_bus.backends.base`). The rules:

* Subscribers are called one at a time, in the order events reach the
  dispatcher; for one event, in the order they subscribed. A subscriber that
  raises is reported through :meth:`Bus.subscriber_failed` and the others
  still get the event.
* An event published from inside a callback is delivered after the current
  event has reached all its subscribers (breadth first), so every subscriber
  sees the same order.
* A new subscription is a *join* that waits its turn among the events: when
  its turn comes, it receives the kept events up to the position of the last
  event handed out (``deliver="all"`` or a time), then joins the index and
  receives every later event live. So each event reaches it exactly once,
  whichever thread publishes or subscribes.

Two ways of running, chosen by :attr:`Backend.local`
(:func:`dispatcher_for`):

* **Local** (:class:`LocalDispatcher`, the in-memory backend): the
  publishing thread delivers, right after the event is stored; a thread
  that finds another one delivering queues its event, and that one delivers
  it too. ``flush`` waits.
* **Fed** (:class:`FedDispatcher`, NATS, Kafka): events come back from the
  backend's feed (this bus's own and other processes'), with a position
  each; one worker thread delivers them. Events this bus published before a
  ``deliver="new"`` (or time) subscription may still be on their way back:
  the join remembers how far this bus had published, and they are skipped
  for it.
"""

from __future__ import annotations

import math
import queue
import threading
import time
from collections import deque
from typing import TYPE_CHECKING, Any

from .backends.base import ALL, NEW, Backend, Position
from .topics import TopicIndex

if TYPE_CHECKING:
    from .bus import Bus, Subscription
    from .event import Event

__all__ = ["Dispatcher", "LocalDispatcher", "FedDispatcher", "dispatcher_for", "DRAIN"]

DRAIN = "drain"
"""What :meth:`Dispatcher.admit` returns when the publisher should drain the queue."""


class _Joiner:
    """Stands in the subscriber list of a join, so the delivery loop needs no test for it."""

    __slots__ = ("fn",)
    active = True
    name = "(join)"

    def __init__(self, fn: Any) -> None:
        self.fn = fn


_get_ident = threading.get_ident


def _log_error(message: str, *args: object) -> None:
    from .redact import kit_logger  # only on the error path: ``import hms_bus`` stays light

    kit_logger("hms_bus").error(message, *args)  # with the filter that masks secrets


class _Join:
    """A subscription waiting for its turn: kept events first, then the index."""

    __slots__ = ("sub", "since", "history", "upto", "skip")

    def __init__(
        self,
        sub: Subscription,
        since: float | None,
        history: bool,
        upto: Position = None,
        skip: tuple | None = None,
    ) -> None:
        self.sub = sub
        self.since = since
        self.history = history
        self.upto = upto  # local: the bus's count of events when subscribing
        self.skip = skip  # fed: (this bus's published count, time cutoff)


def dispatcher_for(bus: Bus, backend: Backend) -> Dispatcher:
    """The dispatcher that suits ``backend``: local or fed."""
    return LocalDispatcher(bus, backend) if backend.local else FedDispatcher(bus, backend)


class Dispatcher:
    """Delivers the events of one bus to its subscribers (see the module docstring).

    The bus calls :meth:`admit` under its lock for each event, then
    :meth:`deliver` with what it returned (if not None) outside it;
    :meth:`subscribe`, :meth:`unsubscribe` (under the lock), :meth:`flush`,
    :meth:`close` and :meth:`status` for the rest.
    """

    def __init__(self, bus: Bus, backend: Backend) -> None:
        self.bus = bus
        self.backend = backend
        self.lock = bus.lock
        self.index: TopicIndex[Subscription] = TopicIndex()
        self._append = backend.append
        self._failed = bus.subscriber_failed
        self._keys: dict[Subscription, int] = {}
        self._position: Position = None  # fed: that of the last event handed out
        self._closing = threading.Event()
        self.history_retries = 0
        """Times a new subscription's read of kept events failed and was tried again."""

    def admit(self, event: Event) -> Any:
        """Store ``event`` (under the bus lock); return what :meth:`deliver` needs, or None."""
        raise NotImplementedError

    def deliver(self, event: Any = None, subs: Any = DRAIN) -> None:
        """Call the subscribers that are due (outside the bus lock)."""

    def subscribe(self, sub: Subscription, start: str | float) -> None:
        """Queue ``sub``'s join; ``start`` is :data:`ALL`, :data:`NEW` or epoch seconds."""
        raise NotImplementedError

    def _join(self, job: _Join) -> None:
        """Deliver ``job.sub``'s kept events up to the current position, then index it."""
        sub = job.sub
        if not sub.active:
            return
        events: list[Event] = []
        upto = self._position if job.upto is None else job.upto
        if job.history:
            events = self._read_kept(job, upto)
        for i, event in enumerate(events):
            if not sub.active:
                break
            try:
                sub.fn(event)
            except Exception as exc:
                self._failed(sub, event, exc)
            except BaseException as exc:
                if not self._interrupted(job, event, events[i + 1 :], exc):
                    raise
        try:
            self._enter(job)
        except Exception as exc:  # e.g. MemoryError in the index: say so, keep delivering
            _log_error("could not add subscriber %s: %s: %s", sub.name, type(exc).__name__, exc)

    def _read_kept(self, job: _Join, upto: Position) -> list[Event]:
        """``job.sub``'s kept events up to ``upto``.

        A server or broker that is away makes the read fail; the events are
        still stored, so a fed bus tries again (waiting up to 5 s between tries)
        until the read works, the subscription ends or the bus closes, rather
        than hand the subscriber live events only. Live events wait meanwhile,
        in order. A local backend's read cannot be waited for: its failure is
        logged and the subscription gets live events.
        """
        sub = job.sub
        wait = 0.25
        while True:
            try:
                return self.backend.read(sub.pattern, job.since, None, None, upto)
            except Exception as exc:
                name = type(exc).__name__
                if self.backend.local or self._closing.is_set() or not sub.active:
                    _log_error(
                        "could not read the kept events for subscriber %s on %s: %s: %s; "
                        "it receives live events only",
                        sub.name,
                        self.backend.url,
                        name,
                        exc,
                    )
                    return []
                self.history_retries += 1
                _log_error(
                    "could not read the kept events for subscriber %s on %s (%s: %s); "
                    "trying again in %g s (they stay stored; live events wait in order)",
                    sub.name,
                    self.backend.url,
                    name,
                    exc,
                    wait,
                )
                self._closing.wait(wait)  # close() cuts the wait short
                wait = min(wait * 2, 5.0)

    def _interrupted(self, job: _Join, event: Event, rest: list[Event], exc: BaseException) -> bool:
        """``job.sub`` raised ``exc`` (not an Exception) on ``event``; True to go on."""
        self._failed(job.sub, event, exc)
        return True

    def _enter(self, job: _Join) -> None:
        sub = job.sub
        with self.lock:
            if sub.active and sub not in self._keys:
                self._keys[sub] = self.index.add(sub.pattern, sub)
                self._entered(job)

    def _entered(self, job: _Join) -> None:
        """``job.sub`` is in the index now (under the bus lock)."""

    def unsubscribe(self, sub: Subscription) -> None:
        """Take ``sub`` out of the index (under the bus lock; idempotent)."""
        key = self._keys.pop(sub, None)
        if key is not None:
            self.index.remove(sub.pattern, key)

    def flush(self, timeout: float | None = None) -> None:
        """Wait until every event so far is stored and has reached its subscribers.

        Called from a subscriber, it does not wait for deliveries (they run
        when the callback returns).
        """
        raise NotImplementedError

    def closing(self) -> None:
        """The bus is about to close: a join retrying its read of kept events stops."""
        self._closing.set()

    def close(self) -> None:
        """Stop delivering (the bus flushed before)."""

    def status(self) -> dict:
        return {
            "subscriptions": len(self.index),
            "queued": self._queued(),
            "history_retries": self.history_retries,
        }

    def _queued(self) -> int:
        return 0


class LocalDispatcher(Dispatcher):
    """The publishing thread delivers; a thread that finds a delivery under way
    queues its event for that thread (see the module docstring)."""

    def __init__(self, bus: Bus, backend: Backend) -> None:
        super().__init__(bus, backend)
        # Events and joins waiting; first, the rest of an interrupted delivery
        # as (event, subscribers) pairs.
        self._queue: deque[Any] = deque()
        self._busy = False
        self._owner = 0  # the thread that is delivering
        self._joiner = (_Joiner(self._join),)

    def admit(self, event: Event) -> tuple[Subscription, ...] | str | None:
        """Store ``event`` and say who gets it now: the subscribers to call in
        this thread, :data:`DRAIN` (drain the queue), or None (another thread
        delivers). Raises before anything changed if the lookup or the
        backend refuses."""
        if self._busy or self._queue:
            self._append(event)
            self._queue.append(event)
            return None if self._busy else DRAIN
        subs = self.index.lookup(event.topic)
        self._append(event)
        if not subs:
            return None  # nobody to call and nothing waiting: delivered
        self._busy = True
        self._owner = _get_ident()
        return subs

    def deliver(self, event: Any = None, subs: Any = DRAIN) -> None:
        """Call ``subs`` with ``event``, then whatever is queued; with no
        arguments, whatever is queued unless another thread is delivering.
        Whatever happens in here, the dispatcher can deliver again afterwards."""
        if subs is DRAIN:
            with self.lock:
                if self._busy or not self._queue:
                    return
                event, subs = self._next()
                self._busy = True
                self._owner = _get_ident()
        try:
            while True:
                for sub in subs:
                    if sub.active:
                        try:
                            sub.fn(event)
                        except Exception as exc:
                            self._failed(sub, event, exc)
                        except BaseException:  # KeyboardInterrupt, SystemExit...
                            self._requeue(event, subs, sub)
                            raise
                if not self._queue:
                    # Lock-free exit for the common case: step down, then
                    # look again, so an event queued meanwhile is not stranded.
                    self._busy = False
                    if self._queue:
                        self.deliver()
                    return
                with self.lock:
                    event, subs = self._next()
        except BaseException:
            self._busy = False
            raise

    def _next(self) -> tuple[Any, Any]:
        """The next event and who gets it; a failure leaves the queues as they were."""
        item = self._queue[0]
        kind = item.__class__
        if kind is tuple:
            return self._queue.popleft()
        if kind is _Join:
            self._queue.popleft()
            return item, self._joiner
        subs = self.index.lookup(item.topic)
        self._queue.popleft()
        return item, subs

    def _requeue(self, event: Event, subs: tuple[Subscription, ...], current: Subscription) -> None:
        """Put the subscribers after ``current`` first in line for ``event``: an
        interrupted delivery resumes with the next publish or flush."""
        rest = tuple(subs[subs.index(current) + 1 :])
        if rest:
            with self.lock:
                self._queue.appendleft((event, rest))

    def subscribe(self, sub: Subscription, start: str | float) -> None:
        since = None if start in (ALL, NEW) else float(start)
        with self.lock:  # positions of a local backend are the bus's sequence numbers
            self._queue.append(_Join(sub, since, start != NEW, upto=self.bus.published))
        self.deliver()  # at once, unless a delivery is under way (it joins after it)

    def _interrupted(self, job: _Join, event: Event, rest: list[Event], exc: BaseException) -> bool:
        # As for a live event: the rest comes with the next publish or flush.
        with self.lock:
            self._queue.extendleft((ev, (job.sub,)) for ev in reversed(rest))
        self._enter(job)
        return False

    def flush(self, timeout: float | None = None) -> None:
        deadline = None if timeout is None else time.monotonic() + timeout
        self.backend.flush(timeout)
        if self._busy and self._owner == _get_ident():
            return
        self.deliver()
        while self._busy or self._queue:
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(
                    f"flush() timed out after {timeout} s with {len(self._queue)} events "
                    f"still queued; a subscriber may be blocked"
                )
            time.sleep(0.001)
            self.deliver()

    def _queued(self) -> int:
        return len(self._queue)


class FedDispatcher(Dispatcher):
    """Events come back from the backend's feed; one worker thread delivers them."""

    def __init__(self, bus: Bus, backend: Backend) -> None:
        super().__init__(bus, backend)
        self._inbox: queue.SimpleQueue | None = None
        self._worker: threading.Thread | None = None
        self._worker_ident = -1
        self._from_callbacks = 0  # events published by subscribers, on the worker
        self._starting = threading.Lock()
        self._skips: dict[Subscription, tuple[int, float]] = {}
        self._skip_upto = 0

    def admit(self, event: Event) -> None:
        self._append(event)
        if _get_ident() == self._worker_ident:
            self._from_callbacks += 1  # flush() waits for these too
        return None  # it comes back through the feed

    def subscribe(self, sub: Subscription, start: str | float) -> None:
        since = None if start in (ALL, NEW) else float(start)
        self._listen()
        with self.lock:
            skip = None
            if start != ALL:  # this bus's events up to now that are still on their way
                skip = (self.bus.published, math.inf if since is None else since)
            assert self._inbox is not None
            self._inbox.put(_Join(sub, since, start != NEW, skip=skip))

    def _entered(self, job: _Join) -> None:
        if job.skip is not None:
            self._skips[job.sub] = job.skip
            self._skip_upto = max(self._skip_upto, job.skip[0])

    def unsubscribe(self, sub: Subscription) -> None:
        super().unsubscribe(sub)
        self._skips.pop(sub, None)

    def _listen(self) -> None:
        """Start the backend's feed and the worker, once."""
        if self._worker is not None:
            return
        with self._starting:
            if self._worker is not None:
                return
            inbox: queue.SimpleQueue = queue.SimpleQueue()
            put = inbox.put

            def sink(event: Event, position: Position, own: bool) -> None:
                put((event, position, own))

            self._inbox = inbox
            self._position = self.backend.listen(sink)
            worker = threading.Thread(target=self._work, name="hms-bus-deliver", daemon=True)
            worker.start()
            self._worker = worker

    def _work(self) -> None:
        """The worker thread: one item at a time, in feed order."""
        self._worker_ident = _get_ident()
        assert self._inbox is not None
        get, lock, index, failed = self._inbox.get, self.lock, self.index, self._failed
        while True:
            item = get()
            try:
                if item.__class__ is tuple:
                    event, self._position, own = item
                    with lock:
                        subs = index.lookup(event.topic)
                    skips = self._skips
                    mine = own and skips
                    for sub in subs:
                        if not sub.active:
                            continue
                        if mine:
                            skip = skips.get(sub)
                            if skip and event.seq <= skip[0] and event.time < skip[1]:
                                continue  # published here before that subscription began
                        try:
                            sub.fn(event)
                        except BaseException as exc:  # a worker has no caller to stop
                            failed(sub, event, exc)
                    if mine and event.seq >= self._skip_upto:
                        with lock:
                            self._skips.clear()
                elif item is None:
                    return
                elif item.__class__ is _Join:
                    self._join(item)
                else:
                    item.set()  # a flush mark
            except Exception as exc:  # never let delivery stop for good
                name = type(exc).__name__
                _log_error("delivery on %s failed: %s: %s", self.backend.url, name, exc)

    def flush(self, timeout: float | None = None) -> None:
        deadline = None if timeout is None else time.monotonic() + timeout
        in_worker = threading.current_thread() is self._worker
        while True:
            # Events other threads publish meanwhile are not waited for (under
            # steady publishing this would never end); those that subscribers
            # publish while this flush delivers are: they follow from it.
            from_callbacks = self._from_callbacks
            self.backend.flush(_left(deadline))
            if in_worker or self._worker is None or self._inbox is None:
                return
            mark = threading.Event()
            self._inbox.put(mark)
            if not mark.wait(_left(deadline)):
                raise TimeoutError(
                    f"flush() timed out after {timeout} s: {self._inbox.qsize()} events "
                    f"are stored but not yet delivered; a subscriber may be blocked"
                )
            if self._from_callbacks == from_callbacks:
                return

    def close(self) -> None:
        self._closing.set()  # a join retrying its read gives up
        if self._worker is not None and self._inbox is not None:
            self._inbox.put(None)
            if self._worker is not threading.current_thread():
                self._worker.join(5)

    def _queued(self) -> int:
        return self._inbox.qsize() if self._inbox is not None else 0


def _left(deadline: float | None) -> float | None:
    return None if deadline is None else max(0.0, deadline - time.monotonic())
