"""The Kafka backend; needs the ``kafka`` extra (``pip install -e '.[kafka]'`` in a clone).

``hms_bus.use("kafka://127.0.0.1:9092")`` or ``HMS_BUS_URL=kafka://...``
puts the default bus on Kafka; :class:`KafkaBackend` does it for one
:class:`~hms_bus.Bus`. :class:`~hms_bus.backends.kafka.mock.MockKafkaCluster`
runs librdkafka's mock cluster, for trying it without a broker.

confluent-kafka loads with the first use of :class:`KafkaBackend`, so the
URL checks in :mod:`.config` work without it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .backend import KafkaBackend

__all__ = ["KafkaBackend"]


def __getattr__(name: str) -> object:
    if name == "KafkaBackend":
        from .backend import KafkaBackend

        return KafkaBackend
    raise AttributeError(f"module 'hms_bus.backends.kafka' has no attribute {name!r}")
