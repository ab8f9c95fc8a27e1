"""Conditional DCGAN: label embedding, ConvTranspose stack with BatchNorm, tanh output.

The discriminator is conditioned twice: a label plane concatenated to the image, and a
projection term (Miyato & Koyama, 2018); it also has an auxiliary class head trained on real
digits only (AC-GAN), which the generator is asked to satisfy. That head is the GAN's own
discriminator, trained jointly; edgegen's evaluator is never used as a training signal.
"""

from __future__ import annotations

import torch
from torch import nn

from edgegen.models.config import ModelConfig, conv_grid


class Generator(nn.Module):
    """``(z [B, z_dim], label [B]) -> image [B, C, H, W]``: a linear projection to a
    ``2c x H/4 x W/4`` grid, then two stride-2 transposed convolutions (MNIST: 7 -> 14 -> 28)."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.z_dim, self.n_classes = cfg.z_dim, cfg.n_classes
        self.image_shape = tuple(cfg.image_shape)
        self.grid = conv_grid(self.image_shape, cfg.arch)  # (H/4, W/4)
        c, gh, gw = cfg.width, *self.grid
        self.embed = nn.Embedding(cfg.n_classes, cfg.embed_dim)
        self.project = nn.Sequential(  # [B, z+e] -> [B, 2c*H/4*W/4]
            nn.Linear(cfg.z_dim + cfg.embed_dim, 2 * c * gh * gw, bias=False),
            nn.BatchNorm1d(2 * c * gh * gw),
            nn.ReLU(inplace=True),
        )
        self.deconv = nn.Sequential(
            nn.ConvTranspose2d(2 * c, c, 4, 2, 1, bias=False),  # [B, c, H/2, W/2]
            nn.BatchNorm2d(c),
            nn.ReLU(inplace=True),
            nn.ConvTranspose2d(c, self.image_shape[0], 4, 2, 1),  # [B, C, H, W]
        )
        self.width = c

    def logits(self, z: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        h = self.project(torch.cat([z, self.embed(label)], dim=1))
        return self.deconv(h.view(-1, 2 * self.width, *self.grid))

    def forward(self, z: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.logits(z, label))  # [B, C, H, W] in [-1, 1]


class Discriminator(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        c = cfg.width
        self.image_shape = tuple(cfg.image_shape)
        gh, gw = conv_grid(self.image_shape, cfg.arch)
        _, h, w = self.image_shape
        self.label_plane = nn.Embedding(cfg.n_classes, h * w)
        self.features = nn.Sequential(
            nn.Conv2d(self.image_shape[0] + 1, c, 4, 2, 1),  # [B, c, H/2, W/2]
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(c, 2 * c, 4, 2, 1, bias=False),  # [B, 2c, H/4, W/4]
            nn.BatchNorm2d(2 * c),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Flatten(),
        )
        feat = 2 * c * gh * gw
        self.adv = nn.Linear(feat, 1)
        self.proj = nn.Embedding(cfg.n_classes, feat)
        self.cls = nn.Linear(feat, cfg.n_classes)

    def forward(self, x: torch.Tensor, label: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return (real/fake logit ``[B]``, class logits ``[B, n_classes]``)."""
        plane = self.label_plane(label).view(-1, 1, *self.image_shape[1:])
        h = self.features(torch.cat([x, plane], dim=1))
        adv = self.adv(h).squeeze(1) + (self.proj(label) * h).sum(dim=1) / h.shape[1] ** 0.5
        return adv, self.cls(h)
