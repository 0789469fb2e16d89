"""Topics the Kafka backend creates get retention; topics it finds are never changed.

librdkafka's mock cluster has no working admin API, so these tests put a
stand-in ``AdminClient`` that only knows ``create_topics`` and
``list_topics``: any attempt to alter a configuration would raise
``AttributeError`` and fail the test.
"""

from __future__ import annotations

from concurrent.futures import Future
from types import SimpleNamespace

import pytest

pytest.importorskip("confluent_kafka")

from confluent_kafka import KafkaError, KafkaException  # noqa: E402

from hms_bus import HmsBusError  # noqa: E402
from hms_bus.backends.kafka.admin import Cluster  # noqa: E402
from hms_bus.backends.kafka.config import parse  # noqa: E402


class StandInAdmin:
    """Answers create_topics with a given error (or success) and records the requests."""

    def __init__(self, error: int | None = None) -> None:
        self.error = error
        self.requests: list = []

    def create_topics(self, topics, request_timeout):
        self.requests += topics
        futures = {}
        for topic in topics:
            future: Future = Future()
            if self.error is None:
                future.set_result(None)
            else:
                future.set_exception(KafkaException(KafkaError(self.error, "refused")))
            futures[topic.topic] = future
        return futures


class StandInProducer:
    """Answers the metadata request that counts a topic's partitions."""

    def list_topics(self, topic, timeout):
        partitions = {0: None, 1: None, 2: None}
        found = SimpleNamespace(error=None, partitions=partitions)
        return SimpleNamespace(topics={topic: found})


def cluster(url: str, error: int | None = None, existing=()) -> tuple[Cluster, StandInAdmin]:
    metadata = SimpleNamespace(
        controller_id=1, brokers={1: None}, topics={name: None for name in existing}
    )
    kafka = Cluster(parse(url), StandInProducer(), metadata)
    kafka.admin = StandInAdmin(error)
    return kafka, kafka.admin


def test_a_new_topic_is_created_with_retention_in_the_same_request():
    kafka, admin = cluster("kafka://k:9092?retention=3600&max_bytes=1000000&partitions=3")
    assert kafka.ensure("hms.payments") == 3
    (request,) = admin.requests
    assert (request.topic, request.num_partitions, request.replication_factor) == (
        "hms.payments",
        3,
        -1,  # the broker's default replication factor
    )
    assert request.config == {"retention.ms": "3600000", "retention.bytes": "1000000"}
    assert kafka.created == ["hms.payments"] and kafka.found == []
    kafka.ensure("hms.payments")
    assert len(admin.requests) == 1  # asked once


def test_retention_without_a_limit_asks_kafka_to_keep_everything():
    """retention=inf (allowed on the memory bus and NATS) is retention.ms=-1 on Kafka."""
    kafka, admin = cluster("kafka://k:9092?retention=inf")
    kafka.ensure("hms.payments")
    (request,) = admin.requests
    assert request.config == {"retention.ms": "-1"}


def test_a_topic_that_exists_is_used_and_nothing_is_sent_to_change_it():
    kafka, admin = cluster("kafka://k:9092", error=KafkaError.TOPIC_ALREADY_EXISTS)
    kafka.ensure("hms.payments")
    assert kafka.created == [] and kafka.found == ["hms.payments"]
    known, admin_known = cluster("kafka://k:9092", existing=["hms.payments"])
    known.ensure("hms.payments")
    assert admin_known.requests == [] and known.found == ["hms.payments"]


def test_without_an_admin_api_topics_are_auto_created(caplog):
    kafka, admin = cluster("kafka://k:9092", error=KafkaError._UNSUPPORTED_FEATURE)
    assert kafka.ensure("hms.payments") == 3
    assert kafka.admin_api is False and kafka.found == ["hms.payments"]
    assert "without retention settings" in caplog.text
    kafka.ensure("hms.alerts")
    assert len(admin.requests) == 1  # not asked again


def test_a_refused_creation_names_the_topic_and_the_fix():
    kafka, _ = cluster("kafka://k:9092?replication=3", error=KafkaError.INVALID_REPLICATION_FACTOR)
    with pytest.raises(
        HmsBusError,
        match=r"refused to create topic 'hms.payments' .*"
        r"replication 3\): refused; choose other \?partitions=/replication=",
    ):
        kafka.ensure("hms.payments")


def test_a_cluster_without_a_controller_says_once_that_retention_is_not_set(caplog):
    """The mock cluster names no controller among its brokers: nothing is asked of its
    admin API, and one log line says the topics get the broker's defaults."""
    metadata = SimpleNamespace(controller_id=-1, brokers={1: None}, topics={})
    kafka = Cluster(parse("kafka://k:9092"), StandInProducer(), metadata)
    kafka.admin = StandInAdmin(None)
    with caplog.at_level("INFO", logger="hms_bus.kafka"):
        kafka.ensure("hms.payments")
        kafka.ensure("hms.alerts")
    assert kafka.admin.requests == []
    assert caplog.text.count("without retention settings") == 1
