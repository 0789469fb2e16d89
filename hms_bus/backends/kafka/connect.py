"""Reaching the brokers: fail fast, with librdkafka's own reason and what to do.

librdkafka never gives up on its own: a client for an unreachable address
just keeps trying. :func:`wait_for_brokers` asks for the cluster's metadata
in short steps and serves the client's error callback between them, so a
refused port, an unknown host or a port that answers but is no Kafka broker
fails within a quarter of a second, and a broker that never answers fails at
the deadline, each time with librdkafka's words for it.
"""

from __future__ import annotations

import logging
import re
import time
from typing import Any

from confluent_kafka import KafkaError, KafkaException

from ...errors import HmsBusError
from ...redact import kit_logger
from .config import shown

__all__ = ["ErrorLog", "wait_for_brokers", "librdkafka_logger", "HOW_TO_REACH"]

HOW_TO_REACH = (
    "check the host:port list, that the brokers' advertised listeners are reachable from "
    "here, and the security settings (security.protocol, sasl.*, ssl.*); to try the kit "
    "without a broker, run `python -m hms_bus kafka-mock` and use the URL it prints"
)

STEP_S = 0.25
"""How long one metadata request may take while connecting, in seconds."""

_ALL_DOWN = KafkaError._ALL_BROKERS_DOWN
_REASONS = frozenset(
    {
        KafkaError._TRANSPORT,
        KafkaError._RESOLVE,
        KafkaError._BAD_MSG,
        KafkaError._AUTHENTICATION,
        KafkaError._SSL,
        KafkaError._TIMED_OUT,
        KafkaError._INVALID_ARG,
    }
)

_AFTER = re.compile(r" \(after \d+ms in state \w+\)")

log = kit_logger("hms_bus.kafka")


def librdkafka_logger() -> logging.Logger:
    """The logger librdkafka's own lines go to: silent unless you add a handler.

    Reasons reach users through exceptions and ``status()``; without this,
    Python's last-resort handler would print every reconnect attempt.
    """
    quiet = kit_logger("hms_bus.kafka.librdkafka")
    if not quiet.handlers:
        quiet.addHandler(logging.NullHandler())
        quiet.propagate = False
    return quiet


class ErrorLog:
    """Collects a client's ``error_cb`` reports: the latest reason, and a short history."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.recent: list[KafkaError] = []
        self.last = ""
        self.all_down = False
        self.connecting = True  # wait_for_brokers reports failures itself

    def __call__(self, err: KafkaError) -> None:
        self.recent.append(err)
        del self.recent[:-50]
        if err.code() == _ALL_DOWN:
            if not self.all_down and not self.connecting:
                log.warning("all Kafka brokers at %s are unreachable", shown(self.url))
            self.all_down = True
        else:
            self.last = err.str()
        if err.fatal():
            log.error("Kafka at %s: fatal client error: %s", shown(self.url), err.str())

    def reasons(self) -> str:
        """librdkafka's distinct reasons so far, joined."""
        texts = dict.fromkeys(_AFTER.sub("", e.str()) for e in self.recent if e.code() in _REASONS)
        return "; ".join(texts)


def wait_for_brokers(client: Any, errors: ErrorLog, timeout: float, url: str) -> Any:
    """The cluster metadata from ``client``, or :class:`HmsBusError` within ``timeout`` s."""
    deadline = time.monotonic() + timeout
    last = ""
    while True:
        try:
            metadata = client.list_topics(timeout=STEP_S)
        except KafkaException as exc:
            last = exc.args[0].str()
        else:
            errors.recent.clear()
            errors.all_down = errors.connecting = False
            return metadata
        client.poll(0)  # serves error_cb
        if errors.all_down or time.monotonic() > deadline:
            why = errors.reasons() or last
            if "Invalid response size" in why:
                why += " (that port answers, but not as a Kafka broker)"
            raise HmsBusError(
                f"cannot connect to Kafka at {shown(url)} within {timeout:g} s: {why}; "
                f"{HOW_TO_REACH}"
            )
