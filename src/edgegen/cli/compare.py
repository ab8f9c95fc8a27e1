"""``edgegen compare``: the family table — several bundles measured the same way."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from edgegen.benchmarks.compare import CompareConfig, CompareReport, compare
from edgegen.cli.common import (
    console,
    csv_option,
    err_console,
    errors_to_exit,
    progress_display,
    saved,
)
from edgegen.core.fileio import check_output_file

C = CompareConfig()


def _render(report: CompareReport) -> None:
    counts = sorted({r.samples for r in report.rows})
    count = f"{counts[0]:,}" if len(counts) == 1 else f"{counts[0]:,}–{counts[-1]:,}"
    table = Table(title=f"family table — {count} samples per bundle (fp32, "
                        f"{report.provider}), speed at this machine's load", title_justify="left")
    # a narrow terminal folds the numbers, never a family's name in the middle of a word
    words = max((len(w) for r in report.rows for w in r.family.split()), default=1)
    for i, col in enumerate(report.columns()):
        table.add_column(col, overflow="fold", min_width=words if i == 0 else None)
    for row in report.table():
        table.add_row(*(escape(c) for c in row))
    console.print(table)
    for note in report.notes:
        console.print(f"note: {escape(note)}", highlight=False)
    for warning in report.warnings:
        err_console.print(f"[yellow]warning:[/] {escape(warning)}", highlight=False)


def compare_command(
    bundles: list[Path] = typer.Argument(None, help="Bundle folders made by `edgegen export` "
                                                    "(any family)."),
    out: Path = typer.Option(C.out, "--out", "-o",
                             help="Report folder: report.md, report.json and one eval report "
                                  "per bundle."),
    samples: int = typer.Option(C.samples, "--samples", "-n",
                                help="Samples per bundle for fidelity, FID and diversity, "
                                     "fixed; default: sized by --ci-half-width."),
    ci_half_width: float = typer.Option(C.ci_half_width, "--ci-half-width",
                                        help="Without --samples: rounds until the fidelity "
                                             "(and agreement) 95% Wilson half-width is at most "
                                             "this share (0.003 = ±0.3 pp)."),
    min_samples: int = typer.Option(C.min_samples, "--min-samples",
                                    help="Without --samples: the floor, and the round size."),
    max_samples: int = typer.Option(C.max_samples, "--max-samples",
                                    help="Without --samples: the cap."),
    teacher: Path = typer.Option(None, "--teacher",
                                 help="A teacher bundle: its row first, and every student "
                                      "(same z_dim, labels, image shape and evaluator file) "
                                      "with its agreement with the teacher."),
    seed: int = typer.Option(C.seed, "--seed", help="Seed of the portable latents."),
    provider: str = typer.Option(C.provider, "--provider",
                                 help="Where the generators run: cpu, cuda, tensorrt."),
    batch: str = typer.Option(",".join(map(str, C.batches)), "--batch", "-b",
                              help="Batch sizes to time, comma-separated."),
    duration: float = typer.Option(C.duration_s, "--duration",
                                   help="Timed seconds per batch size."),
    threads: int = typer.Option(C.threads, "--threads",
                                help="ONNX Runtime threads when timing (0: usable cores)."),
    json_path: Path = typer.Option(None, "--json", help="Also write the JSON report here."),
    data_dir: Path = typer.Option(None, "--data-dir", envvar="EDGEGEN_DATA_DIR",
                                  help="Folder of MNIST IDX files, or of one sub-folder of "
                                       "images per class (the models' training data)."),
) -> None:
    """Measure several bundles the same way — params, calls and MFLOP per image, training
    minutes, fidelity (evaluator and referee), FID, diversity, CPU img/s, batch-1 ms and, with
    --teacher, each student's agreement with the teacher — and print the table."""
    with errors_to_exit():
        if json_path is not None:  # before the work
            check_output_file(json_path, "--json")
        cfg = CompareConfig(bundles=tuple(bundles or ()), out=out, samples=samples,
                            ci_half_width=ci_half_width, min_samples=min_samples,
                            max_samples=max_samples, teacher=teacher, seed=seed,
                            provider=provider, batches=csv_option(batch, "--batch", int),
                            duration_s=duration, threads=threads, data_dir=data_dir)
        with progress_display("compare") as shown:
            report = compare(cfg, shown)
        _render(report)
        saved(report, out, json_path)


def register(app: typer.Typer) -> None:
    """Add the command to ``app``."""
    app.command("compare")(compare_command)
