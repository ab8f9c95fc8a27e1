"""The one post-processing rule: generator output in [-1, 1] -> uint8 pixels.

``u8 = clamp(floor((float64(x) + 1.0) * 127.5 + 0.5), 0, 255)``: every step is a basic IEEE
operation on doubles, so numpy, JavaScript and C give the same bytes. This module imports numpy
only (the runtime uses it).
"""

from __future__ import annotations

import numpy as np

RULE = "u8 = clamp(floor((float64(x) + 1.0) * 127.5 + 0.5), 0, 255)"


def to_uint8(images: np.ndarray) -> np.ndarray:
    """float ``[..., 28, 28]`` in [-1, 1] -> uint8 of the same shape."""
    x = np.asarray(images, dtype=np.float64)
    return np.clip(np.floor((x + 1.0) * 127.5 + 0.5), 0, 255).astype(np.uint8)
