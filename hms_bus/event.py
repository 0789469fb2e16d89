"""Events: the five-key messages that travel on the bus.

An :class:`Event` reads like the chapter's dictionary (``ev["topic"]``,
``ev["data"]``) but cannot be changed. Its ``data`` is frozen when it is
published, so every subscriber and the retention buffer see exactly what the
publisher sent, whatever any one of them does with it.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

__all__ = ["Event", "FrozenDict", "FrozenList", "freeze", "thaw", "format_ts"]

KEYS = ("ts", "topic", "data", "src", "id")
"""The five keys of an event, in the order they print."""

MAX_DEPTH = 100
"""How deeply event data may nest: dicts and lists inside one another."""

INT_MIN, INT_MAX = -(2**63), 2**64 - 1
"""The integers event data may hold: what 64-bit JSON readers take exactly."""

_SCALARS = frozenset({str, int, float, bool, type(None)})
_READ_ONLY = (
    "event data is read-only: every subscriber shares the published copy; "
    "make your own mutable deep copy with hms_bus.thaw(ev['data'])"
)


def _read_only(self: Any, *args: Any, **kwargs: Any) -> None:
    raise TypeError(_READ_ONLY)


class FrozenDict(dict):
    """A ``dict`` that refuses changes; prints and serialises as a plain dict."""

    __slots__ = ()
    __setitem__ = __delitem__ = __ior__ = _read_only
    clear = pop = popitem = setdefault = update = _read_only

    def __reduce__(self) -> tuple[Any, ...]:
        return (dict, (thaw(self),))

    def __copy__(self) -> dict:
        return dict(self)

    def __deepcopy__(self, memo: dict) -> dict:
        return thaw(self)

    def __hash__(self) -> int:  # type: ignore[override]
        raise TypeError("unhashable type: 'FrozenDict'")


class FrozenList(list):
    """A ``list`` that refuses changes; prints and serialises as a plain list."""

    __slots__ = ()
    __setitem__ = __delitem__ = __iadd__ = __imul__ = _read_only
    append = extend = insert = pop = remove = reverse = sort = clear = _read_only

    def __reduce__(self) -> tuple[Any, ...]:
        return (list, (thaw(self),))

    def __copy__(self) -> list:
        return list(self)

    def __deepcopy__(self, memo: dict) -> list:
        return thaw(self)


def freeze(value: Any) -> Any:
    """Return a read-only deep copy of JSON-like ``value``.

    Accepts what JSON can hold: ``str``, ``int`` (64-bit, see :data:`INT_MIN`),
    finite ``float``, ``bool``, ``None``, lists and tuples, and dicts with
    ``str`` keys, nested at most :data:`MAX_DEPTH` deep. Anything else raises
    :class:`TypeError` (a value of the wrong type, NaN) or :class:`ValueError`
    (an int out of range, data nested too deep or referring to itself), naming
    the offending value and where it sits.
    """
    # The hot path: a flat dict of str keys and checked scalars, one loop.
    if type(value) is dict:
        for key, item in value.items():
            kind = type(item)
            if type(key) is not str or not (
                kind is str
                or (kind is int and INT_MIN <= item <= INT_MAX)
                or item is None
                or kind is bool
                or (kind is float and item - item == 0.0)  # false for inf and nan
            ):
                break
        else:
            return FrozenDict(value)
    try:
        return _freeze(value, MAX_DEPTH)
    except _NotJson:
        pass
    _explain(value, "data", MAX_DEPTH, [])  # raises, outside the except: no chained traceback
    raise AssertionError(f"{value!r} failed the JSON check but passed _explain")


class _NotJson(Exception):
    pass


def _freeze(value: Any, depth: int) -> Any:
    t = type(value)
    if t in _SCALARS:
        if t is float and not math.isfinite(value):
            raise _NotJson
        if t is int and not INT_MIN <= value <= INT_MAX:
            raise _NotJson
        return value
    if isinstance(value, Mapping):
        if depth == 0:
            raise _NotJson
        out = {}
        for k, v in value.items():
            if type(k) is not str:
                raise _NotJson
            out[k] = _freeze(v, depth - 1)
        return FrozenDict(out)
    if isinstance(value, (list, tuple)):
        if depth == 0:
            raise _NotJson
        return FrozenList([_freeze(v, depth - 1) for v in value])
    # Subclasses such as IntEnum or numpy.float64 become the plain type.
    for base in (bool, int, float, str):
        if isinstance(value, base):
            return _freeze(base(value), depth)
    raise _NotJson


def _show_int(n: int) -> str:
    """An int short enough to print (Python refuses str() of huge ones)."""
    return repr(n) if n.bit_length() <= 128 else f"an int of {n.bit_length()} bits"


def _explain(value: Any, path: str, depth: int, outer: list[int]) -> None:
    """Raise the error that says where in ``value`` JSON breaks.

    ``outer`` holds the ids of the containers ``value`` sits in, to tell data
    that refers to itself from data that is merely deep.
    """
    if isinstance(value, float) and not math.isfinite(value):
        raise TypeError(
            f"{path} = {value!r} is not valid JSON; publish None or a string such as 'nan' instead"
        )
    if isinstance(value, int) and not isinstance(value, bool):
        if not INT_MIN <= value <= INT_MAX:
            raise ValueError(
                f"{path} = {_show_int(value)} is outside the 64-bit range JSON readers "
                f"take exactly (-2**63 to 2**64 - 1); send it as a str, e.g. str(n)"
            )
        return
    if isinstance(value, (str, float, bool)) or value is None:
        return
    if isinstance(value, (Mapping, list, tuple)):
        if id(value) in outer:
            raise ValueError(
                f"{path} refers back to a dict or list that contains it (circular "
                f"data), which JSON cannot hold; publish a copy without the cycle"
            )
        if depth == 0:
            raise ValueError(
                f"{path} nests more than {MAX_DEPTH} dicts and lists deep; event data "
                f"may nest at most {MAX_DEPTH} levels: flatten it, or publish the deep "
                f"part as JSON text"
            )
        outer.append(id(value))
        if isinstance(value, Mapping):
            for k, v in value.items():
                if type(k) is not str:
                    raise TypeError(
                        f"{path} has key {k!r} of type {type(k).__name__}; JSON keys "
                        f"must be str, e.g. {str(k)!r}"
                    )
                _explain(v, f"{path}[{k!r}]", depth - 1, outer)
        else:
            for i, v in enumerate(value):
                _explain(v, f"{path}[{i}]", depth - 1, outer)
        outer.pop()
        return
    hint = "convert it first"
    if isinstance(value, datetime):
        hint = "use .isoformat()"
    elif isinstance(value, (set, frozenset)):
        hint = "use a sorted list"
    elif type(value).__module__ == "numpy":
        hint = "use .item() or int()/float()"
    elif isinstance(value, bytes):
        hint = "decode it to str"
    raise TypeError(
        f"{path} = {value!r} of type {type(value).__name__} is not "
        f"JSON-serialisable; {hint}. Event data may hold str, int, float, bool, "
        f"None, lists and dicts with str keys"
    )


def thaw(value: Any) -> Any:
    """Return a plain, mutable deep copy of frozen event data."""
    if isinstance(value, dict):
        return {k: thaw(v) for k, v in value.items()}
    if isinstance(value, list):
        return [thaw(v) for v in value]
    return value


_ts_cache: dict[int, str] = {}
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def format_ts(t: float) -> str:
    """Format epoch seconds as ISO-8601 UTC with milliseconds and a ``Z``.

    >>> format_ts(0.25)
    '1970-01-01T00:00:00.250Z'

    Works for every time a clock takes, years 1 to 9999, on every platform.
    """
    ms = round(t * 1000)
    sec, milli = divmod(ms, 1000)
    head = _ts_cache.get(sec)
    if head is None:
        if len(_ts_cache) > 4096:
            _ts_cache.clear()
        when = _EPOCH + timedelta(seconds=sec)
        head = _ts_cache[sec] = f"{when.year:04d}-{when:%m-%dT%H:%M:%S}"
    return f"{head}.{milli:03d}Z"


class _EventSlots:
    """Where an event's values live: slots with public names, read as fast as
    any attribute. :class:`Event` adds the read-only guard."""

    __slots__ = {
        "topic": "The dotted topic.",
        "data": "The frozen payload.",
        "src": "Who published the event.",
        "time": "Epoch seconds from the bus clock (a float).",
        "seq": "The publishing bus's counter: 1 for its first event.",
        "bus_id": "The publishing bus's id, the middle part of ``id``.",
    }


class _Writer(_EventSlots):
    """Fills the slots, then becomes an :class:`Event` (which refuses writes)."""

    __slots__ = ()

    def __init__(self, topic: str, data: Any, src: str, time: float, seq: int, bus_id: str) -> None:
        self.topic = topic
        self.data = data
        self.src = src
        self.time = time
        self.seq = seq
        self.bus_id = bus_id
        self.__class__ = Event  # type: ignore[assignment]


class Event(_EventSlots, Mapping):
    """One message on the bus, read like a dict with five keys.

    ``ev["ts"]`` is the ISO-8601 UTC time from the bus clock, ``ev["topic"]``
    the dotted topic, ``ev["data"]`` the frozen payload, ``ev["src"]`` who
    sent it and ``ev["id"]`` an id unique on its bus (and reproducible under a
    seeded bus). The same values are attributes, as fast to read as any:
    ``ev.topic``, ``ev.data``, ``ev.src``, ``ev.id``, ``ev.ts``, and also
    ``ev.time`` (epoch seconds, a float), ``ev.seq`` (the bus's publish
    counter) and ``ev.bus_id`` (which bus published it).

    Events cannot be changed; ``ev.to_dict()`` gives a plain copy.
    """

    __slots__ = ()

    def __new__(cls, topic: str, data: Any, src: str, time: float, seq: int, bus_id: str) -> Event:
        ev = _Writer(topic, data, src, time, seq, bus_id)
        if cls is not Event:
            object.__setattr__(ev, "__class__", cls)
        return ev  # type: ignore[return-value]

    create = _Writer
    """``Event.create(topic, data, src, time, seq, bus_id)``: the same as
    ``Event(...)`` one call faster, for the bus's publish path. ``data`` must
    already be frozen (see :func:`freeze`)."""

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(
            f"events cannot be changed (tried to set {name!r}); copy with ev.to_dict()"
        )

    def __delattr__(self, name: str) -> None:
        raise AttributeError(
            f"events cannot be changed (tried to delete {name!r}); copy with ev.to_dict()"
        )

    @property
    def id(self) -> str:
        """The event id, ``evt-<bus id>-<sequence>``."""
        return f"evt-{self.bus_id}-{self.seq:06d}"

    @property
    def ts(self) -> str:
        """The timestamp as ISO-8601 UTC text ending in ``Z``."""
        return format_ts(self.time)

    def __getitem__(self, key: str) -> Any:
        if key in KEYS:
            return getattr(self, key)
        raise KeyError(f"{key!r}: an event has the keys {', '.join(KEYS)}")

    def __iter__(self) -> Iterator[str]:
        return iter(KEYS)

    def __len__(self) -> int:
        return len(KEYS)

    def __setitem__(self, key: str, value: Any) -> None:
        raise TypeError(f"events cannot be changed (tried to set {key!r}); copy with ev.to_dict()")

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Event):
            other = other.to_dict()
        return Mapping.__eq__(self, other)

    __hash__ = None  # type: ignore[assignment]

    def to_dict(self) -> dict[str, Any]:
        """A plain, mutable copy: ``{"ts", "topic", "data", "src", "id"}``."""
        return {
            "ts": self.ts,
            "topic": self.topic,
            "data": thaw(self.data),
            "src": self.src,
            "id": self.id,
        }

    def __repr__(self) -> str:
        return repr(self.to_dict())

    def __reduce__(self) -> tuple[Any, ...]:
        args = (self.topic, thaw(self.data), self.src, self.time, self.seq, self.bus_id)
        return (_rebuild, args)


def _rebuild(topic: str, data: Any, src: str, time: float, seq: int, bus_id: str) -> Event:
    return _Writer(topic, freeze(data), src, time, seq, bus_id)  # type: ignore[return-value]
