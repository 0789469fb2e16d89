"""Rule tests: "given these events at these times, expect these alerts at these times".

Like ``promtool test rules``, but small enough to read aloud. A scenario is
text with two parts::

    given:
      0s      payments.error                 x5 every 2s
      30s     bank.latency   {"ms": 2500}
      1m30s   payments.sent  {"amount": 1000}
    expect:
      8s      error_storm    firing
      1m      error_storm    resolved
      until 10m

* A *given* line is ``<time> <topic> [<JSON data>] [xN [every <gap>]]``;
  ``x5 every 2s`` means five events, two seconds apart.
* An *expect* line is ``<time> <rule> firing|resolved [group=<value>]
  [repeat=<n>]``. The expected notices must be exactly the ones the rules
  produce, in time order: a missing one and an extra one both fail.
* ``until <time>`` lets time run on after the last event (default: the last
  expected or given time). Notices stamped ``until`` itself count: a rule
  test knows every event, so its last instant is decided too.

Times are offsets from the start: ``90``, ``90s``, ``1m30s``, ``2h``.
Lines starting with ``#`` are comments. The events run through
:func:`~hms_bus.monitor.backtest`'s engine on a virtual clock, so the check
takes milliseconds and never flakes.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from ..bus import Bus
from ..clock import VirtualClock, to_epoch
from .backtest import run

__all__ = ["check_rules", "assert_alerts", "parse_scenario", "Scenario", "RuleTestResult"]

_DURATION = re.compile(r"^(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s?)?$")
_REPEAT = re.compile(r"\s+x(\d+)(?:\s+every\s+(\S+))?\s*$")
START = "2021-08-29T12:00:00Z"


def offset(text: str, where: str = "") -> float:
    """Read ``90``, ``90s``, ``1m30s`` or ``2h`` as seconds."""
    m = _DURATION.match(text.strip())
    if not text.strip() or not m or not any(m.groups()):
        raise ValueError(f"{where}cannot read {text!r} as a time; write e.g. 90, 90s, 1m30s or 2h")
    h, mnt, s = (float(g) if g else 0.0 for g in m.groups())
    return h * 3600 + mnt * 60 + s


@dataclass
class Scenario:
    """A parsed rule test: events, expected notices, and when time stops."""

    events: list[tuple[float, str, Any]] = field(default_factory=list)
    expected: list[tuple[float, str, str, dict[str, str]]] = field(default_factory=list)
    until: float | None = None


def parse_scenario(text: str) -> Scenario:
    """Parse the scenario text described in this module's docstring."""
    if not isinstance(text, str):
        raise TypeError(f"a scenario is text with given: and expect: parts, got {text!r}")
    sc = Scenario()
    part = None
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        where = f"line {n} ({line!r}): "
        if line.rstrip(":") in ("given", "expect") and line.endswith(":"):
            part = line[:-1]
            continue
        if line.startswith("until "):
            sc.until = offset(line[6:], where)
            continue
        if part is None:
            raise ValueError(f"{where}start with 'given:' (events) or 'expect:' (alerts)")
        if part == "given":
            _given(sc, line, where)
        else:
            _expect(sc, line, where)
    return sc


def _given(sc: Scenario, line: str, where: str) -> None:
    times, gap = 1, 0.0
    m = _REPEAT.search(line)
    if m:
        times = int(m.group(1))
        gap = offset(m.group(2), where) if m.group(2) else 0.0
        line = line[: m.start()]
    parts = line.split(None, 2)
    if len(parts) < 2:
        raise ValueError(f"{where}an event line is '<time> <topic> [<JSON data>] [xN every <gap>]'")
    t = offset(parts[0], where)
    data = None
    if len(parts) == 3:
        try:
            data = json.loads(parts[2])
        except json.JSONDecodeError as exc:
            raise ValueError(
                f'{where}the data is not JSON ({exc.msg}); e.g. {{"ms": 2500}}'
            ) from None
    for i in range(times):
        sc.events.append((t + i * gap, parts[1], data))


def _expect(sc: Scenario, line: str, where: str) -> None:
    parts = line.split()
    if len(parts) < 3 or parts[2] not in ("firing", "resolved"):
        raise ValueError(f"{where}an expect line is '<time> <rule> firing|resolved [group=...]'")
    extra = {}
    for p in parts[3:]:
        key, sep, value = p.partition("=")
        if not sep or key not in ("group", "repeat"):
            raise ValueError(f"{where}unknown option {p!r}; use group=<value> or repeat=<n>")
        extra[key] = value
    sc.expected.append((offset(parts[0], where), parts[1], parts[2], extra))


@dataclass
class RuleTestResult:
    """What a rule test found: the notices produced, missing and unexpected."""

    got: list[tuple[float, str, str, dict[str, str]]]
    missing: list[tuple[float, str, str, dict[str, str]]]
    unexpected: list[tuple[float, str, str, dict[str, str]]]
    stats: dict[str, dict[str, Any]]

    @property
    def ok(self) -> bool:
        return not self.missing and not self.unexpected

    def report(self) -> str:
        """A readable account: every notice, marked as expected, missing or unexpected."""
        lines = []
        for mark, rows in (("missing   ", self.missing), ("unexpected", self.unexpected)):
            for t, rule, state, extra in rows:
                opts = "".join(f" {k}={v}" for k, v in extra.items() if v not in ("", "0"))
                lines.append(f"  {mark} {_fmt(t):>8} {rule} {state}{opts}")
        got = [f"  got        {_fmt(t):>8} {r} {s}" for t, r, s, _ in self.got] or ["  (none)"]
        head = "rule test passed" if self.ok else "rule test failed"
        return "\n".join([head, *lines, "notices produced:", *got])


def _fmt(t: float) -> str:
    m, s = divmod(t, 60)
    return f"{int(m)}m{s:g}s" if m else f"{s:g}s"


def check_rules(rules: Any, scenario: str | Scenario, *, start: Any = START) -> RuleTestResult:
    """Run ``rules`` over the scenario's events and compare with its expectations."""
    sc = parse_scenario(scenario) if isinstance(scenario, str) else scenario
    t0 = to_epoch(start)
    clock = VirtualClock(t0)
    bus = Bus(clock=clock, src="ruletest", max_retained=None, retention=10 * 365 * 86400)
    with bus:
        for t, topic, data in sorted(sc.events, key=lambda e: e[0]):
            clock.set(t0 + t)
            bus.publish(topic, data)
        events = bus.replay()
    ends = [t for t, *_ in sc.events] + [t for t, *_ in sc.expected]
    until = max([*ends, 0.0] if sc.until is None else [*(t for t, *_ in sc.events), sc.until])
    engine = run(rules, events, start=t0, until=t0 + until)
    engine.settle()
    got = []
    for rec in engine.records:
        extra = {
            "group": "" if rec["group"] is None else str(rec["group"]),
            "repeat": str(rec["repeat"]),
        }
        got.append((round(rec["at"] - t0, 6), rec["rule"], rec["state"], extra))
    remaining = list(got)
    missing = []
    for exp in sc.expected:
        hit = next((g for g in remaining if _same(exp, g)), None)
        if hit is None:
            missing.append(exp)
        else:
            remaining.remove(hit)
    return RuleTestResult(got, missing, remaining, engine.stats())


def _same(exp: tuple, got: tuple) -> bool:
    if abs(exp[0] - got[0]) > 1e-6 or exp[1:3] != got[1:3]:
        return False
    return all(got[3].get(k) == v for k, v in exp[3].items())


def assert_alerts(rules: Any, scenario: str | Scenario, *, start: Any = START) -> RuleTestResult:
    """Like :func:`check_rules`, but raise ``AssertionError`` with the report on a mismatch.

    Handy in pytest::

        assert_alerts([frequency("error_storm", "*.error", count=5, window=60)], '''
            given:
              0s  bank.error  x5 every 10s
            expect:
              40s error_storm firing
              1m error_storm resolved
        ''')
    """
    result = check_rules(rules, scenario, start=start)
    if not result.ok:
        raise AssertionError(result.report())
    return result
