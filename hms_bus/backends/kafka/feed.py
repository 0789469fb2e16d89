"""The live feed: every record on the bus's Kafka topics, as it arrives, in order.

One consumer, used only by the feed's own thread, follows all matching Kafka
topics by **assignment** (no consumer group). The list of partitions is kept
current by looking for new topics every ``refresh`` seconds, and at once when
this bus starts a new topic family. A partition found after the feed started
is read from its first record (all of it is new); at the start the feed
begins at the partitions' ends. This is quicker and more predictable than a
regex subscription, which notices a new topic only after a metadata refresh
and a consumer-group rebalance (minutes, with the defaults).

**Order.** Kafka orders records only within a partition, and a bus's topic
families live in different Kafka topics. The feed puts each writer's records
back into its publish order: a partition whose next record comes too early
for its writer (its sequence number is ahead of the one expected) waits until
the missing record has been handed on from another partition, or for at most
``reorder_hold`` seconds; then the gap is skipped. Records of writers first
seen by this feed (other processes) keep the order in which they arrive.
Since every partition is handed on in offset order, what has been handed on
is always a prefix of each partition, and a :class:`Position` is exact.

**Re-sends.** A record stored twice (the same key) is handed on once. A
record of this bus's own that was published before the feed began (its
sequence number is below the one expected at the start) is a re-send too: the
original was stored before the feed's starting offsets, so its key was never
seen, and without this rule the copy would reach subscribers as a new event.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from ...errors import HmsBusError
from ...redact import kit_logger
from .admin import TP, Cluster
from .config import KafkaConfig, shown
from .naming import TopicMap
from .reader import reader_conf
from .wire import Foreign, Record, decode

__all__ = ["Feed", "Position"]

log = kit_logger("hms_bus.kafka")

RECENT_KEYS = 100_000
"""How many record keys the feed remembers to drop re-sends."""

SNAPSHOT_EVERY = 1024
"""Positions share a snapshot of the offsets and a log of changes since; a new
snapshot is taken after this many changes."""

Sink = Callable[[Record, "Position"], None]


class Position:
    """Where the feed stood after handing on a record.

    For each partition followed then, the offset below which every record has
    been handed on. Cheap to make (one per record): it refers to a shared
    snapshot and a shared log of later changes, up to its own length.
    """

    __slots__ = ("_base", "_log", "_length")

    def __init__(self, base: dict[TP, int], changes: list[tuple[TP, int]], length: int) -> None:
        self._base = base
        self._log = changes
        self._length = length

    def offsets(self) -> dict[TP, int]:
        """``{(topic, partition): offset}``: every record below it was handed on."""
        vector = dict(self._base)
        changes = self._log
        for i in range(self._length):
            tp, offset = changes[i]
            vector[tp] = offset
        return vector

    def __repr__(self) -> str:
        return f"<Position {self.offsets()}>"


class Feed:
    """Follows the bus's Kafka topics and hands each record to ``sink`` on its own thread.

    :param sink: called with each :class:`~.wire.Record` and the
        :class:`Position` after it, one at a time, in order.
    :param expect: the next publish sequence of writers whose order is known
        from the start (``{(bus id, session): seq}``): this bus's own.
    """

    def __init__(
        self,
        config: KafkaConfig,
        cluster: Cluster,
        topic_map: TopicMap,
        sink: Sink,
        expect: dict[tuple[str, str], int],
        foreign: Foreign | None = None,
    ) -> None:
        self.config = config
        self.cluster = cluster
        self.topic_map = topic_map
        self.sink = sink
        self.foreign = foreign
        self.duplicates = 0
        self.skipped_gaps = 0
        self.last_error = ""
        self._taken = 0
        self._expect = dict(expect)
        self._floor = dict(expect)  # below it: published before the feed began
        self._offsets: dict[TP, int] = {}  # next offset to hand on, per partition
        self._base: dict[TP, int] = {}
        self._log: list[tuple[TP, int]] = []
        self._waiting: dict[TP, deque[tuple[Record, int, float]]] = {}
        self._recent: dict[bytes, None] = {}
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._refresh_now = threading.Event()
        self._closed = False
        self._consumer = Consumer(
            reader_conf(config, "feed", **{"fetch.wait.max.ms": config.fetch_wait_ms})
        )
        try:
            self._follow_new(at_end=True)
        except BaseException:
            self._consumer.close()
            raise
        self.thread = threading.Thread(target=self._work, name="hms-bus-kafka-feed", daemon=True)
        self.thread.start()

    # -- from any thread ------------------------------------------------------------

    def position(self) -> Position:
        """The position now (exact when called on the feed's thread)."""
        return Position(self._base, self._log, len(self._log))

    def call(self, fn: Callable[[], Any], timeout: float | None = None) -> Any:
        """Run ``fn()`` on the feed's thread between two records; return its result."""
        if threading.current_thread() is self.thread:
            return fn()
        done = threading.Event()
        box: list = []

        def job() -> None:
            try:
                box.append((True, fn()))
            except BaseException as exc:
                box.append((False, exc))
            finally:
                done.set()

        self._jobs.put(job)
        if not done.wait(timeout) or not box:
            raise TimeoutError(
                f"the Kafka feed of {shown(self.config.url)} did not answer within {timeout} s"
            )
        ok, value = box[0]
        if not ok:
            raise value
        return value

    def look_for_topics(self) -> None:
        """Look for new Kafka topics now, not at the next ``refresh``."""
        self._refresh_now.set()

    def progress(self) -> int:
        """A number that grows with every record the feed takes (for stall checks)."""
        return self._taken

    def caught_up(self, ends: dict[TP, tuple[int, int]]) -> bool:
        """Whether every record below ``ends`` has been handed on."""
        offsets = self._offsets
        return all(offsets.get(tp, 0) >= max(lo, hi) for tp, (lo, hi) in ends.items())

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._jobs.put(None)
        if threading.current_thread() is not self.thread:
            self.thread.join(10)

    # -- on the feed's thread ----------------------------------------------------------

    def sync(self) -> dict[TP, tuple[int, int]]:
        """Follow new topics, then return the ends the feed must reach to be current."""
        self._follow_new(at_end=False)
        return self.cluster.ends(list(self._offsets)) if self._offsets else {}

    def _follow_new(self, at_end: bool) -> None:
        """Assign partitions of matching topics that appeared since the last look."""
        names = [n for n in self.cluster.topic_names() if self.topic_map.owns(n)]
        fresh = [tp for tp in self.cluster.partitions(names) if tp not in self._offsets]
        if not fresh:
            return
        ends = self.cluster.ends(fresh)
        assignment = []
        for tp in fresh:
            lo, hi = ends[tp]
            offset = hi if at_end else lo
            self._advance(tp, offset)
            assignment.append(TopicPartition(tp[0], tp[1], offset))
        for name in {tp[0] for tp in fresh}:
            # The topic's metadata now: fetching starts at once, not at the next 1 s scan.
            self._consumer.list_topics(topic=name, timeout=5)
        self._consumer.incremental_assign(assignment)

    def _advance(self, tp: TP, offset: int) -> None:
        self._offsets[tp] = offset
        if len(self._log) >= SNAPSHOT_EVERY:
            self._base = dict(self._offsets)
            self._log = []
        else:
            self._log.append((tp, offset))

    def _work(self) -> None:
        try:
            self._loop()
        except Exception as exc:  # never silently: the bus would stop delivering
            self.last_error = f"the feed stopped: {exc!r}"
            log.exception("the Kafka feed of %s stopped", shown(self.config.url))
        finally:
            self._consumer.close()

    def _loop(self) -> None:
        last_look = time.monotonic()
        while self._run_jobs():
            now = time.monotonic()
            if self._refresh_now.is_set() or now - last_look > self.config.refresh:
                self._refresh_now.clear()
                last_look = now
                try:
                    self._follow_new(at_end=False)
                except (KafkaException, HmsBusError) as exc:
                    self.last_error = f"looking for new topics: {exc}"
            self._take(0.02)
            if self._waiting:
                self._hand_on_ready()

    def _run_jobs(self) -> bool:
        """Run queued jobs; False once asked to stop."""
        jobs = self._jobs
        while not jobs.empty():
            job = jobs.get()
            if job is None:
                return False
            job()
        return True

    def _take(self, wait: float) -> None:
        """Take one batch of records (waiting at most ``wait`` s) and hand on what is ready."""
        try:
            batch = self._consumer.consume(500, wait)
        except KafkaException as exc:
            self.last_error = str(exc)
            return
        if not batch:
            return
        now = time.monotonic()
        waiting = self._waiting
        prefix = self.config.prefix
        foreign = self.foreign
        self._taken += len(batch)
        for msg in batch:
            err = msg.error()
            if err is not None:
                if err.code() != KafkaError._PARTITION_EOF:
                    self.last_error = err.str()
                continue
            tp = (msg.topic(), msg.partition())
            line = waiting.get(tp)
            if line is None:
                line = waiting[tp] = deque()
            line.append((decode(msg, prefix, foreign), msg.offset(), now))
        self._hand_on_ready()

    def _hand_on_ready(self) -> None:
        """Hand on every waiting record whose writer's earlier records have come."""
        expect = self._expect
        waiting = self._waiting
        hold = self.config.reorder_hold
        now = time.monotonic()
        progress = True
        while progress:
            progress = False
            for tp in list(waiting):
                line = waiting[tp]
                while line:
                    record, offset, arrived = line[0]
                    stream = record.stream
                    if stream is not None:
                        seq = record.event.seq
                        if seq < self._floor.get(stream, 0):
                            line.popleft()
                            self._drop(tp, offset)
                            progress = True
                            continue
                        due = expect.get(stream)
                        if due is not None and seq > due:
                            if now - arrived <= hold:
                                break  # an earlier record of this writer is still to come
                            self.skipped_gaps += 1
                        if due is None or seq >= due:
                            expect[stream] = seq + 1
                    line.popleft()
                    self._hand_on(record, tp, offset)
                    progress = True
                if not line:
                    del waiting[tp]

    def _drop(self, tp: TP, offset: int) -> None:
        """Pass over a re-sent record (its place in the partition still counts)."""
        if self._offsets.get(tp, 0) <= offset:
            self._advance(tp, offset + 1)
            self.duplicates += 1

    def _hand_on(self, record: Record, tp: TP, offset: int) -> None:
        if self._offsets.get(tp, 0) > offset:
            return  # already handed on (a partition assigned twice)
        self._advance(tp, offset + 1)
        recent = self._recent
        if record.key in recent:
            self.duplicates += 1
            return
        recent[record.key] = None
        if len(recent) > RECENT_KEYS:
            for old in list(recent)[: RECENT_KEYS // 2]:
                del recent[old]
        try:
            self.sink(record, self.position())
        except Exception as exc:  # a bug in the sink must not stop the feed
            self.last_error = f"handing on {record.event.id}: {exc!r}"
            log.exception("the Kafka feed could not hand on %s", record.event.id)
