"""bench() on a cflow bundle: model.onnx keeps the contract, so the bench needs no change; the
FLOPs are the unrolled sampler's, and the PyTorch peer runs the bundle's sampler settings."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgegen.benchmarks import BenchConfig, bench
from edgegen.quality.flops import count_flops

FAST = dict(iters=2, warmup_iters=1, warmup_s=0.0, rounds=1, measure_matmul=False)


def test_bench_runs_the_unrolled_sampler_and_its_torch_peer(tiny_cflow_bundle: Path) -> None:
    r = bench(BenchConfig(bundle=tiny_cflow_bundle, batches=(1, 4), peers=("torch",),
                          precisions=("fp32",), **FAST))
    assert r.passed and not r.failures
    assert {(x.key, x.batch) for x in r.results} >= {("edgegen/fp32/cpu", 1),
                                                     ("torch/fp32/cpu", 4)}
    per_call = count_flops(tiny_cflow_bundle / "denoiser.onnx").per_image
    assert r.flops["per_image"] == pytest.approx(6 * per_call)  # 3 steps x 2 (guidance)
