"""hms_bus: an event bus with retention, replay and alerting, for learning.

    from hms_bus import publish, subscribe
    publish("payments.sent", {"user": "CIT-883", "amount": 1000})
    subscribe("payments.*", lambda ev: print(ev["topic"], ev["data"]))

``monitor`` turns events into alerts; ``retention`` replays the default bus;
``server`` starts a throw-away nats-server for the NATS backend. ``monitor``,
``server`` and the backends load on first use, so ``import hms_bus`` stays
light.
"""

from __future__ import annotations

import importlib as _importlib
import typing as _typing

from . import retention
from .bus import Bus, Subscription, collect, get_bus, publish, replay, subscribe, unsubscribe, use
from .clock import Clock, VirtualClock, WallClock
from .errors import HmsBusError
from .event import Event, thaw
from .topics import matches

if _typing.TYPE_CHECKING:
    from . import monitor, server
    from .backends import Backend, MemoryBackend

__all__ = [
    "Backend",
    "Bus",
    "Clock",
    "Event",
    "HmsBusError",
    "MemoryBackend",
    "Subscription",
    "VirtualClock",
    "WallClock",
    "collect",
    "get_bus",
    "matches",
    "monitor",
    "publish",
    "replay",
    "retention",
    "server",
    "subscribe",
    "thaw",
    "unsubscribe",
    "use",
]

__version__ = "0.1.0"

_LAZY = {
    "monitor": ("hms_bus.monitor", None),
    "server": ("hms_bus.server", None),
    "Backend": ("hms_bus.backends", "Backend"),
    "MemoryBackend": ("hms_bus.backends", "MemoryBackend"),
}
"""Names loaded on first use: (module, attribute or None for the module itself)."""


def __getattr__(name: str) -> object:
    try:
        module, attr = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'hms_bus' has no attribute {name!r}") from None
    value = _importlib.import_module(module)
    if attr is not None:
        value = getattr(value, attr)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
