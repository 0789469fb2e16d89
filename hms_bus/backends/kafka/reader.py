"""Reading a range of kept events back from Kafka topics.

:meth:`RangeReader.read` reads each partition from its first wanted offset
up to an end (the partition's current end, or a position the caller gives),
keeps the events that match a pattern and a time range, drops records stored
twice (the same key), and merges the partitions by event time, then each
writer's publish order.

**Where to start for a time.** The broker's time index answers first
(``ListOffsets`` by timestamp). Where it answers -1 although the partition
holds newer records (librdkafka's mock cluster always does), the reader
bisects on record timestamps: with f(o) the timestamp of the first record at
or after offset o, it finds the smallest o with f(o) >= t. That assumes
timestamps do not decrease along a partition, which holds for the records of
one bus (its clock never runs backwards); partitions shared by buses whose
clocks disagree should be read on a real broker, whose time index has no
such assumption.

Each consumer here is used by one thread at a time (a lock), since a
librdkafka consumer used from two threads at once can hang.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from confluent_kafka import Consumer, KafkaError, TopicPartition

from ...errors import HmsBusError
from ...event import Event
from ...topics import matches
from .admin import TP, Cluster
from .config import KafkaConfig, shown
from .connect import librdkafka_logger
from .wire import Foreign, Record, decode, timestamp_ms

__all__ = ["RangeReader", "reader_conf"]

READ_TIMEOUT_S = 60.0
"""How long one range read may take before it gives up, in seconds."""

BATCH = 2000
"""Records taken per consume() call."""

SKEW_S = 300.0
"""Slack for clocks that disagree, in seconds: a range read starts this much before
``since`` and stops this much after ``until`` (events outside are then left out)."""


def reader_conf(config: KafkaConfig, purpose: str, **extra: Any) -> dict[str, Any]:
    """Settings of a consumer that reads by assignment only: no group joins, no commits.

    librdkafka wants a ``group.id`` even so; a throw-away one is never used.
    """
    return config.client_conf(
        **{
            "group.id": f"hms-{purpose}-{secrets.token_hex(4)}",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "logger": librdkafka_logger(),
            **extra,
        }
    )


class RangeReader:
    """Reads ranges of records with one consumer of its own (thread-safe)."""

    def __init__(self, config: KafkaConfig, cluster: Cluster, dropped: Callable[[int], None]):
        self.config = config
        self.cluster = cluster
        self._dropped = dropped
        self.foreign: Foreign | None = None
        """Counts records that are not the kit's events (set by the backend)."""
        self._consumer: Consumer | None = None
        self._known: set[str] = set()
        self._lock = threading.Lock()

    def _reader(self, topics: list[str]) -> Consumer:
        if self._consumer is None:
            self._consumer = Consumer(
                reader_conf(
                    self.config,
                    "reader",
                    **{
                        "enable.partition.eof": True,
                        "fetch.wait.max.ms": 10,
                    },
                )
            )
        for name in topics:
            if name not in self._known:
                # The topic's metadata now: fetching starts at once, not at the next 1 s scan.
                self._consumer.list_topics(topic=name, timeout=5)
                self._known.add(name)
        return self._consumer

    def read(
        self,
        topics: list[str],
        pattern: str,
        since: float | None,
        until: float | None,
        limit: int | None,
        upto: Mapping[TP, int] | None = None,
        scope: list[str] | None = None,
    ) -> list[Event]:
        """Events matching ``pattern`` with ``since <= time <= until``.

        Each partition of ``topics`` is read below ``upto[partition]`` (missing
        from ``upto``: not read), or below its current end when ``upto`` is None.
        ``limit`` keeps the first ``limit`` events in the merged order. With
        ``max_retained`` set, only the newest that many events of all the
        Kafka topics in ``scope`` count as kept.
        """
        with self._lock:
            keep = self.config.max_retained
            names = sorted(set(topics) | set(scope or [])) if keep is not None else topics
            ends = self._ends(names, upto)
            consumer = self._reader(sorted({tp[0] for tp in ends}))
            if keep is not None:
                ends = self._newest(consumer, ends, keep)
            wanted = set(topics)
            ranges = {tp: r for tp, r in ends.items() if tp[0] in wanted}
            if since is not None and ranges:
                starts = self._starts(consumer, ranges, timestamp_ms(since - SKEW_S))
                ranges = {tp: (starts[tp], hi) for tp, (_, hi) in ranges.items() if starts[tp] < hi}
            records = self._scan(consumer, ranges, pattern, since, until, limit)
        return self._unique(records)[:limit] if limit is not None else self._unique(records)

    def _ends(self, names: list[str], upto: Mapping[TP, int] | None) -> dict[TP, tuple[int, int]]:
        """The non-empty ``[first, end)`` ranges of every partition of ``names``."""
        ranges: dict[TP, tuple[int, int]] = {}
        for tp, (lo, hi) in self.cluster.ends(self.cluster.partitions(names)).items():
            if upto is not None:
                hi = min(hi, upto.get(tp, lo))
            if lo < hi:
                ranges[tp] = (lo, hi)
        return ranges

    def _unique(self, records: list[Record]) -> list[Event]:
        """The events of ``records`` in the merged order, each key once."""
        records.sort(key=Record.order)
        seen: set[bytes] = set()
        out: list[Event] = []
        for record in records:
            if record.key in seen:
                self._dropped(1)
                continue
            seen.add(record.key)
            out.append(record.event)
        return out

    def _newest(
        self, consumer: Consumer, ranges: dict[TP, tuple[int, int]], keep: int
    ) -> dict[TP, tuple[int, int]]:
        """``ranges`` cut to the newest ``keep`` events across all of them.

        Kafka has no retention by count: the newest ``keep`` of the merged
        order lie among the last ``keep`` records of each partition, which are
        read, merged and counted from the newest.
        """
        tails = {tp: (max(lo, hi - keep), hi) for tp, (lo, hi) in ranges.items()}
        records = self._scan(consumer, tails, ">", None, None, None, offsets=True)
        records.sort(key=lambda item: item[0].order())
        firsts: dict[TP, int] = {}
        seen: set[bytes] = set()
        for record, tp, offset in reversed(records):
            if record.key in seen:
                continue
            if len(seen) == keep:
                break
            seen.add(record.key)
            firsts[tp] = min(offset, firsts.get(tp, offset))
        return {tp: (firsts[tp], hi) for tp, (_, hi) in ranges.items() if tp in firsts}

    # -- where to start ---------------------------------------------------------

    def first_offset_at(self, tp: TP, ms: int) -> int:
        """The first offset of partition ``tp`` whose record timestamp is >= ``ms``.

        The partition's end offset when no record is that new.
        """
        with self._lock:
            lo, hi = self.cluster.ends([tp])[tp]
            if lo >= hi:
                return hi
            return self._starts(self._reader([tp[0]]), {tp: (lo, hi)}, ms)[tp]

    def _starts(self, consumer: Consumer, ranges: dict[TP, tuple[int, int]], ms: int) -> dict:
        """The first offset in each range whose record timestamp is >= ``ms``."""
        answered = self.cluster.offsets_at(list(ranges), ms)
        starts = {}
        for tp, (lo, hi) in ranges.items():
            offset = answered.get(tp, -1)
            starts[tp] = max(lo, offset) if offset >= 0 else self._bisect(consumer, tp, ms, lo, hi)
        return starts

    def _bisect(self, consumer: Consumer, tp: TP, ms: int, lo: int, hi: int) -> int:
        first_offset, first_ms = self._first_at(consumer, tp, lo)
        if first_offset < 0 or first_ms >= ms:
            return lo  # everything kept is new enough: the usual case
        last_offset, last_ms = self._first_at(consumer, tp, hi - 1)
        if last_offset < 0 or last_ms < ms:
            return hi  # nothing is
        a, b = lo, hi - 1
        while a < b:
            mid = (a + b) // 2
            offset, stamp = self._first_at(consumer, tp, mid)
            if offset < 0 or stamp >= ms:
                b = mid
            else:
                a = max(mid, offset) + 1  # every record up to `offset` is older
        return a

    def _first_at(self, consumer: Consumer, tp: TP, offset: int) -> tuple[int, int]:
        """(offset, timestamp ms) of the first record at or after ``offset``; (-1, 0) if none."""
        consumer.assign([TopicPartition(tp[0], tp[1], offset)])
        deadline = time.monotonic() + READ_TIMEOUT_S
        try:
            while time.monotonic() < deadline:
                msg = consumer.poll(0.5)
                if msg is None:
                    continue
                err = msg.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        return -1, 0
                    self._raise_if_fatal(err, tp)
                    continue
                return msg.offset(), msg.timestamp()[1]
        finally:
            consumer.unassign()
        raise HmsBusError(
            f"no record from {tp[0]}[{tp[1]}] at offset {offset} of Kafka at "
            f"{shown(self.config.url)} within {READ_TIMEOUT_S:g} s"
        )

    # -- reading --------------------------------------------------------------------

    def _scan(
        self,
        consumer: Consumer,
        ranges: dict[TP, tuple[int, int]],
        pattern: str,
        since: float | None,
        until: float | None,
        limit: int | None,
        offsets: bool = False,
    ) -> list[Any]:
        """The matching records of ``ranges`` (with their partition and offset if asked)."""
        if not ranges:
            return []
        prefix = self.config.prefix
        until_ms = None if until is None else timestamp_ms(until + SKEW_S)
        everything = pattern == ">"
        hits: dict[str, bool] = {}
        taken: dict[TP, int] = {}
        out: list[Record] = []
        open_ = dict(ranges)
        consumer.assign([TopicPartition(t, p, lo) for (t, p), (lo, _) in ranges.items()])
        deadline = time.monotonic() + READ_TIMEOUT_S
        try:
            while open_:
                if time.monotonic() > deadline:
                    raise HmsBusError(
                        f"reading {len(open_)} partition(s) of Kafka at "
                        f"{shown(self.config.url)} took over {READ_TIMEOUT_S:g} s"
                    )
                for msg in consumer.consume(BATCH, 0.005):
                    tp = (msg.topic(), msg.partition())
                    if tp not in open_:
                        continue
                    err = msg.error()
                    if err is not None:
                        if err.code() == KafkaError._PARTITION_EOF:
                            del open_[tp]
                        else:
                            self._raise_if_fatal(err, tp)
                        continue
                    offset, hi = msg.offset(), open_[tp][1]
                    if offset >= hi:
                        del open_[tp]
                        continue
                    if until_ms is not None and msg.timestamp()[1] > until_ms:
                        del open_[tp]  # timestamps grow along a partition: nothing later fits
                        continue
                    record = decode(msg, prefix, self.foreign)
                    t = record.event.time
                    topic = record.event.topic
                    hit = everything or hits.get(topic)
                    if hit is None:
                        hit = hits[topic] = matches(pattern, topic)
                    if hit and (since is None or t >= since) and (until is None or t <= until):
                        out.append((record, tp, offset) if offsets else record)
                        taken[tp] = taken.get(tp, 0) + 1
                        if limit is not None and taken[tp] >= limit:
                            del open_[tp]  # the first `limit` overall need no more from here
                            continue
                    if offset >= hi - 1:
                        del open_[tp]
        finally:
            consumer.unassign()
        return out

    def _raise_if_fatal(self, err: KafkaError, tp: TP) -> None:
        if err.fatal() or not err.retriable() and err.code() != KafkaError._TRANSPORT:
            raise HmsBusError(
                f"reading {tp[0]}[{tp[1]}] from Kafka at {shown(self.config.url)}: {err.str()}"
            )

    def close(self) -> None:
        with self._lock:
            if self._consumer is not None:
                self._consumer.close()
                self._consumer = None
