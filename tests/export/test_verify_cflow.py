"""``verify`` on a cflow bundle: the model variants as for every family, and the sampler's
per-step parity (runtime loop over each denoiser vs PyTorch's loop) and loop-vs-model.onnx."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper
from typer.testing import CliRunner

from edgegen.cli.app import app
from edgegen.export.verify import VerifyConfig, verify
from edgegen.runtime.bundle import MANIFEST, file_entry

SMALL = {"batches": (1, 16), "repeats": 2, "trajectory_samples": 20}


def test_verify_reports_per_step_parity_for_every_denoiser(tiny_cflow_bundle: Path) -> None:
    report = verify(VerifyConfig(bundle=tiny_cflow_bundle, **SMALL))
    # the 6-step model draws noise-like digits: its int8 may flip the evaluator's verdict on a
    # few of them (measured 2 of 37); every parity check passes
    assert {c.name for c in report.failures} <= {"cpu/int8/labels"}, \
        [c.message for c in report.failures]
    traj = {c.variant: c for c in report.checks if c.check == "trajectory"}
    assert set(traj) == {"denoiser-fp32", "denoiser-fp16", "denoiser-int8"}
    for c in traj.values():
        steps = c.details["per_step"]
        assert [p["step"] for p in steps] == [1, 2, 3]
        assert [p["t"] for p in steps] == [np.float32(1 / 3), np.float32(2 / 3), 1.0]
        assert c.details["non_finite_total"] == 0 and all(p["non_finite"] == 0 for p in steps)
        assert c.stats is not None and c.stats.max_abs == steps[-1]["max_abs"]
    assert traj["denoiser-fp32"].stats.max_abs < 1e-5
    assert traj["denoiser-fp16"].stats.max_abs > traj["denoiser-fp32"].stats.max_abs
    loop = [c for c in report.checks if c.check == "loop"]
    assert len(loop) == 1 and loop[0].status == "pass" and loop[0].stats.max_abs <= 1e-4
    assert {c.variant for c in report.checks if c.check == "golden"} == {"fp32", "fp16", "int8"}


def test_a_denoiser_that_overflows_fails_its_trajectory(tiny_cflow_bundle: Path,
                                                        tiny_cflow_run: Path,
                                                        tmp_path: Path) -> None:
    root = Path(shutil.copytree(tiny_cflow_bundle, tmp_path / "b"))
    manifest = json.loads((root / MANIFEST).read_text())
    manifest["provenance"]["checkpoint"]["path"] = str((tiny_cflow_run /
                                                        "checkpoint.safetensors").resolve())
    path = root / "denoiser.fp16.onnx"
    model = onnx.load(str(path))
    out = next(i for i in model.graph.initializer if i.name == "out.weight")
    huge = np.full_like(numpy_helper.to_array(out), 60000.0)  # fp16 velocity sums to inf
    out.CopyFrom(numpy_helper.from_array(huge, out.name))
    onnx.save(model, str(path))
    manifest["files"]["denoiser.fp16.onnx"] = file_entry(path)
    (root / MANIFEST).write_text(json.dumps(manifest))
    report = verify(VerifyConfig(bundle=root, precisions=("fp16",), **SMALL))
    bad = next(c for c in report.checks if c.variant == "denoiser-fp16")
    assert bad.status == "fail" and bad.details["non_finite_total"] > 0
    assert "NaN/inf" in bad.message


def test_cli_prints_the_per_step_table(tiny_cflow_bundle: Path, tmp_path: Path) -> None:
    res = CliRunner().invoke(app, ["verify", str(tiny_cflow_bundle), "--precision", "fp32",
                                   "--batch", "1,8", "--repeats", "2", "--json",
                                   str(tmp_path / "v.json")], env={"COLUMNS": "160"})
    assert res.exit_code == 0, res.output
    assert "state after each step" in res.output and "denoiser-fp32" in res.output
    saved = json.loads((tmp_path / "v.json").read_text())
    assert any(c["check"] == "trajectory" and len(c["details"]["per_step"]) == 3
               for c in saved["checks"])
