"""``edgegen verify``: parity of ONNX Runtime against PyTorch and the goldens, as a CI gate."""

from __future__ import annotations

import inspect
import math
from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from edgegen.cli.common import console, csv_option, errors_to_exit, progress_display
from edgegen.core.errors import CheckFailed
from edgegen.core.fileio import check_output_dir, check_output_file, save_report
from edgegen.export.verify import CheckResult, ParityReport, VerifyConfig, verify

X = VerifyConfig()


def _tolerance_help() -> str:
    tols = ", ".join(f"{k} {v.atol:g}/{v.rtol:g}" for k, v in X.tolerances.items())
    agree = ", ".join(f"{k} {v:.0%}" for k, v in X.min_agreement.items())
    return (f"Tolerance rule: an element passes when |ort - ref| <= atol + rtol * |ref| "
            f"(numpy.isclose); ref is the golden output or PyTorch float32 on CPU. Defaults "
            f"(atol/rtol): {tols}. CUDA and TensorRT sessions run with TF32 off where ONNX "
            f"Runtime allows it (TensorRT-RTX has no such switch: fp16's tolerance). Label "
            f"agreement needed: {agree}.")


def verify_command(
    bundle: Path = typer.Argument(..., help="Bundle folder made by `edgegen export`."),
    provider: str = typer.Option(",".join(X.providers), "--provider", "-p",
                                 help="Comma-separated: cpu, cuda, tensorrt, tensorrt-rtx, "
                                      "openvino. An "
                                      "unavailable provider is an error (exit 2), never a CPU "
                                      "run."),
    precision: str = typer.Option(None, "--precision",
                                  help="Comma-separated variants: fp32, fp16, int8 (default: "
                                       "every variant in the bundle)."),
    atol: float = typer.Option(None, "--atol", help="Absolute tolerance for every variant "
                                                     "(default: per precision, see above)."),
    rtol: float = typer.Option(None, "--rtol", help="Relative tolerance for every variant "
                                                     "(default: per precision, see above)."),
    batch: str = typer.Option(",".join(str(b) for b in X.batches), "--batch",
                              help="Batch sizes of the fresh inputs run against PyTorch."),
    repeats: int = typer.Option(X.repeats, "--repeats",
                                help="Runs of the same inputs that must be bitwise identical."),
    seed: int = typer.Option(X.seed, "--seed", help="Seed of the fresh portable latents."),
    deterministic: bool = typer.Option(X.deterministic, "--deterministic",
                                       help="Sessions made for bitwise repeatable GPU "
                                            "results (cuDNN's fixed default convolution "
                                            "algorithm, use_deterministic_compute), as a "
                                            "deployment that needs them should be."),
    json_path: Path = typer.Option(None, "--json", help="Write the full report (every number) "
                                                        "to this JSON file."),
    trt_cache: Path = typer.Option(None, "--trt-cache",
                                   help="TensorRT engine and timing cache folder (default: "
                                        "<bundle>/trt_cache)."),
    public_key: Path = typer.Option(None, "--public-key",
                                    help="PEM public key: the bundle must carry a bundle.sig by "
                                         "it over exactly its files (exit 2 when unsigned or "
                                         "different). Without it the report says unsigned."),
    strict: bool = typer.Option(X.strict, "--strict",
                                help="A skipped check (no PyTorch reference, no evaluator, "
                                     "signature not checked) is a failure (exit 1)."),
) -> None:
    """Check that ONNX Runtime reproduces the goldens and PyTorch on a provider, keeps the digit
    the evaluator sees, and is bitwise deterministic. Exit 0: all pass; 1: a parity check
    failed (or, with --strict, was skipped); 2: bad usage or a tampered, incomplete, unsigned
    (with --public-key) or differently signed bundle.
    """
    with errors_to_exit():
        if json_path is not None:  # before any check runs: a report is never computed in vain
            check_output_file(json_path, "--json")
        if trt_cache is not None:
            check_output_dir(trt_cache, "--trt-cache")
        cfg = VerifyConfig(bundle=bundle, providers=csv_option(provider, "--provider"),
                           atol=atol, rtol=rtol,
                           precisions=csv_option(precision, "--precision") or None,
                           batches=csv_option(batch, "--batch", int), repeats=repeats,
                           seed=seed, trt_cache=trt_cache, deterministic=deterministic,
                           public_key=public_key, strict=strict)
        with progress_display("verify") as shown:
            report = verify(cfg, shown)
        render(report)
        if json_path is not None:
            save_report(json_path, report.to_json() + "\n")
            console.print(f"report written to {json_path}", highlight=False, markup=False)
        if not report.passed:
            names = ", ".join(c.name for c in report.failures)
            if report.strict:
                raise CheckFailed(f"{len(report.failures)} check(s) failed or were skipped "
                                  f"under --strict: {names} (reasons above)")
            raise CheckFailed(f"parity failed in {len(report.failures)} check(s): {names} "
                              "(numbers above)")


verify_command.__doc__ = f"{inspect.cleandoc(verify_command.__doc__ or '')}\n\n{_tolerance_help()}"


def _g(value: float) -> str:
    return "inf" if math.isinf(value) else "nan" if math.isnan(value) else f"{value:.2e}"


def _short(text: str) -> str:
    return text.replace("ExecutionProvider", "").replace(", rtol", "\nrtol")


def _numbers(c: CheckResult, per_line: int) -> str:
    """The key numbers of a row, ``per_line`` items per line (narrow terminals get one)."""
    s, d = c.stats, c.details
    if c.check == "trajectory" and d.get("per_step"):
        items = [f"{d['steps']} steps, guidance {d['guidance']:g}",
                 "max |Δ| per step " + " → ".join(_g(p["max_abs"]) for p in d["per_step"]),
                 f"NaN/inf {d['non_finite_total']}"]
    elif s is not None:
        psnr = "inf" if math.isinf(s.psnr_db) else f"{s.psnr_db:.1f}"
        items = [f"max |Δ| {_g(s.max_abs)}", f"p99 |Δ| {_g(s.p99_abs)}",
                 f"p99 rel {_g(s.p99_rel)}", f"PSNR {psnr} dB", f"cosine {s.cosine:.7f}",
                 f"{s.out_of_tolerance:,}/{s.elements:,} out",
                 f"min atol {_g(s.min_passing_atol)}"]
    elif c.check == "labels" and "agreement" in d:
        items = [f"{d['agreeing']}/{d['samples']} agree ({d['agreement']:.2%})",
                 f"fidelity {d['fidelity_candidate']:.1%} (ref {d['fidelity_reference']:.1%})"]
    elif c.check == "determinism":
        worst = d["max_abs_between_runs"]
        items = ["bitwise identical" if worst == 0 else f"max |Δ| between runs {_g(worst)}"]
    elif c.check == "placement":
        counts = ", ".join(f"{_short(k)} {v}" for k, v in d["node_counts"].items())
        items = [f"nodes: {counts}", f"session: {_short(', '.join(d['session_providers']))}"]
    else:
        items = [c.message]
    return "\n".join("  ".join(items[i:i + per_line]) for i in range(0, len(items), per_line))


def render(report: ParityReport) -> None:
    """A table, one row per provider × variant × check; then failures, label flips, notes."""
    per_line = 3 if console.width >= 120 else 2 if console.width >= 100 else 1
    table = Table(title=f"edgegen verify {report.bundle}", show_lines=True)
    table.add_column("target", overflow="fold", max_width=14)
    table.add_column("check", overflow="fold")
    table.add_column("numbers", overflow="fold")
    table.add_column("limit", overflow="fold", max_width=18)
    table.add_column("result")
    style = {"pass": "[green]PASS[/]", "fail": "[bold red]FAIL[/]",
             "skip": "[bold red]SKIP (--strict)[/]" if report.strict else "[yellow]SKIP[/]"}
    for c in report.checks:
        table.add_row(c.target, c.check, escape(_numbers(c, per_line)),
                      escape(_short(c.limit)),
                      style[c.status])
    console.print(table)
    _trajectories(report)
    console.print(f"tolerance rule: {report.tolerance_rule}; {report.relative_error}",
                  highlight=False, markup=False)
    for c in report.checks:
        flips = c.details.get("disagreements") if c.check == "labels" else None
        if flips:
            console.print(f"{c.provider}/{c.variant}: {c.details['disagreements_total']} "
                          "sample(s) change digit:", highlight=False, markup=False)
            for f in flips[:10]:
                console.print(f"  {f['source']}: seed {f['seed']} sample {f['sample']} label "
                              f"{f['label']}: reference {f['reference_pred']}, onnxruntime "
                              f"{f['candidate_pred']}", highlight=False, markup=False)
    for c in report.failures:
        word = "FAIL" if c.status == "fail" else "SKIPPED (--strict)"
        console.print(f"[bold red]{word}[/] {c.name}: {escape(c.message)}", highlight=False)
    for note in report.notes:
        console.print(f"note: {note}", highlight=False, markup=False)
    n_pass = sum(c.status == "pass" for c in report.checks)
    n_fail = sum(c.status == "fail" for c in report.checks)
    n_skip = sum(c.status == "skip" for c in report.checks)
    verdict = "[green]PASS[/]" if report.passed else "[bold red]FAIL[/]"
    sig = report.signature.get("status", "not checked")
    console.print(f"{verdict}: {n_pass} passed, {n_fail} failed, {n_skip} skipped"
                  f"{' (failures under --strict)' if report.strict and n_skip else ''}; "
                  f"signature: {sig}", highlight=False)


def _trajectories(report: ParityReport) -> None:
    """The sampler's per-step parity: how the error grows with the step count."""
    rows = [c for c in report.checks if c.check == "trajectory" and c.details.get("per_step")]
    if not rows:
        return
    table = Table(title="sampler: ONNX Runtime loop vs PyTorch loop, state after each step")
    for col in ("target", "step", "t", "max |Δ|", "mean |Δ|", "p99 |Δ|", "NaN/inf"):
        table.add_column(col)
    for c in rows:
        for p in c.details["per_step"]:
            table.add_row(f"{c.provider}/{c.variant}", str(p["step"]), f"{p['t']:.4g}",
                          _g(p["max_abs"]), _g(p["mean_abs"]), _g(p["p99_abs"]),
                          str(p["non_finite"]))
    console.print(table)


def register(app: typer.Typer) -> None:
    """Add the command to ``app``."""
    app.command("verify")(verify_command)
