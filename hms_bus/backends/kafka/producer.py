"""Writing events: librdkafka's idempotent producer, and a flush that tells the truth.

The producer runs with ``enable.idempotence=true`` and ``acks=all``: every
record is acknowledged by all in-sync replicas, and librdkafka's own retries
(after a lost connection, a leader change, a timeout) carry sequence numbers
that let the broker store each record once. :meth:`Sender.send` only hands
the record to librdkafka (a few microseconds) and never waits for the broker.

librdkafka reports only failures here (``delivery.report.only.error``):
each failed record is counted with its event id and librdkafka's reason, and
:meth:`Sender.flush` raises if any failed, even though librdkafka's own
``flush()`` then returns 0. The failed events are kept, so the caller can
send them again with :meth:`Sender.resend_failed`; the same producer stores
each once.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Producer

from ...errors import HmsBusError
from ...event import Event
from .config import KafkaConfig, shown
from .connect import ErrorLog, librdkafka_logger, wait_for_brokers
from .wire import Encoder

__all__ = ["Sender", "Failure"]

POLL_EVERY = 1024
"""Serve librdkafka's callbacks after this many sends (cheap, keeps failures current)."""


class Failure:
    """One event librdkafka could not store, with its reason."""

    __slots__ = ("event_id", "reason", "topic", "value", "key", "partition", "timestamp")

    def __init__(self, msg: Any, err: KafkaError) -> None:
        key = msg.key() or b""
        self.event_id = key.decode("ascii", "replace").rpartition(".")[0] or "?"
        self.reason = f"{err.name()}: {err.str()}"
        self.topic = msg.topic()
        self.value = msg.value()
        self.key = key
        self.partition = msg.partition()
        self.timestamp = msg.timestamp()[1]


class Sender:
    """The backend's one producer: connects at once, sends, counts what failed."""

    def __init__(self, config: KafkaConfig, session: str) -> None:
        self.config = config
        self.url = config.url
        self.errors = ErrorLog(config.url)
        self.encoder = Encoder(session)
        self.failed: list[Failure] = []
        """Records that could not be stored and that no flush has reported yet."""
        self.lost: list[Failure] = []
        """Records reported by a flush; :meth:`resend_failed` sends them again."""
        self.sent = 0
        self._lock = threading.Lock()  # guards ``failed`` against the flushing thread
        try:
            self.producer = Producer(
                config.client_conf(
                    **{
                        "enable.idempotence": True,
                        "acks": "all",
                        "linger.ms": 5,
                        "message.timeout.ms": int(config.message_timeout * 1000),
                        "queue.buffering.max.messages": 1_000_000,
                        "delivery.report.only.error": True,
                        "on_delivery": self._on_delivery,
                        "error_cb": self.errors,
                        "logger": librdkafka_logger(),
                    }
                )
            )
        except KafkaException as exc:
            raise ValueError(
                f"librdkafka refused the settings of {shown(config.url)}: {exc.args[0].str()}; "
                f"fix or remove that setting"
            ) from None
        self._produce = self.producer.produce
        self.metadata = wait_for_brokers(
            self.producer, self.errors, config.connect_timeout, config.url
        )

    def _on_delivery(self, err: KafkaError | None, msg: Any) -> None:
        """Called from poll/flush, only for records that could not be stored."""
        if err is None:
            return
        with self._lock:
            self.failed.append(Failure(msg, err))
        self.errors.last = err.str()

    def send(self, event: Event, topic: str, partition: int) -> None:
        """Hand ``event`` to librdkafka for ``topic[partition]``; raise if it refuses it."""
        value, key, ms = self.encoder.encode(event)
        self._send(topic, value, key, partition, ms, event)

    def _send(self, topic: str, value: bytes, key: bytes, partition: int, ms: int, event: Any):
        try:
            self._produce(topic, value, key, partition, timestamp=ms)
        except BufferError:  # librdkafka's queue is full: wait for the brokers to drain it
            self._send_when_room(topic, value, key, partition, ms)
        except KafkaException as exc:  # refused at once: too large, unknown partition...
            err = exc.args[0]
            hint = (
                "; make the data smaller or raise message.max.bytes (on the client and the broker)"
                if err.code() == KafkaError.MSG_SIZE_TOO_LARGE
                else ""
            )
            name = event.id if isinstance(event, Event) else event
            raise HmsBusError(
                f"Kafka at {shown(self.url)} refused event {name} for {topic}[{partition}] "
                f"({len(value)} bytes): {err.str()}{hint}"
            ) from None
        self.sent += 1
        if not self.sent % POLL_EVERY:
            self.producer.poll(0)

    def _send_when_room(self, topic: str, value: bytes, key: bytes, partition: int, ms: int):
        deadline = time.monotonic() + self.config.message_timeout
        while True:
            self.producer.poll(0.05)
            try:
                self._produce(topic, value, key, partition, timestamp=ms)
                return
            except BufferError:
                if time.monotonic() > deadline:
                    raise HmsBusError(
                        f"{len(self.producer)} events are waiting for Kafka at "
                        f"{shown(self.url)} ({self.errors.last or 'no reason given'}); "
                        f"not taking more until they are stored"
                    ) from None

    def in_flight(self) -> int:
        """Records handed to librdkafka and not yet acknowledged (or failed)."""
        return len(self.producer)

    def flush(self, timeout: float | None) -> None:
        """Wait until every record is acknowledged; raise if any could not be stored.

        ``TimeoutError`` if ``timeout`` passes first (the records stay queued);
        :class:`HmsBusError` naming the failed events and librdkafka's reason.
        """
        budget = self.config.message_timeout + 5 if timeout is None else timeout
        left = self.producer.flush(budget)
        if left:
            raise TimeoutError(
                f"flush() timed out after {budget:g} s: {left} events not yet acknowledged by "
                f"Kafka at {shown(self.url)} ({self.errors.last or 'brokers slow or away'})"
            )
        self.errors.all_down = False
        with self._lock:
            failed, self.failed = self.failed, []
            self.lost += failed
        if failed:
            ids = ", ".join(f.event_id for f in failed[:3])
            more = ", ..." if len(failed) > 3 else ""
            raise HmsBusError(
                f"{len(failed)} event(s) could not be stored on Kafka at {shown(self.url)} "
                f"(first: {ids}{more}); librdkafka says: {failed[-1].reason}. They are kept: "
                f"bus.backend.resend_failed() sends them again once the brokers are back"
            )

    def resend_failed(self) -> int:
        """Send every failed record again, unchanged; returns how many.

        Readers drop a record stored twice (same key), so this is safe even if an
        earlier attempt did reach the broker.
        """
        with self._lock:
            failed, self.failed, self.lost = self.lost + self.failed, [], []
        for f in failed:
            self._send(f.topic, f.value, f.key, f.partition, f.timestamp, f.event_id)
        return len(failed)

    def close(self, timeout: float) -> int:
        """Flush for at most ``timeout`` s; returns how many records were left unsent."""
        return self.producer.flush(timeout)
