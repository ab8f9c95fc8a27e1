"""Class-conditional flow matching (rectified flow): a small UNet velocity field and the fixed-step
Euler sampler with classifier-free guidance that is exported as the generator.

Training (``training.train._flow_step``): ``x_t = (1 - t) x0 + t x1`` with ``x0 ~ N(0, I)`` and
``x1`` a real digit; the UNet predicts the velocity ``x1 - x0``; labels are dropped to the null
class ``n_classes`` with a small probability, so the same network also learns ``v(x, t, null)``.

Sampling (``Generator.forward``, unrolled into ``model.onnx``): start at ``x = z`` (the portable
latent reshaped to ``[B, C, H, W]``) at ``t = 0``; for ``i = 0 .. N - 1`` on the grid
``t_i = i / N``: ``v = v_u + w (v_c - v_u)`` (``v_c = v(x, t_i, label)``, ``v_u = v(x, t_i,
null)``; ``w = 1`` is one conditional call, no guidance), ``x = x + (t_{i+1} - t_i) v``; the image
is ``clamp(x, -1, 1)``. Every float32 operation of the loop is written so that
``edgegen.runtime.sampler`` repeats it in numpy over ``denoiser.onnx`` (the UNet alone).

fp16 hazards, and what the design does about them: the time embedding ``sin / cos(t * f)`` has
arguments up to ~1000 (fp16 cannot represent them to better than 0.5), so the fp16 variants keep
it in float32 (export keeps the nodes that compute it out of the fp16 conversion); GroupNorm is
kept in float32 there too (its variance sums squares over a whole group).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from edgegen.core.errors import ConfigError
from edgegen.models.config import ModelConfig, conv_grid
from edgegen.runtime.inputs import check_guidance, check_steps
from edgegen.runtime.sampler import time_grid

TIME_FREQ_MAX = 1000.0  # the sinusoidal embedding's highest angular frequency (t in [0, 1])


def _groups(channels: int) -> int:
    return math.gcd(8, channels)


class ResBlock(nn.Module):
    """GroupNorm -> SiLU -> conv, then adaptive GroupNorm (scale, shift from the embedding)."""

    def __init__(self, cin: int, cout: int, emb_dim: int) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(_groups(cin), cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.emb = nn.Linear(emb_dim, 2 * cout)
        self.norm2 = nn.GroupNorm(_groups(cout), cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()
        self.cout = cout
        nn.init.zeros_(self.conv2.weight)  # each block starts as the identity
        nn.init.zeros_(self.conv2.bias)

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))  # [B, cout, h, w]
        # [B, cout, 1, 1] each; sliced, not chunk(): torch's exporter writes chunk as a Split
        # carrying opset 18's num_outputs attribute, which onnx's checker refuses at opset 17
        e = self.emb(emb)[:, :, None, None]
        h = self.norm2(h) * (1 + e[:, :self.cout]) + e[:, self.cout:]
        return self.skip(x) + self.conv2(F.silu(h))


class UNet(nn.Module):
    """The velocity field ``v(x, t, label)``.

    ``x: float32 [B, C, H, W]``, ``t: float32 [B]`` in [0, 1], ``label: int64 [B]`` in
    ``[0, n_classes]`` (``n_classes`` is the null class) -> ``float32 [B, C, H, W]``.
    Three resolutions (H, H/2, H/4) with ``width // 2``, ``width`` and ``2 width`` channels.
    """

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        c_img, h, w = cfg.image_shape
        conv_grid(cfg.image_shape, "cflow's UNet")  # refuses a size it cannot halve twice
        if cfg.width < 8 or cfg.width % 4:
            raise ConfigError(f"cflow needs --width a multiple of 4 and >= 8, got {cfg.width}")
        self.image_shape = (c_img, h, w)
        self.n_classes = cfg.n_classes
        c0, c1, c2 = cfg.width // 2, cfg.width, 2 * cfg.width
        e = cfg.embed_dim
        half = e // 4
        # angular frequencies 1 .. TIME_FREQ_MAX, geometric: [half]
        self.register_buffer("freqs", torch.exp(torch.linspace(
            0.0, math.log(TIME_FREQ_MAX), half, dtype=torch.float32)), persistent=False)
        self.time_mlp = nn.Sequential(nn.Linear(2 * half, e), nn.SiLU(), nn.Linear(e, e))
        self.label_emb = nn.Embedding(cfg.n_classes + 1, e)  # + the null class
        self.inp = nn.Conv2d(c_img, c0, 3, padding=1)
        self.down0 = ResBlock(c0, c0, e)  # [B, c0, H, W]
        self.pool0 = nn.Conv2d(c0, c1, 3, stride=2, padding=1)  # [B, c1, H/2, W/2]
        self.down1 = ResBlock(c1, c1, e)
        self.pool1 = nn.Conv2d(c1, c2, 3, stride=2, padding=1)  # [B, c2, H/4, W/4]
        self.mid0 = ResBlock(c2, c2, e)
        self.mid1 = ResBlock(c2, c2, e)
        self.up1 = ResBlock(c2 + c1, c1, e)  # after nearest upsampling to H/2, with skip
        self.up0 = ResBlock(c1 + c0, c0, e)  # at H, with skip
        self.out_norm = nn.GroupNorm(_groups(c0), c0)
        self.out = nn.Conv2d(c0, c_img, 3, padding=1)

    def embedding(self, t: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        """``[B, embed_dim]``; the sinusoids are computed in float32 whatever the input."""
        angles = t.float()[:, None] * self.freqs[None, :]  # [B, half]
        sinus = torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)  # [B, 2 half]
        return F.silu(self.time_mlp(sinus) + self.label_emb(label))

    def forward(self, x: torch.Tensor, t: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        emb = self.embedding(t, label)
        h0 = self.down0(self.inp(x), emb)  # [B, c0, H, W]
        h1 = self.down1(self.pool0(h0), emb)  # [B, c1, H/2, W/2]
        h = self.mid1(self.mid0(self.pool1(h1), emb), emb)  # [B, c2, H/4, W/4]
        h = F.interpolate(h, scale_factor=2.0, mode="nearest")
        h = self.up1(torch.cat([h, h1], dim=1), emb)  # [B, c1, H/2, W/2]
        h = F.interpolate(h, scale_factor=2.0, mode="nearest")
        h = self.up0(torch.cat([h, h0], dim=1), emb)  # [B, c0, H, W]
        return self.out(F.silu(self.out_norm(h)))


class Generator(nn.Module):
    """The bundle's generator: ``forward(z, label) -> image`` runs the Euler sampler with
    classifier-free guidance (``steps``, ``guidance``; see the module docstring)."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.net = UNet(cfg)
        self.z_dim, self.n_classes = cfg.z_dim, cfg.n_classes
        self.image_shape = tuple(cfg.image_shape)
        if cfg.z_dim != math.prod(self.image_shape):
            raise ConfigError(f"cflow's z is the initial noise image: z_dim must be "
                              f"{math.prod(self.image_shape)} (C*H*W), got {cfg.z_dim}")
        self.null_label = cfg.n_classes
        self.steps, self.guidance = 1, 1.0
        self.set_sampler(cfg.sampler_steps, cfg.guidance)

    def set_sampler(self, steps: int, guidance: float) -> None:
        self.steps, self.guidance = check_steps(steps), check_guidance(guidance)

    def predict(self, x: torch.Tensor, t: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        """The network's velocity ``[B, C, H, W]`` at per-sample times ``t: [B]`` for labels
        ``[B]`` (the null class allowed), unguided: what training regresses. A method of the
        generator so that on several processes the call goes through its DDP wrapper."""
        return self.net(x, t, label)

    def velocity(self, x: torch.Tensor, t: float, label: torch.Tensor) -> torch.Tensor:
        """The guided velocity at time ``t`` (a grid value): one call of the UNet, on the
        doubled batch ``[x; x]`` with labels ``[label; null]`` when guidance != 1."""
        b = x.shape[0]
        if self.guidance == 1.0:
            return self.net(x, torch.full((b,), t, dtype=torch.float32, device=x.device), label)
        t2 = torch.full((2 * b,), t, dtype=torch.float32, device=x.device)
        null = torch.full_like(label, self.null_label)
        v = self.net(torch.cat([x, x]), t2, torch.cat([label, null]))  # [2B, C, H, W]
        v_c, v_u = v[:b], v[b:]
        return v_u + torch.tensor(self.guidance, dtype=torch.float32) * (v_c - v_u)

    def trajectory(self, z: torch.Tensor, label: torch.Tensor) -> list[torch.Tensor]:
        """The state after each Euler step (before clamping): ``steps`` tensors
        ``[B, C, H, W]``; ``z: [B, z_dim]`` is the state at ``t = 0``."""
        x = z.reshape(-1, *self.image_shape)
        grid = time_grid(self.steps)
        out = []
        for i in range(self.steps):
            dt = torch.tensor(float(np.float32(grid[i + 1] - grid[i])), dtype=torch.float32)
            x = x + dt * self.velocity(x, float(grid[i]), label)
            out.append(x)
        return out

    def forward(self, z: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        return self.trajectory(z, label)[-1].clamp(-1.0, 1.0)  # [B, C, H, W] in [-1, 1]

