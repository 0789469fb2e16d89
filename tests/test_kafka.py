"""The Kafka backend against librdkafka's mock cluster, started by the tests.

Most tests share one cluster and get a topic prefix of their own; the fault
tests start a cluster of their own and take its brokers away.
"""

from __future__ import annotations

import json
import socket
import threading
import time

import pytest

pytest.importorskip("confluent_kafka")

from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition  # noqa: E402

import hms_bus  # noqa: E402
from hms_bus import Bus, HmsBusError, VirtualClock  # noqa: E402
from hms_bus.backends import kafka_backend  # noqa: E402
from hms_bus.backends.kafka.mock import ALL_BROKERS, PRODUCE, MockKafkaCluster  # noqa: E402


@pytest.fixture
def cluster():
    """A mock cluster of this test's own, for taking brokers away."""
    with MockKafkaCluster(3) as c:
        yield c


@pytest.fixture
def make_bus():
    """Buses on Kafka URLs, closed at the end of the test."""
    made: list[Bus] = []

    def make(url: str, clock=None, **options) -> Bus:
        for name, quick in (("fetch_wait_ms", 10), ("refresh", 0.2)):
            if f"{name}=" not in url:
                options.setdefault(name, quick)
        bus = Bus(kafka_backend(url, **options), clock=clock or VirtualClock(), seed=1)
        made.append(bus)
        return bus

    yield make
    for bus in made:
        try:
            bus.close()
        except HmsBusError:
            bus.backend.close()


def raw_records(bootstrap: str, topic: str) -> list:
    """Every record of ``topic`` as stored, read without the backend."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "raw",
            "enable.partition.eof": True,
            "enable.auto.commit": False,
        }
    )
    try:
        parts = consumer.list_topics(topic=topic, timeout=5).topics[topic].partitions
        consumer.assign([TopicPartition(topic, p, 0) for p in parts])
        out, eof = [], set()
        deadline = time.monotonic() + 10
        while len(eof) < len(parts) and time.monotonic() < deadline:
            msg = consumer.poll(0.2)
            if msg is None:
                continue
            if msg.error():
                if msg.error().code() == KafkaError._PARTITION_EOF:
                    eof.add(msg.partition())
                continue
            out.append(msg)
        return out
    finally:
        consumer.close()


def wait_for(cond, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def scenario(bus: Bus) -> tuple:
    """Live delivery across three topic families, and replays, as the memory bus gives them."""
    seen: list[str] = []
    bus.publish("payments.sent", {"n": -1})
    with bus.subscribe(">", lambda e: seen.append(e.id)):
        for i in range(30):
            bus.publish(["payments.sent", "alerts.fraud", "bank.error"][i % 3], {"n": i})
            bus.clock.advance(1)
        bus.flush(20)
    t = bus.clock.now()
    return (
        seen,
        [e.id for e in bus.replay(">")],
        [e.id for e in bus.replay("payments.*", since=t - 10, until=t - 5)],
        [e.id for e in bus.replay(">", limit=3)],
        [e.id for e in bus.replay("*.error", since=t - 4)],
    )


# -- the same results as the memory bus -------------------------------------------------


def test_live_order_and_replays_equal_the_memory_bus_across_kafka_topics(kafka_url, make_bus):
    """Three families live in three Kafka topics; the feed restores the bus's one order."""
    assert scenario(make_bus(kafka_url)) == scenario(Bus(clock=VirtualClock(), seed=1))


def test_one_kafka_topic_with_single_gives_the_same_results(kafka_url, make_bus):
    url = kafka_url + "&single=" + kafka_url.split("prefix=")[1].split("&")[0] + ".all"
    assert scenario(make_bus(url)) == scenario(Bus(clock=VirtualClock(), seed=1))


def test_events_come_back_with_their_id_time_src_and_data(kafka_url, make_bus):
    with make_bus(kafka_url) as a:
        sent = [
            a.publish("payments.sent", {"n": n, "nested": [1, {"k": "ü"}]}, src="ach")
            for n in range(5)
        ]
    got = make_bus(kafka_url).replay("payments.*")  # another backend, as another process
    assert [e.to_dict() for e in got] == [e.to_dict() for e in sent]
    assert [e.time for e in got] == [e.time for e in sent]


def test_seeded_runs_with_equal_ids_are_both_kept(kafka_url, make_bus):
    """Two runs of a seeded simulation repeat event ids; neither is taken for a re-send."""
    ids = []
    for _ in range(2):
        with make_bus(kafka_url) as bus:
            ids.append(bus.publish("sim.run", 1).id)
    assert ids[0] == ids[1]
    assert len(make_bus(kafka_url).replay("sim.run")) == 2


def test_replay_since_finds_its_start_where_offsets_for_times_answers_minus_one(
    kafka_url, make_bus
):
    """The mock's time index answers -1; the reader bisects on record timestamps."""
    bus = make_bus(kafka_url)
    for i in range(3000):
        bus.publish("payments.sent", {"i": i})
        bus.clock.advance(1)
    t = bus.clock.now()
    assert [e.data["i"] for e in bus.replay("payments.sent", since=t - 100)] == list(
        range(2900, 3000)
    )
    assert [e.data["i"] for e in bus.replay(">", since=t - 3000.5, until=t - 2998.5)] == [0, 1]
    assert bus.replay(">", since=t) == []
    assert [e.data["i"] for e in bus.replay(">", since=t - 10, limit=2)] == [2990, 2991]


def test_the_first_offset_for_a_time_is_exact_with_equal_timestamps_and_deleted_records(
    cluster, make_bus
):
    """The bisection the reader falls back on, checked offset by offset."""
    stamps = [1000, 1000, 1000, 2000, 2500, 2500, 4000, 4001, 9000, 9000, 9001]
    producer = Producer({"bootstrap.servers": cluster.bootstrap})
    cluster.create_topic("hms.stamps", 1, 1)
    for ms in stamps:
        producer.produce("hms.stamps", b"{}", partition=0, timestamp=ms)
    assert producer.flush(5) == 0
    reader = make_bus(cluster.url).backend.reader
    first = reader.first_offset_at
    expected = {
        ms: next((i for i, s in enumerate(stamps) if s >= ms), len(stamps))
        for ms in (1, 1000, 1001, 2000, 2001, 2500, 3999, 4001, 4002, 9000, 9001, 9002)
    }
    assert {ms: first(("hms.stamps", 0), ms) for ms in expected} == expected
    cluster.delete_records("hms.stamps", 0, 4)  # retention took the first four
    assert first(("hms.stamps", 0), 1000) == 4 and first(("hms.stamps", 0), 2600) == 6


def test_kept_events_do_not_depend_on_the_readers_clock(kafka_url, make_bus):
    """Retention is the brokers': a wall-clock reader (the CLI next to a simulation)
    and a simulation 30 h on both see what Kafka holds."""
    sim = make_bus(kafka_url, retention=60)
    sim.publish("payments.sent", {"n": 1})
    sim.clock.advance(30 * 3600)
    sim.publish("payments.sent", {"n": 2})
    assert [e.data for e in sim.replay(">")] == [{"n": 1}, {"n": 2}]
    wall = Bus(kafka_backend(kafka_url))
    try:
        assert [e.data for e in wall.replay("payments.*")] == [{"n": 1}, {"n": 2}]
    finally:
        wall.close()


def test_max_retained_counts_the_newest_events_across_kafka_topics(kafka_url, make_bus):
    """Kafka has no retention by count: readers keep the newest N of all families."""
    bus = make_bus(kafka_url, max_retained=3)
    memory = Bus(clock=VirtualClock(), seed=1, max_retained=3)
    for b in (bus, memory):
        for n in range(6):
            b.publish(["pay.x", "bank.y"][n % 2], n)
            b.clock.advance(1)
    assert [e.data for e in bus.replay()] == [e.data for e in memory.replay()] == [3, 4, 5]
    assert [e.data for e in bus.replay("pay.*")] == [4]
    got: list = []
    bus.subscribe(">", got.append)
    bus.flush(10)
    assert [e.data for e in got] == [3, 4, 5]


def test_a_read_only_bus_refuses_publishes_and_creates_nothing(kafka_url, make_bus):
    reader = make_bus(kafka_url, readonly=True)
    with pytest.raises(HmsBusError, match="this bus is read-only"):
        reader.publish("payments.sent", {})
    assert reader.replay() == [] and reader.status()["published"] == 0
    assert reader.status()["created_topics"] == reader.status()["found_topics"] == []


def test_the_producer_is_idempotent(kafka_url):
    """librdkafka refuses more than 5 requests in flight only for an idempotent producer."""
    with pytest.raises(ValueError, match="enable.idempotence"):
        kafka_backend(kafka_url + "&max.in.flight.requests.per.connection=6")


def test_subscribe_from_a_time_then_live(kafka_url, make_bus, received):
    bus = make_bus(kafka_url)
    for i in range(10):
        bus.publish("payments.sent", {"i": i})
        bus.clock.advance(1)
    bus.subscribe("payments.*", received.append, deliver=bus.clock.now() - 3)
    bus.publish("payments.sent", {"i": 10})
    bus.flush(10)
    assert [e.data["i"] for e in received] == [7, 8, 9, 10]


def test_the_first_subscription_gets_what_was_just_published_in_order(kafka_url, make_bus):
    """900 events over three Kafka topics, then the first subscription: publish order."""
    bus = make_bus(kafka_url)
    sent = [bus.publish(f"{family}.x", n) for n in range(300) for family in ("a", "b", "c")]
    got: list = []
    bus.subscribe(">", got.append)
    bus.flush(10)
    assert [e.id for e in got] == [e.id for e in sent]


def test_deliver_new_skips_events_still_on_their_way(kafka_url, make_bus, received):
    bus = make_bus(kafka_url)
    bus.publish("a.b", {"n": 1})  # not yet acknowledged when the subscription starts
    bus.subscribe("a.b", received.append, deliver="new")
    bus.publish("a.b", {"n": 2})
    bus.flush(10)
    assert [e.data["n"] for e in received] == [2]


# -- topics: created with retention, or found and never changed ------------------------------


def test_an_existing_topic_is_used_as_it_is(cluster, make_bus):
    cluster.create_topic("hms.payments", 2, 1)  # another application's topic
    bus = make_bus(cluster.url + "?partitions=1")
    bus.publish("payments.sent", {})
    bus.publish("payments.failed", {})
    bus.flush(10)
    md = Producer({"bootstrap.servers": cluster.bootstrap}).list_topics(timeout=5)
    assert len(md.topics["hms.payments"].partitions) == 2
    status = bus.status()
    assert status["created_topics"] == [] and status["found_topics"] == ["hms.payments"]
    # partitions=1 asked: both bus topics share partition 0 of the found topic
    assert {m.partition() for m in raw_records(cluster.bootstrap, "hms.payments")} == {0}


def test_a_topic_made_after_subscribing_is_read_from_its_start(kafka_url, make_bus, received):
    bus = make_bus(kafka_url.replace("refresh=0.2", "refresh=1.0"))
    prefix = kafka_url.split("prefix=")[1].split("&")[0]
    bus.subscribe(">", received.append, deliver="new")
    bootstrap = kafka_url.split("//")[1].split("?")[0]
    producer = Producer({"bootstrap.servers": bootstrap})
    producer.produce(f"{prefix}.orders", b'{"amount": 5}', partition=0)
    producer.flush(5)
    wait_for(lambda: received, 5)
    ev = received[0]
    assert (ev.topic, ev.src, ev.data) == ("orders", "kafka", {"amount": 5})
    assert ev.id.startswith("evt-k")


def test_foreign_and_malformed_records_never_stall_a_reader(kafka_url, make_bus, received):
    """Another application's records on our topics become events with src "kafka"."""
    bus = make_bus(kafka_url)
    prefix = kafka_url.split("prefix=")[1].split("&")[0]
    bus.publish("orders.new", {"n": 1}, src="shop")
    bus.flush(10)
    producer = Producer({"bootstrap.servers": kafka_url.split("//")[1].split("?")[0]})
    malformed = (b"[" * 5000, b'{"id": "evt-0a1b2c3d-000001", "time": "yesterday"}', b"\xff")
    for value in malformed:
        producer.produce(f"{prefix}.orders", value, partition=0)
    producer.flush(5)
    bus.publish("orders.new", {"n": 2}, src="shop")
    t0 = time.monotonic()
    got = bus.replay(">")
    assert time.monotonic() - t0 < 5
    assert [e.data for e in got if e.src == "shop"] == [{"n": 1}, {"n": 2}]
    foreign = [e for e in got if e.src == "kafka"]
    assert [e.topic for e in foreign] == ["orders"] * 3
    assert [e.data for e in foreign][1:] == [
        {"id": "evt-0a1b2c3d-000001", "time": "yesterday"},
        "\ufffd",
    ]
    assert bus.replay("orders.>") == [e for e in got if e.src == "shop"]
    bus.subscribe(">", received.append)
    bus.flush(10)
    assert len(received) == 5 and all(repr(e) and e.ts for e in received)


# -- faults -------------------------------------------------------------------------------------


def test_brokers_that_go_away_and_come_back_lose_and_repeat_nothing(cluster, make_bus, received):
    bus = make_bus(cluster.url)
    bus.subscribe("payments.*", received.append)
    timer = None
    for i in range(2000):
        if i == 1000:
            cluster.broker_down(ALL_BROKERS)
            timer = threading.Timer(1.5, cluster.broker_up, args=(ALL_BROKERS,))
            timer.start()
        bus.publish("payments.sent", {"i": i})
    bus.flush(30)
    timer.join()
    assert [e.data["i"] for e in bus.replay("payments.sent")] == list(range(2000))
    assert [e.data["i"] for e in received] == list(range(2000))
    assert len(raw_records(cluster.bootstrap, "hms.payments")) == 2000  # idempotence


def test_a_resent_batch_is_stored_twice_by_the_mock_but_seen_once(cluster, make_bus, received):
    """The mock checks sequence numbers only for transactional producers, so a re-send
    after a lost reply is stored again; every reader still sees each event once."""
    bus = make_bus(cluster.url, conf={"socket.timeout.ms": 1000})
    bus.subscribe("payments.>", received.append)
    bus.publish("payments.sent", {"i": -1})
    bus.flush(10)
    for broker in (1, 2, 3):  # the next Produce reply comes after 3 s: the client re-sends
        cluster.delay_replies(broker, PRODUCE, 3000)
    for i in range(100):
        bus.publish("payments.sent", {"i": i})
    bus.flush(30)
    assert len(raw_records(cluster.bootstrap, "hms.payments")) > 101  # the re-send happened
    assert [e.data["i"] for e in bus.replay("payments.>")] == list(range(-1, 100))
    assert [e.data["i"] for e in received] == list(range(-1, 100))
    assert bus.status()["duplicates_dropped"] > 0


def test_flush_raises_with_librdkafkas_reason_and_resend_stores_once(cluster, make_bus):
    bus = make_bus(cluster.url, message_timeout=1.0, conf={"reconnect.backoff.max.ms": 100})
    bus.publish("payments.sent", {"i": 0})
    bus.flush(10)
    cluster.broker_down(ALL_BROKERS)
    lost = bus.publish("payments.sent", {"i": 1})
    with pytest.raises(HmsBusError, match=f"1 event.*{lost.id}.*Message timed out"):
        bus.flush(10)
    bus.flush(10)  # reported once; kept for a re-send
    assert bus.status()["failed"] == 1
    cluster.broker_up(ALL_BROKERS)
    deadline = time.monotonic() + 15
    while True:  # as a user would: send again until a flush succeeds
        assert bus.backend.resend_failed() == 1
        try:
            bus.flush(10)
            break
        except HmsBusError:
            assert time.monotonic() < deadline
    assert bus.status()["failed"] == 0
    assert [e.data["i"] for e in bus.replay(">")] == [0, 1]


def _silent_port() -> tuple[socket.socket, int]:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(5)
    return server, server.getsockname()[1]


@pytest.mark.parametrize(
    ("target", "reason"),
    [
        ("127.0.0.1:1", "Connection refused"),
        ("no-such-host.invalid:9092", "Failed to resolve"),
        ("silent", "Broker transport failure"),
    ],
)
def test_an_unreachable_url_fails_fast_naming_it_and_what_to_do(target, reason):
    server = None
    if target == "silent":  # accepts connections, never answers
        server, port = _silent_port()
        target = f"127.0.0.1:{port}"
    url = f"kafka://{target}?sasl.password=hunter2"
    t0 = time.monotonic()
    try:
        with pytest.raises(HmsBusError) as err:
            kafka_backend(url)
    finally:
        if server is not None:
            server.close()
    assert time.monotonic() - t0 < 5
    text = str(err.value)
    assert f"kafka://{target}?sasl.password=***" in text and "hunter2" not in text
    assert reason in text and "kafka-mock" in text


def test_security_settings_reach_librdkafka_and_its_refusal_is_shown(kafka_cluster):
    """SASL/SSL settings pass through from the URL; the mock speaks no SASL, so the
    handshake fails at once with librdkafka's reason, and the password stays hidden."""
    url = (
        f"{kafka_cluster.url}?security.protocol=SASL_PLAINTEXT&sasl.mechanism=PLAIN"
        f"&sasl.username=ops&sasl.password=hunter2"
    )
    t0 = time.monotonic()
    with pytest.raises(HmsBusError, match="SASL") as err:
        kafka_backend(url)
    assert time.monotonic() - t0 < 5
    assert "hunter2" not in str(err.value) and "sasl.password=***" in str(err.value)


def test_a_password_given_in_conf_to_use_never_shows(kafka_cluster, caplog):
    url = f"{kafka_cluster.url}?security.protocol=SASL_PLAINTEXT&sasl.mechanism=PLAIN"
    with pytest.raises(HmsBusError, match="SASL") as err:
        hms_bus.use(url, conf={"sasl.username": "ops", "sasl.password": "planted-secret-77"})
    assert "planted-secret-77" not in str(err.value) + caplog.text
    assert hms_bus.redact.scrub("login planted-secret-77") == "login ***"


# -- switching the default bus ----------------------------------------------------------------


def test_use_and_the_environment_variable_select_kafka(kafka_url, monkeypatch, received):
    before = hms_bus.bus._default
    try:
        hms_bus.bus._default = None
        monkeypatch.setenv("HMS_BUS_URL", kafka_url)
        bus = hms_bus.get_bus()
        assert type(bus.backend).__name__ == "KafkaBackend"
        hms_bus.publish("payments.sent", {"amount": 1})
        hms_bus.subscribe("payments.*", received.append)
        bus.flush(10)
        assert [e.data for e in received] == [{"amount": 1}]
        bus.close()
        other = hms_bus.use(kafka_url)
        assert hms_bus.replay("payments.*")[0].data == {"amount": 1}
        other.close()
    finally:
        hms_bus.bus._default = before


def test_use_passes_retention_and_max_retained_to_kafka(kafka_url):
    before = hms_bus.bus._default
    try:
        bus = hms_bus.use(kafka_url, clock=VirtualClock(), retention=3600, max_retained=2)
        assert (bus.backend.config.retention, bus.backend.config.max_retained) == (3600.0, 2)
        for n in range(4):
            hms_bus.publish("payments.sent", n)
        assert [e.data for e in hms_bus.replay()] == [2, 3]
        bus.close()
        with pytest.raises(ValueError, match="retention given both in .* and as a keyword"):
            hms_bus.use(kafka_url + "&retention=60", retention=3600)
    finally:
        hms_bus.bus._default = before


def test_status_and_repr_show_the_url_without_secrets(kafka_url, make_bus):
    bus = make_bus(kafka_url, conf={"sasl.password": "hunter2"})
    assert "hunter2" not in repr(bus) + repr(bus.backend) + str(bus.status())
    status = bus.status()
    assert status["state"] == "connected" and status["admin_api"] is False


def test_a_resend_of_an_event_stored_before_the_feed_began_reaches_no_subscriber(cluster, make_bus):
    """The feed starts at the partitions' ends, so it never saw the first record's key.
    A copy stored later (a producer re-sending it) is still no new event: seen in CI as
    an old payment inside notebook 11's ``collect``."""
    bus = make_bus(cluster.url)
    first = bus.publish("payments.sent", {"n": 1})
    got: list = []
    bus.subscribe(">", got.append, deliver="new")  # the feed starts here
    second = bus.publish("payments.sent", {"n": 2})
    bus.flush(10)
    assert [e.id for e in got] == [second.id]
    (stored,) = [r for r in raw_records(cluster.bootstrap, "hms.payments") if r.offset() == 0]
    producer = Producer({"bootstrap.servers": cluster.bootstrap})
    for _ in range(2):
        producer.produce(
            "hms.payments",
            stored.value(),
            stored.key(),
            stored.partition(),
            timestamp=stored.timestamp()[1],
        )
    assert producer.flush(5) == 0
    third = bus.publish("payments.sent", {"n": 3})
    bus.flush(10)
    assert [e.id for e in got] == [second.id, third.id], f"{first.id} came back"
    assert bus.status()["duplicates_dropped"] >= 2


def test_foreign_records_are_all_delivered_counted_and_logged(cluster, make_bus, caplog):
    """Another application on hms.payments: records in the event format keyed by
    customer, plain JSON, a tombstone and bytes that are no text. Every one is
    delivered and replayed once; the odd ones are counted in status() and logged."""
    bus = make_bus(cluster.url)
    got: list = []
    bus.subscribe(">", got.append)
    bus.publish("payments.sent", {"n": 0})
    bus.flush(10)
    producer = Producer({"bootstrap.servers": cluster.bootstrap})
    for i in range(1, 4):
        body = {
            "id": f"evt-abcdef01-{i:06d}",
            "time": 1000.0 + i,
            "topic": "payments.sent",
            "src": "other-app",
            "data": {"i": i},
        }
        producer.produce("hms.payments", json.dumps(body).encode(), key=b"CIT-883")
    for i in range(2):
        producer.produce("hms.payments", json.dumps({"x": i}).encode(), key=b"CIT-883")
    producer.produce("hms.payments", None, key=b"tomb")
    producer.produce("hms.payments", b"\xff\xfe not text")
    assert producer.flush(5) == 0
    with caplog.at_level("INFO", logger="hms_bus.kafka"):
        bus.flush(10)
        replayed = bus.replay(">")
    ids = sorted(e.id for e in got)
    assert len(ids) == 8 == len(set(ids)), ids
    assert sorted(e.id for e in replayed) == ids
    assert [e.data["i"] for e in got if e.src == "other-app"] == [1, 2, 3]
    status = bus.status()
    assert (status["foreign"], status["as_text"], status["duplicates_dropped"]) == (4, 1, 0)
    assert len([r for r in caplog.records if "is not an hms event" in r.getMessage()]) == 4


def test_live_delivery_and_replay_agree_on_another_producers_dotted_topic(cluster, make_bus):
    bus = make_bus(cluster.url)
    live: list = []
    bus.subscribe("payments.*", live.append)
    bus.publish("payments.sent", {"own": 1})
    producer = Producer({"bootstrap.servers": cluster.bootstrap})
    producer.produce("hms.payments.sent", json.dumps({"amount": 5}).encode())
    assert producer.flush(5) == 0
    bus.flush(10)
    late: list = []
    bus.subscribe("payments.*", late.append, deliver="all")
    bus.flush(10)

    def seen(events):
        return sorted((e.topic, e.src, str(e.data)) for e in events)

    assert len(live) == 2
    assert seen(bus.replay("payments.*")) == seen(live) == seen(late) == seen(bus.replay(">"))


def test_use_passes_backend_options_and_names_a_misspelt_one(cluster):
    """Was: TypeError "Bus.__init__() got an unexpected keyword argument 'prefix'"."""
    before = hms_bus.bus._default
    try:
        bus = hms_bus.use(cluster.url, prefix="zz", fetch_wait_ms=10, clock=VirtualClock())
        bus.publish("a.b", 1)
        bus.flush(10)
        assert bus.status()["found_topics"] == ["zz.a"]
        bus.close()
        with pytest.raises(ValueError, match="unknown option.*prefx.*the backend's own are"):
            hms_bus.use(cluster.url, prefx="zz")
    finally:
        hms_bus.bus._default = before
