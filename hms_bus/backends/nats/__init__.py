"""The NATS JetStream backend (needs the ``nats`` extra); see :mod:`.backend`."""

from __future__ import annotations

from .backend import NatsBackend

__all__ = ["NatsBackend"]
