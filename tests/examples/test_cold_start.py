"""benchmarks/scripts/cold_start.py runs every reader in fresh processes (one run each here: the
numbers are the lead's to take on a quiet machine) and reports the phases of each."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


SCRIPT = ROOT / "benchmarks" / "scripts" / "cold_start.py"


def test_cold_start_measures_python_node_and_the_browser(
        js_install: Path, tiny_bundle: Path, chromium: str, tmp_path: Path, run_cmd: Any) -> None:
    out = tmp_path / "cold.json"
    done = run_cmd([sys.executable, SCRIPT, tiny_bundle, "--runs", "2", "--install", js_install,
                "--json", out], ROOT, timeout=600)
    report = json.loads(out.read_text())
    assert set(report["readers"]) == {"python", "node", "browser"}
    for name, r in report["readers"].items():
        assert r["runs"] == 2 and len(r["every_run"]) == 2, name
        for run_ in r["every_run"]:
            assert run_["pixels"] == 28 * 28, name  # the first image was made
            phases = run_["import_ms"] + run_["load_ms"] + run_["first_ms"]
            assert 0 < phases <= run_["total_ms"] + 1e-6 <= run_["wall_ms"] + 1e-6, (name, run_)
        assert r["total_ms"]["median"] <= r["total_ms"]["p90"], name
    assert report["readers"]["node"]["target_ms"] == 300
    assert report["readers"]["python"]["target_ms"] == 500
    for name in ("python", "node", "browser"):
        assert any(line.startswith(name) for line in done.stdout.splitlines()), done.stdout
    print("\n" + done.stdout)
