"""hms_bus: an event bus with retention, replay and alerting, for learning.

from hms_bus import publish, subscribe
publish("payments.sent", {"user": "CIT-883", "amount": 1000})
subscribe("payments.*", lambda ev: print(ev["topic"], ev["data"]))
"""

from __future__ import annotations

from . import monitor, retention
from .backends import Backend, MemoryBackend
from .bus import Bus, Subscription, collect, get_bus, publish, replay, subscribe, unsubscribe, use
from .clock import Clock, VirtualClock, WallClock
from .errors import HmsBusError
from .event import Event, thaw
from .topics import matches

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
    "subscribe",
    "thaw",
    "unsubscribe",
    "use",
]

__version__ = "0.1.0"
