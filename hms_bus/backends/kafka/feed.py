"""The live feed: every record on the bus's Kafka topics, as it arrives, in order.

One consumer, used only by the feed's own worker thread, follows all
matching Kafka topics by **assignment** (no consumer group): the list of
partitions is kept current by looking for new topics every ``refresh``
seconds, and at once when this bus starts a new topic family. A partition
found after the feed started is read from its first record (all of it is
new); at the start the feed begins at the partitions' ends. This is quicker
and more predictable than a regex subscription, which only notices a new
topic after a metadata refresh and a group rebalance (minutes by default).

**Order.** Kafka orders records only within a partition, and a bus's topic
families live in different Kafka topics. The feed therefore puts each
writer's records back into its publish order: a record whose predecessor
(by the writer's sequence number) has not arrived yet is held until it does,
or for at most ``reorder_hold`` seconds; then the gap is skipped. Records of
different writers (other processes) keep the order in which they arrive.

**Re-sends.** A record stored twice (the same key) is handed on once.
"""

from __future__ import annotations

import heapq
import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from ...errors import HmsBusError
from .admin import TP, Cluster
from .config import KafkaConfig, shown
from .naming import TopicMap
from .reader import reader_conf
from .wire import Record, decode

__all__ = ["Feed"]

log = logging.getLogger("hms_bus.kafka")

RECENT_KEYS = 100_000
"""How many record keys the feed remembers to drop re-sends."""

Sink = Callable[[Record], None]


class Feed:
    """Follows the bus's Kafka topics and hands each record to ``sink`` on its worker thread.

    :param sink: called with each :class:`~.wire.Record`, one at a time, in order.
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
    ) -> None:
        self.config = config
        self.cluster = cluster
        self.topic_map = topic_map
        self.sink = sink
        self.positions: dict[TP, int] = {}
        """The next offset to hand on, per partition (written by the worker only)."""
        self.duplicates = 0
        self.skipped_gaps = 0
        self.last_error = ""
        self._expect = dict(expect)
        self._held: dict[tuple[str, str], list] = {}
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

    # -- called from other threads ---------------------------------------------------

    def submit(self, fn: Callable[[], Any]) -> None:
        """Run ``fn()`` on the worker thread between two records, without waiting."""
        self._jobs.put(fn)

    def call(self, fn: Callable[[], Any], timeout: float | None = None) -> Any:
        """Run ``fn()`` on the worker thread between two records; return its result."""
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

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._jobs.put(None)
        if threading.current_thread() is not self.thread:
            self.thread.join(10)

    # -- on the worker thread -----------------------------------------------------------

    def release_all(self) -> None:
        """Hand on every held record now (before a position is read for a new subscription)."""
        for stream in list(self._held):
            self._release(stream, force=True)

    def sync(self) -> dict[TP, int]:
        """Follow new topics, then return the ends the feed must reach to be current."""
        self._follow_new(at_end=False)
        return self.cluster.ends(list(self.positions)) if self.positions else {}

    def caught_up(self, ends: dict[TP, tuple[int, int]]) -> bool:
        """Whether everything below ``ends`` has been handed on and nothing is held."""
        return not self._held and all(
            self.positions.get(tp, 0) >= max(lo, hi) for tp, (lo, hi) in ends.items()
        )

    def _follow_new(self, at_end: bool) -> None:
        """Assign partitions of matching topics that appeared since the last look."""
        names = [n for n in self.cluster.topic_names() if self.topic_map.owns(n)]
        fresh = [tp for tp in self.cluster.partitions(names) if tp not in self.positions]
        if not fresh:
            return
        ends = self.cluster.ends(fresh)
        assignment = []
        for tp in fresh:
            lo, hi = ends[tp]
            offset = hi if at_end else lo
            self.positions[tp] = offset
            assignment.append(TopicPartition(tp[0], tp[1], offset))
        for name in {tp[0] for tp in fresh}:
            # Metadata for the new topic now: fetching starts at once, not at the next scan.
            self._consumer.list_topics(topic=name, timeout=5)
        self._consumer.incremental_assign(assignment)

    def _work(self) -> None:
        try:
            self._loop()
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
            if not self._pump(0.02):
                return
            if self._held:
                self._release_overdue()

    def _pump(self, wait: float, jobs_too: bool = True) -> bool:
        """Take one batch of records (waiting at most ``wait`` s); False once asked to stop.

        Jobs queued meanwhile run before the next record (``jobs_too``), so a
        subscription made while a batch is handed on still sees the rest of it.
        """
        try:
            batch = self._consumer.consume(500, wait)
        except KafkaException as exc:
            self.last_error = str(exc)
            return True
        jobs = self._jobs
        for msg in batch:
            if jobs_too and not jobs.empty() and not self._run_jobs():
                return False
            err = msg.error()
            if err is not None:
                if err.code() != KafkaError._PARTITION_EOF:
                    self.last_error = err.str()
                continue
            record = decode(msg, self.config.prefix)
            self._offer(record, (msg.topic(), msg.partition()), msg.offset())
        return True

    def settle(self, timeout: float) -> None:
        """Take records until no writer's record is held for a gap (or ``timeout`` s pass).

        Called on the worker thread after this bus's records are all stored, so its
        own gaps close; whatever is still held after ``timeout`` is handed on.
        """
        deadline = time.monotonic() + timeout
        while self._held and time.monotonic() < deadline:
            self._pump(0.01, jobs_too=False)
        self.release_all()

    def _run_jobs(self) -> bool:
        """Run queued jobs; False once asked to stop."""
        jobs = self._jobs
        while not jobs.empty():
            job = jobs.get()
            if job is None:
                return False
            job()
        return True

    def _offer(self, record: Record, tp: TP, offset: int) -> None:
        """Hand ``record`` on, or hold it until its writer's earlier records have come."""
        stream = record.stream
        expect = self._expect.get(stream) if stream is not None else None
        seq = record.event.seq
        if expect is None or seq <= expect:
            self._hand_on(record, tp, offset)
            if stream is not None:
                if expect is None or seq == expect:
                    self._expect[stream] = seq + 1
                self._release(stream)
        else:
            heap = self._held.setdefault(stream, [])  # type: ignore[arg-type]
            heapq.heappush(heap, (seq, time.monotonic(), offset, tp, record))

    def _release(self, stream: tuple[str, str], force: bool = False) -> None:
        heap = self._held.get(stream)
        while heap and (force or heap[0][0] <= self._expect[stream]):
            seq, _, offset, tp, record = heapq.heappop(heap)
            self._hand_on(record, tp, offset)
            self._expect[stream] = max(self._expect[stream], seq + 1)
        if not heap:
            self._held.pop(stream, None)

    def _release_overdue(self) -> None:
        """A gap that lasts (a record never stored): stop waiting for it."""
        now = time.monotonic()
        for stream, heap in list(self._held.items()):
            if now - heap[0][1] > self.config.reorder_hold:
                self.skipped_gaps += 1
                self._expect[stream] = heap[0][0]
                self._release(stream)

    def _hand_on(self, record: Record, tp: TP, offset: int) -> None:
        recent = self._recent
        if record.key in recent:
            self.duplicates += 1
        else:
            recent[record.key] = None
            if len(recent) > RECENT_KEYS:
                for old in list(recent)[: RECENT_KEYS // 2]:
                    del recent[old]
            try:
                self.sink(record)
            except Exception as exc:  # a bug in the sink must not stop the feed
                self.last_error = f"handing on {record.event.id}: {exc!r}"
                log.exception("the Kafka feed could not hand on %s", record.event.id)
        if self.positions.get(tp, 0) <= offset:
            self.positions[tp] = offset + 1
