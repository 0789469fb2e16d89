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

A resolved notice goes to exactly the receivers that were told the incident
was firing, whatever silences began since: nobody is left believing an
incident is still open, and nobody hears of the end of an incident they
never heard of.

Matchers are a dict of label to value: ``{"rule": "error_storm",
"severity": "page"}``. Each notice carries its rule's labels plus ``rule``,
``kind``, ``state`` and ``group`` (as text). A value may be a glob
(``"bank_*"``) or a list of alternatives.
"""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Callable
from fnmatch import fnmatchcase
from typing import Any

from ..clock import to_epoch
from ..event import format_ts
from .receivers import Receiver
from .rules import seconds

__all__ = ["Router", "Route", "Silence", "Inhibition"]

log = logging.getLogger("hms_bus")
Matchers = dict[str, Any]


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


class Router:
    """Sends notices to receivers, applying silences and inhibition.

    :param clock: where "now" comes from for silences given by ``duration``;
        the monitor's bus clock once the router is given to a monitor.

    ``log`` lists every decision: one entry per notice and receiver with a
    ``status`` of ``sent``, ``failed``, ``silenced``, ``inhibited``,
    ``not_sent`` (a resolved notice for a receiver that never heard of the
    incident, or ``send_resolved=False``), or ``unrouted`` (no route fitted).
    """

    def __init__(self, *, clock: Any = None) -> None:
        self.clock = clock
        self.routes: list[Route] = []
        self.silences: list[Silence] = []
        self.inhibitions: list[Inhibition] = []
        self.log: list[dict[str, Any]] = []
        self.on_failure: Callable[[dict[str, Any], Receiver, str], None] | None = None
        self._firing: dict[tuple[str, Any], dict[str, str]] = {}
        self._told: dict[tuple[str, Any, float], set[int]] = {}
        self._ids = itertools.count(1)

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
            if getattr(r, "on_failure", None) is None:
                r.on_failure = self._async_failed
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
        is how alerts get forgotten.
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
        self.silences.append(s)
        return s

    def unsilence(self, silence: Silence) -> None:
        """Remove ``silence`` (it stays visible in the delivery log)."""
        if silence in self.silences:
            self.silences.remove(silence)

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
                        "receiver": receiver.name,
                        "error": error,
                    },
                    src="hms-monitor",
                )
            except Exception as exc:  # the bus may be closed by now
                log.error("could not report a failed delivery: %s", exc)

        self.on_failure = report

    # -- delivery ---------------------------------------------------------------

    def handle(self, notice: dict[str, Any]) -> None:
        """Deliver ``notice`` (a record from the engine) to the receivers it is due to."""
        labels = notice_labels(notice)
        key = (notice["rule"], notice["group"])
        incident = (notice["rule"], notice["group"], notice["since"])
        firing = notice["state"] == "firing"
        if firing:
            self._firing[key] = labels
        else:
            self._firing.pop(key, None)
        told = self._told.setdefault(incident, set())
        targets: dict[int, tuple[Receiver, Route]] = {}
        for route in self.routes:
            if _fits(route.matchers, labels):
                for r in route.receivers:
                    targets.setdefault(id(r), (r, route))
        if not targets:
            self._log(notice, None, "unrouted", "no route fits")
        mute = self._muted(notice, labels, key) if firing else None
        for rid, (r, route) in targets.items():
            if not firing:
                if rid not in told:
                    self._log(notice, r, "not_sent", "the receiver was not told it was firing")
                    continue
                if not route.send_resolved:
                    self._log(notice, r, "not_sent", "send_resolved=False")
                    continue
            elif mute is not None:
                self._log(notice, r, *mute)
                continue
            try:
                r.deliver(notice)
            except Exception as exc:
                self._failed(notice, r, f"{type(exc).__name__}: {exc}")
                continue
            told.add(rid)
            self._log(notice, r, "sent", "")
        if not firing:
            self._told.pop(incident, None)

    def _muted(self, notice: dict[str, Any], labels: dict[str, str], key: Any) -> Any:
        at = notice["at"]
        for s in self.silences:
            if s.active(at) and _fits(s.matchers, labels):
                return "silenced", f"silence {s.id}: {s.comment}"
        for inh in self.inhibitions:
            if not _fits(inh.target, labels):
                continue
            for other, src_labels in self._firing.items():
                if (
                    other != key
                    and _fits(inh.source, src_labels)
                    and all(src_labels.get(k) == labels.get(k) for k in inh.equal)
                ):
                    return "inhibited", f"by {other[0]} firing"
        return None

    def _failed(self, notice: dict[str, Any], r: Receiver, error: str) -> None:
        log.error("receiver %s failed on %s: %s", r.name, notice["rule"], error)
        self._log(notice, r, "failed", error)
        if self.on_failure is not None:
            self.on_failure(notice, r, error)

    def _async_failed(self, notice: dict[str, Any], r: Receiver, error: str) -> None:
        self._log(notice, r, "failed", error)
        if self.on_failure is not None:
            self.on_failure(notice, r, error)

    def _log(self, notice: dict[str, Any], r: Receiver | None, status: str, detail: str) -> None:
        self.log.append(
            {
                "ts": format_ts(notice["at"]),
                "rule": notice["rule"],
                "group": notice["group"],
                "state": notice["state"],
                "repeat": notice.get("repeat", 0),
                "receiver": None if r is None else r.name,
                "status": status,
                "detail": detail,
            }
        )

    def deliveries(self):
        """The delivery log as a pandas DataFrame."""
        import pandas as pd

        return pd.DataFrame(
            self.log,
            columns=["ts", "rule", "group", "state", "repeat", "receiver", "status", "detail"],
        )

    def listen(self, bus: Any) -> Any:
        """Route the notices published on ``bus`` (``alerts.>``) by a monitor elsewhere.

        Returns the subscription; unsubscribe it to stop.
        """
        from ..event import thaw

        if self.clock is None:
            self.clock = bus.clock

        def on_alert(ev: Any) -> None:
            data = thaw(ev["data"])
            if not isinstance(data, dict) or "rule" not in data or "at" not in data:
                return  # a hand-made alert such as the chapter's alerts.test
            data["at"] = to_epoch(data["at"])
            data["since"] = to_epoch(data["since"])
            self.handle(data)

        return bus.subscribe("alerts.>", on_alert, deliver="new", name="router")

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
