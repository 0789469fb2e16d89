"""A fed backend in one process: the smallest thing that honours the interface.

Events go into a log; a feeder thread hands them back to the bus's sink a
moment later, as a broker would, with their place in the log as the
position. It exercises the dispatcher's fed mode (a worker thread, joins at
a position, this bus's own events arriving after a subscription) without a
server, and shows how little a backend has to do.
"""

from __future__ import annotations

import threading
import time

from hms_bus.backends.base import Backend, Sink
from hms_bus.event import Event
from hms_bus.topics import matches


class LoopbackBackend(Backend):
    url = "loopback://"
    local = False

    def __init__(self, max_retained: int | None = None) -> None:
        self._log: list[Event] = []
        self._max = max_retained
        self._cond = threading.Condition()
        self._fed = 0  # how many events of the log went to the sink
        self._sink: Sink | None = None
        self._closed = False

    def append(self, event: Event) -> None:
        with self._cond:
            self._log.append(event)
            self._cond.notify()

    def read(
        self,
        pattern: str,
        since: float | None,
        until: float | None,
        limit: int | None,
        upto: int | None = None,
    ) -> list[Event]:
        with self._cond:
            end = len(self._log)
            first = 0 if self._max is None else max(0, end - self._max)
            kept = self._log[first : end if upto is None else min(end, upto)]
        out = [
            ev
            for ev in kept
            if matches(pattern, ev.topic)
            and (since is None or ev.time >= since)
            and (until is None or ev.time <= until)
        ]
        return out[:limit] if limit is not None else out

    def listen(self, sink: Sink) -> int:
        with self._cond:
            self._sink = sink
            self._fed = start = len(self._log)
        threading.Thread(target=self._feed, name="loopback-feed", daemon=True).start()
        return start

    def _feed(self) -> None:
        assert self._sink is not None
        while True:
            with self._cond:
                while self._fed >= len(self._log) and not self._closed:
                    self._cond.wait()
                if self._closed:
                    return
                start, batch = self._fed, self._log[self._fed :]
            time.sleep(0.002)  # arrive a little later, as from a server
            for position, event in enumerate(batch, start + 1):
                self._sink(event, position, True)  # all its events are its own
                self._fed = position

    def flush(self, timeout: float | None = None) -> None:
        deadline = None if timeout is None else time.monotonic() + timeout
        target = len(self._log)  # what was appended before the call, not what comes later
        while self._sink is not None and self._fed < target:
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"flush() timed out after {timeout} s")
            time.sleep(0.001)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify()

    def status(self) -> dict:
        return {"url": self.url, "kept": len(self._log)}
