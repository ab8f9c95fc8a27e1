"""``edgegen demo`` end to end on the tiny MNIST fixture (a few cflow steps): every stage runs,
the summary names the family, its fidelity and the guidance knob, and the one-call student
stands beside its teacher."""

from __future__ import annotations

import re
from pathlib import Path

from typer.testing import CliRunner

from edgegen.cli.app import app
from edgegen.cli.demo import DEMO_ARCH, DEMO_STEPS


def test_demo_runs_the_chain_on_cflow(idx_dir: Path, tmp_path: Path) -> None:
    assert DEMO_ARCH == "cflow" and DEMO_STEPS >= 500
    out = tmp_path / "demo"
    res = CliRunner().invoke(app, ["demo", "--out", str(out), "--steps", "3", "--samples", "40",
                                   "--sweep-samples", "40", "--distill-steps", "2",
                                   "--distill-pairs", "64",
                                   "--data-dir", str(idx_dir)], env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    assert "cflow: 3 steps" in res.output and "guidance 3 (4 steps)" in res.output
    assert re.search(r"PASS: \d+ passed, 0 failed, 1 skipped \(the signature check", res.output)
    assert (out / "bundle" / "denoiser.onnx").is_file()
    assert (out / "eval" / "sampler_sweep.png").is_file()
    # the one-call student, beside its teacher
    assert "teacher: cflow, 8 network calls per image" in res.output
    assert "student: cflow1, 1 network call per image" in res.output
    assert (out / "student-bundle" / "model.onnx").is_file()
    assert not (out / "student-bundle" / "denoiser.onnx").exists()
    res = CliRunner().invoke(app, ["demo", "--out", str(out), "--steps", "3"])
    assert res.exit_code == 2 and "--force" in res.output
