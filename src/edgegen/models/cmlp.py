"""The MLP conditional GAN of the article edgegen comes from, done right.

The generator is the article's MLP: ``[z, label embedding] -> 4h -> 8h -> 16h -> 784`` with
BatchNorm and LeakyReLU, tanh out (``h = width``). What keeps it from drawing one image per label
(mode collapse) is its partner:

* **projection conditioning** (Miyato & Koyama, 2018): the discriminator scores an image with
  ``psi(phi(x)) + <embed(y), phi(x)>`` instead of reading the label as an extra input, so the
  label cannot be a shortcut the score leans on while ignoring the image;
* **spectral normalisation** of every layer (Miyato et al., 2018): a 1-Lipschitz critic whose
  gradients stay informative, with the hinge loss (``edgegen.training.train``);
* a **label-grouped minibatch standard deviation** (after Karras et al., 2018): each sample also
  shows the discriminator how much the samples of ITS label in the batch differ from one another.
  Real digits of one label vary; a generator that draws one image per label gives ~0 and is told
  apart at once. (The plain, whole-batch version is blind to this: a batch of ten collapsed
  labels still varies a lot.) Real and fake batches carry the same labels, so the statistic is
  computed on equal footing.

``ModelConfig(d_conditioning="concat", spectral_norm=False, mbstd=False, d_dropout=0.3)`` — the
dataclass defaults — is the earlier concatenating discriminator with dropout, which collapses.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from edgegen.core.errors import ConfigError
from edgegen.models.config import ModelConfig

D_CONDITIONING = ("concat", "projection")


class Generator(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        h = 4 * cfg.width  # 256 by default
        self.image_shape = tuple(cfg.image_shape)
        self.embed = nn.Embedding(cfg.n_classes, cfg.embed_dim)
        self.net = nn.Sequential(
            nn.Linear(cfg.z_dim + cfg.embed_dim, h), nn.LeakyReLU(0.2, inplace=True),
            nn.Linear(h, 2 * h), nn.BatchNorm1d(2 * h), nn.LeakyReLU(0.2, inplace=True),
            nn.Linear(2 * h, 4 * h), nn.BatchNorm1d(4 * h), nn.LeakyReLU(0.2, inplace=True),
            nn.Linear(4 * h, math.prod(self.image_shape)),
        )

    def logits(self, z: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([z, self.embed(label)], dim=1)).view(-1, *self.image_shape)

    def forward(self, z: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.logits(z, label))  # [B, C, H, W] in [-1, 1]


def label_std(h: torch.Tensor, label: torch.Tensor, n_classes: int,
              batch_sum: Callable[[torch.Tensor], torch.Tensor] | None = None) -> torch.Tensor:
    """Per sample, the mean over features of the standard deviation of ``h`` among the samples
    of the batch that share its label: ``h [B, F]``, ``label [B]`` -> ``[B, 1]``.

    A label seen once in the batch has no spread to measure and gives ~0 for real and fake
    alike (both batches carry the same labels). Every statistic is a sum over the batch:
    ``batch_sum`` (training on several processes: a differentiable all-reduce) makes it a sum
    over the global batch, so the feature is the one a single process would compute.
    """
    total = batch_sum or (lambda t: t)
    onehot = nn.functional.one_hot(label, n_classes).to(h.dtype)  # [B, C]
    n = total(onehot.sum(0))  # [C] samples per label
    mean = total(onehot.T @ h) / n.clamp(min=1)[:, None]  # [C, F]
    var = total(onehot.T @ (h - mean[label]).pow(2)) / (n - 1).clamp(min=1)[:, None]  # [C, F]
    return (var + 1e-8).sqrt().mean(1)[label][:, None]  # [B, 1]


class Discriminator(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        if cfg.d_conditioning not in D_CONDITIONING:
            raise ConfigError(f"cmlp: d_conditioning {cfg.d_conditioning!r} is not one of "
                              f"{', '.join(D_CONDITIONING)}")
        h = 4 * cfg.width
        self.n_classes, self.mbstd = cfg.n_classes, cfg.mbstd
        # sums over the batch for label_std; the training loop sets a global sum on several
        # processes (edgegen.training.layers.GlobalSum)
        self.batch_sum: Callable[[torch.Tensor], torch.Tensor] | None = None
        self.projection = cfg.d_conditioning == "projection"
        sn: Any = nn.utils.parametrizations.spectral_norm if cfg.spectral_norm else (lambda m: m)
        drop = [nn.Dropout(cfg.d_dropout)] if cfg.d_dropout > 0 else []
        self.embed = None if self.projection else nn.Embedding(cfg.n_classes, cfg.embed_dim)
        n_in = math.prod(cfg.image_shape) + (0 if self.projection else cfg.embed_dim)
        self.net = nn.Sequential(
            sn(nn.Linear(n_in, 2 * h)), nn.LeakyReLU(0.2, inplace=True), *drop,
            sn(nn.Linear(2 * h, h)), nn.LeakyReLU(0.2, inplace=True), *drop,
        )
        feat = h + (1 if cfg.mbstd else 0)
        self.adv = sn(nn.Linear(feat, 1))
        # projection: the label's embedding is a direction in feature space; the score adds
        # how far the features point along it
        self.proj = sn(nn.Embedding(cfg.n_classes, feat)) if self.projection else None

    def features(self, x: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        """``x [B, C, H, W]``, ``label [B]`` -> ``[B, h (+1 with mbstd)]``."""
        inp = x.flatten(1)
        if self.embed is not None:
            inp = torch.cat([inp, self.embed(label)], dim=1)
        f = self.net(inp)
        if self.mbstd:
            f = torch.cat([f, label_std(f, label, self.n_classes, self.batch_sum)], dim=1)
        return f

    def forward(self, x: torch.Tensor, label: torch.Tensor) -> tuple[torch.Tensor, None]:
        """Return (real/fake score ``[B]``, no class logits)."""
        f = self.features(x, label)
        score = self.adv(f).squeeze(1)
        if self.proj is not None:
            score = score + (self.proj(label) * f).sum(1)
        return score, None
