"""edgegen.benchmarks: how fast the bundle runs, next to what a user would otherwise run.

``bench(BenchConfig(...)) -> BenchReport``. ``results`` holds the config and report types,
``runners`` the contenders (defined once, shared by the ``offline`` and ``server`` scenarios),
``harness`` the timing loop. Importing this package is cheap: torch, onnxruntime and openvino
are imported inside the functions that use them.
"""

from __future__ import annotations

from edgegen.benchmarks.bench import bench
from edgegen.benchmarks.results import BenchConfig, BenchReport, BenchResult

__all__ = ["BenchConfig", "BenchReport", "BenchResult", "bench"]
