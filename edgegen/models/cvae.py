"""Conditional VAE. Its decoder is the generator that gets exported.

The decoder shares the conditional DCGAN generator's shape. Its pre-activation ``a`` gives the
image ``tanh(a)`` in [-1, 1] and, equivalently, pixel probabilities ``sigmoid(2a)`` for the
Bernoulli reconstruction loss.
"""

from __future__ import annotations

import torch
from torch import nn

from edgegen.models.cdcgan import Generator as Decoder
from edgegen.models.config import ModelConfig

__all__ = ["Decoder", "Encoder"]


class Encoder(nn.Module):
    """q(z | x, y): returns (mu, logvar), each ``[B, z_dim]``."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        c = cfg.width
        self.label_plane = nn.Embedding(cfg.n_classes, 28 * 28)
        self.net = nn.Sequential(
            nn.Conv2d(2, c, 4, 2, 1), nn.LeakyReLU(0.2, inplace=True),  # [B, c, 14, 14]
            nn.Conv2d(c, 2 * c, 4, 2, 1), nn.LeakyReLU(0.2, inplace=True),  # [B, 2c, 7, 7]
            nn.Flatten(),
        )
        self.mu = nn.Linear(2 * c * 7 * 7, cfg.z_dim)
        self.logvar = nn.Linear(2 * c * 7 * 7, cfg.z_dim)

    def forward(self, x: torch.Tensor, label: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        plane = self.label_plane(label).view(-1, 1, 28, 28)
        h = self.net(torch.cat([x, plane], dim=1))
        return self.mu(h), self.logvar(h).clamp(-10.0, 10.0)
