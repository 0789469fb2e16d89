"""The Kafka backend's settings: from a ``kafka://`` URL and keyword arguments.

``kafka://k1:9092,k2:9092?prefix=hms&partitions=1&retention=86400`` names the
bootstrap servers and the backend's own options; any option whose name
contains a dot is a librdkafka setting handed to every client as it is
(``security.protocol=SASL_SSL&sasl.mechanism=SCRAM-SHA-512``...). Keyword
arguments of the same names, and ``conf={...}`` for librdkafka settings, do
the same in code; the URL wins where both are given (it is what operators
change). Secrets are better kept out of URLs: pass them in ``conf=``.

Every place that shows a URL or a setting (``repr``, ``status()``, errors,
logs) goes through :func:`shown` or :func:`shown_conf`, which hide secrets
with :mod:`hms_bus.redact`; parsing registers the secrets so that the kit's
logs mask them in any text.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from urllib.parse import unquote

from ...redact import redact_config, redact_fields, redact_url, register_config, register_url
from ...retention import DEFAULT_WINDOW_S

__all__ = ["KafkaConfig", "parse", "shown", "shown_conf", "OPTIONS", "MANAGED"]

DEFAULT_PORT = 9092
"""The port of a server given without one, as Kafka clients assume."""

OPTIONS = (
    "prefix",
    "single",
    "partitions",
    "replication",
    "retention",
    "max_bytes",
    "max_retained",
    "connect_timeout",
    "message_timeout",
    "fetch_wait_ms",
    "refresh",
    "reorder_hold",
    "readonly",
)
"""The backend's own options, by URL query name and keyword."""

MANAGED = frozenset(
    {
        "bootstrap.servers",
        "enable.idempotence",
        "acks",
        "request.required.acks",
        "delivery.report.only.error",
        "on_delivery",
        "error_cb",
        "logger",
        "group.id",
        "enable.auto.commit",
        "enable.partition.eof",
        "transactional.id",
        "test.mock.num.brokers",
    }
)
"""librdkafka settings the backend sets itself and refuses to take from users."""

_TOPIC_CHARS = re.compile(r"[A-Za-z0-9._-]+")
_HOST = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+)(?::(\d+))?")


@dataclass(frozen=True)
class KafkaConfig:
    """Checked settings of one Kafka backend (see :func:`parse` for their meaning)."""

    servers: tuple[str, ...]
    prefix: str = "hms"
    single: str | None = None
    partitions: int = 1
    replication: int | None = None
    retention: float = DEFAULT_WINDOW_S
    max_bytes: int | None = None
    max_retained: int | None = None
    connect_timeout: float = 3.0
    message_timeout: float = 30.0
    fetch_wait_ms: int = 50
    refresh: float = 0.5
    reorder_hold: float = 0.5
    readonly: bool = False
    librdkafka: Mapping[str, Any] = field(default_factory=dict)
    url: str = ""

    __repr__ = redact_fields  # the URL and librdkafka settings may hold passwords

    @property
    def bootstrap(self) -> str:
        return ",".join(self.servers)

    def client_conf(self, **extra: Any) -> dict[str, Any]:
        """Settings for one librdkafka client: the servers, the user's settings, ``extra``."""
        return {"bootstrap.servers": self.bootstrap, **self.librdkafka, **extra}


def parse(url: object, conf: Mapping[str, Any] | None = None, **options: Any) -> KafkaConfig:
    """Check ``url`` plus keyword ``options`` and ``conf`` and return the settings.

    Options (URL query or keyword): ``prefix`` (``hms``: bus topic
    ``payments.sent`` lives in Kafka topic ``hms.payments``), ``single`` (one
    Kafka topic for every bus topic: one global order), ``partitions`` of
    topics the backend creates (1), ``replication`` of those (the broker's
    default), ``retention`` in seconds (24 h) and ``max_bytes`` per partition
    (none) set on topics the backend creates, ``max_retained`` (none: Kafka
    has no retention by count, so readers count the newest that many events
    as kept; the records stay on the brokers), ``connect_timeout`` (3 s),
    ``message_timeout`` (30 s before an unacknowledged event counts as lost),
    ``fetch_wait_ms`` (50: how long a broker may hold a fetch), ``refresh``
    (0.5 s between looks for new topics), ``reorder_hold`` (0.5 s: how long
    the feed waits for a bus's missing event before it moves on) and
    ``readonly`` (false; true refuses publishes, for commands that only read).
    An option comes from the URL or a keyword, not both.
    """
    if not isinstance(url, str):
        raise TypeError(f"url must be a str such as 'kafka://127.0.0.1:9092', got {url!r}")
    if not url.startswith("kafka://"):
        raise ValueError(
            f"bad Kafka URL {shown(url)!r}: it must start with kafka://, "
            f"e.g. 'kafka://127.0.0.1:9092'"
        )
    register_url(url)  # from here on, the kit's logs and scrub() mask its secrets
    register_config(conf)
    base, _, query = url[len("kafka://") :].partition("?")
    servers = _servers(base, url)
    given = _query(query, url)
    conf = dict(conf or {})
    refused = sorted(k for k in {*given, *options, *conf} if k in MANAGED)
    if refused:
        raise ValueError(
            f"{', '.join(refused)} in {shown(url)!r}: the backend sets these itself "
            f"(an idempotent producer with acks=all, readers without consumer groups); "
            f"leave them out"
        )
    twice = sorted(k for k in given if k in options or k in conf)
    if twice:
        raise ValueError(
            f"{', '.join(twice)} given both in {shown(url)!r} and as a keyword; give each once"
        )
    unknown = sorted(k for k in {*given, *options} if k not in OPTIONS and "." not in k)
    if unknown:
        raise ValueError(
            f"unknown option(s) {', '.join(unknown)} in {shown(url)!r}; the backend's own are "
            f"{', '.join(OPTIONS)}, and librdkafka settings have a dot in their name "
            f"(security.protocol, sasl.mechanism, client.id...)"
        )
    rdkafka = {**conf, **{k: v for k, v in {**options, **given}.items() if "." in k}}
    own = {k: v for k, v in {**options, **given}.items() if "." not in k}
    for key, value in rdkafka.items():
        if not isinstance(key, str) or not isinstance(value, str | int | float | bool):
            raise TypeError(
                f"librdkafka setting {key!r} must be a str, number or bool, got "
                f"{shown_conf({key: value})[key]!r}"
            )
    settings = {k: _checked(k, v, url) for k, v in own.items()}
    prefix = settings.get("prefix", "hms")
    single = settings.get("single")
    return KafkaConfig(
        servers=servers,
        librdkafka=rdkafka,
        url=url,
        prefix=prefix,
        single=single,
        **{k: v for k, v in settings.items() if k not in ("prefix", "single")},
    )


def _servers(base: str, url: str) -> tuple[str, ...]:
    if "@" in base:
        raise ValueError(
            f"Kafka URL {shown(url)!r} has credentials before the host; pass them as "
            f"librdkafka settings instead (conf={{'sasl.username': ..., 'sasl.password': ...}} "
            f"with security.protocol=SASL_SSL)"
        )
    servers = []
    for part in base.split(","):
        part = unquote(part.strip())
        m = _HOST.fullmatch(part)
        if not m or (m.group(2) is not None and not 1 <= int(m.group(2)) <= 65535):
            raise ValueError(
                f"bad server {part!r} in Kafka URL {shown(url)!r}; list host:port pairs "
                f"separated by commas, e.g. 'kafka://k1:9092,k2:9092'"
            )
        servers.append(part if m.group(2) else f"{part}:{DEFAULT_PORT}")
    return tuple(servers)


def _query(query: str, url: str) -> dict[str, str]:
    given: dict[str, str] = {}
    for item in query.split("&") if query else []:
        key, eq, value = item.partition("=")
        key, value = unquote(key.replace("+", " ")), unquote(value.replace("+", " "))
        if not key or not eq:
            raise ValueError(
                f"bad query item {shown_conf({key: value}) if eq else key!r} in Kafka URL "
                f"{shown(url)!r}; write name=value pairs joined by '&', e.g. '?prefix=hms'"
            )
        if key in given:
            raise ValueError(f"option {key!r} is given twice in Kafka URL {shown(url)!r}")
        given[key] = value
    return given


def _checked(name: str, value: Any, url: str) -> Any:
    """One of the backend's own options, converted and checked."""
    where = f" (in {shown(url)!r})"
    if name == "readonly":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in (
            "1",
            "true",
            "yes",
            "on",
            "0",
            "false",
            "no",
            "off",
        ):
            return value.lower() in ("1", "true", "yes", "on")
        raise ValueError(f"readonly must be true or false (1 or 0), got {value!r}{where}")
    if name in ("prefix", "single"):
        if value is None and name == "single":
            return None
        if not isinstance(value, str) or not _TOPIC_CHARS.fullmatch(value) or value in (".", ".."):
            raise ValueError(
                f"{name}={value!r}{where} is not a Kafka topic name: use letters, digits, "
                f"'.', '_' and '-', e.g. {name}={'hms' if name == 'prefix' else 'hms.all'}"
            )
        limit = 200 if name == "prefix" else 249
        if len(value) > limit:
            raise ValueError(f"{name} is {len(value)} characters long{where}; at most {limit}")
        return value
    if name in ("partitions", "replication", "max_bytes", "max_retained", "fetch_wait_ms"):
        if name in ("replication", "max_bytes", "max_retained") and value is None:
            return None
        n = _number(name, value, where, int)
        low = 0 if name == "fetch_wait_ms" else 1
        if n < low:
            raise ValueError(f"{name} must be an int >= {low}, got {value!r}{where}")
        return n
    x = _number(name, value, where, float)
    if name == "reorder_hold" and x == 0:
        return 0.0
    if name == "retention" and x == math.inf:
        return x  # keep everything: retention.ms=-1, as on the memory bus and NATS
    if not (x > 0 and math.isfinite(x)):
        raise ValueError(
            f"{name} must be a positive finite number of seconds, got {value!r}{where}"
        )
    return x


def _number(name: str, value: Any, where: str, kind: type) -> Any:
    if isinstance(value, timedelta) and kind is float:
        return value.total_seconds()
    if isinstance(value, bool):
        raise TypeError(f"{name} must be a number, got {value!r}{where}")
    try:
        if isinstance(value, str):
            return kind(value.strip())
        if kind is int and not float(value).is_integer():
            raise ValueError
        return kind(value)
    except (TypeError, ValueError, OverflowError):
        example = "3" if kind is int else "86400"
        raise ValueError(
            f"{name}={value!r}{where} is not {'an int' if kind is int else 'a number'}; "
            f"e.g. {name}={example}"
        ) from None


def shown_conf(conf: Mapping[str, Any]) -> dict[str, Any]:
    """``conf`` as it may be shown to people: secrets replaced by ``***``."""
    return redact_config(conf)


def shown(url: str) -> str:
    """``url`` as it may be shown to people: secret query values replaced by ``***``.

    Every message, ``repr`` and status that names a Kafka URL goes through here.
    """
    return redact_url(url)
