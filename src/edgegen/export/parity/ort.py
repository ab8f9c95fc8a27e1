"""Parity of a bundle's ORT-format models (``edgegen export --ort-format``), checked whenever the
bundle has them, on ONNX Runtime providers (cpu, cuda; OpenVINO and TensorRT read ONNX):

* ``ort-golden`` — the variant's ``.ort`` on every golden input against the golden outputs, held
  to the same tolerance as its ``.onnx`` (fp32's for the fp32 model);
* ``ort-onnx`` — the ``.ort`` against the variant's ``.onnx`` on the same provider, on the same
  inputs, held to the same tolerance (fp32's for fp32 models): the conversion only optimizes the
  graph, so anything beyond rounding is a broken conversion (fp16 rounds differently: see
  ``edgegen.export.ort_format.tolerance``);
* ``ort-onnx`` for ``evaluator.ort`` (its logits) and each ``denoiser*.ort`` (one velocity call
  on the golden latents at t = 0.5).

Every ``.ort`` is read through ``Bundle.read`` (sha256 checked), like the ONNX models.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edgegen.export.parity.cases import Case, run_case
from edgegen.export.parity.checks import compare_check
from edgegen.export.parity.config import VerifyConfig, tolerance_for
from edgegen.export.parity.metrics import Tolerance, error_stats
from edgegen.export.parity.report import CheckResult
from edgegen.runtime.bundle import Bundle
from edgegen.runtime.providers import ProviderSpec, make_session, spec_for

PROVIDERS = ("cpu", "cuda")  # the providers that read ORT-format models here


def has_ort(bundle: Bundle, provider: str) -> bool:
    return bool(bundle.ort_format) and provider in PROVIDERS


def variant_ort_checks(bundle: Bundle, provider: str, variant: str, tol: Tolerance,
                       spec: ProviderSpec, onnx_session: Any, golden: Case) -> list[CheckResult]:
    """``ort-golden`` and ``ort-onnx`` of one variant's ``.ort`` file, both held to the
    variant's tolerance ``tol``."""
    name = bundle.ort_file(bundle.variant_file(variant))
    session = make_session(bundle.read(name), spec, name=str(bundle.path(name)))
    got = run_case(session, golden)
    rows = [_renamed(compare_check(provider, variant, golden, got, tol), "ort-golden", name)]
    onnx_case = Case(golden.name, golden.z, golden.label, golden.seeds, golden.index,
                     run_case(onnx_session, golden), golden.parts)
    rows.append(_renamed(compare_check(provider, variant, onnx_case, got, tol), "ort-onnx",
                         name, reference=bundle.variant_file(variant)))
    return rows


def model_ort_checks(cfg: VerifyConfig, bundle: Bundle, provider: str, golden: Case
                     ) -> list[CheckResult]:
    """``ort-onnx`` of ``evaluator.ort`` and of every ``denoiser*.ort``: the same call on the
    ``.ort`` and on its ``.onnx``, on ``provider``, at the precision's (one-call) tolerance."""
    fp32 = tolerance_for(cfg, "fp32", provider)
    rows = []
    if bundle.evaluator_file is not None:
        feeds = {"image": golden.reference.astype(np.float32)}  # [N, C, H, W] golden images
        rows.append(_pair_check(cfg, bundle, provider, "evaluator", bundle.evaluator_file,
                                feeds, fp32))
    if bundle.sampler:
        c, h, w = bundle.image_shape
        n = len(golden.label)
        feeds = {"x": golden.z.reshape(n, c, h, w), "t": np.full(n, 0.5, np.float32),
                 "label": golden.label}
        for prec in bundle.sampler["denoiser"]["variants"]:
            rows.append(_pair_check(cfg, bundle, provider, f"denoiser-{prec}",
                                    bundle.denoiser_file(prec), feeds,
                                    tolerance_for(cfg, prec, provider), prec))
    return rows


def _pair_check(cfg: VerifyConfig, bundle: Bundle, provider: str, target: str, onnx_file: str,
                feeds: dict[str, np.ndarray], tol: Tolerance, precision: str = "fp32"
                ) -> CheckResult:
    """The first output of ``onnx_file``'s ``.ort`` against the ``.onnx``'s on ``feeds``."""
    spec = spec_for(provider, precision, deterministic=cfg.deterministic)
    name = bundle.ort_file(onnx_file)
    want = make_session(bundle.read(onnx_file), spec, name=str(bundle.path(onnx_file))
                        ).run(None, feeds)[0]
    got = make_session(bundle.read(name), spec, name=str(bundle.path(name))).run(None, feeds)[0]
    st = error_stats(got, want, tol.atol, tol.rtol, data_range=float(np.ptp(want)) or 1.0)
    return CheckResult(provider, target, "ort-onnx", "pass" if st.passed else "fail",
                       message="" if st.passed else (
                           f"{name} differs from {onnx_file}: {st.out_of_tolerance:,} of "
                           f"{st.elements:,} elements out of tolerance (max |Δ| "
                           f"{st.max_abs:.3g})"),
                       limit=f"atol {tol.atol:g}, rtol {tol.rtol:g} vs {onnx_file}", stats=st,
                       details={"file": name, "reference": onnx_file})


def _renamed(row: CheckResult, check: str, file: str, reference: str | None = None
             ) -> CheckResult:
    row.check = check
    row.details["file"] = file
    if reference is not None:
        row.details["reference"] = reference
        row.limit += f" vs {reference}"
    return row
