"""What alert rules cost: publishing with no monitor, the default rule, and four rule kinds.

Run with ``python benchmarks/bench_monitor.py`` (``--quick`` for fewer rounds
and a smaller backtest). The traffic is a simulated payment stream on a
virtual clock, 100 events per simulated second, so each 60 s window holds
about 6,000 events, as a busy day would:

* ``payments.sent`` and ``bank.latency`` (ms, mostly fast, sometimes slow),
* a ``payments.failed`` every 50 events, a ``bank.error`` every 2,000, and a
  storm of 20 errors every 20,000 events (which fires and resolves).

The cases run in interleaved rounds, so a noisy neighbour slows them all
alike; each figure is the median over the rounds. Targets (issue 3): the
four rule kinds together cost at most 3x a bare publish per event, and a
backtest of one million events through them takes under 10 s.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
from collections.abc import Callable

from hms_bus import Bus, VirtualClock
from hms_bus.monitor import Monitor, absence, backtest, default_rules, frequency, ratio, threshold

STEP_S = 0.01  # simulated seconds between events


def four_rules() -> list:
    return [
        frequency("error_storm", "*.error", count=5, window=60),
        absence("bank_down", "payments.sent", window=300),
        threshold("bank_slow", "bank.latency", field="ms", agg="p95", above=2000, window=60),
        ratio("failing", "payments.failed", of="payments.*", above=0.05, window=60),
    ]


def traffic(n: int) -> list[tuple[str, dict]]:
    """A fixed, repeatable event stream of ``n`` (topic, data) pairs."""
    out = []
    for i in range(n):
        if i % 2000 == 1999 or i % 20_000 >= 19_980:  # a steady trickle and a storm now and then
            out.append(("bank.error", {"code": 502}))
        elif i % 50 == 49:
            out.append(("payments.failed", {"user": f"CIT-{i % 997}", "reason": "timeout"}))
        elif i % 2:
            out.append(("bank.latency", {"ms": 3000 if i % 41 == 0 else 80 + i % 300}))
        else:
            out.append(("payments.sent", {"user": f"CIT-{i % 997}", "amount": 1000}))
    return out


def case(rules: list | None, n: int) -> Callable[[], float]:
    """A function that publishes ``n`` events on a fresh bus and returns events/s."""
    events = traffic(n)

    def run() -> float:
        clock = VirtualClock()
        bus = Bus(clock=clock, src="bench", max_retained=100_000)
        mon = Monitor(bus, rules) if rules is not None else None
        publish, advance = bus.publish, clock.advance
        gc.collect()
        t0 = time.perf_counter()
        for topic, data in events:
            advance(STEP_S)
            publish(topic, data)
        took = time.perf_counter() - t0
        if mon is not None:
            mon.close()
        bus.close()
        return n / took

    return run


def backtest_time(n: int) -> tuple[float, int]:
    """Seconds to backtest ``n`` recorded events through the four rules."""
    clock = VirtualClock()
    bus = Bus(clock=clock, src="bench", max_retained=None)
    for topic, data in traffic(n):
        clock.advance(STEP_S)
        bus.publish(topic, data)
    events = bus.replay()
    bus.close()
    gc.collect()
    t0 = time.perf_counter()
    df = backtest(four_rules(), events)
    return time.perf_counter() - t0, len(df)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds, 200k-event backtest")
    parser.add_argument("--rounds", type=int, default=None)
    args = parser.parse_args()
    rounds = args.rounds or (3 if args.quick else 7)
    n = 50_000 if args.quick else 100_000
    cases = {
        "publish, no monitor": case(None, n),
        "publish + default rule": case(default_rules(), n),
        "publish + four rule kinds": case(four_rules(), n),
    }
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(rounds):
        for name, run in cases.items():
            samples[name].append(run())
    eps = {name: statistics.median(v) for name, v in samples.items()}
    print(
        f"events/s on a virtual clock, median of {rounds} interleaved rounds of {n:,} "
        f"(Python {sys.version.split()[0]})"
    )
    for name, v in eps.items():
        print(f"  {name:28s} {v:>12,.0f}   {1e6 / v:6.2f} us/event")
    bare = eps["publish, no monitor"]
    print("cost per event relative to a bare publish (lower is better)")
    print(f"  default rule        {bare / eps['publish + default rule']:5.2f}x")
    print(f"  four rule kinds     {bare / eps['publish + four rule kinds']:5.2f}x   target <= 3")
    total = 200_000 if args.quick else 1_000_000
    took, alerts = backtest_time(total)
    print(
        f"backtest of {total:,} events through four rules: {took:.2f} s "
        f"({total / took:,.0f} events/s, {alerts} notices)   target < 10 s for 1M"
    )


if __name__ == "__main__":
    main()
