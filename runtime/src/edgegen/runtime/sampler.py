"""The iterative sampler of a flow-matching bundle (``cflow``), in numpy over ``denoiser.onnx``.

``model.onnx`` has the sampler unrolled inside it for the exported ``steps`` and ``guidance``;
this module runs the same loop for any other setting, one ``denoiser.onnx`` call per step, for
hosts that loop themselves (and as the reference the loop in other languages can follow):

* time grid ``t_i = float32(i / N)``, ``i = 0 .. N`` (``time_grid``);
* ``x_0 = z`` reshaped to ``[B, C, H, W]`` (the portable latent: the initial noise);
* ``v = denoiser(x, t_i, label)`` when ``w == 1``; otherwise one call on the doubled batch
  ``([x; x], [t_i; t_i], [label; null])`` giving ``[v_c; v_u]``, and ``v = v_u + w (v_c - v_u)``;
* ``x_{i+1} = x_i + float32(t_{i+1} - t_i) v`` — every operation in float32;
* the image is ``clamp(x_N, -1, 1)``.

``edgegen.models.cflow.Generator`` is written with the same operations in the same order, so
the loop here and ``model.onnx`` differ only by the rounding inside the network (measured by
``edgegen verify`` and the tests; docs/ARCHITECTURE.md states the tolerance).
Imports numpy only; the sessions come from ``edgegen.runtime.providers``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from edgegen.runtime.errors import BundleError

DENOISER_IO = ("x", "t", "label", "velocity")  # denoiser.onnx's input and output names
SOLVER = "euler"
FORMULA = ("x_0 = z.reshape(B, C, H, W); for i in 0..N-1: v = v_u + w * (v_c - v_u) with "
           "[v_c; v_u] = denoiser([x_i; x_i], [t_i; t_i], [label; null]) (w == 1: v = "
           "denoiser(x_i, t_i, label), one call); x_{i+1} = x_i + float32(t_{i+1} - t_i) * v; "
           "image = clamp(x_N, -1, 1); t_i = float32(i / N); all float32")

StepFn = Callable[[int, np.ndarray], None]


def time_grid(steps: int) -> np.ndarray:
    """float32 ``[steps + 1]``: ``t_i = float32(i / steps)``, the fixed grid of the sampler."""
    return (np.arange(steps + 1, dtype=np.float64) / steps).astype(np.float32)


def calls_per_image(steps: int, guidance: float) -> int:
    """Network evaluations per image: one per step, two with guidance (w != 1)."""
    return steps * (1 if guidance == 1.0 else 2)


@dataclass(frozen=True)
class SamplerSpec:
    """What a bundle's ``sampler`` section says about its loop."""

    steps: int  # the settings unrolled into model.onnx
    guidance: float
    null_label: int
    image_shape: tuple[int, int, int]
    denoiser: dict[str, Any]  # precision -> variant entry (file, ...)

    @classmethod
    def from_manifest(cls, manifest: dict[str, Any], where: Any = "the bundle") -> SamplerSpec:
        s = manifest.get("sampler")
        try:
            return cls(steps=int(s["steps"]), guidance=float(s["guidance"]),
                       null_label=int(s["null_label"]),
                       image_shape=tuple(int(d) for d in s["image_shape"]),  # type: ignore
                       denoiser=dict(s["denoiser"]["variants"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise BundleError(f"{where}: the manifest's sampler section is incomplete ({exc!r});"
                              " re-export the bundle") from exc


def velocity(session: Any, x: np.ndarray, t: np.float32, labels: np.ndarray, guidance: float,
             null_label: int, names: tuple[str, ...] = DENOISER_IO) -> np.ndarray:
    """The guided velocity ``[B, C, H, W]`` at grid time ``t`` (one denoiser call)."""
    x_name, t_name, label_name, v_name = names
    b = len(labels)
    if guidance == 1.0:
        return session.run([v_name], {x_name: x, t_name: np.full(b, t, np.float32),
                                      label_name: labels})[0]
    v = session.run([v_name], {
        x_name: np.concatenate([x, x]), t_name: np.full(2 * b, t, np.float32),
        label_name: np.concatenate([labels, np.full(b, null_label, np.int64)])})[0]
    v_c, v_u = v[:b], v[b:]
    return v_u + np.float32(guidance) * (v_c - v_u)


def sample(session: Any, z: np.ndarray, labels: np.ndarray, *, steps: int, guidance: float,
           null_label: int, image_shape: tuple[int, int, int], batch: int = 64,
           on_step: StepFn | None = None) -> np.ndarray:
    """float32 images ``[N, C, H, W]`` in [-1, 1] for latents ``z: [N, z_dim]`` and labels
    ``[N]``, run in chunks of ``batch``. ``on_step(i, x)`` sees every chunk's state after step
    ``i`` (before clamping), for per-step parity checks."""
    grid = time_grid(steps)
    dts = [np.float32(grid[i + 1] - grid[i]) for i in range(steps)]
    outs = []
    for s in range(0, len(labels), batch):
        x = np.ascontiguousarray(z[s:s + batch], np.float32).reshape(-1, *image_shape)
        y = np.ascontiguousarray(labels[s:s + batch], np.int64)
        for i in range(steps):
            x = x + dts[i] * velocity(session, x, grid[i], y, guidance, null_label)
            if on_step is not None:
                on_step(i, x)
        outs.append(np.clip(x, np.float32(-1.0), np.float32(1.0)))
    if outs:
        return np.concatenate(outs)
    return np.zeros((0, *image_shape), np.float32)


def trajectory(session: Any, z: np.ndarray, labels: np.ndarray, *, steps: int, guidance: float,
               null_label: int, image_shape: tuple[int, int, int], batch: int = 64
               ) -> list[np.ndarray]:
    """The state after every step, unclamped: ``steps`` arrays ``[N, C, H, W]``."""
    parts: list[list[np.ndarray]] = [[] for _ in range(steps)]
    sample(session, z, labels, steps=steps, guidance=guidance, null_label=null_label,
           image_shape=image_shape, batch=batch, on_step=lambda i, x: parts[i].append(x))
    return [np.concatenate(p) for p in parts]
