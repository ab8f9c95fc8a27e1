"""Sample grids as PNG files (Pillow), written atomically."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgegen.runtime.fileio import atomic_file


def grid(images: np.ndarray, nrow: int, pad: int = 2) -> np.ndarray:
    """uint8 ``[N, H, W]`` (or ``[N, H, W, C]``) -> one uint8 picture with ``nrow`` images per
    row."""
    n, h, w = images.shape[:3]
    rows = (n + nrow - 1) // nrow
    out = np.zeros((rows * (h + pad) + pad, nrow * (w + pad) + pad, *images.shape[3:]),
                   dtype=np.uint8)
    for i, img in enumerate(images):
        r, c = divmod(i, nrow)
        out[pad + r * (h + pad): pad + r * (h + pad) + h,
            pad + c * (w + pad): pad + c * (w + pad) + w] = img
    return out


def save_grid(images: np.ndarray, path: str | Path, nrow: int = 10, scale: int = 2) -> Path:
    from PIL import Image

    pic = Image.fromarray(grid(images, nrow))
    if scale > 1:
        pic = pic.resize((pic.width * scale, pic.height * scale), Image.NEAREST)
    path = Path(path)
    with atomic_file(path) as tmp:
        pic.save(tmp, format="PNG")
    return path
