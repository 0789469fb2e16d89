"""Publish throughput on NATS JetStream: hms_bus versus raw nats-py ``publish_async``.

Run with ``make bench`` (or ``python benchmarks/bench_nats.py``). One local
``nats-server -js`` serves both cases, each on a stream of its own:

* **hms_bus**: ``bus.publish(topic, data)`` N times, then ``bus.flush()``,
  which returns once every event is acknowledged by the stream.
* **hms_bus, delivered**: the same on a bus with one subscriber, so
  ``flush()`` also waits until every event came back from the stream and
  reached the subscriber (not part of the target; it shows the feed's cost).
* **raw nats-py**: the same N payloads JSON-encoded and sent with
  ``js.publish_async`` (with a ``Nats-Msg-Id`` header, as hms_bus sends),
  then ``publish_async_completed()`` and a check of every ack.

Rounds interleave the two cases; each figure is the median over rounds and
the ratio compares figures from this one run. Target: hms_bus >= 0.7x raw.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time

import nats

from hms_bus import Bus
from hms_bus.backends import nats_backend
from hms_bus.server import NatsServer

TOPIC = "payments.sent"


def payloads(n: int) -> list[dict]:
    return [{"user": f"CIT-{i}", "amount": 1000, "i": i} for i in range(n)]


def run_hms(bus: Bus, data: list[dict], got: list | None = None) -> float:
    acked = bus.backend.counts["acked"]
    before = len(got) if got is not None else 0
    t0 = time.perf_counter()
    for d in data:
        bus.publish(TOPIC, d)
    bus.flush()
    dt = time.perf_counter() - t0
    assert bus.backend.counts["acked"] - acked == len(data), bus.status()
    if got is not None:
        assert len(got) - before == len(data), (len(got), before)
    return len(data) / dt


async def raw_round(js, data: list[dict], round_no: int) -> float:
    t0 = time.perf_counter()
    futs = []
    for i, d in enumerate(data):
        body = json.dumps(d, separators=(",", ":")).encode()
        hdr = {"Nats-Msg-Id": f"raw-{round_no}-{i}"}
        futs.append(await js.publish_async(f"raw.{TOPIC}", body, headers=hdr))
    await js.publish_async_completed()
    dt = time.perf_counter() - t0
    acks = [f.result() for f in futs]
    assert len(acks) == len(data) and not any(a.duplicate for a in acks)
    return len(data) / dt


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="3 rounds of 10,000 events")
    args = parser.parse_args()
    if args.quick:
        args.events, args.rounds = 10_000, 3
    data = payloads(args.events)
    with NatsServer() as server:
        bus = Bus(nats_backend(f"{server.url}?stream=BENCH_HMS&prefix=bench"), src="bench")
        fed = Bus(nats_backend(f"{server.url}?stream=BENCH_FED&prefix=fed"), src="bench")
        got: list = []
        fed.subscribe(">", got.append, deliver="new")
        loop = asyncio.new_event_loop()
        nc = loop.run_until_complete(nats.connect(server.url))
        js = nc.jetstream()
        loop.run_until_complete(js.add_stream(name="BENCH_RAW", subjects=["raw.>"]))
        run_hms(bus, data[:1000])  # warm up all three
        run_hms(fed, data[:1000], got)
        loop.run_until_complete(raw_round(js, data[:1000], -1))
        hms, raw, delivered = [], [], []
        for r in range(args.rounds):
            hms.append(run_hms(bus, data))
            raw.append(loop.run_until_complete(raw_round(js, data, r)))
            delivered.append(run_hms(fed, data, got))
        loop.run_until_complete(nc.close())
        loop.close()
        bus.close()
        fed.close()
    h, w, d = statistics.median(hms), statistics.median(raw), statistics.median(delivered)
    print(f"{args.events:,} events x {args.rounds} interleaved rounds, one local nats-server")
    print(f"  hms_bus publish + flush   {h:>9,.0f} events/s  (every event acked)")
    print(f"  raw nats-py publish_async {w:>9,.0f} events/s  (every event acked)")
    verdict = "meets" if h >= 0.7 * w else "MISSES"
    print(f"  ratio hms_bus / raw       {h / w:9.2f}x  ({verdict} the 0.7x target)")
    print(f"  hms_bus, 1 subscriber     {d:>9,.0f} events/s  (acked, fed back and delivered)")
    print(f"  ratio that / raw          {d / w:9.2f}x")


if __name__ == "__main__":
    main()
