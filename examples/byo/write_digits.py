"""Write scikit-learn's 1,797 real 8x8 handwritten digits as an image folder (offline: the data
ships with scikit-learn): ``OUT/<digit>/NNNN.png``, grey levels 0..16 scaled to 0..255.

    python examples/byo/write_digits.py my_images
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image
from sklearn.datasets import load_digits


def main(out: str) -> None:
    d = load_digits()
    images = np.clip(np.floor(d.images * (255 / 16) + 0.5), 0, 255).astype(np.uint8)
    for i, (img, label) in enumerate(zip(images, d.target)):
        folder = Path(out) / str(label)
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(folder / f"{i:04d}.png")
    print(f"wrote {len(images)} images in {len(set(d.target))} class folders under {out}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "my_images")
