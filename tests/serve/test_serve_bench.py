"""``benchmarks/scripts/serve_bench.py`` end to end with tiny durations: the local engine under
wrk (JSON and binary bodies) and the Python gRPC client, the table and the targets written as
JSON and markdown. Its numbers mean nothing here (a loaded machine, 1 s runs); the lead runs it on
a quiet one. Needs ``wrk`` (``apt-get install -y wrk``; .ci/run installs it)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "scripts" / "serve_bench.py"


def test_serve_bench_writes_the_table(tiny_bundle: Path, tmp_path: Path) -> None:
    if shutil.which("wrk") is None:
        pytest.skip("wrk is not installed (apt-get install -y wrk)")
    out = tmp_path / "results"
    res = subprocess.run([sys.executable, str(SCRIPT), str(tiny_bundle), "--engines", "local",
                          "--concurrency", "1,4", "--duration", "1", "--in-process-duration",
                          "0", "--serve-args", "--workers 1 --threads 1", "--out", str(out)],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    result = json.loads((out / "serve_bench.json").read_text())
    rows = {(r["body"], r["concurrency"]): r for r in result["rows"]}
    assert set(rows) == {(b, c) for b in ("json", "binary", "grpc") for c in (1, 4)}
    for r in rows.values():
        assert r["engine"] == "local" and r["errors"] == 0 and r["req_s"] > 0, r
        assert 0 < r["p50_ms"] <= r["p99_ms"] and r["load_average"] >= 0
    assert rows[("json", 4)]["client"].startswith("wrk")
    assert 0 < rows[("grpc", 1)]["client_cpu_share"] <= 1
    assert result["servers"]["local"]["ingress_path"].startswith("no proxy")
    assert len(result["targets"]) == 5
    md = (out / "serve_bench.md").read_text()
    assert "| local | binary | wrk -t1 | 1 |" in md and "| target | measured | met |" in md
