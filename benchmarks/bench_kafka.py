"""Publish throughput on Kafka: hms_bus versus raw confluent-kafka ``produce`` + ``flush``.

Run with ``make bench`` (or ``python benchmarks/bench_kafka.py``). One
librdkafka mock cluster (1 broker, in this process) serves every case; each
producer is idempotent with ``acks=all`` and ``linger.ms=5``, and is warmed up
(its producer id acquired) before timing.

* **hms_bus**: ``bus.publish(topic, data)`` N times, then ``bus.flush()``,
  which returns once every event is acknowledged (and raises otherwise).
* **hms_bus, delivered** (for information): the same on a bus with one
  subscriber, so ``flush()`` also waits until every event came back from
  Kafka through the feed and reached the subscriber.
* **raw, same records** (the peer for the target): what any client must do
  to put the same information on Kafka. For each event it reads the clock,
  builds the event's JSON with ``json.dumps`` (byte for byte what hms_bus
  writes: id, time, topic, src, data), and calls ``produce`` with the same
  key (``<event id>.<session>``), partition and timestamp (ms); then
  ``flush()`` and a check that no delivery failed.
* **raw, data only** (for information): ``json.dumps(data)`` and a bare
  ``produce(topic, value)``: no id, time, key or timestamp, so less to do.

Rounds interleave the cases; each figure is the median over rounds, and each
ratio the median of the per-round ratios, all from this one run.
Target: hms_bus >= 0.7x raw, same records.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import time

import confluent_kafka
from confluent_kafka import Producer

from hms_bus import Bus, Event
from hms_bus.backends import kafka_backend
from hms_bus.backends.kafka.mock import MockKafkaCluster
from hms_bus.backends.kafka.wire import Encoder
from hms_bus.event import freeze

TOPIC = "payments.sent"
SRC = "bench"


def payloads(n: int) -> list[dict]:
    return [{"user": f"CIT-{i}", "amount": 1000, "i": i} for i in range(n)]


def producer_conf(bootstrap: str, failures: list) -> dict:
    quiet = logging.getLogger("bench_kafka.librdkafka")
    quiet.addHandler(logging.NullHandler())
    quiet.propagate = False
    return {
        "bootstrap.servers": bootstrap,
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 5,
        "queue.buffering.max.messages": 1_000_000,
        "delivery.report.only.error": True,
        "on_delivery": lambda err, msg: failures.append(err) if err else None,
        "logger": quiet,
    }


def run_hms(bus: Bus, data: list[dict], got: list | None = None) -> float:
    publish = bus.publish
    before = len(got) if got is not None else 0
    t0 = time.perf_counter()
    for d in data:
        publish(TOPIC, d)
    bus.flush()
    rate = len(data) / (time.perf_counter() - t0)
    assert got is None or len(got) - before == len(data), (len(got) - before, len(data))
    return rate


class RawSameRecords:
    """A plain confluent-kafka client writing the records hms_bus writes."""

    def __init__(self, bootstrap: str, bus_id: str, session: str) -> None:
        self.failures: list = []
        self.producer = Producer(producer_conf(bootstrap, self.failures))
        self.bus_id, self.suffix = bus_id, "." + session
        self.seq = 0

    def record(self, data: dict) -> tuple[bytes, bytes, int]:
        self.seq += 1
        eid = f"evt-{self.bus_id}-{self.seq:06d}"
        t = time.time()
        body = {"id": eid, "time": t, "topic": TOPIC, "src": SRC, "data": data}
        value = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
        return value, (eid + self.suffix).encode(), int(t * 1000)

    def run(self, name: str, data: list[dict]) -> float:
        produce, record = self.producer.produce, self.record
        t0 = time.perf_counter()
        for d in data:
            value, key, ms = record(d)
            produce(name, value, key, 0, timestamp=ms)
        left = self.producer.flush(60)
        rate = len(data) / (time.perf_counter() - t0)
        assert left == 0 and not self.failures, (left, self.failures[:1])
        return rate


def run_raw_data_only(producer: Producer, failures: list, name: str, data: list[dict]) -> float:
    produce, dumps = producer.produce, json.dumps
    t0 = time.perf_counter()
    for d in data:
        produce(name, dumps(d).encode())
    left = producer.flush(60)
    rate = len(data) / (time.perf_counter() - t0)
    assert left == 0 and not failures
    return rate


def check_same_bytes(raw: RawSameRecords, session: str) -> None:
    """The peer's value and key equal what the backend's encoder writes for that event."""
    data = {"user": "CIT-883", "amount": 1000, "note": "ü"}
    value, key, ms = raw.record(data)
    body = json.loads(value)
    event = Event(TOPIC, freeze(data), SRC, body["time"], raw.seq, raw.bus_id)
    assert Encoder(session).encode(event) == (value, key, ms), "the peer writes other bytes"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="3 rounds of 5,000 events")
    args = parser.parse_args()
    if args.quick:
        args.events, args.rounds = 5_000, 3
    data = payloads(args.events)
    with MockKafkaCluster(1) as cluster:
        backend = kafka_backend(f"{cluster.url}?prefix=bench")
        bus = Bus(backend, src=SRC)
        raw = RawSameRecords(cluster.bootstrap, bus.id, backend.session)
        check_same_bytes(raw, backend.session)
        delivered = Bus(kafka_backend(f"{cluster.url}?prefix=delivered"), src=SRC)
        got: list = []
        delivered.subscribe(">", got.append)
        plain_failures: list = []
        plain = Producer(producer_conf(cluster.bootstrap, plain_failures))
        run_hms(bus, data[:1000])  # warm up: topics made, producer ids acquired
        run_hms(delivered, data[:1000], got)
        raw.run("raw.same", data[:1000])
        run_raw_data_only(plain, plain_failures, "raw.data", data[:1000])
        rates: dict[str, list[float]] = {"hms": [], "delivered": [], "same": [], "data": []}
        for _ in range(args.rounds):
            rates["hms"].append(run_hms(bus, data))
            rates["delivered"].append(run_hms(delivered, data, got))
            del got[:]
            rates["same"].append(raw.run("raw.same", data))
            rates["data"].append(run_raw_data_only(plain, plain_failures, "raw.data", data))
        assert bus.status()["failed"] == 0, bus.status()
        bus.close()
        delivered.close()
    med = {k: statistics.median(v) for k, v in rates.items()}
    vs_same = statistics.median(h / s for h, s in zip(rates["hms"], rates["same"], strict=True))
    vs_data = statistics.median(h / d for h, d in zip(rates["hms"], rates["data"], strict=True))
    print(
        f"{args.events:,} events x {args.rounds} interleaved rounds, librdkafka mock cluster "
        f"(1 broker), confluent-kafka {confluent_kafka.version()}, idempotent, acks=all"
    )
    print(f"  hms_bus publish + flush              {med['hms']:>9,.0f} events/s")
    print(
        f"  hms_bus, delivered to a subscriber   {med['delivered']:>9,.0f} events/s  (information)"
    )
    print(f"  raw produce + flush, same records    {med['same']:>9,.0f} events/s")
    print(f"  raw produce + flush, json(data) only {med['data']:>9,.0f} events/s  (information)")
    verdict = "meets" if vs_same >= 0.7 else "MISSES"
    print(f"  ratio hms_bus / raw same records     {vs_same:9.2f}x  ({verdict} the 0.7x target)")
    print(f"  ratio hms_bus / raw json(data) only  {vs_data:9.2f}x")


if __name__ == "__main__":
    main()
