"""``edgegen demo`` end to end on the tiny MNIST fixture (a few cflow steps): every stage runs
and writes its files, and the summary reports what those files hold: the family, the steps it
trained, the fidelity eval measured, the guidance sweep, and the one-call student beside its
teacher."""

from __future__ import annotations

import json
import re
from pathlib import Path

from typer.testing import CliRunner

from edgegen.cli.app import app
from edgegen.training.checkpoint import read_info


def test_demo_runs_the_chain_on_cflow(idx_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "demo"
    res = CliRunner().invoke(app, ["demo", "--out", str(out), "--steps", "3", "--samples", "40",
                                   "--sweep-samples", "40", "--distill-steps", "2",
                                   "--distill-pairs", "64",
                                   "--data-dir", str(idx_dir)], env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    # the generator is a cflow trained for exactly the steps asked for, beside its evaluator
    info = read_info(out / "cflow")
    assert info["kind"] == "generator" and info["arch"] == "cflow" and info["step"] == 3
    assert read_info(out / "evaluator")["kind"] == "evaluator"
    assert "cflow: 3 steps" in res.output
    # the bundle ships the unrolled sampler and the denoiser; eval swept guidance 1, 2, 3
    manifest = json.loads((out / "bundle" / "manifest.json").read_text())
    assert manifest["generator"]["architecture"] == "cflow"
    assert (out / "bundle" / "denoiser.onnx").is_file() and "sampler" in manifest
    report = json.loads((out / "eval" / "report.json").read_text())
    assert [r["guidance"] for r in report["sampler_sweep"]] == [1.0, 2.0, 3.0]
    steps = report["sampler_sweep"][-1]["steps"]
    assert f"guidance 3 ({steps} steps)" in res.output
    assert (out / "eval" / "sampler_sweep.png").is_file()
    # the summary's fidelity is the report's, variant by variant
    for v in report["variants"]:
        row = [line for line in res.output.splitlines() if f"label fidelity {v['name']} " in line]
        assert len(row) == 1 and f"{v['fidelity']:.2%} (95% CI" in row[0], (v["name"], row)
    assert re.search(r"PASS: \d+ passed, 0 failed, 1 skipped \(the signature check", res.output)
    # the one-call student, beside its teacher
    assert "teacher: cflow, 8 network calls per image" in res.output
    assert "student: cflow1, 1 network call per image" in res.output
    assert (out / "student-bundle" / "model.onnx").is_file()
    assert not (out / "student-bundle" / "denoiser.onnx").exists()
    res = CliRunner().invoke(app, ["demo", "--out", str(out), "--steps", "3"])
    assert res.exit_code == 2 and "--force" in res.output
