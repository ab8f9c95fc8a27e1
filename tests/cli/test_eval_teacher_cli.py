"""``edgegen eval STUDENT --teacher TEACHER`` and the CI-sized sample count through Typer's
CliRunner: exit 0 when the gate holds, 1 below it, 2 for a pair that cannot be judged."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from edgegen.cli.app import app

runner = CliRunner()
FAST = ["--samples", "100", "--truncation", "", "--no-guard", "--no-torch", "--precision", "fp32"]


def _eval(*args: str) -> tuple[int, str]:
    res = runner.invoke(app, ["eval", *args], env={"COLUMNS": "200"})
    return res.exit_code, " ".join(res.output.split())


def test_the_teacher_gate_passes_its_own_teacher_and_fails_another_generator(
        tiny_bundle: Path, student_bundle: Path, idx_dir: Path, tmp_path: Path) -> None:
    common = [*FAST, "--data-dir", str(idx_dir), "--teacher", str(tiny_bundle),
              "--min-agreement", "0.99"]
    code, out = _eval(str(tiny_bundle), *common, "--out", str(tmp_path / "same"))
    assert code == 0, out
    assert "against the teacher" in out and "100.00% (96.3–100.0%)" in out
    assert "∞ (identical)" in out and "cost per image" in out and "gates passed" in out

    code, out = _eval(str(student_bundle), *common, "--out", str(tmp_path / "other"))
    assert code == 1, out
    report = json.loads((tmp_path / "other" / "report.json").read_text())
    agreement = report["variants"][0]["vs_teacher"]["agreement"]["value"]
    assert agreement < 0.99 and report["passed"] is False
    assert f"error: fp32: agreement with the teacher {agreement:.2%} < --min-agreement 99.00%" \
        in out
    assert (tmp_path / "other" / "teacher_vs_fp32.png").is_file() and "Traceback" not in out


def test_a_pair_that_cannot_be_judged_exits_2(student_bundle: Path, other_judge_bundle: Path,
                                              idx_dir: Path, tmp_path: Path) -> None:
    code, out = _eval(str(student_bundle), *FAST, "--data-dir", str(idx_dir), "--teacher",
                      str(other_judge_bundle), "--out", str(tmp_path / "r"))
    assert code == 2, out
    assert "carries another evaluator" in out and "export both with the same" in out
    assert not (tmp_path / "r").exists() and "Traceback" not in out
    code, out = _eval(str(student_bundle), *FAST, "--data-dir", str(idx_dir),
                      "--min-agreement", "0.9", "--out", str(tmp_path / "r"))
    assert code == 2 and "pass --teacher BUNDLE too" in out


def test_the_sample_count_is_sized_by_the_interval(tiny_bundle: Path, idx_dir: Path,
                                                   tmp_path: Path) -> None:
    code, out = _eval(str(tiny_bundle), "--truncation", "", "--no-guard", "--no-torch",
                      "--precision", "fp32", "--ci-half-width", "0.04", "--min-samples", "100",
                      "--max-samples", "2000", "--data-dir", str(idx_dir), "--out",
                      str(tmp_path / "r"))
    assert code == 0, out
    assert "first round: 100 samples per variant (fp32" in out and "estimated" in out
    report = json.loads((tmp_path / "r" / "report.json").read_text())
    s = report["sizing"]
    assert s["rule"] == "ci" and s["reached"] and 100 <= report["samples"] <= 2000
    assert s["widest_half_width"] <= 0.04 and s["target_half_width"] == 0.04
    lo, hi = report["variants"][0]["ci95"]
    assert (hi - lo) / 2 <= 0.04
    assert "sized by the confidence interval" in (tmp_path / "r" / "report.md").read_text()
    code, out = _eval(str(tiny_bundle), "--ci-half-width", "0", "--data-dir", str(idx_dir),
                      "--out", str(tmp_path / "x"))
    assert code == 2 and "--ci-half-width is a share" in out
