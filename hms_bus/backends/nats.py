"""The NATS JetStream backend: the same bus calls on a real distributed engine.

``hms_bus.use("nats://127.0.0.1:4222")`` (or ``HMS_BUS_URL``) puts the default
bus here. How the bus maps onto JetStream:

* Topic ``payments.sent`` is subject ``hms.payments.sent``; one stream
  (``HMS_BUS``) captures ``hms.>``. Its ``max_age`` is the retention window
  and ``max_msgs``/``max_bytes`` bound it, oldest out first.
* The payload is JSON ``{"id", "time", "src", "data"}``, so a replayed event
  has the publisher's id, time and source. ``Nats-Msg-Id`` is the event id
  plus this connection's session, so a re-send is stored once while two runs
  of a seeded simulation (same event ids) do not swallow each other.
* ``publish`` only appends to a queue (about a microsecond). A sender task
  on a private event loop makes asynchronous publishes whose acks come to
  one inbox of ours (so error replies are seen, unlike nats-py's
  ``publish_async`` futures, which never resolve on some server errors),
  puts its own timeout on every ack, re-sends with the same id with
  back-off and gives up after ``max_attempts``; :meth:`NatsBackend.flush`
  waits for every ack and raises if some event could not be stored.
* Subscriptions share one feed of the stream (a consumer from the sequence
  where the first one started). A worker thread calls subscribers one at a
  time in stream order, so a callback may publish. A new subscription reads
  the kept events up to the feed's position, then continues live: each
  stream sequence reaches it once.

nats-py is asyncio-only; its loop runs in a daemon thread of its own, so the
backend works the same in a script and in a Jupyter kernel whose main thread
already runs a loop.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import itertools
import json
import queue
import secrets
import ssl
import threading
import time
import weakref
from collections import deque
from datetime import timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

import nats
import nats.errors
import nats.js.errors
from nats.js.api import DiscardPolicy, StorageType, StreamConfig

from ..errors import HmsBusError
from ..event import Event, freeze
from ..redact import kit_logger, register_url
from ..retention import DEFAULT_MAX_RETAINED, DEFAULT_WINDOW_S
from ..topics import TopicIndex
from ._nats_feed import Feed
from .base import ALL, NEW, Backend
from .nats_auth import OPTIONS as SECURITY_OPTIONS
from .nats_auth import connect_error, is_auth_error, require_tls, security_from

if TYPE_CHECKING:
    from ..bus import Subscription

__all__ = ["NatsBackend"]

log = kit_logger("hms_bus.nats")

HOW_TO_START = (
    "start one with `make nats` or `python -m hms_bus server`, or set HMS_BUS_URL "
    "to a running server"
)
DUPLICATE_WINDOW_S = 120.0
"""How long the server remembers message ids to drop re-sends, in seconds."""

MAX_INFLIGHT = 4000
"""Publishes awaiting their ack at once (nats-py's own limit)."""

CLOCK_SKEW_S = 300.0
"""Slack when a time is turned into a start point on the server's clock, in seconds."""


class _Pending:
    """One event on its way to the stream: sent and awaiting its ack, or due for a re-send."""

    __slots__ = (
        "event",
        "subject",
        "payload",
        "headers",
        "reply",
        "attempts",
        "due",
        "waiting",
        "epoch",
    )

    def __init__(self, event: Event, subject: str, payload: bytes, headers: dict, reply: str):
        self.event = event
        self.subject = subject
        self.payload = payload
        self.headers = headers
        self.reply = reply
        self.attempts = 0
        self.due = 0.0
        self.waiting = False  # sent, ack not yet in
        self.epoch = 0


class NatsBackend(Backend):
    """Stores events in a JetStream stream and delivers them from it.

    :param url: ``nats://host:port``; several comma-separated for a cluster.
        Query parameters set the keywords below, e.g.
        ``nats://a:4222,nats://b:4222?replicas=3``.
    :param stream: the stream's name.
    :param prefix: the subject prefix in front of every topic.
    :param retention: the stream's ``max_age``, seconds or a timedelta.
    :param max_retained: the stream's ``max_msgs``.
    :param max_bytes: the stream's ``max_bytes``.
    :param replicas: copies of the stream (3 on a 3-node cluster).
    :param connect_timeout: seconds to reach the server before giving up.
    :param ack_timeout: seconds to wait for one ack before re-sending.
    :param max_attempts: sends per event (while connected) before it is
        reported as lost by :meth:`flush`.
    :param max_buffered: events held while the server is away; beyond this
        ``publish`` raises.
    :param outage_timeout: how long :meth:`flush` waits for an absent server.

    Credentials and TLS (``user``, ``password``, ``token``, ``nkey``,
    ``nkey_seed``, ``creds``, ``ca``, ``cert``, ``key``, ``tls``) come as
    keywords, URL options or environment variables; see
    :mod:`hms_bus.backends.nats_auth`. ``url`` keeps the URL with its secrets
    masked, for messages and ``repr``.
    """

    def __init__(
        self,
        url: str,
        *,
        stream: str = "HMS_BUS",
        prefix: str = "hms",
        retention: float | timedelta = DEFAULT_WINDOW_S,
        max_retained: int | None = DEFAULT_MAX_RETAINED,
        max_bytes: int = 1 << 30,
        replicas: int = 1,
        connect_timeout: float = 3.0,
        ack_timeout: float = 5.0,
        max_attempts: int = 12,
        max_buffered: int = 1_000_000,
        outage_timeout: float = 30.0,
        **security: Any,
    ) -> None:
        if not isinstance(url, str):
            raise TypeError(f"url must be a str such as 'nats://127.0.0.1:4222', got {url!r}")
        unknown = sorted(set(security) - set(SECURITY_OPTIONS))
        if unknown:
            raise TypeError(f"NatsBackend() got unexpected keyword argument(s) {unknown}")
        raw_url, url = url, register_url(url)  # from here on, only the masked form is shown
        base, _, query = raw_url.partition("?")
        opts: dict[str, Any] = dict(parse_qsl(query))
        servers = [s.strip() for s in base.split(",") if s.strip()]
        self._security = security_from(servers, opts, security, url=raw_url)
        stream = opts.pop("stream", stream)
        prefix = opts.pop("prefix", prefix)
        try:
            retention = float(opts.pop("retention", _seconds(retention)))
            replicas = int(opts.pop("replicas", replicas))
            max_bytes = int(opts.pop("max_bytes", max_bytes))
        except ValueError as exc:
            raise ValueError(f"bad query parameter in {url!r}: {exc}") from None
        if opts:
            raise ValueError(
                f"unknown parameter(s) {sorted(opts)} in {url!r}; "
                f"known: stream, prefix, retention, replicas, max_bytes, "
                f"{', '.join(SECURITY_OPTIONS)}"
            )
        self.servers = self._security.servers
        bad = [s for s in self.servers if not s.startswith(("nats://", "tls://"))]
        if bad or not self.servers:
            raise ValueError(f"bad NATS URL {url!r}; use e.g. 'nats://127.0.0.1:4222'")
        if retention <= 0:
            raise ValueError(f"retention must be positive seconds, got {retention!r}")
        if not 1 <= replicas <= 5:
            raise ValueError(f"replicas must be 1 to 5, got {replicas!r}")
        if not stream.replace("_", "").replace("-", "").isalnum():
            raise ValueError(f"stream name {stream!r} must be letters, digits, '-' and '_'")
        self.url = url
        self.stream = stream
        self.prefix = prefix
        self._cut = len(prefix) + 1
        self.ack_timeout = ack_timeout
        self.max_attempts = max_attempts
        self.max_buffered = max_buffered
        self.outage_timeout = outage_timeout
        self._stream_config = StreamConfig(
            name=stream,
            subjects=[f"{prefix}.>"],
            max_age=retention,
            max_msgs=max_retained if max_retained is not None else -1,
            max_bytes=max_bytes,
            discard=DiscardPolicy.OLD,
            storage=StorageType.FILE,
            num_replicas=replicas,
            duplicate_window=DUPLICATE_WINDOW_S,
        )
        self._session = secrets.token_hex(4)
        self._outbox: deque[Event] = deque()
        self._inflight: dict[str, _Pending] = {}
        self._failed: list[tuple[str, str]] = []
        self._awake = True
        self._epoch = 0
        self._down_since: float | None = None
        self._last_error = ""
        self._closed = False
        self.counts = {"acked": 0, "resent": 0, "timeouts": 0, "duplicates": 0, "failed": 0}
        self._acked_seq = 0  # the highest stream sequence acked for this bus
        # Delivery (see subscribe): all touched under the bus lock or by the worker.
        self._index: TopicIndex[Subscription] = TopicIndex()
        self._feed: Feed | None = None
        self._looked_up = 0  # stream seq of the last live event matched to subscribers
        self._done_seq = 0  # ... and of the last one whose callbacks have returned
        self._catching_up: dict[Subscription, None] = {}
        self._skip_own: dict[Subscription, tuple[int, float]] = {}
        self._history_pending = 0
        self._recent: dict[str, None] = {}
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._worker: threading.Thread | None = None

        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="hms-bus-nats", daemon=True
        )
        self._thread.start()
        try:
            self._call(self._connect(connect_timeout), connect_timeout + 60)
        except BaseException:
            self._stop_loop()
            raise
        _open.add(self)

    # -- the private loop ----------------------------------------------------

    def _call(self, coro: Any, timeout: float | None) -> Any:
        if threading.current_thread() is self._thread:
            raise HmsBusError("a NATS backend call was made from its own event loop thread")
        fut = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return fut.result(timeout)
        except concurrent.futures.TimeoutError:
            if fut.done():
                raise  # the coroutine's own timeout
            fut.cancel()
            raise TimeoutError(f"NATS at {self.url} did not answer within {timeout} s") from None

    async def _connect(self, timeout: float) -> None:
        self._wake = asyncio.Event()
        self._refused = asyncio.Event()  # set by _on_error: no use retrying
        self._refusal: Exception | None = None
        await require_tls(self._security)
        connecting = asyncio.ensure_future(
            nats.connect(
                **self._security.connect_options(),
                error_cb=self._on_error,
                disconnected_cb=self._on_disconnect,
                reconnected_cb=self._on_reconnect,
                connect_timeout=max(1, int(timeout / 2)),
                reconnect_time_wait=0.25,
                max_reconnect_attempts=-1,
                name="hms_bus",
            )
        )
        refused = asyncio.ensure_future(self._refused.wait())
        try:
            await asyncio.wait(
                {connecting, refused}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            refused.cancel()
        if connecting.done() and connecting.exception() is None:
            self._nc = connecting.result()
        else:
            why: BaseException | str | None = self._refusal
            if not connecting.done():
                connecting.cancel()
                why = why or self._last_error or f"no answer within {timeout:g} s"
            else:
                why = why or connecting.exception()
            raise connect_error(self._security, self.url, why, timeout, HOW_TO_START)
        self._js = self._nc.jetstream()
        # Acks come back on our own inbox: an error reply (full stream, no
        # leader) is seen at once instead of only by error_cb (nats.py #985).
        self._ack_prefix = self._nc.new_inbox() + "."
        self._ack_cut = len(self._ack_prefix)
        self._tokens = itertools.count(1)
        await self._nc.subscribe(self._ack_prefix + "*", cb=self._on_ack, pending_msgs_limit=-1)
        try:
            await self._ensure_stream(timeout + 15)
        except BaseException:
            await self._nc.close()
            raise
        self._tasks = [
            asyncio.ensure_future(self._sender()),
            asyncio.ensure_future(self._supervise()),
        ]

    async def _ensure_stream(self, timeout: float) -> None:
        """Create or update the stream; a new cluster needs a few seconds to elect a leader."""
        cfg = self._stream_config
        deadline = time.monotonic() + timeout
        delay = 0.1
        while True:
            try:
                try:
                    await self._js.add_stream(cfg)
                except nats.js.errors.BadRequestError as exc:
                    if exc.err_code != 10058:  # exists with another config: update it
                        raise
                    await self._js.update_stream(cfg)
                return
            except nats.js.errors.BadRequestError as exc:
                raise HmsBusError(
                    f"NATS at {self.url} refused stream {cfg.name!r} on "
                    f"{cfg.subjects[0]!r}: {exc.description} (code {exc.err_code}); "
                    f"pick another stream/prefix with ?stream=...&prefix=..."
                ) from None
            except Exception as exc:
                if time.monotonic() > deadline:
                    raise HmsBusError(
                        f"NATS at {self.url} did not set up stream {cfg.name!r} within "
                        f"{timeout:g} s ({type(exc).__name__}: {exc}); is JetStream on "
                        f"(nats-server -js)? {HOW_TO_START}"
                    ) from None
                await asyncio.sleep(delay)
                delay = min(delay * 2, 1.0)

    async def _on_error(self, exc: Exception) -> None:
        text = f"{type(exc).__name__}: {exc}"
        if is_auth_error(text) or isinstance(exc, ssl.SSLError):
            self._refusal = self._refusal or exc  # later errors (a reset) say less
            self._refused.set()
        if text != self._last_error:
            log.warning("NATS at %s: %s", self.url, text)
        self._last_error = text

    async def _on_disconnect(self) -> None:
        self._epoch += 1
        if self._down_since is None and not self._closed:
            self._down_since = time.monotonic()
            log.warning("lost NATS at %s; buffering publishes until it is back", self.url)

    async def _on_reconnect(self) -> None:
        down = time.monotonic() - (self._down_since or time.monotonic())
        self._down_since = None
        log.warning("NATS at %s is back after %.1f s; re-sending unacked events", self.url, down)
        now = self._loop.time()
        for p in self._inflight.values():
            if p.epoch != self._epoch:
                p.due = now  # its ack may be lost with the old connection
        if self._feed is not None:
            asyncio.ensure_future(self._feed.reset("reconnected"))
        self._wake.set()

    # -- publishing ----------------------------------------------------------

    def publish(self, event: Event) -> bool:
        outbox = self._outbox
        if len(outbox) >= self.max_buffered:
            raise HmsBusError(
                f"{len(outbox)} events are waiting for NATS at {self.url} "
                f"({self._state()}); not taking more. {HOW_TO_START}"
            )
        outbox.append(event)
        if not self._awake:
            self._awake = True
            self._loop.call_soon_threadsafe(self._wake.set)
        return False

    def _encode(self, ev: Event) -> _Pending:
        body = {"id": ev.id, "time": ev.time, "src": ev.src, "data": ev.data}
        payload = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
        token = str(next(self._tokens))
        headers = {"Nats-Msg-Id": f"{ev.id}.{self._session}"}
        return _Pending(ev, f"{self.prefix}.{ev.topic}", payload, headers, token)

    async def _sender(self) -> None:
        outbox, inflight, nc = self._outbox, self._inflight, self._nc
        while True:
            self._awake = False
            self._wake.clear()
            if not (outbox and nc.is_connected and len(inflight) < MAX_INFLIGHT):
                await self._wake.wait()
                continue
            self._awake = True
            for _ in range(min(len(outbox), MAX_INFLIGHT - len(inflight), 512)):
                p = self._encode(outbox.popleft())
                inflight[p.reply] = p
                if not await self._send(p):
                    break

    async def _send(self, p: _Pending) -> bool:
        """Send ``p`` once, its ack to come to our inbox; False if that cannot be done now."""
        if not self._nc.is_connected:
            p.due = self._loop.time() + 0.25
            return False
        p.attempts += 1
        p.epoch = self._epoch
        p.due = self._loop.time() + self.ack_timeout
        try:
            await self._nc.publish(
                p.subject, p.payload, reply=self._ack_prefix + p.reply, headers=p.headers
            )
        except Exception as exc:  # the pending buffer is full while reconnecting, ...
            await self._on_error(exc)
            p.due = self._loop.time() + 0.25
            return False
        p.waiting = True
        return True

    async def _on_ack(self, msg: Any) -> None:
        p = self._inflight.get(msg.subject[self._ack_cut :])
        if p is None:
            return  # a late ack of an event already acked
        error = None
        if not msg.data:
            status = msg.headers.get("Status") if msg.headers else None
            error = "no responders: the stream has no leader" if status == "503" else status
        else:
            ack = json.loads(msg.data)
            error = ack.get("error")
        if error is None:
            del self._inflight[p.reply]
            counts = self.counts
            counts["acked"] += 1
            if ack.get("duplicate"):
                counts["duplicates"] += 1
            if ack["seq"] > self._acked_seq:
                self._acked_seq = ack["seq"]
            if len(self._inflight) < MAX_INFLIGHT // 2:
                self._wake.set()
            return
        # No stream leader while a cluster elects one, a full stream, ...
        p.waiting = False
        p.due = self._loop.time() + min(0.05 * 2**p.attempts, 2.0)
        self._last_error = error if isinstance(error, str) else json.dumps(error)

    async def _supervise(self) -> None:
        """Re-send what was not acked in time, with back-off; give up after max_attempts."""
        loop = self._loop
        while True:
            await asyncio.sleep(0.1)
            if not self._nc.is_connected:
                continue
            now = loop.time()
            for key, p in list(self._inflight.items()):
                if p.due > now or key not in self._inflight:
                    continue
                if p.waiting:
                    p.waiting = False  # a late ack still counts (same message id)
                    if p.epoch == self._epoch:
                        self.counts["timeouts"] += 1
                        p.due = now + min(0.05 * 2**p.attempts, 2.0)
                        continue
                    p.attempts -= 1  # cut off by a disconnect: not a real attempt
                if p.attempts >= self.max_attempts:
                    del self._inflight[key]
                    self.counts["failed"] += 1
                    self._failed.append((p.event.id, self._last_error or "no ack"))
                    log.error(
                        "event %s (%s) not stored on NATS at %s after %d attempts: %s",
                        p.event.id,
                        p.event.topic,
                        self.url,
                        p.attempts,
                        self._last_error,
                    )
                    continue
                self.counts["resent"] += 1
                if not await self._send(p):
                    break

    # -- subscribing ---------------------------------------------------------

    def subscribe(self, sub: Subscription, start: str | float) -> None:
        if self._feed is None:
            self._start_feed()
        if start != ALL:
            # Events published here before subscribing may still be on their way
            # to the stream; they arrive live and must obey the start point too.
            cutoff = float("inf") if start == NEW else float(start)
            self._skip_own[sub] = (self.bus.published, cutoff)
        if start != NEW:
            self._catching_up[sub] = None
            self._history_pending += 1
            since = None if start == ALL else float(start)
            upto = self._looked_up
            asyncio.run_coroutine_threadsafe(self._history(sub, since, upto), self._loop)
        sub._key = self._index.add(sub.pattern, sub)

    def _start_feed(self) -> None:
        """Start the shared feed just after the stream's last sequence (under the bus lock)."""
        info = self._call(self._stream_state(), 40)
        self._looked_up = self._done_seq = info.state.last_seq
        self._worker = threading.Thread(target=self._work, name="hms-bus-deliver", daemon=True)
        self._worker.start()
        feed = Feed(
            self._nc,
            self._js,
            self.stream,
            f"{self.prefix}.>",
            self._live,
            start_seq=info.state.last_seq + 1,
        )
        self._feed = feed
        self._call(feed.start(), 10)

    def _decode(self, msg: Any, sseq: int, ts_ns: int) -> Event:
        topic = msg.subject[self._cut :]
        try:
            body = json.loads(msg.data)
            _, idp, seq = body["id"].split("-")
            return Event(topic, freeze(body["data"]), body["src"], body["time"], int(seq), idp)
        except (ValueError, KeyError, TypeError, AttributeError):
            # Published by another NATS client: keep what it sent.
            try:
                data = freeze(json.loads(msg.data))
            except (ValueError, TypeError):
                data = msg.data.decode("utf-8", "replace")
            return Event(topic, data, "nats", ts_ns / 1e9, sseq, "nats")

    def _live(self, msg: Any, sseq: int, ts_ns: int, pending: int) -> None:
        key = msg.headers.get("Nats-Msg-Id") if msg.headers else None
        if key is not None:
            recent = self._recent
            if key in recent:
                return  # the same event stored twice (a re-send after the dedup window)
            recent[key] = None
            if len(recent) > 100_000:
                for old in list(recent)[:50_000]:
                    del recent[old]
        self._jobs.put((sseq, self._decode(msg, sseq, ts_ns)))

    async def _history(self, sub: Subscription, since: float | None, upto: int) -> None:
        try:
            events = [] if upto == 0 else await self._read(sub.pattern, since, None, None, upto)
        except Exception as exc:
            log.error("could not read kept events for %s: %r", sub.name, exc)
            self._last_error = f"history for {sub.name}: {exc!r}"
            events = []
        self._jobs.put((0, (sub, events)))

    async def _read(
        self, pattern: str, since: float | None, until: float | None, limit: int | None, upto: int
    ) -> list[Event]:
        """Events matching ``pattern`` with stream sequence <= ``upto``, filtered by event time."""
        out: list[Event] = []
        done = asyncio.get_running_loop().create_future()

        def finish() -> None:
            if not done.done():
                done.set_result(None)

        def take(msg: Any, sseq: int, ts_ns: int, pending: int) -> None:
            if done.done():
                return
            if sseq <= upto:
                ev = self._decode(msg, sseq, ts_ns)
                t = ev.time
                if (since is None or t >= since) and (until is None or t <= until):
                    out.append(ev)
            if sseq >= upto or pending == 0 or (limit is not None and len(out) >= limit):
                finish()

        start_time = None
        if since is not None and not getattr(self.bus.clock, "virtual", False):
            start_time = since - CLOCK_SKEW_S  # server time of a wall-clock event is later
        feed = Feed(
            self._nc,
            self._js,
            self.stream,
            f"{self.prefix}.{pattern}",
            take,
            start_time=start_time,
            on_empty=finish,
        )
        await feed.start()
        try:
            await done
        finally:
            await feed.close()
        return out[:limit] if limit is not None else out

    def _work(self) -> None:
        """The worker thread: calls subscribers, one event at a time, in stream order.

        While a new subscription waits for its kept events, live events are
        held back, so that every subscriber still sees one global order.
        """
        lock, jobs, failed = self.bus.lock, self._jobs, self.bus.subscriber_failed
        held: deque[tuple[int, Event]] = deque()
        idp = self.bus.id
        while True:
            job = held.popleft() if held and not self._catching_up else jobs.get()
            if job is None:
                return
            sseq, item = job
            if sseq == 0:  # the kept events of a new subscription
                sub, events = item
                for ev in events:
                    if sub.active:
                        _call(sub, ev, failed)
                with lock:
                    del self._catching_up[sub]
                    self._history_pending -= 1
                continue
            with lock:
                if self._catching_up:
                    held.append(job)
                    continue
                subs = self._index.lookup(item.topic)
                self._looked_up = sseq
            for sub in subs:
                if not sub.active:
                    continue
                skip = self._skip_own.get(sub)
                if skip and item.bus_id == idp and item.seq <= skip[0] and item.time < skip[1]:
                    continue  # published here before the subscription's start

                _call(sub, item, failed)
            self._done_seq = sseq

    def unsubscribe(self, sub: Subscription) -> None:
        self._index.remove(sub.pattern, sub._key)
        self._skip_own.pop(sub, None)

    # -- reading back ----------------------------------------------------------

    def replay(
        self,
        pattern: str,
        since: float | None,
        until: float | None,
        limit: int | None,
        now: float,
    ) -> list[Event]:
        if limit == 0:
            return []
        self._wait_acked(time.monotonic() + 60, 60)  # read your own writes
        info = self._call(self._stream_state(), 40)
        upto = info.state.last_seq
        if upto == 0 or info.state.messages == 0:
            return []
        return self._call(self._read(pattern, since, until, limit, upto), 120)

    # -- housekeeping ----------------------------------------------------------

    def flush(self, timeout: float | None = None) -> None:
        """Wait until every event is acked and, unless called from a callback, delivered.

        Raises :class:`HmsBusError` for events that could not be stored, or when
        the server has been away longer than ``outage_timeout``; ``TimeoutError``
        if ``timeout`` passes first.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        in_callback = threading.current_thread() is self._worker
        while True:
            published = self.bus.published
            self._wait_acked(deadline, timeout)
            if self._failed:
                failed, self._failed = self._failed, []
                ids = ", ".join(i for i, _ in failed[:3])
                raise HmsBusError(
                    f"{len(failed)} event(s) could not be stored on NATS at {self.url} after "
                    f"{self.max_attempts} attempts (first: {ids}); last error: {failed[-1][1]}"
                )
            if in_callback or self._feed is None:
                return
            target = self._acked_seq
            while self._done_seq < target or self._history_pending:
                self._check_deadline(deadline, timeout, "delivered")
                time.sleep(0.002)
            if published == self.bus.published:
                return

    def _wait_acked(self, deadline: float | None, timeout: float | None) -> None:
        last, stuck = self.counts["acked"], time.monotonic()
        while self._outbox or self._inflight:
            self._check_deadline(deadline, timeout, "acknowledged")
            down = self._down_since
            if (
                deadline is None
                and down is not None
                and time.monotonic() - down > self.outage_timeout
            ):
                raise HmsBusError(
                    f"NATS at {self.url} has been unreachable for "
                    f"{time.monotonic() - down:.0f} s; {len(self._outbox) + len(self._inflight)} "
                    f"events are buffered and will be sent when it is back. {HOW_TO_START}"
                )
            if self.counts["acked"] != last:
                last, stuck = self.counts["acked"], time.monotonic()
            elif down is None and time.monotonic() - stuck > self.outage_timeout * 4:
                raise HmsBusError(
                    f"no ack from NATS at {self.url} for {self.outage_timeout * 4:.0f} s "
                    f"({self._state()})"
                )
            time.sleep(0.002)

    def _check_deadline(self, deadline: float | None, timeout: float | None, what: str) -> None:
        if deadline is not None and time.monotonic() > deadline:
            raise TimeoutError(
                f"flush() timed out after {timeout} s: {len(self._outbox)} events queued and "
                f"{len(self._inflight)} awaiting acks, not yet {what} ({self._state()})"
            )

    def _state(self) -> str:
        if self._closed:
            return "closed"
        if self._down_since is not None:
            return f"disconnected for {time.monotonic() - self._down_since:.1f} s"
        return "connected"

    def status(self) -> dict:
        return {
            "url": self.url,
            "stream": self.stream,
            "state": self._state(),
            "buffered": len(self._outbox),
            "unacked": len(self._inflight),
            **self.counts,
            "subscriptions": len(self._index),
            "delivered_seq": self._done_seq,
            "feed_resets": self._feed.resets if self._feed else 0,
            "last_error": self._last_error,
        }

    def stream_info(self) -> Any:
        """The server's view of the stream (``state.messages``, ``cluster.leader``, ...)."""
        return self._call(self._stream_state(), 40)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        _open.discard(self)
        if self._worker is not None:
            self._jobs.put(None)
        try:
            self._call(self._shutdown(), 10)
        except Exception as exc:
            log.warning("closing NATS connection to %s: %r", self.url, exc)
        self._stop_loop()
        if self._worker is not None and self._worker is not threading.current_thread():
            self._worker.join(5)

    async def _shutdown(self) -> None:
        for task in self._tasks:
            task.cancel()
        if self._feed is not None:
            await self._feed.close()
        await self._nc.close()
        others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in others:
            task.cancel()
        await asyncio.wait(others, timeout=2) if others else None

    async def _stream_state(self) -> Any:
        """Stream info, retried while a cluster elects a new leader."""
        deadline = time.monotonic() + 30
        delay = 0.1
        while True:
            try:
                return await self._js.stream_info(self.stream)
            except nats.js.errors.NotFoundError:
                raise HmsBusError(
                    f"stream {self.stream!r} is gone from NATS at {self.url}; "
                    f"connect again to re-create it"
                ) from None
            except (asyncio.TimeoutError, nats.errors.Error) as exc:
                if time.monotonic() > deadline:
                    raise HmsBusError(
                        f"NATS at {self.url} gave no info on stream {self.stream!r} "
                        f"for 30 s: {type(exc).__name__}: {exc}"
                    ) from None
                await asyncio.sleep(delay)
                delay = min(delay * 2, 1.0)

    def _stop_loop(self) -> None:
        loop = self._loop

        def stop() -> None:
            for task in asyncio.all_tasks(loop):
                task.cancel()
            loop.call_soon(loop.stop)  # after the cancelled tasks had their turn

        loop.call_soon_threadsafe(stop)
        self._thread.join(5)
        if not self._thread.is_alive():
            loop.close()

    def __repr__(self) -> str:
        return f"<NatsBackend {self.url} stream={self.stream} {self._state()}>"


def _call(sub: Subscription, ev: Event, failed: Any) -> None:
    try:
        sub.fn(ev)
    except Exception as exc:
        failed(sub, ev, exc)


def _seconds(value: float | timedelta) -> float:
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


_open: weakref.WeakSet[NatsBackend] = weakref.WeakSet()


@atexit.register
def _flush_at_exit() -> None:
    """A script that publishes and exits still gets its events stored."""
    for backend in list(_open):
        try:
            backend.flush(10)
        except Exception as exc:
            log.error("events not stored on NATS at %s at exit: %s", backend.url, exc)
        backend.close()
