"""
Hurricane Ida relief day: citizens, HMS-HLT, HMS-ACH and a bank, all on the bus.

Covers:

- Driving an ``hms_bus.VirtualClock`` from SimPy's clock, so every event
  carries its simulated time
- A day-long, non-homogeneous Poisson arrival process (one process, thinning)
- Resources with capacity (HLT case workers, bank connections), timeouts and
  retries
- Subscribers that watch the day: the governor's dashboard, the monitor, the
  on-call pager and the audit ledger

Scenario:
  Hurricane Ida makes landfall and the state opens one-stop emergency funds:
  $1,000 for every household that had to evacuate for medical reasons.
  Citizens ask for the money through the portal, more of them right after
  landfall. HMS-HLT checks each citizen's evacuation record (a few case
  workers, each taking a little while). HMS-ACH wires the money to approved
  citizens through the bank's API, which has a limited number of
  connections, a random latency and an occasional failure; ACH retries with
  a back-off and gives up after a timeout.

  Some days the bank slows down or goes down for a while. The monitor turns
  the resulting errors into alerts, the pager wakes the on-call operator,
  and the question for the day is how long that took.
"""

from __future__ import annotations

import gc
import itertools
import math
import random
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import simpy

from hms_bus import Bus, VirtualClock

from .watchers import AuditLedger, Dashboard, Pager

RANDOM_SEED = 7
SIM_HOURS = 24  # h of simulated time in a run
START = "2021-08-29T00:00:00Z"  # the simulated day starts here (Ida's landfall day)

CITIZENS_PER_HOUR = 1000  # requests per hour when the day profile is 1.0
DAY_PROFILE = (  # share of CITIZENS_PER_HOUR in each hour of the day, 00h..23h
    0.25, 0.2, 0.15, 0.15, 0.2, 0.35, 0.6, 0.9, 1.1, 1.25, 1.3, 1.3,
    1.25, 1.25, 1.2, 1.2, 1.15, 1.1, 1.05, 1.0, 0.9, 0.7, 0.5, 0.35,
)  # fmt: skip
LANDFALL_H = 12  # h after START when the storm makes landfall
SURGE = 3.0  # requests multiply by this right after landfall ...
SURGE_HOURS = 6  # h ... and the extra decays by a factor e in this time

HLT_WORKERS = 8  # case workers checking evacuation records in parallel
HLT_SERVICE_S = 2.0  # s, mean time to check one record (exponential)
HLT_EVACUATED = 0.7  # share of citizens with a medical evacuation on record
HLT_ERROR_RATE = 0.002  # share of checks where the records system fails

ACH_AMOUNT = 1000  # $ wired per approved request
ACH_TIMEOUT_S = 30  # s ACH waits for the bank before giving up on an attempt
ACH_RETRIES = 2  # extra attempts after a failed one
ACH_BACKOFF_S = 5  # s before the first retry; doubles for each later one

BANK_LINES = 20  # concurrent connections the bank API accepts
BANK_LATENCY_S = 0.8  # s, median response time (log-normal)
BANK_LATENCY_SIGMA = 0.5  # spread of the log-normal latency
BANK_FAILURE_RATE = 0.005  # share of calls answered with HTTP 500
BANK_REFUSE_S = 0.05  # s to refuse a call while the bank is down

SLOWDOWN_FACTOR = 20  # latency multiplies by this during a slowdown
BRIDGE_PING_S = 30  # s between the bridge's pings of the partner bank
MGMT_CHECK_S = 60  # s between the management layer's health checks
HLT_DEGRADED_QUEUE = 25  # citizens waiting for HLT before it counts as degraded
DASHBOARD_SAMPLE_S = 600  # s between snapshots of the governor's dashboard
TICK_S = 5.0  # s; an idle clock still moves this often, so silence is noticed
CHUNK_S = 900  # s of simulated time between progress-bar updates


class Relief:
    """The shared world: SimPy environment, bus, clock and random streams.

    ``publish`` is how every actor speaks. It moves the bus's virtual clock
    to SimPy's time first, but only when time has actually moved, which keeps
    a busy simulated second cheap.
    """

    def __init__(self, env: simpy.Environment, bus: Bus, clock: VirtualClock, seed: int) -> None:
        self.env = env
        self.bus = bus
        self.clock = clock
        self.t0 = clock.now()
        self._last = 0.0
        self._publish = bus.publish
        self._set = clock.set
        self.seed = seed

    def rng(self, stream: str) -> random.Random:
        """An independent random stream per actor, so changing one actor's
        parameters does not reshuffle the others' draws."""
        return random.Random(f"{self.seed}:{stream}")

    def publish(self, topic: str, data: Any, src: str) -> None:
        now = self.env._now
        if now != self._last:
            self._last = now
            self._set(self.t0 + now)
        self._publish(topic, data, src=src)

    def tick(self) -> None:
        now = self.env._now
        if now != self._last:
            self._last = now
            self._set(self.t0 + now)


class Hlt:
    """HMS-HLT, the health system: a few case workers check evacuation records."""

    def __init__(self, relief: Relief, p: Mapping[str, Any]) -> None:
        self.workers = simpy.Resource(relief.env, int(p["hlt.workers"] * p["load.scale"]))
        self.mean_s = p["hlt.service_s"]
        self.evacuated = p["hlt.evacuated"]
        self.error_rate = p["hlt.error_rate"]
        self.rng = relief.rng("hlt")

    def service_time(self) -> float:
        return self.rng.expovariate(1.0 / self.mean_s)

    def outcome(self) -> str:
        u = self.rng.random()
        if u < self.error_rate:
            return "error"
        return "evacuated" if u < self.error_rate + self.evacuated else "not_evacuated"


class BankApi:
    """The partner bank's payment API: connections, latency, failures, bad hours."""

    def __init__(self, relief: Relief, p: Mapping[str, Any]) -> None:
        self.lines = simpy.Resource(relief.env, int(p["bank.lines"] * p["load.scale"]))
        self.mu = math.log(p["bank.latency_s"])
        self.sigma = p["bank.latency_sigma"]
        self.failure_rate = p["bank.failure_rate"]
        self.slow = _window(p["slowdown.start_h"], p["slowdown.hours"])
        self.slow_factor = p["slowdown.factor"]
        self.out = _window(p["outage.start_h"], p["outage.hours"])
        self.rng = relief.rng("bank")

    def down(self, now: float) -> bool:
        return self.out[0] <= now < self.out[1]

    def answer(self, now: float) -> tuple[int, float]:
        """The HTTP status and latency of a call that starts now."""
        if self.out[0] <= now < self.out[1]:
            return 503, BANK_REFUSE_S
        latency = self.rng.lognormvariate(self.mu, self.sigma)
        if self.slow[0] <= now < self.slow[1]:
            latency *= self.slow_factor
        status = 500 if self.rng.random() < self.failure_rate else 200
        return status, latency


class Ach:
    """HMS-ACH, the payments service: wires a fixed amount, retries, gives up."""

    def __init__(self, relief: Relief, p: Mapping[str, Any]) -> None:
        self.amount = p["ach.amount"]
        self.timeout_s = p["ach.timeout_s"]
        self.attempts = 1 + p["ach.retries"]
        self.backoff_s = p["ach.backoff_s"]
        self.ids = itertools.count(1)
        self.open = 0  # payments started and not yet sent or failed


# -- actors ---------------------------------------------------------------------


def citizens(env: simpy.Environment, relief: Relief, p: Mapping[str, Any], hlt, ach, bank):
    """Citizens arrive as one Poisson process whose rate follows the day profile
    and jumps at landfall; each arrival becomes a :func:`citizen` process."""
    rng = relief.rng("arrivals")
    base = p["citizens.per_hour"] * p["load.scale"] / 3600.0
    landfall = p["landfall.at_h"] * 3600.0
    surge = p["citizens.surge"]
    decay = p["citizens.surge_hours"] * 3600.0
    top = base * max(DAY_PROFILE) * surge
    if top <= 0:
        return

    def rate(t: float) -> float:
        r = base * DAY_PROFILE[int(t // 3600) % 24]
        if t >= landfall and surge > 1:
            r *= 1.0 + (surge - 1.0) * math.exp((landfall - t) / decay)
        return r

    t = env.now
    for n in itertools.count(1):
        # Thinning: draw candidates at the top rate and keep each with
        # probability rate(t)/top; only kept arrivals cost a SimPy event.
        t += rng.expovariate(top)
        while rng.random() * top > rate(t):
            t += rng.expovariate(top)
        yield env.timeout(t - env.now)
        env.process(citizen(env, relief, f"CIT-{n:06d}", hlt, ach, bank))


def citizen(env: simpy.Environment, relief: Relief, name: str, hlt: Hlt, ach: Ach, bank: BankApi):
    """A citizen asks for emergency funds, is checked by HMS-HLT and, if
    eligible, is paid by HMS-ACH."""
    relief.publish("portal.request", {"citizen": name, "amount": ach.amount}, "portal")
    eligible = yield from hms_hlt(env, relief, name, hlt)
    if eligible:
        yield from hms_ach(env, relief, name, ach, bank)


def hms_hlt(env: simpy.Environment, relief: Relief, name: str, hlt: Hlt):
    """HMS-HLT waits for a free case worker and checks the evacuation record;
    returns True when the citizen is eligible."""
    arrived = env.now
    with hlt.workers.request() as req:
        yield req
        wait = env.now - arrived
        yield env.timeout(hlt.service_time())
    outcome = hlt.outcome()
    if outcome == "error":
        relief.publish(
            "hlt.error", {"citizen": name, "reason": "records system timed out"}, "hms-hlt"
        )
        return False
    relief.publish(
        "hlt.checked",
        {"citizen": name, "outcome": outcome, "wait_ms": round(wait * 1000)},
        "hms-hlt",
    )
    return outcome == "evacuated"


def hms_ach(env: simpy.Environment, relief: Relief, name: str, ach: Ach, bank: BankApi):
    """HMS-ACH wires the money, retrying failed or timed-out bank calls with a
    doubling back-off, and reports the payment as sent or failed."""
    pid = f"PAY-{next(ach.ids):06d}"
    started = env.now
    ach.open += 1
    relief.publish(
        "ach.initiated", {"payment": pid, "citizen": name, "amount": ach.amount}, "hms-ach"
    )
    reason = ""
    for attempt in range(1, ach.attempts + 1):
        status = yield from bank_api(env, relief, bank, pid, attempt, ach.timeout_s)
        if status == 200:
            ach.open -= 1
            relief.publish(
                "payments.sent",
                {
                    "payment": pid,
                    "citizen": name,
                    "amount": ach.amount,
                    "attempts": attempt,
                    "latency_ms": round((env.now - started) * 1000),
                },
                "hms-ach",
            )
            return
        if status == 0:
            reason = "timeout"
            relief.publish(
                "ach.error",
                {"payment": pid, "attempt": attempt, "reason": "timeout"},
                "hms-ach",
            )
        else:
            reason = f"bank answered {status}"
        if attempt < ach.attempts:
            yield env.timeout(ach.backoff_s * 2 ** (attempt - 1))
    ach.open -= 1
    relief.publish(
        "payments.failed",
        {
            "payment": pid,
            "citizen": name,
            "amount": ach.amount,
            "attempts": ach.attempts,
            "reason": reason,
        },
        "hms-ach",
    )


def bank_api(
    env: simpy.Environment, relief: Relief, bank: BankApi, pid: str, attempt: int, timeout: float
):
    """One call to the bank's API; returns the HTTP status, or 0 when the
    caller's timeout ran out first (waiting for a connection counts too)."""
    called = env.now
    req = bank.lines.request()
    if not req.triggered:  # every connection is busy: queue, but not forever
        yield req | env.timeout(timeout)
        if not req.triggered:
            req.cancel()
            return 0
    status, latency = bank.answer(env.now)
    left = timeout - (env.now - called)
    if latency > left:
        yield env.timeout(left)
        bank.lines.release(req)
        return 0
    yield env.timeout(latency)
    bank.lines.release(req)
    data = {
        "payment": pid,
        "attempt": attempt,
        "status": status,
        "latency_ms": round(latency * 1000),
    }
    relief.publish("bank.response" if status == 200 else "bank.error", data, "bank-api")
    return status


def bridge(env: simpy.Environment, relief: Relief, bank: BankApi):
    """The external bridge pings the partner bank and reports when the link
    goes down or comes back."""
    down = False
    while True:
        now_down = bank.down(env.now)
        if now_down != down:
            down = now_down
            topic = "bridge.partner.down" if down else "bridge.partner.up"
            relief.publish(topic, {"partner": "bank-api", "ping_s": BRIDGE_PING_S}, "bridge")
        yield env.timeout(BRIDGE_PING_S)


def management(env: simpy.Environment, relief: Relief, hlt: Hlt):
    """The management layer watches HMS-HLT's queue and flags it as degraded
    while too many citizens wait."""
    degraded = False
    while True:
        yield env.timeout(MGMT_CHECK_S)
        waiting = len(hlt.workers.queue)
        if not degraded and waiting > HLT_DEGRADED_QUEUE:
            degraded = True
            relief.publish(
                "service.degraded", {"service": "hms-hlt", "waiting": waiting}, "hms-mgmt"
            )
        elif degraded and waiting <= HLT_DEGRADED_QUEUE // 2:
            degraded = False
            relief.publish(
                "service.restored", {"service": "hms-hlt", "waiting": waiting}, "hms-mgmt"
            )


def governor(env: simpy.Environment, relief: Relief, ach: Ach, dashboard: Dashboard):
    """The governor approves the relief programme at the start of the day and
    then watches the dashboard (a snapshot every ``DASHBOARD_SAMPLE_S``)."""
    relief.publish(
        "proposal.approved",
        {
            "proposal": "IDA-EMERGENCY-FUNDS",
            "amount": ach.amount,
            "eligibility": "medical evacuation",
        },
        "hms-gov",
    )
    while True:
        dashboard.snapshot(env.now / 3600)
        yield env.timeout(DASHBOARD_SAMPLE_S)


def ticker(env: simpy.Environment, relief: Relief):
    """Moves the bus clock through quiet stretches, so rules about silence and
    resolving alerts see time pass even when nobody publishes."""
    while True:
        yield env.timeout(TICK_S)
        relief.tick()


def _window(start_h: float, hours: float) -> tuple[float, float]:
    if hours <= 0:
        return (math.inf, math.inf)
    return (start_h * 3600.0, (start_h + hours) * 3600.0)


# -- one run ----------------------------------------------------------------------


class Day:
    """Everything one simulated day left behind, before it becomes a Result."""

    def __init__(self, **kw: Any) -> None:
        self.__dict__.update(kw)


def setup(
    env: simpy.Environment, relief: Relief, p: Mapping[str, Any]
) -> tuple[Hlt, Ach, BankApi, Dashboard]:
    """Create the facilities and start the actors."""
    hlt, ach, bank = Hlt(relief, p), Ach(relief, p), BankApi(relief, p)
    dashboard = Dashboard(relief.bus)
    env.process(governor(env, relief, ach, dashboard))
    env.process(citizens(env, relief, p, hlt, ach, bank))
    env.process(bridge(env, relief, bank))
    env.process(management(env, relief, hlt))
    env.process(ticker(env, relief))
    return hlt, ach, bank, dashboard


def simulate(
    p: Mapping[str, Any],
    *,
    seed: int = RANDOM_SEED,
    hours: float = SIM_HOURS,
    rules: Callable[[Mapping[str, Any]], list] | None = None,
    progress: Callable[[float], None] | None = None,
    listeners: Iterable[Callable[[Bus], Any]] = (),
) -> Day:
    """Run one day with parameters ``p`` (dotted names, all present).

    A fresh virtual clock and a fresh bus per run keep runs independent:
    the same ``seed`` gives the same events, ids and alerts. ``rules`` turns
    the parameters into monitor rules; ``progress`` is called with the
    simulated seconds done after each chunk.

    ``listeners`` are callables that each get the run's :class:`~hms_bus.Bus`
    once, in the order given, after the audit ledger, pager, monitor and
    dashboard have subscribed and before the first event; there they can
    ``bus.subscribe(...)`` to watch the day live, each event arriving while
    the virtual clock shows its time. The bus is closed when the run ends,
    so a listener must not keep it. Events a listener publishes become part
    of the day, so listen only, unless you mean to change it.
    """
    listeners = check_listeners(listeners)
    wall = time.perf_counter()
    clock = VirtualClock(START)
    bus = Bus(clock=clock, seed=seed, src="ida")
    ledger = AuditLedger(bus)
    pager = Pager(bus)
    monitor = _monitor(bus, rules(p)) if rules is not None else None
    env = simpy.Environment()
    relief = Relief(env, bus, clock, seed)
    hlt, ach, bank, dashboard = setup(env, relief, p)
    try:
        for listener in listeners:
            listener(bus)
    except BaseException:
        if monitor is not None:
            monitor.close()
        bus.close()
        raise
    end = hours * 3600.0
    with no_gc():
        for until in _chunks(end, CHUNK_S):
            env.run(until=until)
            relief.tick()
            if progress is not None:
                progress(until)
    dashboard.snapshot(end / 3600)
    if monitor is not None:
        monitor.close()
    bus.flush()
    status = bus.status()
    bus.close()
    return Day(
        params=dict(p),
        seed=seed,
        hours=hours,
        start=clock.now() - end,
        end=clock.now(),
        events=ledger.events,
        alerts=pager.alerts,
        pages=pager.pages,
        dashboard=dashboard,
        in_flight_payments=ach.open,
        incidents=_incidents(p, hours),
        bus_status=status,
        wall_s=time.perf_counter() - wall,
    )


def check_listeners(listeners: object) -> tuple[Callable[[Bus], Any], ...]:
    """``listeners`` as a tuple of callables, or a TypeError naming the bad value."""
    if callable(listeners):
        raise TypeError(
            f"listeners takes a list of callables, got the single {listeners!r}; "
            "wrap it: listeners=[fn]"
        )
    if isinstance(listeners, (str, bytes)) or not isinstance(listeners, Iterable):
        raise TypeError(
            f"listeners must be a list of callables that each take the bus, got {listeners!r}"
        )
    found = tuple(listeners)
    for i, fn in enumerate(found):
        if not callable(fn):
            raise TypeError(
                f"listeners[{i}] is {fn!r}, not a callable; give functions that take the bus, "
                "e.g. listeners=[lambda bus: bus.subscribe('payments.sent', count)]"
            )
    return found


@contextmanager
def no_gc() -> Iterator[None]:
    """Pause the cycle collector. A run keeps every event alive and makes next
    to no cyclic garbage, so the collector would only rescan a growing heap
    again and again (a third of the time of a million-event run)."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collecting:
            gc.enable()


def _monitor(bus: Bus, rules: list) -> Any:
    from hms_bus.monitor import Monitor

    return Monitor(bus, rules=rules)


def _chunks(end: float, step: float) -> Iterator[float]:
    t = 0.0
    while t < end:
        t = min(t + step, end)
        yield t


def _incidents(p: Mapping[str, Any], hours: float) -> list[dict[str, Any]]:
    """The bad stretches this scenario schedules, clipped to the run."""
    found = []
    for kind in ("outage", "slowdown"):
        start, stop = _window(p[f"{kind}.start_h"], p[f"{kind}.hours"])
        if start < hours * 3600:
            found.append({"kind": kind, "start_s": start, "end_s": min(stop, hours * 3600)})
    return sorted(found, key=lambda i: i["start_s"])
