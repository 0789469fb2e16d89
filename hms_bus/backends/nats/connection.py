"""Connecting to NATS: the URL and its options, and a client on a private event loop.

Every option of the NATS backend is read here (:func:`parse_options`), every
``nats.connect`` argument is built here (:meth:`Connection.connect_options`),
and every place that shows the URL to a person (``repr``, ``status()``, log
lines, error messages) takes it from :func:`shown`, which masks its secrets
(:func:`hms_bus.redact.redact_url`). Credentials and TLS settings are gathered
by :mod:`.auth`; :meth:`Connection.open` refuses a plaintext server when TLS
was asked for, and says so when the server refuses the credentials.

nats-py is asyncio-only. The client runs on an event loop in a daemon thread
of its own, reached with :meth:`Connection.call`, so the backend works the
same in a script and in a Jupyter kernel whose main thread already runs a
loop.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import math
import re
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qsl

import nats
import nats.errors

from ...errors import HmsBusError
from ...redact import kit_logger, redact_fields, redact_url, register_url
from .auth import OPTIONS as SECURITY_OPTIONS
from .auth import Security, is_auth_error, refusal_error, require_tls, security_from

__all__ = ["NatsOptions", "Connection", "parse_options", "shown", "HOW_TO_START"]

log = kit_logger("hms_bus.nats")  # the logger of every NATS module: now scrubbed

HOW_TO_START = (
    "start one with `make nats` or `python -m hms_bus server`, or set HMS_BUS_URL "
    "to a running server"
)

DEFAULT_RETENTION_S = 24 * 3600.0
"""The stream's ``max_age`` when this backend creates it, in seconds."""

DEFAULT_MAX_RETAINED = 1_000_000
"""The stream's ``max_msgs`` when this backend creates it."""

DEFAULT_MAX_BYTES = 1 << 30
"""The stream's ``max_bytes`` when this backend creates it: 1 GiB."""

DUPLICATE_WINDOW_S = 120.0
"""How long the server remembers message ids to drop re-sends, in seconds
(never longer than the retention, which the server refuses)."""

FIRST_CONNECT_TRIES = 2
"""Attempts per server when first connecting, before giving up with the reason."""

STREAM_SETTINGS = {
    "retention": "max_age",
    "max_retained": "max_msgs",
    "max_bytes": "max_bytes",
    "replicas": "num_replicas",
    "duplicate_window": "duplicate_window",
}
"""Options that describe the stream, and the ``StreamConfig`` field each sets."""


def shown(url: str) -> str:
    """The URL as messages, logs, ``repr`` and ``status()`` show it: passwords,
    tokens and secret options masked (``nats://alice:***@host:4222``)."""
    return redact_url(url)


@dataclass
class NatsOptions:
    """Everything a NATS backend was asked for, checked."""

    url: str
    servers: list[str]
    stream: str = "HMS_BUS"
    prefix: str = "hms"
    asked: dict[str, float | int] = field(default_factory=dict)
    """Stream settings given explicitly, by ``StreamConfig`` field (``max_age``...),
    in the server's units: seconds, counts, bytes; -1 (0 for ``max_age``) for no limit."""
    update: bool = False
    readonly: bool = False
    connect_timeout: float = 3.0
    ack_timeout: float = 5.0
    max_attempts: int = 12
    max_buffered: int = 1_000_000
    outage_timeout: float = 30.0
    security: Security | None = None
    """Credentials and TLS (see :mod:`.auth`)."""

    __repr__ = redact_fields  # the URL may hold a password or token

    @property
    def label(self) -> str:
        return shown(self.url)

    @property
    def subjects(self) -> str:
        """The subjects the bus's stream captures: ``<prefix>.>``."""
        return f"{self.prefix}.>"

    def wanted(self) -> dict[str, float | int]:
        """The stream settings to create a stream with: what was asked, else the defaults."""
        cfg: dict[str, float | int] = {
            "max_age": DEFAULT_RETENTION_S,
            "max_msgs": DEFAULT_MAX_RETAINED,
            "max_bytes": DEFAULT_MAX_BYTES,
            "num_replicas": 1,
            **self.asked,
        }
        if "duplicate_window" not in self.asked:
            age = cfg["max_age"]
            cfg["duplicate_window"] = (
                DUPLICATE_WINDOW_S if age == 0 else min(DUPLICATE_WINDOW_S, age)
            )
        return cfg


_UNSET: Any = object()


def _seconds(name: str, value: Any, *, inf_ok: bool = False) -> float:
    if isinstance(value, timedelta):
        value = value.total_seconds()
    if isinstance(value, str):
        value = float(value)  # ValueError names the text
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be seconds (a number or timedelta), got {value!r}")
    value = float(value)
    if math.isinf(value) and value > 0 and inf_ok:
        return value
    if not (value > 0 and math.isfinite(value)):
        what = "positive seconds, or math.inf for no limit" if inf_ok else "positive seconds"
        raise ValueError(f"{name} must be {what}, got {value!r}")
    return value


def _count(name: str, value: Any, *, none_ok: bool, low: int = 1, high: int | None = None) -> int:
    if isinstance(value, str):
        value = None if value.lower() == "none" and none_ok else int(value)
    if value is None and none_ok:
        return -1
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or value < low
        or (high is not None and value > high)
    ):
        rng = f"{low} to {high}" if high is not None else f"an int >= {low}"
        tail = ", or None for no limit" if none_ok else ""
        raise ValueError(f"{name} must be {rng}{tail}, got {value!r}")
    return value


def _flag(name: str, value: Any) -> bool:
    if isinstance(value, str):
        low = value.lower()
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off", ""):
            return False
    if isinstance(value, bool):
        return value
    raise ValueError(f"{name} must be true or false (1 or 0), got {value!r}")


_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")


def _retention(name: str, value: Any) -> float:
    seconds = _seconds(name, value, inf_ok=True)
    return 0.0 if math.isinf(seconds) else seconds  # JetStream's max_age 0: no limit


_PARSERS: dict[str, Callable[[str, Any], Any]] = {
    "retention": _retention,
    "max_retained": lambda n, v: _count(n, v, none_ok=True),
    "max_bytes": lambda n, v: _count(n, v, none_ok=True),
    "replicas": lambda n, v: _count(n, v, none_ok=False, high=5),
    "duplicate_window": lambda n, v: _seconds(n, v),
    "update": _flag,
    "readonly": _flag,
    "connect_timeout": lambda n, v: _seconds(n, v),
    "ack_timeout": lambda n, v: _seconds(n, v),
    "outage_timeout": lambda n, v: _seconds(n, v),
    "max_attempts": lambda n, v: _count(n, v, none_ok=False),
    "max_buffered": lambda n, v: _count(n, v, none_ok=False),
}


def parse_options(url: object, **given: Any) -> NatsOptions:
    """Check ``url`` (``nats://host:port[,nats://host2:port...][?name=value&...]``)
    and keyword options; the same option may not come from both."""
    if not isinstance(url, str):
        raise TypeError(f"url must be a str such as 'nats://127.0.0.1:4222', got {url!r}")
    label = register_url(url)  # shown(url); its secrets are scrubbed from logs from now on
    base, _, query = url.partition("?")
    servers = [s.strip() for s in base.split(",") if s.strip()]
    if not servers or any(not s.startswith(("nats://", "tls://")) for s in servers):
        raise ValueError(f"bad NATS URL {label!r}; use e.g. 'nats://127.0.0.1:4222'")
    pairs = parse_qsl(query, keep_blank_values=True)
    known = ["stream", "prefix", *_PARSERS, *SECURITY_OPTIONS]
    unknown = sorted({k for k, _ in pairs if k not in known} | {k for k in given if k not in known})
    if unknown:
        raise ValueError(f"unknown parameter(s) {unknown} in {label!r}; known: {', '.join(known)}")
    query_opts: dict[str, str] = {}
    for key, value in pairs:
        if key in query_opts:
            raise ValueError(f"parameter {key!r} appears twice in {label!r}; give it once")
        query_opts[key] = value
    given = {k: v for k, v in given.items() if v is not _UNSET}
    twice = sorted(set(query_opts) & set(given))
    if twice:
        raise ValueError(
            f"{', '.join(twice)} given both in the URL {label!r} and as a keyword; give each once"
        )
    security = {k: given.pop(k) for k in SECURITY_OPTIONS if k in given}
    sec = security_from(servers, query_opts, security, url=url)  # takes its options out
    opts = NatsOptions(url=url, servers=sec.servers, security=sec)
    for key, value in {**query_opts, **given}.items():
        where = f"{key}={value!r}" + (f" in {label!r}" if key in query_opts else "")
        try:
            if key in ("stream", "prefix"):
                setattr(opts, key, _identity(key, value))
                continue
            parsed = _PARSERS[key](key, value)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"bad {where}: {exc}") from None
        if key in STREAM_SETTINGS:
            opts.asked[STREAM_SETTINGS[key]] = parsed
        else:
            setattr(opts, key, parsed)
    if opts.readonly and opts.update:
        raise ValueError(f"{label!r} asks for both readonly and update; pick one")
    return opts


def _identity(key: str, value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"must be a str, got {value!r}")
    if key == "stream":
        if not _NAME.fullmatch(value):
            raise ValueError("a stream name is 1 to 64 letters, digits, '-' and '_'")
        return value
    tokens = value.split(".")
    for tok in tokens:
        if not tok or not tok.isprintable() or any(c.isspace() or c in "*>" for c in tok):
            raise ValueError(
                "a prefix is dot-separated tokens of printable text without whitespace "
                "or wildcards, e.g. 'hms' or 'team.bus'"
            )
    if tokens[0].startswith("$") or tokens[0] == "_INBOX":
        raise ValueError(
            f"{tokens[0]!r} subjects belong to the server and to request/reply inboxes "
            f"(a stream on them would capture other clients' traffic); choose a prefix "
            f"of your own, e.g. 'hms' or 'team.bus'"
        )
    if len(value.encode()) > MAX_PREFIX_BYTES:
        raise ValueError(
            f"a prefix of {len(value.encode()):,} bytes leaves no room for topics in a "
            f"subject; keep it under {MAX_PREFIX_BYTES} bytes, e.g. 'hms'"
        )
    return value


MAX_PREFIX_BYTES = 256
"""The longest subject prefix taken: subjects hold a few thousand bytes at most."""


class Connection:
    """A nats-py client on a private event loop, with the state people see.

    :attr:`last_error` holds the server's or client's last complaint;
    :attr:`epoch` counts disconnects, so acks awaited across one can be re-sent.
    """

    def __init__(self, options: NatsOptions) -> None:
        self.options = options
        self.label = options.label
        self.last_error = ""
        self.epoch = 0
        self.down_since: float | None = None
        self.closed = False
        self.nc: Any = None
        self._opening = False
        self._refused: asyncio.Event | None = None
        self._refusal: Exception | None = None
        self.on_reconnect: list[Callable[[], None]] = []
        """Called on the loop after each reconnect."""
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self.loop.run_forever, name="hms-bus-nats", daemon=True
        )
        self._thread.start()

    def connect_options(self) -> dict[str, Any]:
        """The keyword arguments for ``nats.connect``."""
        timeout = self.options.connect_timeout
        security = self.options.security
        return {
            **(security.connect_options() if security else {"servers": self.options.servers}),
            "error_cb": self._on_error,
            "disconnected_cb": self._on_disconnect,
            "reconnected_cb": self._on_reconnect,
            "connect_timeout": max(1, int(timeout / 2)),
            "reconnect_time_wait": 0.25,
            # A few tries per server to connect (then fail with the reason);
            # once connected, reconnect forever (see open()).
            "max_reconnect_attempts": FIRST_CONNECT_TRIES,
            "name": "hms_bus",
        }

    def call(self, coro: Any, timeout: float | None) -> Any:
        """Run ``coro`` on the loop and wait for it (from any other thread)."""
        if threading.current_thread() is self._thread:
            coro.close()
            raise HmsBusError("a NATS backend call was made from its own event loop thread")
        fut = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return fut.result(timeout)
        except concurrent.futures.TimeoutError:
            if fut.done():
                raise  # the coroutine's own timeout
            fut.cancel()
            raise TimeoutError(f"NATS at {self.label} did not answer within {timeout} s") from None

    async def open(self) -> None:
        """Connect, or raise :class:`HmsBusError` with the reason within ``connect_timeout``.

        With TLS asked for, a server that does not offer it is refused before
        anything is sent. Refused credentials or a failed TLS handshake end the
        attempt at once (retrying cannot help) with a message that says so.
        """
        timeout = self.options.connect_timeout
        security = self.options.security or Security(self.options.servers)
        await require_tls(security)
        self._opening = True  # the reason goes into the error raised, not also into the log
        self._refused, self._refusal = asyncio.Event(), None
        connecting = asyncio.ensure_future(nats.connect(**self.connect_options()))
        refused = asyncio.ensure_future(self._refused.wait())
        try:
            await asyncio.wait(
                {connecting, refused}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            refused.cancel()
            self._opening = False
        if connecting.done() and connecting.exception() is None:
            self.nc = connecting.result()
            options = getattr(self.nc, "options", None)  # nats-py keeps them in a dict
            if isinstance(options, dict):
                options["max_reconnect_attempts"] = -1  # from now on: reconnect forever
            return
        timed_out = not connecting.done()
        if timed_out:
            connecting.cancel()
        exc = None if timed_out else connecting.exception()
        refusal = refusal_error(security, self.label, self._refusal or exc or self.last_error)
        if refusal is not None:
            raise refusal
        why = self.last_error or (f"{type(exc).__name__}: {exc}" if exc else "no answer")
        within = f" within {timeout:g} s" if timed_out else ""
        raise HmsBusError(
            f"cannot reach a NATS server at {self.label}{within} ({why}); {HOW_TO_START}"
        )

    async def _on_error(self, exc: Exception) -> None:
        text = f"{type(exc).__name__}: {exc}"
        if self._opening and (is_auth_error(text) or isinstance(exc, ssl.SSLError)):
            self._refusal = self._refusal or exc  # later errors (a reset) say less
            if self._refused is not None:
                self._refused.set()
        if text != self.last_error and not self._opening:
            log.warning("NATS at %s: %s", self.label, text)
        self.last_error = text

    async def _on_disconnect(self) -> None:
        self.epoch += 1
        if self.down_since is None and not self.closed:
            self.down_since = time.monotonic()
            log.warning("lost NATS at %s; buffering publishes until it is back", self.label)

    async def _on_reconnect(self) -> None:
        down = time.monotonic() - (self.down_since or time.monotonic())
        self.down_since = None
        log.warning("NATS at %s is back after %.1f s; re-sending unacked events", self.label, down)
        for hook in self.on_reconnect:
            hook()

    @property
    def connected(self) -> bool:
        return self.nc is not None and self.nc.is_connected

    def state(self) -> str:
        """``connected``, ``disconnected for N s`` or ``closed``."""
        if self.closed:
            return "closed"
        if self.down_since is not None:
            return f"disconnected for {time.monotonic() - self.down_since:.1f} s"
        return "connected"

    def stop(self, shutdown: Any = None) -> None:
        """Run ``shutdown`` (a coroutine), close the client and stop the loop thread."""
        self.closed = True

        async def finish() -> None:
            try:
                if shutdown is not None:
                    await shutdown
            finally:
                if self.nc is not None:
                    await self.nc.close()

        try:
            self.call(finish(), 10)
        except Exception as exc:
            log.warning("closing NATS connection to %s: %r", self.label, exc)
        loop = self.loop

        def halt() -> None:
            for task in asyncio.all_tasks(loop):
                task.cancel()
            loop.call_soon(loop.stop)  # after the cancelled tasks had their turn

        loop.call_soon_threadsafe(halt)
        self._thread.join(5)
        if not self._thread.is_alive():
            loop.close()
