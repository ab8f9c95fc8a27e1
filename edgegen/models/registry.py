"""Architecture names -> model builders. No globals beyond this table of constructors."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from edgegen.errors import ConfigError

ARCHITECTURES = ("cdcgan", "cmlp", "cvae")


@dataclass(frozen=True)
class ClassifierConfig:
    """Shape of the evaluator CNN (``edgegen.models.classifier``); here so configs stay
    importable without torch."""

    width: int = 32
    feature_dim: int = 128
    n_classes: int = 10
    dropout: float = 0.3

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class ModelConfig:
    """Shape of the networks; one dataclass for all three, unused fields are ignored."""

    arch: str = "cdcgan"
    z_dim: int = 100
    n_classes: int = 10
    embed_dim: int = 50  # label embedding width fed to the generator
    width: int = 64  # base channels (conv models) or scaled hidden width (MLP)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


def model_config(arch: str, **overrides: Any) -> ModelConfig:
    """The default shape for ``arch``; the conditional VAE uses a smaller latent."""
    if arch not in ARCHITECTURES:
        raise ConfigError(f"unknown architecture {arch!r}; expected one of "
                          f"{', '.join(ARCHITECTURES)}")
    base = {"cvae": ModelConfig(arch="cvae", z_dim=16)}.get(arch, ModelConfig(arch=arch))
    return ModelConfig(**{**base.to_dict(), **{k: v for k, v in overrides.items()
                                               if v is not None}})


def build_models(cfg: ModelConfig) -> dict[str, Any]:
    """Build the networks of ``cfg.arch``: always a ``generator``, plus its training partner."""
    from edgegen.models import cdcgan, cmlp, cvae

    if cfg.arch == "cdcgan":
        return {"generator": cdcgan.Generator(cfg), "discriminator": cdcgan.Discriminator(cfg)}
    if cfg.arch == "cmlp":
        return {"generator": cmlp.Generator(cfg), "discriminator": cmlp.Discriminator(cfg)}
    if cfg.arch == "cvae":
        return {"generator": cvae.Decoder(cfg), "encoder": cvae.Encoder(cfg)}
    raise ConfigError(f"unknown architecture {cfg.arch!r}; expected one of "
                      f"{', '.join(ARCHITECTURES)}")
