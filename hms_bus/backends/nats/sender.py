"""The send-ack-resend pipeline: every event stored once, or reported.

``publish`` only appends an encoded event to the outbox (about a
microsecond). A sender task on the connection's loop makes asynchronous
publishes whose acks come to one inbox of ours, so error replies are seen at
once (nats-py's ``publish_async`` futures never resolve on some server
errors, nats.py issue #985). Each ack has a timeout of ours; an event without
an ack in time is re-sent with the same ``Nats-Msg-Id``, which the server
stores once, with back-off, up to ``max_attempts`` sends while connected.
Events sent just before a disconnect are re-sent after the reconnect. What
still fails is kept for :meth:`Sender.take_failed`, which ``flush`` raises.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import time
from collections import deque
from typing import TYPE_CHECKING, Any

from ...errors import HmsBusError
from ..retry import backoff
from .connection import HOW_TO_START, Connection, NatsOptions

if TYPE_CHECKING:
    from ...event import Event

__all__ = ["Sender", "MAX_INFLIGHT"]

log = logging.getLogger("hms_bus.nats")

MAX_INFLIGHT = 4000
"""Publishes awaiting their ack at once (nats-py's own limit)."""

RESEND_FIRST_S, RESEND_CAP_S = 0.05, 2.0
"""Back-off between re-sends of one event: from 50 ms, doubling, at most 2 s."""


FINAL_ERR_CODES = frozenset({10077, 10078, 10054})
"""JetStream refusals a re-send cannot change: maximum messages exceeded, maximum
bytes exceeded (a stream with ``discard: new``), message size exceeds the maximum."""


class Pending:
    """One event on its way to the stream: queued, sent and awaiting its ack, or due again."""

    __slots__ = (
        "event",
        "subject",
        "payload",
        "headers",
        "reply",
        "attempts",
        "due",
        "waiting",
        "epoch",
    )

    def __init__(self, event: Event, subject: str, payload: bytes, headers: dict) -> None:
        self.event = event
        self.subject = subject
        self.payload = payload
        self.headers = headers
        self.reply = ""
        self.attempts = 0
        self.due = 0.0
        self.waiting = False  # sent, ack not yet in
        self.epoch = 0


class Sender:
    """Sends what is put in the outbox and watches the acks (see the module docstring)."""

    def __init__(self, conn: Connection, options: NatsOptions) -> None:
        self.conn = conn
        self.options = options
        self.outbox: deque[Pending] = deque()
        self.inflight: dict[str, Pending] = {}
        self.failed: list[tuple[str, str]] = []
        self.acked_seq = 0
        """The highest stream sequence acked for this backend."""
        self.counts = {"acked": 0, "resent": 0, "timeouts": 0, "duplicates": 0, "failed": 0}
        self._awake = True
        self._wake: asyncio.Event | None = None
        self._tasks: list[asyncio.Task] = []

    async def start(self) -> None:
        """Subscribe to the ack inbox and start the sender and the supervisor."""
        nc = self.conn.nc
        self._wake = asyncio.Event()
        self._prefix = nc.new_inbox() + "."
        self._cut = len(self._prefix)
        self._tokens = itertools.count(1)
        await nc.subscribe(self._prefix + "*", cb=self._on_ack, pending_msgs_limit=-1)
        self.conn.on_reconnect.append(self._after_reconnect)
        self._tasks = [
            asyncio.ensure_future(self._send_loop()),
            asyncio.ensure_future(self._watch()),
        ]

    def put(self, pending: Pending) -> None:
        """Queue ``pending`` (any thread; under the bus lock)."""
        if len(self.outbox) >= self.options.max_buffered:
            raise HmsBusError(
                f"{len(self.outbox)} events are waiting for NATS at {self.conn.label} "
                f"({self.conn.state()}); not taking more. {HOW_TO_START}"
            )
        self.outbox.append(pending)
        if not self._awake and self._wake is not None:
            self._awake = True
            self.conn.loop.call_soon_threadsafe(self._wake.set)

    @property
    def pending(self) -> int:
        """Events not yet acked: queued or in flight."""
        return len(self.outbox) + len(self.inflight)

    def _after_reconnect(self) -> None:
        now = self.conn.loop.time()
        for p in self.inflight.values():
            if p.epoch != self.conn.epoch:
                p.due = now  # its ack may be lost with the old connection
        if self._wake is not None:
            self._wake.set()

    async def _send_loop(self) -> None:
        outbox, inflight, nc, wake = self.outbox, self.inflight, self.conn.nc, self._wake
        assert wake is not None
        while True:
            self._awake = False
            wake.clear()
            if not (outbox and nc.is_connected and len(inflight) < MAX_INFLIGHT):
                await wake.wait()
                continue
            self._awake = True
            for _ in range(min(len(outbox), MAX_INFLIGHT - len(inflight), 512)):
                p = outbox.popleft()
                p.reply = str(next(self._tokens))
                inflight[p.reply] = p
                if not await self._send(p):
                    break

    async def _send(self, p: Pending) -> bool:
        """Send ``p`` once, its ack to come to our inbox; False if that cannot be done now."""
        loop, nc = self.conn.loop, self.conn.nc
        if not nc.is_connected:
            p.due = loop.time() + 0.25
            return False
        p.attempts += 1
        p.epoch = self.conn.epoch
        p.due = loop.time() + self.options.ack_timeout
        try:
            await nc.publish(p.subject, p.payload, reply=self._prefix + p.reply, headers=p.headers)
        except Exception as exc:  # the pending buffer is full while reconnecting, ...
            self.conn.last_error = f"{type(exc).__name__}: {exc}"
            p.due = loop.time() + 0.25
            return False
        p.waiting = True
        return True

    async def _on_ack(self, msg: Any) -> None:
        p = self.inflight.get(msg.subject[self._cut :])
        if p is None:
            return  # a late ack of an event already acked
        error: Any = None
        ack: dict = {}
        if not msg.data:
            status = msg.headers.get("Status") if msg.headers else None
            error = "no responders: the stream has no leader" if status == "503" else status
        else:
            try:
                ack = json.loads(msg.data)
                error = ack.get("error")
            except ValueError:
                error = f"unreadable ack {msg.data[:80]!r}"
        if error is None:
            del self.inflight[p.reply]
            counts = self.counts
            counts["acked"] += 1
            if ack.get("duplicate"):
                counts["duplicates"] += 1
            seq = ack.get("seq", 0)
            if seq > self.acked_seq:
                self.acked_seq = seq
            if len(self.inflight) < MAX_INFLIGHT // 2 and self._wake is not None:
                self._wake.set()
            return
        if isinstance(error, dict) and error.get("err_code") in FINAL_ERR_CODES:
            # A full stream that discards new messages, an event the stream can never
            # hold: re-sending cannot help, so flush() says so at once.
            del self.inflight[p.reply]
            self.counts["failed"] += 1
            reason = f"{error.get('description', 'refused')} (err_code {error['err_code']})"
            self.failed.append((p.event.id, reason))
            self.conn.last_error = reason
            log.error(
                "event %s (%s) not stored on NATS at %s: %s",
                p.event.id,
                p.event.topic,
                self.conn.label,
                reason,
            )
            return
        # No stream leader while a cluster elects one, ...
        p.waiting = False
        p.due = self.conn.loop.time() + backoff(p.attempts, RESEND_FIRST_S, RESEND_CAP_S)
        self.conn.last_error = error if isinstance(error, str) else json.dumps(error)

    async def _watch(self) -> None:
        """Re-send what was not acked in time, with back-off; give up after max_attempts."""
        loop, conn = self.conn.loop, self.conn
        while True:
            await asyncio.sleep(0.1)
            if not conn.connected:
                continue
            now = loop.time()
            for key, p in list(self.inflight.items()):
                if p.due > now or key not in self.inflight:
                    continue
                if p.waiting:
                    p.waiting = False  # a late ack still counts (same message id)
                    if p.epoch == conn.epoch:
                        self.counts["timeouts"] += 1
                        p.due = now + backoff(p.attempts, RESEND_FIRST_S, RESEND_CAP_S)
                        continue
                    p.attempts -= 1  # cut off by a disconnect: not a real attempt
                if p.attempts >= self.options.max_attempts:
                    del self.inflight[key]
                    self.counts["failed"] += 1
                    reason = conn.last_error or "no ack"
                    self.failed.append((p.event.id, reason))
                    log.error(
                        "event %s (%s) not stored on NATS at %s after %d attempts: %s",
                        p.event.id,
                        p.event.topic,
                        conn.label,
                        p.attempts,
                        reason,
                    )
                    continue
                self.counts["resent"] += 1
                if not await self._send(p):
                    break

    def take_failed(self) -> list[tuple[str, str]]:
        """The (event id, reason) pairs given up on since the last call."""
        failed, self.failed = self.failed, []
        return failed

    def wait_acked(self, deadline: float | None, on_timeout: Any) -> None:
        """Block until every queued event is acked or given up on.

        Calls ``on_timeout()`` (which raises) once ``deadline`` passes; raises
        :class:`HmsBusError` when the server has been away longer than
        ``outage_timeout`` (with no deadline), or when acks stop coming.
        """
        conn, outage = self.conn, self.options.outage_timeout
        last, stuck = self.counts["acked"], time.monotonic()
        while self.outbox or self.inflight:
            now = time.monotonic()
            if deadline is not None and now > deadline:
                on_timeout()
            down = conn.down_since
            if deadline is None and down is not None and now - down > outage:
                raise HmsBusError(
                    f"NATS at {conn.label} has been unreachable for {now - down:.0f} s; "
                    f"{self.pending} events are buffered and will be sent when it is back, "
                    f"as long as this bus stays open. "
                    f"{HOW_TO_START}"
                )
            if self.counts["acked"] != last:
                last, stuck = self.counts["acked"], now
            elif down is None and now - stuck > outage * 4:
                raise HmsBusError(
                    f"no ack from NATS at {conn.label} for {outage * 4:.0f} s "
                    f"({conn.state()}; last error: {conn.last_error or 'none'})"
                )
            time.sleep(0.002)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
