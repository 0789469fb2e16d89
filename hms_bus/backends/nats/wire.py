"""The NATS wire format: what an event looks like on a subject, and back.

An event on topic ``payments.sent`` travels as one message:

* subject ``<prefix>.payments.sent`` (prefix ``hms`` unless told);
* header ``Nats-Msg-Id: <event id>.<session>``, where the session is 8 hex
  digits per connection, so the server drops a re-send within its duplicate
  window while two runs of a seeded simulation (same ids) are both stored;
* payload: UTF-8 JSON ``{"id": "evt-<bus id>-<seq>", "time": <epoch seconds>,
  "src": "<who>", "data": <any JSON>}``, exactly these four keys; the id's
  sequence has at least six digits (``evt-d82c07cd-000001``).

Any other message on the subjects is *foreign*. It is delivered with
``src="nats"``, the server's timestamp as its time, id ``evt-nats-<stream
sequence>`` and as ``data`` the payload parsed as JSON if the bus accepts
that JSON (see :func:`hms_bus.event.freeze`), else the payload as text. A
message that claims to be an event (the four keys) but breaks a rule (a
``"time"`` of ``"yesterday"``, a bad id, data nested too deep) is counted
as *malformed* and delivered the same way. A subject that is not a valid
topic is *skipped*. Each is logged and counted; none raises or stalls a
reader.
"""

from __future__ import annotations

import json
import logging
import math
import re
from typing import Any

from ...clock import MAX_TIME, MIN_TIME
from ...event import Event, freeze
from ...topics import validate_topic

__all__ = ["Encoder", "Decoder", "FOREIGN_SRC", "is_own_id"]

log = logging.getLogger("hms_bus.nats")

FOREIGN_SRC = "nats"
"""The ``src`` of events made from foreign messages."""

KEYS = frozenset(("id", "time", "src", "data"))
"""The keys of an event's payload, no more, no less."""

_UNSET: Any = object()
_ID = re.compile(r"evt-([0-9A-Za-z_]{1,64})-([0-9]{6,18})")
_MSG_ID = re.compile(r"evt-[0-9A-Za-z_]{1,64}-[0-9]{6,18}\.[0-9a-f]{8}")


def is_own_id(msg_id: str) -> bool:
    """True for a ``Nats-Msg-Id`` that an hms bus wrote (event id plus session)."""
    return _MSG_ID.fullmatch(msg_id) is not None


def _c_encoder() -> Any:
    """The C JSON encoder made once: about half the cost of ``json.dumps`` per call."""
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:  # no C accelerator (PyPy...)
        return json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
    enc = make(None, None, json.encoder.encode_basestring, None, ":", ",", False, False, False)
    join = "".join
    return lambda obj: join(enc(obj, 0))


class Encoder:
    """Turns events into (subject, payload, headers) for one connection."""

    def __init__(self, prefix: str, session: str) -> None:
        self.prefix = prefix + "."
        self.suffix = "." + session
        self._dumps = _c_encoder()

    def encode(self, event: Event) -> tuple[str, bytes, dict[str, str]]:
        body = {"id": event.id, "time": event.time, "src": event.src, "data": event.data}
        payload = self._dumps(body).encode()
        return self.prefix + event.topic, payload, {"Nats-Msg-Id": event.id + self.suffix}


class Decoder:
    """Turns stored messages back into events, never raising.

    ``counts`` holds ``foreign``, ``as_text``, ``malformed`` and ``skipped``
    (each message counted once, however often it is read).
    """

    def __init__(self, prefix: str, label: str) -> None:
        self.cut = len(prefix) + 1
        self.label = label
        self.counts = {"foreign": 0, "as_text": 0, "malformed": 0, "skipped": 0}
        self._noted: dict[int, None] = {}

    def decode(self, subject: str, payload: bytes, sseq: int, ts_ns: int) -> Event | None:
        """The event in a message, or None to skip it."""
        try:
            topic = validate_topic(subject[self.cut :])
        except (TypeError, ValueError) as exc:
            self._note(sseq, "skipped", "subject %r is not a valid topic (%s)", subject, exc)
            return None
        try:
            body, parsed = json.loads(payload), True
        except (ValueError, RecursionError):  # RecursionError: nested thousands deep
            body, parsed = None, False
        if parsed and type(body) is dict and body.keys() == KEYS:
            event = _event(topic, body)
            if event is not None:
                return event
            self._note(
                sseq,
                "malformed",
                "seq %d on %r claims to be an hms event but "
                "breaks the wire format; delivered as foreign",
                sseq,
                topic,
            )
        data: Any = _UNSET
        if parsed:
            try:
                data = freeze(body)
            except (TypeError, ValueError, RecursionError):
                pass
        if data is _UNSET:
            data = payload.decode("utf-8", "replace")
            self._note(
                sseq,
                "as_text",
                "seq %d on %r is not JSON the bus accepts; delivered as text",
                sseq,
                topic,
            )
        self._note(sseq, "foreign", "seq %d on %r is a foreign message", sseq, topic, level=20)
        time = min(max(ts_ns / 1e9, MIN_TIME), MAX_TIME)
        return Event(topic, data, FOREIGN_SRC, time, sseq, FOREIGN_SRC)

    def _note(self, sseq: int, kind: str, message: str, *args: Any, level: int = 30) -> None:
        key = sseq * 4 + ("foreign", "as_text", "malformed", "skipped").index(kind)
        if key in self._noted:
            return
        self._noted[key] = None
        if len(self._noted) > 200_000:
            for old in list(self._noted)[:100_000]:
                del self._noted[old]
        self.counts[kind] += 1
        log.log(level, "NATS at %s: " + message, self.label, *args)


def _event(topic: str, body: dict) -> Event | None:
    """The event a payload with the four keys describes, or None if it breaks a rule."""
    ident, t, src = body["id"], body["time"], body["src"]
    if type(ident) is not str or type(src) is not str or not src.strip():
        return None
    if type(t) not in (int, float) or not math.isfinite(t) or not MIN_TIME <= t <= MAX_TIME:
        return None
    match = _ID.fullmatch(ident)
    if match is None:
        return None
    bus_id, seq_text = match.groups()
    seq = int(seq_text)
    if seq < 1 or f"evt-{bus_id}-{seq:06d}" != ident:
        return None
    try:
        data = freeze(body["data"])
    except (TypeError, ValueError, RecursionError):
        return None
    return Event(topic, data, src, float(t), seq, bus_id)
