"""A push consumer on the bus's stream that survives resets, for the NATS backend.

A :class:`Feed` reads the stream in sequence order from a start point (a
sequence, a time, or the beginning) and hands each message to a callback with
its stream sequence. It is its own small "ordered consumer": an ephemeral
consumer without acks, with flow control and idle heartbeats. When a
consumer sequence is skipped, heartbeats stop, or the client reconnects, it
drops the consumer and creates a new one from the next stream sequence it has
not seen. It never resets by time, which JetStream refuses for ordered
consumers (JetStream answers error 10094), and it drops any message at or
below the last sequence it passed on, so a reset never repeats one.

The live feed of a bus is one :class:`Feed`; each history read and replay
is a short-lived one that stops at a sequence.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from ..retry import AGAIN, retry

__all__ = ["Feed"]

log = logging.getLogger("hms_bus.nats")

HEARTBEAT_S = 1.0
"""How often an idle consumer says it is alive, in seconds."""

STALE_AFTER_S = 3.5
"""A feed that heard nothing for this long is re-created, in seconds."""


def parse_reply(reply: str) -> tuple[int, int, int, int]:
    """``(stream_seq, consumer_seq, timestamp_ns, num_pending)`` from a JetStream reply subject."""
    t = reply.split(".")
    if len(t) == 9:  # $JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts>.<pending>
        return int(t[5]), int(t[6]), int(t[7]), int(t[8])
    # $JS.ACK.<domain>.<account>.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts>.<pending>...
    return int(t[7]), int(t[8]), int(t[9]), int(t[10])


class Feed:
    """Delivers the stream's messages under ``subject`` to ``on_msg(msg, sseq, ts_ns, pending)``.

    :param start_seq: the first stream sequence to read; or
    :param start_time: the first time (epoch seconds, server time) to read;
        neither means from the beginning.
    :param on_empty: called once if, when the first consumer is created,
        nothing matches (so a history read knows it is done).
    """

    def __init__(
        self,
        nc: Any,
        stream: str,
        subject: str,
        on_msg: Callable[[Any, int, int, int], None],
        *,
        start_seq: int | None = None,
        start_time: float | None = None,
        on_empty: Callable[[], None] | None = None,
    ) -> None:
        self.nc = nc
        self.jsm = nc.jsm()
        self.stream = stream
        self.subject = subject
        self.on_msg = on_msg
        self.on_empty = on_empty
        self.start_seq = start_seq
        self.start_time = start_time
        # the last stream sequence passed on (or skipped: before the start)
        self.last_seq = max(0, start_seq - 1) if start_seq is not None else 0
        self.resets = 0
        self.closed = False
        self._sub: Any = None
        self._consumer: str | None = None
        self._expected = 1
        self._heard = 0.0
        self._busy = False
        self._watch: asyncio.Task | None = None
        self._first = True
        self._generation = 0

    def _config(self, inbox: str) -> ConsumerConfig:
        cfg = ConsumerConfig(
            deliver_subject=inbox,
            ack_policy=AckPolicy.NONE,
            filter_subject=self.subject,
            flow_control=True,
            idle_heartbeat=HEARTBEAT_S,
            inactive_threshold=30.0,
            mem_storage=True,
            num_replicas=1,
        )
        if self.last_seq:
            cfg.deliver_policy = DeliverPolicy.BY_START_SEQUENCE
            cfg.opt_start_seq = self.last_seq + 1
        elif self.start_seq is not None:
            cfg.deliver_policy = DeliverPolicy.BY_START_SEQUENCE
            cfg.opt_start_seq = max(1, self.start_seq)
        elif self.start_time is not None:
            cfg.deliver_policy = DeliverPolicy.BY_START_TIME
            cfg.opt_start_time = datetime.fromtimestamp(max(0.0, self.start_time), timezone.utc)
        else:
            cfg.deliver_policy = DeliverPolicy.ALL
        return cfg

    async def start(self, timeout: float = 30.0) -> None:
        """Create the first consumer and start watching it.

        Retries while a cluster elects a leader; raises after ``timeout`` seconds.
        """
        await retry(self._create, judge=lambda exc: AGAIN, budget=timeout)
        self._watch = asyncio.ensure_future(self._watchdog())

    async def _create(self) -> None:
        loop = asyncio.get_running_loop()
        inbox = self.nc.new_inbox()
        self._expected = 1
        self._heard = loop.time()
        self._generation += 1
        generation = self._generation

        async def receive(msg: Any) -> None:
            if generation == self._generation:  # not from a consumer already dropped
                await self._receive(msg)

        self._sub = await self.nc.subscribe(inbox, cb=receive, pending_msgs_limit=-1)
        try:
            info = await self.jsm.add_consumer(self.stream, config=self._config(inbox))
        except BaseException:
            await self._drop()
            raise
        self._consumer = info.name
        if self._first:
            self._first = False
            if info.num_pending == 0 and self.on_empty is not None:
                self.on_empty()

    async def _drop(self) -> None:
        sub, name = self._sub, self._consumer
        self._sub = self._consumer = None
        self._generation += 1
        if sub is not None:
            try:
                await sub.unsubscribe()
            except Exception:
                pass
        if name is not None and self.nc.is_connected:
            try:
                await asyncio.wait_for(self.jsm.delete_consumer(self.stream, name), 2.0)
            except Exception:
                pass  # an ephemeral consumer goes away by itself when idle

    async def reset(self, why: str) -> None:
        """Drop the consumer and create a new one after the last sequence passed on."""
        if self._busy or self.closed:
            return
        self._busy = True
        self.resets += 1
        log.info(
            "re-creating the consumer for %s after seq %d: %s", self.subject, self.last_seq, why
        )

        async def create() -> None:
            if not self.nc.is_connected:
                raise ConnectionError("not connected")
            await self._create()

        def judge(exc: Exception) -> str:
            log.info("consumer for %s not created yet: %r", self.subject, exc)
            return AGAIN

        try:
            await self._drop()
            await retry(create, judge=judge, budget=None, stop=lambda: self.closed)
        except Exception:
            pass  # closed meanwhile
        finally:
            self._busy = False

    async def _watchdog(self) -> None:
        loop = asyncio.get_running_loop()
        while not self.closed:
            await asyncio.sleep(HEARTBEAT_S / 2)
            if self.nc.is_connected and loop.time() - self._heard > STALE_AFTER_S:
                await self.reset("no heartbeat")

    async def _receive(self, msg: Any) -> None:
        self._heard = asyncio.get_running_loop().time()
        reply = msg.reply
        if not reply or not reply.startswith("$JS.ACK."):
            # Not a stored message: the server's flow control or idle heartbeat. (A
            # stored message always has a $JS.ACK reply, whatever headers a foreign
            # client gave it: one with an empty body and a "Status" header is data.)
            if msg.headers and msg.headers.get("Status"):
                stalled = msg.headers.get("Nats-Consumer-Stalled")
                if reply or stalled:  # flow control: answer or the server stops sending
                    await self.nc.publish(reply or stalled, b"")
            return
        sseq, cseq, ts, pending = parse_reply(reply)
        if cseq != self._expected:
            asyncio.ensure_future(
                self.reset(f"consumer sequence {cseq}, expected {self._expected}")
            )
            return
        self._expected += 1
        if sseq <= self.last_seq:
            return
        try:
            self.on_msg(msg, sseq, ts, pending)
        except Exception as exc:  # a reader's bug must not stall the feed
            log.error("feed on %s: message %d: %s: %s", self.subject, sseq, type(exc).__name__, exc)
        self.last_seq = sseq  # after on_msg: whoever reads it knows the message was handed on

    async def close(self) -> None:
        self.closed = True
        if self._watch is not None:
            self._watch.cancel()
        await self._drop()
