"""``edgegen distill TEACHER_RUN --out RUN``: a one-call student of an iterative teacher (one
process, or many through torchrun)."""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import replace
from pathlib import Path

import typer

from edgegen.cli.common import console, errors_to_exit, progress_display
from edgegen.cli.train import NPROC_HELP, RESTARTS_HELP, launch
from edgegen.core.errors import ConfigError
from edgegen.training.checkpoint import read_info
from edgegen.training.distill import (
    DEFAULT_STEPS,
    METHODS,
    NEW_RUN,
    STUDENTS,
    DistillConfig,
    check_config,
    distill,
)
from edgegen.training.distributed import Launch
from edgegen.training.launch import check_launch

D = DistillConfig()


def distill_command(
    ctx: typer.Context,
    teacher: Path = typer.Argument(..., help="The teacher's run folder (edgegen train --arch "
                                             "cflow).", show_default=False),
    out: Path = typer.Option(D.out, "--out", "-o", help="The student's run folder."),
    student: str = typer.Option(None, "--student",
                                help=f"{' | '.join(STUDENTS)}: 'same' is the teacher's own "
                                     "network, initialised from it, called once; 'unet' that "
                                     "shape at --width, fresh; the others are the single-pass "
                                     "families taking the teacher's noise (default "
                                     f"{NEW_RUN['student']})."),
    method: str = typer.Option(None, "--method",
                               help=f"{' | '.join(METHODS)} (default {NEW_RUN['method']}; "
                                    "docs/distillation.md compares them)."),
    loss: str = typer.Option(None, "--loss", help="The regression loss: l1 or l2 (default "
                                                  f"{NEW_RUN['loss']})."),
    steps: int = typer.Option(None, "--steps", help="The teacher's sampler: Euler steps "
                                                    f"(default {NEW_RUN['steps']})."),
    guidance: float = typer.Option(None, "--guidance",
                                   help="The teacher's classifier-free guidance, 1 = none "
                                        f"(default {NEW_RUN['guidance']})."),
    pairs: int = typer.Option(None, "--pairs", help="Teacher pairs (noise, label -> teacher "
                                                    f"image) to learn from (default "
                                                    f"{NEW_RUN['pairs']:,})."),
    epochs: int = typer.Option(None, "--epochs", help="Passes over the pairs."),
    max_steps: int = typer.Option(None, "--max-steps",
                                  help=f"Stop after this many steps (default {DEFAULT_STEPS:,} "
                                       "when no budget is given)."),
    max_minutes: float = typer.Option(None, "--max-minutes",
                                      help="Stop after this much time, the teacher pairs "
                                           "included (summed over resumes; agreed across "
                                           "processes)."),
    batch_size: int = typer.Option(D.batch_size, "--batch-size",
                                   help="Global batch: split evenly over the processes."),
    lr: float = typer.Option(None, "--lr", help="The student's learning rate (default per "
                                                "student)."),
    adv_weight: float = typer.Option(D.adv_weight, "--adv-weight",
                                     help="regress-adv: weight of the adversarial term."),
    width: int = typer.Option(None, "--width", help="Single-pass students: base channels / "
                                                    "hidden width (default per family)."),
    seed: int = typer.Option(D.seed, "--seed", help="Same seed, machine, threads and steps "
                                                    "give the same weights."),
    device: str = typer.Option(D.device, "--device", help="cpu or cuda."),
    data_dir: Path = typer.Option(None, "--data-dir", envvar="EDGEGEN_DATA_DIR",
                                  help="regress-adv: the real digits for its critic (default: "
                                       "the teacher's training data)."),
    evaluator: Path = typer.Option(None, "--evaluator",
                                   help="Evaluator run for the fidelity report (default: "
                                        "<out>/../evaluator if present); never a training "
                                        "signal."),
    threads: int = typer.Option(None, "--threads", help="torch threads per process."),
    checkpoint_every: int = typer.Option(None, "--checkpoint-every",
                                         help="Also checkpoint every this many steps."),
    resume: bool = typer.Option(False, "--resume", help="Continue the student in --out exactly "
                                                        "where it stopped."),
    force: bool = typer.Option(False, "--force", help="Replace an existing run in --out."),
    nproc_per_node: int = typer.Option(None, "--nproc-per-node", help=NPROC_HELP),
    max_restarts: int = typer.Option(None, "--max-restarts", help=RESTARTS_HELP),
) -> None:
    """Distil an iterative teacher (cflow) into a student that draws an image in one network
    call; the student's run exports, verifies, evaluates and serves like any other."""
    cfg = DistillConfig(teacher=teacher, out=out, student=student, method=method, loss=loss,
                        steps=steps, guidance=guidance, pairs=pairs, epochs=epochs,
                        max_steps=max_steps, max_minutes=max_minutes, batch_size=batch_size,
                        lr=lr, adv_weight=adv_weight, width=width, seed=seed, device=device,
                        data_dir=data_dir, evaluator=evaluator, threads=threads,
                        checkpoint_every=checkpoint_every, resume=resume, force=force)
    hint = f"edgegen distill {teacher} --out {out} --resume"
    with errors_to_exit():
        main = Launch.from_env().rank == 0
        if nproc_per_node is None and max_restarts is not None:
            raise ConfigError("--max-restarts needs --nproc-per-node (or run torchrun "
                              "--max-restarts K -m edgegen distill ... yourself)")
        if nproc_per_node is not None:
            check_launch(nproc_per_node, max_restarts or 0)
            # a resumed run keeps its global batch: that is the one that must divide
            stored = read_info(out)["train"]["batch_size"] if resume else batch_size
            check_config(replace(cfg, batch_size=stored), nproc_per_node)
    if nproc_per_node is not None:
        launch(ctx, "distill", nproc_per_node, max_restarts or 0, out, arguments=(str(teacher),),
               resume_hint=hint)
    with errors_to_exit(), (progress_display("distill") if main else nullcontext(None)) as shown:
        result = distill(cfg, shown)
    if not main:
        return
    console.print(f"[green]done[/]: {result.student} student ({result.arch}, {result.method}) — "
                  f"{result.step} steps, {result.images_per_s:.0f} img/s, stopped by "
                  f"{result.stopped_by}; teacher pairs {result.pairs_s:.0f} s, training "
                  f"{result.elapsed_s:.0f} s; checkpoint {result.checkpoint}")
    if result.fidelity:
        f = result.fidelity
        console.print(f"label fidelity: [bold]{f['fidelity']:.2%}[/] (95% CI "
                      f"{f['ci95'][0]:.2%}–{f['ci95'][1]:.2%}, {f['samples']} samples)")
    console.print(f"next: edgegen export {out} --opset 17 --out bundles/{Path(out).name}")


def register(app: typer.Typer) -> None:
    app.command("distill")(distill_command)
