"""edgegen: train a class-conditional MNIST generator, export it to ONNX, and prove that the
deployed model gives the same numbers, draws the digits it is asked for, and is fast.

Importing ``edgegen`` is cheap: torch and onnxruntime are imported inside the stage functions.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
