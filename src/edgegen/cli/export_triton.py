"""``edgegen export-triton``: a Triton Inference Server model repository from a bundle."""

from __future__ import annotations

from pathlib import Path

import typer

from edgegen.cli.common import console, errors_to_exit
from edgegen.export.triton import TritonConfig, export_triton

T = TritonConfig()


def export_triton_command(
    bundle: Path = typer.Argument(..., help="Bundle folder made by `edgegen export`."),
    out: Path = typer.Option(T.out, "--out", "-o", help="Model repository folder to create."),
    name: str = typer.Option(None, "--name",
                             help="Model name (default: the bundle folder's name)."),
    variant: str = typer.Option(T.variant, "--variant", help="fp32, fp16 or int8."),
    max_batch: int = typer.Option(T.max_batch, "--max-batch",
                                  help="Triton's max_batch_size (rows per request and per "
                                       "dynamic batch)."),
    max_delay_ms: float = typer.Option(T.max_delay_ms, "--max-delay-ms",
                                       help="Dynamic batching: max_queue_delay_microseconds, "
                                            "in ms."),
    instances: int = typer.Option(T.instances, "--instances",
                                  help="Instances of the generator (instance_group count)."),
    gpu: bool = typer.Option(T.gpu, "--gpu",
                             help="KIND_GPU instances with ONNX Runtime's TensorRT "
                                  "accelerator."),
    tensorrt_fp16: bool = typer.Option(T.tensorrt_fp16, "--tensorrt-fp16",
                                       help="TensorRT precision_mode FP16 (with --gpu)."),
    ensemble: bool = typer.Option(T.ensemble, "--ensemble/--no-ensemble",
                                  help="Also the (label, seed) -> uint8 ensemble with its "
                                       "Python-backend steps."),
    force: bool = typer.Option(T.force, "--force", help="Replace an existing repository."),
) -> None:
    """Write a Triton model repository: the generator (onnxruntime_onnx, dynamic batching) and
    an ensemble that turns (label, seed) into edgegen's uint8 bytes."""
    cfg = TritonConfig(bundle=bundle, out=out, name=name, variant=variant, max_batch=max_batch,
                       max_delay_ms=max_delay_ms, instances=instances, gpu=gpu,
                       tensorrt_fp16=tensorrt_fp16, ensemble=ensemble, force=force)
    with errors_to_exit():
        result = export_triton(cfg)
    for model, info in result.models.items():
        console.print(f"{model}: {result.out / info['config']}", highlight=False)
    console.print(f"serve it (docker cannot run on this machine; on one that has it):\n"
                  f"  {result.docker}", highlight=False, soft_wrap=True)
    for note in result.notes:
        console.print(f"note: {note}", highlight=False)


def register(app: typer.Typer) -> None:
    app.command("export-triton")(export_triton_command)
