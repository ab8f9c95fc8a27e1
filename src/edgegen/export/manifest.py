"""The manifest export writes, section by section, in the shape of
``runtime/src/edgegen/runtime/bundle.schema.json`` (the one schema every reader validates first).

``build_manifest(ManifestParts) -> dict`` assembles what the export steps made; each section has
its own function, named after the schema's property. The ``files`` section is added last by the
bundler (``runtime.bundle.list_files``), once every file is in place.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgegen.core import __version__
from edgegen.core.errors import ExportError
from edgegen.export.config import OUTPUT_RANGE
from edgegen.export.sources import Source
from edgegen.runtime.bundle import SCHEMA, VARIANT_FILES

# provenance.distilled_from: what a distilled student's run records about its teacher
# (training writes it into the checkpoint's run info; the schema types each key)
DISTILLED_KEYS = ("run", "checkpoint_sha256", "architecture", "steps", "guidance", "method",
                  "pairs")


@dataclass(frozen=True)
class ManifestParts:
    """Everything the export steps made that the manifest describes."""

    src: Source
    opset: int
    seed: int  # the export's seed (goldens; + 1 calibration, + 2 deviation)
    out: Path  # the bundle's final folder (the checkpoint path is written relative to it)
    command: str
    exporter: str
    optimization: dict[str, Any]
    variants: dict[str, dict[str, Any]]
    golden_sets: list[dict[str, Any]]
    evaluator: dict[str, Any] | None = None
    sampler: dict[str, Any] | None = None  # an iterative family's (cflow)
    ort_format: dict[str, Any] | None = None  # --ort-format
    notes: list[str] = field(default_factory=list)


def build_manifest(p: ManifestParts) -> dict[str, Any]:
    """The manifest without its ``files`` section."""
    optional = {"sampler": p.sampler, "ort_format": p.ort_format}
    return {
        "schema": SCHEMA,
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "generator": generator_section(p),
        "variants": p.variants,
        **{k: v for k, v in optional.items() if v is not None},
        "evaluator": p.evaluator,
        "latent": latent_section(),
        "guard": guard_section(p.evaluator),
        "postprocess": postprocess_section(p.src.image_shape),
        "golden": golden_section(p),
        "provenance": provenance_section(p),
    }


def generator_section(p: ManifestParts) -> dict[str, Any]:
    """The fp32 model's I/O contract: ``z float32[batch, z_dim]``, ``label int64[batch]`` ->
    ``image float32[batch, C, H, W]`` in [-1, 1]."""
    src = p.src
    shape = list(src.image_shape)
    return {
        "architecture": src.arch, "file": VARIANT_FILES["fp32"], "opset": p.opset,
        "z_dim": src.z_dim, "n_classes": src.n_classes, "labels": src.labels,
        "image_shape": shape,
        "inputs": [{"name": "z", "dtype": "float32", "shape": ["batch", src.z_dim]},
                   {"name": "label", "dtype": "int64", "shape": ["batch"],
                    "range": [0, src.n_classes - 1]}],
        "outputs": [{"name": "image", "dtype": "float32", "shape": ["batch", *shape],
                     "range": list(OUTPUT_RANGE)}],
        "batchnorm": ("folded into the preceding layers (eval-mode statistics)"
                      if src.kind != "onnx" else "as in the given graph"),
        "exporter": p.exporter,
        "optimization": p.optimization,
        "weights": src.weights,
    }


def latent_section() -> dict[str, Any]:
    """The portable latent's algorithm and its test vectors (``runtime.latent``)."""
    from edgegen.runtime.latent import describe, extra_test_vectors, latent_test_vectors

    return {**describe(), "test_vectors": latent_test_vectors(),
            "extra_test_vectors": extra_test_vectors(),
            "per_sample": "sample i of a request with seed s is row i of latent(s, n, z_dim); "
                          "it does not depend on n"}


def guard_section(evaluator: dict[str, Any] | None) -> dict[str, Any] | None:
    """The runtime guard's rule (``runtime.guard``); None without an evaluator."""
    from edgegen.runtime.guard import DEFAULT_MAX_RETRIES, DEFAULT_MIN_PROB

    if evaluator is None:
        return None
    return {
        "accept": "argmax(softmax(logits)) == label and softmax(logits)[label] >= min_prob, "
                  "where logits = evaluator(image) on the generator's float32 image (not the "
                  "uint8 pixels)",
        "min_prob": DEFAULT_MIN_PROB, "max_retries": DEFAULT_MAX_RETRIES,
        "redraw": "attempt a redraws sample i from row i of latent(retry_seed(seed, a)); with "
                  "one seed per sample, from row 0 of retry_seed(seeds[i], a)",
        "after_last_retry": "the last draw is returned, marked not accepted",
    }


def postprocess_section(image_shape: list[int]) -> dict[str, Any]:
    """The uint8 rule (``runtime.postprocess``) and the pixels' layout."""
    from edgegen.runtime.postprocess import RULE

    shape = list(image_shape)
    gray = shape[0] == 1
    return {"rule": RULE, "input_range": list(OUTPUT_RANGE), "dtype": "uint8",
            "image_shape": shape[1:] if gray else shape,
            "layout": "row-major, one channel" if gray else
            "the float [C, H, W] image as uint8 [H, W, C], row-major, channels interleaved (RGB)"}


def golden_section(p: ManifestParts) -> dict[str, Any]:
    """Where the golden sets are, who computed them and how to replay them."""
    return {"seed": str(p.seed), "sets": p.golden_sets,
            "computed_by": p.src.golden_by,
            "reference": ("pytorch" if p.src.gen is not None else
                          "onnxruntime-cpu-fp32 (no PyTorch reference)"),
            "layout": "ONNX model zoo: input_0.pb = z, input_1.pb = label, output_0.pb = image "
                      "(serialized TensorProto)",
            "polygraphy": {"inputs": "golden/polygraphy_inputs.json",
                           "outputs": "golden/polygraphy_outputs.json"},
            # an iterative sampler adds up rounding over its steps (verify's fp32-sampler
            # tolerance; measured 1.3e-5 on a 4-step cflow)
            "suggested_atol": 1e-4 if p.sampler is not None else 1e-5}


def provenance_section(p: ManifestParts) -> dict[str, Any]:
    """Tool versions, where the generator came from (a run's checkpoint, or the module / ONNX
    source), the export's seed, command and notes."""
    import onnx
    import onnxruntime
    import torch

    src = p.src
    origin = checkpoint_provenance(src, p.out) if src.kind == "checkpoint" else {
        "source": src.source_entry}
    return {
        "edgegen": __version__, "torch": torch.__version__, "onnx": onnx.__version__,
        "onnxruntime": onnxruntime.__version__, "python": platform.python_version(),
        **origin,
        "export_seed": str(p.seed),
        "command": p.command,
        "notes": p.notes,
    }


def checkpoint_provenance(src: Source, out: Path) -> dict[str, Any]:
    """A training run's part of ``provenance``: the checkpoint, the training record and, for a
    distilled student, its teacher (``distilled_from``)."""
    info = src.info
    entry: dict[str, Any] = {
        "checkpoint": {"path": rel_or_abs(src.path, out), "sha256": src.sha256,
                       "step": info.get("step"), "epoch": info.get("epoch")},
        "training_seed": info["train"]["seed"], "training_data": info.get("data"),
        "training": training_record(info),
        "fidelity_at_training": fidelity_from_run(src.path.parent),
    }
    teacher = distilled_from(info, src.path)
    if teacher is not None:
        entry["distilled_from"] = teacher
    return entry


def distilled_from(info: dict[str, Any], where: Path) -> dict[str, Any] | None:
    """The run info's ``distilled_from`` (a distilled student's teacher), as it was recorded;
    None for a run that was not distilled. The schema types each key before the manifest is
    written."""
    teacher = info.get("distilled_from")
    if teacher is None:
        return None
    if not isinstance(teacher, dict):
        raise ExportError(f"{where}: the run's distilled_from is a {type(teacher).__name__}, "
                          f"expected an object with {', '.join(DISTILLED_KEYS)}; the checkpoint "
                          "was not written by edgegen distill — re-run the distillation")
    return dict(teacher)


def training_record(info: dict[str, Any]) -> dict[str, Any]:
    """How long and how far the run trained (its wall time summed over resumes), for the family
    table; None where the checkpoint does not say."""
    train = info.get("train", {})
    return {"elapsed_s": info.get("elapsed_s"), "steps": info.get("step"),
            "epochs": info.get("epoch"), "images": info.get("images"),
            "batch_size": train.get("batch_size"), "device": train.get("device"),
            "threads": train.get("threads")}


def rel_or_abs(ckpt: Path, out: Path) -> str:
    """The checkpoint path as seen from the bundle (relative when both are in one tree)."""
    try:
        return os.path.relpath(ckpt.resolve(), out.resolve())
    except ValueError:  # another drive on Windows
        return str(ckpt.resolve())


def fidelity_from_run(run: Path) -> dict[str, Any] | None:
    result = run / "result.json"
    if result.is_file():
        return json.loads(result.read_text()).get("fidelity")
    return None
