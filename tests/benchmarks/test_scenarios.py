"""The server scenario's pieces: Poisson arrivals, the worker pool, the QPS sweep."""

from __future__ import annotations

import numpy as np
import pytest

from edgegen.benchmarks.scenarios import (
    ServerResult,
    poisson_arrivals,
    serve,
    summarize_served,
    sweep_qps,
)


def test_poisson_arrivals_look_poisson() -> None:
    qps, dur = 2000.0, 5.0
    t = poisson_arrivals(qps, dur, seed=7)
    expected = qps * dur
    assert abs(len(t) - expected) < 5 * np.sqrt(expected)  # count ~ Poisson(qps * duration)
    assert np.all(np.diff(t) > 0) and t[0] > 0 and t[-1] < dur
    gaps = np.diff(t)
    assert gaps.mean() == pytest.approx(1 / qps, rel=0.05)  # exponential gaps, mean 1/qps
    assert gaps.std() / gaps.mean() == pytest.approx(1.0, abs=0.05)  # CV of an exponential
    assert np.array_equal(t, poisson_arrivals(qps, dur, seed=7))  # seeded
    assert not np.array_equal(t[:10], poisson_arrivals(qps, dur, seed=8)[:10])
    with pytest.raises(ValueError):
        poisson_arrivals(0, 1, 0)


def test_serve_completes_light_load() -> None:
    sizes: list[int] = []
    arrivals = poisson_arrivals(200.0, 0.25, seed=1)
    served = serve(lambda k: sizes.append(k), arrivals, workers=2, max_batch=4, drain_s=1.0)
    assert served.issued == len(arrivals) == served.completed
    assert len(served.latencies_ns) == served.completed and (served.latencies_ns >= 0).all()
    assert sum(sizes) == served.completed and max(sizes) <= 4
    r = summarize_served(served, contender="edgegen", variant="fp32", provider="cpu",
                         target_qps=200.0, duration_s=0.25, workers=2, max_batch=4,
                         intra_op_threads=1, p99_bound_ms=1000.0)
    assert r.unfinished == 0 and r.within_bound and r.achieved_qps > 0
    assert r.p50_ms <= r.p99_ms <= r.max_ms


def test_serve_reports_what_it_could_not_finish() -> None:
    import time

    arrivals = np.linspace(0.001, 0.05, 50)
    served = serve(lambda k: time.sleep(0.01), arrivals, workers=1, max_batch=1, drain_s=0.05)
    assert served.completed < served.issued  # 50 requests x 10 ms do not fit in 0.1 s


def _fake(capacity: float):
    def run_at(qps: float) -> ServerResult:
        p99 = 1.0 if qps <= capacity else 100.0
        return ServerResult(contender="x", variant="fp32", provider="cpu", target_qps=qps,
                            duration_s=1, workers=1, max_batch=1, intra_op_threads=1,
                            issued=1, completed=1, unfinished=0, achieved_qps=qps,
                            mean_batch=1, p50_ms=p99, p90_ms=p99, p99_ms=p99, mean_ms=p99,
                            max_ms=p99, p99_bound_ms=10.0)
    return run_at


def test_sweep_brackets_the_capacity() -> None:
    sw = sweep_qps(_fake(capacity=1000.0), start_qps=100.0, p99_bound_ms=10.0, steps=12)
    assert sw.best_qps is not None and 950 <= sw.best_qps <= 1000
    assert [t.target_qps for t in sw.trials][:5] == [100, 200, 400, 800, 1600]
    sw = sweep_qps(_fake(capacity=10.0), start_qps=100.0, p99_bound_ms=10.0, steps=6)
    assert [t.target_qps for t in sw.trials][:5] == [100, 50, 25, 12.5, 6.25]  # halves down
    assert sw.best_qps is not None and 6.25 <= sw.best_qps <= 10
    sw = sweep_qps(_fake(capacity=0.0), start_qps=100.0, p99_bound_ms=10.0, steps=3)
    assert sw.best_qps is None and len(sw.trials) == 3


def test_dynamic_batching_waits_up_to_the_delay_for_a_full_batch() -> None:
    """Arrivals 2 ms apart: without a delay each request runs alone; with 20 ms, batches fill
    up to max_batch (the next free worker forms the batch, one at a time)."""
    arrivals = np.arange(1, 41) * 0.002
    alone: list[int] = []
    serve(lambda k: alone.append(k), arrivals, workers=2, max_batch=8, drain_s=1.0)
    assert np.median(alone) == 1  # nothing waits: a batch is whatever already queued
    sizes: list[int] = []
    served = serve(lambda k: sizes.append(k), arrivals, workers=2, max_batch=8, drain_s=1.0,
                   max_delay_s=0.02)
    assert served.completed == 40 and sum(sizes) == 40
    assert max(sizes) == 8 and np.mean(sizes) >= max(4.0, 2 * np.mean(alone))
    # a request never waits for company longer than the delay (plus scheduling slack)
    assert served.latencies_ns.max() < 0.02e9 + 0.05e9


def test_rejected_and_failed_requests_are_counted_apart() -> None:
    from edgegen.benchmarks.scenarios import Rejected

    calls = iter(range(1000))

    def infer(k: int) -> None:
        i = next(calls)
        if i % 3 == 1:
            raise Rejected("503")
        if i % 3 == 2:
            raise ConnectionResetError("lost")

    arrivals = poisson_arrivals(300.0, 0.1, seed=3)
    served = serve(infer, arrivals, workers=1, max_batch=1, drain_s=1.0)
    assert served.completed + served.rejected + served.failed == served.issued
    assert served.rejected >= 1 and served.failed >= 1 and "lost" in served.errors[0]
    r = summarize_served(served, contender="served", variant="remote", provider="http",
                         target_qps=300.0, duration_s=0.1, workers=1, max_batch=1,
                         intra_op_threads=0, p99_bound_ms=1000.0)
    assert r.unfinished == 0 and r.rejected == served.rejected and not r.within_bound
