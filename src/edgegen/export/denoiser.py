"""The sampler part of an iterative family's bundle (cflow): ``denoiser.onnx`` and its variants,
and the manifest's ``sampler`` section.

``model.onnx`` (written by the bundler like every family's) has the Euler loop with guidance
unrolled inside it for the exported ``steps`` and ``guidance``, its weights stored once.
``denoiser.onnx`` is one network call — ``x float32[B, C, H, W]``, ``t float32[B]``,
``label int64[B]`` (``n_classes`` = the null label) -> ``velocity float32[B, C, H, W]`` — for
hosts that run their own loop (``edgegen.runtime.sampler`` is the reference loop). Export
checks that this loop over ``denoiser.onnx`` reproduces ``model.onnx`` within
``LOOP_TOLERANCE`` before it writes the bundle.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgegen.core.errors import ExportError
from edgegen.export.variants import CALIBRATION_BATCH
from edgegen.runtime.latent import latent
from edgegen.runtime.providers import make_session
from edgegen.runtime.sampler import (
    DENOISER_IO,
    FORMULA,
    SOLVER,
    calls_per_image,
    sample,
    time_grid,
    trajectory,
)
from edgegen.runtime.sessions import run_generator

DENOISER_FILES = {"fp32": "denoiser.onnx", "fp16": "denoiser.fp16.onnx",
                  "int8": "denoiser.int8.onnx"}
# The runtime loop over denoiser.onnx (fp32) against model.onnx at the exported settings, max
# |Δ| over every pixel. Both run the same float32 operations; they differ by the rounding inside
# the network (ONNX Runtime may pick other kernels for the two graphs, and the exporter may fold
# the unrolled graph's constant time embedding), amplified at most (1 + 2w) times per step by
# guidance. Measured on the 10-minute model: see docs/ARCHITECTURE.md.
LOOP_TOLERANCE = 1e-4


@dataclass(frozen=True)
class SamplerExport:
    """What ``export_sampler`` needs from the bundler."""

    gen: Any  # the iterative generator (models.cflow.Generator), its sampler settings set
    root: Path  # the bundle folder being written
    opset: int
    seed: int  # the export's seed: calibration seed + 1, deviation seed + 2
    precisions: tuple[str, ...]  # fp32 first
    calibration_samples: int
    deviation_samples: int
    model_path: Path  # model.onnx, the unrolled sampler the loop is checked against
    meta: dict[str, Any]  # model.onnx's metadata (the denoiser's extends it)
    evaluator: Any  # the evaluator's session for label agreement, or None
    emit: Callable[[str], None]

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.gen.image_shape)  # (C, H, W)

    @property
    def loop(self) -> dict[str, Any]:
        """``runtime.sampler``'s keywords for the exported settings."""
        g = self.gen
        return {"steps": g.steps, "guidance": g.guidance, "null_label": g.null_label,
                "image_shape": self.shape}


def export_sampler(job: SamplerExport) -> dict[str, Any]:
    """Write ``denoiser*.onnx`` into ``job.root``; return the manifest's ``sampler`` section."""
    fp32_path, exporter = export_denoiser(job)
    dev_z = latent(job.seed + 2, job.deviation_samples, job.gen.z_dim)  # [N, z_dim]
    dev_y = (np.arange(job.deviation_samples) % job.gen.n_classes).astype(np.int64)  # [N]
    ref, loop_check = check_loop(job, fp32_path, dev_z, dev_y)
    variants: dict[str, dict[str, Any]] = {}
    kept: dict[str, Any] = {}
    for prec in job.precisions:
        variants[prec] = denoiser_variant(job, prec, dev_z, dev_y, ref, kept)
    variants["fp32"]["deviation_from_fp32"]["seed"] = str(job.seed + 2)
    return sampler_section(job, exporter, variants, kept, loop_check)


def export_denoiser(job: SamplerExport) -> tuple[Path, str]:
    """denoiser.onnx (fp32, one network call) with its metadata; (its path, the exporter)."""
    import torch

    from edgegen.export.onnx_export import check_model, export_onnx, set_metadata

    gen, shape, null = job.gen, job.shape, job.gen.null_label
    path = job.root / DENOISER_FILES["fp32"]
    x0 = torch.from_numpy(latent(job.seed, 2, gen.z_dim).reshape(2, *shape))  # [2, C, H, W]
    how = export_onnx(gen.net, (x0, torch.tensor([0.0, 0.5]), torch.tensor([0, null])),
                      path, job.opset, list(DENOISER_IO[:3]), [DENOISER_IO[3]],
                      {DENOISER_IO[3]: ["batch", *shape]})
    set_metadata(path, denoiser_meta(job), denoiser_doc(job))
    check_model(path)
    job.emit(f"exported denoiser.onnx with the {how['exporter']} exporter")
    return path, str(how["exporter"])


def denoiser_meta(job: SamplerExport) -> dict[str, Any]:
    return {**job.meta, "role": "denoiser", "null_label": job.gen.null_label}


def denoiser_doc(job: SamplerExport) -> str:
    null = job.gen.null_label
    return (f"edgegen {job.meta['architecture']} denoiser: (x float32[batch,"
            f"{','.join(map(str, job.shape))}], t float32[batch] in [0, 1], label int64[batch] "
            f"in [0, {null}], {null} = null) -> velocity float32[batch,...] (one network call "
            "of the sampler)")


def check_loop(job: SamplerExport, fp32_path: Path, dev_z: np.ndarray, dev_y: np.ndarray
               ) -> tuple[np.ndarray, dict[str, Any]]:
    """The reference loop over the fp32 denoiser against model.onnx (the unrolled sampler):
    (the loop's images [N, C, H, W], the manifest's ``runtime_loop``); an ExportError beyond
    ``LOOP_TOLERANCE``."""
    ref = sample(make_session(fp32_path), dev_z, dev_y, **job.loop)
    unrolled = run_generator(make_session(job.model_path), dev_z, dev_y)
    diff = np.abs(ref.astype(np.float64) - unrolled)
    loop_check = {"reference": "model.onnx (fp32)", "loop": "edgegen.runtime.sampler over "
                  "denoiser.onnx (fp32), CPU", "samples": int(job.deviation_samples),
                  "max_abs": float(diff.max()), "mean_abs": float(diff.mean()),
                  "tolerance_max_abs": LOOP_TOLERANCE, "seed": str(job.seed + 2)}
    if not loop_check["max_abs"] <= LOOP_TOLERANCE:
        raise ExportError(f"the runtime loop over denoiser.onnx differs from model.onnx by "
                          f"{loop_check['max_abs']:.3g} (> {LOOP_TOLERANCE:g}): the unrolled "
                          "sampler and the loop disagree — this is a bug, please report it")
    job.emit(f"runtime loop over denoiser.onnx vs model.onnx: max |Δ| "
             f"{loop_check['max_abs']:.2e}")
    return ref, loop_check


def denoiser_variant(job: SamplerExport, prec: str, dev_z: np.ndarray, dev_y: np.ndarray,
                     ref: np.ndarray, kept: dict[str, Any]) -> dict[str, Any]:
    """One precision's denoiser (fp32: as exported), the sampler's output through it measured
    against the fp32 loop's ``ref``; what fp16 kept in fp32 goes into ``kept``."""
    from edgegen.export.onnx_export import check_model, model_opset, set_metadata
    from edgegen.export.variants import deviation, make_fp16, make_int8

    fp32_path, path = job.root / DENOISER_FILES["fp32"], job.root / DENOISER_FILES[prec]
    gen, extra = job.gen, {}
    if prec == "fp16":
        kept["fp16"] = make_fp16(fp32_path, path)
    elif prec == "int8":
        feeds = _calibration_feeds(fp32_path, job.seed + 1, job.calibration_samples, gen.z_dim,
                                   gen.n_classes, job.loop)
        extra = make_int8(fp32_path, path, seed=job.seed + 1, samples=job.calibration_samples,
                          z_dim=gen.z_dim, n_classes=gen.n_classes, feeds=feeds)
        extra["calibration"] += (f" on the denoiser's inputs along the fp32 sampler's "
                                 f"trajectories ({gen.steps} steps, guidance {gen.guidance:g}, "
                                 "conditional and null labels)")
    if prec != "fp32":
        set_metadata(path, {**denoiser_meta(job), "precision": prec},
                     f"{denoiser_doc(job)}; {prec} variant")
        check_model(path)
    got = model_opset(path)
    if got != job.opset:
        raise ExportError(f"{path.name} came out at opset {got}, not {job.opset}")
    out = sample(make_session(path), dev_z, dev_y, **job.loop)
    dev = deviation(ref, out, dev_y, job.evaluator)
    dev["non_finite"] = int(np.count_nonzero(~np.isfinite(out)))
    job.emit(f"denoiser {prec}: sampler output max |Δ| vs fp32 loop = {dev['max_abs']:.2e}")
    return {"file": path.name, "precision": prec, "opset": got, "bytes": path.stat().st_size,
            "io": "float32 in, float32 out" if prec != "fp32" else "float32",
            "deviation_from_fp32": dev, **({"quantization": extra} if extra else {})}


def sampler_section(job: SamplerExport, exporter: str, variants: dict[str, dict[str, Any]],
                    kept: dict[str, Any], loop_check: dict[str, Any]) -> dict[str, Any]:
    """The manifest's ``sampler``: the loop's rule and settings, the denoiser's contract and
    variants, what stayed in fp32 and the loop's check against model.onnx."""
    steps, guidance, null, shape = job.gen.steps, job.gen.guidance, job.gen.null_label, job.shape
    return {
        "family": "flow matching (rectified flow, velocity prediction)",
        "solver": SOLVER, "steps": steps, "guidance": guidance,
        "time_grid": [float(t) for t in time_grid(steps)],
        "time_grid_rule": "t_i = float32(i / steps), i = 0 .. steps",
        "null_label": null, "image_shape": list(shape),
        "guidance_rule": "v = v_u + w * (v_c - v_u); w = 1: no guidance (one call per step), "
                         "w > 1: more typical digits of the asked label, less variety",
        "formula": FORMULA,
        "calls_per_image": calls_per_image(steps, guidance),
        "guidance_batching": "one denoiser call on the doubled batch [x; x] with labels "
                             "[label; null]",
        "unrolled": {"file": "model.onnx", "steps": steps, "guidance": guidance,
                     "weights": "stored once: every step's nodes read the same initializers"},
        "denoiser": {
            "inputs": [{"name": DENOISER_IO[0], "dtype": "float32", "shape": ["batch", *shape]},
                       {"name": DENOISER_IO[1], "dtype": "float32", "shape": ["batch"],
                        "range": [0.0, 1.0]},
                       {"name": DENOISER_IO[2], "dtype": "int64", "shape": ["batch"],
                        "range": [0, null], "null": null}],
            "outputs": [{"name": DENOISER_IO[3], "dtype": "float32", "shape": ["batch", *shape]}],
            "exporter": exporter, "variants": variants},
        "kept_in_fp32": {
            "fp16": {k: len(v) for k, v in kept.get("fp16", {}).items()},
            "why": "the sinusoidal time embedding (sin/cos of t * freq, freq up to 1000: fp16's "
                   "spacing there is 0.5) and GroupNorm (InstanceNormalization at opset 17; its "
                   "variance sums squares over a group) run in float32 in the fp16 variants and "
                   "are left out of int8 quantization; everything else is fp16 / int8",
        },
        "runtime_loop": loop_check,
    }


def _calibration_feeds(path: Path, seed: int, samples: int, z_dim: int, n_classes: int,
                       loop: dict[str, Any]) -> list[dict[str, np.ndarray]]:
    """The denoiser inputs the sampler actually makes: for each of ``samples`` latents, the
    state before every step, with the conditional and (with guidance) the null label."""
    session = make_session(path)
    z = latent(seed, samples, z_dim)
    y = (np.arange(samples) % n_classes).astype(np.int64)
    states = [z.reshape(-1, *loop["image_shape"]),
              *trajectory(session, z, y, **loop)[:-1]]  # [steps] x [N, C, H, W]
    grid = time_grid(loop["steps"])
    feeds = []
    step = CALIBRATION_BATCH  # samples per calibration run (memory: see variants)
    for i, x in enumerate(states):
        for s in range(0, samples, step):
            xb, yb = x[s:s + step], y[s:s + step]
            if loop["guidance"] != 1.0:
                xb = np.concatenate([xb, xb])
                yb = np.concatenate([yb, np.full(len(yb), loop["null_label"], np.int64)])
            feeds.append({DENOISER_IO[0]: np.ascontiguousarray(xb),
                          DENOISER_IO[1]: np.full(len(yb), grid[i], np.float32),
                          DENOISER_IO[2]: yb})
    return feeds
