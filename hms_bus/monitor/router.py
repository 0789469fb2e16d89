"""The router: which notice goes to which receiver, and which ones are muted.

* **Routes** send notices to receivers by rule name and labels. Every route
  whose matchers fit gets the notice (a receiver on two routes gets it once);
  a route without matchers takes everything. Resolved notices are sent
  unless a route says ``send_resolved=False``.
* **Silences** (matchers, start, end, comment) mute delivery for a while,
  e.g. during bank maintenance. The alert still happens: it is in the
  monitor's timeline and in the router's delivery log as ``silenced``.
* **Inhibition** lets a firing alert mute others: while ``bank_down`` fires,
  the ``error_storm`` it causes need not page anyone. ``equal`` names labels
  that must be the same on both (same region, same service).

As in Alertmanager, muting is looked at again when it can change: an
incident still firing when its silence ends (or when the alert inhibiting
it resolves) is delivered then, once, stamped with that instant and with
the reason (``silence 2 ended``); its resolved notice follows as usual.
The re-check for an instant happens once that instant is over, so an
incident that resolves at the very instant its silence ends is not paged.

A resolved notice (and the ``ended`` notice of a closing monitor) goes to
exactly the receivers that were told the incident was firing, whatever
silences began since: nobody is left believing an incident is still open,
and nobody hears of the end of an incident they never heard of.
(Alertmanager differs for a silence that starts mid-incident: it mutes the
resolved notice too, so a receiver that got the page never hears the end.)

Matchers are a dict of label to value: ``{"rule": "error_storm",
"severity": "page"}``. Each notice carries its rule's labels plus ``rule``,
``kind``, ``state`` and ``group`` (as text). A value may be a glob
(``"bank_*"``) or a list of alternatives.
"""

from __future__ import annotations

import itertools
import math
import threading
from collections.abc import Callable
from fnmatch import fnmatchcase
from heapq import heappop, heappush
from typing import Any

from ..clock import to_epoch
from ..event import format_ts
from ..redact import kit_logger, scrub
from .receivers import Receiver
from .rules import seconds
from .timeline import timestamps

__all__ = ["Router", "Route", "Silence", "Inhibition", "DELIVERY_COLUMNS", "STATUSES"]

log = kit_logger("hms_bus")
Matchers = dict[str, Any]

DELIVERY_COLUMNS = (
    "at",
    "rule",
    "group",
    "state",
    "repeat",
    "receiver",
    "status",
    "detail",
    "attempts",
)
"""The delivery log's columns. ``at`` is the notice's instant (a UTC timestamp in
``deliveries()``, ISO text in ``router.log``)."""

STATUSES = ("queued", "sent", "failed", "silenced", "inhibited", "not_sent", "unrouted")
"""What can happen to a notice for one receiver (see :class:`Router`)."""


def _check_matchers(matchers: object, what: str) -> Matchers:
    if matchers is None:
        return {}
    if not isinstance(matchers, dict):
        raise TypeError(
            f"{what} must be a dict such as {{'rule': 'error_storm'}}, got {matchers!r}"
        )
    for k, v in matchers.items():
        ok = isinstance(v, str) or (
            isinstance(v, (list, tuple)) and v and all(isinstance(x, str) for x in v)
        )
        if not isinstance(k, str) or not ok:
            raise TypeError(f"{what} maps a label to a str or a list of str, got {k!r}: {v!r}")
    return dict(matchers)


def notice_labels(notice: dict[str, Any]) -> dict[str, str]:
    """The labels a notice is matched on."""
    group = notice["group"]
    return {
        **notice["labels"],
        "rule": notice["rule"],
        "kind": notice["kind"],
        "state": notice["state"],
        "group": "" if group is None else str(group),
    }


def _fits(matchers: Matchers, labels: dict[str, str]) -> bool:
    for key, want in matchers.items():
        have = labels.get(key)
        if have is None:
            return False
        alts = (want,) if isinstance(want, str) else want
        if not any(fnmatchcase(have, alt) for alt in alts):
            return False
    return True


def _with_rule(matchers: object, rule: str | None, what: str) -> Matchers:
    m = _check_matchers(matchers, what)
    if rule is not None:
        if not isinstance(rule, str):
            raise TypeError(
                f"rule must be a rule name (or glob) such as 'error_storm', got {rule!r}"
            )
        m["rule"] = rule
    return m


class Route:
    """Receivers for the notices whose labels fit ``matchers``."""

    def __init__(self, receivers: list[Receiver], matchers: Matchers, send_resolved: bool) -> None:
        self.receivers = receivers
        self.matchers = matchers
        self.send_resolved = send_resolved

    def __repr__(self) -> str:
        names = ", ".join(r.name for r in self.receivers)
        return f"<Route {self.matchers or 'everything'} -> {names}>"


class Silence:
    """Mutes the notices whose labels fit ``matchers`` from ``start`` until ``end``."""

    def __init__(
        self, id: int, matchers: Matchers, start: float, end: float, comment: str, created_by: str
    ) -> None:
        self.id = id
        self.matchers = matchers
        self.start = start
        self.end = end
        self.comment = comment
        self.created_by = created_by

    def active(self, at: float) -> bool:
        return self.start <= at < self.end

    def __repr__(self) -> str:
        start = "always" if self.start == -math.inf else format_ts(self.start)
        return (
            f"<Silence {self.id} {self.matchers} {start} -> {format_ts(self.end)} {self.comment!r}>"
        )


class Inhibition:
    """While an alert fitting ``source`` fires, alerts fitting ``target`` are muted."""

    def __init__(self, source: Matchers, target: Matchers, equal: tuple[str, ...]) -> None:
        self.source = source
        self.target = target
        self.equal = equal

    def __repr__(self) -> str:
        return f"<Inhibition {self.source} mutes {self.target} equal={list(self.equal)}>"


class _Incident:
    """What the router knows of one firing incident: its last notice, who heard it."""

    __slots__ = ("since", "notice", "labels", "targets", "told", "muted")

    def __init__(self, since: float) -> None:
        self.since = since
        self.notice: dict[str, Any] = {}
        self.labels: dict[str, str] = {}
        self.targets: dict[int, tuple[Receiver, Route]] = {}
        self.told: set[int] = set()
        self.muted = False


class _Both:
    """Two subscriptions that end together (what :meth:`Router.listen` returns)."""

    def __init__(self, *subs: Any) -> None:
        self.subs = subs

    def unsubscribe(self) -> None:
        for sub in self.subs:
            sub.unsubscribe()


class Router:
    """Sends notices to receivers, applying silences and inhibition.

    :param clock: where "now" comes from for silences given by ``duration``;
        the monitor's bus clock once the router is given to a monitor.

    ``log`` lists every decision: one entry per notice and receiver with a
    ``status`` of ``sent``, ``failed``, ``queued`` (handed to a webhook that
    has not finished yet; the same entry becomes ``sent`` or ``failed``, with
    the ``attempts`` it took), ``silenced``, ``inhibited``, ``not_sent`` (a
    resolved notice for a receiver that never heard of the incident, or
    ``send_resolved=False``), or ``unrouted`` (no route fitted; one entry
    with no receiver).
    """

    def __init__(self, *, clock: Any = None) -> None:
        self.clock = clock
        self.routes: list[Route] = []
        self.silences: list[Silence] = []
        self.inhibitions: list[Inhibition] = []
        self.log: list[dict[str, Any]] = []
        self._log_at: list[float] = []  # each entry's instant, at full precision
        self.on_failure: Callable[[dict[str, Any], Receiver, str], None] | None = None
        self._lock = threading.RLock()
        self._incidents: dict[tuple[str, Any], _Incident] = {}
        self._rechecks: list[tuple[float, int, str]] = []
        self._queued: dict[tuple[int, int], tuple[dict[str, Any], dict[str, Any], set[int]]] = {}
        self._ids = itertools.count(1)
        self._order = itertools.count()

    # -- configuration --------------------------------------------------------

    def route(
        self,
        *receivers: Receiver,
        rule: str | None = None,
        labels: Matchers | None = None,
        send_resolved: bool = True,
    ) -> Route:
        """Send notices of ``rule`` (a name or glob) with ``labels`` to ``receivers``."""
        if not receivers:
            raise ValueError("route() needs at least one receiver, e.g. route(ConsolePager())")
        for r in receivers:
            if not callable(getattr(r, "deliver", None)):
                raise TypeError(
                    f"{r!r} is not a receiver; use ConsolePager(), JsonLinesFile(path), "
                    f"Callback(fn) or Webhook(url)"
                )
            if getattr(r, "asynchronous", False) and getattr(r, "on_outcome", None) is None:
                r.on_outcome = self._outcome
        route = Route(list(receivers), _with_rule(labels, rule, "labels"), bool(send_resolved))
        self.routes.append(route)
        return route

    def silence(
        self,
        matchers: Matchers | None = None,
        *,
        rule: str | None = None,
        start: Any = None,
        end: Any = None,
        duration: Any = None,
        comment: str = "",
        created_by: str = "",
    ) -> Silence:
        """Mute notices fitting ``matchers`` (and ``rule``) from ``start`` to ``end``.

        ``start`` defaults to now (or to "always" when the router has no
        clock yet). Give ``end`` or ``duration``: a silence that never ends
        is how alerts get forgotten. An incident muted by it and still firing
        at ``end`` is delivered then.
        """
        m = _with_rule(matchers, rule, "matchers")
        if not m:
            raise ValueError("a silence needs matchers or rule=; it would mute every alert")
        if (end is None) == (duration is None):
            raise ValueError("give exactly one of end= or duration= for a silence")
        if start is not None:
            t0 = to_epoch(start)
        elif self.clock is not None:
            t0 = self.clock.now()
        elif duration is not None:
            raise ValueError(
                "duration= needs a start: give start=, or a clock with Router(clock=bus.clock)"
            )
        else:
            t0 = -math.inf
        t1 = t0 + seconds(duration, "duration") if duration is not None else to_epoch(end)
        if t1 <= t0:
            raise ValueError(f"silence end {format_ts(t1)} is not after its start")
        s = Silence(next(self._ids), m, t0, t1, str(comment), str(created_by))
        with self._lock:
            self.silences.append(s)
            self._recheck_at(t1, f"silence {s.id} ended")
        return s

    def unsilence(self, silence: Silence) -> None:
        """Remove ``silence`` now: what it muted and still fires is delivered (at now)."""
        with self._lock:
            if silence in self.silences:
                self.silences.remove(silence)
                if self.clock is not None:
                    self._recheck_at(self.clock.now(), f"silence {silence.id} removed")

    def inhibit(
        self, *, source: Matchers, target: Matchers, equal: tuple[str, ...] = ()
    ) -> Inhibition:
        """While an alert fitting ``source`` fires, mute alerts fitting ``target``."""
        src = _check_matchers(source, "source")
        tgt = _check_matchers(target, "target")
        if not src or not tgt:
            raise ValueError("inhibit() needs non-empty source and target matchers")
        if isinstance(equal, str):
            equal = (equal,)
        inh = Inhibition(src, tgt, tuple(equal))
        self.inhibitions.append(inh)
        return inh

    def bind(self, monitor: Any) -> None:
        """Called by the monitor that uses this router: adopt its clock and reporting."""
        if self.clock is None:
            self.clock = monitor.clock
        bus = monitor.bus

        def report(notice: dict[str, Any], receiver: Receiver, error: str) -> None:
            try:
                bus.publish(
                    "monitor.delivery_failed",
                    {
                        "rule": notice["rule"],
                        "state": notice["state"],
                        "at": format_ts(notice["at"]),
                        "receiver": scrub(receiver.name),
                        "error": scrub(error),
                    },
                    src="hms-monitor",
                )
            except Exception as exc:  # the bus may be closed by now
                log.error("could not report a failed delivery: %s", scrub(exc))

        self.on_failure = report

    # -- time -------------------------------------------------------------------

    def _recheck_at(self, when: float, reason: str) -> None:
        heappush(self._rechecks, (when, next(self._order), reason))

    def advance(self, now: float) -> None:
        """Time has reached ``now``: look again at muted incidents for every
        instant before it at which a silence ended or an inhibiting alert resolved.

        A monitor calls this for its router as its clock moves; call it
        yourself for a router that :meth:`listen`\\ s to a monitor elsewhere.
        """
        rechecks = self._rechecks
        if not rechecks or rechecks[0][0] >= now:
            return  # nothing due: the common case, on every tick of the clock
        with self._lock:
            self._recheck_before(now)

    def _recheck_before(self, t: float) -> None:
        rechecks = self._rechecks
        while rechecks and rechecks[0][0] < t:
            when, _, reason = heappop(rechecks)
            self._recheck(when, reason)

    def _recheck(self, at: float, reason: str) -> None:
        for key, inc in list(self._incidents.items()):
            if not inc.muted or self._muted(at, inc.labels, key) is not None:
                continue
            inc.muted = False
            late = {**inc.notice, "at": at, "repeat": 0, "reason": reason}
            for rid, (r, _) in inc.targets.items():
                if rid not in inc.told:
                    self._deliver(late, r, rid, inc.told, reason)

    # -- delivery ---------------------------------------------------------------

    def handle_all(self, notices: list[dict[str, Any]]) -> None:
        """Deliver notices in order; those of one instant see each other's incidents.

        Alertmanager decides inhibition when it sends, by which alerts are firing
        then; so a source and its target that start firing at the same instant
        mute the target whichever notice comes first.
        """
        with self._lock:
            i = 0
            while i < len(notices):
                at = notices[i]["at"]
                j = i
                while j < len(notices) and notices[j]["at"] == at:
                    j += 1
                if self.inhibitions:
                    for notice in notices[i:j]:
                        if notice["state"] == "firing":
                            self._incident_of(notice)
                for notice in notices[i:j]:
                    self.handle(notice)
                i = j

    def _incident_of(self, notice: dict[str, Any]) -> _Incident:
        key = (notice["rule"], notice["group"])
        inc = self._incidents.get(key)
        if inc is None or inc.since != notice["since"]:
            inc = self._incidents[key] = _Incident(notice["since"])
            inc.labels = notice_labels(notice)
        return inc

    def handle(self, notice: dict[str, Any]) -> None:
        """Deliver ``notice`` (a record from the engine) to the receivers it is due to."""
        with self._lock:
            self._recheck_before(notice["at"])
            if notice["state"] == "firing":
                self._firing(notice)
            else:
                self._closing(notice)

    def _targets(self, labels: dict[str, str]) -> dict[int, tuple[Receiver, Route]]:
        targets: dict[int, tuple[Receiver, Route]] = {}
        for route in self.routes:
            if _fits(route.matchers, labels):
                for r in route.receivers:
                    targets.setdefault(id(r), (r, route))
        return targets

    def _firing(self, notice: dict[str, Any]) -> None:
        key = (notice["rule"], notice["group"])
        inc = self._incident_of(notice)
        inc.notice = notice
        inc.labels = labels = notice_labels(notice)
        inc.targets = targets = self._targets(labels)
        if not targets:
            self._log(notice, None, "unrouted", "no route fits")
            return
        mute = self._muted(notice["at"], labels, key)
        inc.muted = mute is not None
        for rid, (r, _) in targets.items():
            if mute is not None:
                self._log(notice, r, *mute)
            else:
                self._deliver(notice, r, rid, inc.told, "")

    def _closing(self, notice: dict[str, Any]) -> None:
        key = (notice["rule"], notice["group"])
        inc = self._incidents.get(key)
        if inc is not None and inc.since == notice["since"]:
            del self._incidents[key]
        else:
            inc = None
        told = inc.told if inc is not None else set()
        labels = notice_labels(notice)
        targets = self._targets(labels)
        if not targets:
            self._log(notice, None, "unrouted", "no route fits")
        for rid, (r, route) in targets.items():
            if rid not in told:
                self._log(notice, r, "not_sent", "the receiver was not told it was firing")
            elif not route.send_resolved:
                self._log(notice, r, "not_sent", "send_resolved=False")
            else:
                self._deliver(notice, r, rid, told, "")
        if inc is not None and any(_fits(i.source, inc.labels) for i in self.inhibitions):
            self._recheck_at(notice["at"], f"{notice['rule']} stopped firing")

    def _deliver(
        self, notice: dict[str, Any], r: Receiver, rid: int, told: set[int], detail: str
    ) -> None:
        asynchronous = getattr(r, "asynchronous", False)
        entry = self._log(notice, r, "queued" if asynchronous else "sent", detail)
        if asynchronous:
            self._queued[(id(notice), rid)] = (notice, entry, told)
        try:
            r.deliver(notice)
        except Exception as exc:
            self._queued.pop((id(notice), rid), None)
            entry["status"], entry["detail"] = "failed", scrub(f"{type(exc).__name__}: {exc}")
            self._failed(notice, r, entry["detail"])
            return
        told.add(rid)

    def _muted(self, at: float, labels: dict[str, str], key: Any) -> tuple[str, str] | None:
        for s in self.silences:
            if s.active(at) and _fits(s.matchers, labels):
                return "silenced", f"silence {s.id}: {s.comment}"
        for inh in self.inhibitions:
            if not _fits(inh.target, labels):
                continue
            for other, inc in self._incidents.items():
                src_labels = inc.labels
                if (
                    other != key
                    and _fits(inh.source, src_labels)
                    and all(src_labels.get(k) == labels.get(k) for k in inh.equal)
                ):
                    return "inhibited", f"by {other[0]} firing"
        return None

    def _failed(self, notice: dict[str, Any], r: Receiver, error: str) -> None:
        log.error("receiver %s failed on %s: %s", scrub(r.name), notice["rule"], error)
        if self.on_failure is not None:
            self.on_failure(notice, r, error)

    def _outcome(
        self, notice: dict[str, Any], r: Receiver, error: str | None, attempts: int
    ) -> None:
        """An asynchronous receiver finished with ``notice``: update its log entry."""
        with self._lock:
            found = self._queued.pop((id(notice), id(r)), None)
            if found is not None:
                entry, told = found[1], found[2]
                entry["attempts"] = attempts
                if error is None:
                    entry["status"] = "sent"
                else:
                    error = scrub(error)
                    entry["status"] = "failed"
                    entry["detail"] = error
                    if notice["state"] == "firing" and not notice.get("repeat"):
                        # As Alertmanager: no resolved for a page that never arrived.
                        told.discard(id(r))
        if error is not None and self.on_failure is not None:
            self.on_failure(notice, r, error)

    def _log(
        self, notice: dict[str, Any], r: Receiver | None, status: str, detail: str
    ) -> dict[str, Any]:
        entry = {
            "at": format_ts(notice["at"]),
            "rule": notice["rule"],
            "group": notice["group"],
            "state": notice["state"],
            "repeat": notice.get("repeat", 0),
            "receiver": None if r is None else scrub(r.name),
            "status": status,
            "detail": detail,
            "attempts": 1 if status in ("sent", "failed") else 0,
        }
        self.log.append(entry)
        self._log_at.append(notice["at"])
        return entry

    def deliveries(self):
        """The delivery log as a pandas DataFrame (:data:`DELIVERY_COLUMNS`, ``at`` in UTC)."""
        import pandas as pd

        with self._lock:
            rows = [dict(e) for e in self.log]
            instants = list(self._log_at)
        df = pd.DataFrame(rows, columns=list(DELIVERY_COLUMNS))
        df["at"] = timestamps(instants)
        df["attempts"] = df["attempts"].astype("int64")
        df["repeat"] = df["repeat"].astype("int64")
        return df

    def listen(self, bus: Any) -> Any:
        """Route the notices published on ``bus`` (``alerts.>``) by a monitor elsewhere.

        The ``ended`` notices a closing monitor publishes on ``monitor.closed``
        are routed too. Returns the subscription; unsubscribe it to stop.
        Muted incidents are looked at again as notices arrive, and when you
        call :meth:`advance`.
        """
        from ..event import thaw

        if self.clock is None:
            self.clock = bus.clock

        def on_alert(ev: Any) -> None:
            data = thaw(ev["data"])
            if ev["topic"] == "monitor.closed":
                notices = data.get("open", []) if isinstance(data, dict) else []
            else:
                notices = [data]
            for notice in notices:
                if not isinstance(notice, dict) or "rule" not in notice or "at" not in notice:
                    continue  # a hand-made alert such as the chapter's alerts.test
                notice["at"] = to_epoch(notice["at"])
                notice["since"] = to_epoch(notice["since"])
                self.handle(notice)

        alerts = bus.subscribe("alerts.>", on_alert, deliver="new", name="router")
        closed = bus.subscribe("monitor.closed", on_alert, deliver="new", name="router")
        return _Both(alerts, closed)

    def flush(self, timeout: float | None = None) -> None:
        """Wait for asynchronous receivers (webhooks) to finish."""
        for r in self._receivers():
            r.flush(timeout)

    def close(self) -> None:
        """Close every receiver (webhooks send what is queued first)."""
        for r in self._receivers():
            try:
                r.close()
            except Exception as exc:
                log.error("closing receiver %s failed: %s", r.name, exc)

    def _receivers(self) -> list[Receiver]:
        seen: dict[int, Receiver] = {}
        for route in self.routes:
            for r in route.receivers:
                seen.setdefault(id(r), r)
        return list(seen.values())
