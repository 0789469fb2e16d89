"""The bus: ``publish(topic, data)`` and ``subscribe(pattern, fn)``.

A :class:`Bus` checks what it is given, turns it into an :class:`Event`
(frozen data, bus-clock time, a unique id) and hands it to its backend, which
stores and carries it; the bus's dispatcher (:mod:`hms_bus.dispatch`) calls
the subscribers, by the same rules on every backend. The module-level
functions act on a default bus, so the chapter's two-line demo works as
written.

Delivery semantics, the same on every backend:

* **Publish first, subscribe later works.** A new subscription first receives
  the kept (retained) events that match, oldest first, then live ones; each
  event reaches a subscription exactly once. Pass ``deliver="new"`` for live
  events only, or a time up to now (datetime, ISO text, epoch seconds, or a
  timedelta meaning "that long ago") to start there.
* Subscribers are called one at a time, in publish order; for one event, in
  the order they subscribed. An event published inside a callback is
  delivered after the current event has reached every subscriber.
* A subscriber that raises does not stop the others. Its error is logged on
  the ``hms_bus`` logger and published as ``bus.subscriber_error`` (unless the
  failing event was itself one, which would loop).
"""

from __future__ import annotations

import math
import os
import random
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from numbers import Real
from typing import Any

from .backends.base import ALL, NEW, Backend
from .clock import MAX_TIME, MIN_TIME, Clock, VirtualClock, WallClock, to_epoch
from .dispatch import dispatcher_for
from .errors import HmsBusError
from .event import Event, format_ts, freeze
from .redact import kit_logger, redact_url, register_url, scrub
from .retention import DEFAULT_MAX_RETAINED, DEFAULT_WINDOW_S
from .topics import validate_pattern, validate_topic

__all__ = [
    "Bus",
    "Subscription",
    "get_bus",
    "use",
    "publish",
    "subscribe",
    "unsubscribe",
    "replay",
    "collect",
]


def _log_error(message: str, *args: object) -> None:
    """Log on the ``hms_bus`` logger (secrets scrubbed); ``logging`` loads on the first
    error only."""
    kit_logger("hms_bus").error(message, *args)


_new_event = Event.create

SUBSCRIBER_ERROR_TOPIC = "bus.subscriber_error"
"""Where the bus reports a subscriber that raised."""

Callback = Callable[[Event], Any]
When = datetime | str | float | timedelta


def _default_src() -> str:
    main = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    if main in ("", "-", "-c", "-m") or main.startswith("ipykernel"):
        return "python"
    return os.path.splitext(main)[0] or "python"


class Subscription:
    """A subscriber's registration; unsubscribe with it, or use it in ``with``.

    ``active`` tells whether events still reach ``fn``; ``errors`` counts the
    calls of ``fn`` that raised.
    """

    __slots__ = ("pattern", "fn", "name", "bus", "active", "errors", "__weakref__")

    def __init__(self, bus: Bus, pattern: str, fn: Callback, name: str) -> None:
        self.bus = bus
        self.pattern = pattern
        self.fn = fn
        self.name = name
        self.active = True
        self.errors = 0

    def unsubscribe(self) -> None:
        """Stop receiving events; calling it twice is harmless."""
        self.bus.unsubscribe(self)

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.unsubscribe()

    def __repr__(self) -> str:
        state = "active" if self.active else "ended"
        return f"<Subscription {self.pattern!r} -> {self.name} ({state})>"


class _Default:
    """Stands for an argument left out, where None has a meaning of its own."""

    def __repr__(self) -> str:
        return "default"


_DEFAULT: Any = _Default()


class Bus:
    """An event bus: publish, subscribe, replay.

    :param backend: what stores and carries events; by default a
        :class:`~hms_bus.backends.memory.MemoryBackend`.
    :param clock: where "now" comes from; :class:`~hms_bus.WallClock` unless told.
    :param retention: how long the default in-memory backend keeps events
        (seconds or a timedelta; ``math.inf`` for no time limit), 24 h unless
        told.
    :param max_retained: how many events the default in-memory backend keeps
        at most (None for no count limit), a million unless told.
        ``retention`` and ``max_retained`` configure the default backend only:
        with ``backend=`` they raise ``ValueError``; set them on the backend.
    :param src: the default ``src`` of events published here.
    :param seed: makes event ids reproducible. Under a virtual clock the seed
        is 0 unless told, so a simulation gives the same ids every run.
    """

    def __init__(
        self,
        backend: Backend | None = None,
        *,
        clock: Clock | None = None,
        retention: float | timedelta = _DEFAULT,
        max_retained: int | None = _DEFAULT,
        src: str | None = None,
        seed: int | None = None,
    ) -> None:
        if backend is None:
            from .backends.memory import MemoryBackend

            backend = MemoryBackend(
                DEFAULT_WINDOW_S if retention is _DEFAULT else retention,
                DEFAULT_MAX_RETAINED if max_retained is _DEFAULT else max_retained,
            )
        elif not isinstance(backend, Backend):
            raise TypeError(f"backend must be a hms_bus Backend, got {backend!r}")
        else:
            given = [
                f"{name}={value!r}"
                for name, value in (("retention", retention), ("max_retained", max_retained))
                if value is not _DEFAULT
            ]
            if given:
                raise ValueError(
                    f"Bus(backend=..., {', '.join(given)}): retention and max_retained "
                    f"configure the default in-memory backend only; set them on the "
                    f"backend you pass, e.g. MemoryBackend(retention=3600, "
                    f"max_retained=10_000) or nats_backend(url, retention=3600)"
                )
        self._now = _clock_reader(clock)
        self.clock = clock if clock is not None else WallClock()
        self.src = _check_src(src) if src is not None else _default_src()
        if seed is None and getattr(clock, "virtual", False):
            seed = 0
        rng = random.Random(seed) if seed is not None else random.SystemRandom()
        self._idp = f"{rng.getrandbits(32):08x}"
        self.lock = threading.Lock()
        """Orders publishes: held while an event gets its sequence and time
        and is handed to the backend. The dispatcher and backends take it too."""
        self._seq = 0
        self._last = float("-inf")
        self._closed = False
        self.backend = backend
        backend.attach(self)
        self._dispatch = dispatcher_for(self, backend)

    # -- publishing ---------------------------------------------------------

    def publish(self, topic: str, data: Any = None, *, src: str | None = None) -> Event:
        """Publish ``data`` on ``topic`` and return the :class:`Event`.

        ``data`` must be JSON-like (see :func:`hms_bus.event.freeze`); it is
        copied and frozen, so later changes to your object do not alter the
        event. Bad input raises before anything is stored or delivered.
        """
        topic = validate_topic(topic)
        data = freeze(data)
        src = self.src if src is None else _check_src(src)
        if self._closed:
            raise HmsBusError(self._closed_message("publish"))
        dispatch = self._dispatch
        with self.lock:
            t = self._now()
            if t < self._last:
                t = self._last  # time on one bus never runs backwards
            seq = self._seq + 1
            ev = _new_event(topic, data, src, t, seq, self._idp)
            due = dispatch.admit(ev)  # the backend stores it; who gets it now, if anyone
            # Counted once the backend took it: a refusal leaves no gap in seq.
            self._seq = seq
            self._last = t
        if due is not None:
            dispatch.deliver(ev, due)
        return ev

    # -- subscribing --------------------------------------------------------

    def subscribe(
        self,
        pattern: str,
        fn: Callback,
        *,
        deliver: str | When = ALL,
        name: str | None = None,
    ) -> Subscription:
        """Call ``fn(event)`` for each event whose topic matches ``pattern``.

        :param deliver: ``"all"`` (default): kept events first, then live ones;
            ``"new"``: live events only; or a time up to now to start from (a
            future time raises ``ValueError``).
        :param name: how errors and ``repr`` name this subscriber; the
            function's name unless told.
        """
        pattern = validate_pattern(pattern)
        if not callable(fn):
            raise TypeError(
                f"fn must be callable, such as a function taking one event, "
                f"got {fn!r} of type {type(fn).__name__}"
            )
        start = self._start(deliver)
        if name is None:
            name = str(getattr(fn, "__qualname__", None) or repr(fn))
        elif not isinstance(name, str):
            raise TypeError(f"name must be a str such as 'dashboard', got {name!r}")
        sub = Subscription(self, pattern, fn, name)
        if self._closed:
            raise HmsBusError(self._closed_message("subscribe"))
        self._dispatch.subscribe(sub, start)
        return sub

    def _start(self, deliver: str | When) -> str | float:
        now = self._now()
        if isinstance(deliver, str):
            if deliver in (ALL, NEW):
                return deliver
            try:
                start = to_epoch(deliver, what="deliver")
            except ValueError as exc:
                raise ValueError(
                    f"deliver={deliver!r} is neither 'all', 'new' nor a time ({exc}); "
                    f"use 'all', 'new', or e.g. '2021-08-29T12:00:00Z'"
                ) from None
        else:
            start = to_epoch(deliver, now=now, what="deliver")
        if start > now:
            raise ValueError(
                f"deliver={deliver!r} is in the future ({format_ts(start)}, and the bus "
                f"clock says {format_ts(now)}); give a time up to now, or "
                f"deliver='new' for live events only"
            )
        return start

    def unsubscribe(self, sub: Subscription) -> None:
        """End ``sub``; events published later do not reach it (idempotent)."""
        _check_subscription(sub)
        if sub.bus is not self:
            raise ValueError(f"{sub!r} belongs to another bus")
        with self.lock:
            if sub.active:
                sub.active = False
                self._dispatch.unsubscribe(sub)

    @contextmanager
    def collect(self, pattern: str = ">", *, deliver: str | When = NEW) -> Iterator[list[Event]]:
        """Collect matching events into a list while the ``with`` block runs.

        Handy in tests and notebooks::

            with bus.collect("alerts.*") as alerts:
                ...
            assert len(alerts) == 1
        """
        got: list[Event] = []
        with self.subscribe(pattern, got.append, deliver=deliver, name=f"collect({pattern!r})"):
            yield got
            self.flush()

    # -- reading back -------------------------------------------------------

    def replay(
        self,
        pattern: str = ">",
        *,
        since: When | None = None,
        until: When | None = None,
        limit: int | None = None,
    ) -> list[Event]:
        """Kept events matching ``pattern``, oldest first.

        ``since`` and ``until`` (inclusive) take a datetime, ISO text, epoch
        seconds, or a timedelta meaning "that long ago"; leave them out (None)
        for no bound. ``limit`` keeps the first ``limit`` events of the range
        (take ``[-10:]`` for the last ten).
        """
        pattern = validate_pattern(pattern)
        now = self._now()
        lo = None if since is None else to_epoch(since, now=now, what="since")
        hi = None if until is None else to_epoch(until, now=now, what="until")
        if lo is not None and hi is not None and lo > hi:
            raise ValueError(
                f"since= ({format_ts(lo)}) is after until= ({format_ts(hi)}), so no "
                f"event could match; swap them"
            )
        if limit is not None and (
            isinstance(limit, bool) or not isinstance(limit, int) or limit < 0
        ):
            raise ValueError(f"limit must be a non-negative int or None, got {limit!r}")
        if limit == 0:
            return []
        return self.backend.read(pattern, lo, hi, limit)

    # -- housekeeping -------------------------------------------------------

    def flush(self, timeout: float | None = None) -> None:
        """Wait until every event published so far is stored and delivered.

        Events that subscribers publish meanwhile are waited for too; events
        other threads publish after the call are not (NATS and Kafka still wait
        until their client's send queue is empty, as their own flush does). On
        a closed bus it returns at once.

        :param timeout: seconds to wait at most (then ``TimeoutError``); None
            waits as long as it takes.
        """
        if timeout is not None and (
            isinstance(timeout, bool)
            or not isinstance(timeout, Real)
            or not 0 <= timeout < math.inf
        ):
            raise ValueError(
                f"flush(timeout=...) takes seconds as a finite number >= 0, or None to "
                f"wait as long as it takes; got {timeout!r}"
            )
        if self._closed:
            return  # close() flushed; nothing more can arrive or be delivered
        self._dispatch.flush(timeout)

    def close(self) -> None:
        """Flush and release the backend; later calls raise :class:`HmsBusError`."""
        if not self._closed:
            self._dispatch.closing()
            try:
                self._dispatch.flush()
            finally:
                self._closed = True
                try:
                    self._dispatch.close()
                finally:
                    self.backend.close()

    def status(self) -> dict:
        """Counters: ``published``, the backend's (kept events, connection...),
        and the dispatcher's ``subscriptions`` and ``queued``.

        Secrets never show: the URL is redacted (``nats://alice:***@host``) and
        every text value scrubbed (see :mod:`hms_bus.redact`).
        """
        status = {"published": self._seq, **self.backend.status(), **self._dispatch.status()}
        for key, value in status.items():
            if isinstance(value, str):
                status[key] = redact_url(value) if key == "url" else scrub(value)
        return status

    @property
    def id(self) -> str:
        """This bus's id: the middle part of its event ids (``Event.bus_id``)."""
        return self._idp

    @property
    def published(self) -> int:
        """How many events were published here (the last event's ``seq``)."""
        return self._seq

    def __enter__(self) -> Bus:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        url = redact_url(self.backend.url)
        return f"<Bus {url} clock={self.clock!r} published={self._seq}>"

    def _closed_message(self, what: str) -> str:
        return (
            f"Cannot {what}: this bus has been closed. Create a new Bus() or "
            f"call hms_bus.use(...) for a new default bus."
        )

    def subscriber_failed(self, sub: Subscription, ev: Event, exc: BaseException) -> None:
        """Record that ``sub`` raised ``exc`` on ``ev``: count it, log it and
        publish it as ``bus.subscriber_error``. The dispatcher calls this; it
        never raises, so one subscriber's failure cannot stop delivery to the rest."""
        sub.errors += 1
        error = scrub(_describe(exc))  # an exception may quote a URL or a token
        name = scrub(sub.name)
        _log_error("subscriber %s failed on %s (%s): %s", name, ev.id, ev.topic, error)
        if ev.topic == SUBSCRIBER_ERROR_TOPIC:
            return  # reporting this one would loop
        try:
            self.publish(
                SUBSCRIBER_ERROR_TOPIC,
                {
                    "event_id": ev.id,
                    "topic": ev.topic,
                    "subscriber": name,
                    "pattern": sub.pattern,
                    "error": error,
                },
                src="hms-bus",
            )
        except Exception as report:  # e.g. the bus was closed meanwhile
            _log_error(
                "could not publish %s for %s: %s", SUBSCRIBER_ERROR_TOPIC, ev.id, _describe(report)
            )


def _check_src(src: object) -> str:
    if not isinstance(src, str) or not src.strip():
        raise TypeError(f"src must be a non-empty str such as 'hms-ach', got {src!r}")
    return src


def _check_subscription(sub: object) -> None:
    if not isinstance(sub, Subscription):
        raise TypeError(
            f"unsubscribe() takes the Subscription that subscribe() returned, got {sub!r}"
        )


def _describe(exc: BaseException) -> str:
    """``"Type: message"`` for an exception, even one whose ``str()`` raises."""
    try:
        text = str(exc)
    except Exception as inner:
        text = f"<str() of this exception raised {type(inner).__name__}>"
    return f"{type(exc).__name__}: {text}"


def _clock_reader(clock: object) -> Callable[[], float]:
    """The function a bus calls for "now": checked once here, and on every
    call for clocks other than the kit's own."""
    if clock is None or type(clock) is WallClock:
        return time.time  # what WallClock.now does, one frame less per publish
    if isinstance(clock, type):
        name = clock.__name__
        raise TypeError(
            f"clock must be a clock object, got the class {name}; create one, e.g. clock={name}()"
        )
    now = getattr(clock, "now", None)
    if not callable(now):
        raise TypeError(f"clock must have a now() method, got {clock!r}")
    if type(clock) is VirtualClock:
        return now  # it refuses bad times itself

    def checked() -> float:
        t = now()
        if not isinstance(t, Real) or isinstance(t, bool) or not (MIN_TIME <= t <= MAX_TIME):
            raise ValueError(
                f"clock {clock!r} returned {t!r} from now(); a clock must return epoch "
                f"seconds as a finite number between {MIN_TIME} and {MAX_TIME} "
                f"(years 1 to 9999)"
            )
        return float(t)

    checked()
    return checked


# -- the default bus ----------------------------------------------------------

_default: Bus | None = None
_default_lock = threading.Lock()


def get_bus() -> Bus:
    """The default bus, created on first use.

    It is in-memory unless ``HMS_BUS_URL`` names another backend.
    """
    global _default
    bus = _default
    if bus is None:
        with _default_lock:
            if _default is None:
                _default = _from_target(os.environ.get("HMS_BUS_URL") or "memory://")
            bus = _default
    return bus


def use(target: Bus | str | None = None, **kwargs: Any) -> Bus:
    """Make ``target`` the default bus and return it.

    ``target`` is a :class:`Bus`, a URL (``"memory://"``, or
    ``"nats://host:4222"`` / ``"kafka://host:9092"`` once that backend is
    installed), or None for a fresh in-memory bus. Keyword arguments go to
    :class:`Bus`; with a NATS or Kafka URL, ``retention`` and ``max_retained``
    configure its storage (as ``?retention=`` and ``?max_retained=`` would);
    with a NATS URL ``user``, ``password``, ``token``, ``nkey``, ``nkey_seed``,
    ``creds``, ``ca``, ``cert``, ``key`` and ``tls`` log it in, and with a
    Kafka URL ``conf`` holds librdkafka settings (``sasl.password``...). Any
    other keyword the bus does not take goes to the backend as its URL option
    of that name would (``prefix="team"``, ``stream="OPS"``), and the backend
    names the ones it does not know. The previous default bus is left open:
    close it yourself if you own it.
    """
    global _default
    if isinstance(target, Bus):
        if kwargs:
            raise TypeError(
                f"use() got a Bus and keyword arguments ({', '.join(kwargs)}); keyword "
                f"arguments are for making a new bus: pass a URL or None with them"
            )
        bus = target
    else:
        bus = _from_target(target or "memory://", **kwargs)
    with _default_lock:
        _default = bus
    return bus


_STORAGE_OPTIONS = ("retention", "max_retained")
"""Keyword arguments of :func:`use` that the bus takes for memory, and that a URL's
backend takes instead (every other keyword the bus does not know goes there too)."""


def _from_target(url: object, **kwargs: Any) -> Bus:
    if not isinstance(url, str):
        raise TypeError(f"use() takes a Bus or a URL such as 'memory://', got {url!r}")
    if url == "memory://":
        return Bus(**kwargs)
    shown = register_url(url)  # from here on, scrub() and the logs mask its secrets
    if url.startswith(("nats://", "tls://", "kafka://")):
        from .backends import kafka_backend, nats_backend

        kafka = url.startswith("kafka://")
        make = kafka_backend if kafka else nats_backend
        import inspect

        # Keywords that are not the bus's go to the backend (prefix=, stream=, conf=,
        # password=...), which names any it does not know, with the ones it does.
        bus_params = set(inspect.signature(Bus.__init__).parameters) - set(_STORAGE_OPTIONS)
        options = {k: kwargs.pop(k) for k in list(kwargs) if k not in bus_params}
        try:
            backend = make(url, **options)
        except (HmsBusError, ValueError, TypeError, OSError) as exc:
            raise _scrubbed(exc) from None
        try:
            return Bus(backend, **kwargs)
        except BaseException:
            backend.close()
            raise
    raise ValueError(
        f"unknown bus URL {shown!r}; use 'memory://', 'nats://host:4222' or "
        f"'kafka://host:9092' (check HMS_BUS_URL)"
    )


def _scrubbed(exc: BaseException) -> BaseException:
    """``exc`` again, its text scrubbed of secrets, keeping its type when it can."""
    text = _describe(exc).partition(": ")[2]
    clean = scrub(text)
    if clean == text:
        return exc
    try:
        return type(exc)(clean)
    except Exception:
        return HmsBusError(clean)


def publish(topic: str, data: Any = None, *, src: str | None = None) -> Event:
    """Publish on the default bus; see :meth:`Bus.publish`."""
    return get_bus().publish(topic, data, src=src)


def subscribe(
    pattern: str, fn: Callback, *, deliver: str | When = ALL, name: str | None = None
) -> Subscription:
    """Subscribe on the default bus; see :meth:`Bus.subscribe`."""
    return get_bus().subscribe(pattern, fn, deliver=deliver, name=name)


def unsubscribe(sub: Subscription) -> None:
    """End a subscription; see :meth:`Bus.unsubscribe`."""
    _check_subscription(sub)
    sub.bus.unsubscribe(sub)


def replay(
    pattern: str = ">",
    *,
    since: When | None = None,
    until: When | None = None,
    limit: int | None = None,
) -> list[Event]:
    """Replay the default bus; see :meth:`Bus.replay`."""
    return get_bus().replay(pattern, since=since, until=until, limit=limit)


def collect(pattern: str = ">", *, deliver: str | When = NEW):
    """Collect events from the default bus; see :meth:`Bus.collect`."""
    return get_bus().collect(pattern, deliver=deliver)
