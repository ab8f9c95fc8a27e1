"""The shapes of edgegen's networks: plain dataclasses, importable without torch.

The model modules import this one; ``registry`` imports the model modules. Nothing imports back.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from edgegen.runtime.errors import ConfigError

ARCHITECTURES = ("cdcgan", "cmlp", "cvae", "cflow")


@dataclass(frozen=True)
class ClassifierConfig:
    """Shape of the evaluator CNN (``edgegen.models.classifier``)."""

    width: int = 32
    feature_dim: int = 128
    n_classes: int = 10
    dropout: float = 0.3

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class ModelConfig:
    """Shape of the networks; one dataclass for every family, unused fields are ignored."""

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

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelConfig:
        known = {f.name for f in fields(cls)}
        kw = {k: v for k, v in d.items() if k in known}
        if "image_shape" in kw:  # JSON gives a list
            kw["image_shape"] = tuple(int(v) for v in kw["image_shape"])
        return cls(**kw)


def model_config(arch: str, **overrides: Any) -> ModelConfig:
    """The default shape for ``arch``; the conditional VAE uses a smaller latent, and cflow's
    latent is the initial noise image (z_dim = C*H*W)."""
    if arch not in ARCHITECTURES:
        raise ConfigError(f"unknown architecture {arch!r}; expected one of "
                          f"{', '.join(ARCHITECTURES)}")
    base = {"cvae": ModelConfig(arch="cvae", z_dim=16),
            "cflow": ModelConfig(arch="cflow", z_dim=28 * 28, width=32, embed_dim=128),
            }.get(arch, ModelConfig(arch=arch))
    given = {k: v for k, v in overrides.items() if v is not None}
    cfg = ModelConfig(**{**base.to_dict(), **given})
    if arch == "cflow" and "z_dim" not in given:
        cfg = replace(cfg, z_dim=math.prod(cfg.image_shape))
    return cfg
