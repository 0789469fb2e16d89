"""Events: the five-key messages that travel on the bus.

An :class:`Event` reads like the chapter's dictionary (``ev["topic"]``,
``ev["data"]``) but cannot be changed. Its ``data`` is frozen when it is
published, so every subscriber and the retention buffer see exactly what the
publisher sent, whatever any one of them does with it.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from datetime import datetime, timezone
from typing import Any

__all__ = ["Event", "FrozenDict", "FrozenList", "freeze", "thaw", "format_ts"]

KEYS = ("ts", "topic", "data", "src", "id")
"""The five keys of an event, in the order they print."""

_SCALARS = frozenset({str, int, float, bool, type(None)})
_PLAIN = _SCALARS - {float}  # floats need a finiteness check
_STRS = frozenset({str})
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

    Accepts what JSON can hold: ``str``, ``int``, finite ``float``, ``bool``,
    ``None``, lists and tuples, and dicts with ``str`` keys. Anything else
    raises :class:`TypeError` naming the offending value and where it sits.
    """
    # Fast path for the common flat dict of str keys and non-float scalars.
    if (
        type(value) is dict
        and _PLAIN.issuperset(map(type, value.values()))
        and _STRS.issuperset(map(type, value))
    ):
        return FrozenDict(value)
    try:
        return _freeze(value)
    except _NotJson:
        pass
    _explain(value, "data")  # raises, outside the except block: no chained traceback
    raise AssertionError(f"{value!r} failed the JSON check but passed _explain")


class _NotJson(Exception):
    pass


def _freeze(value: Any) -> Any:
    t = type(value)
    if t in _SCALARS:
        if t is float and not math.isfinite(value):
            raise _NotJson
        return value
    if isinstance(value, Mapping):
        out = {}
        for k, v in value.items():
            if type(k) is not str:
                raise _NotJson
            out[k] = _freeze(v)
        return FrozenDict(out)
    if isinstance(value, (list, tuple)):
        return FrozenList([_freeze(v) for v in value])
    # Subclasses such as IntEnum or numpy.float64 become the plain type.
    for base in (bool, int, float, str):
        if isinstance(value, base):
            return _freeze(base(value))
    raise _NotJson


def _explain(value: Any, path: str) -> None:
    """Raise the TypeError that says where in ``value`` JSON breaks."""
    if isinstance(value, float) and not math.isfinite(value):
        raise TypeError(
            f"{path} = {value!r} is not valid JSON; publish None or a string such as 'nan' instead"
        )
    if isinstance(value, (str, int, float, bool)) or value is None:
        return
    if isinstance(value, Mapping):
        for k, v in value.items():
            if type(k) is not str:
                raise TypeError(
                    f"{path} has key {k!r} of type {type(k).__name__}; JSON keys "
                    f"must be str, e.g. {str(k)!r}"
                )
            _explain(v, f"{path}[{k!r}]")
        return
    if isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            _explain(v, f"{path}[{i}]")
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


def format_ts(t: float) -> str:
    """Format epoch seconds as ISO-8601 UTC with milliseconds and a ``Z``.

    >>> format_ts(0.25)
    '1970-01-01T00:00:00.250Z'
    """
    ms = round(t * 1000)
    sec, milli = divmod(ms, 1000)
    head = _ts_cache.get(sec)
    if head is None:
        if len(_ts_cache) > 4096:
            _ts_cache.clear()
        head = _ts_cache[sec] = datetime.fromtimestamp(sec, timezone.utc).strftime(
            "%Y-%m-%dT%H:%M:%S"
        )
    return f"{head}.{milli:03d}Z"


class Event(Mapping):
    """One message on the bus, read like a dict with five keys.

    ``ev["ts"]`` is the ISO-8601 UTC time from the bus clock, ``ev["topic"]``
    the dotted topic, ``ev["data"]`` the frozen payload, ``ev["src"]`` who
    sent it and ``ev["id"]`` an id unique on its bus (and reproducible under a
    seeded bus). The same values are attributes: ``ev.topic``, ``ev.time``
    (epoch seconds, a float) and ``ev.seq`` (the bus's publish counter).

    Events cannot be changed; ``ev.to_dict()`` gives a plain copy.
    """

    __slots__ = ("_topic", "_data", "_src", "_time", "_seq", "_idp")

    def __init__(self, topic: str, data: Any, src: str, time: float, seq: int, idp: str) -> None:
        self._topic = topic
        self._data = data
        self._src = src
        self._time = time
        self._seq = seq
        self._idp = idp

    topic = property(lambda self: self._topic, doc="The dotted topic.")
    data = property(lambda self: self._data, doc="The frozen payload.")
    src = property(lambda self: self._src, doc="Who published the event.")
    time = property(lambda self: self._time, doc="Epoch seconds from the bus clock.")
    seq = property(lambda self: self._seq, doc="The bus's publish counter.")

    @property
    def id(self) -> str:
        """The event id, ``evt-<bus prefix>-<sequence>``."""
        return f"evt-{self._idp}-{self._seq:06d}"

    @property
    def ts(self) -> str:
        """The timestamp as ISO-8601 UTC text ending in ``Z``."""
        return format_ts(self._time)

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
        args = (self._topic, thaw(self._data), self._src, self._time, self._seq)
        return (_rebuild, (*args, self._idp))


def _rebuild(topic: str, data: Any, src: str, time: float, seq: int, idp: str) -> Event:
    return Event(topic, freeze(data), src, time, seq, idp)
