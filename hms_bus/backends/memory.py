"""The in-memory backend: one process, no network, the default.

It keeps events in a :class:`~hms_bus.retention.Retention` buffer, measured
on the bus clock. It is *local*: no event arrives from elsewhere, so the
bus's dispatcher delivers each one right after :meth:`MemoryBackend.append`,
in the publishing thread, and a subscriber has run by the time ``publish``
returns (unless another thread is delivering; ``flush`` waits for it).
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from ..retention import DEFAULT_MAX_RETAINED, DEFAULT_WINDOW_S, Retention
from .base import Backend

if TYPE_CHECKING:
    from ..bus import Bus
    from ..event import Event

__all__ = ["MemoryBackend"]


class MemoryBackend(Backend):
    """Keeps events in a :class:`~hms_bus.retention.Retention` buffer.

    :param retention: how long events are kept, seconds or a timedelta.
    :param max_retained: how many events are kept at most.
    """

    url = "memory://"
    local = True

    def __init__(
        self,
        retention: float | timedelta = DEFAULT_WINDOW_S,
        max_retained: int | None = DEFAULT_MAX_RETAINED,
    ) -> None:
        self.retention = Retention(retention, max_retained)
        if type(self).append is MemoryBackend.append:
            # One call less on every publish; a subclass's own append still wins.
            self.append = self.retention.append  # type: ignore[method-assign]

    def attach(self, bus: Bus) -> None:
        super().attach(bus)
        self._lock = bus.lock

    def append(self, event: Event) -> None:
        self.retention.append(event)

    def read(
        self,
        pattern: str,
        since: float | None,
        until: float | None,
        limit: int | None,
        upto: int | None = None,
    ) -> list[Event]:
        with self._lock:
            return self.retention.replay(
                pattern,
                since=since,
                until=until,
                limit=limit,
                now=self.bus.clock.now(),
                max_seq=upto,
            )

    def status(self) -> dict:
        with self._lock:
            self.retention.expire(self.bus.clock.now())
            return {
                "url": self.url,
                "retained": len(self.retention),
                "expired": self.retention.expired,
                "evicted": self.retention.evicted,
            }
