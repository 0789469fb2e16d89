"""Publish throughput of hms_bus beside blinker, pyee, the chapter's stub and a bare loop.

Run with ``make bench`` (or ``python benchmarks/bench_bus.py``). Every case is
timed in rounds that interleave the cases, so a noisy neighbour slows them all
alike; each figure is the median over the rounds. Ratios compare cases from
this one run only.

``--quick`` runs fewer rounds and skips the 10-million-event memory check.
``--baseline REV`` also times the package as it was at git revision ``REV``
(e.g. ``main`` or a commit), in the same interleaved rounds, and prints this
tree's speed as a ratio of it: the way to show a change is no slower. The old
package is extracted to a temporary directory and imported under another
name; nothing is written into the repository.
"""

from __future__ import annotations

import argparse
import fnmatch
import gc
import importlib.util
import io
import itertools
import resource
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import blinker
import pyee

from hms_bus import Bus

DATA = {"user": "CIT-883", "amount": 1000}


# -- the chapter's stub, copied as the baseline (core.py + retention.py) -------
class ChapterStub:
    KEEP_SEC = 24 * 3600

    def __init__(self) -> None:
        self._subs: dict[str, list] = {}
        self._buf: list[dict] = []

    def publish(self, topic, data):
        evt = {"ts": self._now(), "topic": topic, "data": data, "id": self._uid()}
        self.save(evt)
        for pat, fns in self._subs.items():
            if fnmatch.fnmatch(topic, pat):
                for fn in fns:
                    fn(evt)

    def subscribe(self, pattern, fn):
        self._subs.setdefault(pattern, []).append(fn)

    def save(self, evt):
        self._buf.append(evt)
        self._expire()

    def _expire(self):
        while self._buf and self._age(self._buf[0]) > self.KEEP_SEC:
            self._buf.pop(0)

    @staticmethod
    def _now():
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())

    @staticmethod
    def _uid():
        return "evt-" + uuid.uuid4().hex[:6]

    @staticmethod
    def _age(e):
        return time.time() - time.mktime(time.strptime(e["ts"], "%Y-%m-%dT%H:%M:%SZ"))


def sink(ev) -> None:
    pass


def sink_kw(sender, **kw) -> None:
    pass


# -- cases: each returns a function that publishes n events ---------------------
def hms(n_subs: int, n_other: int = 0, bus_class: type = Bus) -> Callable[[int], None]:
    bus = bus_class(src="bench", max_retained=100_000)
    for i in range(n_other):
        bus.subscribe(f"other{i}.x", sink, deliver="new")
    for _ in range(n_subs):
        bus.subscribe("payments.*", sink, deliver="new")
    publish = bus.publish

    def run(n: int) -> None:
        for _ in range(n):
            publish("payments.sent", DATA)

    return run


def blinker_send(full_event: bool) -> Callable[[int], None]:
    sig = blinker.Signal()
    sig.connect(sink_kw)
    ids = itertools.count()
    send = sig.send

    if not full_event:

        def run(n: int) -> None:
            for _ in range(n):
                send("payments.sent", data=DATA)

    else:

        def run(n: int) -> None:
            for _ in range(n):
                send(
                    "payments.sent",
                    event={
                        "ts": time.time(),
                        "topic": "payments.sent",
                        "data": dict(DATA),
                        "src": "bench",
                        "id": next(ids),
                    },
                )

    return run


def pyee_emit() -> Callable[[int], None]:
    ee = pyee.EventEmitter()
    ee.on("payments.sent", sink)
    emit = ee.emit

    def run(n: int) -> None:
        for _ in range(n):
            emit("payments.sent", DATA)

    return run


def stub(n_other: int = 0) -> Callable[[int], None]:
    s = ChapterStub()
    for i in range(n_other):
        s.subscribe(f"other{i}.x", sink)
    s.subscribe("payments.*", sink)

    def run(n: int) -> None:
        for _ in range(n):
            s.publish("payments.sent", DATA)

    return run


def bare_loop() -> Callable[[int], None]:
    def run(n: int) -> None:
        for _ in range(n):
            sink({"topic": "payments.sent", "data": DATA})

    return run


def timed(run: Callable[[int], None], n: int) -> float:
    gc.collect()
    t0 = time.perf_counter()
    run(n)
    return n / (time.perf_counter() - t0)


def load_baseline(rev: str, into: str) -> ModuleType:
    """The ``hms_bus`` package as it was at git revision ``rev``, as module ``hms_bus_baseline``."""
    root = Path(__file__).resolve().parents[1]
    archive = subprocess.run(
        ["git", "-C", str(root), "archive", "--format=tar", rev, "hms_bus"],
        capture_output=True,
        check=True,
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    package = Path(into) / "hms_bus"
    spec = importlib.util.spec_from_file_location(
        "hms_bus_baseline", package / "__init__.py", submodule_search_locations=[str(package)]
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["hms_bus_baseline"] = module
    spec.loader.exec_module(module)
    return module


BASELINE_PAIRS = {
    "hms_bus -> 1 subscriber": "baseline -> 1 subscriber",
    "hms_bus, 0 subscriptions": "baseline, 0 subscriptions",
    "hms_bus, 10,000 non-matching": "baseline, 10,000 non-matching",
}
"""Each case beside its baseline twin: timed back to back, in turns first."""


def throughput(
    rounds: int, baseline: ModuleType | None = None
) -> tuple[dict[str, float], dict[str, float]]:
    """Median events/s per case, and per baseline pair the median of the
    per-round ratios (this tree / baseline), which a noisy neighbour disturbs
    least because the two are timed back to back."""
    cases: dict[str, tuple[Callable[[int], None], int]] = {
        "hms_bus -> 1 subscriber": (hms(1), 100_000),
        "hms_bus -> 10 subscribers": (hms(10), 50_000),
        "hms_bus, 0 subscriptions": (hms(0), 100_000),
        "hms_bus, 1,000 non-matching": (hms(0, 1_000), 100_000),
        "hms_bus, 10,000 non-matching": (hms(0, 10_000), 100_000),
        "blinker send, 1 receiver": (blinker_send(False), 100_000),
        "blinker send, full event built": (blinker_send(True), 100_000),
        "pyee emit, 1 listener": (pyee_emit(), 100_000),
        "chapter stub -> 1 subscriber": (stub(), 5_000),
        "chapter stub, 10,000 non-matching": (stub(10_000), 50),
        "bare loop (dict + call)": (bare_loop(), 200_000),
    }
    pairs = BASELINE_PAIRS if baseline is not None else {}
    if baseline is not None:
        cases["baseline -> 1 subscriber"] = (hms(1, bus_class=baseline.Bus), 100_000)
        cases["baseline, 0 subscriptions"] = (hms(0, bus_class=baseline.Bus), 100_000)
        cases["baseline, 10,000 non-matching"] = (hms(0, 10_000, baseline.Bus), 100_000)
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for i in range(rounds):
        for name in cases:
            if name in pairs.values():
                continue  # timed beside its twin
            group = [name, pairs[name]] if name in pairs else [name]
            for member in group if i % 2 == 0 else reversed(group):
                run, n = cases[member]
                samples[member].append(timed(run, n))
    medians = {name: statistics.median(v) for name, v in samples.items()}
    paired = {
        name: statistics.median(a / b for a, b in zip(samples[name], samples[twin], strict=True))
        for name, twin in pairs.items()
    }
    return medians, paired


def memory_check(total: int = 10_000_000, keep: int = 1_000_000) -> tuple[float, float]:
    """Peak RSS (MiB) after the first ``keep`` publishes and after ``total``."""
    code = f"""
import resource
from hms_bus import Bus
bus = Bus(src="bench", max_retained={keep})
publish = bus.publish
for i in range({keep}):
    publish("flood.x", {{"n": i, "user": "CIT-883"}})
first = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
for i in range({keep}, {total}):
    publish("flood.x", {{"n": i, "user": "CIT-883"}})
print(first, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    first, last = (int(x) / 1024 for x in out.stdout.split())
    return first, last


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds, no memory check")
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument(
        "--baseline", metavar="REV", help="also time hms_bus at this git revision, e.g. main"
    )
    args = parser.parse_args()
    rounds = args.rounds or (3 if args.quick else 9)
    with tempfile.TemporaryDirectory(prefix="hms-bench-baseline-") as tmp:
        baseline = load_baseline(args.baseline, tmp) if args.baseline else None
        r, paired = throughput(rounds, baseline)
    print(f"events/s, median of {rounds} interleaved rounds (Python {sys.version.split()[0]})")
    for name, eps in r.items():
        print(f"  {name:36s} {eps:>12,.0f}")
    one = r["hms_bus -> 1 subscriber"]
    zero = r["hms_bus, 0 subscriptions"]
    stub_zero = r["chapter stub -> 1 subscriber"]
    print("ratios (higher is better for hms_bus)")
    rows = [
        ("hms_bus 1-sub / blinker send", one / r["blinker send, 1 receiver"], ">= 1.5"),
        (
            "hms_bus 1-sub / blinker send + full event",
            one / r["blinker send, full event built"],
            "(same work)",
        ),
        ("hms_bus 1-sub / pyee emit", one / r["pyee emit, 1 listener"], ""),
        ("hms_bus 1-sub / chapter stub", one / stub_zero, ">= 4"),
        ("hms_bus 1-sub / bare loop", one / r["bare loop (dict + call)"], "(floor)"),
        ("cost of 10,000 non-matching (x)", zero / r["hms_bus, 10,000 non-matching"], "<= 1.3"),
        ("cost of 1,000 non-matching (x)", zero / r["hms_bus, 1,000 non-matching"], ""),
        (
            "stub: cost of 10,000 non-matching (x)",
            stub_zero / r["chapter stub, 10,000 non-matching"],
            "",
        ),
    ]
    if args.baseline:
        base_one = r["baseline -> 1 subscriber"]
        base_zero = r["baseline, 0 subscriptions"]
        rows += [
            (
                f"hms_bus 1-sub / {args.baseline} 1-sub (paired)",
                paired["hms_bus -> 1 subscriber"],
                ">= 1.0 (no slower)",
            ),
            (
                f"hms_bus 0-sub / {args.baseline} 0-sub (paired)",
                paired["hms_bus, 0 subscriptions"],
                "",
            ),
            (
                f"hms_bus 10k non-matching / {args.baseline} (paired)",
                paired["hms_bus, 10,000 non-matching"],
                "",
            ),
            (f"{args.baseline} 1-sub / blinker send", base_one / r["blinker send, 1 receiver"], ""),
            (f"{args.baseline} 1-sub / chapter stub", base_one / stub_zero, ""),
            (
                f"{args.baseline}: cost of 10,000 non-matching (x)",
                base_zero / r["baseline, 10,000 non-matching"],
                "",
            ),
        ]
    for name, ratio, target in rows:
        print(f"  {name:50s} {ratio:8.2f}  {target}")
    if not args.quick:
        first, last = memory_check()
        print(
            f"peak RSS: {first:,.0f} MiB after 1M publishes, {last:,.0f} MiB after 10M "
            f"(max_retained=1M): ratio {last / first:.2f} (target <= 1.2)"
        )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"(this process peak RSS {peak:.0f} MiB)")


if __name__ == "__main__":
    main()
