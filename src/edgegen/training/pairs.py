"""Teacher pairs for distillation: (noise z, label) -> the teacher's image, at one sampler setting.

Pair ``i`` has the latent ``z_i = latent(seed, N, z_dim)[i]`` (the portable latent of
``edgegen.runtime.latent``, so any language can rebuild the inputs) and the label
``i mod n_classes`` (balanced); its target is the teacher's deterministic sampler (Euler,
``steps`` steps, classifier-free guidance ``guidance``) run from ``z_i``, in eval mode.

**The same numbers on any process count.** The pairs are computed in chunks of ``PAIR_CHUNK``
rows at fixed positions (every chunk through the same batch shape); each rank computes a
contiguous block of chunks and every rank receives all of them (``World.all_gather_rows``).

**Cached in the run folder.** Rank 0 writes ``pairs.safetensors`` (the targets as float16:
at most 2.4e-4 from float32 in [-1, 1], 1/16 of a uint8 level; the labels as int64; in its
metadata the key — teacher checkpoint sha256, steps, guidance, count, latent seed, chunk — so a
resumed run, or a new run in the same folder, reloads the pairs instead of computing them again
when the key matches). A fresh computation and a cached one give the student the same targets:
both are the float16 values.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgegen.core.errors import CheckpointError
from edgegen.runtime.fileio import atomic_write_bytes
from edgegen.runtime.latent import latent

PAIRS_NAME = "pairs.safetensors"
PAIRS_FORMAT = "edgegen.pairs/1"
PAIR_CHUNK = 250  # rows per teacher call batch (fixed: the numbers do not depend on the split)


@dataclass(frozen=True)
class PairSpec:
    """What identifies a set of teacher pairs."""

    teacher_sha256: str
    steps: int
    guidance: float
    n: int
    seed: int  # of the pairs' portable latent
    z_dim: int
    n_classes: int

    def key(self) -> dict[str, Any]:
        return {"format": PAIRS_FORMAT, "teacher_sha256": self.teacher_sha256,
                "steps": self.steps, "guidance": self.guidance, "pairs": self.n,
                "latent_seed": str(self.seed), "chunk": PAIR_CHUNK}


@dataclass
class Pairs:
    z: Any  # float32 [N, z_dim]
    label: Any  # int64 [N]
    target: Any  # float32 [N, C, H, W] in [-1, 1] (float16 values)
    seconds: float  # time spent computing them (0 when loaded from the cache)
    cached: bool


def pair_inputs(spec: PairSpec, start: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(z float32 ``[n, z_dim]``, label int64 ``[n]``) of pairs ``start .. start + n - 1``."""
    z = latent(spec.seed, n, spec.z_dim, start=start)
    return z, (np.arange(start, start + n) % spec.n_classes).astype(np.int64)


def teacher_pairs(spec: PairSpec, teacher: Any, out: Path, world: Any,
                  on_count: Callable[[int, int], None]) -> Pairs:
    """The pairs of ``spec``: reloaded from ``out/pairs.safetensors`` when its key matches, else
    computed by ``teacher`` (a cflow ``Generator`` in eval mode, its sampler set) on every
    rank and written by rank 0. ``on_count(done, total)`` reports this rank's progress."""
    import torch

    raw = world.from_main(lambda: _cached(out / PAIRS_NAME, spec))
    t0 = time.perf_counter()
    if raw is not None:
        target, label = _parse(raw, out / PAIRS_NAME)
        cached = True
    else:
        target = _compute(spec, teacher, world, on_count).to(torch.float16)
        label = torch.from_numpy(pair_inputs(spec, 0, spec.n)[1])
        if world.main:
            _write(out / PAIRS_NAME, spec, target, label)
        cached = False
    seconds = 0.0 if cached else time.perf_counter() - t0
    z = torch.from_numpy(pair_inputs(spec, 0, spec.n)[0])
    dev = world.device
    return Pairs(z=z.to(dev), label=label.to(dev), target=target.float().to(dev),
                 seconds=seconds, cached=cached)


def _compute(spec: PairSpec, teacher: Any, world: Any, on_count: Callable[[int, int], None]
             ) -> Any:
    """The teacher's images of every pair, float32 ``[N, C, H, W]`` on the CPU: this rank's
    block of chunks, then every rank's (in order)."""
    import torch

    from edgegen.training.torch_utils import generate_images

    chunks = math.ceil(spec.n / PAIR_CHUNK)
    per_rank = math.ceil(chunks / world.size)
    first = world.rank * per_rank * PAIR_CHUNK
    last = min((world.rank + 1) * per_rank * PAIR_CHUNK, spec.n)
    mine = []
    for start in range(first, last, PAIR_CHUNK):
        n = min(PAIR_CHUNK, last - start)
        z, y = pair_inputs(spec, start, n)
        mine.append(torch.from_numpy(generate_images(teacher, z, y, device=world.device,
                                                     batch=PAIR_CHUNK)))
        on_count(start + n - first, max(last - first, 0))
    shape = tuple(getattr(teacher, "image_shape", (1, 28, 28)))
    block = torch.cat(mine) if mine else torch.zeros((0, *shape), dtype=torch.float32)
    return world.all_gather_rows(block, spec.n, per_rank * PAIR_CHUNK)


def _cached(path: Path, spec: PairSpec) -> bytes | None:
    """The bytes of ``path`` when it holds pairs of exactly ``spec``, else None."""
    if not path.is_file():
        return None
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as fh:
            key = json.loads((fh.metadata() or {}).get("edgegen", "{}"))
    except Exception:  # noqa: BLE001 - a damaged cache is recomputed, never trusted
        return None
    return path.read_bytes() if key == spec.key() else None


def _parse(raw: bytes, path: Path) -> tuple[Any, Any]:
    from safetensors.torch import load

    try:
        tensors = load(raw)
        return tensors["target"], tensors["label"]
    except Exception as exc:  # noqa: BLE001 - safetensors raises several types
        raise CheckpointError(f"{path} is not a readable pairs file ({exc}); delete it and "
                              "rerun (the pairs are computed again)") from exc


def _write(path: Path, spec: PairSpec, target: Any, label: Any) -> None:
    from safetensors.torch import save

    data = save({"target": target.contiguous(), "label": label.contiguous()},
                metadata={"edgegen": json.dumps(spec.key())})
    atomic_write_bytes(path, data)
