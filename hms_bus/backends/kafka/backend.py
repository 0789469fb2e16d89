"""The Kafka backend: the bus's events in Kafka topics, through confluent-kafka.

``hms_bus.use("kafka://k1:9092,k2:9092")`` (or ``HMS_BUS_URL``) puts the
default bus here. The backend stores and carries events; the pieces, one
module each: :mod:`.config` (the URL), :mod:`.naming` (bus topic → Kafka
topic and partition), :mod:`.wire` (the record format), :mod:`.producer`
(the idempotent producer and an honest flush), :mod:`.admin` (topics the kit
creates, offsets), :mod:`.reader` (ranges of kept events) and :mod:`.feed`
(live records, in order, with exact positions).
"""

from __future__ import annotations

import atexit
import secrets
import threading
import time
import weakref
from collections.abc import Mapping
from typing import Any

from ...errors import HmsBusError
from ...event import Event
from ...redact import kit_logger
from ..base import Backend, Sink
from .admin import Cluster
from .config import parse, shown
from .feed import Feed, Position
from .naming import TopicMap
from .producer import Sender
from .reader import RangeReader
from .wire import Foreign

__all__ = ["KafkaBackend"]

log = kit_logger("hms_bus.kafka")


class KafkaBackend(Backend):
    """Stores events in Kafka topics and carries them back from there.

    :param url: ``kafka://host:port[,host:port...][?option=value&...]``; see
        :func:`hms_bus.backends.kafka.config.parse` for the options.
    :param conf: librdkafka settings for every client (``security.protocol``,
        ``sasl.username``, ``sasl.password``...); the place for secrets.
    :param options: the backend's own options, as in the URL query.
    """

    local = False

    def __init__(self, url: str, *, conf: Mapping[str, Any] | None = None, **options: Any):
        self.config = config = parse(url, conf, **options)
        self.url = shown(config.url)
        self.session = secrets.token_hex(4)
        """Part of every record key: re-sends match, other runs' equal event ids do not."""
        self.sender = Sender(config, self.session)
        self.cluster = Cluster(config, self.sender.producer, self.sender.metadata)
        self.topics = TopicMap(config.prefix, config.single, config.partitions)
        self.reader = RangeReader(config, self.cluster, self._count_duplicates)
        self.foreign = self.reader.foreign = Foreign(self.url)
        self.feed: Feed | None = None
        self._routes: dict[str, tuple[str, int]] = {}
        self._duplicates_read = 0
        self._closed = False
        _open.add(self)

    # -- storing -----------------------------------------------------------------

    def append(self, event: Event) -> None:
        if self.config.readonly:
            raise HmsBusError(
                f"this bus is read-only (readonly=true on {self.url}); publish on a bus without it"
            )
        route = self._routes.get(event.topic) or self._route(event.topic)
        self.sender.send(event, route[0], route[1])

    def _route(self, topic: str) -> tuple[str, int]:
        """The Kafka topic and partition of bus topic ``topic``, creating the topic once."""
        name = self.topics.name(topic)
        count = self.cluster.ensure(name)
        if self.feed is not None:
            self.feed.look_for_topics()
        route = self._routes[topic] = (name, self.topics.partition(topic, count))
        return route

    def resend_failed(self) -> int:
        """Send again the events a flush reported as not stored; returns how many.

        Readers drop a record stored twice, so this is safe even if an earlier
        attempt did reach the brokers.
        """
        return self.sender.resend_failed()

    # -- reading -------------------------------------------------------------------

    def read(
        self,
        pattern: str,
        since: float | None,
        until: float | None,
        limit: int | None,
        upto: Position | None = None,
    ) -> list[Event]:
        """Kept events matching ``pattern``: what the brokers still hold.

        Retention is the brokers' (``retention.ms`` on their clock), as on NATS:
        a reader on another clock (a CLI next to a simulation) sees the same events.
        """
        if upto is None:
            self.sender.producer.flush(self.config.message_timeout)  # read your own writes
            offsets = None
            names = self.cluster.topic_names()
        else:
            offsets = upto.offsets()
            names = {tp[0] for tp in offsets}
        topics = self.topics.candidates(pattern, names)
        owned = self.topics.candidates(">", names)  # what max_retained counts
        return self.reader.read(topics, pattern, since, until, limit, offsets, owned)

    def _count_duplicates(self, n: int) -> None:
        self._duplicates_read += n

    # -- carrying ------------------------------------------------------------------------

    def listen(self, sink: Sink) -> Position:
        """Follow every Kafka topic of the bus from now on; see :mod:`.feed`."""
        with self.bus.lock:  # no publish between the flush and the feed's start
            self.sender.producer.flush(self.config.message_timeout)
            mine = (self.bus.id, self.session)

            def hand_on(record: Any, position: Position, _sink: Sink = sink) -> None:
                _sink(record.event, position, record.stream == mine)

            own = {mine: self.bus.published + 1}
            self.feed = Feed(self.config, self.cluster, self.topics, hand_on, own, self.foreign)
        return self.feed.position()

    def flush(self, timeout: float | None = None) -> None:
        """Wait until every event is stored and, once listening, handed to the feed's sink.

        Raises :class:`~hms_bus.HmsBusError` naming events librdkafka could not
        store and its reason; ``TimeoutError`` if ``timeout`` passes first.
        """
        try:
            self._flush(timeout)
        except TimeoutError as exc:
            if timeout is None:
                raise
            what = str(exc).split(": ", 1)[-1]  # its own figure is the time that was left
            raise TimeoutError(f"flush() timed out after {timeout:g} s: {what}") from None

    def _flush(self, timeout: float | None) -> None:
        deadline = None if timeout is None else time.monotonic() + timeout
        self.sender.flush(_left(deadline))
        feed = self.feed
        if feed is None or threading.current_thread() is feed.thread:
            return
        if not feed.thread.is_alive():
            raise HmsBusError(f"the Kafka feed of {self.url} has stopped: {feed.last_error}")
        left = _left(deadline)
        ends = feed.call(feed.sync, 30 if left is None else left)
        progress, since = feed.progress(), time.monotonic()
        while not feed.caught_up(ends):
            now = time.monotonic()
            if deadline is not None and now > deadline:
                raise TimeoutError(
                    f"flush() timed out after {timeout} s: events are stored on Kafka at "
                    f"{self.url} but the feed has not read them all yet"
                )
            if feed.progress() != progress:
                progress, since = feed.progress(), now
            elif now - since > self.config.message_timeout or not feed.thread.is_alive():
                raise HmsBusError(
                    f"the Kafka feed of {self.url} read nothing for "
                    f"{now - since:.0f} s although records wait "
                    f"({feed.last_error or self.sender.errors.last or 'no reason given'})"
                )
            time.sleep(0.002)

    # -- housekeeping ------------------------------------------------------------------

    def status(self) -> dict:
        feed = self.feed
        return {
            "url": self.url,
            "state": "all brokers unreachable" if self.sender.errors.all_down else "connected",
            "in_flight": self.sender.in_flight(),
            "failed": len(self.sender.failed) + len(self.sender.lost),
            "duplicates_dropped": self._duplicates_read + (feed.duplicates if feed else 0),
            "gaps_skipped": feed.skipped_gaps if feed else 0,
            **self.foreign.counts,
            "created_topics": sorted(self.cluster.created),
            "found_topics": sorted(self.cluster.found),
            "admin_api": self.cluster.admin_api,
            "last_error": (feed.last_error if feed else "") or self.sender.errors.last,
        }

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        _open.discard(self)
        if self.feed is not None:
            self.feed.close()
        self.reader.close()
        left = self.sender.close(5)
        if left:
            log.error(
                "%d events not stored on Kafka at %s at close (%s)",
                left,
                self.url,
                self.sender.errors.last or "no reason given",
            )

    def __repr__(self) -> str:
        return f"<KafkaBackend {self.url}>"


def _left(deadline: float | None) -> float | None:
    return None if deadline is None else max(0.0, deadline - time.monotonic())


_open: weakref.WeakSet[KafkaBackend] = weakref.WeakSet()


@atexit.register
def _flush_at_exit() -> None:
    """A script that publishes and exits still gets its events stored."""
    for backend in list(_open):
        try:
            backend.sender.flush(10)
        except Exception as exc:
            log.error("events not stored on Kafka at %s at exit: %s", backend.url, exc)
        backend.close()
