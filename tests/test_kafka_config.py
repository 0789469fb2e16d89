"""The Kafka backend's URL, topic mapping and record format (no broker needed)."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

pytest.importorskip("confluent_kafka")

from hms_bus import Event  # noqa: E402
from hms_bus.backends.kafka.config import parse, shown, shown_conf  # noqa: E402
from hms_bus.backends.kafka.naming import MAX_NAME, TopicMap, bus_topic, kafka_topic  # noqa: E402
from hms_bus.backends.kafka.wire import Encoder, decode, timestamp_ms  # noqa: E402
from hms_bus.event import freeze  # noqa: E402

# -- URL --------------------------------------------------------------------------


def test_url_gives_servers_options_and_librdkafka_settings():
    cfg = parse(
        "kafka://k1:9092,k2,[::1]:9093?prefix=ops&partitions=3&retention=3600"
        "&security.protocol=SASL_SSL&sasl.mechanism=SCRAM-SHA-512"
    )
    assert cfg.servers == ("k1:9092", "k2:9092", "[::1]:9093")
    assert (cfg.prefix, cfg.partitions, cfg.retention) == ("ops", 3, 3600.0)
    assert cfg.librdkafka == {"security.protocol": "SASL_SSL", "sasl.mechanism": "SCRAM-SHA-512"}
    assert cfg.client_conf()["bootstrap.servers"] == "k1:9092,k2:9092,[::1]:9093"


def test_keywords_and_conf_work_like_the_query():
    cfg = parse(
        "kafka://k:9092?partitions=2&readonly=yes",
        conf={"client.id": "ops"},
        retention=timedelta(hours=2),
    )
    assert (cfg.partitions, cfg.retention, cfg.librdkafka["client.id"]) == (2, 7200.0, "ops")
    assert cfg.readonly is True and parse("kafka://k", readonly=False).readonly is False
    with pytest.raises(ValueError, match="partitions given both in .* and as a keyword"):
        parse("kafka://k:9092?partitions=2", partitions=5)


@pytest.mark.parametrize(
    ("url", "match"),
    [
        ("nats://k:4222", "must start with kafka://"),
        ("kafka://", "bad server ''"),
        ("kafka://k:notaport", "bad server 'k:notaport'"),
        ("kafka://k:70000", "bad server 'k:70000'"),
        ("kafka://k:9092?colour=red", "unknown option.*colour.*the backend's own are prefix"),
        ("kafka://k:9092?partitions=0", "partitions must be an int >= 1, got '0'"),
        ("kafka://k:9092?partitions=two", "partitions='two'.*is not an int; e.g. partitions=3"),
        ("kafka://k:9092?retention=-5", "retention must be a positive finite number"),
        ("kafka://k:9092?retention=-inf", "retention must be a positive finite number"),
        ("kafka://k:9092?retention=nan", "retention must be a positive finite number"),
        ("kafka://k:9092?prefix=has space", "prefix='has space'.*is not a Kafka topic name"),
        ("kafka://k:9092?prefix=..", "prefix='..'.*is not a Kafka topic name"),
        ("kafka://k:9092?single=" + "x" * 250, "single is 250 characters long"),
        ("kafka://k:9092?prefix", "bad query item 'prefix'"),
        ("kafka://k:9092?readonly=maybe", "readonly must be true or false"),
        ("kafka://k:9092?prefix=a&prefix=b", "option 'prefix' is given twice"),
        ("kafka://k:9092?acks=1", "acks in .*the backend sets these itself"),
        ("kafka://k:9092?enable.idempotence=false", "enable.idempotence in .*sets these itself"),
        ("kafka://u:hunter2@k:9092", r"kafka://u:\*\*\*@k:9092.*credentials before the host"),
    ],
)
def test_bad_urls_are_refused_naming_the_value_and_the_fix(url, match):
    with pytest.raises(ValueError, match=match):
        parse(url)


def test_url_must_be_text():
    with pytest.raises(TypeError, match="url must be a str such as 'kafka://127.0.0.1:9092'"):
        parse(9092)


def test_secrets_never_show_in_urls_errors_or_settings():
    url = "kafka://k:9092?sasl.username=ops&sasl.password=hunter2&ssl.key.password=s3cr3t"
    assert shown(url) == "kafka://k:9092?sasl.username=ops&sasl.password=***&ssl.key.password=***"
    assert shown_conf({"sasl.oauthbearer.client.secret": "x", "client.id": "a"}) == {
        "sasl.oauthbearer.client.secret": "***",
        "client.id": "a",
    }
    with pytest.raises(ValueError) as err:
        parse(url + "&acks=0")
    assert "hunter2" not in str(err.value) and "s3cr3t" not in str(err.value)


# -- topic mapping ----------------------------------------------------------------


def test_first_token_names_the_kafka_topic_in_kafkas_alphabet():
    assert kafka_topic("hms", "payments") == "hms.payments"
    assert kafka_topic("hms", "zahlungen_ü") == "hms.zahlungen_5f_c3_bc"
    assert kafka_topic("hms", "🔥") == "hms._f0_9f_94_a5"
    # '_' is escaped too, so a token that looks like an escape cannot collide
    assert kafka_topic("hms", "a_2e") != kafka_topic("hms", "a.")


def test_long_tokens_are_cut_to_kafkas_limit_and_stay_distinct():
    a, b = kafka_topic("hms", "x" * 300), kafka_topic("hms", "x" * 299 + "y")
    assert len(a) == len(b) == MAX_NAME
    assert a != b


def test_foreign_topic_names_become_bus_topics():
    assert bus_topic("hms", "hms.payments") == "payments"
    assert bus_topic("hms", "hms.zahlungen_5f_c3_bc") == "zahlungen_ü"
    assert bus_topic("hms", "hms.a_2eb") == "a_2eb"  # never a new token
    assert bus_topic("hms", "orders") == "orders"


def test_each_bus_topic_keeps_one_partition():
    routes = TopicMap("hms", None, partitions=1)
    assert routes.name("payments.sent.eu") == "hms.payments"
    assert {routes.partition(t, 4) for t in ("payments.sent", "payments.failed")} == {0}
    spread = TopicMap("hms", None, partitions=3)
    assert {spread.partition(f"payments.{n}", 4) for n in range(50)} == {0, 1, 2}
    assert spread.partition("payments.x", 2) == spread.partition("payments.x", 2) < 2
    single = TopicMap("hms", "hms.all", partitions=1)
    assert single.name("payments.sent") == single.name("alerts.x") == "hms.all"


def test_patterns_choose_the_kafka_topics_to_read():
    routes = TopicMap("hms", None, 1)
    names = {"hms.payments", "hms.alerts", "orders", "hms2.x"}
    assert routes.candidates("payments.*", names) == ["hms.payments"]
    assert routes.candidates("*.error", names) == ["hms.alerts", "hms.payments"]
    assert routes.candidates(">", names) == ["hms.alerts", "hms.payments"]
    assert routes.candidates("nothing.here", names) == []


# -- record format ------------------------------------------------------------------


class _Msg:
    """What confluent-kafka hands a reader, for decode()."""

    def __init__(self, value, key=b"", topic="hms.payments", partition=0, offset=7, ms=1500):
        self._v, self._k, self._t, self._p, self._o, self._ms = (
            value,
            key,
            topic,
            partition,
            offset,
            ms,
        )

    def value(self):
        return self._v

    def key(self):
        return self._k

    def topic(self):
        return self._t

    def partition(self):
        return self._p

    def offset(self):
        return self._o

    def timestamp(self):
        return (1, self._ms)


def test_an_event_survives_the_round_trip_exactly():
    ev = Event(
        "payments.sent",
        freeze({"amount": 1e-7, "who": "CIT-ü", "n": 2**63}),
        "ach",
        1630238400.123456,
        42,
        "0a1b2c3d",
    )
    value, key, ms = Encoder("feedbeef").encode(ev)
    assert key == b"evt-0a1b2c3d-000042.feedbeef"
    assert ms == 1630238400123
    assert json.loads(value) == {
        "id": ev.id,
        "time": ev.time,
        "topic": "payments.sent",
        "src": "ach",
        "data": {"amount": 1e-7, "who": "CIT-ü", "n": 2**63},
    }
    record = decode(_Msg(value, key), "hms")
    assert record.event == ev and record.event.time == ev.time
    assert (record.stream, record.foreign) == (("0a1b2c3d", "feedbeef"), False)


def test_lone_surrogates_in_data_are_escaped_not_fatal():
    ev = Event("a.b", freeze({"s": "\ud800"}), "x", 1.0, 1, "0a1b2c3d")
    value, key, _ = Encoder("s").encode(ev)
    assert decode(_Msg(value, key), "hms").event.data == {"s": "\ud800"}


@pytest.mark.parametrize(("t", "ms"), [(0.0, 1), (-5.0, 1), (0.0019, 1), (1.5, 1500)])
def test_record_timestamps_are_whole_ms_and_never_zero(t, ms):
    assert timestamp_ms(t) == ms


@pytest.mark.parametrize(
    "value",
    [
        b'{"amount": 5}',
        b"not json at all",
        None,
        b'{"id": "evt-0a1b2c3d-000001", "time": "yesterday", "topic": "a.b", "src": "x", '
        b'"data": 1}',
        b'{"id": "evt-0a1b2c3d-000001", "time": NaN, "topic": "a.b", "src": "x", "data": 1}',
        b'{"id": "evt-0a1b2c3d-000001", "time": 1e300, "topic": "a.b", "src": "x", "data": 1}',
        b'{"id": "evt-0a1b2c3d-000001", "time": 1, "topic": "bad topic", "src": "x", "data": 1}',
        b'{"id": "evt-0a1b2c3d-000001", "time": 1, "topic": "a.b", "src": "", "data": 1}',
        b"[" * 5000 + b"]" * 5000,
        b'{"id": "evt-0a1b2c3d-000001", "time": 1, "topic": "a.b", "src": "x", "data": '
        + b"[" * 200
        + b"]" * 200
        + b"}",
    ],
)
def test_foreign_or_malformed_records_become_events_that_work(value):
    record = decode(_Msg(value), "hms")
    ev = record.event
    assert record.foreign and ev.src == "kafka" and ev.topic == "payments"
    assert ev.time == 1.5 and ev.id == ev.id  # every field reads
    assert ev.to_dict()["ts"] == "1970-01-01T00:00:01.500Z"
    assert repr(ev)
    assert record.key == b"hms.payments/0/7"


def test_only_the_kits_own_key_marks_a_re_send():
    """A producer writing the event format with a key of its own (a customer id, or
    none) makes records that are never taken for copies of each other."""
    ev = Event("payments.sent", freeze({"n": 1}), "other", 1.0, 1, "abcdef01")
    value, key, _ = Encoder("feedbeef").encode(ev)
    assert decode(_Msg(value, key), "hms").key == key
    for own_key in (b"CIT-883", b"", b"evt-abcdef01-000001", b"evt-abcdef01-000001.", b"x" + key):
        record = decode(_Msg(value, own_key, offset=9), "hms")
        assert (record.event, record.foreign, record.stream) == (ev, False, None)
        assert record.key == b"hms.payments/0/9", own_key


def test_another_producers_dotted_topic_is_read_for_its_first_token():
    """Kafka topic hms.payments.sent (made by another application) holds bus topic
    payments.sent for the live feed, so replay("payments.*") must read it too."""
    routes = TopicMap("hms", None, 1)
    names = {"hms.payments", "hms.payments.sent", "hms.paymentsX", "hms.bank"}
    assert routes.candidates("payments.*", names) == ["hms.payments", "hms.payments.sent"]
    assert routes.candidates("bank", names) == ["hms.bank"]
