"""Which Kafka topic and partition hold a bus topic.

Bus topic ``payments.sent`` lives in Kafka topic ``<prefix>.<first token>``
(``hms.payments``), so one Kafka topic holds a whole family. The token is
written in Kafka's alphabet: letters, digits and ``-`` stay, every other
character (``_`` and ``.`` too) becomes ``_xx`` per UTF-8 byte, so different
tokens always get different names (``zahlungen_ü`` → ``hms.zahlungen_5f_c3_bc``).
A name longer than Kafka's 249 characters keeps 240 and ends in ``-`` and
eight hex digits of the token's SHA-1. The bus topic itself travels in each
record, so this mapping never has to be reversed.

With ``single=<name>`` every bus topic goes to that one Kafka topic.

Within a Kafka topic, each bus topic always goes to the same partition:
``crc32(bus topic) % min(partitions asked for, partitions the topic has)``.
So a topic someone else made with more partitions still keeps each bus topic
in order, and with ``partitions=1`` (the default) a whole family, or with
``single`` everything, shares one partition and one order.
"""

from __future__ import annotations

import hashlib
import re
import zlib
from collections.abc import Iterable

__all__ = ["MAX_NAME", "kafka_topic", "bus_topic", "TopicMap"]

MAX_NAME = 249
"""The longest topic name Kafka accepts."""

_PLAIN = re.compile(r"[A-Za-z0-9-]")
_ESCAPED = re.compile(r"(?:_[0-9a-f]{2})+")


def kafka_topic(prefix: str, token: str) -> str:
    """The Kafka topic for the bus topics whose first token is ``token``."""
    name = (
        prefix
        + "."
        + "".join(
            ch if _PLAIN.match(ch) else "".join(f"_{b:02x}" for b in ch.encode()) for ch in token
        )
    )
    if len(name) > MAX_NAME:
        digest = hashlib.sha1(token.encode()).hexdigest()[:8]
        name = f"{name[: MAX_NAME - 9]}-{digest}"
    return name


def bus_topic(prefix: str, name: str) -> str:
    """The bus topic a record from another producer on Kafka topic ``name`` gets.

    ``hms.payments`` → ``payments``; escapes are undone where they form UTF-8.
    A name outside the prefix stays as it is.
    """
    head = prefix + "."
    if not name.startswith(head) or len(name) == len(head):
        return name

    def undo(m: re.Match[str]) -> str:
        raw = bytes(int(m.group(0)[i + 1 : i + 3], 16) for i in range(0, len(m.group(0)), 3))
        try:
            text = raw.decode()
        except UnicodeDecodeError:
            return m.group(0)
        return (
            text
            if text.isprintable() and not any(ch.isspace() or ch == "." for ch in text)
            else m.group(0)
        )

    return _ESCAPED.sub(undo, name[len(head) :])


class TopicMap:
    """Routes bus topics to ``(kafka topic, partition)``, remembering each answer."""

    def __init__(self, prefix: str, single: str | None, partitions: int) -> None:
        self.prefix = prefix
        self.single = single
        self.partitions = partitions
        self._names: dict[str, str] = {}

    def name(self, topic: str) -> str:
        """The Kafka topic that holds bus topic ``topic``."""
        token = topic.partition(".")[0]
        name = self._names.get(token)
        if name is None:
            name = self._names[token] = self.single or kafka_topic(self.prefix, token)
        return name

    def partition(self, topic: str, available: int) -> int:
        """The partition of bus topic ``topic`` in a Kafka topic with ``available`` of them."""
        spread = min(self.partitions, available)
        return zlib.crc32(topic.encode()) % spread if spread > 1 else 0

    def owns(self, name: str) -> bool:
        """Whether Kafka topic ``name`` is one this bus reads (own or made by others)."""
        if self.single:
            return name == self.single
        return name.startswith(self.prefix + ".") and len(name) > len(self.prefix) + 1

    def candidates(self, pattern: str, names: Iterable[str]) -> list[str]:
        """Of the Kafka topics ``names``, those that may hold events matching ``pattern``."""
        if self.single:
            return [self.single] if self.single in names else []
        first = pattern.partition(".")[0]
        if first in ("*", ">"):
            return sorted(n for n in names if self.owns(n))
        wanted = kafka_topic(self.prefix, first)
        # Another producer's topic such as hms.payments.sent holds bus topic
        # payments.sent (see bus_topic), which the live feed delivers; so must replay.
        return sorted(
            n
            for n in names
            if n == wanted
            or (self.owns(n) and bus_topic(self.prefix, n).partition(".")[0] == first)
        )
