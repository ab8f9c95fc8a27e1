"""The checks of ``edgegen eval``: options refused before any work, the data and judge
warnings, the gates (exit 1) and the recipe's targets (informational)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgegen.core.errors import ConfigError, require_positive
from edgegen.core.fileio import check_output_dir
from edgegen.quality.results import EvalConfig, VariantQuality
from edgegen.quality.sizing import SampleSizer
from edgegen.quality.sweeps import SWEEP_KEYS
from edgegen.runtime.bundle import Bundle
from edgegen.runtime.providers import ProviderSpec
from edgegen.training.data import MnistSplits, load_mnist


def validate(cfg: EvalConfig) -> None:
    """Refuse options that cannot give a meaningful report, naming the option."""
    if cfg.samples is not None and cfg.samples < 20:
        raise ConfigError(f"--samples must be at least 20 (2 per label for diversity), got "
                          f"{cfg.samples}")
    if cfg.samples is None:
        sizer(cfg, 1)  # the CI options: a ConfigError naming the option
    if cfg.min_agreement is not None:
        if cfg.teacher is None:
            raise ConfigError("--min-agreement gates the agreement with a teacher: pass "
                              "--teacher BUNDLE too")
        if not 0.0 <= cfg.min_agreement <= 1.0:
            raise ConfigError(f"--min-agreement is a share in [0, 1] (0.99 = 99%), got "
                              f"{cfg.min_agreement}")
    require_positive(cfg, "sweep_samples", "batch", "referee_k", "referee_dims")
    ProviderSpec(cfg.provider).ep  # noqa: B018 - raises ProviderError for an unknown name
    if cfg.guard_retries < 0:
        raise ConfigError(f"--guard-retries must be >= 0, got {cfg.guard_retries}")
    for psi in (*cfg.truncation, *([cfg.psi] if cfg.psi is not None else [])):
        if not 0.0 < psi <= 4.0:
            raise ConfigError(f"truncation psi must be in (0, 4], got {psi} (e.g. --truncation "
                              "0.5,0.7,1.0)")
    if cfg.min_fidelity is not None and not 0.0 <= cfg.min_fidelity <= 1.0:
        raise ConfigError(f"--min-fidelity is a share in [0, 1] (0.97 = 97%), got "
                          f"{cfg.min_fidelity}")
    if cfg.max_fid is not None and cfg.max_fid < 0:
        raise ConfigError(f"--max-fid must be >= 0, got {cfg.max_fid}")
    if cfg.min_diversity is not None and cfg.min_diversity < 0:
        raise ConfigError(f"--min-diversity is a ratio to the real digits' diversity (0.8 = 80% "
                          f"as varied), >= 0; got {cfg.min_diversity}")
    for key, values in cfg.sweep:
        if key not in SWEEP_KEYS or not values:
            raise ConfigError(f"--sweep takes {' or '.join(f'{k}=V1,V2,...' for k in SWEEP_KEYS)}"
                              f", got {key}={','.join(map(str, values))}")
    if len({k for k, _ in cfg.sweep}) != len(cfg.sweep):
        raise ConfigError("give each --sweep key once (e.g. --sweep steps=1,2,4 --sweep "
                          "guidance=1,2)")
    if cfg.out is not None:  # before the work: a report folder that cannot be written
        check_output_dir(cfg.out, "--out")


def sizer(cfg: EvalConfig, n_classes: int) -> SampleSizer:
    """How many samples to draw: exactly ``--samples``, or as the confidence interval needs."""
    if cfg.samples is not None:
        return SampleSizer.fixed(cfg.samples, cfg.min_samples, n_classes)
    return SampleSizer.for_ci(cfg.ci_half_width, cfg.min_samples, cfg.max_samples, n_classes)


def _same_data(recorded: dict[str, Any], have: dict[str, Any]) -> list[str]:
    """The provenance fields that differ (locations compared as resolved paths)."""
    diffs = []
    for key in ("source", "location", "train", "heldout"):
        a, b = recorded.get(key), have.get(key)
        if key == "location" and a and b:
            a, b = str(Path(a).expanduser().resolve()), str(Path(b).expanduser().resolve())
        if str(a) != str(b):
            diffs.append(key)
    return diffs


def load_data_for(bundle: Bundle, data_dir: Path | None) -> MnistSplits:
    """The real images a bundle is measured against, resized to its image size (as its
    training run's --image-size did); a ConfigError when their channels or classes differ."""
    c, h, w = bundle.image_shape
    data = load_mnist(data_dir, image_size=h if h == w else None)
    if data.image_shape != (c, h, w) or data.n_classes != bundle.n_classes:
        raise ConfigError(f"the data at {data.location} holds {data.n_classes} classes of "
                          f"{'x'.join(map(str, data.image_shape))} images; the bundle draws "
                          f"{bundle.n_classes} classes of {c}x{h}x{w} — pass the --data-dir "
                          "its generator was trained on")
    return data


def data_warnings(bundle: Bundle, data: MnistSplits) -> list[str]:
    """Warn when the real digits are not the ones the generator and evaluator were split from:
    then "held-out" digits may have been trained on, and FID compares other distributions."""
    have = data.provenance()
    out = []
    trained = bundle.manifest.get("provenance", {}).get("training_data")
    if not trained:
        out.append("the bundle does not record the generator's training data "
                   "(provenance.training_data): cannot confirm the held-out digits were never "
                   "trained on")
    elif diffs := _same_data(trained, have):
        out.append(f"real digits here: {have['source']} at {have['location']} ({have['train']:,}"
                   f" train / {have['heldout']:,} held-out); the generator was trained on "
                   f"{trained.get('source')} at {trained.get('location')} "
                   f"({trained.get('train')} / {trained.get('heldout')}) — they differ in "
                   f"{', '.join(diffs)}. Held-out digits may include its training digits and FID "
                   f"measures another distribution: pass --data-dir {trained.get('location')}")
    ev = (bundle.manifest.get("evaluator") or {}).get("trained_on")
    if ev and (diffs := _same_data(ev, have)):
        out.append(f"the evaluator was trained on {ev.get('source')} at {ev.get('location')}, "
                   f"not on the data used here (differs in {', '.join(diffs)}): its held-out "
                   "accuracy below may be measured on digits it was trained on")
    return out


def judge_warnings(variants: list[VariantQuality], tolerance_pp: float) -> list[str]:
    """The cross-check: variants whose evaluator and referee fidelities disagree."""
    out = []
    for v in variants:
        diff = 100.0 * (v.fidelity - v.referee["fidelity"])
        v.referee["difference_pp"] = diff
        if abs(diff) > tolerance_pp:
            out.append(f"{v.name}: the evaluator ({v.fidelity:.2%}) and the independent referee "
                       f"({v.referee['fidelity']:.2%}) disagree by {abs(diff):.1f} pp (more "
                       f"than {tolerance_pp:g}); they name the same digit for only "
                       f"{v.referee['agreement_with_evaluator']:.1%} of samples. The images are "
                       "likely off the real-digit distribution (compare FID to its floor and "
                       "look at the sample grids): trust neither fidelity alone")
    return out


def gate(report_variants: list[VariantQuality], cfg: EvalConfig) -> list[str]:
    """The failures of the requested gates (empty: passed)."""
    fails = []
    for v in report_variants:
        if cfg.min_fidelity is not None and v.fidelity < cfg.min_fidelity:
            fails.append(f"{v.name}: fidelity {v.fidelity:.2%} < --min-fidelity "
                         f"{cfg.min_fidelity:.2%}")
        if cfg.max_fid is not None and v.fid["value"] > cfg.max_fid:
            fails.append(f"{v.name}: FID {v.fid['value']:.2f} > --max-fid {cfg.max_fid:g} "
                         f"(real-vs-real floor {v.fid['floor']:.2f})")
        if cfg.min_diversity is not None and v.diversity["worst_ratio"] < cfg.min_diversity:
            fails.append(f"{v.name}: label {v.diversity['worst_label']} diversity ratio "
                         f"{v.diversity['worst_ratio']:.2f} < --min-diversity "
                         f"{cfg.min_diversity:g}")
        agreement = (v.vs_teacher or {}).get("agreement", {}).get("value")
        if cfg.min_agreement is not None and agreement is not None and \
                agreement < cfg.min_agreement:
            fails.append(f"{v.name}: agreement with the teacher {agreement:.2%} < "
                         f"--min-agreement {cfg.min_agreement:.2%}")
    return fails


def targets(variants: list[VariantQuality], cfg: EvalConfig) -> list[dict[str, Any]]:
    """The recipe's targets, met or not (informational; gates are separate)."""
    rows = [{"variant": v.name, "what": "fidelity", "value": v.fidelity,
             "target": f">= {cfg.target_fidelity:.0%}", "met": v.fidelity >= cfg.target_fidelity}
            for v in variants]
    limits = dict(cfg.target_delta_pp)
    for v in variants:
        if v.name in limits and v.vs_reference is not None:
            d = v.vs_reference["delta_pp"]
            rows.append({"variant": v.name, "what": f"Δ fidelity vs {v.vs_reference['reference']}"
                         " (pp)", "value": d, "target": f"within ±{limits[v.name]:g} pp",
                         "met": abs(d) <= limits[v.name] + 1e-9})
    return rows


__all__ = ["data_warnings", "gate", "judge_warnings", "load_data_for", "sizer", "targets",
           "validate"]
