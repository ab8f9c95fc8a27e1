"""Batched runs of a bundle's two models on ONNX Runtime sessions.

Every stage that runs the generator or the evaluator (export's deviation figures, verify, eval,
the runtime's ``Generator``) goes through these two functions, so the I/O names and the chunking
live in one place. Imports numpy only; the sessions come from ``edgegen.runtime.providers``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

GENERATOR_IO = ("z", "label", "image")  # the bundle contract's input and output names
EVALUATOR_IO = ("image", "logits", "features")


def run_generator(session: Any, z: np.ndarray, labels: np.ndarray, batch: int = 500,
                  names: tuple[str, str, str] = GENERATOR_IO,
                  run_options: Any | None = None) -> np.ndarray:
    """float32 ``[N, C, H, W]`` for latents ``z: [N, z_dim]`` and ``labels: [N]``, run in chunks
    of ``batch`` (the image shape is whatever the model produces); ``run_options``: ONNX
    Runtime ``RunOptions`` for every chunk (``providers.arena_shrinking``), or None."""
    z_name, label_name, image_name = names
    extra = () if run_options is None else (run_options,)
    outs = [session.run([image_name], {z_name: z[s:s + batch],
                                       label_name: labels[s:s + batch]}, *extra)[0]
            for s in range(0, len(labels), batch)]
    if outs:
        return np.concatenate(outs)
    shape = [d if isinstance(d, int) else 0 for d in session.get_outputs()[0].shape]
    return np.zeros((0, *shape[1:]), np.float32)


def run_evaluator(session: Any, images: np.ndarray, batch: int = 500
                  ) -> tuple[np.ndarray, np.ndarray]:
    """(logits ``[N, n_classes]``, features ``[N, F]``) of float32 images ``[N, C, H, W]``."""
    image_name, logits_name, features_name = EVALUATOR_IO
    images = np.ascontiguousarray(images, dtype=np.float32)
    logits, feats = [], []
    for s in range(0, len(images), batch):
        lo, fe = session.run([logits_name, features_name], {image_name: images[s:s + batch]})
        logits.append(lo)
        feats.append(fe)
    if not logits:
        return np.zeros((0, 0), np.float32), np.zeros((0, 0), np.float32)
    return np.concatenate(logits), np.concatenate(feats)
