"""Alert rules: what to watch, over which window, and when it counts as trouble.

A rule is plain, immutable configuration. Four kinds exist, each built by a
function named for it:

* :func:`frequency` -- at least ``count`` matching events within ``window``
  seconds ("5 ``*.error`` within 60 s"), optionally per group.
* :func:`absence` -- fewer than ``count`` matching events within ``window``,
  once the monitor has watched for a whole window ("no ``payments.sent`` for
  5 minutes").
* :func:`threshold` -- an aggregate (mean, max, min or a percentile such as
  p95) of a numeric data field over ``window`` is above or below a bound.
* :func:`ratio` -- matching events over the events of another pattern, within
  ``window``, is above a bound ("more than 5 % of payment attempts fail").

Every kind shares the lifecycle options (see :mod:`hms_bus.monitor.lifecycle`):
``for_`` (how long the condition must hold before firing), ``keep_firing_for``
(how long it must stay false before resolving), ``clear`` (a separate bound
for resolving, against flapping), ``repeat_interval`` (re-send a firing notice
while it lasts) and ``labels`` (free text used by routes, silences and
inhibition).

"Within ``window`` seconds" means less than ``window`` apart: an event at time
``e`` counts at every instant ``t`` with ``e <= t < e + window`` (Prometheus 3
reads a range the same way, ``(t - window, t]``).

Each notice carries a ``value`` and a ``bound``; what they are depends on the kind:

=========== ============================================ ==============================
kind        ``value``                                     ``bound``
=========== ============================================ ==============================
frequency   matching events in the window (an int)        ``count``: fires at value >= it
absence     matching events in the window (an int;        ``count``: fires at value < it
            None during the first window, the warm-up)
threshold   the aggregate over the window (a float;       ``above`` (fires at value > it)
            None when the window holds no numeric value)  or ``below`` (value < it)
ratio       pattern events / ``of`` events in the window  ``above``: fires at value > it
            (0 to 1 when ``of`` covers ``pattern``; None
            while fewer than ``min_of`` ``of`` events)
=========== ============================================ ==============================
"""

from __future__ import annotations

import math
import operator
import re
from datetime import timedelta
from typing import Any

from ..topics import validate_pattern

__all__ = [
    "Rule",
    "Frequency",
    "Absence",
    "Threshold",
    "Ratio",
    "frequency",
    "absence",
    "threshold",
    "ratio",
    "default_rules",
]

AGGREGATES = ("mean", "max", "min", "p50", "p90", "p95", "p99", "p95i")
"""Aggregates a threshold rule knows by name. Any ``pNN`` (p1 to p99) works:
nearest rank, a value that was really seen. ``pNNi`` interpolates between
ranks as Prometheus's ``quantile_over_time`` does (``p95i``)."""

_NAME = re.compile(r"^[A-Za-z0-9_-]+$")
_PERCENTILE = re.compile(r"^p([1-9][0-9]?)i?$")


def seconds(value: object, name: str, *, zero_ok: bool = False) -> float:
    """Read a duration given as seconds or a timedelta; raise ValueError naming ``name``."""
    if isinstance(value, timedelta):
        value = value.total_seconds()
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(
            f"{name} must be seconds (a number) or a timedelta, got {value!r} "
            f"of type {type(value).__name__}"
        )
    if not math.isfinite(value) or value < 0 or (value == 0 and not zero_ok):
        need = "zero or more" if zero_ok else "more than zero"
        raise ValueError(f"{name}={value!r} is not a valid duration; give {need} seconds")
    return float(value)


def _count(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be a whole number such as 5, got {value!r}")
    if value <= 0:
        raise ValueError(f"{name}={value!r} must be at least 1")
    return value


def _number(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise TypeError(f"{name} must be a finite number, got {value!r}")
    return float(value)


def _pattern(value: object, name: str) -> str:
    try:
        return validate_pattern(value)
    except ValueError as exc:
        raise ValueError(f"{name}={value!r} is not a valid pattern: {exc}") from None


def _labels(labels: object) -> dict[str, str]:
    if labels is None:
        return {}
    if not isinstance(labels, dict):
        raise TypeError(f"labels must be a dict of str to str, got {labels!r}")
    for k, v in labels.items():
        if not isinstance(k, str) or not isinstance(v, str):
            raise TypeError(
                f"labels must map str to str, got {k!r}: {v!r}; write e.g. {{'severity': 'page'}}"
            )
    return dict(labels)


class Rule:
    """What all rule kinds share: a name, a pattern, a window and a lifecycle.

    Build rules with :func:`frequency`, :func:`absence`, :func:`threshold` or
    :func:`ratio`; the classes are public so that you can recognise them.
    ``bound`` is the value that starts an incident and ``clear`` the one that
    ends it; ``op`` says how the value is compared with ``bound``.
    """

    kind = "rule"
    op = ">="
    group_by: str | None = None

    def __init__(
        self,
        name: str,
        pattern: str,
        window: float | timedelta,
        bound: float,
        *,
        for_: float | timedelta = 0,
        keep_firing_for: float | timedelta = 0,
        clear: float | None = None,
        repeat_interval: float | timedelta | None = None,
        labels: dict[str, str] | None = None,
    ) -> None:
        if not isinstance(name, str) or not _NAME.match(name):
            raise ValueError(
                f"name={name!r} must be one topic token of letters, digits, '_' or '-' "
                f"(alerts go to 'alerts.<name>'), e.g. 'error_storm'"
            )
        self.name = name
        self.pattern = _pattern(pattern, "pattern")
        self.window = seconds(window, "window")
        self.bound = bound
        self.for_ = seconds(for_, "for_", zero_ok=True)
        self.keep_firing_for = seconds(keep_firing_for, "keep_firing_for", zero_ok=True)
        self.repeat_interval = (
            None if repeat_interval is None else seconds(repeat_interval, "repeat_interval")
        )
        self.labels = _labels(labels)
        self.clear = bound if clear is None else self._check_clear(clear)
        self._past = _OPS[self.op]

    def _check_clear(self, clear: object) -> float:
        clear = _number(clear, "clear")
        high = self.op in (">", ">=")
        if (high and clear > self.bound) or (not high and clear < self.bound):
            side = "at most" if high else "at least"
            raise ValueError(
                f"clear={clear!r} must be {side} the firing bound {self.bound!r}: "
                f"the alert fires at {self.op} {self.bound!r} and clears past 'clear'"
            )
        return clear

    def fires(self, value: float | None) -> bool:
        """Whether ``value`` starts (or keeps pending) an incident."""
        return value is not None and self._past(value, self.bound)

    def holds(self, value: float | None) -> bool:
        """Whether a firing incident goes on at ``value`` (uses ``clear``)."""
        return value is not None and self._past(value, self.clear)

    def patterns(self) -> list[tuple[str, str]]:
        """The patterns this rule watches, each with its role."""
        return [(self.pattern, "main")]

    def describe(self, value: Any) -> str:
        """One line for people: what was seen against what was expected."""
        return f"{self.name}: {_fmt(value)} {self.op} {_fmt(self.bound)}"

    def recovered(self, value: Any) -> str:
        """One line for people when an incident resolves: what is back to normal."""
        return f"{self.name} is back: {_fmt(value)} (clears at {_fmt(self.clear)})"

    def summary(self, state: str, value: Any) -> str:
        """The ``summary`` of a notice in ``state`` (firing, resolved, ended, pending...)."""
        if state == "resolved":
            return self.recovered(value)
        if state == "ended":
            return f"still firing when the monitor closed; last seen: {self.describe(value)}"
        return self.describe(value)

    def _options(self) -> str:
        parts = []
        for key in ("for_", "keep_firing_for", "repeat_interval"):
            if getattr(self, key):
                parts.append(f"{key}={_code(getattr(self, key))}")
        if self.clear != self.bound:
            parts.append(f"clear={_code(self.clear)}")
        if self.labels:
            parts.append(f"labels={self.labels!r}")
        return "".join(", " + p for p in parts)

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and vars(other) == vars(self)

    __hash__ = None  # type: ignore[assignment]


_OPS = {">=": operator.ge, ">": operator.gt, "<": operator.lt, "<=": operator.le}
"""How each rule kind compares its value with its bound."""


def format_value(value: Any) -> str:
    """A number for people: every integer digit, thousands separated, and
    three significant digits in all (``15,000``, ``12.3``, ``0.201``)."""
    if value is None:
        return "no data"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if value == 0:
        return "0"
    if not math.isfinite(value):
        return f"{value:g}"
    # Digits after the point so that three significant ones show, but never
    # rounding away integer digits (where :g would switch to an exponent).
    decimals = max(0, 2 - math.floor(math.log10(abs(value))))
    text = f"{value:,.{decimals}f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


_fmt = format_value  # the short name for the many f-strings below


def _code(value: float) -> str:
    """A number as Python would read it back: ``300`` rather than ``300.0``,
    and every digit (``:g`` keeps six and turns 1234567.25 into 1.23457e+06)."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return str(int(value))
    return repr(value)


def _back(value: float, op: str, bound: float) -> str:
    """'back under 20' for an alert that fired above 20 (at it: 'back at')."""
    if value == bound:
        return f"back at {_fmt(bound)}"
    return f"back {'under' if op in ('>', '>=') else 'above'} {_fmt(bound)}"


def _percent(fraction: float, decimals: int | None = None) -> str:
    if decimals is not None:
        return f"{fraction * 100:.{decimals}f} %"
    return f"{_fmt(fraction * 100)} %"


def _covers(outer: str, inner: str) -> bool:
    """Whether every topic matching pattern ``inner`` also matches pattern ``outer``."""
    out, inn = outer.split("."), inner.split(".")
    for i, tok in enumerate(out):
        if tok == ">":
            return len(inn) > i
        if i >= len(inn) or inn[i] == ">" or (tok != "*" and (inn[i] == "*" or inn[i] != tok)):
            return False
    return len(out) == len(inn)


class Frequency(Rule):
    """At least ``count`` matching events within ``window`` seconds."""

    kind = "frequency"
    op = ">="

    def __init__(self, name: str, pattern: str, *, count: int, window: Any, group_by=None, **kw):
        count = _count(count, "count")
        if group_by is not None and (not isinstance(group_by, str) or not group_by):
            raise TypeError(
                f"group_by must be 'src' or the name of a data field such as 'user', "
                f"got {group_by!r}"
            )
        self.group_by = group_by
        super().__init__(name, pattern, window, count, **kw)
        self.count = count
        if not float(self.clear).is_integer() or self.clear < 1:
            raise ValueError(f"clear={self.clear!r} must be a whole count of at least 1")
        self.clear = int(self.clear)

    def describe(self, value: Any) -> str:
        return (
            f"{_fmt(value)} {self.pattern} events within {_fmt(self.window)} s "
            f"(alert at {_fmt(self.count)})"
        )

    def recovered(self, value: Any) -> str:
        clear = f", clears under {_fmt(self.clear)}" if self.clear != self.count else ""
        return (
            f"{self.pattern} calmed down: {_fmt(value)} within {_fmt(self.window)} s "
            f"(alert at {_fmt(self.count)}{clear})"
        )

    def __repr__(self) -> str:
        group = f", group_by={self.group_by!r}" if self.group_by else ""
        return (
            f"frequency({self.name!r}, {self.pattern!r}, count={self.count}, "
            f"window={_code(self.window)}{group}{self._options()})"
        )


class Absence(Rule):
    """Fewer than ``count`` matching events within ``window`` seconds (after a warm-up)."""

    kind = "absence"
    op = "<"

    def __init__(self, name: str, pattern: str, *, count: int = 1, window: Any, **kw):
        count = _count(count, "count")
        super().__init__(name, pattern, window, count, **kw)
        self.count = count
        if not float(self.clear).is_integer():
            raise ValueError(f"clear={self.clear!r} must be a whole count")
        self.clear = int(self.clear)

    def describe(self, value: Any) -> str:
        return (
            f"only {_fmt(value)} {self.pattern} events within {_fmt(self.window)} s "
            f"(expected at least {_fmt(self.count)})"
        )

    def recovered(self, value: Any) -> str:
        return (
            f"{self.pattern} is back: {_fmt(value)} within {_fmt(self.window)} s "
            f"(needed ≥ {_fmt(self.clear)})"
        )

    def __repr__(self) -> str:
        return (
            f"absence({self.name!r}, {self.pattern!r}, count={self.count}, "
            f"window={_code(self.window)}{self._options()})"
        )


class Threshold(Rule):
    """An aggregate of a numeric data field over ``window`` above or below a bound."""

    kind = "threshold"

    def __init__(
        self,
        name: str,
        pattern: str,
        *,
        field: str,
        agg: str = "mean",
        above: float | None = None,
        below: float | None = None,
        window: Any,
        group_by=None,
        **kw,
    ):
        if not isinstance(field, str) or not field:
            raise TypeError(f"field must name a data field such as 'ms', got {field!r}")
        if agg not in AGGREGATES and not (isinstance(agg, str) and _PERCENTILE.match(agg)):
            raise ValueError(
                f"agg={agg!r} is not an aggregate I know; use one of {', '.join(AGGREGATES)} "
                f"(or any pNN from p1 to p99, or pNNi to interpolate as Prometheus does)"
            )
        if (above is None) == (below is None):
            raise ValueError(
                f"give exactly one of above= or below= (got above={above!r}, below={below!r})"
            )
        if group_by is not None and (not isinstance(group_by, str) or not group_by):
            raise TypeError(f"group_by must be 'src' or a data field name, got {group_by!r}")
        self.field = field
        self.agg = agg
        self.group_by = group_by
        self.op = ">" if above is not None else "<"
        bound = _number(
            above if above is not None else below, "above" if above is not None else "below"
        )
        super().__init__(name, pattern, window, bound, **kw)

    def describe(self, value: Any) -> str:
        side = "above" if self.op == ">" else "below"
        return (
            f"{self.agg} of {self.field} over {_fmt(self.window)} s is {_fmt(value)} "
            f"({side} {_fmt(self.bound)})"
        )

    def recovered(self, value: Any) -> str:
        if value is None:
            side = "above" if self.op == ">" else "below"
            return (
                f"{self.agg} of {self.field}: no {self.pattern} values left within "
                f"{_fmt(self.window)} s, so nothing is {side} {_fmt(self.bound)}"
            )
        return (
            f"{self.agg} of {self.field} is {_back(value, self.op, self.clear)}: "
            f"{_fmt(value)} over the last {_fmt(self.window)} s"
        )

    def __repr__(self) -> str:
        side = "above" if self.op == ">" else "below"
        group = f", group_by={self.group_by!r}" if self.group_by else ""
        return (
            f"threshold({self.name!r}, {self.pattern!r}, field={self.field!r}, "
            f"agg={self.agg!r}, {side}={_code(self.bound)}, window={_code(self.window)}"
            f"{group}{self._options()})"
        )


class Ratio(Rule):
    """Events of ``pattern`` over events of ``of`` within ``window``, above a bound.

    ``min_of`` is how many ``of`` events the window must hold before the
    ratio means anything (one failure out of one attempt is not a trend).
    An event that matches both patterns counts in both, in one step. When
    ``of`` covers ``pattern`` the ratio is a share (0 to 1), so a bound of 1
    or more is refused; patterns that do not overlap (retries per payment)
    may go above 1.
    """

    kind = "ratio"
    op = ">"

    def __init__(
        self, name: str, pattern: str, *, of: str, above: float, window: Any, min_of=1, **kw
    ):
        self.of = _pattern(of, "of")
        self.min_of = _count(min_of, "min_of")
        bound = _number(above, "above")
        if bound < 0:
            raise ValueError(f"above={above!r} must be a ratio of 0 or more, e.g. 0.05 for 5 %")
        pattern = _pattern(pattern, "pattern")
        if bound >= 1 and _covers(self.of, pattern):
            hint = (
                f"did you mean {bound / 100:g} for {_fmt(bound)} %?"
                if bound < 100
                else "give the share as a fraction below 1, e.g. 0.2 for 20 %"
            )
            raise ValueError(
                f"above={above!r} can never be passed: every {pattern!r} event also matches "
                f"of={self.of!r}, so the share is at most 1; {hint}"
            )
        super().__init__(name, pattern, window, bound, **kw)

    def patterns(self) -> list[tuple[str, str]]:
        return [(self.pattern, "num"), (self.of, "den")]

    def describe(self, value: Any) -> str:
        shown = "no data" if value is None else _percent(value, 1)
        return (
            f"{self.pattern} / {self.of} over {_fmt(self.window)} s is {shown} "
            f"(above {_percent(self.bound)})"
        )

    def share(self) -> str:
        """What the ratio counts, for people: 'failed' for payments.failed of payments.*."""
        pat, of = self.pattern.split("."), self.of.split(".")
        i = 0
        while i < min(len(pat), len(of)) - 1 and pat[i] == of[i] and pat[i] not in ("*", ">"):
            i += 1
        return ".".join(pat[i:])

    def recovered(self, value: Any) -> str:
        if value is None:
            return (
                f"{self.share()} share has no verdict: fewer than {self.min_of} {self.of} "
                f"events within {_fmt(self.window)} s"
            )
        verb = "is back at" if value == self.clear else "is back under"
        return f"{self.share()} share {_percent(value, 1)} {verb} {_percent(self.clear)}"

    def __repr__(self) -> str:
        min_of = f", min_of={self.min_of}" if self.min_of != 1 else ""
        return (
            f"ratio({self.name!r}, {self.pattern!r}, of={self.of!r}, above={_code(self.bound)}, "
            f"window={_code(self.window)}{min_of}{self._options()})"
        )


def frequency(
    name: str,
    pattern: str,
    *,
    count: int,
    window: float | timedelta,
    group_by: str | None = None,
    **lifecycle: Any,
) -> Frequency:
    """Alert when at least ``count`` events match ``pattern`` within ``window`` seconds.

    :param group_by: ``"src"`` or a data field name: count each group apart
        and alert per group.
    :param lifecycle: ``for_``, ``keep_firing_for``, ``clear`` (the count to
        fall below before resolving), ``repeat_interval``, ``labels``.
    """
    return Frequency(name, pattern, count=count, window=window, group_by=group_by, **lifecycle)


def absence(
    name: str, pattern: str, *, count: int = 1, window: float | timedelta, **lifecycle: Any
) -> Absence:
    """Alert when fewer than ``count`` events match ``pattern`` within ``window`` seconds.

    The rule stays quiet for the first ``window`` after the monitor starts
    (it has not watched long enough to know). ``clear`` is the count the
    window must reach again before the alert resolves (``count`` by default).
    """
    return Absence(name, pattern, count=count, window=window, **lifecycle)


def threshold(
    name: str,
    pattern: str,
    *,
    field: str,
    agg: str = "mean",
    above: float | None = None,
    below: float | None = None,
    window: float | timedelta,
    group_by: str | None = None,
    **lifecycle: Any,
) -> Threshold:
    """Alert when ``agg`` of ``data[field]`` over ``window`` is above (or below) a bound.

    ``agg`` is ``"mean"``, ``"max"``, ``"min"`` or a percentile: ``"p95"`` is
    the nearest rank (a value that was really seen: with 11 values, the
    largest); ``"p95i"`` interpolates between ranks as Prometheus's
    ``quantile_over_time(0.95, ...)`` does. Events whose data lacks a numeric ``field``
    are counted as ``skipped`` in the rule's stats. An empty window has no
    value, so a firing threshold alert resolves when its window empties.
    """
    return Threshold(
        name,
        pattern,
        field=field,
        agg=agg,
        above=above,
        below=below,
        window=window,
        group_by=group_by,
        **lifecycle,
    )


def ratio(
    name: str,
    pattern: str,
    *,
    of: str,
    above: float,
    window: float | timedelta,
    min_of: int = 1,
    **lifecycle: Any,
) -> Ratio:
    """Alert when events of ``pattern`` over events of ``of`` within ``window`` exceed ``above``."""
    return Ratio(name, pattern, of=of, above=above, window=window, min_of=min_of, **lifecycle)


def default_rules() -> list[Rule]:
    """The chapter's rule: five ``*.error`` events within 60 s raise ``alerts.error_storm``."""
    return [frequency("error_storm", "*.error", count=5, window=60)]
