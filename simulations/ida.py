"""
Hurricane Ida relief day: citizens, HMS-HLT, HMS-ACH and a bank, all on the bus.

Covers:

- Driving an ``hms_bus.VirtualClock`` from SimPy's clock, so every event
  carries its simulated time
- A day-long, non-homogeneous Poisson arrival process (one process, thinning)
- Resources with capacity (HLT case workers, bank connections), timeouts,
  retries, and a resource that shrinks for a while (a priority request)
- Incidents scheduled by the scenario: bank outages and slowdowns, a cut
  link to the bank, a bot flooding the portal, HMS-HLT short of staff

Scenario:
  Hurricane Ida makes landfall and the state opens one-stop emergency funds:
  $1,000 for every household that had to evacuate for medical reasons.
  Citizens ask for the money through the portal, more of them right after
  landfall. HMS-HLT checks each citizen's evacuation record (a few case
  workers, each taking a little while). HMS-ACH wires the money to approved
  citizens through the bank's API, which has a limited number of
  connections, a random latency and an occasional failure; ACH retries with
  a back-off and gives up after a timeout.

  Some days go wrong: the bank slows down or goes down, the link to it is
  cut, a bot floods the portal with bogus requests, or HMS-HLT is left short
  of staff. The monitor turns the symptoms into alerts, the pager wakes the
  on-call operator, and the question for the day is how long that took.

The tunable numbers (rates, sizes, timeouts) are parameters with dotted
names, defined once with their units in :mod:`simulations.params`; ``p``
below is a scenario holding them all. The harness that runs this model
(bus, watchers, monitor, progress, garbage collection) is
:mod:`simulations.runner`.
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Mapping, Sequence
from typing import Any

import simpy

from hms_bus import Bus, VirtualClock

from .incidents import Incident

RANDOM_SEED = 7
SIM_HOURS = 24  # h of simulated time in a run
START = "2021-08-29T00:00:00Z"  # the simulated day starts here (Ida's landfall day)
DAY_PROFILE = (  # share of citizens.per_hour arriving in each hour of the day, 00h..23h
    0.25, 0.2, 0.15, 0.15, 0.2, 0.35, 0.6, 0.9, 1.1, 1.25, 1.3, 1.3,
    1.25, 1.25, 1.2, 1.2, 1.15, 1.1, 1.05, 1.0, 0.9, 0.7, 0.5, 0.35,
)  # fmt: skip
BANK_REFUSE_S = 0.05  # s to refuse a call while the bank is down
BOGUS_CHECK_SHARE = 0.5  # a bogus request takes this share of a real check's time
BRIDGE_PING_S = 30  # s between the bridge's pings of the partner bank
MGMT_CHECK_S = 60  # s between the management layer's health checks
HLT_DEGRADED_QUEUE = 25  # citizens waiting for HLT before it counts as degraded
DASHBOARD_SAMPLE_S = 600  # s between snapshots of the governor's dashboard
TICK_S = 5.0  # s; an idle clock still moves this often, so silence is noticed


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
        self.seed = seed
        self.scale = 1.0  # load.scale, set by setup()
        self._last = 0.0
        self._publish = bus.publish
        self._set = clock.set

    def rng(self, stream: str) -> random.Random:
        """An independent random stream per actor, so changing one actor's
        parameters does not reshuffle the others' draws."""
        return random.Random(f"{self.seed}:{stream}")

    def publish(self, topic: str, data: Any, src: str) -> None:
        now = self.env.now
        if now != self._last:
            self._last = now
            self._set(self.t0 + now)
        self._publish(topic, data, src=src)

    def tick(self) -> None:
        now = self.env.now
        if now != self._last:
            self._last = now
            self._set(self.t0 + now)


def windows(incidents: Sequence[Incident], kind: str) -> tuple[tuple[float, float, Incident], ...]:
    """When incidents of ``kind`` are on, as (start, end, incident) in simulated
    seconds; usually empty, so checking it costs next to nothing."""
    return tuple((i.start_s, i.end_s, i) for i in incidents if i.kind == kind)


class Hlt:
    """HMS-HLT, the health system: a few case workers check evacuation records."""

    def __init__(self, relief: Relief, p: Mapping[str, Any], short: bool) -> None:
        # A priority queue only when some workers must leave ahead of the queue.
        kind = simpy.PriorityResource if short else simpy.Resource
        self.staff = int(p["hlt.workers"] * p["load.scale"])
        self.workers = kind(relief.env, self.staff)
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

    def __init__(self, relief: Relief, p: Mapping[str, Any], incidents: list[Incident]) -> None:
        self.lines = simpy.Resource(relief.env, int(p["bank.lines"] * p["load.scale"]))
        self.mu = math.log(p["bank.latency_s"])
        self.sigma = p["bank.latency_sigma"]
        self.failure_rate = p["bank.failure_rate"]
        self.outages = windows(incidents, "outage")
        self.slowdowns = windows(incidents, "slowdown")
        self.link_drops = windows(incidents, "link_drop")
        self.rng = relief.rng("bank")

    def reachable(self, now: float) -> bool:
        """Whether a call placed now gets through the link to the bank."""
        return not any(start <= now < end for start, end, _ in self.link_drops)

    def answering(self, now: float) -> bool:
        """Whether the bank answers pings (link up, bank not down)."""
        down = any(start <= now < end for start, end, _ in self.outages)
        return not down and self.reachable(now)

    def answer(self, now: float) -> tuple[int, float]:
        """The HTTP status and latency of a call that reaches the bank now."""
        for start, end, _ in self.outages:
            if start <= now < end:
                return 503, BANK_REFUSE_S
        latency = self.rng.lognormvariate(self.mu, self.sigma)
        for start, end, slow in self.slowdowns:
            if start <= now < end:
                latency *= slow.extra["factor"]
        status = 500 if self.rng.random() < self.failure_rate else 200
        return status, latency


class Ach:
    """HMS-ACH, the payments service: wires a fixed amount, retries, gives up."""

    def __init__(self, p: Mapping[str, Any]) -> None:
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
    if bank.link_drops and not bank.reachable(called):  # the link is cut: nothing comes back
        yield env.timeout(timeout)
        return 0
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


def bot(env: simpy.Environment, relief: Relief, flood: Incident, hlt: Hlt, amount: int):
    """During a flood, a bot posts bogus requests at a steady Poisson rate;
    HMS-HLT checks each (quicker than a real one) and rejects it."""
    rate = flood.extra["per_hour"] * relief.scale / 3600.0
    if rate <= 0:
        return
    rng = relief.rng(f"flood.{flood.n}")
    t = flood.start_s
    for n in itertools.count(1):
        t += rng.expovariate(rate)
        if t >= flood.end_s:
            return
        yield env.timeout(t - env.now)
        env.process(bogus_request(env, relief, f"BOT-{flood.n}-{n:06d}", amount, hlt, rng))


def bogus_request(
    env: simpy.Environment, relief: Relief, name: str, amount: int, hlt: Hlt, rng: random.Random
):
    """One bogus request: it waits for a case worker like any other, and is rejected."""
    relief.publish("portal.request", {"citizen": name, "amount": amount}, "portal")
    arrived = env.now
    with hlt.workers.request() as req:
        yield req
        wait = env.now - arrived
        yield env.timeout(rng.expovariate(1.0 / (hlt.mean_s * BOGUS_CHECK_SHARE)))
    relief.publish(
        "hlt.rejected",
        {"citizen": name, "reason": "no such citizen", "wait_ms": round(wait * 1000)},
        "hms-hlt",
    )


def absence(env: simpy.Environment, hlt: Hlt, short: Incident):
    """During an understaffed stretch, the missing case workers leave as soon
    as they finish the case in hand (ahead of waiting citizens), and come back
    at its end."""
    yield env.timeout(short.start_s - env.now)
    away = [
        hlt.workers.request(priority=-1) for _ in range(max(0, hlt.staff - short.extra["workers"]))
    ]
    yield env.timeout(short.end_s - env.now)
    for req in away:
        if req.triggered:
            hlt.workers.release(req)
        else:
            req.cancel()


def bridge(env: simpy.Environment, relief: Relief, bank: BankApi):
    """The external bridge pings the partner bank and reports when it stops
    answering (the bank is down or the link is cut) or answers again."""
    down = False
    while True:
        now_down = not bank.answering(env.now)
        if now_down != down:
            down = now_down
            topic = "bridge.partner.down" if down else "bridge.partner.up"
            relief.publish(topic, {"partner": "bank-api", "ping_s": BRIDGE_PING_S}, "bridge")
        yield env.timeout(BRIDGE_PING_S)


def management(env: simpy.Environment, relief: Relief, hlt: Hlt):
    """The management layer watches HMS-HLT's queue and flags it as degraded
    while too many requests wait."""
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


def governor(env: simpy.Environment, relief: Relief, ach: Ach, dashboard: Any):
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


def setup(
    env: simpy.Environment,
    relief: Relief,
    p: Mapping[str, Any],
    incidents: list[Incident],
    dashboard: Any,
) -> Ach:
    """Create the facilities and start the actors; return HMS-ACH (whose
    ``open`` counts payments still in flight)."""
    relief.scale = p["load.scale"]
    shortages = [i for i in incidents if i.kind == "understaffed"]
    hlt, ach, bank = Hlt(relief, p, bool(shortages)), Ach(p), BankApi(relief, p, incidents)
    env.process(governor(env, relief, ach, dashboard))
    env.process(citizens(env, relief, p, hlt, ach, bank))
    for flood in (i for i in incidents if i.kind == "flood"):
        env.process(bot(env, relief, flood, hlt, ach.amount))
    for short in shortages:
        env.process(absence(env, hlt, short))
    env.process(bridge(env, relief, bank))
    env.process(management(env, relief, hlt))
    env.process(ticker(env, relief))
    return ach
