"""Alertmanager's webhook body, so tools that take Alertmanager webhooks take our alerts.

Chat bridges, incident tools and on-call services accept the JSON that
Prometheus's Alertmanager POSTs to a ``webhook_config`` (version ``"4"``).
:func:`webhook_body` turns one notice into that shape:

* ``labels``: ``alertname`` (the rule's name), the rule's own labels, and
  ``group`` for a grouped rule; ``annotations``: ``summary``, ``value``,
  ``bound``, ``window`` and, when there is one, ``reason``;
* ``status``: ``firing``, or ``resolved`` for a resolved notice and for the
  ``ended`` notice of a closing monitor (Alertmanager, too, resolves an
  alert whose source stops reporting it);
* ``startsAt`` is when the alert fired (after ``for_``, as Prometheus
  sends it), not when its condition began (``since``); ``endsAt`` is
  ``0001-01-01T00:00:00Z`` while firing and the notice's ``at`` after;
* ``fingerprint`` is computed as Prometheus computes it (FNV-1a 64 over the
  sorted label names and values), so the same alert has the same
  fingerprint here and in an Alertmanager;
* one notice makes one POST, so ``alerts`` holds one alert, the group is
  that alert (``groupKey`` ``{}:{alertname="..."}``) and nothing is truncated.
"""

from __future__ import annotations

from typing import Any

from ..event import format_ts
from .rules import format_value

__all__ = ["webhook_body", "fingerprint", "alert_labels", "ZERO_TIME", "VERSION"]

VERSION = "4"
"""The webhook payload version Alertmanager sends."""

ZERO_TIME = "0001-01-01T00:00:00Z"
"""Go's zero time: Alertmanager's ``endsAt`` for an alert still firing."""

_OFFSET64 = 14695981039346656037
_PRIME64 = 1099511628211
_MASK64 = (1 << 64) - 1
_SEPARATOR = 255


def fingerprint(labels: dict[str, str]) -> str:
    """Prometheus's fingerprint of a label set, as 16 hex digits."""
    h = _OFFSET64
    for name in sorted(labels):
        for part in (name, labels[name]):
            for byte in part.encode("utf-8"):
                h = ((h ^ byte) * _PRIME64) & _MASK64
            h = ((h ^ _SEPARATOR) * _PRIME64) & _MASK64
    return f"{h:016x}"


def alert_labels(notice: dict[str, Any]) -> dict[str, str]:
    """The Alertmanager labels of a notice: ``alertname``, the rule's labels, ``group``."""
    labels = {**notice["labels"], "alertname": notice["rule"]}
    if notice["group"] is not None:
        labels["group"] = str(notice["group"])
    return labels


_GO_ESCAPES = {
    "\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\v": "\\v",
}  # fmt: skip


def _go_quote(text: str) -> str:
    """``text`` quoted as Go's strconv.Quote does (Alertmanager builds groupKey so):
    printable characters as they are, others escaped (``\x01``, ``\u2028``)."""
    out = []
    for ch in text:
        if ch in ('"', "\\"):
            out.append("\\" + ch)
        elif ch.isprintable():
            out.append(ch)
        elif ch in _GO_ESCAPES:
            out.append(_GO_ESCAPES[ch])
        elif ord(ch) < 0x80:
            out.append(f"\\x{ord(ch):02x}")
        elif ord(ch) <= 0xFFFF:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(f"\\U{ord(ch):08x}")
    return '"' + "".join(out) + '"'


def _group_key(labels: dict[str, str]) -> str:
    inner = ", ".join(f"{k}={_go_quote(labels[k])}" for k in sorted(labels))
    return "{}:{" + inner + "}"


def webhook_body(
    notice: dict[str, Any], receiver: str, *, external_url: str = "", generator_url: str = ""
) -> dict[str, Any]:
    """The Alertmanager webhook (version 4) body for ``notice``, sent by ``receiver``."""
    labels = alert_labels(notice)
    annotations = {
        "summary": notice["summary"],
        "value": format_value(notice["value"]),
        "bound": format_value(notice["bound"]),
        "window": f"{format_value(notice['window'])} s",
    }
    if notice.get("reason"):
        annotations["reason"] = notice["reason"]
    status = "firing" if notice["state"] == "firing" else "resolved"
    alert = {
        "status": status,
        "labels": labels,
        "annotations": annotations,
        "startsAt": format_ts(notice.get("fired_at", notice["since"])),
        "endsAt": ZERO_TIME if status == "firing" else format_ts(notice["at"]),
        "generatorURL": generator_url,
        "fingerprint": fingerprint(labels),
    }
    group = {"alertname": labels["alertname"]}
    if "group" in labels:
        group["group"] = labels["group"]
    return {
        "version": VERSION,
        "groupKey": _group_key(group),
        "truncatedAlerts": 0,
        "status": status,
        "receiver": receiver,
        "groupLabels": group,
        "commonLabels": dict(labels),
        "commonAnnotations": dict(annotations),
        "externalURL": external_url,
        "alerts": [alert],
    }
