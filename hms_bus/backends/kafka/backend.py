"""The Kafka backend: the bus's events in Kafka topics, through confluent-kafka.

``hms_bus.use("kafka://k1:9092,k2:9092")`` (or ``HMS_BUS_URL``) puts the
default bus here. The pieces, one module each: :mod:`.config` (the URL),
:mod:`.naming` (bus topic → Kafka topic and partition), :mod:`.wire` (the
record format), :mod:`.producer` (the idempotent producer and an honest
flush), :mod:`.admin` (topics the kit creates, offsets), :mod:`.reader`
(ranges of kept events) and :mod:`.feed` (live records, in order).
"""

from __future__ import annotations

import atexit
import logging
import secrets
import threading
import time
import weakref
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ...event import Event
from ...topics import TopicIndex
from ..base import ALL, NEW, Backend
from .admin import Cluster
from .config import parse, shown
from .feed import Feed
from .naming import TopicMap
from .producer import Sender
from .reader import RangeReader
from .wire import Record

if TYPE_CHECKING:
    from ...bus import Subscription

__all__ = ["KafkaBackend"]

log = logging.getLogger("hms_bus.kafka")


class KafkaBackend(Backend):
    """Stores events in Kafka topics and delivers them from there.

    :param url: ``kafka://host:port[,host:port...][?option=value&...]``; see
        :func:`hms_bus.backends.kafka.config.parse` for the options.
    :param conf: librdkafka settings for every client (``security.protocol``,
        ``sasl.username``, ``sasl.password``...); the place for secrets.
    :param options: the backend's own options, as in the URL query.
    """

    def __init__(self, url: str, *, conf: Mapping[str, Any] | None = None, **options: Any):
        self.config = config = parse(url, conf, **options)
        self.url = shown(config.url)
        self.session = secrets.token_hex(4)
        self.sender = Sender(config, self.session)
        self.cluster = Cluster(config, self.sender.producer, self.sender.metadata)
        self.topics = TopicMap(config.prefix, config.single, config.partitions)
        self.reader = RangeReader(config, self.cluster, self._count_duplicates)
        self.feed: Feed | None = None
        self._routes: dict[str, tuple[str, int]] = {}
        self._index: TopicIndex[Subscription] = TopicIndex()
        self._skip_own: dict[Subscription, tuple[int, float]] = {}
        self._history_pending = 0
        self._duplicates_read = 0
        self._closed = False
        _open.add(self)

    # -- publishing ------------------------------------------------------------

    def publish(self, event: Event) -> None:
        route = self._routes.get(event.topic) or self._route(event.topic)
        self.sender.send(event, route[0], route[1])
        return None

    def _route(self, topic: str) -> tuple[str, int]:
        name = self.topics.name(topic)
        count = self.cluster.ensure(name)
        if self.feed is not None:
            self.feed.look_for_topics()
        route = self._routes[topic] = (name, self.topics.partition(topic, count))
        return route

    def resend_failed(self) -> int:
        """Send again the events a flush reported as not stored; returns how many."""
        return self.sender.resend_failed()

    # -- subscribing -------------------------------------------------------------

    def subscribe(self, sub: Subscription, start: str | float) -> None:
        if self.feed is None:
            self._start_feed()
        cutoff = None
        if start != ALL:
            # Events published here before subscribing may still be on their way to
            # Kafka; they arrive live and must obey the start point too.
            cutoff = (self.bus.published, float("inf") if start == NEW else float(start))
        self._history_pending += 1
        feed = self.feed
        assert feed is not None
        feed.submit(lambda: self._catch_up(sub, start, cutoff))

    def _start_feed(self) -> None:
        """Start following the topics at their ends (called under the bus lock)."""
        self.sender.producer.flush(self.config.message_timeout)
        own = {(self.bus.id, self.session): self.bus.published + 1}
        self.feed = Feed(self.config, self.cluster, self.topics, self._dispatch, own)

    def _catch_up(self, sub: Subscription, start: str | float, cutoff: Any) -> None:
        """On the feed's thread: kept events for ``sub`` up to the feed's position, then live."""
        feed = self.feed
        assert feed is not None
        try:
            self.sender.producer.flush(self.config.message_timeout)  # own gaps can close
            feed.settle(self.config.reorder_hold)
            if start != NEW:
                feed.sync()
                upto = dict(feed.positions)
                since = None if start == ALL else float(start)
                floor = self.bus.clock.now() - self.config.retention
                names = self.topics.candidates(sub.pattern, {tp[0] for tp in upto})
                failed = self.bus.subscriber_failed
                for ev in self.reader.read(names, sub.pattern, since, None, None, upto, floor):
                    if sub.active:
                        _call(sub, ev, failed)
        except Exception as exc:  # nothing is lost: the events stay in Kafka
            feed.last_error = f"kept events for {sub.name}: {exc!r}"
            log.error("could not read kept events for %s from %s: %r", sub.name, self.url, exc)
        finally:
            if cutoff is not None:
                self._skip_own[sub] = cutoff
            with self.bus.lock:
                if sub.active:
                    sub._key = self._index.add(sub.pattern, sub)
                self._history_pending -= 1

    def _dispatch(self, record: Record) -> None:
        """On the feed's thread: call the subscribers of one live event."""
        ev = record.event
        with self.bus.lock:
            subs = self._index.lookup(ev.topic)
        own = self.bus.id
        failed = self.bus.subscriber_failed
        for sub in subs:
            if not sub.active:
                continue
            skip = self._skip_own.get(sub)
            if skip and ev.bus_id == own and ev.seq <= skip[0] and ev.time < skip[1]:
                continue  # published here before the subscription's start
            _call(sub, ev, failed)

    def unsubscribe(self, sub: Subscription) -> None:
        if sub._key:
            self._index.remove(sub.pattern, sub._key)
        self._skip_own.pop(sub, None)

    # -- reading back --------------------------------------------------------------

    def replay(
        self,
        pattern: str,
        since: float | None,
        until: float | None,
        limit: int | None,
        now: float,
    ) -> list[Event]:
        if limit == 0:
            return []
        self.sender.producer.flush(self.config.message_timeout)  # read your own writes
        names = self.topics.candidates(pattern, self.cluster.topic_names())
        floor = now - self.config.retention
        return self.reader.read(names, pattern, since, until, limit, None, floor)

    def _count_duplicates(self, n: int) -> None:
        self._duplicates_read += n

    # -- housekeeping --------------------------------------------------------------

    def flush(self, timeout: float | None = None) -> None:
        """Wait until every event is stored and, unless called from a callback, delivered.

        Raises :class:`~hms_bus.HmsBusError` naming events librdkafka could not
        store and its reason; ``TimeoutError`` if ``timeout`` passes first.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        feed = self.feed
        while True:
            published = self.bus.published
            self.sender.flush(None if deadline is None else max(0.0, deadline - time.monotonic()))
            if feed is None or threading.current_thread() is feed.thread:
                return
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            ends = feed.call(feed.sync, 30 if left is None else left)
            while self._history_pending or not feed.caught_up(ends):
                if deadline is not None and time.monotonic() > deadline:
                    raise TimeoutError(
                        f"flush() timed out after {timeout} s: events stored on Kafka at "
                        f"{self.url} but not yet delivered to subscribers"
                    )
                time.sleep(0.002)
            if published == self.bus.published:
                return

    def status(self) -> dict:
        feed = self.feed
        return {
            "url": self.url,
            "state": "all brokers unreachable" if self.sender.errors.all_down else "connected",
            "in_flight": self.sender.in_flight(),
            "failed": len(self.sender.failed) + len(self.sender.lost),
            "duplicates_dropped": self._duplicates_read + (feed.duplicates if feed else 0),
            "gaps_skipped": feed.skipped_gaps if feed else 0,
            "created_topics": sorted(self.cluster.created),
            "found_topics": sorted(self.cluster.found),
            "admin_api": self.cluster.admin_api,
            "subscriptions": len(self._index),
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


def _call(sub: Subscription, ev: Event, failed: Any) -> None:
    try:
        sub.fn(ev)
    except Exception as exc:
        failed(sub, ev, exc)


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
