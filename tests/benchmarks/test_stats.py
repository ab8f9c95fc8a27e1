"""The statistics' arithmetic on samples whose answers are known by hand."""

from __future__ import annotations

import math

import pytest

from edgegen.benchmarks.stats import percentile, summarize, throughput


def test_percentiles_interpolate_between_closest_ranks() -> None:
    s = list(range(1, 101))  # 1..100: rank r (0-based) of q is q/100 * 99
    assert percentile(s, 50) == pytest.approx(50.5)
    assert percentile(s, 90) == pytest.approx(90.1)
    assert percentile(s, 99) == pytest.approx(99.01)
    assert percentile(s, 0) == 1 and percentile(s, 100) == 100
    assert percentile([7.0], 99) == 7.0
    with pytest.raises(ValueError):
        percentile([], 50)


def test_throughput_is_images_over_time_in_the_calls() -> None:
    assert throughput(batch=8, calls=4, total_ns=0.5e9) == pytest.approx(64.0)
    assert throughput(batch=1, calls=1000, total_ns=1e9) == pytest.approx(1000.0)
    with pytest.raises(ValueError):
        throughput(1, 1, 0)


def test_summarize_known_samples() -> None:
    ns = [1_000_000, 2_000_000, 3_000_000, 4_000_000]  # 1, 2, 3, 4 ms
    st = summarize(ns, batch=16)
    assert (st.count, st.batch) == (4, 16)
    assert st.min_ms == 1.0 and st.max_ms == 4.0 and st.mean_ms == pytest.approx(2.5)
    assert st.p50_ms == pytest.approx(2.5)
    assert st.p90_ms == pytest.approx(3.7)  # 3 + 0.9 * 3 - 2 ranks in: 1 + 0.9 * 3 = 3.7
    assert st.p99_ms == pytest.approx(3.97)
    assert st.total_s == pytest.approx(0.01)
    assert st.images_per_s == pytest.approx(16 * 4 / 0.01)  # 6,400 images per second
    assert st.ms_per_image == pytest.approx(2.5 / 16)
    assert st.std_ms == pytest.approx(math.sqrt(1.25))
    assert st.min_ms <= st.p50_ms <= st.p90_ms <= st.p95_ms <= st.p99_ms <= st.max_ms
    with pytest.raises(ValueError):
        summarize([], 1)
