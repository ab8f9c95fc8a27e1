"""The teacher/student gate of ``edgegen eval STUDENT --teacher TEACHER``.

A student (say, a one-call distillation of an iterative teacher) is trusted when it draws the
*same* digit as its teacher for the same request, not only *a* right digit. For the same
portable latents and labels, the teacher's fp32 ``model.onnx`` and each student variant draw an
image; the student bundle's evaluator judges both and this module measures, per label and
overall:

* agreement — the share of (z, label) where the evaluator names the same digit for both images
  (Wilson 95% interval, like every share of the report); the ``--min-agreement`` gate;
* pixel distance — mean |Δ| of the uint8 pixels a user sees (as a share of full scale) and PSNR
  of the mean squared error (dB, peak 1; ∞ for identical images);
* feature distance — mean Euclidean distance between the evaluator's 128-d features of the two
  images, also divided by the mean distance between two REAL digits of that label (0: the same
  image, ~1: as different as two real digits);
* the fidelity change against the teacher, with McNemar's paired test.

Agreement means something only when one judge rules on both images, so the teacher bundle must
carry the very same evaluator file (sha256 compared; ``check_pair`` refuses otherwise), and the
two generators must share the contract: z_dim, labels and image shape. The evaluator is only a
judge here — nothing measured here trains anything.
"""

from __future__ import annotations

import hashlib
import math
from typing import Any

import numpy as np

from edgegen.core.errors import ConfigError
from edgegen.quality.flops import count_flops
from edgegen.quality.judging import Judged, share
from edgegen.quality.metrics import mcnemar
from edgegen.runtime.bundle import Bundle
from edgegen.runtime.sampler import calls_per_image


def contract(bundle: Bundle) -> dict[str, Any]:
    """What a student must share with its teacher for "the same (z, label)" to mean anything."""
    return {"z_dim": bundle.z_dim, "labels": bundle.label_names,
            "image_shape": list(bundle.image_shape)}


def pairing_problem(student: Bundle, teacher: Bundle) -> str | None:
    """Why ``student`` cannot be compared sample for sample with ``teacher`` (None: it can)."""
    s, t = contract(student), contract(teacher)
    diffs = [f"{k} {s[k]} vs the teacher's {t[k]}" for k in s if s[k] != t[k]]
    if diffs:
        return (f"{student.root} does not share the teacher's generator contract "
                f"({'; '.join(diffs)}): the same (z, label) is not the same request to both")
    se, te = evaluator_sha256(student), evaluator_sha256(teacher)
    if te is None:
        return (f"the teacher {teacher.root} has no evaluator.onnx; agreement is judged by one "
                "evaluator on both images — re-export the teacher with the student's "
                "--evaluator")
    if se != te:
        return (f"the teacher {teacher.root} carries another evaluator (sha256 {te[:12]}…) than "
                f"the student {student.root} ({str(se)[:12]}…); agreement judged by two "
                "different judges means nothing — export both with the same `--evaluator RUN`")
    return None


def check_pair(student: Bundle, teacher: Bundle) -> None:
    """``pairing_problem`` as a ConfigError (exit 2), before any work."""
    problem = pairing_problem(student, teacher)
    if problem:
        raise ConfigError(problem)


def evaluator_sha256(bundle: Bundle) -> str | None:
    """sha256 of the evaluator bytes as loaded (checked against the manifest), or None."""
    data = bundle.evaluator_bytes()
    return None if data is None else hashlib.sha256(data).hexdigest()


def generator_cost(bundle: Bundle) -> dict[str, Any]:
    """Network calls and dense MFLOP per image of the bundle's fp32 ``model.onnx`` (an iterative
    sampler's steps are unrolled in it, so its FLOPs count every call)."""
    sampler = bundle.sampler or {}
    calls = calls_per_image(int(sampler["steps"]), float(sampler["guidance"])) \
        if "steps" in sampler and "guidance" in sampler else 1
    flops = count_flops(bundle.variant_path("fp32"))
    return {"architecture": bundle.manifest["generator"].get("architecture"),
            "calls_per_image": calls, "mflop_per_image": flops.per_image / 1e6,
            "flops_not_counted": list(flops.unknown)}


def _psnr(mse: float) -> float:
    return math.inf if mse <= 0 else 10.0 * math.log10(1.0 / mse)


def _distances(student_u8: np.ndarray, teacher_u8: np.ndarray, student_feats: np.ndarray,
               teacher_feats: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per sample: mean |Δ| and mean Δ² of pixels in [0, 1], feature distance — each ``[N]``."""
    n = len(student_u8)
    diff = (student_u8.reshape(n, -1).astype(np.int16)
            - teacher_u8.reshape(n, -1).astype(np.int16)).astype(np.float32) / 255.0
    feat = np.linalg.norm(student_feats.astype(np.float64) - teacher_feats, axis=1)
    return np.abs(diff).mean(1), (diff * diff).mean(1), feat


def vs_teacher(student: Judged, student_u8: np.ndarray, teacher: Judged, teacher_u8: np.ndarray,
               labels: np.ndarray, real_scale: list[float]) -> dict[str, Any]:
    """Agreement, pixel and feature distance of one student variant to the teacher, on the same
    samples (``labels: [N]``); ``real_scale[d]``: mean feature distance of real digits ``d``."""
    if len(student.predicted) != len(teacher.predicted):
        raise ValueError("the student and the teacher must be judged on the same samples")
    agree = student.predicted == teacher.predicted
    mad, mse, feat = _distances(student_u8, teacher_u8, student.feats, teacher.feats)
    rows = []
    for d, scale in enumerate(real_scale):
        m = labels == d
        rows.append({"label": d, "agreement": share(agree[m]),
                     "mean_abs_pixel": float(mad[m].mean()) if m.any() else math.nan,
                     "psnr_db": _psnr(float(mse[m].mean())) if m.any() else math.nan,
                     "feature_distance": float(feat[m].mean()) if m.any() else math.nan,
                     "feature_ratio": float(feat[m].mean() / scale) if m.any() and scale > 0
                     else math.nan})
    m = mcnemar(teacher.correct, student.correct)
    return {"agreement": share(agree), "mean_abs_pixel": float(mad.mean()),
            "psnr_db": _psnr(float(mse.mean())), "feature_distance": float(feat.mean()),
            "feature_ratio": float(np.nanmean([r["feature_ratio"] for r in rows])),
            "delta_fidelity_pp": 100.0 * (float(student.correct.mean())
                                          - float(teacher.correct.mean())),
            "mcnemar": {"lost": m.lost, "gained": m.gained, "p_value": m.p_value,
                        "method": m.method},
            "disagreements": [int(i) for i in np.flatnonzero(~agree)[:20]],
            "per_label": rows}


def side_by_side(student_u8: np.ndarray, teacher_u8: np.ndarray, student_pred: np.ndarray,
                 teacher_pred: np.ndarray, labels: np.ndarray, n_classes: int,
                 per_label: int = 3) -> tuple[np.ndarray, list[str]]:
    """Tiles for the picture: for the first ``per_label`` samples of every label, a row of the
    teacher's images (one column per label) and under it the student's for the same (z, label),
    each captioned with what the evaluator saw ("(wrong)": not the asked label); then up to 10
    disagreements as (teacher, student) pairs."""
    idx = [np.flatnonzero(labels == d)[:per_label] for d in range(n_classes)]
    depth = min(len(i) for i in idx)
    tiles, caps = [], []
    for j in range(depth):
        cols = np.array([i[j] for i in idx])
        for who, u8, pred in (("T", teacher_u8, teacher_pred), ("S", student_u8, student_pred)):
            tiles.append(u8[cols])
            caps += [f"{who} saw {pred[c]}" + ("" if pred[c] == labels[c] else " (wrong)")
                     for c in cols]
    bad = np.flatnonzero(student_pred != teacher_pred)[:10]
    for i in bad:
        tiles.append(np.stack([teacher_u8[i], student_u8[i]]))
        caps += [f"#{i} T saw {teacher_pred[i]}", f"#{i} S saw {student_pred[i]}"]
    images = np.concatenate(tiles) if tiles else np.zeros((0, *student_u8.shape[1:]), np.uint8)
    return images, caps


__all__ = ["check_pair", "contract", "evaluator_sha256", "generator_cost", "pairing_problem",
           "side_by_side", "vs_teacher"]
