"""Events: five keys, frozen data, JSON checks, timestamps and ids."""

from __future__ import annotations

import copy
import json
import math
import pickle
from datetime import datetime, timezone
from enum import IntEnum

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hms_bus import Bus, Event, VirtualClock, thaw
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


# -- public attributes, read-only -----------------------------------------------


def test_public_attributes_hold_the_event_values(bus):
    ev = bus.publish("payments.sent", {"amount": 1000}, src="hms-ach")
    assert type(ev) is Event
    assert (ev.topic, ev.data, ev.src, ev.seq) == ("payments.sent", {"amount": 1000}, "hms-ach", 1)
    assert ev.time == bus.clock.now()
    assert ev.bus_id == bus.id and ev.id == f"evt-{bus.id}-000001"
    assert bus.published == 1


@pytest.mark.parametrize("name", ["topic", "data", "src", "time", "seq", "bus_id", "other"])
def test_no_attribute_of_an_event_can_be_set_or_deleted(bus, name):
    ev = bus.publish("a.b", {"x": 1})
    with pytest.raises(
        AttributeError, match=f"events cannot be changed \\(tried to set {name!r}\\)"
    ):
        setattr(ev, name, "changed")
    with pytest.raises(AttributeError, match=f"tried to delete {name!r}"):
        delattr(ev, name)
    with pytest.raises(AttributeError):
        ev.__class__ = dict
    assert ev.to_dict()["topic"] == "a.b" and ev.data == {"x": 1}


def test_event_constructor_and_create_make_the_same_event():
    data = freeze({"x": [1]})
    a = Event("a.b", data, "me", 1.5, 7, "0000abcd")
    b = Event.create("a.b", data, "me", 1.5, 7, "0000abcd")
    assert type(a) is type(b) is Event
    assert a == b and a.id == "evt-0000abcd-000007" and a.ts == "1970-01-01T00:00:01.500Z"
    assert pickle.loads(pickle.dumps(a)) == a


# -- what data may hold ----------------------------------------------------------


def _nested(depth: int) -> list:
    data: list = []
    for _ in range(depth - 1):
        data = [data]
    return data


def test_data_may_nest_exactly_max_depth_levels():
    from hms_bus.event import MAX_DEPTH

    assert thaw(freeze({"deep": _nested(MAX_DEPTH - 1)})) == {"deep": _nested(MAX_DEPTH - 1)}
    with pytest.raises(ValueError, match=r"data\['deep'\](\[0\])+ nests more than 100"):
        freeze({"deep": _nested(MAX_DEPTH)})


def test_shared_but_not_circular_data_is_accepted():
    shared = [1, 2]
    assert freeze({"a": shared, "b": [shared, shared]}) == {"a": [1, 2], "b": [[1, 2], [1, 2]]}


def test_circular_data_inside_a_list_names_the_spot():
    loop: list = [1]
    loop.append({"back": loop})
    with pytest.raises(ValueError, match=r"data\[1\]\['back'\] refers back.*circular data"):
        freeze(loop)


@pytest.mark.parametrize("n", [-(2**63), 2**64 - 1, 0, -1, 2**53 + 1])
def test_64_bit_ints_are_kept_exactly(n):
    assert freeze({"n": n})["n"] == n
    assert freeze([n]) == [n]


scalar = st.one_of(
    st.text(max_size=5),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.none(),
)


def _json_ok(v) -> bool:
    if isinstance(v, float):
        return math.isfinite(v)
    if isinstance(v, int) and not isinstance(v, bool):
        return -(2**63) <= v <= 2**64 - 1
    return True


@given(st.dictionaries(st.text(max_size=5), scalar, max_size=8))
def test_flat_dicts_are_frozen_exactly_when_every_value_is_json(data):
    """freeze()'s one-loop hot path accepts and refuses what the full check does."""
    if all(_json_ok(v) for v in data.values()):
        frozen = freeze(data)
        assert type(frozen).__name__ == "FrozenDict" and frozen == data
        assert [type(v) for v in frozen.values()] == [type(v) for v in data.values()]
    else:
        with pytest.raises((TypeError, ValueError), match=r"data\["):
            freeze(data)
        with pytest.raises((TypeError, ValueError), match=r"data\[0\]\["):
            freeze([data])  # the same values through the general path


def test_format_ts_covers_years_1_to_9999():
    assert format_ts(-62135596800.0) == "0001-01-01T00:00:00.000Z"
    assert format_ts(253402300799.999) == "9999-12-31T23:59:59.999Z"
    assert format_ts(-0.5) == "1969-12-31T23:59:59.500Z"
