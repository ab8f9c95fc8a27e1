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

For an iterative family (cflow), also, per provider and denoiser precision, ``trajectory``
(per-step parity of the sampler loop against PyTorch's) and ``loop`` (fp32: the runtime loop
against the unrolled ``model.onnx``): see ``edgegen.export.parity.sampler``.

A bundle exported with ``--ort-format`` has its ``.ort`` files checked too, whenever they are there
(they ship in the bundle, so a plain ``edgegen verify`` covers them), on cpu and cuda:
``ort-golden`` (the goldens through each variant's ``.ort``, at that variant's tolerance) and
``ort-onnx`` (each ``.ort`` — variants, evaluator, denoisers — against its ``.onnx``, at the same
tolerance): see ``edgegen.export.parity.ort``.

Tolerance rule (one rule, numpy's ``isclose``): an element passes when
``|candidate - reference| <= atol + rtol * |reference|``. Every comparison also reports max /
mean / median / p99 absolute and relative error, PSNR, cosine similarity, the number of elements
out of tolerance and the smallest atol that would pass with the given rtol, so a failure says how
far off it is, not only that it is (``edgegen.export.parity.metrics``).

The parts live in ``edgegen.export.parity``: ``metrics`` (the numbers), ``config`` (tolerances and
why), ``cases`` (inputs and references), ``checks`` and ``sampler`` (the rows), ``report``. This
module is the stage: it loads the bundle, makes the inputs once and checks every pair.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgegen.core.errors import ConfigError
from edgegen.core.progress import ProgressFn, Reporter
from edgegen.export.parity.cases import (
    Case,
    fresh_cases,
    golden_case,
    predict,
    pytorch_reference,
    run_case,
)
from edgegen.export.parity.checks import (
    compare_check,
    determinism_check,
    labels_check,
    placement_check,
    signature_check,
)
from edgegen.export.parity.config import Tolerance, VerifyConfig, tolerance_for
from edgegen.export.parity.metrics import RELATIVE_ERROR, TOLERANCE_RULE
from edgegen.export.parity.ort import PROVIDERS as ORT_PROVIDERS
from edgegen.export.parity.ort import has_ort, model_ort_checks, variant_ort_checks
from edgegen.export.parity.report import CheckResult, ParityReport
from edgegen.export.parity.sampler import sampler_checks
from edgegen.runtime.bundle import PRECISIONS, Bundle, load_bundle
from edgegen.runtime.providers import (
    EP_NAMES,
    ProviderSpec,
    make_session,
    ort,
    require_providers,
    spec_for,
)

__all__ = ["CheckResult", "ParityReport", "Tolerance", "VerifyConfig", "select_variants",
           "verify"]


@dataclass
class Inputs:
    """What every (provider, variant) of one bundle is checked on, made once per ``verify``."""

    cfg: VerifyConfig
    golden: Case
    fresh: list[Case]  # one per --batch size; reference None when PyTorch is skipped
    reference: dict[str, Any]  # where the PyTorch reference came from, or why it is skipped
    evaluator: Any = None  # the bundle's evaluator session (CPU), None without one
    ref_preds: dict[str, np.ndarray] = field(default_factory=dict)  # case -> int64 [N] digits
    notes: list[str] = field(default_factory=list)

    @property
    def cases(self) -> list[Case]:
        return [self.golden, *self.fresh]


@dataclass(frozen=True)
class Pair:
    """One (provider, variant) and its session, made from the checked bytes of ``path``."""

    provider: str
    variant: str
    precision: str
    tol: Tolerance
    spec: ProviderSpec
    path: Path
    model: bytes
    session: Any
    created_s: float  # the session's creation time (reported, never part of a timing)


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


def verify(cfg: VerifyConfig, on_progress: ProgressFn | None = None) -> ParityReport:
    """Check every requested (provider, variant) of a bundle; see the module docstring."""
    emit = Reporter("verify", on_progress).say
    _validate(cfg)
    # BundleError (exit 2) for a tampered, partial, unsigned-with-a-key or badly signed bundle
    bundle = load_bundle(cfg.bundle, public_key=cfg.public_key)
    variants = select_variants(bundle, cfg.precisions)
    have = require_providers(cfg.providers)
    inputs = make_inputs(cfg, bundle, emit)
    checks: list[CheckResult] = [signature_check(bundle)]
    sessions: list[dict[str, Any]] = []
    tolerances: dict[str, dict[str, float]] = {}
    for provider in cfg.providers:
        for variant in variants:
            pair = open_pair(inputs, bundle, provider, variant, emit)
            tolerances[f"{provider}/{variant}"] = {"atol": pair.tol.atol, "rtol": pair.tol.rtol}
            rows, truth = check_pair(pair, inputs)
            if has_ort(bundle, provider):
                rows += variant_ort_checks(bundle, provider, variant, pair.tol, pair.spec,
                                           pair.session, inputs.golden)
            sessions.append(truth)
            checks += rows
            failed = [r.check for r in rows if r.status == "fail"]
            emit(f"{provider}/{variant}: " + (f"FAIL ({', '.join(failed)})" if failed else
                                              "pass"))
        checks += model_checks(inputs, bundle, provider, variants, emit)
    return ParityReport(
        bundle=bundle.root, tolerance_rule=TOLERANCE_RULE, relative_error=RELATIVE_ERROR,
        providers=list(cfg.providers), variants=variants, tolerances=tolerances,
        reference=inputs.reference,
        environment={"onnxruntime": ort().__version__, "available_providers": have,
                     "seed": str(cfg.seed), "batches": list(cfg.batches),
                     "repeats": cfg.repeats, "golden_sets": len(inputs.golden.parts),
                     "golden_samples": len(inputs.golden.label)},
        checks=checks, sessions=sessions, signature=dict(bundle.signature), strict=cfg.strict,
        notes=inputs.notes)


def model_checks(inputs: Inputs, bundle: Bundle, provider: str, variants: list[str],
                 emit: Any) -> list[CheckResult]:
    """The checks of one provider beyond its variants: the sampler's (an iterative family) and
    the ORT-format evaluator and denoisers (a bundle exported with --ort-format)."""
    rows: list[CheckResult] = []
    if bundle.sampler:
        rows += sampler_checks(inputs.cfg, bundle, provider, variants, inputs.reference)
        emit(f"{provider}/sampler: per-step parity of "
             f"{', '.join(r.variant for r in rows if r.check == 'trajectory')}")
    if has_ort(bundle, provider):
        rows += model_ort_checks(inputs.cfg, bundle, provider, inputs.golden)
    elif bundle.ort_format:
        inputs.notes.append(f"{provider} reads ONNX: the bundle's .ort files are checked on "
                            f"{' and '.join(ORT_PROVIDERS)} only")
    return rows


def make_inputs(cfg: VerifyConfig, bundle: Bundle, emit: Any) -> Inputs:
    """The golden and fresh cases, the PyTorch reference and the evaluator's digits for every
    reference image."""
    inputs = Inputs(cfg, golden_case(bundle), fresh_cases(bundle, cfg), {})
    inputs.reference = pytorch_reference(bundle, inputs.fresh)
    if inputs.reference["status"] != "used":
        inputs.notes.append(f"PyTorch comparison skipped: {inputs.reference['reason']}")
    else:
        emit(f"PyTorch reference from {inputs.reference['path']} at batch sizes "
             f"{', '.join(str(b) for b in cfg.batches)}")
    if bundle.evaluator_file is not None:
        inputs.evaluator = make_session(bundle.evaluator_bytes(), ProviderSpec("cpu"),
                                        name=str(bundle.evaluator_path))
        inputs.ref_preds = {c.name: predict(inputs.evaluator, c.reference)
                            for c in inputs.cases if c.reference is not None}
    else:
        inputs.notes.append("the bundle has no evaluator.onnx: label agreement is not measured "
                            "(export with --evaluator)")
    return inputs


def open_pair(inputs: Inputs, bundle: Bundle, provider: str, variant: str, emit: Any) -> Pair:
    """The session of ``variant`` on ``provider``, made from the model's checked bytes (read
    once), with the tolerance that applies to it."""
    cfg = inputs.cfg
    precision = bundle.variants[variant].get("precision", variant)
    batch_sizes = sorted({b - a for a, b in inputs.golden.parts} | set(cfg.batches))
    spec = spec_for(provider, precision,
                    batch_range=(batch_sizes[0], batch_sizes[-1], batch_sizes[-1]),
                    trt_cache_dir=Path(cfg.trt_cache or bundle.root / "trt_cache"),
                    deterministic=cfg.deterministic)
    path = bundle.model_path(variant, provider)
    model = bundle.model_bytes(variant, provider)  # read once, sha256 checked
    emit(f"{provider}/{variant}: creating the session ({path.name})")
    t0 = time.perf_counter()
    session = make_session(model, spec, name=str(path))
    return Pair(provider, variant, precision,
                tolerance_for(cfg, precision, provider, sampler=bool(bundle.sampler)), spec,
                path, model, session, created_s=time.perf_counter() - t0)


def check_pair(pair: Pair, inputs: Inputs) -> tuple[list[CheckResult], dict[str, Any]]:
    """Every check of one (provider, variant) on its session: golden, pytorch@B, labels,
    determinism, placement. Returns the rows and the session's provider truth."""
    p, v, cfg = pair.provider, pair.variant, inputs.cfg
    outputs = {c.name: run_case(pair.session, c) for c in inputs.cases}
    rows = [compare_check(p, v, inputs.golden, outputs[inputs.golden.name], pair.tol)]
    for case in inputs.fresh:
        if case.reference is None:
            rows.append(CheckResult(p, v, case.name, "skip",
                                    message="no PyTorch reference (see the notes)"))
        else:
            rows.append(compare_check(p, v, case, outputs[case.name], pair.tol))
    if inputs.evaluator is not None:
        rows.append(labels_check(p, v, pair.precision, cfg, inputs.cases, outputs,
                                 inputs.evaluator, inputs.ref_preds))
    else:
        rows.append(CheckResult(p, v, "labels", "skip",
                                message="the bundle has no evaluator.onnx"))
    rows.append(determinism_check(p, v, pair.session, inputs.fresh,
                                  {c.name: outputs[c.name] for c in inputs.fresh}, cfg.repeats))
    placement, truth = placement_check(p, v, pair.path, pair.spec, pair.session,
                                       inputs.fresh[0], pair.model)
    rows.append(placement)
    truth["session_created_s"] = pair.created_s
    return rows, truth
