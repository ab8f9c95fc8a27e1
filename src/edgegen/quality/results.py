"""What ``edgegen eval`` takes and gives: its config and its report (shared by the stage in
``evaluate`` and the report writer in ``eval_report``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgegen.core.report import Report
from edgegen.runtime.guard import DEFAULT_MAX_RETRIES, DEFAULT_MIN_PROB


@dataclass(frozen=True)
class EvalConfig:
    bundle: Path = Path("bundles/cdcgan")
    # per variant, labels balanced (i % n_classes); None: sized by the confidence interval —
    # rounds of ``min_samples`` until every fidelity (and teacher agreement) 95% Wilson CI
    # half-width is <= ``ci_half_width``, from ``min_samples`` up to ``max_samples``
    samples: int | None = None
    ci_half_width: float = 0.003  # ±0.3 pp
    min_samples: int = 1000
    max_samples: int = 20_000
    provider: str = "cpu"  # where the generator variants run; the evaluator always runs on CPU
    precisions: tuple[str, ...] | None = None  # ONNX variants; None: every one in the bundle
    torch: bool = True  # also PyTorch from the checkpoint (the reference), when it is there
    # distinct from export's golden / calibration / deviation seeds (1234, 1235, 1236 by
    # default), so int8 is never judged on the latents it was calibrated on
    seed: int = 777
    psi: float | None = None  # truncation of the evaluated variants (None: z as drawn)
    truncation: tuple[float, ...] = (0.5, 0.7, 0.85, 1.0, 1.2)  # the control-knob sweep
    sweep_samples: int = 2000  # per psi, and per sampler setting (capped at ``samples``)
    # iterative families (cflow): the sampler settings to sweep, e.g. (("steps", (1, 2, 4)),
    # ("guidance", (1.0, 2.0))): every combination; a key not given stays at the exported value
    sweep: tuple[tuple[str, tuple[float, ...]], ...] = ()
    min_fidelity: float | None = None  # gate: every variant's fidelity >= this
    max_fid: float | None = None  # gate: every variant's (count-matched) FID <= this
    # gate: every label's diversity ratio (generated / real, the lower of features and pixels)
    min_diversity: float | None = None
    # a teacher bundle (same z_dim, labels, image shape and the same evaluator file): agreement,
    # pixel and feature distance of every variant to the teacher's fp32 images, same (z, label)
    teacher: Path | None = None
    min_agreement: float | None = None  # gate: every variant's agreement with the teacher
    target_fidelity: float = 0.97  # stated in the report; not a gate unless --min-fidelity
    target_delta_pp: tuple[tuple[str, float], ...] = (("fp16", 0.2), ("int8", 0.5))
    collapse_ratio: float = 0.5  # a label whose diversity is under half the real one: collapsed
    guard: bool = True
    guard_retries: int = DEFAULT_MAX_RETRIES
    guard_min_prob: float = DEFAULT_MIN_PROB
    # warn when the evaluator's and the referee's fidelity differ by more than this: one of the
    # judges is fooled (typically by images off the real-digit distribution; see FID)
    judge_tolerance_pp: float = 5.0
    referee_k: int = 3
    referee_dims: int = 32
    batch: int = 500
    examples: int = 60  # hallucinated samples drawn in each variant's grid
    out: Path | None = Path("reports/eval")  # None: compute only, write nothing
    data_dir: Path | None = None


@dataclass
class VariantQuality:
    """Everything measured for one variant; numbers are shares in [0, 1] unless named _pp."""

    name: str
    source: str
    samples: int
    fidelity: float
    ci95: tuple[float, float]
    hallucination: float
    low_confidence: float  # share whose evaluator probability for the asked label is < 0.5
    per_label: list[dict[str, Any]]
    fid: dict[str, Any]
    diversity: dict[str, Any]
    referee: dict[str, Any]
    ms_per_image: float  # generation only, measured over all samples
    vs_reference: dict[str, Any] | None = None
    vs_teacher: dict[str, Any] | None = None  # with --teacher: agreement, pixel/feature distance
    guard: dict[str, Any] | None = None
    hallucinated: list[dict[str, Any]] = field(default_factory=list)
    files: dict[str, str] = field(default_factory=dict)


@dataclass
class QualityReport(Report):
    bundle: Path
    provider: str
    samples: int
    seed: int
    psi: float | None
    labels: list[str]
    data: dict[str, Any]
    evaluator: dict[str, Any]
    referee: dict[str, Any]
    real: dict[str, Any]
    reference: str
    variants: list[VariantQuality]
    truncation: list[dict[str, Any]]
    targets: list[dict[str, Any]]
    gates: dict[str, float | None]
    failures: list[str]
    warnings: list[str]
    notes: list[str]
    files: dict[str, str]
    elapsed_s: float
    sampler_sweep: list[dict[str, Any]] = field(default_factory=list)  # cflow: steps x guidance
    # how the sample count was chosen: the rule, the target, each round's widest half-width
    sizing: dict[str, Any] = field(default_factory=dict)
    # with --teacher: the teacher bundle, its fidelity, its and the student's cost per image
    teacher: dict[str, Any] | None = None

    @property
    def passed(self) -> bool:
        return not self.failures

    def variant(self, name: str) -> VariantQuality:
        for v in self.variants:
            if v.name == name:
                return v
        raise KeyError(f"no variant {name!r}; evaluated: {[v.name for v in self.variants]}")
