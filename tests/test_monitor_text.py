"""How rules show themselves: ``describe()`` for people, ``repr()`` as code."""

from __future__ import annotations

from datetime import timedelta

import pytest

from hms_bus.monitor import absence, frequency, ratio, threshold

RULES = {"frequency": frequency, "absence": absence, "threshold": threshold, "ratio": ratio}


def bank_slow(**kw):
    return threshold("bank_slow", "bank.response", field="latency_ms", agg="p95", window=120, **kw)


def test_large_numbers_in_a_summary_are_printed_plainly():
    text = bank_slow(above=10_000).describe(15000.0)
    assert text == "p95 of latency_ms over 120 s is 15,000 (above 10,000)"
    assert "e+" not in bank_slow(above=2_500_000).describe(3_125_000.25)


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (0.201, "0.201"),
        (0.2014, "0.201"),
        (0.0123456, "0.0123"),
        (0.00012, "0.00012"),
        (1.5, "1.5"),
        (12.345, "12.3"),
        (123.45, "123"),
        (1234.5678, "1,235"),
        (15000.0, "15,000"),
        (15000, "15,000"),
        (-2.5, "-2.5"),
        (0.0, "0"),
        (None, "no data"),
    ],
)
def test_summary_numbers_keep_three_significant_digits_without_exponents(value, shown):
    assert bank_slow(below=0.5).describe(value) == (
        f"p95 of latency_ms over 120 s is {shown} (below 0.5)"
    )


def test_the_generic_summary_prints_numbers_plainly_too():
    rule = bank_slow(above=10_000)
    assert super(type(rule), rule).describe(1.5e7) == "bank_slow: 15,000,000 > 10,000"


def test_long_windows_are_printed_plainly():
    rule = frequency("storm", "*.error", count=5, window=2_000_000)
    assert rule.describe(7) == "7 *.error events within 2,000,000 s (alert at 5)"


def test_ratio_repr_shows_min_of():
    rule = ratio("f", "payments.failed", of="payments.*", above=0.2, window=300, min_of=10)
    assert repr(rule) == (
        "ratio('f', 'payments.failed', of='payments.*', above=0.2, window=300, min_of=10)"
    )


def test_threshold_repr_shows_group_by():
    rule = bank_slow(above=10_000, group_by="src")
    assert "group_by='src'" in repr(rule)


def test_reprs_keep_every_digit_of_large_and_odd_numbers():
    rule = threshold("t", "x.y", field="v", above=1_234_567.25, window=86_400 * 30)
    assert repr(rule) == (
        "threshold('t', 'x.y', field='v', agg='mean', above=1234567.25, window=2592000)"
    )


EVERYTHING = {
    "for_": 30,
    "keep_firing_for": timedelta(minutes=2),
    "repeat_interval": 3600,
    "labels": {"severity": "page"},
}
"""Lifecycle options every rule kind takes, none at its default."""

ALL_PARAMETERS = [
    frequency("storm", "*.error", count=7, window=90, group_by="src", clear=3, **EVERYTHING),
    absence("quiet", "payments.sent", count=2, window=600, clear=4, **EVERYTHING),
    threshold(
        "slow",
        "bank.response",
        field="latency_ms",
        agg="p99",
        above=1_500_000,
        window=300,
        group_by="src",
        clear=1_000_000.5,
        **EVERYTHING,
    ),
    threshold("dry", "tank.level", field="litres", agg="min", below=0.125, window=60),
    ratio(
        "failing",
        "payments.failed",
        of="payments.*",
        above=0.05,
        window=600,
        min_of=12,
        clear=0.025,
        **EVERYTHING,
    ),
]


@pytest.mark.parametrize("rule", ALL_PARAMETERS, ids=lambda r: r.kind + "-" + r.name)
def test_a_rules_repr_is_code_that_builds_the_same_rule(rule):
    """Every parameter shows in the repr: evaluating it gives an equal rule."""
    again = eval(repr(rule), dict(RULES))
    assert again == rule
    assert repr(again) == repr(rule)


# -- what a notice says, per state -------------------------------------------------------------


def test_a_resolved_absence_says_what_came_back():
    rule = absence("bank_down", "payments.sent", window=600)
    assert rule.summary("resolved", 186) == "payments.sent is back: 186 within 600 s (needed ≥ 1)"
    assert rule.summary("firing", 0) == (
        "only 0 payments.sent events within 600 s (expected at least 1)"
    )


def test_a_resolved_ratio_says_the_share_is_back_under_its_bound():
    rule = ratio("failing", "payments.failed", of="payments.*", above=0.2, window=300)
    assert rule.summary("resolved", 0.0) == "failed share 0.0 % is back under 20 %"
    assert rule.summary("resolved", 0.2) == "failed share 20.0 % is back at 20 %"
    assert rule.summary("firing", 0.25) == (
        "payments.failed / payments.* over 300 s is 25.0 % (above 20 %)"
    )
    thin = ratio("failing", "payments.failed", of="payments.*", above=0.2, window=300, min_of=10)
    assert thin.summary("resolved", None) == (
        "failed share has no verdict: fewer than 10 payments.* events within 300 s"
    )


def test_a_resolved_frequency_says_the_storm_calmed_down():
    rule = frequency("error_storm", "*.error", count=5, window=60)
    assert rule.summary("resolved", 4) == "*.error calmed down: 4 within 60 s (alert at 5)"
    hysteresis = frequency("error_storm", "*.error", count=5, window=60, clear=2)
    assert hysteresis.summary("resolved", 1) == (
        "*.error calmed down: 1 within 60 s (alert at 5, clears under 2)"
    )


def test_a_resolved_threshold_says_the_aggregate_is_back_or_that_no_data_is_left():
    assert bank_slow(above=10_000).summary("resolved", 800.0) == (
        "p95 of latency_ms is back under 10,000: 800 over the last 120 s"
    )
    assert bank_slow(below=100).summary("resolved", 250.0) == (
        "p95 of latency_ms is back above 100: 250 over the last 120 s"
    )
    assert bank_slow(above=10_000).summary("resolved", None) == (
        "p95 of latency_ms: no bank.response values left within 120 s, so nothing is above 10,000"
    )


def test_an_ended_notice_says_the_monitor_closed_and_what_it_last_saw():
    rule = frequency("error_storm", "*.error", count=5, window=60)
    assert rule.summary("ended", 7) == (
        "still firing when the monitor closed; last seen: 7 *.error events within 60 s (alert at 5)"
    )


def test_the_interpolated_percentile_shows_in_repr_and_summary():
    rule = bank_slow(above=1000).__class__  # Threshold
    slow = threshold("slow", "bank.response", field="latency_ms", agg="p95i", above=1000, window=60)
    assert isinstance(slow, rule)
    assert "agg='p95i'" in repr(slow) and eval(repr(slow), dict(RULES)) == slow
    assert slow.describe(1550.0) == "p95i of latency_ms over 60 s is 1,550 (above 1,000)"
    with pytest.raises(ValueError, match="pNNi to interpolate"):
        threshold("slow", "bank.response", field="latency_ms", agg="p95x", above=1, window=60)
