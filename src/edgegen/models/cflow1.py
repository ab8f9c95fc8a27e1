"""cflow1: the one-call student of a cflow teacher (``edgegen distill --student same``).

The teacher's own velocity network (``models.cflow.UNet``, same shape, initialised from the
teacher's weights by the distillation) called once, as one Euler step of length 1 from the noise::

    image = clamp(z + v(z, 0, label), -1, 1)        z: [B, C, H, W] (the latent reshaped)

The teacher needs ``steps`` calls on a doubled batch (conditional and null label) for its
guided sampler; the student is trained to land where that sampler lands, so the guidance lives
in its weights (its label embedding and everything after it) and it needs neither the null
class nor a second call. The graph keeps the contract (``z float32[B, C*H*W]``, ``label
int64[B]`` -> ``image float32[B, C, H, W]`` in [-1, 1]) and is not iterative: export writes
no sampler and no denoiser for it. The embedding table keeps the teacher's null-class row (so
the teacher's weights load strictly); the student never reads it.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from edgegen.core.errors import ConfigError
from edgegen.models.cflow import UNet
from edgegen.models.config import ModelConfig

STUDENT_TIME = 0.0  # the time the student's network is called at: the start of the path


class Generator(nn.Module):
    """``(z [B, C*H*W], label [B]) -> image [B, C, H, W]``: one call of the UNet."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.net = UNet(cfg)
        self.z_dim, self.n_classes = cfg.z_dim, cfg.n_classes
        self.image_shape = tuple(cfg.image_shape)
        if cfg.z_dim != math.prod(self.image_shape):
            raise ConfigError(f"cflow1's z is the initial noise image: z_dim must be "
                              f"{math.prod(self.image_shape)} (C*H*W), got {cfg.z_dim}")

    def forward(self, z: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        x = z.reshape(-1, *self.image_shape)  # [B, C, H, W]
        t = torch.full((x.shape[0],), STUDENT_TIME, dtype=torch.float32, device=x.device)
        return (x + self.net(x, t, label)).clamp(-1.0, 1.0)  # [B, C, H, W] in [-1, 1]
