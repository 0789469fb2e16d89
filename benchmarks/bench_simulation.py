"""Speed of the Ida relief simulation: the default day, the threshold sweep, a million-event day.

Run with ``make bench`` (or ``python benchmarks/bench_simulation.py``).

The default 24 h day (scenario ``bank_outage``) is timed three ways in
interleaved rounds, and each figure is the median over the rounds:

* **simpy only**: the same model, but ``publish`` only moves the clock (no
  bus), which is the floor the simulation itself sets;
* **bus, no monitor**: every event published, with the audit ledger, the
  dashboard and the pager subscribed;
* **bus + monitor**: what ``run()`` does, with four alert rules.

Ratios compare them within this run. Then, each in a fresh interpreter:

* one default ``run()``, whose peak RSS is the memory yardstick;
* the instructors' sweep, ``sweep("bank_outage", {"monitor.threshold":
  [3, 5, 8]}, seeds=range(1, 11))`` on the default process pool: its wall
  time, the peak RSS of the parent and of the largest worker, and the time
  that one ``run()`` per cell would take (30 times this run's median);
* ``load.scale=8`` (about one million events).

Targets: the default day (at least 100,000 events) in under 2 s; the sweep
under 15 s with no process over 1.3 times one run's peak RSS; the
million-event day under 15 s and 2 GB.

``--quick`` runs fewer rounds and skips the million-event day.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from simulations import Scenario, ida, run  # noqa: E402
from simulations.runner import simulate  # noqa: E402

SCENARIO = "bank_outage"
SCALE = 8  # load.scale giving about one million events


def simpy_only() -> tuple[float, int]:
    """The model with a publish that only counts: the SimPy floor."""
    real = ida.Relief.publish
    count = [0]

    def publish(self, topic, data, src):  # noqa: ARG001
        count[0] += 1

    ida.Relief.publish = publish
    try:
        t = time.perf_counter()
        simulate(Scenario.load(SCENARIO), seed=ida.RANDOM_SEED, hours=24, monitor=False)
        return time.perf_counter() - t, count[0]
    finally:
        ida.Relief.publish = real


def bus_only() -> tuple[float, int]:
    t = time.perf_counter()
    day = simulate(Scenario.load(SCENARIO), seed=ida.RANDOM_SEED, hours=24, monitor=False)
    return time.perf_counter() - t, len(day.events)


def full_run() -> tuple[float, int]:
    t = time.perf_counter()
    result = run(SCENARIO, seed=ida.RANDOM_SEED, progress=False)
    return time.perf_counter() - t, result.summary["events"]


def with_frame() -> tuple[float, int]:
    """``run()`` and then ``result.events``, as a notebook slider would."""
    t = time.perf_counter()
    result = run(SCENARIO, seed=ida.RANDOM_SEED, progress=False)
    n = len(result.events)
    return time.perf_counter() - t, n


CASES = {
    "simpy only (publish counts)": simpy_only,
    "bus, no monitor": bus_only,
    "bus + monitor = run()": full_run,
    "run() + result.events DataFrame": with_frame,
}


def fresh(code: str) -> dict:
    """Run ``code`` in a fresh interpreter; it prints one JSON line last.

    Peak memory is read from /proc (VmHWM): Linux carries a parent's peak RSS
    over exec into ``getrusage``, so that would report the benchmark's own."""
    head = (
        f"import json, resource, sys, time\nsys.path.insert(0, {str(ROOT)!r})\n"
        "def hwm():\n"
        "    for line in open('/proc/self/status'):\n"
        "        if line.startswith('VmHWM:'):\n"
        "            return int(line.split()[1]) / 1024\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", head + code], capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


ONE_RUN = f"""
from simulations import run
t = time.perf_counter()
r = run({SCENARIO!r}, seed=7, progress=False)
wall = time.perf_counter() - t
print(json.dumps({{"wall_s": wall, "peak_mib": hwm(), "cpu_s": time.process_time()}}))
"""

SWEEP = f"""
import threading
import psutil
from simulations import sweep
peaks, total, done = {{}}, [0.0], threading.Event()
def watch():  # every worker's RSS, and all processes' PSS together, every 50 ms
    me = psutil.Process()
    while not done.wait(0.05):
        together = me.memory_full_info().pss
        for kid in me.children(recursive=True):
            try:
                rss, pss = kid.memory_info().rss, kid.memory_full_info().pss
            except psutil.Error:
                continue
            peaks[kid.pid] = max(peaks.get(kid.pid, 0), rss)
            together += pss
        total[0] = max(total[0], together)
watcher = threading.Thread(target=watch, daemon=True)
t = time.perf_counter()
if WATCH:
    watcher.start()
s = sweep({SCENARIO!r}, {{"monitor.threshold": [3, 5, 8]}}, seeds=range(1, 11), progress=False)
wall = time.perf_counter() - t
done.set()
if WATCH:
    watcher.join()
me = resource.getrusage(resource.RUSAGE_SELF)
kids = resource.getrusage(resource.RUSAGE_CHILDREN)
cpu = me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime
print(s.report(), file=sys.stderr)
print(json.dumps({{"wall_s": wall, "parent_mib": hwm(), "cpu_s": cpu,
                  "worker_mib": max(peaks.values(), default=0) / 2**20,
                  "all_mib": total[0] / 2**20, "workers": len(peaks)}}))
"""


def million() -> dict:
    """Run the million-event day in a fresh interpreter; report time and peak RSS."""
    code = f"""
import json, resource, sys, time
sys.path.insert(0, {str(ROOT)!r})
from simulations import run
t = time.perf_counter()
c = time.process_time()
r = run({SCENARIO!r}, seed=7, progress=False, **{{"load.scale": {SCALE}}})
sim = time.perf_counter() - t
cpu = time.process_time() - c
t = time.perf_counter()
n = len(r.events)
frame = time.perf_counter() - t
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({{"events": n, "run_s": sim, "cpu_s": cpu, "frame_s": frame, "peak_mib": peak,
                  "detect_s": r.summary["time_to_detect_s"]}}))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 rounds, no million-event day")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    rounds = 2 if args.quick else args.rounds

    samples: dict[str, list[float]] = {name: [] for name in CASES}
    events: dict[str, int] = {}
    for _ in range(rounds):
        for name, case in CASES.items():
            wall, n = case()
            samples[name].append(wall)
            events[name] = n
    med = {name: statistics.median(v) for name, v in samples.items()}

    print(f"default day ({SCENARIO}, 24 h, seed 7): median of {rounds} interleaved rounds")
    print(f"  {'case':34s} {'wall s':>8} {'events':>9} {'events/s':>10}")
    for name, wall in med.items():
        n = events[name]
        print(f"  {name:34s} {wall:8.3f} {n:9,d} {n / wall:10,.0f}")
    base = med["simpy only (publish counts)"]
    print("ratios (wall time against simpy only)")
    for name, wall in med.items():
        print(f"  {name:34s} {wall / base:6.2f}x")
    full = med["bus + monitor = run()"]
    ok = full < 2.0 and events["bus + monitor = run()"] >= 100_000
    print(f"target: >= 100,000 events in < 2 s -> {full:.2f} s, {'met' if ok else 'MISSED'}")

    one = fresh(ONE_RUN)
    sw = fresh("WATCH = False\n" + SWEEP)  # timed alone: watching memory costs CPU
    watched = fresh("WATCH = True\n" + SWEEP)
    sw.update({k: v for k, v in watched.items() if k not in ("wall_s", "cpu_s")})
    cells = 30
    naive = cells * full
    worst = max(sw["parent_mib"], sw["worker_mib"])
    print("threshold sweep: monitor.threshold=3,5,8 x seeds 1-10, 24 h days, fresh interpreter")
    print(
        f"  sweep() {sw['wall_s']:.2f} s on {os.cpu_count()} cores; one run() per cell would "
        f"take ~{naive:.1f} s ({cells} x {full:.2f} s): {naive / sw['wall_s']:.1f}x faster"
    )
    print(
        f"  memory (a second sweep, watched every 50 ms): parent {sw['parent_mib']:.0f} MiB, "
        f"largest of {sw['workers']} workers "
        f"{sw['worker_mib']:.0f} MiB; one run() alone {one['peak_mib']:.0f} MiB "
        f"-> {worst / one['peak_mib']:.2f}x; all processes together (PSS, shared pages "
        f"counted once) {sw['all_mib']:.0f} MiB, {sw['all_mib'] / one['peak_mib']:.2f}x"
    )
    cores = os.cpu_count() or 1
    print(
        f"  CPU time: sweep {sw['cpu_s']:.1f} s in all processes (imports included), "
        f"{sw['cpu_s'] / cores:.1f} s per core; one run() {one['cpu_s']:.2f} s "
        f"(the machine is shared: wall time above includes waiting for a core)"
    )
    ok = sw["wall_s"] < 15 and worst <= 1.3 * one["peak_mib"]
    print(f"target: < 15 s and <= 1.3x one run's peak RSS -> {'met' if ok else 'MISSED'}")

    if not args.quick:
        m = million()
        ok = m["run_s"] < 15 and m["peak_mib"] < 2048
        print(f"million-event day (load.scale={SCALE}), one run in a fresh interpreter")
        print(
            f"  {m['events']:,} events: run() {m['run_s']:.2f} s "
            f"({m['events'] / m['run_s']:,.0f} events/s; {m['cpu_s']:.1f} s of CPU), "
            f"result.events {m['frame_s']:.2f} s, "
            f"peak RSS {m['peak_mib']:,.0f} MiB"
        )
        print(f"target: < 15 s and < 2 GB -> {'met' if ok else 'MISSED'}")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"(this process peak RSS {peak:.0f} MiB)")


if __name__ == "__main__":
    main()
