"""``edgegen demo``: the whole chain on a small budget (the README's first command)."""

from __future__ import annotations

from pathlib import Path

import typer
from edgegen.cli.common import console, errors_to_exit, progress_display

from edgegen.evaluator import EvaluatorConfig, train_evaluator
from edgegen.train import TrainConfig, train


def demo_command(
    out: Path = typer.Option(Path("runs/demo"), "--out", "-o", help="Folder for everything "
                                                                     "the demo makes."),
    minutes: float = typer.Option(2.0, "--minutes", help="Generator training budget."),
    data_dir: Path = typer.Option(None, "--data-dir", envvar="EDGEGEN_DATA_DIR",
                                  help="Folder of MNIST IDX files (default: offline "
                                       "fallbacks)."),
    force: bool = typer.Option(False, "--force", help="Replace an earlier demo in --out."),
) -> None:
    """Train an evaluator and a generator on a small budget and report label fidelity."""
    with errors_to_exit():
        console.rule("1/2 train the evaluator (real digits only)")
        with progress_display("train-evaluator") as on_progress:
            ev = train_evaluator(EvaluatorConfig(out=out / "evaluator", epochs=4,
                                                 data_dir=data_dir, force=force), on_progress)
        console.print(f"evaluator held-out accuracy: [bold]{ev.heldout_accuracy:.2%}[/]")
        console.rule(f"2/2 train the generator ({minutes:g} min)")
        with progress_display("train") as on_progress:
            res = train(TrainConfig(out=out / "cdcgan", max_minutes=minutes,
                                    data_dir=data_dir, evaluator=out / "evaluator",
                                    force=force), on_progress)
        if res.fidelity:
            console.print(f"label fidelity: [bold]{res.fidelity['fidelity']:.2%}[/] "
                          f"({res.fidelity['samples']} samples)")


def register(app: typer.Typer) -> None:
    app.command("demo")(demo_command)
