"""Conditional DCGAN: label embedding, ConvTranspose stack with BatchNorm, tanh output.

The discriminator is conditioned twice: a label plane concatenated to the image, and a
projection term (Miyato & Koyama, 2018); it also has an auxiliary class head trained on real
digits only (AC-GAN), which the generator is asked to satisfy. That head is the GAN's own
discriminator, trained jointly; edgegen's evaluator is never used as a training signal.
"""

from __future__ import annotations

import torch
from torch import nn

from edgegen.models.config import ModelConfig


class Generator(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.z_dim, self.n_classes = cfg.z_dim, cfg.n_classes
        c = cfg.width
        self.embed = nn.Embedding(cfg.n_classes, cfg.embed_dim)
        self.project = nn.Sequential(  # [B, z+e] -> [B, 2c*7*7]
            nn.Linear(cfg.z_dim + cfg.embed_dim, 2 * c * 7 * 7, bias=False),
            nn.BatchNorm1d(2 * c * 7 * 7),
            nn.ReLU(inplace=True),
        )
        self.deconv = nn.Sequential(
            nn.ConvTranspose2d(2 * c, c, 4, 2, 1, bias=False),  # [B, c, 14, 14]
            nn.BatchNorm2d(c),
            nn.ReLU(inplace=True),
            nn.ConvTranspose2d(c, 1, 4, 2, 1),  # [B, 1, 28, 28]
        )
        self.width = c

    def logits(self, z: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        h = self.project(torch.cat([z, self.embed(label)], dim=1))
        return self.deconv(h.view(-1, 2 * self.width, 7, 7))

    def forward(self, z: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.logits(z, label))  # [B, 1, 28, 28] in [-1, 1]


class Discriminator(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        c = cfg.width
        self.label_plane = nn.Embedding(cfg.n_classes, 28 * 28)
        self.features = nn.Sequential(
            nn.Conv2d(2, c, 4, 2, 1),  # [B, c, 14, 14]
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(c, 2 * c, 4, 2, 1, bias=False),  # [B, 2c, 7, 7]
            nn.BatchNorm2d(2 * c),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Flatten(),
        )
        feat = 2 * c * 7 * 7
        self.adv = nn.Linear(feat, 1)
        self.proj = nn.Embedding(cfg.n_classes, feat)
        self.cls = nn.Linear(feat, cfg.n_classes)

    def forward(self, x: torch.Tensor, label: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return (real/fake logit ``[B]``, class logits ``[B, n_classes]``)."""
        plane = self.label_plane(label).view(-1, 1, 28, 28)
        h = self.features(torch.cat([x, plane], dim=1))
        adv = self.adv(h).squeeze(1) + (self.proj(label) * h).sum(dim=1) / h.shape[1] ** 0.5
        return adv, self.cls(h)
