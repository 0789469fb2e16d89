"""Events: five keys, frozen data, JSON checks, timestamps and ids."""

from __future__ import annotations

import copy
import json
import pickle
from datetime import datetime, timezone
from enum import IntEnum

import pytest

from hms_bus import Bus, VirtualClock, thaw
from hms_bus.event import format_ts, freeze


def test_event_has_the_five_keys_and_prints_as_a_dict(bus):
    ev = bus.publish("payments.sent", {"user": "CIT-883", "amount": 1000}, src="hms-ach")
    assert list(ev) == ["ts", "topic", "data", "src", "id"]
    assert ev["data"] == {"user": "CIT-883", "amount": 1000}
    assert repr(ev["data"]) == "{'user': 'CIT-883', 'amount': 1000}"
    assert ev["ts"] == "2021-08-29T12:00:00.000Z"
    assert ev["src"] == "hms-ach"
    assert repr(ev).startswith("{'ts': '2021-08-29T12:00:00.000Z', 'topic': 'payments.sent'")
    assert json.loads(json.dumps(ev.to_dict()))["data"]["amount"] == 1000


def test_unknown_key_names_the_keys(bus):
    ev = bus.publish("a.b")
    with pytest.raises(KeyError, match="ts, topic, data, src, id"):
        ev["user"]


def test_ts_is_iso_utc_with_z_from_the_bus_clock(bus, clock):
    clock.advance(61.5)
    ev = bus.publish("a.b")
    assert ev["ts"] == "2021-08-29T12:01:01.500Z"
    assert ev.time == clock.now()


def test_format_ts_does_not_depend_on_local_timezone(monkeypatch):
    import time

    monkeypatch.setenv("TZ", "America/Chicago")
    time.tzset()
    try:
        assert format_ts(0) == "1970-01-01T00:00:00.000Z"
        t = datetime(2021, 8, 29, 16, 55, tzinfo=timezone.utc).timestamp()
        assert format_ts(t) == "2021-08-29T16:55:00.000Z"
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()


def test_ids_are_unique_where_the_stub_collides():
    bus = Bus()
    ids = {bus.publish("a.b").id for _ in range(20_000)}
    assert len(ids) == 20_000


def test_ids_are_reproducible_on_a_virtual_clock():
    def ids(**kw):
        b = Bus(clock=VirtualClock(), **kw)
        return [b.publish("a.b")["id"] for _ in range(3)]

    assert ids() == ids()
    assert ids(seed=7) == ids(seed=7)
    assert ids(seed=7) != ids(seed=8)
    assert ids()[0].startswith("evt-") and ids()[0].endswith("-000001")


def test_ids_differ_between_wall_clock_buses():
    assert Bus().publish("a.b").id != Bus().publish("a.b").id


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"when": datetime(2021, 8, 29)}, r"data\['when'\] = datetime.*use .isoformat\(\)"),
        ({"tags": {"a", "b"}}, r"data\['tags'\].*set.*sorted list"),
        ({"n": [1, 2, object()]}, r"data\['n'\]\[2\] = <object"),
        ({1: "x"}, r"key 1 of type int; JSON keys must be str, e.g. '1'"),
        ({"x": float("nan")}, r"data\['x'\] = nan is not valid JSON"),
        (b"raw", "decode it to str"),
    ],
)
def test_non_json_data_raises_typeerror_naming_the_value(bus, data, message):
    with pytest.raises(TypeError, match=message):
        bus.publish("a.b", data)
    assert bus.replay() == []  # nothing half-published


def test_json_like_values_are_accepted_and_normalised(bus):
    class Level(IntEnum):
        HIGH = 3

    ev = bus.publish("a.b", {"l": [1, 2.5, None, True, "x"], "d": {"k": (1, 2)}, "lvl": Level.HIGH})
    assert thaw(ev["data"]) == {"l": [1, 2.5, None, True, "x"], "d": {"k": [1, 2]}, "lvl": 3}
    assert type(ev["data"]["lvl"]) is int


def test_data_is_copied_at_publish(bus):
    data = {"user": "CIT-883", "items": [1]}
    ev = bus.publish("a.b", data)
    data["user"] = "changed"
    data["items"].append(2)
    assert ev["data"] == {"user": "CIT-883", "items": [1]}


def test_event_and_data_cannot_be_changed(bus):
    ev = bus.publish("a.b", {"x": {"y": [1]}})
    with pytest.raises(TypeError, match="read-only.*thaw"):
        ev["data"]["x"] = 2
    with pytest.raises(TypeError, match="read-only"):
        ev["data"]["x"]["y"].append(2)
    with pytest.raises(TypeError, match="events cannot be changed"):
        ev["topic"] = "other"
    with pytest.raises(AttributeError):
        ev.topic = "other"


def test_copies_and_pickles_are_plain_and_mutable(bus):
    ev = bus.publish("a.b", {"x": {"y": [1]}})
    deep = copy.deepcopy(ev["data"])
    deep["x"]["y"].append(2)
    assert ev["data"] == {"x": {"y": [1]}}
    back = pickle.loads(pickle.dumps(ev))
    assert back == ev and back.id == ev.id
    mine = ev.to_dict()
    mine["data"]["x"] = 1
    assert ev["data"]["x"] == {"y": [1]}


def test_freeze_of_nested_containers_is_read_only():
    frozen = freeze({"a": [{"b": 1}]})
    with pytest.raises(TypeError):
        frozen["a"][0]["b"] = 2


def test_flat_data_is_copied_at_publish(bus):
    data = {"user": "CIT-883", "amount": 1000}
    ev = bus.publish("a.b", data)
    data["amount"] = 0
    assert ev["data"]["amount"] == 1000
