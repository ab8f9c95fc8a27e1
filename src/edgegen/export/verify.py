"""``edgegen verify``: does the deployed model give the trained model's numbers, every time?

``verify(VerifyConfig) -> ParityReport``. For every requested (provider, variant) it runs:

* ``golden`` — ONNX Runtime on every ``golden/test_data_set_N`` input against its ``output_0.pb``
  (PyTorch float32 on CPU at export time);
* ``pytorch@B`` — fresh portable latents (seed ``VerifyConfig.seed``) at each batch size ``B``
  against PyTorch run live from the checkpoint the manifest points to (skipped, and said so, when
  that checkpoint is gone or was changed since export);
* ``labels`` — task-level parity: the bundle's evaluator (on CPU) predicts the digit of every ONNX
  Runtime image and of its reference image; the predictions must agree;
* ``determinism`` — the fresh inputs run ``repeats`` times on one session must give bitwise
  identical outputs;
* ``placement`` — which providers the session registered and which provider ran each node; the
  requested provider must run at least one node (never a silent CPU run);
* ``signature`` (once per bundle) — with ``public_key``, ``bundle.sig`` must verify over exactly
  the bundle's files (``load_bundle`` refuses it otherwise: exit 2); without a key the row is
  skipped and says ``unsigned`` or ``signed, not checked``.

Every model and golden file is read once, checked against the manifest's sha256 and used from
those bytes (``Bundle.read``). With ``strict`` a skipped check — no PyTorch reference, no
evaluator, no signature check — fails the report: a bundle whose checkpoint reference was
dropped or that nobody signed cannot pass as "all good".

For an iterative family (cflow), also, per provider and denoiser precision:

* ``trajectory`` — per-step parity of the sampler: ``edgegen.runtime.sampler``'s loop over
  ``denoiser[.fp16|.int8].onnx`` against PyTorch's loop (the same Euler steps and guidance, from
  the checkpoint), the state after every step compared, so the report shows how the error grows
  with the step count; any NaN or inf (an fp16 overflow) fails it. The final state is held to the
  precision's tolerance;
* ``loop`` (fp32) — the runtime loop over ``denoiser.onnx`` against ``model.onnx`` (the unrolled
  sampler) on the same inputs, held to ``edgegen.export.denoiser.LOOP_TOLERANCE``.

Tolerance rule (one rule, numpy's ``isclose``): an element passes when
``|candidate - reference| <= atol + rtol * |reference|``. Every comparison also reports max /
mean / median / p99 absolute and relative error, PSNR, cosine similarity, the number of elements
out of tolerance and the smallest atol that would pass with the given rtol, so a failure says how
far off it is, not only that it is.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np

from edgegen.core.errors import BundleError, ConfigError
from edgegen.core.progress import ProgressFn, Reporter
from edgegen.core.report import Report
from edgegen.runtime.bundle import PRECISIONS, Bundle, load_bundle
from edgegen.runtime.providers import (
    EP_NAMES,
    ProviderSpec,
    make_session,
    node_placement,
    ort,
    require_providers,
    spec_for,
)
from edgegen.runtime.sessions import run_evaluator, run_generator
from edgegen.training.checkpoint import bundle_checkpoint, load_reference
from edgegen.training.torch_utils import generate_images

TOLERANCE_RULE = ("an element passes when |candidate - reference| <= atol + rtol * |reference| "
                  "(numpy.isclose); the reference is the golden output or PyTorch float32 on CPU")
RELATIVE_ERROR = ("relative error = |candidate - reference| / |reference|, over the elements "
                  "whose reference is not exactly 0")
OUTPUT_RANGE = 2.0  # the generator's image is in [-1, 1]: PSNR's peak-to-peak signal


@dataclass(frozen=True)
class Tolerance:
    atol: float
    rtol: float


@dataclass(frozen=True)
class VerifyConfig:
    bundle: Path = Path("bundles/cdcgan")
    providers: tuple[str, ...] = ("cpu",)  # cpu | cuda | tensorrt | tensorrt-rtx | openvino
    precisions: tuple[str, ...] | None = None  # None: every variant in the bundle
    atol: float | None = None  # None: the per-precision default in ``tolerances``
    rtol: float | None = None
    batches: tuple[int, ...] = (1, 256)  # fresh-input batch sizes (ORT vs live PyTorch)
    repeats: int = 3  # runs of the same inputs on one session for the determinism check
    seed: int = 20250607  # fresh latents; distinct from the export's golden/calibration seeds
    trt_cache: Path | None = None  # None: <bundle>/trt_cache (ignored by the bundle's hashes)
    # Sessions made for bitwise repeatability (ProviderSpec.deterministic: cuDNN's fixed
    # convolution algorithm, use_deterministic_compute). Off: ORT's defaults, which a plain
    # deployment gets; on an H200 those were not bitwise repeatable for fp32 (~5e-7).
    deterministic: bool = False
    public_key: Path | None = None  # PEM: bundle.sig must verify (else BundleError, exit 2)
    strict: bool = False  # a skipped check is a failure
    # Element-wise tolerances, looked up as "<precision>-<provider>", then "<precision>".
    # Why these numbers:
    # * fp32 on CPU: ONNX Runtime runs the BatchNorm-folded graph, PyTorch the unfolded one;
    #   both accumulate in fp32, so they differ by rounding only (~1e-7 .. 1e-6 on this model).
    # * fp32 on CUDA: sessions are made with use_tf32=0. cuDNN picks other convolution
    #   algorithms (other summation orders) than the CPU: 10x the CPU tolerance. Measured on an
    #   H200 (ORT 1.31.1): max |Δ| 3.7e-6 with TF32 off, 2.7e-3 with TF32 on; 1e-4 sits a
    #   factor ~27 from both, so it passes honest fp32 and fails TF32 left on.
    # * fp32 on TensorRT: TensorRT may pick TF32 tactics for fp32 layers and ONNX Runtime
    #   exposes no switch to forbid them; TF32 has fp16's 10-bit mantissa: fp16's tolerance.
    # * fp32 on TensorRT-RTX: the same, and its plugin EP has no TF32 option at all (none in
    #   the wheel's tensorrt_rtx_provider_options.h): fp16's tolerance. Not measured yet.
    # * fp32 on OpenVINO (its CPU plugin, f32 pinned): other kernels (brgconv), other summation
    #   orders, still fp32 throughout; measured 6.7e-7 max |Δ| against PyTorch on the cdcgan
    #   generator (ORT CPU: 5.0e-7), so the CPU tolerance holds with a factor ~15 to spare.
    # * fp16: fp16 weights and arithmetic (eps ~ 1e-3): 1e-2.
    # * int8: QDQ with uint8 activations moves single pixels by up to ~0.25-0.4 of the [-1, 1]
    #   range; the element-wise bound is a sanity bound, int8 is judged by label agreement.
    # * an iterative sampler ("<precision>-sampler", cflow): each of the N steps adds the
    #   network's rounding, amplified up to (1 + 2w) times by guidance w. Measured on a 750-step
    #   cflow (4 steps, w = 2), max |Δ| on the image: fp32 1.3e-5 (vs PyTorch; per step 1.4e-6,
    #   2.3e-6, 3.9e-6, 1.0e-5), fp16 2.0e-2, int8 1.2 (a pixel can flip: int8 is judged by
    #   label agreement and eval's fidelity, 99.3% as fp32's on 300 samples). Bounds: fp32 1e-4,
    #   fp16 5e-2 absolute (+ rtol), int8 2.0 (a sanity bound: finite and in range).
    tolerances: Mapping[str, Tolerance] = field(default_factory=lambda: MappingProxyType({
        "fp32-cpu": Tolerance(1e-5, 1e-5),
        "fp32-cuda": Tolerance(1e-4, 1e-4),
        "fp32-tensorrt": Tolerance(1e-2, 1e-2),
        "fp32-tensorrt-rtx": Tolerance(1e-2, 1e-2),
        "fp32-openvino": Tolerance(1e-5, 1e-5),
        "fp16": Tolerance(1e-2, 1e-2),
        "int8": Tolerance(0.5, 0.0),
        "fp32-sampler": Tolerance(1e-4, 1e-5),
        "fp16-sampler": Tolerance(5e-2, 1e-2),
        "int8-sampler": Tolerance(2.0, 0.0),
    }))
    # Task-level parity: the share of samples whose predicted digit must not change.
    min_agreement: Mapping[str, float] = field(default_factory=lambda: MappingProxyType(
        {"fp32": 1.0, "fp16": 1.0, "int8": 0.98}))
    max_listed_disagreements: int = 50  # in the report; the count is always exact
    trajectory_samples: int = 64  # iterative families: samples of the per-step parity check


@dataclass
class ErrorStats:
    """Element-wise differences between a candidate and its reference (float64 arithmetic)."""

    elements: int
    max_abs: float
    mean_abs: float
    median_abs: float
    p99_abs: float
    max_rel: float
    mean_rel: float
    median_rel: float
    p99_rel: float
    psnr_db: float  # peak-to-peak signal = the output range (2.0); inf when identical
    cosine: float
    atol: float
    rtol: float
    out_of_tolerance: int
    min_passing_atol: float  # the smallest atol for which every element passes with ``rtol``
    worst: dict[str, Any]  # where |Δ| is largest: index, candidate and reference values

    @property
    def passed(self) -> bool:
        return self.out_of_tolerance == 0


@dataclass
class CheckResult:
    """One row of the report: a provider × variant × check with its numbers."""

    provider: str
    variant: str
    check: str  # golden | pytorch@B | labels | determinism | placement
    status: str  # pass | fail | skip
    message: str = ""
    limit: str = ""  # the bound the check was held to, in words
    stats: ErrorStats | None = None
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def target(self) -> str:
        """``provider/variant``, or ``bundle`` for a check of the whole bundle."""
        return f"{self.provider}/{self.variant}" if self.provider else self.variant

    @property
    def name(self) -> str:
        return f"{self.target}/{self.check}"


@dataclass
class ParityReport(Report):
    bundle: Path
    tolerance_rule: str
    relative_error: str
    providers: list[str]
    variants: list[str]
    tolerances: dict[str, dict[str, float]]  # per variant, as applied (overrides included)
    reference: dict[str, Any]  # where the PyTorch reference came from, or why it is skipped
    environment: dict[str, Any]
    checks: list[CheckResult]
    sessions: list[dict[str, Any]]  # provider truth per (provider, variant)
    signature: dict[str, Any] = field(default_factory=dict)  # verified / unsigned / not checked
    strict: bool = False  # skipped checks count as failures
    notes: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return bool(self.checks) and not self.failures

    @property
    def failures(self) -> list[CheckResult]:
        """Failed checks, and under ``strict`` the skipped ones too."""
        bad = ("fail", "skip") if self.strict else ("fail",)
        return [c for c in self.checks if c.status in bad]


# --------------------------------------------------------------------------- statistics


def error_stats(candidate: np.ndarray, reference: np.ndarray, atol: float, rtol: float,
                data_range: float = OUTPUT_RANGE) -> ErrorStats:
    """Compare two arrays of one shape element by element (see ``TOLERANCE_RULE``).

    A NaN or infinite candidate element is out of tolerance and makes ``min_passing_atol`` inf.
    """
    if candidate.shape != reference.shape:
        raise ValueError(f"shapes differ: candidate {candidate.shape}, reference "
                         f"{reference.shape}")
    c = np.asarray(candidate, dtype=np.float64).ravel()
    r = np.asarray(reference, dtype=np.float64).ravel()
    n = int(c.size)
    if n == 0:
        return ErrorStats(0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, math.inf, 1.0, atol, rtol,
                          0, 0.0, {})
    diff = np.abs(c - r)  # NaN where either side is NaN
    bad = ~np.isfinite(diff)
    d = np.where(bad, np.inf, diff)
    ref_abs = np.abs(r)
    within = diff <= atol + rtol * ref_abs  # False for NaN: numpy.isclose(equal_nan=False)
    nonzero = ref_abs > 0
    rel = d[nonzero] / ref_abs[nonzero]
    mse = float(np.mean(np.square(d)))
    worst = int(np.argmax(d))
    return ErrorStats(
        elements=n,
        max_abs=float(d.max()), mean_abs=float(d.mean()), median_abs=_quantile(d, 50),
        p99_abs=_quantile(d, 99),
        max_rel=float(rel.max()) if rel.size else 0.0,
        mean_rel=float(rel.mean()) if rel.size else 0.0,
        median_rel=_quantile(rel, 50), p99_rel=_quantile(rel, 99),
        psnr_db=psnr(mse, data_range),
        cosine=cosine(c, r),
        atol=float(atol), rtol=float(rtol),
        out_of_tolerance=int(n - np.count_nonzero(within)),
        min_passing_atol=min_passing_atol(d, ref_abs, rtol),
        worst={"flat_index": worst,
               "index": [int(i) for i in np.unravel_index(worst, candidate.shape)],
               "candidate": float(c[worst]), "reference": float(r[worst])},
    )


def _quantile(values: np.ndarray, q: float) -> float:
    """numpy's linear percentile; inf (not NaN) when it falls among infinite differences."""
    if values.size == 0:
        return 0.0
    with np.errstate(invalid="ignore"):
        v = float(np.percentile(values, q))
    return math.inf if math.isnan(v) else v


def psnr(mse: float, data_range: float = OUTPUT_RANGE) -> float:
    """Peak signal-to-noise ratio in dB: ``10 log10(range^2 / mse)``; inf when mse is 0."""
    if not math.isfinite(mse):
        return -math.inf
    return math.inf if mse == 0 else 10.0 * math.log10(data_range ** 2 / mse)


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine similarity of two flattened arrays (1.0 when both are all zeros)."""
    na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
    if not (math.isfinite(na) and math.isfinite(nb)):
        return math.nan
    if na == 0.0 or nb == 0.0:
        return 1.0 if na == nb else 0.0
    return float(np.dot(a, b) / (na * nb))


def min_passing_atol(abs_diff: np.ndarray, ref_abs: np.ndarray, rtol: float) -> float:
    """The smallest atol with ``abs_diff <= atol + rtol * ref_abs`` everywhere (0 when rtol
    alone suffices, inf when a difference is not finite)."""
    if abs_diff.size == 0:
        return 0.0
    need = abs_diff - rtol * ref_abs
    return float(max(0.0, need.max())) if np.all(np.isfinite(need)) else math.inf


# --------------------------------------------------------------------------- inputs


@dataclass
class Case:
    """A batch of generator inputs with its reference outputs and where each sample came from."""

    name: str  # "golden" or "pytorch@B"
    z: np.ndarray  # float32 [N, z_dim]
    label: np.ndarray  # int64 [N]
    seeds: list[str]  # per sample (strings: seeds may exceed 2**53)
    index: list[int]  # per sample: row of latent(seed, ...) it came from
    reference: np.ndarray | None  # float32 [N, 1, 28, 28]; None when no reference exists
    parts: list[tuple[int, int]] = field(default_factory=list)  # run in these [start, stop)


def golden_case(bundle: Bundle) -> Case:
    """Every golden set concatenated; each set is still run at its own batch size. The tensors
    come from bytes checked against the manifest (``Bundle.read``)."""
    from edgegen.export.golden import bundle_golden_set

    zs, labels, outs, seeds, index, parts = [], [], [], [], [], []
    entries = bundle.manifest["golden"]["sets"]
    start = 0
    for i, entry in enumerate(entries):
        inputs, expected = bundle_golden_set(bundle, i)
        if len(inputs) != 2 or inputs[0].ndim != 2 or inputs[1].shape != inputs[0].shape[:1]:
            raise BundleError(f"{bundle.root}: golden set {entry['dir']} does not hold a z "
                              "[B, z_dim] and a label [B] input; re-export the bundle")
        z, label = inputs  # [B, z_dim], [B] -> expected [B, C, H, W]
        zs.append(z)
        labels.append(label)
        outs.append(expected)
        seeds += [str(entry.get("seed", bundle.manifest["golden"].get("seed")))] * len(label)
        index += list(range(int(entry.get("start", 0)), int(entry.get("start", 0)) + len(label)))
        parts.append((start, start + len(label)))
        start += len(label)
    if not zs:
        raise ConfigError(f"{bundle.root} lists no golden sets; re-export the bundle")
    return Case("golden", np.concatenate(zs), np.concatenate(labels), seeds, index,
                np.concatenate(outs), parts)


def fresh_cases(bundle: Bundle, cfg: VerifyConfig) -> list[Case]:
    """One batch per requested size, each from its own range of ``cfg.seed``'s latent stream
    (batch 1 is sample 0, the next batch starts at sample 1, ...), labels cycling 0..9."""
    from edgegen.runtime.latent import latent

    cases, offset = [], 0
    for b in cfg.batches:
        z = latent(cfg.seed, b, bundle.z_dim, start=offset)  # [b, z_dim]
        label = (np.arange(offset, offset + b) % bundle.n_classes).astype(np.int64)
        cases.append(Case(f"pytorch@{b}", z, label, [str(cfg.seed)] * b,
                          list(range(offset, offset + b)), None, [(0, b)]))
        offset += b
    return cases


def pytorch_reference(bundle: Bundle, cases: list[Case]) -> dict[str, Any]:
    """Fill ``case.reference`` from the checkpoint the manifest names, when it is there and is
    the one the bundle was exported from; say why not otherwise."""
    recorded = bundle.manifest.get("provenance", {}).get("checkpoint", {})
    info: dict[str, Any] = {"recorded_path": recorded.get("path"),
                            "recorded_sha256": recorded.get("sha256")}
    ckpt, why = bundle_checkpoint(bundle)
    if ckpt is None:
        info.update(status="skipped", reason=f"{why}. The pytorch@B checks are skipped; the "
                    "fresh inputs still go through determinism, labels are checked on the "
                    "golden images only")
        return info
    import torch

    gen, run_info = load_reference(bundle, ckpt)
    for case in cases:  # [B, z_dim], [B] -> [B, C, H, W], float32 on CPU like the goldens
        case.reference = generate_images(gen, case.z, case.label, batch=len(case.label))
    info.update(status="used", path=str(ckpt), sha256=recorded.get("sha256"),
                weights=run_info.get("exported_weights"), torch=torch.__version__,
                device="cpu", dtype="float32")
    return info


# --------------------------------------------------------------------------- running


def run_case(session: Any, case: Case) -> np.ndarray:
    """ONNX Runtime outputs for ``case``, each part at its own batch size: [N, 1, 28, 28]."""
    outs = [run_generator(session, case.z[a:b], case.label[a:b], batch=b - a)
            for a, b in case.parts]
    return np.concatenate(outs)


def predict(evaluator: Any, images: np.ndarray) -> np.ndarray:
    """The evaluator's digit for each image: int64 [N]."""
    return run_evaluator(evaluator, images.astype(np.float32))[0].argmax(1)


def tolerance_for(cfg: VerifyConfig, precision: str, provider: str,
                  sampler: bool = False) -> Tolerance:
    """The per-(precision, provider) default (an iterative sampler's ``<precision>-sampler``
    first), with ``--atol`` / ``--rtol`` overriding it."""
    base = ((sampler and cfg.tolerances.get(f"{precision}-sampler"))
            or cfg.tolerances.get(f"{precision}-{provider}") or cfg.tolerances.get(precision))
    if base is None:
        raise ConfigError(f"no tolerance for precision {precision!r} on {provider}; known: "
                          f"{', '.join(cfg.tolerances)}")
    return Tolerance(base.atol if cfg.atol is None else cfg.atol,
                     base.rtol if cfg.rtol is None else cfg.rtol)


def compare_check(provider: str, variant: str, case: Case, got: np.ndarray,
                  tol: Tolerance) -> CheckResult:
    """Element-wise parity of ``got`` against ``case.reference``; a failure names the worst
    sample by seed and index, so it can be regenerated anywhere."""
    limit = f"atol {tol.atol:g}, rtol {tol.rtol:g}"
    if case.reference is None:
        raise ValueError(f"{case.name} has no reference")  # callers skip such cases
    if got.shape != case.reference.shape:
        return CheckResult(provider, variant, case.name, "fail", limit=limit,
                           message=f"output shape {got.shape}, reference {case.reference.shape}")
    stats = error_stats(got, case.reference, tol.atol, tol.rtol)
    where = stats.worst.get("index", [0])
    sample = where[0] if where else 0
    msg = (f"{stats.out_of_tolerance:,} of {stats.elements:,} elements out of tolerance; "
           f"worst at seed {case.seeds[sample]} sample {case.index[sample]} (label "
           f"{int(case.label[sample])}): {stats.worst.get('candidate', 0):.6g} vs "
           f"{stats.worst.get('reference', 0):.6g}") if not stats.passed else ""
    details: dict[str, Any] = {"samples": len(case.label), "batch_sizes":
                               sorted({b - a for a, b in case.parts})}
    if len(case.parts) > 1:  # per golden set: which one is off
        details["max_abs_per_part"] = [
            float(np.max(np.abs(got[a:b].astype(np.float64) - case.reference[a:b])))
            for a, b in case.parts]
    return CheckResult(provider, variant, case.name, "pass" if stats.passed else "fail",
                       message=msg, limit=limit, stats=stats, details=details)


def labels_check(provider: str, variant: str, precision: str, cfg: VerifyConfig,
                 cases: list[Case], outputs: dict[str, np.ndarray], evaluator: Any,
                 ref_preds: dict[str, np.ndarray]) -> CheckResult:
    """Task-level parity: the evaluator's digit for each ORT image equals the one for its
    reference image (golden and, when present, PyTorch)."""
    need = cfg.min_agreement.get(precision, 1.0)
    limit = f"agreement >= {need:.0%}"
    used = [c for c in cases if c.reference is not None]
    total, agree, fid_ort, fid_ref = 0, 0, 0, 0
    disagreements: list[dict[str, Any]] = []
    per_case: dict[str, float] = {}
    for case in used:
        got = predict(evaluator, outputs[case.name])
        ref = ref_preds[case.name]
        same = got == ref
        total += len(same)
        agree += int(same.sum())
        fid_ort += int((got == case.label).sum())
        fid_ref += int((ref == case.label).sum())
        per_case[case.name] = float(same.mean())
        for i in np.flatnonzero(~same):
            disagreements.append({"source": case.name, "seed": case.seeds[i],
                                  "sample": case.index[i], "label": int(case.label[i]),
                                  "reference_pred": int(ref[i]), "candidate_pred": int(got[i])})
    rate = agree / total if total else 1.0
    ok = rate >= need
    msg = "" if ok else (f"{total - agree} of {total} samples change digit: "
                         + ", ".join(f"seed {d['seed']} sample {d['sample']} (label {d['label']})"
                                     f" {d['reference_pred']}->{d['candidate_pred']}"
                                     for d in disagreements[:5])
                         + (" …" if len(disagreements) > 5 else ""))
    return CheckResult(provider, variant, "labels", "pass" if ok else "fail", message=msg,
                       limit=limit, details={
                           "samples": total, "agreeing": agree, "agreement": rate,
                           "min_agreement": need, "per_source": per_case,
                           "fidelity_candidate": fid_ort / total if total else None,
                           "fidelity_reference": fid_ref / total if total else None,
                           "disagreements_total": len(disagreements),
                           "disagreements": disagreements[:cfg.max_listed_disagreements]})


def run_difference(first: np.ndarray, again: np.ndarray) -> float:
    """0.0 when two runs are bitwise identical, else their largest |Δ| (inf for another shape,
    NaN when only NaNs differ)."""
    if first.shape != again.shape:
        return math.inf
    if first.tobytes() == again.tobytes():
        return 0.0
    diff = np.abs(again.astype(np.float64) - first.astype(np.float64))
    finite = diff[np.isfinite(diff)]
    return float(finite.max()) if finite.size and finite.max() > 0 else math.nan


def determinism_check(provider: str, variant: str, session: Any, cases: list[Case],
                      first: dict[str, np.ndarray], repeats: int) -> CheckResult:
    """Rerun each fresh batch ``repeats - 1`` more times; outputs must be bitwise identical."""
    per_batch: dict[str, dict[str, Any]] = {}
    worst = 0.0
    identical = True
    for case in cases:
        base = first[case.name]
        diffs = [run_difference(base, run_case(session, case)) for _ in range(repeats - 1)]
        identical &= all(d == 0.0 for d in diffs)
        per_batch[case.name] = {"runs": repeats, "max_abs_between_runs": max(diffs, default=0.0)}
        worst = max([worst, *diffs])
    msg = "" if identical else (
        f"outputs differ between runs by up to {worst:.3g}: the same request would not give "
        "the same image" + ("" if provider == "cpu" else
                            " (autotuned cuDNN algorithms do this; --deterministic pins "
                            "cuDNN's default algorithm)"))
    return CheckResult(provider, variant, "determinism", "pass" if identical else "fail",
                       message=msg, limit=f"bitwise identical over {repeats} runs",
                       details={"per_batch": per_batch, "max_abs_between_runs": worst})


def placement_check(provider: str, variant: str, path: Path, spec: ProviderSpec,
                    session: Any, case: Case, model: bytes | None = None
                    ) -> tuple[CheckResult, dict[str, Any]]:
    """Provider truth: the session's providers and, from one profiled run, each node's provider.
    The requested provider must run at least one node. ``model``: the checked bytes of
    ``path`` (the profiled session is made from them, like the checked one)."""
    feeds = {"z": case.z[:case.parts[0][1]], "label": case.label[:case.parts[0][1]]}
    placement = node_placement(path if model is None else model, spec, feeds)
    counts: dict[str, int] = placement["node_counts"]
    ep = EP_NAMES[provider]
    ok = counts.get(ep, 0) > 0
    truth = {"provider": provider, "variant": variant, "file": path.name,
             "session_providers": list(session.get_providers()),
             "node_counts": counts, "nodes": placement["nodes"]}
    msg = "" if ok else (f"no node ran on {ep} (node counts {counts}): the model ran elsewhere")
    return CheckResult(provider, variant, "placement", "pass" if ok else "fail", message=msg,
                       limit=f"{ep} runs >= 1 node",
                       details={"session_providers": truth["session_providers"],
                                "node_counts": counts}), truth


def signature_check(bundle: Bundle) -> CheckResult:
    """The bundle's signature as a report row: pass when ``load_bundle`` verified it with the
    public key, skip (unsigned / not checked) otherwise — a failure under ``--strict``."""
    sig = bundle.signature
    status = sig.get("status", "not checked")
    if status == "verified":
        return CheckResult("", "bundle", "signature", "pass",
                           message=f"bundle.sig verified with {sig.get('public_key')}",
                           limit="bundle.sig by the public key", details=dict(sig))
    why = ("unsigned: the bundle has no bundle.sig (sign it with `edgegen sign`)"
           if status == "unsigned" else
           f"{status}: pass --public-key to check bundle.sig")
    return CheckResult("", "bundle", "signature", "skip", message=why,
                       limit="bundle.sig by the public key", details=dict(sig))


# --------------------------------------------------------------------------- the stage


def _validate(cfg: VerifyConfig) -> None:
    if not cfg.providers:
        raise ConfigError("no provider given; expected a comma-separated list of "
                          f"{', '.join(EP_NAMES)}")
    for p in cfg.providers:
        if p not in EP_NAMES:
            raise ConfigError(f"unknown provider {p!r}; expected a comma-separated list of "
                              f"{', '.join(EP_NAMES)}")
    if not cfg.batches or any(int(b) < 1 for b in cfg.batches):
        raise ConfigError(f"--batch needs positive batch sizes, got {list(cfg.batches)}")
    if cfg.trajectory_samples < 1:
        raise ConfigError(f"trajectory_samples must be >= 1, got {cfg.trajectory_samples}")
    if cfg.repeats < 2:
        raise ConfigError(f"--repeats must be at least 2 to test determinism, got {cfg.repeats}")
    for name in ("atol", "rtol"):
        value = getattr(cfg, name)
        if value is not None and not (math.isfinite(value) and value >= 0):
            raise ConfigError(f"--{name} must be a finite number >= 0, got {value}")


def select_variants(bundle: Bundle, precisions: tuple[str, ...] | None) -> list[str]:
    """Variant names to check: every one in the bundle, or those of the given precisions
    (``fp32`` also selects ``fp32-opt``) or names."""
    variants = bundle.variants
    if not precisions:
        return list(variants)
    chosen: list[str] = []
    for p in precisions:
        if p not in PRECISIONS and p not in variants:
            raise ConfigError(f"unknown precision {p!r}; expected a comma-separated list of "
                              f"{', '.join(PRECISIONS)} (or a variant name of the bundle: "
                              f"{', '.join(variants)})")
        hits = [n for n, v in variants.items() if n == p or v.get("precision") == p]
        if not hits:
            bundle.variant_path(p)  # raises BundleError naming what the bundle has
        chosen += [h for h in hits if h not in chosen]
    return chosen


def verify(cfg: VerifyConfig, on_progress: ProgressFn | None = None
           ) -> ParityReport:
    """Check every requested (provider, variant) of a bundle; see the module docstring."""
    emit = Reporter("verify", on_progress).say
    _validate(cfg)
    # BundleError (exit 2) for a tampered, partial, unsigned-with-a-key or badly signed bundle
    bundle = load_bundle(cfg.bundle, public_key=cfg.public_key)
    variants = select_variants(bundle, cfg.precisions)
    have = require_providers(cfg.providers)

    golden = golden_case(bundle)
    fresh = fresh_cases(bundle, cfg)
    reference = pytorch_reference(bundle, fresh)
    notes: list[str] = []
    if reference["status"] != "used":
        notes.append(f"PyTorch comparison skipped: {reference['reason']}")
    else:
        emit(f"PyTorch reference from {reference['path']} at batch sizes "
             f"{', '.join(str(b) for b in cfg.batches)}")
    evaluator = None
    ref_preds: dict[str, np.ndarray] = {}
    if bundle.evaluator_file is not None:
        evaluator = make_session(bundle.evaluator_bytes(), ProviderSpec("cpu"),
                                 name=str(bundle.evaluator_path))
        ref_preds = {c.name: predict(evaluator, c.reference) for c in [golden, *fresh]
                     if c.reference is not None}
    else:
        notes.append("the bundle has no evaluator.onnx: label agreement is not measured "
                     "(export with --evaluator)")
    batch_sizes = sorted({b - a for a, b in golden.parts} | set(cfg.batches))

    checks: list[CheckResult] = [signature_check(bundle)]
    sessions: list[dict[str, Any]] = []
    tolerances: dict[str, dict[str, float]] = {}
    for provider in cfg.providers:
        for variant in variants:
            precision = bundle.variants[variant].get("precision", variant)
            tol = tolerance_for(cfg, precision, provider, sampler=bool(bundle.sampler))
            tolerances[f"{provider}/{variant}"] = {"atol": tol.atol, "rtol": tol.rtol}
            spec = spec_for(provider, precision, batch_range=(batch_sizes[0], batch_sizes[-1],
                                                              batch_sizes[-1]),
                            trt_cache_dir=Path(cfg.trt_cache or bundle.root / "trt_cache"),
                            deterministic=cfg.deterministic)
            path = bundle.model_path(variant, provider)
            model = bundle.model_bytes(variant, provider)  # read once, sha256 checked
            emit(f"{provider}/{variant}: creating the session ({path.name})")
            t0 = time.perf_counter()
            session = make_session(model, spec, name=str(path))
            created_s = time.perf_counter() - t0
            rows, truth = check_pair(cfg, provider, variant, precision, tol, spec, path,
                                     session, golden, fresh, evaluator, ref_preds, model)
            truth["session_created_s"] = created_s
            sessions.append(truth)
            checks += rows
            failed = [r.check for r in rows if r.status == "fail"]
            emit(f"{provider}/{variant}: " + (f"FAIL ({', '.join(failed)})" if failed else
                                              "pass"))
        if bundle.sampler:
            rows = sampler_checks(cfg, bundle, provider, variants, reference)
            checks += rows
            emit(f"{provider}/sampler: per-step parity of "
                 f"{', '.join(r.variant for r in rows if r.check == 'trajectory')}")
    return ParityReport(
        bundle=bundle.root, tolerance_rule=TOLERANCE_RULE, relative_error=RELATIVE_ERROR,
        providers=list(cfg.providers), variants=variants, tolerances=tolerances,
        reference=reference,
        environment={"onnxruntime": ort().__version__, "available_providers": have,
                     "seed": str(cfg.seed), "batches": list(cfg.batches),
                     "repeats": cfg.repeats,
                     "golden_sets": len(golden.parts), "golden_samples": len(golden.label)},
        checks=checks, sessions=sessions, signature=dict(bundle.signature), strict=cfg.strict,
        notes=notes)


def check_pair(cfg: VerifyConfig, provider: str, variant: str, precision: str,
               tol: Tolerance, spec: ProviderSpec, path: Path, session: Any, golden: Case,
               fresh: list[Case], evaluator: Any, ref_preds: dict[str, np.ndarray],
               model: bytes | None = None) -> tuple[list[CheckResult], dict[str, Any]]:
    """Every check of one (provider, variant) on one session."""
    outputs = {c.name: run_case(session, c) for c in [golden, *fresh]}
    rows = [compare_check(provider, variant, golden, outputs[golden.name], tol)]
    for case in fresh:
        if case.reference is None:
            rows.append(CheckResult(provider, variant, case.name, "skip",
                                    message="no PyTorch reference (see the notes)"))
        else:
            rows.append(compare_check(provider, variant, case, outputs[case.name], tol))
    if evaluator is not None:
        rows.append(labels_check(provider, variant, precision, cfg, [golden, *fresh], outputs,
                                 evaluator, ref_preds))
    else:
        rows.append(CheckResult(provider, variant, "labels", "skip",
                                message="the bundle has no evaluator.onnx"))
    rows.append(determinism_check(provider, variant, session, fresh,
                                  {c.name: outputs[c.name] for c in fresh}, cfg.repeats))
    placement, truth = placement_check(provider, variant, path, spec, session, fresh[0], model)
    rows.append(placement)
    return rows, truth


# --------------------------------------------------------------------------- the sampler


def sampler_checks(cfg: VerifyConfig, bundle: Bundle, provider: str, variants: list[str],
                   reference: dict[str, Any]) -> list[CheckResult]:
    """``trajectory`` per denoiser precision and ``loop`` (fp32) for an iterative family."""
    from edgegen.export.denoiser import LOOP_TOLERANCE
    from edgegen.runtime.latent import latent
    from edgegen.runtime.sampler import SamplerSpec, sample, time_grid, trajectory

    spec = SamplerSpec.from_manifest(bundle.manifest, bundle.root)
    loop = {"steps": spec.steps, "guidance": spec.guidance, "null_label": spec.null_label,
            "image_shape": spec.image_shape}
    n = cfg.trajectory_samples
    offset = sum(cfg.batches)  # after the pytorch@B inputs in the seed's stream
    z = latent(cfg.seed, n, bundle.z_dim, start=offset)
    y = (np.arange(offset, offset + n) % bundle.n_classes).astype(np.int64)
    precisions = list(dict.fromkeys(str(bundle.variants[v].get("precision", v))
                                    for v in variants))
    ref_states: list[np.ndarray] | None = None
    if reference.get("status") == "used":
        import torch

        gen, _ = load_reference(bundle, Path(reference["path"]))
        with torch.inference_mode():
            ref_states = [s.numpy() for s in gen.trajectory(torch.from_numpy(z),
                                                            torch.from_numpy(y))]
    grid = time_grid(spec.steps)
    rows: list[CheckResult] = []
    for prec in precisions:
        if prec not in spec.denoiser:
            continue
        name = f"denoiser-{prec}"
        tol = tolerance_for(cfg, prec, provider, sampler=True)
        limit = f"final step atol {tol.atol:g}, rtol {tol.rtol:g}; no NaN/inf at any step"
        session = make_session(bundle.denoiser_bytes(prec),
                               spec_for(provider, prec, deterministic=cfg.deterministic),
                               name=str(bundle.denoiser_path(prec)))
        states = trajectory(session, z, y, **loop)
        non_finite = [int(np.count_nonzero(~np.isfinite(s))) for s in states]
        if ref_states is None:
            rows.append(CheckResult(provider, name, "trajectory",
                                    "fail" if any(non_finite) else "skip", limit=limit,
                                    message=("NaN/inf in the sampler's states: "
                                             f"{non_finite}" if any(non_finite) else
                                             "no PyTorch reference (see the notes); NaN/inf "
                                             "checked: none"),
                                    details={"non_finite_per_step": non_finite}))
        else:
            per_step = []
            for i, (got, ref) in enumerate(zip(states, ref_states)):
                st = error_stats(got, ref, tol.atol, tol.rtol)
                per_step.append({"step": i + 1, "t": float(grid[i + 1]), "max_abs": st.max_abs,
                                 "mean_abs": st.mean_abs, "p99_abs": st.p99_abs,
                                 "non_finite": non_finite[i]})
            final = error_stats(states[-1], ref_states[-1], tol.atol, tol.rtol)
            ok = final.passed and not any(non_finite)
            first = per_step[0]["max_abs"]
            msg = "" if ok else (
                f"NaN/inf in the sampler's states: {non_finite} per step" if any(non_finite)
                else f"final state: {final.out_of_tolerance:,} of {final.elements:,} elements "
                     f"out of tolerance (max |Δ| {final.max_abs:.3g})")
            rows.append(CheckResult(
                provider, name, "trajectory", "pass" if ok else "fail", message=msg,
                limit=limit, stats=final, details={
                    "samples": n, "steps": spec.steps, "guidance": spec.guidance,
                    "per_step": per_step, "non_finite_total": int(sum(non_finite)),
                    "growth_max_abs": (per_step[-1]["max_abs"] / first) if first > 0 else None,
                    "reference": "PyTorch float32 on CPU, the same Euler loop "
                                 "(models.cflow.Generator.trajectory)"}))
        if prec == "fp32" and "fp32" in bundle.variants:
            unrolled = run_generator(make_session(bundle.model_bytes("fp32"),
                                                  spec_for(provider, "fp32",
                                                           deterministic=cfg.deterministic)),
                                     z, y)
            looped = sample(session, z, y, **loop)
            st = error_stats(looped, unrolled, LOOP_TOLERANCE, 0.0)
            rows.append(CheckResult(
                provider, name, "loop", "pass" if st.passed else "fail",
                limit=f"atol {LOOP_TOLERANCE:g} vs model.onnx", stats=st,
                message="" if st.passed else (f"the runtime loop differs from model.onnx by "
                                              f"{st.max_abs:.3g}"),
                details={"samples": n, "reference": "model.onnx (fp32), the unrolled sampler"}))
    return rows
