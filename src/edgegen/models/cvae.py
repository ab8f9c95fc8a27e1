"""Conditional VAE. Its decoder is the generator that gets exported.

The decoder shares the conditional DCGAN generator's shape. Its pre-activation ``a`` gives the
image ``tanh(a)`` in [-1, 1] and, equivalently, pixel probabilities ``sigmoid(2a)`` for the
Bernoulli reconstruction loss.

**Learned prior** (``ModelConfig.prior = "learned"``): each label has its own Gaussian prior
``p(z | y) = N(mu_y, diag(exp(2 s_y)))``, trained with the encoder and decoder through the KL
term. A standard-normal prior asks the codes of every digit to fill one ball; the samples drawn
from it then land where the decoder was rarely trained (the "holes" between the codes of real
digits) and come out as ambiguous digits. With a prior per label, the prior follows where that
label's codes are. The exported graph keeps the contract — its input ``z`` is standard normal (the
portable latent) — because the decoder maps it first: ``z' = mu_y + exp(s_y) * z``.
"""

from __future__ import annotations

import torch
from torch import nn

from edgegen.core.errors import ConfigError
from edgegen.models.cdcgan import Generator as _ConvGenerator
from edgegen.models.config import ModelConfig, conv_grid

__all__ = ["PRIORS", "Decoder", "Encoder"]
PRIORS = ("standard", "learned")


class Decoder(_ConvGenerator):
    """p(x | z, y), with the prior p(z | y) when it is learned."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__(cfg)
        if cfg.prior not in PRIORS:
            raise ConfigError(f"cvae: prior {cfg.prior!r} is not one of {', '.join(PRIORS)}")
        self.learned_prior = cfg.prior == "learned"
        if self.learned_prior:  # starts as N(0, I) for every label
            self.prior_mu = nn.Embedding(cfg.n_classes, cfg.z_dim)
            self.prior_logstd = nn.Embedding(cfg.n_classes, cfg.z_dim)
            nn.init.zeros_(self.prior_mu.weight)
            nn.init.zeros_(self.prior_logstd.weight)

    def prior(self, label: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean, log-variance) of p(z | y), each ``[B, z_dim]``."""
        if not self.learned_prior:
            zero = torch.zeros(label.shape[0], self.z_dim, device=label.device)
            return zero, zero
        return self.prior_mu(label), 2 * self.prior_logstd(label)

    def decode_logits(self, code: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        """Pre-activation image ``[B, C, H, W]`` of a latent CODE (the encoder's space)."""
        return super().logits(code, label)

    def logits(self, z: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        """``z`` standard normal ``[B, z_dim]``: drawn from the label's prior, then decoded."""
        if self.learned_prior:
            z = self.prior_mu(label) + torch.exp(self.prior_logstd(label)) * z
        return self.decode_logits(z, label)


class Encoder(nn.Module):
    """q(z | x, y): returns (mu, logvar), each ``[B, z_dim]``."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        c = cfg.width
        self.image_shape = tuple(cfg.image_shape)
        gh, gw = conv_grid(self.image_shape, cfg.arch)
        self.label_plane = nn.Embedding(cfg.n_classes, self.image_shape[1] * self.image_shape[2])
        self.net = nn.Sequential(
            nn.Conv2d(self.image_shape[0] + 1, c, 4, 2, 1),
            nn.LeakyReLU(0.2, inplace=True),  # [B, c, H/2, W/2]
            nn.Conv2d(c, 2 * c, 4, 2, 1), nn.LeakyReLU(0.2, inplace=True),  # [B, 2c, H/4, W/4]
            nn.Flatten(),
        )
        self.mu = nn.Linear(2 * c * gh * gw, cfg.z_dim)
        self.logvar = nn.Linear(2 * c * gh * gw, cfg.z_dim)

    def forward(self, x: torch.Tensor, label: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        plane = self.label_plane(label).view(-1, 1, *self.image_shape[1:])
        h = self.net(torch.cat([x, plane], dim=1))
        return self.mu(h), self.logvar(h).clamp(-10.0, 10.0)
