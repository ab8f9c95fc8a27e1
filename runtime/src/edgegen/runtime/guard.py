"""The guard: reject samples the evaluator does not accept and redraw them, a bounded number of
times, along a documented sequence of seeds.

Sample ``i`` of a request ``(labels, seed)`` is first drawn from row ``i`` of
``latent(seed, n, z_dim)``. When the evaluator does not accept it (its predicted digit is not
the requested label, or its probability for the requested label is under ``min_prob``), attempt
``a = 1, 2, ...`` redraws it from row ``i`` of ``latent(retry_seed(seed, a), n, z_dim)`` where
``retry_seed(seed, a) = (seed + a * 0xD1B54A32D192ED03) mod 2**64``. After ``max_retries``
redraws the last attempt is returned and marked as not accepted. Any language can replay this.
With one seed per sample (``guarded_generate_seeds``) "row ``i`` of seed ``s``" becomes "row 0 of
``seeds[i]``" in both places. Defaults: ``max_retries = 4``, ``min_prob = 0.5``.

Imports numpy only: the torch-free runtime uses it with ONNX Runtime sessions.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from edgegen.runtime.latent import latent, latent_for_seeds, retry_seed, truncate

GenerateFn = Callable[[np.ndarray, np.ndarray], np.ndarray]  # (z [N, Z], labels [N]) -> images
ClassifyFn = Callable[[np.ndarray], np.ndarray]  # images [N, 1, 28, 28] -> probabilities [N, C]


@dataclass(frozen=True)
class GuardResult:
    images: np.ndarray  # float32 [N, 1, 28, 28], the accepted (or last) draw of each sample
    accepted: np.ndarray  # bool [N]
    attempts: np.ndarray  # int [N]: 0 when the first draw was accepted
    prob: np.ndarray  # float32 [N]: the evaluator's probability for the requested label
    predicted: np.ndarray  # int64 [N]: the evaluator's digit for the returned image

    @property
    def fired(self) -> int:
        """How many samples needed at least one redraw."""
        return int(np.count_nonzero(self.attempts))

    @property
    def rejected(self) -> int:
        """How many samples were still not accepted after the last redraw."""
        return int(np.count_nonzero(~self.accepted))


def accept(probs: np.ndarray, labels: np.ndarray, min_prob: float) -> np.ndarray:
    """bool [N]: predicted digit == requested label and its probability >= ``min_prob``."""
    p = probs[np.arange(len(labels)), labels]
    return (probs.argmax(1) == labels) & (p >= min_prob)


DEFAULT_MAX_RETRIES = 4
DEFAULT_MIN_PROB = 0.5


def guarded_generate(generate: GenerateFn, classify: ClassifyFn, labels: np.ndarray, seed: int,
                     z_dim: int, *, truncation: float | None = None,
                     max_retries: int = DEFAULT_MAX_RETRIES,
                     min_prob: float = DEFAULT_MIN_PROB) -> GuardResult:
    """Generate ``labels`` with ``seed``, redrawing rejected samples (see module docstring)."""
    n = len(labels)

    def draw(attempt: int, rows: np.ndarray) -> np.ndarray:
        z = latent(retry_seed(seed, attempt), n, z_dim)[rows]  # row i of the attempt's stream
        return truncate(z, truncation)

    return _guard_loop(generate, classify, labels, draw, max_retries, min_prob)


def guarded_generate_seeds(generate: GenerateFn, classify: ClassifyFn, labels: np.ndarray,
                           seeds: list[int], z_dim: int, *, truncation: float | None = None,
                           max_retries: int = DEFAULT_MAX_RETRIES,
                           min_prob: float = DEFAULT_MIN_PROB) -> GuardResult:
    """Like ``guarded_generate`` with one seed per sample: sample ``i`` is first drawn from row 0
    of ``seeds[i]`` and attempt ``a`` redraws it from row 0 of ``retry_seed(seeds[i], a)``."""
    def draw(attempt: int, rows: np.ndarray) -> np.ndarray:
        z = latent_for_seeds([retry_seed(int(seeds[i]), attempt) for i in rows], z_dim)
        return truncate(z, truncation)

    return _guard_loop(generate, classify, labels, draw, max_retries, min_prob)


def _guard_loop(generate: GenerateFn, classify: ClassifyFn, labels: np.ndarray,
                draw: Callable[[int, np.ndarray], np.ndarray], max_retries: int,
                min_prob: float) -> GuardResult:
    """Draw every sample (attempt 0), then redraw the rejected ones; ``draw(attempt, rows)``
    gives the latents ``[len(rows), z_dim]`` of those samples for that attempt."""
    labels = np.asarray(labels, dtype=np.int64)
    n = len(labels)
    images = generate(draw(0, np.arange(n)), labels)
    probs = classify(images)
    ok = accept(probs, labels, min_prob)
    attempts = np.zeros(n, dtype=np.int64)
    for a in range(1, max_retries + 1):
        todo = np.flatnonzero(~ok)
        if todo.size == 0:
            break
        redo = generate(draw(a, todo), labels[todo])
        redo_probs = classify(redo)
        images[todo], probs[todo] = redo, redo_probs
        ok[todo] = accept(redo_probs, labels[todo], min_prob)
        attempts[todo] = a
    return GuardResult(images=images, accepted=ok, attempts=attempts,
                       prob=probs[np.arange(n), labels].astype(np.float32),
                       predicted=probs.argmax(1).astype(np.int64))


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax of the evaluator's logits ``[N, C]`` (computed in their dtype)."""
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)
