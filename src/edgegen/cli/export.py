"""``edgegen export``."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import typer
from rich.table import Table

from edgegen.cli.common import console, errors_to_exit, progress_display
from edgegen.core.errors import ConfigError
from edgegen.export.bundler import ExportConfig, export_bundle

X = ExportConfig()


def export_command(
    checkpoint: Path = typer.Argument(None, help="Run folder made by `edgegen train` (or use "
                                                 "--from-module / --from-onnx)."),
    out: Path = typer.Option(X.out, "--out", "-o", help="Bundle folder to create."),
    opset: int = typer.Option(X.opset, "--opset", help="Exact ONNX opset of every model."),
    precision: str = typer.Option(",".join(X.precisions), "--precision",
                                  help="Comma-separated variants: fp32, fp16, int8."),
    golden_sets: int = typer.Option(X.golden_sets, "--golden-sets",
                                    help="Golden test sets (10 samples each, every label)."),
    seed: int = typer.Option(X.seed, "--seed", help="Seed of the golden latents."),
    evaluator: Path = typer.Option(None, "--evaluator",
                                   help="Evaluator run to include (default: "
                                        "<run>/../evaluator if present)."),
    steps: int = typer.Option(None, "--steps",
                              help="cflow: Euler steps unrolled into model.onnx (default: the "
                                   "run's, 4)."),
    guidance: float = typer.Option(None, "--guidance",
                                   help="cflow: classifier-free guidance w unrolled into "
                                        "model.onnx; 1 = none (default: the run's, 2.0)."),
    optimize: bool = typer.Option(X.optimize.enabled, "--optimize/--no-optimize",
                                  help="Apply exact graph rewrites (ConvTranspose -> phase "
                                       "convolutions, ...), each checked against the "
                                       "unrewritten graph and the goldens."),
    force: bool = typer.Option(False, "--force",
                               help="Replace an existing bundle (only an edgegen bundle or an "
                                    "empty folder is ever replaced)."),
    sign_key: Path = typer.Option(None, "--sign-key",
                                  help="PEM elliptic-curve private key: sign the bundle "
                                       "(bundle.sig) before it is put in place."),
    ort_format: bool = typer.Option(X.ort_format, "--ort-format",
                                    help="Also write every ONNX model as an ORT-format .ort file "
                                         "(ONNX Runtime Mobile, minimal builds) and "
                                         "required_operators.config, each .ort checked against "
                                         "its .onnx."),
    from_module: str = typer.Option(None, "--from-module",
                                    help="Your generator: MODULE:FUNCTION returning a "
                                         "torch.nn.Module whose forward(z, label) returns images"
                                         " in [-1, 1]."),
    weights: Path = typer.Option(None, "--weights", help="--from-module: safetensors weights "
                                                         "(the module's state_dict)."),
    from_onnx: Path = typer.Option(None, "--from-onnx",
                                   help="An existing ONNX generator (latent, label) -> image "
                                        "to wrap into a bundle."),
    z_dim: int = typer.Option(None, "--z-dim", help="--from-module: latent size."),
    classes: int = typer.Option(None, "--classes", help="--from-module / --from-onnx: number of"
                                                        " classes."),
    image_shape: str = typer.Option(None, "--image-shape", help="--from-module: C,H,W of one "
                                                                "image, e.g. 3,32,32."),
    labels: str = typer.Option(None, "--labels", help="Comma-separated class names (default: "
                                                      "the training data's, else 0..N-1)."),
    z_name: str = typer.Option(None, "--z-name", help="--from-onnx: the graph's latent input "
                                                      "(default z)."),
    label_name: str = typer.Option(None, "--label-name", help="--from-onnx: the graph's label "
                                                              "input (default label)."),
    image_name: str = typer.Option(None, "--image-name", help="--from-onnx: the graph's image "
                                                              "output (default image)."),
) -> None:
    """Export a trained generator to a self-contained ONNX bundle with golden outputs."""
    with errors_to_exit():
        cfg = ExportConfig(checkpoint=checkpoint, out=out, opset=opset,
                           precisions=tuple(precision.split(",")), golden_sets=golden_sets,
                           seed=seed, evaluator=evaluator, steps=steps, guidance=guidance,
                           force=force, sign_key=sign_key, ort_format=ort_format,
                           from_module=from_module,
                           weights=weights, from_onnx=from_onnx, z_dim=z_dim, n_classes=classes,
                           image_shape=parse_ints(image_shape, "--image-shape"),
                           io_names=(z_name, label_name, image_name),
                           labels=tuple(v.strip() for v in labels.split(",")) if labels else None,
                           optimize=replace(X.optimize, enabled=optimize))
        with progress_display("export") as shown:
            result = export_bundle(cfg, shown)
    table = Table(title=f"{result.out} (opset {result.opset}, {result.exporter} exporter)")
    for col in ("variant", "file", "bytes", "max |Δ| vs fp32", "label agreement"):
        table.add_column(col)
    for name, v in result.variants.items():
        dev = v.get("deviation_from_fp32", {})
        agree = dev.get("label_agreement")
        table.add_row(name, v["file"], f"{v['bytes']:,}", f"{dev.get('max_abs', 0):.2e}",
                      "—" if agree is None else f"{agree:.2%}")
    console.print(table)
    if result.sampler:
        s = result.sampler
        console.print(f"sampler: {s['solver']}, {s['steps']} steps, guidance {s['guidance']:g} "
                      f"unrolled in model.onnx ({s['calls_per_image']} network calls per image);"
                      f" runtime loop over denoiser.onnx vs model.onnx: max |Δ| "
                      f"{s['runtime_loop']['max_abs']:.2e}", highlight=False)
        for name, v in s["denoiser"]["variants"].items():
            dev = v["deviation_from_fp32"]
            console.print(f"  denoiser {name}: {v['file']} {v['bytes']:,} bytes, sampler output "
                          f"max |Δ| vs fp32 {dev['max_abs']:.2e}, NaN/inf {dev['non_finite']}",
                          highlight=False)
    if result.ort_format:
        o = result.ort_format
        console.print(f"ORT format ({o['optimization_style']} style, onnxruntime "
                      f"{o['onnxruntime']}): {', '.join(o['models'].values())}; "
                      f"{o['required_operators']}", highlight=False)
    for note in result.notes:
        console.print(f"note: {note}", highlight=False)


def parse_ints(text: str | None, option: str) -> tuple[int, ...] | None:
    """``"3,32,32"`` -> ``(3, 32, 32)``; a ConfigError naming ``option`` otherwise."""
    if text is None:
        return None
    try:
        return tuple(int(v) for v in text.replace("x", ",").split(","))
    except ValueError:
        raise ConfigError(f"{option} must be integers separated by commas (e.g. 3,32,32), got "
                          f"{text!r}") from None


def register(app: typer.Typer) -> None:
    app.command("export")(export_command)
