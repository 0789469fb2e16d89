"""Redaction: secrets in URLs, webhooks, headers and text never reach a screen.

Everything the kit shows (``repr``, ``status()``, log lines, exception texts,
the command line, events it publishes, the monitor's delivery log) passes
through this module:

* :func:`redact_url` -- a bus URL with its secrets masked:
  ``nats://alice:s3cret@h:4222`` becomes ``nats://alice:***@h:4222``, a token
  in the user part (``nats://t0ken@h``) becomes ``nats://***@h``, in every
  server of a comma-separated list, and query options whose name says secret
  (``password``, ``token``, ``nkey_seed``, ``sasl.password``,
  ``ssl.key.password``, ...) show ``***`` as their value.
* :func:`redact_webhook` -- a webhook URL shown by scheme, host and first path
  segment only: ``https://hooks.slack.com/services/...``.
* :func:`redact_config` -- a settings dict (a Kafka client's) with
  secret-named values as ``***``.
* :func:`redact_headers` -- header names with ``***`` for every value but a
  few harmless ones (``Content-Type``).
* :func:`scrub` -- any text with every secret the kit was told about (see
  :func:`register_secret`; URLs, webhooks and headers register theirs) and
  every URL-shaped secret replaced by ``***``. The kit's loggers carry a
  :class:`SecretFilter` that scrubs each record (message, arguments,
  traceback), so even a message built from a raw exception is safe.

Secrets shorter than :data:`MIN_SECRET_LEN` characters are masked where a URL
or header shows them but are not hunted for in free text, where they would
mask ordinary words.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote, urlsplit

__all__ = [
    "MASK",
    "MIN_SECRET_LEN",
    "SecretFilter",
    "is_secret_name",
    "kit_logger",
    "redact_config",
    "redact_fields",
    "redact_headers",
    "redact_url",
    "redact_webhook",
    "register_config",
    "register_headers",
    "register_secret",
    "register_url",
    "register_webhook",
    "scrub",
]

MASK = "***"
"""What a secret is replaced with."""

MIN_SECRET_LEN = 4
"""Registered secrets shorter than this are not searched for in free text."""

_SECRET_NAME = re.compile(
    r"pass|pwd|token|secret|seed|nkey|jwt|credential|api[._-]?key|private|key[._-]pem"
    r"|ssl_key$|auth|cookie|signature|sig$|session",
    re.IGNORECASE,
)
_HARMLESS_HEADERS = frozenset(
    {"content-type", "accept", "user-agent", "content-length", "accept-encoding"}
)
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")
_SERVER_START = re.compile(r",\s*(?=[A-Za-z][A-Za-z0-9+.-]*://)")
_URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>()\[\]{}`]+")
_HOST_PORT = re.compile(r"(\[[0-9A-Fa-f:.]*\]|[^:\[\]/#@]*)(:\d*)?/?")


def is_secret_name(name: str) -> bool:
    """Whether an option or header called ``name`` holds a secret (``sasl.password``,
    ``token``, ``Authorization``, ``X-Api-Key``...)."""
    return bool(_SECRET_NAME.search(name))


# -- URLs ------------------------------------------------------------------------


def redact_url(url: object) -> str:
    """``url`` with passwords, tokens and secret query options replaced by ``***``.

    Works on one URL or a comma-separated list (``nats://a:4222,nats://b:4222``),
    with or without ``?options``. A password with characters a URL should have
    percent-encoded (``@``, ``/``, ``?``) is still masked, never shown in part.
    """
    text = url if isinstance(url, str) else str(url)
    return _redact(text, None)


def register_url(url: object) -> str:
    """Remember the secrets in ``url`` (for :func:`scrub`) and return it redacted."""
    found: list[str] = []
    text = url if isinstance(url, str) else str(url)
    shown = _redact(text, found)
    for secret in found:
        register_secret(secret)
    return shown


def _redact(text: str, found: list[str] | None) -> str:
    match = _SCHEME.search(text)
    if match is None:
        return _redact_query(text, found) if "=" in text else text
    head = text[: match.start()]
    servers = _SERVER_START.split(text[match.start() :])
    return head + ",".join(_redact_server(s, found) for s in servers)


def _redact_server(server: str, found: list[str] | None) -> str:
    scheme_end = server.index("://") + 3
    scheme, rest = server[:scheme_end], server[scheme_end:]
    at = _userinfo_end(rest)
    if at >= 0:
        user, colon, password = rest[:at].partition(":")
        if colon:
            _found(found, password)
            rest = f"{user}:{MASK}{rest[at:]}"
        else:
            _found(found, user)  # a bare user part is a token (nats://t0ken@host)
            rest = MASK + rest[at:]
    base, q, query = rest.partition("?")
    return scheme + base + (q + _redact_query(query, found) if q else "")


def _userinfo_end(rest: str) -> int:
    """Where the user part of ``rest`` (a URL after ``scheme://``) ends, or -1.

    A proper URL percent-encodes ``@``, ``/`` and ``?`` in a password; when one
    does not, the user part runs to the last ``@``, so no piece of the password
    is shown. An ``@`` in an option (``?sasl.username=me@corp.com``) after a
    clean host is left alone.
    """
    last = rest.rfind("@")
    if last < 0:
        return -1
    before, q, query = rest.partition("?")
    at = before.rfind("@")
    if not q or "@" not in query:
        return at
    host = before[at + 1 :]
    options_clean = all("=" in item for item in query.split("&") if "@" in item)
    return at if options_clean and _HOST_PORT.fullmatch(host) else last


def _redact_query(query: str, found: list[str] | None) -> str:
    parts = []
    for item in query.split("&"):
        name, eq, value = item.partition("=")
        if eq and is_secret_name(unquote(name)):
            _found(found, value)
            parts.append(f"{name}={MASK}")
        elif not eq and "@" in item:
            _found(found, item)
            parts.append(MASK)
        else:
            parts.append(item)
    return "&".join(parts)


def _found(found: list[str] | None, secret: str) -> None:
    if found is not None and secret:
        found.append(secret)
        decoded = unquote(secret)
        if decoded != secret:
            found.append(decoded)


# -- webhooks and headers ---------------------------------------------------------


def redact_webhook(url: str) -> str:
    """A webhook URL as scheme, host and first path segment: the rest (path,
    query, user part) often *is* the secret, as in a Slack-style
    ``https://hooks.slack.com/services/T.../B.../<secret>``."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return MASK
    if ":" in host:
        host = f"[{host}]"
    if port is not None:
        host = f"{host}:{port}"
    segments = parts.path.split("/")
    first = segments[1] if len(segments) > 1 else ""
    more = any(segments[2:]) or parts.query or parts.fragment or parts.username is not None
    shown = f"{parts.scheme}://{host}" + (f"/{first}" if first else "")
    return shown + ("/..." if more else "")


def register_webhook(url: str) -> str:
    """Remember the secret parts of webhook ``url`` and return :func:`redact_webhook`.

    :func:`scrub` then shows the whole URL as its redacted form, and masks
    its hidden parts (the path after the first segment, the options, the
    user part) wherever they appear alone.
    """
    shown = redact_webhook(url)
    try:
        parts = urlsplit(url)
    except ValueError:
        register_secret(url)
        return shown
    if shown.endswith("/..."):
        register_secret(url, shown)
    segments = parts.path.split("/")
    hidden = "/".join(segments[2:])
    register_secret(hidden)
    for segment in segments[2:]:
        if len(segment) >= 8:
            register_secret(segment)
            register_secret(unquote(segment))
    for secret in (parts.password, parts.username, parts.fragment, parts.query):
        register_secret(secret)
    for item in parts.query.split("&"):
        value = item.partition("=")[2]
        register_secret(value)
        register_secret(unquote(value))
    return shown


def redact_config(config: Mapping[str, Any] | None) -> dict[str, Any]:
    """Settings (a Kafka client's, say) with secret-named values shown as ``***``
    (``sasl.password``, ``ssl.key.password``, ``token``...) and URL values redacted."""
    shown: dict[str, Any] = {}
    for name, value in (config or {}).items():
        if is_secret_name(str(name)):
            shown[name] = MASK
        elif isinstance(value, str) and "://" in value:
            shown[name] = redact_url(value)
        else:
            shown[name] = value
    return shown


def redact_fields(obj: Any) -> str:
    """A dataclass's repr with URLs and secret-named settings redacted, as its
    ``__repr__`` (settings objects hold the URL and options a user gave)."""
    import dataclasses

    def shown(value: Any) -> str:
        if isinstance(value, str):
            return repr(redact_url(value) if "://" in value or "@" in value else value)
        if isinstance(value, Mapping):
            return repr(redact_config(value))
        if isinstance(value, (list, tuple)):
            inner = ", ".join(shown(v) for v in value)
            if isinstance(value, list):
                return f"[{inner}]"
            return f"({inner},)" if len(value) == 1 else f"({inner})"
        return repr(value)

    parts = (f"{f.name}={shown(getattr(obj, f.name))}" for f in dataclasses.fields(obj) if f.repr)
    return f"{type(obj).__name__}({', '.join(parts)})"


def register_config(config: Mapping[str, Any] | None) -> dict[str, Any]:
    """Remember the secret values in ``config`` and return :func:`redact_config`."""
    for name, value in (config or {}).items():
        if is_secret_name(str(name)) and isinstance(value, str):
            register_secret(value)
        elif isinstance(value, str) and "://" in value:
            register_url(value)
    return redact_config(config)


def redact_headers(headers: Mapping[str, str] | None) -> dict[str, str]:
    """Header names with their values shown only for harmless ones (``Content-Type``)."""
    return {
        name: (value if name.lower() in _HARMLESS_HEADERS else MASK)
        for name, value in (headers or {}).items()
    }


def register_headers(headers: Mapping[str, str] | None) -> None:
    """Remember the values of secret headers (``Authorization``, ``X-Api-Key``...),
    and the credential after a scheme word (``Bearer <token>``)."""
    for name, value in (headers or {}).items():
        if name.lower() in _HARMLESS_HEADERS or not isinstance(value, str):
            continue
        if is_secret_name(name) or len(value) >= 16:
            register_secret(value)
            scheme, _, credential = value.partition(" ")
            if credential:
                register_secret(credential.strip())


# -- free text ---------------------------------------------------------------------

_lock = threading.Lock()
_secrets: dict[str, str] = {}  # secret -> what to show instead
_pattern: re.Pattern[str] | None = None


def register_secret(secret: object, shown: str = MASK) -> None:
    """Have :func:`scrub` (and so the kit's logs) show ``shown`` wherever ``secret`` appears.

    Use it for a secret the kit cannot see in a URL, e.g. a password read from
    a file. Values shorter than :data:`MIN_SECRET_LEN` are ignored.
    """
    global _pattern
    if not isinstance(secret, str) or len(secret) < MIN_SECRET_LEN:
        return
    if _secrets.get(secret) == shown:
        return
    with _lock:
        if _secrets.get(secret) != MASK:  # the plainest mask wins
            _secrets[secret] = shown
        _pattern = None


def scrub(text: object) -> str:
    """``text`` with every registered secret and every URL-shaped secret masked."""
    global _pattern
    text = text if isinstance(text, str) else str(text)
    if _secrets:
        pattern = _pattern
        if pattern is None:
            with _lock:
                ordered = sorted(_secrets, key=len, reverse=True)
                pattern = _pattern = re.compile("|".join(map(re.escape, ordered)))
        text = pattern.sub(lambda m: _secrets.get(m.group(), MASK), text)
    if "://" in text:
        text = _URL_IN_TEXT.sub(lambda m: redact_url(m.group()), text)
    if "=" in text:
        text = _SECRET_OPTION.sub(lambda m: m.group(1) + MASK, text)
    return text


_SECRET_OPTION = re.compile(
    r"((?:^|(?<=[\s&?,;(]))[\w.-]*(?:password|passwd|token|secret|seed|nkey)[\w.-]*=)"
    r"[^\s&,;)'\"]+",
    re.IGNORECASE,
)


class SecretFilter:
    """A logging filter that scrubs each record: message, arguments, traceback.

    The kit's loggers carry one (see :func:`kit_logger`); add it to a handler
    of yours to scrub other libraries' records too::

        handler.addFilter(hms_bus.redact.SecretFilter())
    """

    def filter(self, record: Any) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: logging reports it itself
            return True
        record.msg, record.args = scrub(message), ()
        if record.exc_info and not record.exc_text:
            import logging

            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            # Handlers that render exc_info themselves would show the raw text.
            record.exc_text, record.exc_info = scrub(record.exc_text), None
        if record.stack_info:
            record.stack_info = scrub(record.stack_info)
        return True


_FILTER = SecretFilter()


def kit_logger(name: str = "hms_bus") -> Any:
    """The logger ``name`` (``hms_bus`` or a child), with a :class:`SecretFilter`."""
    import logging

    logger = logging.getLogger(name)
    if _FILTER not in logger.filters:
        logger.addFilter(_FILTER)
    return logger
