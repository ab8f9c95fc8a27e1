"""benchmarks/scripts/device_vs_bench.py: medians over rounds of saved reports, and the ratio."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _script():
    spec = importlib.util.spec_from_file_location(
        "device_vs_bench", ROOT / "benchmarks" / "scripts" / "device_vs_bench.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _report(p50: float, noisy: bool, load: float) -> dict:
    row = {"contender": "edgegen", "variant": "fp32", "batch": 1,
           "latency": {"p50_ms": p50, "images_per_s": 1000.0 / p50}}
    peer = {**row, "contender": "torch", "latency": {"p50_ms": 99.0, "images_per_s": 1.0}}
    return {"results": [row, peer], "noise": {"noisy": noisy},
            "machine": {"load_average": [load, 0.0, 0.0]}}


def test_medians_and_ratio(tmp_path: Path) -> None:
    for i, (d, b) in enumerate([(0.2, 0.1), (0.4, 0.3), (0.3, 0.2)], 1):
        (tmp_path / f"device-{i}.json").write_text(json.dumps(_report(d, False, 0.1)))
        (tmp_path / f"bench-{i}.json").write_text(json.dumps(_report(b, True, 0.4)))
    text = _script().table(tmp_path)
    row = next(line for line in text.splitlines() if line.startswith("| fp32 | 1 |"))
    # medians 0.3 and 0.2: device / bench = 1.50; only edgegen's own contender is read
    assert "| 0.200, 0.400, 0.300 | 0.100, 0.300, 0.200 | 1.50 | 3,333 | 5,000 |" in row
    assert "device ['quiet', 'quiet', 'quiet'], bench ['noisy', 'noisy', 'noisy']" in text


def test_an_empty_folder_says_what_it_needs(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="needs device-N.json and bench-N.json"):
        _script().table(tmp_path)
