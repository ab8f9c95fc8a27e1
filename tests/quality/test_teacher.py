"""``evaluate(EvalConfig(teacher=...))``: a student judged against its teacher on the same
(z, label) — the identical bundle, another generator of the same contract, and the pairs that
must be refused (another evaluator file, another contract)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edgegen.core.errors import ConfigError
from edgegen.quality.evaluate import EvalConfig, evaluate
from edgegen.quality.flops import count_flops
from edgegen.runtime.bundle import load_bundle
from edgegen.runtime.latent import latent
from edgegen.runtime.postprocess import to_pixels
from edgegen.runtime.providers import make_session
from edgegen.runtime.sessions import run_evaluator, run_generator
from tests.conftest import rebundle

FAST = dict(samples=200, truncation=(), guard=False, torch=False, precisions=("fp32",))


def test_a_student_that_is_its_teacher_agrees_everywhere(tiny_bundle: Path, idx_dir: Path,
                                                         tmp_path: Path) -> None:
    out = tmp_path / "r"
    r = evaluate(EvalConfig(bundle=tiny_bundle, teacher=tiny_bundle, min_agreement=1.0,
                            data_dir=idx_dir, out=out, seed=11, **FAST))
    t = r.variant("fp32").vs_teacher
    assert t["agreement"]["value"] == 1.0 and t["agreement"]["samples"] == 200
    assert t["mean_abs_pixel"] == 0.0 and t["psnr_db"] == float("inf")
    assert t["feature_distance"] == 0.0 and t["delta_fidelity_pp"] == 0.0
    assert t["mcnemar"]["p_value"] == 1.0 and t["disagreements"] == []
    assert all(p["agreement"]["value"] == 1.0 for p in t["per_label"])
    assert r.passed and r.gates["min_agreement"] == 1.0
    assert r.teacher["fidelity"] == pytest.approx(r.variant("fp32").fidelity)
    assert r.teacher["cost"] == r.teacher["student_cost"]
    md = (out / "report.md").read_text()
    assert "## Against the teacher" in md and "∞ (identical)" in md
    assert (out / "teacher_vs_fp32.png").stat().st_size > 1000
    js = json.loads((out / "report.json").read_text())
    assert js["variants"][0]["vs_teacher"]["psnr_db"] == "inf"


def test_another_generator_agrees_less_and_the_gate_fails(tiny_bundle: Path,
                                                          student_bundle: Path, idx_dir: Path,
                                                          tmp_path: Path) -> None:
    r = evaluate(EvalConfig(bundle=student_bundle, teacher=tiny_bundle, min_agreement=0.99,
                            data_dir=idx_dir, out=tmp_path / "r", seed=11, **FAST))
    t = r.variant("fp32").vs_teacher
    # recomputed from the two bundles' files alone: the same latents, the student's evaluator
    s_b, t_b = load_bundle(student_bundle), load_bundle(tiny_bundle)
    z, labels = latent(11, 200, s_b.z_dim), np.arange(200) % 10
    judge = make_session(s_b.evaluator_path)
    s_img = run_generator(make_session(s_b.variant_path("fp32")), z, labels)
    t_img = run_generator(make_session(t_b.variant_path("fp32")), z, labels)
    (s_logits, s_feat), (t_logits, t_feat) = run_evaluator(judge, s_img), run_evaluator(judge,
                                                                                         t_img)
    agree = s_logits.argmax(1) == t_logits.argmax(1)
    assert t["agreement"]["value"] == pytest.approx(agree.mean()) and t["agreement"]["value"] < 1
    diff = np.abs(to_pixels(s_img).astype(float) - to_pixels(t_img)) / 255
    assert t["mean_abs_pixel"] == pytest.approx(diff.mean(), rel=1e-5)
    assert t["mean_abs_pixel"] > 0 and np.isfinite(t["psnr_db"])
    assert t["feature_distance"] == pytest.approx(
        np.linalg.norm(s_feat - t_feat, axis=1).mean(), rel=1e-4)
    assert t["feature_ratio"] > 0.05  # not the same image: a real fraction of digit-to-digit
    assert t["per_label"][3]["agreement"]["value"] == pytest.approx(agree[labels == 3].mean())
    assert t["disagreements"] == list(np.flatnonzero(~agree)[:20])
    assert not r.passed
    assert r.failures == [f"fp32: agreement with the teacher {t['agreement']['value']:.2%} < "
                          "--min-agreement 99.00%"]
    # the costs: one network call each, MFLOP of each model.onnx
    assert r.teacher["cost"]["calls_per_image"] == 1
    assert r.teacher["student_cost"]["mflop_per_image"] == pytest.approx(
        count_flops(s_b.variant_path("fp32")).per_image / 1e6)


def test_a_teacher_with_another_evaluator_is_refused(tiny_bundle: Path, student_bundle: Path,
                                                     other_judge_bundle: Path, idx_dir: Path,
                                                     tmp_path: Path) -> None:
    out = tmp_path / "r"
    with pytest.raises(ConfigError, match="another evaluator .* two different judges"):
        evaluate(EvalConfig(bundle=student_bundle, teacher=other_judge_bundle,
                            data_dir=idx_dir, out=out, **FAST))
    assert not out.exists()  # refused before any work


def test_a_teacher_with_another_contract_is_refused(tiny_bundle: Path, tmp_path: Path,
                                                    idx_dir: Path) -> None:
    letters = rebundle(tiny_bundle, tmp_path / "letters",
                       generator={"labels": [chr(ord("a") + k) for k in range(10)]})
    with pytest.raises(ConfigError, match=r"generator contract \(labels"):
        evaluate(EvalConfig(bundle=tiny_bundle, teacher=letters, data_dir=idx_dir, out=None,
                            **FAST))


def test_min_agreement_needs_a_teacher_and_a_share(tiny_bundle: Path, idx_dir: Path) -> None:
    with pytest.raises(ConfigError, match="pass --teacher"):
        evaluate(EvalConfig(bundle=tiny_bundle, min_agreement=0.9, data_dir=idx_dir, out=None,
                            **FAST))
    with pytest.raises(ConfigError, match="--min-agreement is a share"):
        evaluate(EvalConfig(bundle=tiny_bundle, teacher=tiny_bundle, min_agreement=99.0,
                            data_dir=idx_dir, out=None, **FAST))
