"""``edgegen eval``: hallucination, FID, diversity and the guard, per deployed variant."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from edgegen.cli.common import (
    console,
    csv_option,
    err_console,
    errors_to_exit,
    progress_display,
    saved,
)
from edgegen.core.errors import CheckFailed, ConfigError
from edgegen.core.fileio import check_output_file
from edgegen.quality.eval_report import (
    COST_COLUMNS,
    GUARD_COLUMNS,
    SAMPLER_COLUMNS,
    SWEEP_COLUMNS,
    TEACHER_COLUMNS,
    TERMINAL_COLUMNS,
    cost_rows,
    guard_row,
    sampler_row,
    sizing_line,
    summary_row,
    sweep_row,
    teacher_row,
)
from edgegen.quality.evaluate import evaluate
from edgegen.quality.results import EvalConfig, QualityReport

X = EvalConfig()


def _table(title: str, columns: tuple[str, ...], rows: list[list[str]]) -> Table:
    table = Table(title=title, title_justify="left")
    for col in columns:
        table.add_column(col, overflow="fold")  # a narrow terminal wraps, never hides, numbers
    for row in rows:
        table.add_row(*row)
    return table


def _render(report: QualityReport) -> None:
    console.print(_table(f"{report.bundle} — {report.samples:,} samples per variant, provider "
                         f"{report.provider}, Δ vs {report.reference}", TERMINAL_COLUMNS,
                         [summary_row(v, TERMINAL_COLUMNS) for v in report.variants]))
    if report.teacher:
        console.print(_table(f"against the teacher {report.teacher['bundle']} (same latents, "
                             "judged by the same evaluator)", TEACHER_COLUMNS,
                             [teacher_row(v) for v in report.variants if v.vs_teacher]))
        console.print(_table("cost per image", COST_COLUMNS, cost_rows(report)))
    if any(v.guard for v in report.variants):
        console.print(_table("guard (evaluator-accepted resampling)", GUARD_COLUMNS,
                             [guard_row(v) for v in report.variants if v.guard]))
    if report.truncation:
        console.print(_table(f"truncation sweep on {report.truncation[0]['variant']} "
                             f"({report.truncation[0]['samples']:,} samples per psi)",
                             SWEEP_COLUMNS, [sweep_row(r) for r in report.truncation]))
    if report.sampler_sweep:
        console.print(_table(f"sampler sweep — guidance is this family's control knob "
                             f"({report.sampler_sweep[0]['samples']:,} samples per setting)",
                             SAMPLER_COLUMNS, [sampler_row(r) for r in report.sampler_sweep]))
    floor = report.variants[0].fid
    console.print(f"evaluator on held-out real digits: {report.evaluator['heldout_accuracy']:.2%}"
                  f"; referee (k-NN, independent): {report.referee['heldout_accuracy']:.2%}; "
                  f"FID counts {floor['n_generated']:,} vs {floor['n_real']:,}", highlight=False)
    if report.sizing:
        console.print(f"sample count: {sizing_line(report)}".replace("**", ""), highlight=False)
    for t in report.targets:
        if not t["met"]:
            console.print(f"target not met: {t['variant']} {t['what']} {t['target']}",
                          highlight=False)
    for note in report.notes:
        console.print(f"note: {escape(note)}", highlight=False)
    for warning in report.warnings:
        err_console.print(f"[yellow]warning:[/] {escape(warning)}", highlight=False)


def _sweep(values: list[str] | None) -> tuple[tuple[str, tuple[float, ...]], ...]:
    """``["steps=1,2,4", "guidance=1,2"]`` -> ``(("steps", (1.0, 2.0, 4.0)), ...)``."""
    out = []
    for item in values or []:
        key, sep, rest = item.partition("=")
        if not sep:
            raise ConfigError(f"--sweep takes KEY=V1,V2,... (steps or guidance), got {item!r}; "
                              "e.g. --sweep steps=1,2,4,8,16 --sweep guidance=1,1.5,2,3")
        out.append((key.strip(), csv_option(rest, f"--sweep {key.strip()}", float)))
    return tuple(out)


def eval_command(
    bundle: Path = typer.Argument(..., help="Bundle folder made by `edgegen export`."),
    samples: int = typer.Option(None, "--samples", "-n",
                                help="Samples per variant (labels balanced), fixed; default: "
                                     "sized by --ci-half-width."),
    ci_half_width: float = typer.Option(X.ci_half_width, "--ci-half-width",
                                        help="Without --samples: draw rounds until every "
                                             "fidelity (and teacher agreement) 95% Wilson "
                                             "interval is at most this half-width (a share: "
                                             "0.003 = ±0.3 pp)."),
    min_samples: int = typer.Option(X.min_samples, "--min-samples",
                                    help="Without --samples: the floor, and the round size."),
    max_samples: int = typer.Option(X.max_samples, "--max-samples",
                                    help="Without --samples: the cap."),
    teacher: Path = typer.Option(None, "--teacher",
                                 help="A teacher bundle (same z_dim, labels, image shape and "
                                      "evaluator file): agreement, pixel and feature distance "
                                      "to its images for the same (z, label)."),
    min_agreement: float = typer.Option(None, "--min-agreement",
                                        help="Gate: exit 1 when a variant agrees with the "
                                             "teacher (same evaluator label) on less than this "
                                             "share of samples (e.g. 0.99)."),
    provider: str = typer.Option(X.provider, "--provider",
                                 help="Where the generator variants run: cpu, cuda, tensorrt, "
                                      "tensorrt-rtx, openvino."),
    precision: str = typer.Option(None, "--precision",
                                  help="Comma-separated ONNX variants (default: all in the "
                                       "bundle); PyTorch is added when its checkpoint is there."),
    no_torch: bool = typer.Option(False, "--no-torch", help="Skip the PyTorch reference."),
    seed: int = typer.Option(X.seed, "--seed", help="Seed of the portable latents."),
    psi: float = typer.Option(None, "--psi", help="Truncation of the evaluated variants "
                                                  "(default: none)."),
    truncation: str = typer.Option(",".join(f"{p:g}" for p in X.truncation), "--truncation",
                                   help="psi values of the control-knob sweep ('' to skip)."),
    sweep_samples: int = typer.Option(X.sweep_samples, "--sweep-samples",
                                      help="Samples per psi in the sweep."),
    min_fidelity: float = typer.Option(None, "--min-fidelity",
                                       help="Gate: exit 1 when a variant's fidelity is below "
                                            "this share (e.g. 0.97)."),
    max_fid: float = typer.Option(None, "--max-fid",
                                  help="Gate: exit 1 when a variant's FID is above this."),
    min_diversity: float = typer.Option(None, "--min-diversity",
                                        help="Gate: exit 1 when a label's diversity ratio "
                                             "(generated / real mean pairwise distance, the "
                                             "lower of evaluator features and pixels; ~0 = "
                                             "mode collapse) is below this, e.g. 0.5."),
    sweep: list[str] = typer.Option(None, "--sweep",
                                    help="Iterative families (cflow): sampler settings to "
                                         "sweep, every combination; repeatable: --sweep "
                                         "steps=1,2,4,8,16 --sweep guidance=1,1.5,2,3."),
    no_guard: bool = typer.Option(False, "--no-guard", help="Skip the guard measurement."),
    out: Path = typer.Option(X.out, "--out", "-o", help="Report folder (markdown, JSON, PNG)."),
    json_path: Path = typer.Option(None, "--json", help="Also write the JSON report here."),
    data_dir: Path = typer.Option(None, "--data-dir", envvar="EDGEGEN_DATA_DIR",
                                  help="Folder of MNIST IDX files, or of one sub-folder of "
                                       "images per class (default: fallbacks)."),
) -> None:
    """Measure label fidelity, FID, diversity, the truncation knob and the guard of every
    variant of a bundle (and, with --teacher, its agreement with a teacher); exit 1 when a
    gate fails."""
    with errors_to_exit():
        if json_path is not None:  # before the work (the --out folder: in evaluate)
            check_output_file(json_path, "--json")
        cfg = EvalConfig(
            bundle=bundle, samples=samples, ci_half_width=ci_half_width,
            min_samples=min_samples, max_samples=max_samples, teacher=teacher,
            min_agreement=min_agreement, provider=provider,
            precisions=csv_option(precision, "--precision") or None, torch=not no_torch,
            seed=seed, psi=psi, truncation=csv_option(truncation, "--truncation", float),
            sweep_samples=sweep_samples, sweep=_sweep(sweep), min_fidelity=min_fidelity,
            max_fid=max_fid,
            min_diversity=min_diversity, guard=not no_guard, out=out, data_dir=data_dir)
        with progress_display("eval") as shown:
            report = evaluate(cfg, shown)
        _render(report)
        saved(report, out, json_path)
        if not report.passed:
            raise CheckFailed("; ".join(report.failures))
        if any(v is not None for v in report.gates.values()):
            console.print("[bold green]gates passed[/]")


def register(app: typer.Typer) -> None:
    """Add the command to ``app``."""
    app.command("eval")(eval_command)
