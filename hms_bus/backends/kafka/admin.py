"""Topics and offsets: what the backend asks the cluster, and the one thing it changes.

**Topics the kit creates.** The first time a bus topic family is used, the
backend asks the cluster to create its Kafka topic, with ``retention.ms``
(and ``retention.bytes`` when ``max_bytes`` is set) in that same request.
If the topic exists already it is used exactly as it is: the backend never
alters the configuration of a topic, its own or anyone else's. Where the
cluster has no working admin API (librdkafka's mock cluster), the topic is
auto-created by the first record with the broker's defaults, and the log
says once that retention could not be set: at INFO for a cluster that names no
controller (the mock: expected), as a warning when a real admin API refuses.
``status()`` shows ``admin_api`` and ``created_topics`` either way.

**Offsets.** Low and high watermarks and time lookups come from one
thread-safe ``AdminClient`` in batched ``ListOffsets`` requests, never from a
consumer that another thread is polling (that call would wait for the poll).
"""

from __future__ import annotations

import math
import threading
import time
from typing import Any

from confluent_kafka import KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic, OffsetSpec

from ...errors import HmsBusError
from ...redact import kit_logger
from .config import KafkaConfig, shown
from .connect import librdkafka_logger

__all__ = ["Cluster", "TP"]

log = kit_logger("hms_bus.kafka")

TP = tuple[str, int]
"""A partition: (Kafka topic, partition number)."""

REQUEST_TIMEOUT_S = 10.0
"""How long one admin request may take, in seconds."""


class Cluster:
    """The backend's view of the cluster: its topics, which of them it made, offsets."""

    def __init__(self, config: KafkaConfig, producer: Any, metadata: Any) -> None:
        self.config = config
        self.url = config.url
        self._producer = producer
        self.admin = AdminClient(config.client_conf(logger=librdkafka_logger()))
        # librdkafka's mock cluster names a controller that is not one of its brokers:
        # admin requests would wait for it until they time out.
        self.admin_api = metadata.controller_id in metadata.brokers
        self.existing = {name for name in metadata.topics}
        self.created: list[str] = []
        """Kafka topics this backend created (with its retention settings)."""
        self.found: list[str] = []
        """Kafka topics this backend uses but found already there (never altered)."""
        self._partitions: dict[str, int] = {}
        self._said_no_admin = False
        self._lock = threading.Lock()

    # -- topics ---------------------------------------------------------------

    def ensure(self, name: str) -> int:
        """Make Kafka topic ``name`` ready to write; return how many partitions it has."""
        count = self._partitions.get(name)
        if count is not None:
            return count
        with self._lock:
            if name not in self._partitions:
                if name in self.existing:
                    self.found.append(name)
                elif self.admin_api and self._create(name):
                    self.created.append(name)
                else:
                    if not self.admin_api and not self._said_no_admin:
                        self._said_no_admin = True
                        log.info(  # expected on the mock cluster; status() shows it too
                            "Kafka at %s has no controller among its brokers (librdkafka's "
                            "mock cluster), so %s and later topics are auto-created with the "
                            "broker's defaults, without retention settings",
                            shown(self.url),
                            name,
                        )
                    self.found.append(name)
                self._partitions[name] = self._count_partitions(name)
            return self._partitions[name]

    def _create(self, name: str) -> bool:
        """Ask for ``name`` with our retention; False if it exists or cannot be made here."""
        cfg = self.config
        ms = -1 if cfg.retention == math.inf else int(cfg.retention * 1000)  # -1: no limit
        settings = {"retention.ms": str(ms)}
        if cfg.max_bytes is not None:
            settings["retention.bytes"] = str(cfg.max_bytes)
        topic = NewTopic(
            name,
            num_partitions=cfg.partitions,
            replication_factor=cfg.replication if cfg.replication is not None else -1,
            config=settings,
        )
        future = self.admin.create_topics([topic], request_timeout=REQUEST_TIMEOUT_S)[name]
        try:
            future.result()
            return True
        except KafkaException as exc:
            err = exc.args[0]
            if err.code() == KafkaError.TOPIC_ALREADY_EXISTS:
                return False
            if err.code() in (KafkaError._UNSUPPORTED_FEATURE, KafkaError._TIMED_OUT):
                self.admin_api = False
                log.warning(
                    "Kafka at %s cannot create topics through its admin API (%s); %s is "
                    "auto-created with the broker's defaults, without retention settings",
                    shown(self.url),
                    err.str(),
                    name,
                )
                return False
            replication = cfg.replication if cfg.replication is not None else "default"
            raise HmsBusError(
                f"Kafka at {shown(self.url)} refused to create topic {name!r} "
                f"({cfg.partitions} partition(s), replication {replication}): {err.str()}; "
                f"choose other ?partitions=/replication= values, or create the topic yourself"
            ) from None

    def _count_partitions(self, name: str) -> int:
        """The partitions of ``name``, waiting briefly for a new topic's metadata.

        The producer's metadata request also auto-creates the topic where the
        broker allows it (the mock cluster; brokers with auto.create.topics.enable).
        """
        deadline = time.monotonic() + self.config.connect_timeout + 2
        why = ""
        while time.monotonic() < deadline:
            try:
                topic = self._producer.list_topics(topic=name, timeout=1.0).topics.get(name)
            except KafkaException as exc:
                why = exc.args[0].str()
            else:
                if topic is not None and topic.error is None and topic.partitions:
                    return len(topic.partitions)
                why = topic.error.str() if topic is not None and topic.error else "no partitions"
            time.sleep(0.05)
        raise HmsBusError(
            f"Kafka at {shown(self.url)} has no usable topic {name!r} ({why}); create it, or "
            f"allow the backend to (admin rights, or auto.create.topics.enable=true)"
        )

    def _metadata(self) -> Any:
        """The cluster's metadata, or an :class:`HmsBusError` naming the URL and what to do."""
        try:
            return self.admin.list_topics(timeout=REQUEST_TIMEOUT_S)
        except KafkaException as exc:
            err = exc.args[0] if exc.args else None
            reason = err.str() if hasattr(err, "str") else str(exc)
            raise HmsBusError(
                f"Kafka at {shown(self.url)} gave no topic list within {REQUEST_TIMEOUT_S:g} s "
                f"({reason}); check that the brokers are up and reachable, then try again"
            ) from None

    def partitions(self, names: list[str]) -> list[TP]:
        """Every partition of the topics ``names`` that exist, from fresh metadata."""
        metadata = self._metadata()
        return [
            (name, p)
            for name in names
            if (t := metadata.topics.get(name)) is not None and t.error is None
            for p in sorted(t.partitions)
        ]

    def topic_names(self) -> set[str]:
        """The names of every topic in the cluster (no side effect: nothing is created)."""
        return set(self._metadata().topics)

    # -- offsets --------------------------------------------------------------

    def _offsets(self, tps: list[TP], spec: Any) -> dict[TP, int]:
        if not tps:
            return {}
        futures = self.admin.list_offsets(
            {TopicPartition(t, p): spec for t, p in tps}, request_timeout=REQUEST_TIMEOUT_S
        )
        try:
            return {(tp.topic, tp.partition): f.result().offset for tp, f in futures.items()}
        except KafkaException as exc:
            raise HmsBusError(
                f"Kafka at {shown(self.url)} gave no offsets for {len(tps)} partition(s): "
                f"{exc.args[0].str()}"
            ) from None

    def ends(self, tps: list[TP]) -> dict[TP, tuple[int, int]]:
        """``(first kept offset, next offset to be written)`` of each partition."""
        low = self._offsets(tps, OffsetSpec.earliest())
        high = self._offsets(tps, OffsetSpec.latest())
        return {tp: (low[tp], high[tp]) for tp in tps}

    def offsets_at(self, tps: list[TP], ms: int) -> dict[TP, int]:
        """The broker's first offset with a timestamp >= ``ms`` per partition (-1: none, or
        not known, as the mock cluster always answers)."""
        return self._offsets(tps, OffsetSpec.for_timestamp(ms))

    def close(self) -> None:
        """Nothing to release: the AdminClient goes with its last reference."""
