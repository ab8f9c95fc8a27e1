"""Parity's check builders, one report row each (the sampler's are in ``parity.sampler``):

* ``compare_check`` — element-wise parity of one case's outputs against its reference
  (``golden``, ``pytorch@B``);
* ``labels_check`` — task-level parity: the evaluator's digit for each image equals the one for
  its reference image;
* ``determinism_check`` — the same inputs on one session give bitwise identical outputs;
* ``placement_check`` — the requested provider runs at least one node (never a silent CPU run);
* ``signature_check`` — the bundle's signature, verified or why not.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edgegen.export.parity.cases import Case, predict, run_case
from edgegen.export.parity.config import VerifyConfig
from edgegen.export.parity.metrics import Tolerance, error_stats, run_difference
from edgegen.export.parity.report import CheckResult
from edgegen.runtime.bundle import Bundle
from edgegen.runtime.providers import EP_NAMES, ProviderSpec, node_placement


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

