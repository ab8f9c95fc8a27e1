"""The generator architectures and the evaluator classifier.

Every generator honours the ONNX contract of DESIGN.md: ``forward(z, label) -> image`` with
``z: float32[B, z_dim]``, ``label: int64[B]`` and ``image: float32[B, 1, 28, 28]`` in [-1, 1].
"""

from __future__ import annotations

from edgegen.models.registry import ARCHITECTURES, ModelConfig, build_models, model_config

__all__ = ["ARCHITECTURES", "ModelConfig", "build_models", "model_config"]
