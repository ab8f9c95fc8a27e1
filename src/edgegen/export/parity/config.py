"""``VerifyConfig``: what ``edgegen verify`` checks and the bounds it holds each check to.

The tolerances live here, with why each number is what it is; ``tolerance_for`` picks the one
that applies to a (precision, provider) pair.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from edgegen.core.errors import ConfigError
from edgegen.export.parity.metrics import Tolerance

__all__ = ["Tolerance", "VerifyConfig", "tolerance_for"]


@dataclass(frozen=True)
class VerifyConfig:
    bundle: Path = Path("bundles/cdcgan")
    providers: tuple[str, ...] = ("cpu",)  # cpu | cuda | tensorrt | tensorrt-rtx | openvino
    precisions: tuple[str, ...] | None = None  # None: every variant in the bundle
    atol: float | None = None  # None: the per-precision default in ``tolerances``
    rtol: float | None = None
    batches: tuple[int, ...] = (1, 256)  # fresh-input batch sizes (ORT vs live PyTorch)
    repeats: int = 3  # runs of the same inputs on one session for the determinism check
    seed: int = 20250607  # fresh latents; distinct from the export's golden/calibration seeds
    trt_cache: Path | None = None  # None: <bundle>/trt_cache (ignored by the bundle's hashes)
    # Sessions made for bitwise repeatability (ProviderSpec.deterministic: cuDNN's fixed
    # convolution algorithm, use_deterministic_compute). Off: ORT's defaults, which a plain
    # deployment gets; on an H200 those were not bitwise repeatable for fp32 (~5e-7).
    deterministic: bool = False
    public_key: Path | None = None  # PEM: bundle.sig must verify (else BundleError, exit 2)
    strict: bool = False  # a skipped check is a failure
    # Element-wise tolerances, looked up as "<precision>-<provider>", then "<precision>".
    # Why these numbers:
    # * fp32 on CPU: ONNX Runtime runs the BatchNorm-folded graph, PyTorch the unfolded one;
    #   both accumulate in fp32, so they differ by rounding only (~1e-7 .. 1e-6 on this model).
    # * fp32 on CUDA: sessions are made with use_tf32=0. cuDNN picks other convolution
    #   algorithms (other summation orders) than the CPU: 10x the CPU tolerance. Measured on an
    #   H200 (ORT 1.31.1): max |Δ| 3.7e-6 with TF32 off, 2.7e-3 with TF32 on; 1e-4 sits a
    #   factor ~27 from both, so it passes honest fp32 and fails TF32 left on.
    # * fp32 on TensorRT: TensorRT may pick TF32 tactics for fp32 layers and ONNX Runtime
    #   exposes no switch to forbid them; TF32 has fp16's 10-bit mantissa: fp16's tolerance.
    # * fp32 on TensorRT-RTX: the same, and its plugin EP has no TF32 option at all (none in
    #   the wheel's tensorrt_rtx_provider_options.h): fp16's tolerance. Not measured yet.
    # * fp32 on OpenVINO (its CPU plugin, f32 pinned): other kernels (brgconv), other summation
    #   orders, still fp32 throughout; measured 6.7e-7 max |Δ| against PyTorch on the cdcgan
    #   generator (ORT CPU: 5.0e-7), so the CPU tolerance holds with a factor ~15 to spare.
    # * fp16: fp16 weights and arithmetic (eps ~ 1e-3): 1e-2.
    # * int8: QDQ with uint8 activations moves single pixels by up to ~0.25-0.4 of the [-1, 1]
    #   range; the element-wise bound is a sanity bound, int8 is judged by label agreement.
    # * an iterative sampler ("<precision>-sampler", cflow): each of the N steps adds the
    #   network's rounding, amplified up to (1 + 2w) times by guidance w. Measured on a 750-step
    #   cflow (4 steps, w = 2), max |Δ| on the image: fp32 1.3e-5 (vs PyTorch; per step 1.4e-6,
    #   2.3e-6, 3.9e-6, 1.0e-5), fp16 2.0e-2, int8 1.2 (a pixel can flip: int8 is judged by
    #   label agreement and eval's fidelity, 99.3% as fp32's on 300 samples). Bounds: fp32 1e-4,
    #   fp16 5e-2 absolute (+ rtol), int8 2.0 (a sanity bound: finite and in range).
    tolerances: Mapping[str, Tolerance] = field(default_factory=lambda: MappingProxyType({
        "fp32-cpu": Tolerance(1e-5, 1e-5),
        "fp32-cuda": Tolerance(1e-4, 1e-4),
        "fp32-tensorrt": Tolerance(1e-2, 1e-2),
        "fp32-tensorrt-rtx": Tolerance(1e-2, 1e-2),
        "fp32-openvino": Tolerance(1e-5, 1e-5),
        "fp16": Tolerance(1e-2, 1e-2),
        "int8": Tolerance(0.5, 0.0),
        "fp32-sampler": Tolerance(1e-4, 1e-5),
        "fp16-sampler": Tolerance(5e-2, 1e-2),
        "int8-sampler": Tolerance(2.0, 0.0),
    }))
    # Task-level parity: the share of samples whose predicted digit must not change.
    min_agreement: Mapping[str, float] = field(default_factory=lambda: MappingProxyType(
        {"fp32": 1.0, "fp16": 1.0, "int8": 0.98}))
    max_listed_disagreements: int = 50  # in the report; the count is always exact
    trajectory_samples: int = 64  # iterative families: samples of the per-step parity check



def tolerance_for(cfg: VerifyConfig, precision: str, provider: str,
                  sampler: bool = False) -> Tolerance:
    """The per-(precision, provider) default (an iterative sampler's ``<precision>-sampler``
    first), with ``--atol`` / ``--rtol`` overriding it."""
    base = ((sampler and cfg.tolerances.get(f"{precision}-sampler"))
            or cfg.tolerances.get(f"{precision}-{provider}") or cfg.tolerances.get(precision))
    if base is None:
        raise ConfigError(f"no tolerance for precision {precision!r} on {provider}; known: "
                          f"{', '.join(cfg.tolerances)}")
    return Tolerance(base.atol if cfg.atol is None else cfg.atol,
                     base.rtol if cfg.rtol is None else cfg.rtol)

