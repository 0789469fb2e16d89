"""Receivers: where alert notices end up -- a person's screen, a file, code, a chat.

Every receiver has a ``name`` and a ``deliver(notice)`` method; the router
calls it and records what happened. A receiver that raises is reported as
``failed`` (never silently dropped). An *asynchronous* receiver (a webhook)
returns at once and reports the outcome later through ``on_outcome``; the
router's delivery log shows it ``queued`` until then. Everything that shows
where a receiver sends (a webhook's URL) goes through its ``name``. The four
here:

* :class:`ConsolePager` -- the red alert a person sees in a terminal or a
  notebook (ANSI colours, which both show).
* :class:`JsonLinesFile` -- one JSON object per line, appended; easy to
  ``grep`` or load with ``pandas.read_json(path, lines=True)``.
* :class:`Callback` -- calls a Python function with the notice's data.
* :class:`Webhook` -- POSTs JSON to a URL from a background thread, so a slow
  or dead endpoint never blocks the bus; failures are retried with back-off,
  then reported. ``format="alertmanager"`` sends Alertmanager's webhook body.
"""

from __future__ import annotations

import json
import math
import os
import queue
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import IO, Any

from ..event import format_ts
from ..redact import kit_logger, register_headers, register_webhook, scrub
from .alertmanager import webhook_body
from .timeline import to_data

__all__ = [
    "Receiver",
    "ConsolePager",
    "JsonLinesFile",
    "Callback",
    "Webhook",
    "headline",
    "WEBHOOK_FORMATS",
]

WEBHOOK_FORMATS = ("chat", "alertmanager")
"""Bodies a :class:`Webhook` can send."""

Outcome = Callable[[dict[str, Any], "Receiver", "str | None", int], None]

log = kit_logger("hms_bus")

_RED, _GREEN, _YELLOW = "\x1b[41;97m", "\x1b[42;30m", "\x1b[43;30m"
_BOLD, _RESET = "\x1b[1m", "\x1b[0m"


def headline(notice: dict[str, Any]) -> str:
    """One line for people: state, rule, group, what was seen, since when."""
    state = notice["state"].upper()
    if notice.get("repeat"):
        state += f" (repeat {notice['repeat']})"
    group = "" if notice["group"] is None else f" [{notice['group']}]"
    when = format_ts(notice["at"])
    tail = f"since {format_ts(notice['since'])}"
    if notice["state"] != "firing":
        tail = f"after {notice['at'] - notice['since']:g} s"
    if notice.get("reason"):
        tail += f"; {notice['reason']}"
    return f"{state} {notice['rule']}{group} at {when}: {notice['summary']} ({tail})"


class Receiver:
    """The interface: ``deliver(notice)``, ``flush()``, ``close()``, and a ``name``.

    A receiver whose ``deliver`` only hands the notice over (``asynchronous =
    True``) must later call ``on_outcome(notice, receiver, error, attempts)``
    once per notice: ``error`` None when it was delivered, else why not.
    """

    name = "receiver"
    asynchronous = False
    on_outcome: Outcome | None = None
    """Set by the router: how an asynchronous receiver reports each outcome."""

    def deliver(self, notice: dict[str, Any]) -> None:
        raise NotImplementedError

    def flush(self, timeout: float | None = None) -> None:
        """Wait until notices handed over so far are delivered (or given up)."""

    def close(self) -> None:
        """Release files, threads and connections."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"


class ConsolePager(Receiver):
    """Print each notice as a coloured banner line.

    :param stream: where to print; ``sys.stdout`` at the time of each notice
        unless told (so notebooks capture it).
    :param color: True, False, or ``"auto"`` (colour unless ``NO_COLOR`` is set).
    """

    def __init__(
        self, stream: IO[str] | None = None, *, color: bool | str = "auto", name: str = "pager"
    ) -> None:
        if color not in (True, False, "auto"):
            raise ValueError(f"color={color!r}; use True, False or 'auto'")
        self.stream = stream
        self.color = (not os.environ.get("NO_COLOR")) if color == "auto" else color
        self.name = name

    def deliver(self, notice: dict[str, Any]) -> None:
        line = headline(notice)
        if notice["state"] == "firing":
            line = "🚨 " + line
            if self.color:
                line = f"{_RED}{_BOLD}{line}{_RESET}"
        elif notice["state"] == "ended":  # nobody watches any more: not an all-clear
            line = "⏹️ " + line
            if self.color:
                line = f"{_YELLOW}{line}{_RESET}"
        else:
            line = "✅ " + line
            if self.color:
                line = f"{_GREEN}{line}{_RESET}"
        stream = self.stream if self.stream is not None else sys.stdout
        print(line, file=stream, flush=True)


class JsonLinesFile(Receiver):
    """Append each notice's data as one JSON line to ``path``."""

    def __init__(self, path: str | os.PathLike, *, name: str | None = None) -> None:
        self.path = os.fspath(path)
        folder = os.path.dirname(os.path.abspath(self.path))
        if not os.path.isdir(folder):
            raise ValueError(
                f"cannot write alerts to {self.path!r}: folder {folder!r} does not exist"
            )
        self.name = name or f"file:{os.path.basename(self.path)}"
        self._lock = threading.Lock()

    def deliver(self, notice: dict[str, Any]) -> None:
        line = json.dumps(to_data(notice), sort_keys=True) + "\n"
        with self._lock, open(self.path, "a", encoding="utf-8") as f:
            f.write(line)


class Callback(Receiver):
    """Call ``fn(data)`` with each notice's data (the dict published on the bus)."""

    def __init__(self, fn: Callable[[dict[str, Any]], Any], *, name: str | None = None) -> None:
        if not callable(fn):
            raise TypeError(f"Callback needs a function taking one dict, got {fn!r}")
        self.fn = fn
        self.name = name or getattr(fn, "__qualname__", None) or repr(fn)

    def deliver(self, notice: dict[str, Any]) -> None:
        self.fn(to_data(notice))


class Webhook(Receiver):
    """POST each notice as JSON to ``url``, from a background thread.

    With ``format="chat"`` (the default) the body is ``{"text": <headline>,
    "alert": <notice data>}``: chat tools (Slack, Mattermost, Rocket.Chat
    incoming webhooks) show ``text``, and a program reads ``alert``. With
    ``format="alertmanager"`` it is the body Prometheus's Alertmanager sends
    (version "4"; see :mod:`hms_bus.monitor.alertmanager`), which any tool
    that accepts Alertmanager webhooks understands.

    A failed POST (connection error, timeout, or an HTTP status of 400 or
    more) is retried ``retries`` times, waiting ``backoff``, then twice that,
    and so on; a notice that still fails is counted in ``failed``, logged,
    and reported to the router, whose log entry for it then says ``failed``.

    :param max_queue: how many notices may wait; past that, new ones are
        reported as failed rather than held without bound.
    :param external_url: ``externalURL`` in Alertmanager bodies (where people
        can look at the alerts); empty unless told.
    :param headers: extra HTTP headers, e.g. ``{"Authorization": "Bearer ..."}``;
        their values are never shown or logged.
    :param name: how logs, the delivery log and events name this webhook;
        unless told, ``webhook:`` and the URL's scheme, host and first path
        segment (``webhook:https://hooks.slack.com/services/...``), since the
        rest of a chat webhook's URL is its secret.
    """

    asynchronous = True

    def __init__(
        self,
        url: str,
        *,
        format: str = "chat",
        external_url: str = "",
        timeout: float = 2.0,
        retries: int = 3,
        backoff: float = 0.2,
        headers: dict[str, str] | None = None,
        max_queue: int = 1000,
        name: str | None = None,
    ) -> None:
        if not isinstance(url, str):
            raise ValueError(
                f"url must be text such as 'https://hooks.example.com/...', "
                f"got {type(url).__name__}"
            )
        scheme, sep, rest = url.partition("://")
        if not sep or scheme.lower() not in ("http", "https"):
            # Show no more than the host: the rest of a webhook URL is often its secret.
            host = (rest if sep else url).split("/", 1)[0].rpartition("@")[2].split("?")[0]
            head = f"{scheme}://{host}" if sep else host
            raise ValueError(
                f"url={head + '/...'!r} must start with http:// or https:// "
                f"(the rest of the URL is not shown: it may hold a secret)"
            )
        url = scheme.lower() + sep + rest
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise ValueError(f"retries={retries!r} must be a whole number, 0 or more")
        for option, value in (("timeout", timeout), ("backoff", backoff)):
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, float))
                or not math.isfinite(value)
                or value < 0
                or (option == "timeout" and value == 0)
            ):
                need = "a number of seconds above 0" if option == "timeout" else "0 or more seconds"
                raise ValueError(f"{option}={value!r} must be {need}, e.g. {option}=2")
        if format not in WEBHOOK_FORMATS:
            raise ValueError(
                f"format={format!r} is not a webhook body I know; use 'chat' (text plus the "
                f"alert) or 'alertmanager' (Alertmanager's webhook JSON)"
            )
        self.url = url
        self.format = format
        self.external_url = str(external_url)
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.headers = {"Content-Type": "application/json", **(headers or {})}
        register_headers(self.headers)
        shown = register_webhook(url)
        self.name = name or f"webhook:{shown}"
        self.sent = 0
        self.failed = 0
        self.retried = 0
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue(max_queue)
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()

    def deliver(self, notice: dict[str, Any]) -> None:
        with self._start_lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._work, name=self.name, daemon=True)
                self._thread.start()
        try:
            self._queue.put_nowait(notice)
        except queue.Full:
            self._give_up(notice, f"queue full ({self._queue.maxsize} notices waiting)")

    def _work(self) -> None:
        while True:
            notice = self._queue.get()
            try:
                if notice is None:
                    return
                self._post(notice)
            finally:
                self._queue.task_done()

    def body(self, notice: dict[str, Any]) -> dict[str, Any]:
        """The JSON body this webhook POSTs for ``notice``."""
        if self.format == "alertmanager":
            return webhook_body(notice, self.name, external_url=self.external_url)
        return {"text": headline(notice), "alert": to_data(notice)}

    def _post(self, notice: dict[str, Any]) -> None:
        body = json.dumps(self.body(notice)).encode()
        error = ""
        for attempt in range(self.retries + 1):
            if attempt:
                self.retried += 1
                time.sleep(self.backoff * 2 ** (attempt - 1))
            req = urllib.request.Request(self.url, body, self.headers, method="POST")
            try:
                with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                    resp.read()
                self.sent += 1
                self._report(notice, None, attempt + 1)
                return
            except urllib.error.HTTPError as exc:
                error = f"HTTP {exc.code} {exc.reason}"
            except (OSError, ValueError, urllib.error.URLError) as exc:
                error = f"{type(exc).__name__}: {exc}"
        self._give_up(notice, f"{error} after {self.retries + 1} attempts", self.retries + 1)

    def _give_up(self, notice: dict[str, Any], error: str, attempts: int = 0) -> None:
        error = scrub(error)  # http.client may quote the URL or a header
        self.failed += 1
        log.error("webhook %s failed for %s: %s", self.name, notice["rule"], error)
        self._report(notice, error, attempts)

    def _report(self, notice: dict[str, Any], error: str | None, attempts: int) -> None:
        if self.on_outcome is not None:
            try:
                self.on_outcome(notice, self, error, attempts)
            except Exception as exc:  # a broken reporter must not kill the sender thread
                log.error("webhook %s could not report an outcome: %s", self.name, scrub(exc))

    def flush(self, timeout: float | None = None) -> None:
        """Wait until every queued notice is sent or given up (TimeoutError past ``timeout``)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self._queue.unfinished_tasks:
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(
                    f"webhook {self.name} still has {self._queue.unfinished_tasks} notices "
                    f"after {timeout} s"
                )
            time.sleep(0.005)

    def close(self, timeout: float | None = 10.0) -> None:
        """Send what is queued (waiting up to ``timeout`` s), then stop the thread."""
        if self._thread is None:
            return
        try:
            self.flush(timeout)
        finally:
            self._queue.put(None)
            self._thread.join(timeout)
            self._thread = None
