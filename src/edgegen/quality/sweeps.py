"""The control knobs of ``edgegen eval``: the truncation sweep (every family) and, for an
iterative family (cflow), the sampler's steps x guidance, each setting judged like a variant
(fidelity, count-matched FID, diversity, the referee) on the same latents."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from edgegen.quality.flops import count_flops
from edgegen.quality.judging import (
    Judge,
    RealSet,
    diversity_block,
    fid_block,
    fidelity_fields,
    judge_images,
)
from edgegen.quality.metrics import KnnReferee, pixels
from edgegen.quality.results import EvalConfig
from edgegen.quality.rounds import Runner, labels_for, timed
from edgegen.runtime.bundle import Bundle
from edgegen.runtime.inputs import check_guidance, check_steps
from edgegen.runtime.latent import latent, truncate
from edgegen.runtime.providers import ProviderSpec, make_session
from edgegen.runtime.sampler import SamplerSpec, calls_per_image, sample


def sweep(runner: Runner, judge: Judge, real: RealSet, referee: KnnReferee, cfg: EvalConfig,
          z_dim: int, samples: int) -> tuple[list[dict[str, Any]], list[np.ndarray]]:
    """Fidelity, FID and diversity of ``runner`` for every psi, on the same (scaled) latents.

    Returns the table and, per psi, one uint8 ``[n_classes, 28, 28]`` row (sample 0 of each
    label) for the picture. ``samples``: the evaluated count, which caps the sweep's.
    """
    n = min(cfg.sweep_samples, samples)
    labels = (np.arange(n) % real.n_classes).astype(np.int64)
    base = latent(cfg.seed, n, z_dim)
    rows, strips = [], []
    for psi in cfg.truncation:
        images = runner.generate(truncate(base, psi), labels)
        j, u8 = judge_images(images, labels, judge, referee)
        fb = fid_block(j.feats, labels, real)
        div = diversity_block(j.feats, pixels(u8), labels, real, cfg.collapse_ratio)
        rows.append({"psi": psi, "variant": runner.name, "samples": n,
                     **{k: v for k, v in fidelity_fields(j, labels, real.n_classes).items()
                        if k != "per_label"},
                     "fid": fb["value"], "fid_floor": fb["floor"],
                     "diversity_feature": div["feature"]["ratio"],
                     "diversity_pixel": div["pixel"]["ratio"],
                     "referee_fidelity": float(np.mean(j.referee == labels))})
        strips.append(u8[:real.n_classes])
    return rows, strips


SWEEP_KEYS = ("steps", "guidance")


def sampler_settings(cfg: EvalConfig, spec: SamplerSpec) -> list[tuple[int, float]]:
    """Every (steps, guidance) of ``cfg.sweep``; a key not swept stays at the exported value."""
    given = dict(cfg.sweep)
    steps = [check_steps(int(v)) if float(v).is_integer() else check_steps(v)
             for v in given.get("steps", (spec.steps,))]
    guidance = [check_guidance(float(v)) for v in given.get("guidance", (spec.guidance,))]
    return [(n, w) for n in dict.fromkeys(steps) for w in dict.fromkeys(guidance)]


def sampler_sweep(bundle: Bundle, judge: Judge, real: RealSet, referee: KnnReferee,
                  cfg: EvalConfig, emit: Callable[[str], None], samples: int
                  ) -> tuple[list[dict[str, Any]], list[np.ndarray]]:
    """Fidelity, FID, diversity and cost of every sampler setting, on the same latents, run by
    the runtime's loop over ``denoiser.onnx`` (fp32) on ``cfg.provider``. Returns the table and
    one uint8 ``[n_classes, H, W]`` row per setting for the picture."""
    spec = SamplerSpec.from_manifest(bundle.manifest, bundle.root)
    path = bundle.denoiser_path("fp32")
    session = make_session(bundle.denoiser_bytes("fp32"), ProviderSpec(cfg.provider),
                           name=str(path))
    mflop_call = count_flops(path, batch=1).per_image / 1e6  # one network evaluation
    n = min(cfg.sweep_samples, samples)
    labels = labels_for(0, n, real.n_classes)
    z = latent(cfg.seed, n, bundle.z_dim)
    rows, strips = [], []
    for steps, w in sampler_settings(cfg, spec):
        emit(f"sampler sweep: {steps} steps, guidance {w:g} ({n:,} samples)")

        def generate(zz: np.ndarray, yy: np.ndarray, steps: int = steps, w: float = w
                     ) -> np.ndarray:
            return sample(session, zz, yy, steps=steps, guidance=w, null_label=spec.null_label,
                          image_shape=spec.image_shape, batch=cfg.batch)

        images, ms = timed(generate, z, labels)
        j, u8 = judge_images(images, labels, judge, referee)
        fb = fid_block(j.feats, labels, real)
        div = diversity_block(j.feats, pixels(u8), labels, real, cfg.collapse_ratio)
        calls = calls_per_image(steps, w)
        rows.append({"steps": steps, "guidance": w, "samples": n,
                     "exported": (steps, w) == (spec.steps, spec.guidance),
                     **{k: v for k, v in fidelity_fields(j, labels, real.n_classes).items()
                        if k != "per_label"},
                     "fid": fb["value"], "fid_floor": fb["floor"],
                     "diversity_feature": div["feature"]["ratio"],
                     "diversity_pixel": div["pixel"]["ratio"],
                     "referee_fidelity": float(np.mean(j.referee == labels)),
                     "calls_per_image": calls, "mflop_per_image": mflop_call * calls,
                     "ms_per_image": ms, "runs": f"{path.name} on {cfg.provider}"})
        strips.append(u8[:real.n_classes])
    return rows, strips


__all__ = ["SWEEP_KEYS", "sampler_settings", "sampler_sweep", "sweep"]
