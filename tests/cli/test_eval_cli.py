"""``edgegen eval`` through Typer's CliRunner: tables, report files, exit codes 0 / 1 / 2."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from edgegen.cli.app import app

runner = CliRunner()
SMALL = ["--samples", "200", "--sweep-samples", "100", "--truncation", "0.7,1.0"]


def test_eval_writes_the_report_and_exits_0(tiny_bundle: Path, idx_dir: Path,
                                            tmp_path: Path) -> None:
    out, js = tmp_path / "eval", tmp_path / "eval.json"
    res = runner.invoke(app, ["eval", str(tiny_bundle), *SMALL, "--data-dir", str(idx_dir),
                              "--out", str(out), "--json", str(js)])
    assert res.exit_code == 0, res.output
    for variant in ("torch", "fp32", "fp16", "int8"):
        assert f"│ {variant}" in res.output
    assert "referee" in res.output and "truncation sweep on fp32" in res.output
    assert "guard" in res.output and "Traceback" not in res.output
    report = json.loads(js.read_text())
    assert report == json.loads((out / "report.json").read_text())
    assert report["passed"] is True and report["samples"] == 200
    assert [v["name"] for v in report["variants"]] == ["torch", "fp32", "fp16", "int8"]
    fp32 = report["variants"][1]
    assert 0.0 <= fp32["fidelity"] <= 1.0 and fp32["vs_reference"]["reference"] == "torch"
    assert fp32["fid"]["value"] > fp32["fid"]["floor"] > 0  # a tiny GAN is far from real digits
    guard = fp32["guard"]
    assert 0 < guard["fired"] <= 200 and guard["fired_rate"] == pytest.approx(guard["fired"] / 200)
    assert [r["psi"] for r in report["truncation"]] == [0.7, 1.0]
    assert {p.name for p in out.glob("*.png")} >= {"samples_int8.png", "hallucinated_fp16.png",
                                                   "truncation.png"}
    assert f"{fp32['fidelity']:.2%}" in (out / "report.md").read_text()


def test_an_impossible_gate_exits_1(tiny_bundle: Path, idx_dir: Path, tmp_path: Path) -> None:
    res = runner.invoke(app, ["eval", str(tiny_bundle), *SMALL, "--data-dir", str(idx_dir),
                              "--precision", "int8", "--no-guard", "--truncation", "",
                              "--out", str(tmp_path / "r"), "--min-fidelity", "0.999"])
    assert res.exit_code == 1, res.output
    assert "int8: fidelity" in res.output and "< --min-fidelity 99.90%" in res.output
    assert "Traceback" not in res.output
    assert json.loads((tmp_path / "r" / "report.json").read_text())["passed"] is False


def test_the_gate_fails_a_weakened_model_and_passes_the_faithful_one(
        tiny_bundle: Path, idx_dir: Path, tmp_path: Path, lookup_bundle: Callable[..., Path]
        ) -> None:
    args = [*SMALL, "--data-dir", str(idx_dir), "--precision", "fp32", "--no-torch",
            "--min-fidelity", "0.5", "--max-fid", "1000"]
    good = lookup_bundle(tiny_bundle, tmp_path / "good", idx_dir, per_label=60)
    res = runner.invoke(app, ["eval", str(good), *args, "--out", str(tmp_path / "g")])
    assert res.exit_code == 0, res.output
    assert "gates passed" in res.output
    bad = lookup_bundle(tiny_bundle, tmp_path / "bad", idx_dir, per_label=60, shift=1)
    res = runner.invoke(app, ["eval", str(bad), *args, "--out", str(tmp_path / "b")])
    assert res.exit_code == 1, res.output
    assert "fp32: fidelity" in res.output and "--min-fidelity 50.00%" in res.output


def _fails(args: list[str], match: str) -> None:
    res = runner.invoke(app, ["eval", *args])
    assert res.exit_code == 2, res.output
    assert match in " ".join(res.output.split()), res.output
    assert "Traceback" not in res.output


def test_bad_inputs_exit_2(tiny_bundle: Path, idx_dir: Path, tmp_path: Path) -> None:
    d = ["--data-dir", str(idx_dir), "--out", str(tmp_path / "r")]
    _fails([str(tmp_path / "nowhere"), *d], "does not exist")
    _fails([str(tiny_bundle), "--truncation", "0.5,abc", *d], "--truncation takes")
    _fails([str(tiny_bundle), "--samples", "3", *d], "--samples must be at least 20")
    _fails([str(tiny_bundle), "--precision", "bf16", *d], "has no 'bf16' variant")
    _fails([str(tiny_bundle), "--provider", "tpu", *d], "unknown provider 'tpu'")


def test_a_missing_gpu_provider_is_an_error_not_a_cpu_run(tiny_bundle: Path, idx_dir: Path,
                                                         tmp_path: Path) -> None:
    ort = pytest.importorskip("onnxruntime")
    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("CUDA is available here: nothing to refuse")
    _fails([str(tiny_bundle), "--provider", "cuda", "--data-dir", str(idx_dir), "--out",
            str(tmp_path / "r")], "is not available")


def test_eval_imports_neither_torch_nor_onnxruntime_up_front() -> None:
    """``edgegen eval --help`` stays fast: heavy imports happen inside the stage."""
    import subprocess
    import sys

    code = ("import sys, edgegen.cli.eval, edgegen.quality.evaluate, edgegen.quality.eval_report; "
            "print(sorted(m for m in ('torch', 'onnxruntime', 'matplotlib') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_min_diversity_fails_a_collapsed_generator_and_passes_a_diverse_one(
        tiny_bundle: Path, idx_dir: Path, tmp_path: Path, lookup_bundle: Callable[..., Path]
        ) -> None:
    """Both draw real digits of the asked label (fidelity passes); one draws a single digit per
    label for every seed (mode collapse), the other 60 different ones."""
    args = [*SMALL, "--data-dir", str(idx_dir), "--precision", "fp32", "--no-torch",
            "--no-guard", "--truncation", "", "--min-fidelity", "0.5", "--min-diversity", "0.5"]
    collapsed = lookup_bundle(tiny_bundle, tmp_path / "collapsed", idx_dir, per_label=1)
    res = runner.invoke(app, ["eval", str(collapsed), *args, "--out", str(tmp_path / "c")])
    assert res.exit_code == 1, res.output
    flat = " ".join(res.output.split())
    assert "COLLAPSED" in flat  # in the terminal table (which folds the cell)...
    assert "COLLAPSED 0,1,2,3,4,5,6,7,8,9" in (tmp_path / "c" / "report.md").read_text()
    assert "diversity ratio 0.00 < --min-diversity 0.5" in flat and "Traceback" not in flat
    assert "fidelity" not in flat.split("error:")[1]  # the fidelity gate passed
    report = json.loads((tmp_path / "c" / "report.json").read_text())
    assert report["gates"]["min_diversity"] == 0.5 and report["passed"] is False
    diverse = lookup_bundle(tiny_bundle, tmp_path / "diverse", idx_dir, per_label=60)
    res = runner.invoke(app, ["eval", str(diverse), *args, "--out", str(tmp_path / "d")])
    assert res.exit_code == 0, res.output
    assert "gates passed" in res.output and "COLLAPSED" not in res.output


def test_min_diversity_must_be_a_ratio(tiny_bundle: Path, idx_dir: Path, tmp_path: Path) -> None:
    _fails([str(tiny_bundle), "--min-diversity", "-0.1", "--data-dir", str(idx_dir), "--out",
            str(tmp_path / "r")], "--min-diversity is a ratio")
