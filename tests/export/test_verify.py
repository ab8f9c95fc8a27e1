"""``verify``: real bundles, real sessions; tampered copies must fail the right check."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from edgegen.core.errors import BundleError, ConfigError, ProviderError
from edgegen.export.parity.cases import Case, predict
from edgegen.export.parity.checks import determinism_check, labels_check
from edgegen.export.parity.metrics import error_stats, psnr, run_difference
from edgegen.export.verify import VerifyConfig, verify
from edgegen.runtime.bundle import MANIFEST, load_bundle
from edgegen.runtime.providers import (
    ProviderSpec,
    available,
    make_session,
    provider_list,
    session_options,
    spec_for,
)

SMALL = {"batches": (1, 64), "repeats": 2}  # keeps the tampering tests quick


# tampering helpers (copy_bundle, rehash, perturb_model, edit_golden): fixtures in tests/conftest.py


def ckpt(tiny_run: Path) -> Path:
    return tiny_run / "checkpoint.safetensors"


# --------------------------------------------------------------------------- statistics


def test_error_stats_by_hand() -> None:
    ref = np.array([0.5, -1.0, 0.0, 0.25], np.float32)
    cand = np.array([0.5, -0.9, 0.01, 0.25], np.float32)
    # |Δ| = [0, 0.1, 0.01, 0]; bound with atol 0.05, rtol 0.1 = [0.1, 0.15, 0.05, 0.075]
    s = error_stats(cand, ref, atol=0.05, rtol=0.1)
    assert s.elements == 4 and s.out_of_tolerance == 0 and s.passed
    assert s.max_abs == pytest.approx(0.1, abs=1e-7)
    assert s.mean_abs == pytest.approx(0.11 / 4, abs=1e-7)
    assert s.median_abs == pytest.approx(0.005, abs=1e-7)
    # smallest atol with rtol 0.1: max(|Δ| - 0.1 |ref|) = max(-0.05, 0, 0.01, -0.025) = 0.01
    assert s.min_passing_atol == pytest.approx(0.01, abs=1e-7)
    # relative error leaves out the element whose reference is 0: [0, 0.1, 0]
    assert s.max_rel == pytest.approx(0.1, abs=1e-6)
    assert s.mean_rel == pytest.approx(0.1 / 3, abs=1e-6)
    # PSNR over the [-1, 1] range: mse = (0.1^2 + 0.01^2) / 4 = 0.002525
    assert s.psnr_db == pytest.approx(10 * math.log10(4 / 0.002525), abs=1e-4)
    assert s.psnr_db == pytest.approx(31.998, abs=1e-3)
    assert s.worst["index"] == [1] and s.worst["reference"] == pytest.approx(-1.0)
    # a tighter atol: element 2 (0.01 > 0.005) is out, element 1 (0.1 <= 0.005 + 0.1) is in
    assert error_stats(cand, ref, atol=0.005, rtol=0.1).out_of_tolerance == 1
    # the reported smallest atol is exactly the boundary of numpy.isclose
    assert np.all(np.isclose(cand.astype(np.float64), ref, atol=s.min_passing_atol + 1e-12,
                             rtol=0.1))
    assert not np.all(np.isclose(cand.astype(np.float64), ref,
                                 atol=s.min_passing_atol * 0.99, rtol=0.1))


def test_error_stats_edge_cases() -> None:
    a = np.linspace(-1, 1, 50, dtype=np.float32).reshape(2, 25)
    same = error_stats(a, a.copy(), atol=0.0, rtol=0.0)
    assert same.passed and same.max_abs == 0.0 and same.min_passing_atol == 0.0
    assert math.isinf(same.psnr_db) and same.cosine == pytest.approx(1.0)
    assert error_stats(-a, a, 0, 0).cosine == pytest.approx(-1.0)
    bad = a.copy()
    bad[1, 3] = np.nan
    s = error_stats(bad, a, atol=10.0, rtol=0.0)
    assert s.out_of_tolerance == 1 and math.isinf(s.min_passing_atol) and not s.passed
    assert s.worst["index"] == [1, 3]
    with pytest.raises(ValueError, match="shapes differ"):
        error_stats(a, a.reshape(5, 10), 0, 0)
    assert psnr(0.0) == math.inf and psnr(4.0) == pytest.approx(0.0)


def test_run_difference_is_bitwise() -> None:
    a = np.array([0.1, 0.2], np.float32)
    assert run_difference(a, a.copy()) == 0.0
    b = a.copy()
    b[1] = np.nextafter(b[1], np.float32(1))  # one ulp
    assert 0 < run_difference(a, b) < 1e-7
    assert run_difference(a, a[:1]) == math.inf


def test_determinism_check_reports_a_session_that_drifts() -> None:
    """A session whose outputs drift between runs must fail, with the size of the drift."""

    class Drifting:  # stands in for an ORT session with non-deterministic kernels
        calls = 0

        def run(self, names: list[str], feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
            self.calls += 1
            n = len(feeds["label"])
            return [np.full((n, 1, 28, 28), 0.5 + 1e-3 * self.calls, np.float32)]

    case = Case("pytorch@4", np.zeros((4, 100), np.float32), np.arange(4), ["7"] * 4,
                list(range(4)), None, [(0, 4)])
    first = {case.name: np.full((4, 1, 28, 28), 0.5, np.float32)}
    res = determinism_check("cpu", "fp32", Drifting(), [case], first, repeats=3)
    assert res.status == "fail" and "differ between runs" in res.message
    assert res.details["max_abs_between_runs"] == pytest.approx(2e-3, rel=1e-3)


# --------------------------------------------------------------------------- whole bundles


def test_fresh_bundle_passes_on_cpu(tiny_bundle: Path) -> None:
    report = verify(VerifyConfig(bundle=tiny_bundle))
    failed = [(c.name, c.message) for c in report.failures]
    assert report.passed, failed
    assert report.variants == ["fp32", "fp16", "int8"]
    assert report.reference["status"] == "used"
    names = {c.name for c in report.checks}
    for v in report.variants:
        for check in ("golden", "pytorch@1", "pytorch@256", "labels", "determinism",
                      "placement"):
            assert f"cpu/{v}/{check}" in names
    by = {c.name: c for c in report.checks}
    fp32 = by["cpu/fp32/pytorch@256"].stats
    assert fp32 is not None and fp32.elements == 256 * 28 * 28 and fp32.max_abs < 1e-5
    assert fp32.atol == 1e-5 and fp32.psnr_db > 100 and fp32.cosine > 0.999999
    assert by["cpu/fp32/golden"].stats.elements == 30 * 28 * 28  # 3 sets of 10
    assert by["cpu/fp16/golden"].stats.max_abs > 0  # fp16 is not fp32: really compared
    labels = by["cpu/fp32/labels"].details
    assert labels["samples"] == 30 + 1 + 256 and labels["agreement"] == 1.0
    for s in report.sessions:
        assert s["session_providers"] == ["CPUExecutionProvider"]
        assert s["node_counts"]["CPUExecutionProvider"] > 0 and s["nodes"]
    doc = json.loads(report.to_json())
    assert doc["passed"] is True and "atol + rtol" in doc["tolerance_rule"]


def test_perturbed_model_with_matching_hashes_fails(tmp_path: Path, tiny_bundle: Path,
                                                    tiny_run: Path,
                                                    copy_bundle: Callable[..., Path],
                                                    rehash: Callable[[Path, str], None],
                                                    perturb_model: Callable[..., str]) -> None:
    b = copy_bundle(tiny_bundle, tmp_path / "b", ckpt(tiny_run))
    perturb_model(b, 1.01)
    rehash(b, "model.onnx")
    load_bundle(b)  # the hashes agree: only parity can catch this
    report = verify(VerifyConfig(bundle=b, precisions=("fp32",), **SMALL))
    assert not report.passed
    failed = {c.check for c in report.failures}
    assert {"golden", "pytorch@1", "pytorch@64"} <= failed
    golden = next(c for c in report.checks if c.check == "golden")
    assert golden.stats.out_of_tolerance > 0 and golden.stats.min_passing_atol > 1e-5
    assert "out of tolerance" in golden.message and "seed" in golden.message


def test_edited_golden(tmp_path: Path, tiny_bundle: Path, tiny_run: Path,
                       copy_bundle: Callable[..., Path],
                       rehash: Callable[[Path, str], None],
                       edit_golden: Callable[..., str]) -> None:
    b = copy_bundle(tiny_bundle, tmp_path / "b", ckpt(tiny_run))
    rel = edit_golden(b, set_index=1)
    with pytest.raises(BundleError, match="test_data_set_1/output_0.pb"):
        verify(VerifyConfig(bundle=b, **SMALL))
    rehash(b, rel)
    report = verify(VerifyConfig(bundle=b, precisions=("fp32",), **SMALL))
    assert [c.name for c in report.failures] == ["cpu/fp32/golden"]  # PyTorch still agrees
    golden = report.failures[0]
    assert golden.stats.out_of_tolerance == 1
    assert golden.stats.max_abs == pytest.approx(0.01, abs=1e-4)
    per_set = golden.details["max_abs_per_part"]
    assert int(np.argmax(per_set)) == 1  # the edited set is the one that is off
    assert golden.stats.worst["index"][0] == 10 + 3  # set 1, sample 3


def test_missing_or_replaced_checkpoint_is_skipped_not_failed(tmp_path: Path,
                                                              tiny_bundle: Path,
                                                              copy_bundle: Callable[..., Path]
        ) -> None:
    b = copy_bundle(tiny_bundle, tmp_path / "b", tmp_path / "gone" / "checkpoint.safetensors")
    report = verify(VerifyConfig(bundle=b, precisions=("fp32",), **SMALL))
    assert report.passed and report.reference["status"] == "skipped"
    skipped = [c.check for c in report.checks if c.status == "skip"]
    assert skipped == ["signature", "pytorch@1", "pytorch@64"]  # signature: unsigned (issue 15)
    assert any("is not at" in n for n in report.notes)
    labels = next(c for c in report.checks if c.check == "labels")
    assert labels.details["samples"] == 30  # the goldens still anchor task-level parity


def test_checkpoint_changed_since_export_is_skipped(tmp_path: Path, tiny_bundle: Path,
                                                    tiny_run: Path,
                                                    copy_bundle: Callable[..., Path]) -> None:
    b = copy_bundle(tiny_bundle, tmp_path / "b", ckpt(tiny_run))
    manifest = json.loads((b / MANIFEST).read_text())
    manifest["provenance"]["checkpoint"]["sha256"] = "0" * 64
    (b / MANIFEST).write_text(json.dumps(manifest))
    report = verify(VerifyConfig(bundle=b, precisions=("fp32",), **SMALL))
    assert report.reference["status"] == "skipped"
    assert "retrained or replaced" in report.reference["reason"]


def test_labels_check_lists_flipped_samples(tiny_bundle: Path, real_digits) -> None:
    """Each image replaced by another digit's image: the evaluator must notice and say which."""
    digits, labels = real_digits  # uint8 [1000, 28, 28], 100 per label in order
    pick = np.arange(10) * 100  # one real image of each digit 0..9
    images = (digits[pick].astype(np.float32) / 127.5 - 1.0)[:, None]  # [10, 1, 28, 28]
    case = Case("golden", np.zeros((10, 100), np.float32), labels[pick], ["1234"] * 10,
                list(range(10)), images, [(0, 10)])
    ev = make_session(tiny_bundle / "evaluator.onnx")
    ref = predict(ev, images)
    shifted = np.roll(images, 1, axis=0)  # sample i now shows digit i - 1
    expect_flips = int(np.sum(predict(ev, shifted) != ref))
    assert expect_flips >= 5  # a trained evaluator tells most digits apart
    res = labels_check("cpu", "fp32", "fp32", VerifyConfig(), [case], {"golden": shifted},
                       ev, {"golden": ref})
    assert res.status == "fail" and res.details["disagreements_total"] == expect_flips
    assert res.details["agreement"] == pytest.approx(1 - expect_flips / 10)
    d = res.details["disagreements"][0]
    assert set(d) == {"source", "seed", "sample", "label", "reference_pred", "candidate_pred"}
    assert d["seed"] == "1234" and d["reference_pred"] != d["candidate_pred"]
    assert d["label"] == d["sample"]  # sample i asked for digit i
    lenient = VerifyConfig(min_agreement={"fp32": 0.0})
    assert labels_check("cpu", "fp32", "fp32", lenient, [case], {"golden": shifted}, ev,
                        {"golden": ref}).status == "pass"


# --------------------------------------------------------------------------- providers, options


def test_unavailable_provider_is_refused_naming_what_is_there(tiny_bundle: Path) -> None:
    if "CUDAExecutionProvider" in available():
        pytest.skip("this machine has the CUDA provider")
    with pytest.raises(ProviderError, match="available: .*CPUExecutionProvider") as exc:
        verify(VerifyConfig(bundle=tiny_bundle, providers=("cpu", "cuda")))
    assert "'cuda'" in str(exc.value) and "silently" in str(exc.value)


def test_tensorrt_options_follow_the_variant(tiny_bundle: Path) -> None:
    """fp16 kernels for the fp16 variant, int8 for the QDQ one, caches where asked, a profile
    covering every batch, TF32 off and CUDA registered after TensorRT."""
    cache = tiny_bundle / "trt_cache"
    spec = spec_for("tensorrt", "fp16", batch_range=(1, 256, 256), trt_cache_dir=cache)
    assert spec.trt_fp16 and not spec.use_tf32
    assert spec.trt_cache_dir == cache and spec.trt_batch_range == (1, 256, 256)
    assert not spec.trt_int8 and spec_for("tensorrt", "int8").trt_int8
    assert not spec_for("tensorrt", "fp32").trt_fp16
    cuda = spec_for("cuda", "fp32", trt_cache_dir=cache)
    assert cuda == ProviderSpec("cuda", use_tf32=False, trt_batch_range=cuda.trt_batch_range)
    assert cuda.trt_cache_dir is None  # caches are TensorRT's
    det = spec_for("tensorrt", "fp32", deterministic=True)
    assert det.deterministic and session_options(det).use_deterministic_compute
    det_cuda = provider_list(det, str(tiny_bundle / "model.onnx"))[1]
    assert det_cuda[1]["cudnn_conv_algo_search"] == "DEFAULT"
    no_cache = ProviderSpec("tensorrt", trt_fp16=True, trt_batch_range=(1, 256, 256))
    providers = provider_list(no_cache, str(tiny_bundle / "model.onnx"))  # a CPU probe only
    assert [p[0] if isinstance(p, tuple) else p for p in providers] == [
        "TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    trt, cuda_opts = providers[0][1], providers[1][1]
    assert trt["trt_profile_min_shapes"] == "z:1x100,label:1"
    assert trt["trt_profile_max_shapes"] == "z:256x100,label:256"
    assert trt["trt_fp16_enable"] == "1" and cuda_opts["use_tf32"] == "0"
    # TensorRT builds fp16 from the fp32 graph; other pairs use the variant's own file
    bundle = load_bundle(tiny_bundle)
    assert bundle.model_path("fp16", "tensorrt").name == "model.onnx"
    assert bundle.model_path("fp16", "cpu").name == "model.fp16.onnx"


@pytest.mark.parametrize("kw,match", [
    ({"repeats": 1}, "at least 2"),
    ({"batches": (1, 0)}, "positive batch"),
    ({"atol": -1.0}, "--atol must be"),
    ({"providers": ("gpu",)}, "unknown provider 'gpu'"),
    ({"precisions": ("bf16",)}, "unknown precision 'bf16'"),
])
def test_bad_options(tiny_bundle: Path, kw: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        verify(VerifyConfig(bundle=tiny_bundle, **kw))


def test_override_tolerance_applies_to_every_variant(tiny_bundle: Path) -> None:
    report = verify(VerifyConfig(bundle=tiny_bundle, precisions=("fp16",), atol=1e-9,
                                 rtol=0.0, **SMALL))
    golden = next(c for c in report.checks if c.check == "golden")
    assert golden.status == "fail" and golden.stats.atol == 1e-9
    assert report.tolerances == {"cpu/fp16": {"atol": 1e-9, "rtol": 0.0}}
