"""The small interface every backend implements.

The :class:`~hms_bus.Bus` checks arguments, freezes data and stamps each
event's time, sequence and id under its lock (:attr:`Bus.lock`), then hands
the event to its backend. The backend does the rest: it stores the event,
keeps the subscriptions and calls the subscribers, one event at a time, in
order. A subscriber's exception goes to :meth:`Bus.subscriber_failed`, which
counts, logs and publishes it, and delivery goes on with the next subscriber.

The methods: :meth:`Backend.attach` (once, by the bus), :meth:`Backend.publish`
(store, under the bus lock) then :meth:`Backend.deliver` (call subscribers,
outside it), :meth:`Backend.subscribe` (with a start point),
:meth:`Backend.unsubscribe`, :meth:`Backend.replay`, :meth:`Backend.flush`,
:meth:`Backend.close` and :meth:`Backend.status`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..bus import Bus, Subscription
    from ..event import Event

__all__ = ["Backend", "ALL", "NEW", "DRAIN"]

ALL = "all"
"""Start policy: every kept event that matches, then live events."""

NEW = "new"
"""Start policy: only events published after subscribing."""

DRAIN = "drain"
"""What :meth:`Backend.publish` returns when the caller should drain the queue."""


class Backend:
    """Stores and carries events for one :class:`~hms_bus.Bus`."""

    url = "memory://"
    """Where the events live, for messages and ``repr``."""

    def attach(self, bus: Bus) -> None:
        """Called once by the bus that owns this backend."""
        self.bus = bus

    def publish(self, event: Event) -> object | None:
        """Store ``event``; raise to refuse it (the bus then counts nothing).

        Called with the bus's lock held, once per event, in sequence order; it
        must not block and must not call subscribers. Return None when nothing
        is due in this thread; otherwise the bus calls ``deliver(event, due)``
        with what was returned, after releasing its lock.
        """
        raise NotImplementedError

    def deliver(self, event: Event | None = None, due: object = DRAIN) -> None:
        """Call the subscribers that are due (outside the bus lock).

        With no arguments: whatever is queued. A subscriber's ``Exception``
        goes to ``self.bus.subscriber_failed`` and delivery goes on; whatever
        else happens, the backend must be able to deliver again afterwards.
        """

    def subscribe(self, sub: Subscription, start: str | float) -> None:
        """Start delivering to ``sub``.

        ``start`` is :data:`ALL`, :data:`NEW` or epoch seconds: kept events
        from that time on reach ``sub`` first, oldest first, then live ones,
        each exactly once. Called with the bus's lock held.
        """
        raise NotImplementedError

    def unsubscribe(self, sub: Subscription) -> None:
        """Stop delivering to ``sub`` (idempotent)."""
        raise NotImplementedError

    def replay(
        self,
        pattern: str,
        since: float | None,
        until: float | None,
        limit: int | None,
        now: float,
    ) -> list[Event]:
        """Kept events matching ``pattern`` between ``since`` and ``until``."""
        raise NotImplementedError

    def flush(self, timeout: float | None = None) -> None:
        """Wait until everything published so far is stored and delivered."""

    def close(self) -> None:
        """Release resources; the bus is unusable afterwards."""

    def status(self) -> dict:
        """A small dict describing the backend's health, for operators."""
        return {"url": self.url}
