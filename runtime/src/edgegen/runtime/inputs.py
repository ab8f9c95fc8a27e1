"""Checks of what a caller hands the runtime, turned into arrays ONNX Runtime can take.

Every check raises ``RuntimeInputError`` with what was found, what was expected and an example,
so an app never sees a low-level numpy or ONNX Runtime exception for a bad request. Bools are
refused wherever an integer or a number is expected (``True`` is an ``int`` in Python, but a label
or a seed of ``True`` is always a mistake). Imports numpy only.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any

import numpy as np

from edgegen.runtime.errors import RuntimeInputError

MAX_SAMPLES = 1 << 16  # per call: a server that forwards user input cannot be asked for 100 GB
MAX_SEED = (1 << 64) - 1
OUTPUTS = ("uint8", "float")


def _describe(value: Any) -> str:
    text = repr(value)
    return f"{text[:60]}…" if len(text) > 60 else text


def _is_integer(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _items(value: Any, what: str, example: str) -> list[Any] | np.ndarray:
    """``value`` as a flat list (or a 1-D integer array), refusing strings, scalars and nesting."""
    if isinstance(value, np.ndarray):
        if value.ndim != 1 or value.dtype.kind not in "iu":
            raise RuntimeInputError(f"{what} must be a 1-D array of integers, got an array of "
                                    f"dtype {value.dtype} and shape {value.shape}; e.g. {example}")
        return value
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise RuntimeInputError(f"{what} must be a list of integers, got {type(value).__name__} "
                                f"{_describe(value)}; e.g. {example}")
    items = list(value)
    for i, v in enumerate(items):
        if not _is_integer(v):
            raise RuntimeInputError(f"{what}[{i}] is {_describe(v)} ({type(v).__name__}); "
                                    f"{what} must be integers, e.g. {example}")
    return items


def _count(n: int, what: str) -> None:
    if n == 0:
        raise RuntimeInputError(f"{what} is empty: ask for at least one sample, e.g. [7]")
    if n > MAX_SAMPLES:
        raise RuntimeInputError(f"{what} asks for {n} samples; at most {MAX_SAMPLES} per call "
                                "— split the request")


def check_labels(labels: Any, n_classes: int) -> np.ndarray:
    """int64 ``[N]``: every label an integer in ``[0, n_classes)``."""
    items = _items(labels, "labels", "labels=[3, 1, 4]")
    _count(len(items), "labels")
    for i, v in enumerate(items):
        if not 0 <= int(v) < n_classes:
            raise RuntimeInputError(f"labels[{i}] = {int(v)} is out of range: this bundle has "
                                    f"{n_classes} classes, labels 0..{n_classes - 1}")
    return np.array([int(v) for v in items], dtype=np.int64)


def check_seed(seed: Any, what: str = "seed") -> int:
    """A seed: an integer in ``[0, 2**64)`` (JSON readers in other languages take it as text)."""
    if not _is_integer(seed):
        raise RuntimeInputError(f"{what} must be an integer in [0, 2**64), got "
                                f"{_describe(seed)} ({type(seed).__name__}); e.g. seed=42")
    if not 0 <= int(seed) <= MAX_SEED:
        raise RuntimeInputError(f"{what} = {int(seed)} is outside [0, 2**64): seeds are unsigned "
                                "64-bit integers")
    return int(seed)


def check_seeds(seeds: Any, n: int) -> list[int]:
    """One seed per sample."""
    items = _items(seeds, "seeds", "seeds=[11, 12, 13]")
    if len(items) != n:
        raise RuntimeInputError(f"seeds has {len(items)} entries for {n} labels: give one seed "
                                "per label")
    return [check_seed(v, f"seeds[{i}]") for i, v in enumerate(items)]


def check_truncation(psi: Any) -> float | None:
    """``None`` or a finite number in (0, 4] (the latent is scaled by it)."""
    if psi is None:
        return None
    if isinstance(psi, (bool, np.bool_)) or not isinstance(psi, numbers.Real):
        raise RuntimeInputError(f"truncation must be a number in (0, 4] or None, got "
                                f"{_describe(psi)} ({type(psi).__name__}); e.g. truncation=0.7")
    value = float(psi)
    if not (math.isfinite(value) and 0.0 < value <= 4.0):
        raise RuntimeInputError(f"truncation must be a finite number in (0, 4], got {value!r}; "
                                "e.g. truncation=0.7 (smaller: more typical digits)")
    return value


def check_latents(z: Any, n: int, z_dim: int) -> np.ndarray:
    """Caller-given latents: a finite float array ``[n, z_dim]``, returned as float32."""
    if not isinstance(z, np.ndarray) or z.dtype.kind != "f":
        raise RuntimeInputError(f"z must be a float numpy array of shape ({n}, {z_dim}), got "
                                f"{type(z).__name__} {getattr(z, 'dtype', '')}".rstrip())
    if z.shape != (n, z_dim):
        raise RuntimeInputError(f"z has shape {z.shape}; expected ({n}, {z_dim}): one latent of "
                                f"{z_dim} values per label")
    with np.errstate(over="ignore"):
        z32 = z.astype(np.float32)
    if not np.isfinite(z32).all():
        bad = tuple(int(i) for i in np.argwhere(~np.isfinite(z32))[0])
        raise RuntimeInputError(f"z{list(bad)} is {z[bad]!r}: latents must be finite float32 "
                                "values (NaN or inf, or too large for float32)")
    return np.ascontiguousarray(z32)


def check_choice(value: Any, what: str, choices: Sequence[str]) -> str:
    if not isinstance(value, str) or value not in choices:
        raise RuntimeInputError(f"{what} must be one of {', '.join(map(repr, choices))}, got "
                                f"{_describe(value)}")
    return value


def check_flag(value: Any, what: str) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise RuntimeInputError(f"{what} must be True or False, got {_describe(value)}")
    return bool(value)


MAX_STEPS = 1000  # sampler steps per image (each is one or two network calls)
MAX_GUIDANCE = 20.0


def check_steps(steps: Any) -> int:
    """An iterative sampler's step count: an integer in ``[1, MAX_STEPS]``."""
    if not _is_integer(steps) or not 1 <= int(steps) <= MAX_STEPS:
        raise RuntimeInputError(f"steps must be an integer in [1, {MAX_STEPS}], got "
                                f"{_describe(steps)} ({type(steps).__name__}); e.g. steps=4")
    return int(steps)


def check_guidance(guidance: Any) -> float:
    """Classifier-free guidance ``w``: a finite number in ``[0, MAX_GUIDANCE]`` (1 = none)."""
    if isinstance(guidance, (bool, np.bool_)) or not isinstance(guidance, numbers.Real):
        raise RuntimeInputError(f"guidance must be a number in [0, {MAX_GUIDANCE:g}], got "
                                f"{_describe(guidance)} ({type(guidance).__name__}); e.g. "
                                "guidance=2.0 (1 = no guidance)")
    value = float(guidance)
    if not (math.isfinite(value) and 0.0 <= value <= MAX_GUIDANCE):
        raise RuntimeInputError(f"guidance must be a finite number in [0, {MAX_GUIDANCE:g}], got "
                                f"{value!r}; e.g. guidance=2.0 (1 = no guidance, larger: more "
                                "typical digits of the asked label, less variety)")
    return value
