"""How an event is written to a Kafka record, and read back from one.

A record the backend writes:

* **value**: compact UTF-8 JSON ``{"id", "time", "topic", "src", "data"}``;
  ``time`` is the event's exact float time (epoch seconds) and ``topic`` the
  full bus topic, so a read-back event equals the published one;
* **key**: ``<event id>.<session>``, the session being 8 random hex digits
  per backend. A re-send of the same record has the same key and is dropped
  by readers; two runs of a seeded simulation (same event ids) have
  different keys, so neither is taken for a re-send of the other;
* **timestamp**: the event time in whole milliseconds (rounded down, and at
  least 1, since librdkafka reads 0 as "now"); Kafka's retention and time
  index work on it. No headers (each costs a few microseconds per record).

A record whose value is a valid event but whose key is not of that shape
(another producer writing the format, keyed by customer, say) is delivered as
the event it holds; only the kit's own keys mark re-sends, so such records
are never dropped as copies of each other.

Anything else found on the backend's Kafka topics (another application's
records, or a payload that is not a valid event) becomes an event with
``src="kafka"``, the bus topic named after the Kafka topic (``hms.payments``
→ ``payments``), the record's JSON (or text) as data, the record timestamp
as time and an id made of the topic, partition and offset. It is counted by a
:class:`Foreign` (logged once per record) and never stops a reader.
"""

from __future__ import annotations

import json
import math
import re
import threading
import zlib
from typing import Any

from ...clock import MAX_TIME, MIN_TIME
from ...event import Event, freeze
from ...redact import kit_logger
from ...topics import validate_topic
from .naming import bus_topic

__all__ = ["Encoder", "Foreign", "Record", "decode", "timestamp_ms"]

log = kit_logger("hms_bus.kafka")

_ID = re.compile(r"evt-([0-9a-f]{8})-(\d{6,20})")
_KEY_TAIL = re.compile(rb"\.([0-9a-zA-Z_-]{1,64})")
_KEYS = frozenset(("id", "time", "topic", "src", "data"))

try:  # the C encoder made once costs a third of JSONEncoder.encode per call
    _c_encode = json.encoder.c_make_encoder(  # type: ignore[attr-defined]
        None, None, json.encoder.encode_basestring, None, ":", ",", False, False, False
    )

    def _data_json(data: Any, _encode: Any = _c_encode, _join: Any = "".join) -> str:
        return _join(_encode(data, 0))

except (AttributeError, TypeError):  # no C accelerator (PyPy)
    _data_json = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode

_ascii_json = json.JSONEncoder(separators=(",", ":"), allow_nan=False).encode


def timestamp_ms(t: float) -> int:
    """A record timestamp for event time ``t``: whole ms, rounded down, at least 1."""
    ms = math.floor(t * 1000)
    return ms if ms >= 1 else 1


class Encoder:
    """Turns events into ``(value, key, timestamp)``, caching the JSON of topics and sources."""

    def __init__(self, session: str) -> None:
        self.suffix = "." + session
        self._topics: dict[str, str] = {}
        self._srcs: dict[str, str] = {}

    def encode(self, event: Event) -> tuple[bytes, bytes, int]:
        topic = self._topics.get(event.topic)
        if topic is None:
            topic = self._topics[event.topic] = ',"topic":' + _ascii_json(event.topic)
        src = self._srcs.get(event.src)
        if src is None:
            src = self._srcs[event.src] = ',"src":' + _ascii_json(event.src)
        eid = event.id
        t = event.time
        text = f'{{"id":"{eid}","time":{float(t)!r}{topic}{src},"data":{_data_json(event.data)}}}'
        try:
            value = text.encode()
        except UnicodeEncodeError:  # a lone surrogate in the data: escape it as JSON allows
            value = _ascii_json(
                {
                    "id": eid,
                    "time": float(t),
                    "topic": event.topic,
                    "src": event.src,
                    "data": event.data,
                }
            ).encode()
        return value, (eid + self.suffix).encode(), timestamp_ms(t)


class Record:
    """A record read back: the event, the key that identifies re-sends, who wrote it."""

    __slots__ = ("event", "key", "stream", "foreign")

    def __init__(self, event: Event, key: bytes, stream: tuple[str, str] | None, foreign: bool):
        self.event = event
        self.key = key
        self.stream = stream
        """``(bus id, session)`` of the backend that wrote it; None for foreign records."""
        self.foreign = foreign

    def order(self) -> tuple:
        """Sort key across partitions: time, then each writer's publish order."""
        ev = self.event
        return (ev.time, self.stream or ("", ""), ev.seq)


class Foreign:
    """Counts the records that are not the kit's events, and logs each once.

    ``counts`` holds ``foreign`` (every such record), ``as_text`` (not JSON the
    bus accepts: delivered as text) and ``malformed`` (claims the five keys of
    an event but breaks a rule), like the NATS backend's.
    """

    def __init__(self, label: str) -> None:
        self.label = label
        self.counts = {"foreign": 0, "as_text": 0, "malformed": 0}
        self._noted: dict[tuple[str, int, int, str], None] = {}
        self._lock = threading.Lock()  # the feed's thread and readers both note

    def note(self, msg: Any, kind: str) -> None:
        where = (msg.topic(), msg.partition(), msg.offset(), kind)
        with self._lock:
            if where in self._noted:  # the feed and a replay read the same record
                return
            self._noted[where] = None
            if len(self._noted) > 200_000:
                for old in list(self._noted)[:100_000]:
                    del self._noted[old]
            self.counts[kind] += 1
        what = {
            "foreign": "is not an hms event; delivered with src='kafka'",
            "as_text": "is not JSON the bus accepts; delivered as text",
            "malformed": "claims to be an hms event but breaks the wire format",
        }[kind]
        log.log(
            20 if kind == "foreign" else 30,
            "Kafka at %s: record %s/%d offset %d %s",
            self.label,
            where[0],
            where[1],
            where[2],
            what,
        )


def decode(msg: Any, prefix: str, foreign: Foreign | None = None) -> Record:
    """The :class:`Record` in confluent-kafka message ``msg`` (never raises)."""
    key = msg.key() or b""
    value = msg.value()
    body: Any = None
    try:
        body = json.loads(value)
        m = _ID.fullmatch(body["id"])
        t = body["time"]
        if (
            m is None
            or type(t) not in (float, int)
            or not MIN_TIME <= t <= MAX_TIME
            or type(body["src"]) is not str
            or not body["src"]
        ):
            raise ValueError(body["id"])
        event = Event(
            validate_topic(body["topic"]),
            freeze(body["data"]),
            body["src"],
            float(t),
            int(m.group(2)),
            m.group(1),
        )
    except (ValueError, KeyError, TypeError, AttributeError, RecursionError):
        if foreign is not None and type(body) is dict and body.keys() == _KEYS:
            foreign.note(msg, "malformed")
        return _foreign(msg, value, prefix, foreign)
    eid = body["id"].encode()
    tail = _KEY_TAIL.fullmatch(key, len(eid)) if key.startswith(eid) else None
    if tail is None:  # written in our format by another producer, with its own key
        where = f"{msg.topic()}/{msg.partition()}/{msg.offset()}".encode()
        return Record(event, where, None, False)
    return Record(event, key, (event.bus_id, tail.group(1).decode()), False)


def _foreign(msg: Any, value: bytes | None, prefix: str, foreign: Foreign | None) -> Record:
    """A record that is not one of ours: keep what it holds."""
    if value is None:
        data: Any = None
    else:
        try:
            data = freeze(json.loads(value))
        except (ValueError, TypeError, RecursionError):
            data = value.decode("utf-8", "replace")
            if foreign is not None:
                foreign.note(msg, "as_text")
    if foreign is not None:
        foreign.note(msg, "foreign")
    name, partition, offset = msg.topic(), msg.partition(), msg.offset()
    topic = ".".join(t for t in bus_topic(prefix, name).split(".") if t) or "kafka"
    try:
        topic = validate_topic(topic)
    except (ValueError, TypeError):
        topic = "kafka"
    ms = msg.timestamp()[1]
    t = min(max(ms / 1000, MIN_TIME), MAX_TIME) if ms is not None and ms >= 0 else 0.0
    where = f"k{zlib.crc32(name.encode()):08x}p{partition}"
    event = Event(topic, data, "kafka", t, offset, where)
    return Record(event, f"{name}/{partition}/{offset}".encode(), None, True)
