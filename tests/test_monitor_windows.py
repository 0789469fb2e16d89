"""Sliding windows agree with a brute-force recount at every instant."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hms_bus.monitor.windows import CountWindow, ValueWindow, interpolated, nearest_rank

WIDTH = 10.0

# (gap since the previous event, value) pairs: gaps of 0 give equal timestamps.
steps = st.lists(
    st.tuples(
        st.sampled_from([0.0, 0.5, 1.0, 2.5, 9.99, 10.0, 10.01, 30.0]),
        st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False),
    ),
    max_size=60,
)


def inside(events, now):
    return [x for t, x in events if t <= now < t + WIDTH]


def brute(agg, xs):
    if not xs:
        return None
    if agg == "mean":
        return math.fsum(xs) / len(xs)
    if agg == "max":
        return max(xs)
    if agg == "min":
        return min(xs)
    quantile = interpolated if agg.endswith("i") else nearest_rank
    return quantile(sorted(xs), int(agg[1:].rstrip("i")) / 100)


@settings(max_examples=150, deadline=None)
@given(steps)
def test_count_window_holds_exactly_the_events_of_the_last_width_seconds(seq):
    w = CountWindow(WIDTH)
    seen, t = [], 1000.0
    for gap, x in seq:
        t += gap
        seen.append((t, x))
        w.add(t, x)
        w.expire(t)
        assert list(w.events) == inside(seen, t)
        # Looking a little later without new events
        later = t + gap / 2
        w.expire(later)
        assert list(w.events) == inside(seen, later)
        t = later


@settings(max_examples=150, deadline=None)
@given(steps, st.sampled_from(["mean", "max", "min", "p95", "p50", "p1", "p95i", "p1i"]))
def test_value_window_aggregate_matches_recount(seq, agg):
    w = ValueWindow(WIDTH, agg)
    seen, t = [], 0.0
    for gap, x in seq:
        t += gap
        seen.append((t, x))
        w.add(t, None, x)
        w.expire(t)
        want = brute(agg, inside(seen, t))
        got = w.value()
        if want is None or agg != "mean":
            assert got == want
        else:
            assert got == pytest.approx(want, rel=1e-9, abs=1e-6)


@settings(max_examples=100, deadline=None)
@given(steps, st.integers(1, 6))
def test_drops_below_is_when_the_count_first_falls_under_k(seq, k):
    w = CountWindow(WIDTH)
    t = 0.0
    for gap, _ in seq:
        t += gap
        w.add(t, None)
    w.expire(t)
    when = w.drops_below(k)
    if len(w) < k:
        assert when is None
        return
    w.expire(math.nextafter(when, -math.inf))
    assert len(w) >= k
    w.expire(when)
    assert len(w) < k


def test_edge_event_leaves_exactly_width_seconds_later():
    """An event at e counts while e <= t < e + width."""
    w = CountWindow(60)
    w.add(0.0, "a")
    w.expire(59.999)
    assert len(w) == 1
    w.expire(60.0)
    assert len(w) == 0
    assert w.next_expiry() is None


def test_nearest_rank_p95_of_twenty_values_is_the_nineteenth():
    assert nearest_rank(list(range(1, 21)), 0.95) == 19
    assert nearest_rank([7.0], 0.95) == 7.0
    assert nearest_rank(list(range(1, 101)), 0.95) == 95


def test_mean_does_not_drift_over_many_slides():
    w = ValueWindow(5, "mean")
    for i in range(100_000):
        w.add(float(i), None, 1e9 if i % 2 else 1e-3)
        w.expire(float(i))
    assert w.value() == pytest.approx((3 * 1e9 + 2 * 1e-3) / 5, rel=1e-12)


def test_interpolated_percentile_is_prometheus_quantile_over_time():
    """Eleven values, one slow: nearest rank says 3000, Prometheus says 1550."""
    values = sorted([100.0] * 10 + [3000.0])
    assert nearest_rank(values, 0.95) == 3000
    assert interpolated(values, 0.95) == pytest.approx(1550)
    assert interpolated([7.0], 0.95) == 7.0
    assert interpolated([1.0, 2.0, 3.0, 4.0, 5.0], 0.5) == 3.0
    assert interpolated([1.0, 2.0], 0.99) == pytest.approx(1.99)


def test_a_p95i_window_interpolates_and_a_p95_window_does_not():
    near, inter = ValueWindow(60, "p95"), ValueWindow(60, "p95i")
    for i, ms in enumerate([100] * 10 + [3000]):
        near.add(float(i), None, ms)
        inter.add(float(i), None, ms)
    assert (near.value(), inter.value()) == (3000, pytest.approx(1550))


# Values of every magnitude, so that big ones cancel and small ones would be lost.
wild = st.lists(
    st.tuples(
        st.sampled_from([0.0, 1.0, 5.0, 10.0]),
        st.sampled_from([1e308, -1e308, 1e20, -1e20, 1.0, 0.5, -3.0, 1e-300]),
    ),
    max_size=40,
)


@settings(max_examples=300, deadline=None)
@given(wild)
def test_a_mean_stays_exact_when_huge_values_cancel_or_overflow(seq):
    """1e20 + 1 - 1e20 is 0 in floating point, and 1e308 + 1e308 is infinity; the
    window's mean is still the mean of what it holds (Prometheus's avg_over_time)."""
    w = ValueWindow(WIDTH, "mean")
    seen, t = [], 0.0
    for gap, x in seq:
        t += gap
        seen.append((t, x))
        w.expire(t)
        w.add(t, None, x)
        xs = inside(seen, t)
        want = math.fsum(x / len(xs) for x in xs)
        assert w.value() == pytest.approx(want, rel=1e-9, abs=1e-12), xs


def test_a_mean_after_a_huge_value_left_the_window():
    w = ValueWindow(WIDTH, "mean")
    w.add(0.0, None, 1e20)
    for _ in range(4):
        w.add(5.0, None, 1.0)
    w.expire(10.0)
    assert w.value() == 1.0
