"""Parity of an iterative family's sampler (cflow), per provider and denoiser precision:

* ``trajectory`` — ``edgegen.runtime.sampler``'s loop over ``denoiser[.fp16|.int8].onnx``
  against PyTorch's loop (the same Euler steps and guidance, from the checkpoint), the state
  after every step compared, so the report shows how the error grows with the step count; any
  NaN or inf (an fp16 overflow) fails it. The final state is held to the precision's tolerance;
* ``loop`` (fp32) — the runtime loop over ``denoiser.onnx`` against ``model.onnx`` (the unrolled
  sampler) on the same inputs, held to ``edgegen.export.denoiser.LOOP_TOLERANCE``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgegen.export.parity.config import VerifyConfig, tolerance_for
from edgegen.export.parity.metrics import Tolerance, error_stats
from edgegen.export.parity.report import CheckResult
from edgegen.runtime.bundle import Bundle
from edgegen.runtime.providers import make_session, spec_for
from edgegen.runtime.sessions import run_generator
from edgegen.training.checkpoint import load_reference

REFERENCE = "PyTorch float32 on CPU, the same Euler loop (models.cflow.Generator.trajectory)"


@dataclass(frozen=True)
class SamplerInputs:
    """What every sampler check of one bundle runs: the inputs, the loop's settings and, when the
    checkpoint is there, PyTorch's state after every step."""

    z: np.ndarray  # float32 [n, z_dim]: the initial noise
    y: np.ndarray  # int64 [n]
    loop: dict[str, Any]  # steps, guidance, null_label, image_shape (runtime.sampler's keywords)
    grid: np.ndarray  # float32 [steps + 1]: the time grid
    ref_states: list[np.ndarray] | None  # [steps] x float32 [n, C, H, W]; None: no reference


def sampler_inputs(cfg: VerifyConfig, bundle: Bundle, reference: dict[str, Any]
                   ) -> SamplerInputs:
    """``cfg.trajectory_samples`` latents after the pytorch@B inputs in the seed's stream, and
    PyTorch's trajectory for them when ``reference`` (verify's) says the checkpoint is used."""
    from edgegen.runtime.latent import latent
    from edgegen.runtime.sampler import SamplerSpec, time_grid

    spec = SamplerSpec.from_manifest(bundle.manifest, bundle.root)
    n = cfg.trajectory_samples
    offset = sum(cfg.batches)
    z = latent(cfg.seed, n, bundle.z_dim, start=offset)
    y = (np.arange(offset, offset + n) % bundle.n_classes).astype(np.int64)
    ref_states = None
    if reference.get("status") == "used":
        import torch

        gen, _ = load_reference(bundle, Path(reference["path"]))
        with torch.inference_mode():
            ref_states = [s.numpy() for s in gen.trajectory(torch.from_numpy(z),
                                                            torch.from_numpy(y))]
    loop = {"steps": spec.steps, "guidance": spec.guidance, "null_label": spec.null_label,
            "image_shape": spec.image_shape}
    return SamplerInputs(z, y, loop, time_grid(spec.steps), ref_states)


def sampler_checks(cfg: VerifyConfig, bundle: Bundle, provider: str, variants: list[str],
                   reference: dict[str, Any]) -> list[CheckResult]:
    """``trajectory`` per denoiser precision and ``loop`` (fp32) for an iterative family."""
    from edgegen.runtime.sampler import trajectory

    inputs = sampler_inputs(cfg, bundle, reference)
    denoisers = bundle.sampler["denoiser"]["variants"] if bundle.sampler else {}
    precisions = list(dict.fromkeys(str(bundle.variants[v].get("precision", v))
                                    for v in variants))
    rows: list[CheckResult] = []
    for prec in (p for p in precisions if p in denoisers):
        tol = tolerance_for(cfg, prec, provider, sampler=True)
        session = make_session(bundle.denoiser_bytes(prec),
                               spec_for(provider, prec, deterministic=cfg.deterministic),
                               name=str(bundle.denoiser_path(prec)))
        states = trajectory(session, inputs.z, inputs.y, **inputs.loop)
        rows.append(trajectory_check(provider, f"denoiser-{prec}", states, inputs, tol))
        if prec == "fp32" and "fp32" in bundle.variants:
            rows.append(loop_check(cfg, bundle, provider, session, inputs))
    return rows


def trajectory_check(provider: str, name: str, states: list[np.ndarray],
                     inputs: SamplerInputs, tol: Tolerance) -> CheckResult:
    """The sampler's state after every step against PyTorch's; without a reference only NaN/inf
    is checked (a failure when there is any, else a skip)."""
    limit = f"final step atol {tol.atol:g}, rtol {tol.rtol:g}; no NaN/inf at any step"
    non_finite = [int(np.count_nonzero(~np.isfinite(s))) for s in states]
    if inputs.ref_states is None:
        return CheckResult(provider, name, "trajectory", "fail" if any(non_finite) else "skip",
                           limit=limit,
                           message=(f"NaN/inf in the sampler's states: {non_finite}"
                                    if any(non_finite) else "no PyTorch reference (see the "
                                    "notes); NaN/inf checked: none"),
                           details={"non_finite_per_step": non_finite})
    per_step = []
    for i, (got, ref) in enumerate(zip(states, inputs.ref_states)):
        st = error_stats(got, ref, tol.atol, tol.rtol)
        per_step.append({"step": i + 1, "t": float(inputs.grid[i + 1]), "max_abs": st.max_abs,
                         "mean_abs": st.mean_abs, "p99_abs": st.p99_abs,
                         "non_finite": non_finite[i]})
    final = error_stats(states[-1], inputs.ref_states[-1], tol.atol, tol.rtol)
    ok = final.passed and not any(non_finite)
    first = per_step[0]["max_abs"]
    msg = "" if ok else (
        f"NaN/inf in the sampler's states: {non_finite} per step" if any(non_finite)
        else f"final state: {final.out_of_tolerance:,} of {final.elements:,} elements "
             f"out of tolerance (max |Δ| {final.max_abs:.3g})")
    return CheckResult(
        provider, name, "trajectory", "pass" if ok else "fail", message=msg, limit=limit,
        stats=final, details={
            "samples": len(inputs.y), "steps": inputs.loop["steps"],
            "guidance": inputs.loop["guidance"], "per_step": per_step,
            "non_finite_total": int(sum(non_finite)),
            "growth_max_abs": (per_step[-1]["max_abs"] / first) if first > 0 else None,
            "reference": REFERENCE})


def loop_check(cfg: VerifyConfig, bundle: Bundle, provider: str, session: Any,
               inputs: SamplerInputs) -> CheckResult:
    """The runtime loop over the fp32 denoiser (``session``) against ``model.onnx``."""
    from edgegen.export.denoiser import LOOP_TOLERANCE
    from edgegen.runtime.sampler import sample

    unrolled = run_generator(make_session(bundle.model_bytes("fp32"),
                                          spec_for(provider, "fp32",
                                                   deterministic=cfg.deterministic)),
                             inputs.z, inputs.y)
    looped = sample(session, inputs.z, inputs.y, **inputs.loop)
    st = error_stats(looped, unrolled, LOOP_TOLERANCE, 0.0)
    return CheckResult(
        provider, "denoiser-fp32", "loop", "pass" if st.passed else "fail",
        limit=f"atol {LOOP_TOLERANCE:g} vs model.onnx", stats=st,
        message="" if st.passed else (f"the runtime loop differs from model.onnx by "
                                      f"{st.max_abs:.3g}"),
        details={"samples": len(inputs.y),
                 "reference": "model.onnx (fp32), the unrolled sampler"})
