"""The small interface every backend implements.

The :class:`~hms_bus.Bus` does everything that must be the same whatever
carries the events: it checks arguments, freezes data, stamps time, id and
sequence, and isolates failing subscribers. A backend only stores and carries
events: :meth:`Backend.publish`, :meth:`Backend.subscribe` (with a start
point), :meth:`Backend.unsubscribe`, :meth:`Backend.replay`,
:meth:`Backend.flush` and :meth:`Backend.close`.
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
        """Take ``event``.

        Called with the bus's lock held, once per event, in sequence order; it
        must not block and must not call subscribers. Return None when nothing
        is due in this thread; otherwise the bus calls ``deliver(event, due)``
        with what was returned, after releasing its lock.
        """
        raise NotImplementedError

    def deliver(self, event: Event | None = None, due: object = DRAIN) -> None:
        """Run subscriber callbacks that are due (outside the bus lock).

        With no arguments: whatever is queued.
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
