"""Who a NATS client is, and that nobody else listens: credentials and TLS.

NATS deployments log clients in with a user and password, a token, an NKey
seed or a ``.creds`` file (a user JWT and its seed), and speak TLS with a CA
of their own. :func:`security_from` gathers these from three places, in this
order, the first that gives credentials winning:

1. keyword arguments: ``user=``, ``password=``, ``token=``, ``nkey=`` (a seed
   file), ``nkey_seed=`` (the seed itself), ``creds=`` (a ``.creds`` file),
   ``ca=``, ``cert=``, ``key=``, ``tls=True``;
2. the URL: ``nats://alice:s3cret@host``, ``nats://<token>@host``, or the
   same names as options (``?creds=/etc/nats/hms.creds&ca=/etc/nats/ca.pem``);
3. environment variables, so a secret need not sit in a URL:
   ``HMS_BUS_USER`` and ``HMS_BUS_PASSWORD`` (the user may also come from
   the URL: ``nats://alice@host`` with ``HMS_BUS_PASSWORD``), ``HMS_BUS_TOKEN``,
   ``HMS_BUS_NKEY_SEED``, ``HMS_BUS_CREDS``.

``tls://`` (or any of ``ca``, ``cert``, ``key``, ``tls=True``) means TLS:
:func:`require_tls` reads each server's greeting before any credential is
sent and refuses one that does not offer TLS, because nats-py itself speaks
plaintext to such a server without a word. :func:`refusal_error` turns what
nats-py raises into a message that says what went wrong: the credentials
were refused or cannot be used, or TLS failed.
"""

from __future__ import annotations

import asyncio
import json
import os
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

from ...errors import HmsBusError
from ...redact import redact_url, register_secret

__all__ = [
    "ENV",
    "OPTIONS",
    "Security",
    "security_from",
    "require_tls",
    "refusal_error",
    "is_auth_error",
]

ENV = {
    "user": "HMS_BUS_USER",
    "password": "HMS_BUS_PASSWORD",
    "token": "HMS_BUS_TOKEN",
    "nkey_seed": "HMS_BUS_NKEY_SEED",
    "creds": "HMS_BUS_CREDS",
}
"""The environment variables that may hold credentials, by keyword."""

OPTIONS = ("user", "password", "token", "nkey", "nkey_seed", "creds", "ca", "cert", "key", "tls")
"""Security keywords (and URL options) of the NATS backend."""

_AUTH_ERRORS = (
    "authorization violation",
    "authentication timeout",
    "authentication expired",
    "authentication revoked",
    "user authentication",
    "account authentication",
    "invalid user credentials",
)
_FILES = ("nkey", "creds", "ca", "cert", "key")
_PROBE_TIMEOUT_S = 2.0


@dataclass
class Security:
    """What a connection needs to prove who it is and to keep the link private.

    ``kind`` is ``"password"``, ``"token"``, ``"nkey"``, ``"creds"`` or None;
    ``where`` says where those credentials came from, for error messages
    ("in HMS_BUS_URL", "in HMS_BUS_TOKEN", "passed as token=").
    """

    servers: list[str]
    tls: bool = False
    ca: str | None = None
    cert: str | None = None
    key: str | None = None
    kind: str | None = None
    where: str = ""
    secrets: dict[str, str] = field(default_factory=dict, repr=False)

    def connect_options(self) -> dict[str, Any]:
        """Keyword arguments for ``nats.connect`` (servers without credentials in them)."""
        opts: dict[str, Any] = {"servers": self.servers}
        if self.tls:
            opts["tls"] = self.ssl_context()
        s = self.secrets
        if self.kind == "password":
            opts["user"], opts["password"] = s["user"], s["password"]
        elif self.kind == "token":
            opts["token"] = s["token"]
        elif self.kind == "nkey":
            if "nkey_seed" in s:
                opts["nkeys_seed_str"] = s["nkey_seed"]
            else:
                opts["nkeys_seed"] = s["nkey"]
        elif self.kind == "creds":
            opts["user_credentials"] = s["creds"]
        return opts

    def ssl_context(self) -> ssl.SSLContext:
        """The TLS context: the system's CAs, or ``ca`` alone; ``cert``/``key`` to show."""
        context = ssl.create_default_context(cafile=self.ca)
        if self.cert is not None:
            context.load_cert_chain(self.cert, self.key)
        return context

    def what_to_check(self) -> str:
        """ "check the user and password in HMS_BUS_URL", and the like."""
        if self.kind is None:
            return (
                "the server wants credentials: give a user and password, a token, an "
                "NKey seed or a .creds file (in the URL, as keyword arguments, or in "
                f"{', '.join(ENV.values())})"
            )
        what = {
            "password": "the user and password",
            "token": "the token",
            "nkey": "the NKey seed",
            "creds": f"the .creds file {self.secrets.get('creds', '')!r}",
        }[self.kind]
        return f"check {what} {self.where}".rstrip()


def security_from(
    servers: list[str],
    options: dict[str, str],
    kwargs: Mapping[str, Any],
    *,
    url: str,
    env: Mapping[str, str] | None = None,
) -> Security:
    """Gather credentials and TLS settings (see the module's docstring).

    ``servers`` are the URL's servers, ``options`` its query options (the
    security ones are taken out of it), ``kwargs`` the keyword arguments.
    Bad combinations and missing files raise ``ValueError``.
    """
    env = os.environ if env is None else env
    shown = redact_url(url)
    from_env_url = env.get("HMS_BUS_URL") == url
    url_place = "in HMS_BUS_URL" if from_env_url else "in the URL"
    for name in OPTIONS:
        if name in options and name in kwargs and kwargs[name] is not None:
            raise ValueError(
                f"{name} is given twice, in the URL {shown!r} and as {name}=; give it once"
            )
    given = {k: v for k, v in kwargs.items() if k in OPTIONS and v is not None}
    in_url = {k: options.pop(k) for k in list(options) if k in OPTIONS}
    bare, userinfo = _strip_userinfo(servers, shown)
    tls_flag = given.pop("tls", None)
    if tls_flag is None:
        tls_flag = in_url.pop("tls", None)
    else:
        in_url.pop("tls", None)
    paths = {
        k: str(given.pop(k) if k in given else in_url.pop(k))
        for k in ("ca", "cert", "key")
        if k in given or k in in_url
    }
    sec = Security(bare, **paths)
    if sec.key is not None and sec.cert is None:
        raise ValueError(f"key={sec.key!r} needs cert= (the client certificate) with it")
    sec.tls = any(s.startswith("tls://") for s in servers) or bool(paths)
    sec.tls = sec.tls or _truthy(tls_flag, shown)
    if userinfo is not None:
        user, password = userinfo
        if password is not None:
            in_url.setdefault("user", user)
            in_url.setdefault("password", password)
        elif env.get(ENV["password"]) and "password" not in in_url:
            in_url.setdefault("user", user)  # the password comes from the environment
        else:
            in_url.setdefault("token", user)
    if given.get("user") and not _has_credentials(given):
        raise ValueError(f"user={given['user']!r} needs password= with it")
    from_env = {k: env[v] for k, v in ENV.items() if env.get(v)}
    env_place = "in " + "/".join(ENV[k] for k in from_env)
    if "user" in in_url and "password" not in in_url and "token" not in in_url:
        from_env["user"] = in_url.pop("user")  # nats://alice@host plus HMS_BUS_PASSWORD
    for source, where in ((given, "you passed"), (in_url, url_place), (from_env, env_place)):
        if _has_credentials(source):
            _take(sec, source, where, shown)
            break
    for name in _FILES:
        path = sec.secrets.get(name) if name in ("nkey", "creds") else getattr(sec, name)
        if path is not None and not os.path.isfile(path):
            raise ValueError(
                f"{name}={path!r}: no such file; give the path of the "
                f"{_FILE_WHAT[name]} (URL of {shown!r})"
            )
    for name in ("password", "token", "nkey_seed"):
        register_secret(sec.secrets.get(name))
    return sec


_FILE_WHAT = {
    "nkey": "file holding the NKey seed (SU...)",
    "creds": ".creds file (user JWT and seed)",
    "ca": "CA certificate (PEM) that signed the server's certificate",
    "cert": "client certificate (PEM)",
    "key": "client certificate's private key (PEM)",
}


def _truthy(value: Any, shown: str) -> bool:
    if value is None or isinstance(value, bool):
        return bool(value)
    text = str(value).lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"tls={value!r} in {shown!r}: use tls=true or tls=false")


def _strip_userinfo(
    servers: list[str], shown: str
) -> tuple[list[str], tuple[str, str | None] | None]:
    """The servers without ``user:password@``, and that (one) user part."""
    bare: list[str] = []
    found: set[tuple[str, str | None]] = set()
    for server in servers:
        parts = urlsplit(server)
        if parts.username is None:
            bare.append(server)
            continue
        password = None if parts.password is None else unquote(parts.password)
        found.add((unquote(parts.username), password))
        host = parts.netloc.rpartition("@")[2]
        bare.append(parts._replace(netloc=host).geturl())
    if len(found) > 1:
        raise ValueError(
            f"the servers in {shown!r} carry different credentials; one connection logs "
            f"in one way: give them once (user:password@ on each, or keyword arguments)"
        )
    return bare, (found.pop() if found else None)


def _has_credentials(source: Mapping[str, Any]) -> bool:
    return any(source.get(k) for k in ("password", "token", "nkey", "nkey_seed", "creds"))


def _take(sec: Security, source: Mapping[str, Any], where: str, shown: str) -> None:
    kinds = [
        kind
        for kind, names in (
            ("password", ("password",)),
            ("token", ("token",)),
            ("nkey", ("nkey", "nkey_seed")),
            ("creds", ("creds",)),
        )
        if any(source.get(n) for n in names)
    ]
    if len(kinds) > 1:
        raise ValueError(
            f"credentials of {len(kinds)} kinds ({', '.join(kinds)}) {where}; a NATS "
            f"client logs in one way: give one of them (URL {shown!r})"
        )
    kind = kinds[0]
    if kind == "password" and not source.get("user"):
        raise ValueError(f"a password {where} needs a user with it (URL {shown!r})")
    if kind == "nkey" and source.get("nkey") and source.get("nkey_seed"):
        raise ValueError(f"give nkey= (a seed file) or nkey_seed= (the seed), not both {where}")
    sec.kind = kind
    sec.where = where
    names = ("user", "password", "token", "nkey", "nkey_seed", "creds")
    sec.secrets = {k: str(source[k]) for k in names if source.get(k)}


# -- TLS is TLS ---------------------------------------------------------------------


async def require_tls(sec: Security, timeout: float = _PROBE_TIMEOUT_S) -> None:
    """Refuse servers that do not offer TLS, before any credential is sent.

    Each reachable server's greeting (``INFO {...}``) says whether it takes
    TLS; one that does not would get our credentials in plaintext. Servers
    that do not answer are left to the connection attempt to report.
    """
    if not sec.tls:
        return
    results = await asyncio.gather(*(_offers_tls(s, timeout) for s in sec.servers))
    plain = [s for s, offers in zip(sec.servers, results, strict=True) if offers is False]
    if plain:
        raise HmsBusError(
            f"NATS at {redact_url(', '.join(plain))} does not offer TLS, and TLS was asked "
            f"for (tls://, ca=, cert= or tls=true): refusing to connect in plaintext. Turn "
            f"TLS on at the server (a tls {{ cert_file, key_file }} block), or use nats:// "
            f"if an unencrypted link is what you want"
        )


async def _offers_tls(server: str, timeout: float) -> bool | None:
    parts = urlsplit(server)
    host, port = parts.hostname or "127.0.0.1", parts.port or 4222
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    except (OSError, asyncio.TimeoutError):
        return None
    try:
        line = await asyncio.wait_for(reader.readline(), timeout)
    except (OSError, asyncio.TimeoutError):
        return None  # e.g. a server that wants the TLS handshake first
    finally:
        writer.close()
    if not line.startswith(b"INFO "):
        return None
    try:
        info = json.loads(line[5:])
    except ValueError:
        return None
    return bool(info.get("tls_required") or info.get("tls_available"))


# -- what went wrong -------------------------------------------------------------------


def is_auth_error(exc: BaseException | str) -> bool:
    """Whether ``exc`` (or its text) says the server refused the credentials."""
    text = exc if isinstance(exc, str) else f"{type(exc).__name__}: {exc}"
    lowered = text.lower()
    return "authorizationerror" in lowered or any(a in lowered for a in _AUTH_ERRORS)


def refusal_error(sec: Security, shown: str, exc: BaseException | str) -> HmsBusError | None:
    """The error for a connection that failed with ``exc`` (or its text), when
    retrying cannot help; None when the server was simply not reached.

    Credentials refused: say so and what to check (no advice to start a
    server: one answered). Credentials unusable (a malformed seed or ``.creds``
    file): say which. TLS failed: say which check failed and what to give.
    """
    text = exc if isinstance(exc, str) else f"{type(exc).__name__}: {exc}"
    lowered = text.lower()
    if is_auth_error(text):
        reason = _server_words(text)
        return HmsBusError(
            f"NATS at {shown} refused the credentials ({reason}): {sec.what_to_check()}"
        )
    if "nkeys" in lowered or "credentials" in lowered:
        return HmsBusError(
            f"cannot log in to NATS at {shown}: the credentials cannot be used ({text}); "
            f"{sec.what_to_check()}"
        )
    if isinstance(exc, ssl.SSLError) or "ssl" in lowered or "certificate" in lowered:
        return HmsBusError(
            f"TLS with NATS at {shown} failed ({text}): give ca= the CA file that signed "
            f"the server's certificate (and cert=/key= if the server checks clients)"
        )
    if "secure connection" in lowered:
        return HmsBusError(
            f"NATS at {shown} and this client disagree on TLS ({text}): use tls:// and "
            f"ca= for a server that requires TLS"
        )
    return None


def _server_words(text: str) -> str:
    """``Authorization Violation`` out of ``Error: nats: 'Authorization Violation'``."""
    inner = text.rpartition("nats: ")[2].strip().strip("'")
    if "AuthorizationError" in text and not inner.strip():
        return "Authorization Violation"
    return inner or text
