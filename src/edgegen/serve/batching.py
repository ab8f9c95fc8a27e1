"""One dynamic batch: many requests' samples through one ``Generator`` call.

``run_batch(generator, works)`` is what a replica's ``@serve.batch`` method runs, and it needs no
Ray: each request's latents are made exactly as ``Generator.generate`` makes them (row ``i`` of
``latent(seed, n)`` for a seed parameter, row 0 of each seed's stream for a seed tensor, the
caller's ``z`` otherwise, then the truncation), stacked, run through the generator once, and
split back. The latents never depend on the batch, so a sample's image is the one
``Generator.generate`` gives for it alone, up to ONNX Runtime's last-bit differences between
batch sizes (the runtime's docstring; measured as 0 differing uint8 pixels in 401,408).

With the guard, requests with one seed per sample and the same truncation share one guarded call
(``Generator.run(labels, seeds=..., guard=True)`` treats each sample alone); a request with a seed
parameter is one guarded call (its redraws follow the rows of that seed's stream).

An iterative bundle's requests are grouped by their sampler setting (``Work.sampler``): the
exported one runs model.onnx, each other one ``Generator.run(..., steps=, guidance=)``'s
denoiser loop, one call per group.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np

from edgegen.runtime.generator import Generator
from edgegen.runtime.latent import latent, latent_for_seeds, truncate
from edgegen.serve.protocol import Done, Work


def latents(work: Work, z_dim: int) -> np.ndarray:
    """float32 ``[n, z_dim]``: the latents ``Generator.generate`` would use for ``work``."""
    if work.z is not None:
        z = work.z
    elif work.seed is not None:
        z = latent(work.seed, work.n, z_dim)
    else:
        assert work.seeds is not None
        z = latent_for_seeds(work.seeds, z_dim)
    return truncate(z, work.truncation)


def run_batch(generator: Generator, works: list[Work], *, variant: str | None = None,
              guard: bool = False) -> list[Done]:
    """One ``Done`` per ``Work``, in order."""
    if not works:
        return []
    groups: dict[tuple[int, float] | None, list[int]] = defaultdict(list)
    for i, w in enumerate(works):
        groups[w.sampler].append(i)
    if len(groups) == 1:
        return _one_setting(generator, works, variant, guard, works[0].sampler)
    out: list[Done | None] = [None] * len(works)
    for sampler, idx in groups.items():
        for i, d in zip(idx, _one_setting(generator, [works[i] for i in idx], variant, guard,
                                          sampler)):
            out[i] = d
    return [d for d in out if d is not None]


def _one_setting(generator: Generator, works: list[Work], variant: str | None, guard: bool,
                 sampler: tuple[int, float] | None) -> list[Done]:
    loop = {} if sampler is None else {"steps": sampler[0], "guidance": sampler[1]}
    if guard:
        return _guarded(generator, works, variant, loop)
    z = np.concatenate([latents(w, generator.z_dim) for w in works])
    labels = np.concatenate([w.labels for w in works])
    images = generator.run(labels, z=z, variant=variant, output="float", **loop).images
    if len(works) == 1:
        return [Done(images=images)]
    bounds = np.cumsum([w.n for w in works])[:-1]
    return [Done(images=part) for part in np.split(images, bounds)]


def _guarded(generator: Generator, works: list[Work], variant: str | None,
             loop: dict[str, Any]) -> list[Done]:
    out: list[Done | None] = [None] * len(works)
    shared: dict[float | None, list[int]] = defaultdict(list)  # seed tensors, by truncation
    for i, w in enumerate(works):
        if w.seed is not None:
            g = generator.run(w.labels, w.seed, truncation=w.truncation, variant=variant,
                              guard=True, output="float", **loop)
            out[i] = Done(images=g.images, accepted=g.accepted, attempts=g.attempts)
        elif w.seeds is not None:
            shared[w.truncation].append(i)
        else:  # the protocol refuses z with the guard; a caller of this function may not
            raise ValueError("the guard redraws from seeds; a request with z cannot be guarded")
    for psi, idx in shared.items():
        labels = np.concatenate([works[i].labels for i in idx])
        seeds = np.concatenate([works[i].seeds for i in idx])  # type: ignore[misc]
        g = generator.run(labels, seeds=seeds, truncation=psi, variant=variant, guard=True,
                          output="float", **loop)
        start = 0
        for i in idx:
            n = works[i].n
            sl = slice(start, start + n)
            assert g.accepted is not None and g.attempts is not None
            out[i] = Done(images=g.images[sl], accepted=g.accepted[sl], attempts=g.attempts[sl])
            start += n
    return [d for d in out if d is not None]
