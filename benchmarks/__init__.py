"""edgegen.benchmarks: how fast the bundle runs, next to what a user would otherwise run.

``bench(BenchConfig(...)) -> BenchReport``. Importing this package is cheap: torch,
onnxruntime and openvino are imported inside the functions that use them.
"""

from __future__ import annotations

from edgegen.benchmarks.bench import BenchConfig, BenchReport, BenchResult, bench

__all__ = ["BenchConfig", "BenchReport", "BenchResult", "bench"]
