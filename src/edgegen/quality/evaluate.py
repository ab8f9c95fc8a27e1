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
  GAN's;
* with ``--teacher BUNDLE`` (a student, e.g. a distilled one): agreement with the teacher's
  image for the same (z, label), pixel and feature distance, and both costs (``teacher``).

The sample count is sized by the interval the report states (``sizing``): rounds until every
fidelity's (and teacher agreement's) Wilson 95% half-width meets ``ci_half_width``, between
``min_samples`` and ``max_samples`` — or exactly ``samples`` — every variant on the same
latents in every round (``rounds``), so paired comparisons stay paired.

Neither the evaluator nor the referee ever sees a generated image during training: they judge,
they are not tuned. ``cfg.out`` receives ``report.md``, ``report.json`` and the pictures.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgegen.core.errors import BundleError, ConfigError, OutputError
from edgegen.core.progress import ProgressFn, Reporter
from edgegen.quality.checks import (
    data_warnings,
    gate,
    judge_warnings,
    load_data_for,
    sizer,
    targets,
    validate,
)
from edgegen.quality.eval_report import write_report
from edgegen.quality.judging import (
    Judge,
    Judged,
    RealSet,
    diversity_block,
    fid_block,
    fidelity_fields,
    referee_fields,
)
from edgegen.quality.metrics import KnnReferee, mcnemar, pixels, wilson
from edgegen.quality.results import EvalConfig, QualityReport, VariantQuality
from edgegen.quality.rounds import Drawn, Plan, Runner, draw, labels_for, timed
from edgegen.quality.sweeps import sampler_settings, sampler_sweep, sweep
from edgegen.quality.teacher import (
    check_pair,
    evaluator_sha256,
    generator_cost,
    side_by_side,
    vs_teacher,
)
from edgegen.runtime.bundle import Bundle, load_bundle
from edgegen.runtime.guard import guarded_generate
from edgegen.runtime.latent import latent, truncate
from edgegen.runtime.postprocess import to_pixels
from edgegen.runtime.providers import GPU_PROVIDERS, ProviderSpec, arena_shrinking, make_session
from edgegen.runtime.sampler import SamplerSpec, calls_per_image
from edgegen.runtime.sessions import run_generator
from edgegen.training.checkpoint import bundle_checkpoint, load_reference
from edgegen.training.data import MnistSplits
from edgegen.training.torch_utils import generate_images

TEACHER = "teacher"  # the teacher's runner among the drawn ones (never a variant name)


# --------------------------------------------------------------------------- variants

def onnx_runner(bundle: Bundle, name: str, provider: str, batch: int) -> Runner:
    path = bundle.variant_path(name)
    # the bytes checked against the manifest are the bytes the session runs
    spec = ProviderSpec(provider)
    session = make_session(bundle.model_bytes(name), spec, name=str(path))
    # every variant's session lives through every round: each hands its memory arena back
    # after a run, so they do not all hold their largest run (~0.6 GB each for the demo's
    # unrolled cflow at batch 500) at once
    shrink = arena_shrinking(spec)
    return Runner(name, f"{path.name} on {session.get_providers()[0]}",
                  lambda z, y: run_generator(session, z, y, batch, run_options=shrink),
                  onnx=True)


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


def variant_quality(runner: Runner, drawn: Drawn, labels: np.ndarray, real: RealSet,
                    cfg: EvalConfig) -> tuple[VariantQuality, Judged, np.ndarray]:
    """All measurements of one variant on the shared samples; also its verdicts and pixels."""
    j, u8 = drawn.judged(), drawn.u8()
    vq = VariantQuality(
        name=runner.name, source=runner.source, samples=int(len(labels)),
        **fidelity_fields(j, labels, real.n_classes),
        fid=fid_block(j.feats, labels, real),
        diversity=diversity_block(j.feats, pixels(u8), labels, real, cfg.collapse_ratio),
        referee=referee_fields(j, labels), ms_per_image=drawn.ms_per_image())
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


# --------------------------------------------------------------------------- the stage

@dataclass
class Judges:
    """The evaluator, the referee and the real digits they are measured against."""

    judge: Judge
    referee: KnnReferee
    real: RealSet
    data: MnistSplits
    referee_accuracy: float


def prepare(cfg: EvalConfig) -> tuple[Bundle, Bundle | None]:
    """The bundle (and teacher) after every check that needs no generation: a bad option,
    variant, sweep or teacher fails before anything slow runs."""
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
    teacher = load_bundle(cfg.teacher) if cfg.teacher is not None else None
    if teacher is not None:
        if "fp32" not in teacher.variants:
            raise BundleError(f"the teacher {teacher.root} has no fp32 variant (it has "
                              f"{', '.join(teacher.variants)}); re-export it with fp32")
        check_pair(bundle, teacher)
    return bundle, teacher


def judges_for(cfg: EvalConfig, bundle: Bundle, emit: Any) -> Judges:
    # no spin-waiting: numpy (FID, k-NN) runs between evaluator calls and needs those cores
    judge = Judge(make_session(bundle.evaluator_bytes(), ProviderSpec("cpu", spinning=False),
                               name=str(bundle.evaluator_path)), cfg.batch)
    data = load_data_for(bundle, cfg.data_dir)
    emit(data.describe())
    real = RealSet.build(data, judge, bundle.n_classes)
    referee = KnnReferee.fit(data.train_images, data.train_labels, dims=cfg.referee_dims,
                             k=cfg.referee_k, n_classes=bundle.n_classes)
    referee_acc = float(np.mean(referee.predict(data.heldout_images) == data.heldout_labels))
    emit(f"evaluator accuracy on {len(real.labels):,} held-out real digits: "
         f"{real.evaluator_accuracy:.2%}; referee (k-NN): {referee_acc:.2%}")
    return Judges(judge, referee, real, data, referee_acc)


def extra_seconds(cfg: EvalConfig, runners: list[Runner], bundle: Bundle,
                  rates: dict[str, float], n: int) -> float:
    """The guard's and the sweeps' time after the main draw, from the measured images/s: the
    guard draws every sample twice more per ONNX variant (plain and guarded), a sweep setting
    ``min(sweep_samples, n)`` images (a sampler setting in proportion to its network calls)."""
    onnx = [r.name for r in runners if r.onnx]
    seconds = sum(2 * n / rates[name] for name in onnx) if cfg.guard else 0.0
    knob = onnx[0] if onnx else runners[0].name
    sweep_n = min(cfg.sweep_samples, n)
    seconds += len(cfg.truncation) * sweep_n / rates[knob]
    if cfg.sweep and bundle.sampler:
        spec = SamplerSpec.from_manifest(bundle.manifest, bundle.root)
        exported = calls_per_image(spec.steps, spec.guidance)
        seconds += sum(calls_per_image(s, w) / exported * sweep_n / rates[knob]
                       for s, w in sampler_settings(cfg, spec))
    return seconds


def teacher_runner(teacher: Bundle, cfg: EvalConfig) -> Runner:
    runner = onnx_runner(teacher, "fp32", cfg.provider, cfg.batch)
    return Runner(TEACHER, f"{teacher.root}/{runner.source}", runner.generate, onnx=True)


def measure_variants(runners: list[Runner], drawn: dict[str, Drawn], labels: np.ndarray,
                     js: Judges, cfg: EvalConfig, z_dim: int, emit: Any
                     ) -> tuple[list[VariantQuality], dict[str, dict[str, Any]]]:
    """Every variant's numbers (against the reference, the teacher, the guard) and pictures;
    each variant's samples are released once measured."""
    n_classes = js.real.n_classes
    teacher = drawn.pop(TEACHER, None)
    t_judged, t_u8 = (teacher.judged(), teacher.u8()) if teacher is not None else (None, None)
    variants, pictures, reference = [], {}, None
    for runner in runners:
        vq, j, u8 = variant_quality(runner, drawn.pop(runner.name), labels, js.real, cfg)
        if reference is None:
            reference = j
        else:
            compare(vq, j, runners[0].name, reference)
        pictures[runner.name] = _keep_for_pictures(u8, labels, vq, n_classes)
        if t_judged is not None:
            scale = [row["feature"]["real"] for row in vq.diversity["per_label"]]
            vq.vs_teacher = vs_teacher(j, u8, t_judged, t_u8, labels, scale)
            pictures[runner.name]["teacher_pairs"] = side_by_side(
                u8, t_u8, j.predicted, t_judged.predicted, labels, n_classes)
        if cfg.guard and runner.onnx:
            emit(f"{runner.name}: the same samples through the guard")
            vq.guard = guard_block(runner, js.judge, js.referee, labels, cfg, z_dim)
        variants.append(vq)
    return variants, pictures


def teacher_block(cfg: EvalConfig, bundle: Bundle, teacher: Bundle, drawn: Drawn,
                  labels: np.ndarray, runner: Runner) -> dict[str, Any]:
    """The teacher's side of the report: its own fidelity, its cost and the student's."""
    j = drawn.judged()
    k, n = int(j.correct.sum()), len(labels)
    return {"bundle": str(cfg.teacher), "source": runner.source,
            "evaluator_sha256": evaluator_sha256(teacher),
            "judge": f"the student's {bundle.evaluator_file} (the same file in both bundles)",
            "fidelity": k / n, "ci95": list(wilson(k, n)), "samples": n,
            "ms_per_image": drawn.ms_per_image(), "cost": generator_cost(teacher),
            "student_cost": generator_cost(bundle)}


def evaluate(cfg: EvalConfig, on_progress: ProgressFn | None = None) -> QualityReport:
    """Evaluate every variant of ``cfg.bundle``; write the report folder when ``cfg.out``."""
    reporter = Reporter("eval", on_progress)
    emit = reporter.say
    t0 = time.perf_counter()
    bundle, teacher = prepare(cfg)
    runners, notes = make_runners(cfg, bundle)  # first: a bad variant or provider fails fast
    t_runner = teacher_runner(teacher, cfg) if teacher is not None else None
    js = judges_for(cfg, bundle, emit)
    n_classes, z_dim = bundle.n_classes, bundle.z_dim
    plan = Plan(cfg.seed, cfg.psi, z_dim, n_classes, sizer(cfg, n_classes),
                lambda rates, n: extra_seconds(cfg, runners, bundle, rates, n))
    emit(f"sampling {plan.sizer.describe()}, every variant"
         f"{' and the teacher' if teacher else ''} on the same latents")
    drawn, sizing = draw([*runners, *([t_runner] if t_runner else [])], plan, js.judge,
                         js.referee, reporter, TEACHER if teacher else None)
    n = sizing["samples"]
    if not sizing["reached"]:
        notes.append(f"the widest 95% CI half-width is {100 * sizing['widest_half_width']:.2f} "
                     f"pp at the cap of {n:,} samples, above the asked "
                     f"{100 * sizing['target_half_width']:.2f} pp: raise --max-samples for a "
                     "narrower interval")
    labels = labels_for(0, n, n_classes)
    t_info = teacher_block(cfg, bundle, teacher, drawn[TEACHER], labels, t_runner) \
        if teacher is not None and t_runner is not None else None
    variants, pictures = measure_variants(runners, drawn, labels, js, cfg, z_dim, emit)
    notes += _guard_notes(cfg, runners)
    knob_runner = next((r for r in runners if r.onnx), runners[0])
    knob, strips = [], []
    if cfg.truncation:
        emit(f"truncation sweep on {knob_runner.name}: psi = "
             f"{', '.join(f'{p:g}' for p in cfg.truncation)}")
        knob, strips = sweep(knob_runner, js.judge, js.real, js.referee, cfg, z_dim, n)
    sampler_rows, sampler_strips = (sampler_sweep(bundle, js.judge, js.real, js.referee, cfg,
                                                  emit, n) if cfg.sweep else ([], []))
    if bundle.sampler and not cfg.sweep:
        notes.append("guidance is this family's control knob (as truncation is the GAN's): "
                     "sweep it with --sweep guidance=1,1.5,2,3 (and --sweep steps=1,2,4,8,16)")
    report = _report(cfg, bundle, js, runners, variants, knob, sampler_rows, notes, n)
    report.sizing, report.teacher = sizing, t_info
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


def _guard_notes(cfg: EvalConfig, runners: list[Runner]) -> list[str]:
    if not cfg.guard:
        return ["guard not measured (--no-guard)"]
    if not any(r.onnx for r in runners):
        return ["guard not measured: no ONNX variant evaluated"]
    return ["the guard is measured on the ONNX variants (what edgegen.runtime serves)"]


def _report(cfg: EvalConfig, bundle: Bundle, js: Judges, runners: list[Runner],
            variants: list[VariantQuality], knob: list[dict[str, Any]],
            sampler_rows: list[dict[str, Any]], notes: list[str], n: int) -> QualityReport:
    real, data = js.real, js.data
    return QualityReport(
        bundle=Path(cfg.bundle), provider=cfg.provider, samples=n, seed=cfg.seed,
        psi=cfg.psi, labels=list(bundle.manifest["generator"].get("labels", [])),
        data=data.provenance(),
        evaluator={"file": str(bundle.evaluator_path.name), "runs_on": "CPUExecutionProvider",
                   "heldout_accuracy": real.evaluator_accuracy,
                   "heldout_accuracy_at_export":
                       (bundle.manifest.get("evaluator") or {}).get("heldout_accuracy")},
        referee={"method": f"{cfg.referee_k}-nearest neighbours (distance-weighted) on the top "
                           f"{cfg.referee_dims} principal components of real training pixels",
                 "train_digits": int(len(data.train_labels)),
                 "heldout_accuracy": js.referee_accuracy, "k": cfg.referee_k,
                 "dims": cfg.referee_dims},
        real={"heldout": int(len(real.labels)), "half_a": int(len(real.half_a)),
              "half_b": int(len(real.half_b)),
              "split": "held-out digits alternate between halves A and B within each label"},
        reference=runners[0].name, variants=variants, truncation=knob,
        targets=targets(variants, cfg),
        gates={"min_fidelity": cfg.min_fidelity, "max_fid": cfg.max_fid,
               "min_diversity": cfg.min_diversity, "min_agreement": cfg.min_agreement},
        failures=gate(variants, cfg),
        warnings=data_warnings(bundle, data) + judge_warnings(variants, cfg.judge_tolerance_pp),
        notes=notes, files={}, elapsed_s=0.0, sampler_sweep=sampler_rows)


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


__all__ = ["EvalConfig", "QualityReport", "VariantQuality", "data_warnings", "evaluate",
           "judge_warnings"]
