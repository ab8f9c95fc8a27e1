"""The MLP conditional GAN of the article edgegen comes from, done right.

Both networks see the label (an embedding concatenated to their input); training uses
BCE-with-logits, separate discriminator and generator steps, and detached fakes for the
discriminator step (see ``edgegen.training.train``).
"""

from __future__ import annotations

import torch
from torch import nn

from edgegen.models.config import ModelConfig


class Generator(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        h = 4 * cfg.width  # 256 by default
        self.embed = nn.Embedding(cfg.n_classes, cfg.embed_dim)
        self.net = nn.Sequential(
            nn.Linear(cfg.z_dim + cfg.embed_dim, h), nn.LeakyReLU(0.2, inplace=True),
            nn.Linear(h, 2 * h), nn.BatchNorm1d(2 * h), nn.LeakyReLU(0.2, inplace=True),
            nn.Linear(2 * h, 4 * h), nn.BatchNorm1d(4 * h), nn.LeakyReLU(0.2, inplace=True),
            nn.Linear(4 * h, 28 * 28),
        )

    def logits(self, z: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([z, self.embed(label)], dim=1)).view(-1, 1, 28, 28)

    def forward(self, z: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.logits(z, label))  # [B, 1, 28, 28] in [-1, 1]


class Discriminator(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        h = 4 * cfg.width
        self.embed = nn.Embedding(cfg.n_classes, cfg.embed_dim)
        self.net = nn.Sequential(
            nn.Linear(28 * 28 + cfg.embed_dim, 2 * h), nn.LeakyReLU(0.2, inplace=True),
            nn.Dropout(0.3),
            nn.Linear(2 * h, h), nn.LeakyReLU(0.2, inplace=True), nn.Dropout(0.3),
            nn.Linear(h, 1),
        )

    def forward(self, x: torch.Tensor, label: torch.Tensor) -> tuple[torch.Tensor, None]:
        logit = self.net(torch.cat([x.flatten(1), self.embed(label)], dim=1)).squeeze(1)
        return logit, None
