"""Latency statistics and throughput from per-call timings in nanoseconds.

Percentiles use linear interpolation between closest ranks (numpy's default, and what
onnxruntime_perf_test and most dashboards report), so a p99 of 100 samples is not simply the
largest one. Throughput is images over the time spent inside the timed calls.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

NS_PER_MS = 1e6
NS_PER_S = 1e9


@dataclass(frozen=True)
class LatencyStats:
    """Latency of one contender at one batch size (milliseconds per call)."""

    batch: int
    count: int  # timed calls
    min_ms: float
    mean_ms: float
    p50_ms: float
    p90_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    std_ms: float
    total_s: float  # time spent inside the timed calls
    images_per_s: float

    @property
    def ms_per_image(self) -> float:
        return self.mean_ms / self.batch


def percentile(samples: Sequence[float] | np.ndarray, q: float) -> float:
    """The ``q``-th percentile (0..100) by linear interpolation between closest ranks."""
    arr = np.asarray(samples, dtype=np.float64)
    if arr.size == 0:
        raise ValueError("percentile of no samples")
    return float(np.percentile(arr, q))


def throughput(batch: int, calls: int, total_ns: float) -> float:
    """Images per second when ``calls`` calls of ``batch`` images took ``total_ns`` in all."""
    if total_ns <= 0:
        raise ValueError(f"total time must be positive, got {total_ns} ns")
    return batch * calls / (total_ns / NS_PER_S)


def summarize(samples_ns: Sequence[int] | np.ndarray, batch: int) -> LatencyStats:
    """Statistics of per-call durations ``samples_ns`` (nanoseconds) of ``batch`` images each."""
    ns = np.asarray(samples_ns, dtype=np.float64)
    if ns.size == 0:
        raise ValueError("no timed samples: the timed region ran no calls")
    ms = ns / NS_PER_MS
    total = float(ns.sum())
    return LatencyStats(
        batch=int(batch), count=int(ns.size), min_ms=float(ms.min()), mean_ms=float(ms.mean()),
        p50_ms=percentile(ms, 50), p90_ms=percentile(ms, 90), p95_ms=percentile(ms, 95),
        p99_ms=percentile(ms, 99), max_ms=float(ms.max()), std_ms=float(ms.std()),
        total_s=total / NS_PER_S, images_per_s=throughput(batch, int(ns.size), total))
