"""``edgegen eval``: does every deployed variant still draw the digit it is asked for, as well and
as varied as the trained model — and what does the guard buy?

``evaluate(EvalConfig) -> QualityReport``. Every variant (PyTorch from the checkpoint, ONNX fp32,
fp16, int8 on the chosen provider) draws the SAME portable latents with balanced labels, and is
judged by the bundle's evaluator (``evaluator.onnx`` on CPU, trained on real digits only):

* label fidelity (Wilson 95% CI), hallucination = 1 - fidelity, share with p(asked) < 0.5;
* MNIST-FID in the evaluator's 128-d feature space against held-out REAL digits, beside the
  real-vs-real floor measured with exactly the same sample counts (FID is biased by them);
* diversity: mean pairwise distance within a label against the real digits' own (collapse -> 0);
* the change against PyTorch with McNemar's paired test on per-sample correctness;
* a referee — k-NN on PCA of real training pixels — that shares nothing with the evaluator;
* the truncation sweep (the control knob), and the guard's fidelity, firing rate and latency;
* for an iterative family (cflow), ``--sweep steps=... --sweep guidance=...``: every setting of
  the sampler (run by ``edgegen.runtime.sampler`` over ``denoiser.onnx``) with its fidelity, FID,
  diversity and MFLOP per image — guidance is that family's control knob, as truncation is the
  GAN's.

Neither the evaluator nor the referee ever sees a generated image during training: they judge,
they are not tuned. ``cfg.out`` receives ``report.md``, ``report.json`` and the pictures.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgegen.core.errors import BundleError, ConfigError, OutputError, require_positive
from edgegen.core.fileio import check_output_dir
from edgegen.core.progress import ProgressFn, Reporter
from edgegen.quality.eval_report import write_report
from edgegen.quality.flops import count_flops
from edgegen.quality.metrics import (
    FrechetReference,
    KnnReferee,
    mcnemar,
    mean_pairwise_distance,
    pixels,
    wilson,
)
from edgegen.quality.results import EvalConfig, QualityReport, VariantQuality
from edgegen.runtime.bundle import Bundle, load_bundle
from edgegen.runtime.guard import (
    GenerateFn,
    guarded_generate,
    softmax,
)
from edgegen.runtime.inputs import check_guidance, check_steps
from edgegen.runtime.latent import latent, truncate
from edgegen.runtime.postprocess import to_pixels
from edgegen.runtime.providers import GPU_PROVIDERS, ProviderSpec, make_session
from edgegen.runtime.sampler import SamplerSpec, calls_per_image, sample
from edgegen.runtime.sessions import run_evaluator, run_generator
from edgegen.training.checkpoint import bundle_checkpoint, load_reference
from edgegen.training.data import MnistSplits, load_mnist, to_tensor_range
from edgegen.training.torch_utils import generate_images

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


# --------------------------------------------------------------------------- variants

@dataclass(frozen=True)
class Runner:
    """One variant to evaluate: a name, where it runs, and ``generate(z, labels) -> images``."""

    name: str
    source: str
    generate: GenerateFn
    onnx: bool


def onnx_runner(bundle: Bundle, name: str, provider: str, batch: int) -> Runner:
    path = bundle.variant_path(name)
    # the bytes checked against the manifest are the bytes the session runs
    session = make_session(bundle.model_bytes(name), ProviderSpec(provider), name=str(path))
    return Runner(name, f"{path.name} on {session.get_providers()[0]}",
                  lambda z, y: run_generator(session, z, y, batch), onnx=True)


def torch_runner(bundle: Bundle, provider: str, batch: int) -> tuple[Runner | None, str]:
    """PyTorch from the bundle's checkpoint, or None and the reason it cannot be used."""
    ckpt, why = bundle_checkpoint(bundle)
    if ckpt is None:
        return None, f"PyTorch not evaluated: {why}"
    import torch

    gpu = provider in GPU_PROVIDERS
    device = "cuda" if gpu and torch.cuda.is_available() else "cpu"
    gen, _ = load_reference(bundle, ckpt)
    gen = gen.to(device)
    note = "" if device != "cpu" or not gpu else \
        f"PyTorch ran on CPU: torch has no CUDA here (the ONNX variants run on {provider})"
    return Runner("torch", f"PyTorch {torch.__version__} on {device} from {ckpt}",
                  lambda z, y: generate_images(gen, z, y, device=device, batch=batch),
                  onnx=False), note


def make_runners(cfg: EvalConfig, bundle: Bundle) -> tuple[list[Runner], list[str]]:
    """The variants to evaluate, the reference first: PyTorch, or ONNX fp32 without it."""
    notes: list[str] = []
    asked = [n.strip().lower() for n in (cfg.precisions or bundle.variants) if n.strip()]
    names = [n for n in dict.fromkeys(asked) if n != "torch"]  # torch: see cfg.torch
    runners: list[Runner] = []
    if cfg.torch:
        runner, note = torch_runner(bundle, cfg.provider, cfg.batch)
        if note:
            notes.append(note)
        if runner is not None:
            runners.append(runner)
    else:
        notes.append("PyTorch not evaluated (--no-torch)")
    if not runners:
        names = ["fp32", *(n for n in names if n != "fp32")]
        notes.append("changes are measured against ONNX fp32 instead of PyTorch")
    for name in names:
        runners.append(onnx_runner(bundle, name, cfg.provider, cfg.batch))
    calib = bundle.variants.get("int8", {}).get("quantization", {}).get("calibration_seed")
    if calib is not None and str(cfg.seed) == str(calib):
        notes.append(f"--seed {cfg.seed} is the int8 calibration seed: int8 is judged on the "
                     "latents it was calibrated on; pick another seed for an unbiased figure")
    return runners, notes


def timed(generate: GenerateFn, z: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, float]:
    """Images and milliseconds per image, after one small warm-up call (lazy initialisation
    and first-call allocations are not the model's speed)."""
    generate(z[:10], labels[:10])
    t0 = time.perf_counter_ns()
    images = generate(z, labels)
    return images, (time.perf_counter_ns() - t0) / 1e6 / max(len(labels), 1)


def guard_block(runner: Runner, judge: Judge, referee: KnnReferee, labels: np.ndarray,
                cfg: EvalConfig, z_dim: int) -> dict[str, Any]:
    """Fidelity with the guard, how often it fired, and its measured cost per image.

    The guard's own fidelity is judged by the evaluator it used to accept samples, so it is
    near 100% by construction; the referee's fidelity on the guarded images is the honest one.
    Cost: generation alone, then the guarded run, back to back on the same latents, so that
    both see the same machine load.
    """
    z = truncate(latent(cfg.seed, len(labels), z_dim), cfg.psi)
    _, plain_ms = timed(runner.generate, z, labels)
    guarded_generate(runner.generate, judge.probs, labels[:10], cfg.seed, z_dim,
                     truncation=cfg.psi, max_retries=cfg.guard_retries,
                     min_prob=cfg.guard_min_prob)  # warm-up
    t0 = time.perf_counter_ns()
    res = guarded_generate(runner.generate, judge.probs, labels, cfg.seed, z_dim,
                           truncation=cfg.psi, max_retries=cfg.guard_retries,
                           min_prob=cfg.guard_min_prob)
    guarded_ms = (time.perf_counter_ns() - t0) / 1e6 / len(labels)
    ok = res.predicted == labels
    ref = referee.predict(to_pixels(res.images)) == labels
    n = len(labels)
    return {"fidelity": float(ok.mean()), "ci95": list(wilson(int(ok.sum()), n)),
            "accepted": float(res.accepted.mean()), "referee_fidelity": float(ref.mean()),
            "fired": res.fired, "fired_rate": res.fired / n, "rejected": res.rejected,
            "redraws": int(res.attempts.sum()), "max_retries": cfg.guard_retries,
            "min_prob": cfg.guard_min_prob, "ms_per_image_plain": plain_ms,
            "ms_per_image_guarded": guarded_ms,
            "overhead": guarded_ms / plain_ms if plain_ms > 0 else float("nan")}


def evaluate_variant(runner: Runner, z: np.ndarray, labels: np.ndarray, judge: Judge,
                     real: RealSet, referee: KnnReferee, cfg: EvalConfig
                     ) -> tuple[VariantQuality, Judged, np.ndarray]:
    """All measurements of one variant on the shared latents; also its verdicts and pixels."""
    images, ms = timed(runner.generate, z, labels)
    j, u8 = judge_images(images, labels, judge, referee)
    vq = VariantQuality(
        name=runner.name, source=runner.source, samples=int(len(labels)),
        **fidelity_fields(j, labels, real.n_classes),
        fid=fid_block(j.feats, labels, real),
        diversity=diversity_block(j.feats, pixels(u8), labels, real, cfg.collapse_ratio),
        referee=referee_fields(j, labels), ms_per_image=ms)
    wrong = np.flatnonzero(~j.correct)[:cfg.examples]
    vq.hallucinated = [{"index": int(i), "asked": int(labels[i]), "saw": int(j.predicted[i]),
                        "p_asked": float(j.p_asked[i])} for i in wrong]
    return vq, j, u8


def compare(vq: VariantQuality, j: Judged, ref_name: str, ref: Judged) -> None:
    """Fill ``vq.vs_reference``: fidelity change in percentage points and McNemar's test."""
    m = mcnemar(ref.correct, j.correct)
    vq.vs_reference = {"reference": ref_name,
                       "delta_pp": 100.0 * (float(j.correct.mean()) - float(ref.correct.mean())),
                       "lost": m.lost, "gained": m.gained, "p_value": m.p_value,
                       "method": m.method,
                       "label_agreement": float(np.mean(j.predicted == ref.predicted))}


# --------------------------------------------------------------------------- the knob

def sweep(runner: Runner, judge: Judge, real: RealSet, referee: KnnReferee, cfg: EvalConfig,
          z_dim: int) -> tuple[list[dict[str, Any]], list[np.ndarray]]:
    """Fidelity, FID and diversity of ``runner`` for every psi, on the same (scaled) latents.

    Returns the table and, per psi, one uint8 ``[n_classes, 28, 28]`` row (sample 0 of each
    label) for the picture.
    """
    n = min(cfg.sweep_samples, cfg.samples)
    labels = (np.arange(n) % real.n_classes).astype(np.int64)
    base = latent(cfg.seed, n, z_dim)
    rows, strips = [], []
    for psi in cfg.truncation:
        images = runner.generate(truncate(base, psi), labels)
        j, u8 = judge_images(images, labels, judge, referee)
        fb = fid_block(j.feats, labels, real)
        div = diversity_block(j.feats, pixels(u8), labels, real, cfg.collapse_ratio)
        rows.append({"psi": psi, "variant": runner.name, "samples": n,
                     **{k: v for k, v in fidelity_fields(j, labels, real.n_classes).items()
                        if k != "per_label"},
                     "fid": fb["value"], "fid_floor": fb["floor"],
                     "diversity_feature": div["feature"]["ratio"],
                     "diversity_pixel": div["pixel"]["ratio"],
                     "referee_fidelity": float(np.mean(j.referee == labels))})
        strips.append(u8[:real.n_classes])
    return rows, strips


SWEEP_KEYS = ("steps", "guidance")


def sampler_settings(cfg: EvalConfig, spec: SamplerSpec) -> list[tuple[int, float]]:
    """Every (steps, guidance) of ``cfg.sweep``; a key not swept stays at the exported value."""
    given = dict(cfg.sweep)
    steps = [check_steps(int(v)) if float(v).is_integer() else check_steps(v)
             for v in given.get("steps", (spec.steps,))]
    guidance = [check_guidance(float(v)) for v in given.get("guidance", (spec.guidance,))]
    return [(n, w) for n in dict.fromkeys(steps) for w in dict.fromkeys(guidance)]


def sampler_sweep(bundle: Bundle, judge: Judge, real: RealSet, referee: KnnReferee,
                  cfg: EvalConfig, emit: Callable[[str], None]
                  ) -> tuple[list[dict[str, Any]],
                                                              list[np.ndarray]]:
    """Fidelity, FID, diversity and cost of every sampler setting, on the same latents, run by
    the runtime's loop over ``denoiser.onnx`` (fp32) on ``cfg.provider``. Returns the table and
    one uint8 ``[n_classes, H, W]`` row per setting for the picture."""
    spec = SamplerSpec.from_manifest(bundle.manifest, bundle.root)
    path = bundle.denoiser_path("fp32")
    session = make_session(bundle.denoiser_bytes("fp32"), ProviderSpec(cfg.provider),
                           name=str(path))
    mflop_call = count_flops(path, batch=1).per_image / 1e6  # one network evaluation
    n = min(cfg.sweep_samples, cfg.samples)
    labels = _labels(n, real.n_classes)
    z = latent(cfg.seed, n, bundle.z_dim)
    rows, strips = [], []
    for steps, w in sampler_settings(cfg, spec):
        emit(f"sampler sweep: {steps} steps, guidance {w:g} ({n:,} samples)")

        def generate(zz: np.ndarray, yy: np.ndarray, steps: int = steps, w: float = w
                     ) -> np.ndarray:
            return sample(session, zz, yy, steps=steps, guidance=w, null_label=spec.null_label,
                          image_shape=spec.image_shape, batch=cfg.batch)

        images, ms = timed(generate, z, labels)
        j, u8 = judge_images(images, labels, judge, referee)
        fb = fid_block(j.feats, labels, real)
        div = diversity_block(j.feats, pixels(u8), labels, real, cfg.collapse_ratio)
        calls = calls_per_image(steps, w)
        rows.append({"steps": steps, "guidance": w, "samples": n,
                     "exported": (steps, w) == (spec.steps, spec.guidance),
                     **{k: v for k, v in fidelity_fields(j, labels, real.n_classes).items()
                        if k != "per_label"},
                     "fid": fb["value"], "fid_floor": fb["floor"],
                     "diversity_feature": div["feature"]["ratio"],
                     "diversity_pixel": div["pixel"]["ratio"],
                     "referee_fidelity": float(np.mean(j.referee == labels)),
                     "calls_per_image": calls, "mflop_per_image": mflop_call * calls,
                     "ms_per_image": ms, "runs": f"{path.name} on {cfg.provider}"})
        strips.append(u8[:real.n_classes])
    return rows, strips


# --------------------------------------------------------------------------- checks

def validate(cfg: EvalConfig) -> None:
    """Refuse options that cannot give a meaningful report, naming the option."""
    if cfg.samples < 20:
        raise ConfigError(f"--samples must be at least 20 (2 per label for diversity), got "
                          f"{cfg.samples}")
    require_positive(cfg, "sweep_samples", "batch", "referee_k", "referee_dims")
    ProviderSpec(cfg.provider).ep  # noqa: B018 - raises ProviderError for an unknown name
    if cfg.guard_retries < 0:
        raise ConfigError(f"--guard-retries must be >= 0, got {cfg.guard_retries}")
    for psi in (*cfg.truncation, *([cfg.psi] if cfg.psi is not None else [])):
        if not 0.0 < psi <= 4.0:
            raise ConfigError(f"truncation psi must be in (0, 4], got {psi} (e.g. --truncation "
                              "0.5,0.7,1.0)")
    if cfg.min_fidelity is not None and not 0.0 <= cfg.min_fidelity <= 1.0:
        raise ConfigError(f"--min-fidelity is a share in [0, 1] (0.97 = 97%), got "
                          f"{cfg.min_fidelity}")
    if cfg.max_fid is not None and cfg.max_fid < 0:
        raise ConfigError(f"--max-fid must be >= 0, got {cfg.max_fid}")
    if cfg.min_diversity is not None and cfg.min_diversity < 0:
        raise ConfigError(f"--min-diversity is a ratio to the real digits' diversity (0.8 = 80% "
                          f"as varied), >= 0; got {cfg.min_diversity}")
    for key, values in cfg.sweep:
        if key not in SWEEP_KEYS or not values:
            raise ConfigError(f"--sweep takes {' or '.join(f'{k}=V1,V2,...' for k in SWEEP_KEYS)}"
                              f", got {key}={','.join(map(str, values))}")
    if len({k for k, _ in cfg.sweep}) != len(cfg.sweep):
        raise ConfigError("give each --sweep key once (e.g. --sweep steps=1,2,4 --sweep "
                          "guidance=1,2)")
    if cfg.out is not None:  # before the work: a report folder that cannot be written
        check_output_dir(cfg.out, "--out")


def _same_data(recorded: dict[str, Any], have: dict[str, Any]) -> list[str]:
    """The provenance fields that differ (locations compared as resolved paths)."""
    diffs = []
    for key in ("source", "location", "train", "heldout"):
        a, b = recorded.get(key), have.get(key)
        if key == "location" and a and b:
            a, b = str(Path(a).expanduser().resolve()), str(Path(b).expanduser().resolve())
        if str(a) != str(b):
            diffs.append(key)
    return diffs


def load_data_for(bundle: Bundle, data_dir: Path | None) -> MnistSplits:
    """The real images a bundle is measured against, resized to its image size (as its
    training run's --image-size did); a ConfigError when their channels or classes differ."""
    c, h, w = bundle.image_shape
    data = load_mnist(data_dir, image_size=h if h == w else None)
    if data.image_shape != (c, h, w) or data.n_classes != bundle.n_classes:
        raise ConfigError(f"the data at {data.location} holds {data.n_classes} classes of "
                          f"{'x'.join(map(str, data.image_shape))} images; the bundle draws "
                          f"{bundle.n_classes} classes of {c}x{h}x{w} — pass the --data-dir "
                          "its generator was trained on")
    return data


def data_warnings(bundle: Bundle, data: MnistSplits) -> list[str]:
    """Warn when the real digits are not the ones the generator and evaluator were split from:
    then "held-out" digits may have been trained on, and FID compares other distributions."""
    have = data.provenance()
    out = []
    trained = bundle.manifest.get("provenance", {}).get("training_data")
    if not trained:
        out.append("the bundle does not record the generator's training data "
                   "(provenance.training_data): cannot confirm the held-out digits were never "
                   "trained on")
    elif diffs := _same_data(trained, have):
        out.append(f"real digits here: {have['source']} at {have['location']} ({have['train']:,}"
                   f" train / {have['heldout']:,} held-out); the generator was trained on "
                   f"{trained.get('source')} at {trained.get('location')} "
                   f"({trained.get('train')} / {trained.get('heldout')}) — they differ in "
                   f"{', '.join(diffs)}. Held-out digits may include its training digits and FID "
                   f"measures another distribution: pass --data-dir {trained.get('location')}")
    ev = (bundle.manifest.get("evaluator") or {}).get("trained_on")
    if ev and (diffs := _same_data(ev, have)):
        out.append(f"the evaluator was trained on {ev.get('source')} at {ev.get('location')}, "
                   f"not on the data used here (differs in {', '.join(diffs)}): its held-out "
                   "accuracy below may be measured on digits it was trained on")
    return out


def judge_warnings(variants: list[VariantQuality], tolerance_pp: float) -> list[str]:
    """The cross-check: variants whose evaluator and referee fidelities disagree."""
    out = []
    for v in variants:
        diff = 100.0 * (v.fidelity - v.referee["fidelity"])
        v.referee["difference_pp"] = diff
        if abs(diff) > tolerance_pp:
            out.append(f"{v.name}: the evaluator ({v.fidelity:.2%}) and the independent referee "
                       f"({v.referee['fidelity']:.2%}) disagree by {abs(diff):.1f} pp (more "
                       f"than {tolerance_pp:g}); they name the same digit for only "
                       f"{v.referee['agreement_with_evaluator']:.1%} of samples. The images are "
                       "likely off the real-digit distribution (compare FID to its floor and "
                       "look at the sample grids): trust neither fidelity alone")
    return out


def gate(report_variants: list[VariantQuality], cfg: EvalConfig) -> list[str]:
    """The failures of the requested gates (empty: passed)."""
    fails = []
    for v in report_variants:
        if cfg.min_fidelity is not None and v.fidelity < cfg.min_fidelity:
            fails.append(f"{v.name}: fidelity {v.fidelity:.2%} < --min-fidelity "
                         f"{cfg.min_fidelity:.2%}")
        if cfg.max_fid is not None and v.fid["value"] > cfg.max_fid:
            fails.append(f"{v.name}: FID {v.fid['value']:.2f} > --max-fid {cfg.max_fid:g} "
                         f"(real-vs-real floor {v.fid['floor']:.2f})")
        if cfg.min_diversity is not None and v.diversity["worst_ratio"] < cfg.min_diversity:
            fails.append(f"{v.name}: label {v.diversity['worst_label']} diversity ratio "
                         f"{v.diversity['worst_ratio']:.2f} < --min-diversity "
                         f"{cfg.min_diversity:g}")
    return fails


def targets(variants: list[VariantQuality], cfg: EvalConfig) -> list[dict[str, Any]]:
    """The recipe's targets, met or not (informational; gates are separate)."""
    rows = [{"variant": v.name, "what": "fidelity", "value": v.fidelity,
             "target": f">= {cfg.target_fidelity:.0%}", "met": v.fidelity >= cfg.target_fidelity}
            for v in variants]
    limits = dict(cfg.target_delta_pp)
    for v in variants:
        if v.name in limits and v.vs_reference is not None:
            d = v.vs_reference["delta_pp"]
            rows.append({"variant": v.name, "what": f"Δ fidelity vs {v.vs_reference['reference']}"
                         " (pp)", "value": d, "target": f"within ±{limits[v.name]:g} pp",
                         "met": abs(d) <= limits[v.name] + 1e-9})
    return rows


# --------------------------------------------------------------------------- the stage

def _labels(n: int, n_classes: int) -> np.ndarray:
    return (np.arange(n) % n_classes).astype(np.int64)  # balanced: sample i asks for i % C


def evaluate(cfg: EvalConfig, on_progress: ProgressFn | None = None) -> QualityReport:
    """Evaluate every variant of ``cfg.bundle``; write the report folder when ``cfg.out``."""
    emit = Reporter("eval", on_progress).say
    t0 = time.perf_counter()
    validate(cfg)
    bundle = load_bundle(cfg.bundle)
    if bundle.evaluator_path is None:
        raise BundleError(f"{bundle.root} has no evaluator.onnx, the judge of fidelity; "
                          "re-export with `edgegen export RUN --evaluator runs/evaluator` "
                          "(train one with `edgegen train-evaluator`)")
    if cfg.sweep:
        if not bundle.sampler:
            raise ConfigError(f"--sweep {cfg.sweep[0][0]}=... sweeps an iterative sampler, and "
                              f"{bundle.root} ({bundle.manifest['generator'].get('architecture')}"
                              ") has none: it draws an image in one call. Its control knob is "
                              "--truncation")
        sampler_settings(cfg, SamplerSpec.from_manifest(bundle.manifest, bundle.root))
    runners, notes = make_runners(cfg, bundle)  # first: a bad variant or provider fails fast
    # no spin-waiting: numpy (FID, k-NN) runs between evaluator calls and needs those cores
    judge = Judge(make_session(bundle.evaluator_bytes(), ProviderSpec("cpu", spinning=False),
                               name=str(bundle.evaluator_path)), cfg.batch)
    data = load_data_for(bundle, cfg.data_dir)
    emit(data.describe())
    warnings = data_warnings(bundle, data)
    n_classes, z_dim = bundle.n_classes, bundle.z_dim
    real = RealSet.build(data, judge, n_classes)
    referee = KnnReferee.fit(data.train_images, data.train_labels, dims=cfg.referee_dims,
                             k=cfg.referee_k, n_classes=n_classes)
    referee_acc = float(np.mean(referee.predict(data.heldout_images) == data.heldout_labels))
    emit(f"evaluator accuracy on {len(real.labels):,} held-out real digits: "
         f"{real.evaluator_accuracy:.2%}; referee (k-NN): {referee_acc:.2%}")

    labels = _labels(cfg.samples, n_classes)
    z = truncate(latent(cfg.seed, cfg.samples, z_dim), cfg.psi)  # [N, z_dim], shared by all
    variants, judged, pictures = [], {}, {}
    for runner in runners:
        emit(f"{runner.name}: generating and judging {cfg.samples:,} samples ({runner.source})")
        vq, j, u8 = evaluate_variant(runner, z, labels, judge, real, referee, cfg)
        if judged:
            compare(vq, j, runners[0].name, judged[runners[0].name])
        if cfg.guard and runner.onnx:
            emit(f"{runner.name}: the same samples through the guard")
            vq.guard = guard_block(runner, judge, referee, labels, cfg, z_dim)
        judged[runner.name] = j
        pictures[runner.name] = _keep_for_pictures(u8, labels, vq, n_classes)
        variants.append(vq)
    if not cfg.guard:
        notes.append("guard not measured (--no-guard)")
    elif not any(r.onnx for r in runners):
        notes.append("guard not measured: no ONNX variant evaluated")
    else:
        notes.append("the guard is measured on the ONNX variants (what edgegen.runtime serves)")

    knob_runner = next(r for r in runners if r.onnx) if any(r.onnx for r in runners) \
        else runners[0]
    emit(f"truncation sweep on {knob_runner.name}: psi = "
         f"{', '.join(f'{p:g}' for p in cfg.truncation)}")
    knob, strips = sweep(knob_runner, judge, real, referee, cfg, z_dim) if cfg.truncation \
        else ([], [])
    sampler_rows, sampler_strips = (sampler_sweep(bundle, judge, real, referee, cfg, emit)
                                    if cfg.sweep else ([], []))
    if bundle.sampler and not cfg.sweep:
        notes.append("guidance is this family's control knob (as truncation is the GAN's): "
                     "sweep it with --sweep guidance=1,1.5,2,3 (and --sweep steps=1,2,4,8,16)")

    report = QualityReport(
        bundle=Path(cfg.bundle), provider=cfg.provider, samples=cfg.samples, seed=cfg.seed,
        psi=cfg.psi, labels=list(bundle.manifest["generator"].get("labels", [])),
        data=data.provenance(),
        evaluator={"file": str(bundle.evaluator_path.name), "runs_on": "CPUExecutionProvider",
                   "heldout_accuracy": real.evaluator_accuracy,
                   "heldout_accuracy_at_export":
                       (bundle.manifest.get("evaluator") or {}).get("heldout_accuracy")},
        referee={"method": f"{cfg.referee_k}-nearest neighbours (distance-weighted) on the top "
                           f"{cfg.referee_dims} principal components of real training pixels",
                 "train_digits": int(len(data.train_labels)), "heldout_accuracy": referee_acc,
                 "k": cfg.referee_k, "dims": cfg.referee_dims},
        real={"heldout": int(len(real.labels)), "half_a": int(len(real.half_a)),
              "half_b": int(len(real.half_b)),
              "split": "held-out digits alternate between halves A and B within each label"},
        reference=runners[0].name, variants=variants, truncation=knob,
        targets=targets(variants, cfg),
        gates={"min_fidelity": cfg.min_fidelity, "max_fid": cfg.max_fid,
               "min_diversity": cfg.min_diversity},
        failures=gate(variants, cfg),
        warnings=warnings + judge_warnings(variants, cfg.judge_tolerance_pp), notes=notes,
        files={},
        elapsed_s=0.0, sampler_sweep=sampler_rows)
    report.elapsed_s = round(time.perf_counter() - t0, 1)
    if cfg.out is not None:
        try:
            write_report(report, Path(cfg.out), pictures, strips, sampler_strips)
        except OSError as exc:  # the numbers are not lost: the CLI prints them
            raise OutputError(f"could not write the report folder {cfg.out} "
                              f"({exc.strerror or exc}); the JSON report is printed below "
                              "instead", text=report.to_json()) from None
        emit(f"report written to {cfg.out}")
    return report


def _keep_for_pictures(u8: np.ndarray, labels: np.ndarray, vq: VariantQuality,
                       n_classes: int) -> dict[str, np.ndarray]:
    """The few images the pictures need, so 10,000 per variant are not all kept in memory:
    up to 10 per label (grid rows are labels) and the hallucinated examples."""
    rows = [np.flatnonzero(labels == d)[:10] for d in range(n_classes)]
    width = min(len(r) for r in rows)
    grid_idx = np.concatenate([r[:width] for r in rows])
    bad = np.array([h["index"] for h in vq.hallucinated], dtype=np.int64)
    return {"grid": u8[grid_idx], "grid_columns": np.array(width),
            "hallucinated": u8[bad] if bad.size else np.zeros((0, *u8.shape[1:]), np.uint8)}


__all__ = ["EvalConfig", "QualityReport", "VariantQuality", "evaluate"]
