"""``ExportConfig``: what ``edgegen export`` writes (defaults live here; the CLI reuses them)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from edgegen.export.optimize import OptimizeConfig
from edgegen.runtime.bundle import PRECISIONS

OUTPUT_RANGE = (-1.0, 1.0)


@dataclass(frozen=True)
class ExportConfig:
    checkpoint: Path | None = None  # a run folder (or its checkpoint.safetensors)
    out: Path = Path("bundles/cdcgan")
    opset: int = 17
    precisions: tuple[str, ...] = PRECISIONS
    golden_sets: int = 8
    seed: int = 1234  # goldens use this seed; calibration and deviation use seed + 1, + 2
    evaluator: Path | None = None  # None: <checkpoint>/../evaluator when it exists
    calibration_samples: int = 500
    deviation_samples: int = 1000
    # an iterative sampler's settings unrolled into model.onnx (cflow only); None: the run's
    # own (ModelConfig.sampler_steps / guidance: 4 steps, guidance 2.0 by default)
    steps: int | None = None
    guidance: float | None = None
    # Exact graph rewrites (export.rewrite, checked by export.optimize); --no-optimize: off
    optimize: OptimizeConfig = OptimizeConfig()
    force: bool = False  # replace an existing bundle (only a bundle, or an empty folder)
    command: str | None = None  # the command line, for provenance
    sign_key: Path | None = None  # PEM EC private key: sign the bundle before it is renamed in
    # --ort-format: every ONNX model also as an ORT-format .ort file (ONNX Runtime Mobile and
    # minimal builds) plus required_operators.config (export.ort_format)
    ort_format: bool = False
    # other ways in (export.sources): a user's torch module or a foreign ONNX generator
    from_module: str | None = None  # "pkg.module:factory" returning the nn.Module
    weights: Path | None = None  # --from-module: safetensors state_dict
    from_onnx: Path | None = None  # an existing ONNX generator graph
    z_dim: int | None = None  # --from-module: the latent size
    n_classes: int | None = None  # --from-module, --from-onnx: the class count (--classes)
    image_shape: tuple[int, ...] | None = None  # --from-module: (C, H, W)
    io_names: tuple[str | None, str | None, str | None] = (None, None, None)  # --from-onnx
    labels: tuple[str, ...] | None = None  # class names (default: the data's, else 0..N-1)

