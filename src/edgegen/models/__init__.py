"""The generator architectures and the evaluator classifier.

Every generator honours the ONNX contract of docs/ARCHITECTURE.md: ``forward(z, label) -> image``
with ``z: float32[B, z_dim]``, ``label: int64[B]`` and ``image: float32[B, C, H, W]`` in [-1, 1]
(MNIST: 1x28x28; the data's shape otherwise). ``config`` holds the shapes (torch-free);
``registry.build_models`` builds them.
Importing this package does not import torch.
"""

from __future__ import annotations

from edgegen.models.config import ARCHITECTURES, ClassifierConfig, ModelConfig, model_config

__all__ = ["ARCHITECTURES", "ClassifierConfig", "ModelConfig", "model_config"]
