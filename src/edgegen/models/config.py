"""The shapes of edgegen's networks: plain dataclasses, importable without torch.

The model modules import this one; ``registry`` imports the model modules. Nothing imports back.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from edgegen.core.errors import ConfigError

# cflow1 is made by `edgegen distill` only (the one-call student of a cflow teacher)
ARCHITECTURES = ("cdcgan", "cmlp", "cvae", "cflow", "cflow1")


@dataclass(frozen=True)
class ClassifierConfig:
    """Shape of the evaluator CNN (``edgegen.models.classifier``)."""

    width: int = 32
    feature_dim: int = 128
    n_classes: int = 10
    dropout: float = 0.3
    image_shape: tuple[int, int, int] = (1, 28, 28)  # (C, H, W) of the images it judges

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ClassifierConfig:
        kw = {k: v for k, v in d.items() if k in {f.name for f in fields(cls)}}
        if "image_shape" in kw:  # JSON gives a list
            kw["image_shape"] = tuple(int(v) for v in kw["image_shape"])
        return cls(**kw)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class ModelConfig:
    """Shape of the networks; one dataclass for every family, unused fields are ignored.

    The defaults of the fields after ``width`` describe the networks as they were before those
    options existed, so a checkpoint written then (its stored config lacks them) still builds
    the network its weights fit. New runs take their family's choices from ``ARCH_MODEL``.
    """

    arch: str = "cdcgan"
    z_dim: int = 100
    n_classes: int = 10
    embed_dim: int = 50  # label embedding width fed to the generator (cflow: label + time)
    width: int = 64  # base channels (conv models) or scaled hidden width (MLP)
    image_shape: tuple[int, int, int] = (1, 28, 28)  # (C, H, W) of the generated images
    # cflow's sampler: Euler steps and classifier-free guidance w (1 = none) used for the sample
    # grids and fidelity during training, and by export unless --steps / --guidance say otherwise
    sampler_steps: int = 4
    guidance: float = 2.0
    # cmlp's discriminator: how it sees the label and the batch
    d_conditioning: str = "concat"  # "concat" (label embedding joins the input) | "projection"
    spectral_norm: bool = False  # spectral normalisation of every discriminator layer
    mbstd: bool = False  # label-grouped minibatch standard deviation feature (anti-collapse)
    d_dropout: float = 0.3
    # cvae: "standard" N(0, I) prior, or "learned" (a Gaussian per label, folded into the decoder)
    prior: str = "standard"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelConfig:
        known = {f.name for f in fields(cls)}
        kw = {k: v for k, v in d.items() if k in known}
        if "image_shape" in kw:  # JSON gives a list
            kw["image_shape"] = tuple(int(v) for v in kw["image_shape"])
        return cls(**kw)


# What a new run of each family gets beyond the dataclass defaults.
ARCH_MODEL: dict[str, dict[str, Any]] = {
    # the MLP cGAN without mode collapse: a projection discriminator (Miyato & Koyama, 2018)
    # with spectral norm and a per-label minibatch standard deviation, no dropout
    "cmlp": {"d_conditioning": "projection", "spectral_norm": True, "mbstd": True,
             "d_dropout": 0.0},
    "cvae": {"z_dim": 16, "prior": "learned"},
    # flow matching: a UNet of width 32; z is the initial noise image (set from image_shape)
    "cflow": {"width": 32, "embed_dim": 128},
    # the one-call student: its teacher's UNet (distill copies the teacher's shape over this)
    "cflow1": {"width": 32, "embed_dim": 128},
}
# families whose latent is the initial noise image (z_dim = C*H*W)
NOISE_IMAGE_LATENT = ("cflow", "cflow1")


def conv_grid(image_shape: tuple[int, int, int], who: str) -> tuple[int, int]:
    """(H/4, W/4): the coarsest grid of a conv stack that halves the image twice; a ConfigError
    naming ``who`` for an image that cannot be halved twice (H or W not a multiple of 4, or
    below 4)."""
    c, h, w = image_shape
    if c not in (1, 3):
        raise ConfigError(f"{who} draws 1 (grayscale) or 3 (RGB) channels; got {c} in image "
                          f"shape {c}x{h}x{w}")
    if h < 4 or w < 4 or h % 4 or w % 4:
        raise ConfigError(f"{who} halves the image twice (two stride-2 stages); image size "
                          f"{h}x{w} is not a multiple of 4 — pass --image-size with a multiple "
                          "of 4 (8, 16, 28, 32, ...)")
    return h // 4, w // 4


def model_config(arch: str, **overrides: Any) -> ModelConfig:
    """The default shape of a new ``arch`` run (``ARCH_MODEL``), with ``overrides`` (None: keep);
    cflow's (and its student's) latent is the initial noise image (z_dim = C*H*W)."""
    if arch not in ARCHITECTURES:
        raise ConfigError(f"unknown architecture {arch!r}; expected one of "
                          f"{', '.join(ARCHITECTURES)}")
    base = {**ModelConfig(arch=arch).to_dict(), **ARCH_MODEL.get(arch, {})}
    given = {k: v for k, v in overrides.items() if v is not None}
    cfg = ModelConfig(**{**base, **given})
    if arch in NOISE_IMAGE_LATENT and "z_dim" not in given:
        cfg = replace(cfg, z_dim=math.prod(cfg.image_shape))
    return cfg
