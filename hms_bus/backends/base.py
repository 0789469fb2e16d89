"""The small interface every backend implements: storage and transport, no delivery.

The :class:`~hms_bus.Bus` checks arguments, freezes data and stamps each
event's time, sequence and id under its lock (:attr:`Bus.lock`). Its
dispatcher (:mod:`hms_bus.dispatch`) keeps the subscriptions and calls the
subscribers, the same way on every backend. A backend only stores events and
carries them:

* :meth:`Backend.append` stores one event (under the bus lock, in sequence
  order; raise to refuse it).
* :meth:`Backend.read` returns kept events by pattern, time range and limit,
  oldest first, up to a *position*.
* :meth:`Backend.listen` starts a feed of every event the backend stores,
  this bus's own and other processes', in the backend's order; each comes
  with its position and whether this backend appended it.
* :meth:`Backend.flush`, :meth:`Backend.close`, :meth:`Backend.status`.

A **position** is any value the backend chooses (a stream sequence, a map of
partition offsets...). The dispatcher never looks inside: it keeps the
position that came with the last event it handed out and passes it back to
``read(upto=...)``. That is how "kept events up to P, then live events after
P" gives every event to a new subscription exactly once.

A **local** backend (``local = True``, such as the in-memory one) has no
feed: nothing arrives from elsewhere, so the dispatcher delivers each event
right after ``append``, in the publishing thread, and a position is the
bus's sequence number: ``read(upto=n)`` returns events with ``seq <= n``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..bus import Bus
    from ..event import Event

__all__ = ["Backend", "Position", "Sink", "ALL", "NEW"]

ALL = "all"
"""Start policy: every kept event that matches, then live events."""

NEW = "new"
"""Start policy: only events published after subscribing."""

Position = Any
"""Where a backend's feed stands; opaque to everyone but the backend."""

Sink = Callable[["Event", Position, bool], None]
"""What :meth:`Backend.listen` feeds: ``sink(event, position, own)``, one event at a time."""


class Backend:
    """Stores and carries events for one :class:`~hms_bus.Bus`."""

    url = "memory://"
    """Where the events live, for messages and ``repr``."""

    local = False
    """True for a backend without a feed: the dispatcher delivers each event
    itself, right after :meth:`append`, and positions are ``Event.seq`` values."""

    def attach(self, bus: Bus) -> None:
        """Called once by the bus that owns this backend (before anything else)."""
        self.bus = bus

    def append(self, event: Event) -> None:
        """Store ``event``, or raise to refuse it (the bus then counts nothing).

        Called with the bus lock held, once per event, in sequence order: be
        quick, and never call subscribers. A backend may store the event later
        (a network round trip); :meth:`flush` waits for that.
        """
        raise NotImplementedError

    def read(
        self,
        pattern: str,
        since: float | None,
        until: float | None,
        limit: int | None,
        upto: Position = None,
    ) -> list[Event]:
        """Kept events whose topic matches ``pattern``, oldest first.

        ``since`` and ``until`` bound the event time (epoch seconds,
        inclusive); ``limit`` (never 0) keeps the first ``limit``. ``upto``
        is a position this backend gave out: read only events at or before
        it. None means everything stored so far, this bus's own events
        included (read your own writes). Events this backend cannot turn into
        valid events are skipped or shown as documented, never raised.
        """
        raise NotImplementedError

    def listen(self, sink: Sink) -> Position:
        """Start feeding ``sink(event, position, own)`` with every event stored from now on.

        Called once, on the first subscription, by a non-local backend's bus.
        Return the position the feed starts after: every event at or before
        it is for :meth:`read`, every later one goes to ``sink``, once, in
        order. ``own`` is True for an event this backend appended (other
        processes may publish equal ids: a seeded simulation run twice).
        ``sink`` never blocks and never raises; call it from any one thread.
        """
        raise NotImplementedError(f"{type(self).__name__} has no feed; set local = True")

    def flush(self, timeout: float | None = None) -> None:
        """Wait until every appended event is stored and, once :meth:`listen`
        has started, handed to the sink. Raise :class:`~hms_bus.HmsBusError`
        for events that could not be stored, ``TimeoutError`` after ``timeout``
        seconds (None: no limit)."""

    def close(self) -> None:
        """Release connections and threads; called once, after a last flush."""

    def status(self) -> dict:
        """A small dict describing the backend's health, for operators."""
        return {"url": self.url}
