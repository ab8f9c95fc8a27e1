"""The judges of ``edgegen eval`` and what they measure on one set of generated images.

``Judge`` is the bundle's evaluator on CPU (probabilities and 128-d features); ``RealSet`` the
held-out real digits as it sees them (FID references, the real-vs-real floor); ``Judged`` the
per-sample verdicts on generated images (evaluator and referee), which the stage accumulates
round by round (``Judged.concat``). The blocks turn verdicts into the report's numbers:
fidelity with its Wilson interval, count-matched FID, diversity against the real digits.
Nothing here is trained or tuned on generated images: the judges only judge.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgegen.core.errors import ConfigError
from edgegen.quality.metrics import (
    FrechetReference,
    KnnReferee,
    mean_pairwise_distance,
    pixels,
    wilson,
)
from edgegen.runtime.guard import softmax
from edgegen.runtime.postprocess import to_pixels
from edgegen.runtime.sessions import run_evaluator
from edgegen.training.data import MnistSplits, to_tensor_range

DIVERSITY_CAP = 500  # samples per label for pairwise distances (an unbiased mean: no count bias)


# --------------------------------------------------------------------------- the judges

class Judge:
    """The bundle's evaluator on CPU: probabilities and 128-d features of images."""

    def __init__(self, session: Any, batch: int) -> None:
        self.session, self.batch = session, batch

    def __call__(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """float32 ``[N, C, H, W]`` in [-1, 1] -> (probs ``[N, K]``, features ``[N, F]``)."""
        logits, feats = run_evaluator(self.session, np.ascontiguousarray(images, np.float32),
                                      self.batch)
        return softmax(logits.astype(np.float64)), feats

    def probs(self, images: np.ndarray) -> np.ndarray:
        """The guard's ``classify``: probabilities only."""
        return self(images)[0]


@dataclass
class RealSet:
    """The held-out real digits as the evaluator sees them, split into two halves A / B
    (alternating within each label) for the real-vs-real FID floor."""

    labels: np.ndarray  # int64 [M]
    feats: np.ndarray  # float32 [M, F]
    pix: np.ndarray  # float32 [M, C*H*W] in [0, 1]
    half_a: np.ndarray  # indices into the above
    half_b: np.ndarray
    evaluator_accuracy: float
    n_classes: int
    # FID references (half B overall, half B per label, every held-out digit) and the floors
    # already measured, keyed by the per-label counts of the generated side
    ref_b: FrechetReference | None = None
    ref_b_label: list[FrechetReference] = field(default_factory=list)
    ref_all: FrechetReference | None = None
    floors: dict[tuple[int, ...], tuple[float, list[float]]] = field(default_factory=dict)

    @classmethod
    def build(cls, data: MnistSplits, judge: Judge, n_classes: int) -> RealSet:
        images = data.heldout_images  # uint8 [M, H, W] or [M, H, W, C]
        probs, feats = judge(to_tensor_range(images))  # float32 [M, C, H, W] in [-1, 1]
        labels = data.heldout_labels
        a, b = [], []
        for d in range(n_classes):
            idx = np.flatnonzero(labels == d)
            if len(idx) < 4:
                raise ConfigError(f"the held-out split has {len(idx)} real images of label {d}; "
                                  "FID and diversity need at least 4 per label — pass a "
                                  "--data-dir with more images of that class (at least 20)")
            a.append(idx[0::2])
            b.append(idx[1::2])
        half_b = np.concatenate(b)
        return cls(labels=labels, feats=feats, pix=pixels(images), half_a=np.concatenate(a),
                   half_b=half_b, evaluator_accuracy=float(np.mean(probs.argmax(1) == labels)),
                   n_classes=n_classes, ref_b=FrechetReference.of(feats[half_b]),
                   ref_b_label=[FrechetReference.of(feats[bd]) for bd in b],
                   ref_all=FrechetReference.of(feats))

    def floor(self, counts: tuple[int, ...]) -> tuple[float, list[float]]:
        """Real-vs-real FID (overall, per label) with the first ``counts[d]`` digits of half A
        of each label against half B: the same counts as the generated side."""
        if counts not in self.floors:
            a = [self.of(self.half_a, d)[:n] for d, n in enumerate(counts)]
            per_label = [self.ref_b_label[d].fid(self.feats[ad]) if len(ad) >= 2
                         else float("nan") for d, ad in enumerate(a)]
            self.floors[counts] = (self.ref_b.fid(self.feats[np.concatenate(a)]), per_label)
        return self.floors[counts]

    def of(self, idx: np.ndarray, d: int) -> np.ndarray:
        """The indices in ``idx`` whose label is ``d``."""
        return idx[self.labels[idx] == d]


@dataclass
class Judged:
    """Per-sample verdicts on one set of generated images (kept out of the JSON)."""

    correct: np.ndarray  # bool [N]
    predicted: np.ndarray  # int64 [N]
    p_asked: np.ndarray  # float [N]
    feats: np.ndarray  # float32 [N, F]
    referee: np.ndarray  # int64 [N]

    @classmethod
    def concat(cls, parts: list[Judged]) -> Judged:
        """The verdicts of consecutive rounds as one set (sample order kept)."""
        return cls(**{f: np.concatenate([getattr(p, f) for p in parts])
                      for f in ("correct", "predicted", "p_asked", "feats", "referee")})


# --------------------------------------------------------------------------- measurements

def share(hits: np.ndarray) -> dict[str, Any]:
    """Fidelity-style share with its Wilson interval."""
    k, n = int(np.count_nonzero(hits)), int(hits.size)
    return {"value": k / n if n else float("nan"), "ci95": list(wilson(k, n)), "samples": n}


def fid_block(feats: np.ndarray, labels: np.ndarray, real: RealSet) -> dict[str, Any]:
    """FID against held-out half B, beside the floor (half A against B) at the same counts.

    For every label ``d`` the generated side takes ``n_d = min(|A_d|, generated_d)`` samples and
    the floor takes the first ``n_d`` of ``A_d``: both comparisons are ``n`` vs ``|B|`` digits
    with the same label mix, so the gap to the floor is the model's, not the sample count's.
    """
    gen_idx = [np.flatnonzero(labels == d)[:len(real.of(real.half_a, d))]
               for d in range(real.n_classes)]
    counts = tuple(len(g) for g in gen_idx)
    floor, floor_label = real.floor(counts)
    per_label = [{"label": d, "value": real.ref_b_label[d].fid(feats[g]), "floor": floor_label[d],
                  "n_generated": len(g), "n_real": real.ref_b_label[d].n}
                 for d, g in enumerate(gen_idx) if len(g) >= 2]
    gi = np.concatenate(gen_idx)
    return {"value": real.ref_b.fid(feats[gi]), "floor": floor, "n_generated": int(len(gi)),
            "n_real": real.ref_b.n,
            "all": {"value": real.ref_all.fid(feats), "n_generated": int(len(feats)),
                    "n_real": real.ref_all.n,
                    "note": "every sample vs every held-out digit; not comparable to the floor"},
            "per_label": per_label}


def diversity_block(feats: np.ndarray, pix: np.ndarray, labels: np.ndarray, real: RealSet,
                    collapse_ratio: float) -> dict[str, Any]:
    """Mean pairwise distance within each label, generated vs real, in features and pixels."""
    rows = []
    for d in range(real.n_classes):
        g = np.flatnonzero(labels == d)[:DIVERSITY_CAP]
        r = np.flatnonzero(real.labels == d)[:DIVERSITY_CAP]
        row: dict[str, Any] = {"label": d, "n_generated": int(len(g)), "n_real": int(len(r))}
        for space, gen_x, real_x in (("feature", feats, real.feats), ("pixel", pix, real.pix)):
            mg, mr = mean_pairwise_distance(gen_x[g]), mean_pairwise_distance(real_x[r])
            row[space] = {"generated": mg, "real": mr, "ratio": mg / mr if mr > 0 else 0.0}
        rows.append(row)
    out: dict[str, Any] = {"per_label": rows}
    for space in ("feature", "pixel"):
        mg = float(np.nanmean([r[space]["generated"] for r in rows]))
        mr = float(np.nanmean([r[space]["real"] for r in rows]))
        out[space] = {"generated": mg, "real": mr, "ratio": mg / mr if mr > 0 else 0.0}
    for r in rows:  # the more pessimistic space decides: a collapse shows in either
        r["ratio"] = min(r["feature"]["ratio"], r["pixel"]["ratio"])
    worst = int(np.nanargmin([r["ratio"] for r in rows]))
    out.update({"worst_label": rows[worst]["label"], "worst_ratio": float(rows[worst]["ratio"]),
                "collapsed": [r["label"] for r in rows if r["ratio"] < collapse_ratio],
                "collapse_ratio": collapse_ratio})
    return out


def judge_images(images: np.ndarray, labels: np.ndarray, judge: Judge,
                 referee: KnnReferee) -> tuple[Judged, np.ndarray]:
    """Evaluator and referee verdicts on float32 ``[N, C, H, W]``; also the uint8 pixels."""
    probs, feats = judge(images)
    u8 = to_pixels(images)  # [N, H, W] (RGB: [N, H, W, 3]): what a user sees and the referee reads
    predicted = probs.argmax(1)
    return Judged(correct=predicted == labels, predicted=predicted,
                  p_asked=probs[np.arange(len(labels)), labels], feats=feats,
                  referee=referee.predict(u8)), u8


def fidelity_fields(j: Judged, labels: np.ndarray, n_classes: int) -> dict[str, Any]:
    """Fidelity, its interval, hallucination, low-confidence share and the per-label table."""
    overall = share(j.correct)
    per_label = [{"label": d, **share(j.correct[labels == d])} for d in range(n_classes)]
    return {"fidelity": overall["value"], "ci95": tuple(overall["ci95"]),
            "hallucination": 1.0 - overall["value"],
            "low_confidence": float(np.mean(j.p_asked < 0.5)), "per_label": per_label}


def referee_fields(j: Judged, labels: np.ndarray) -> dict[str, Any]:
    s = share(j.referee == labels)
    return {"fidelity": s["value"], "ci95": s["ci95"],
            "agreement_with_evaluator": float(np.mean(j.referee == j.predicted))}


