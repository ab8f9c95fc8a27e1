"""The shapes of edgegen's networks: plain dataclasses, importable without torch.

The model modules import this one; ``registry`` imports the model modules. Nothing imports back.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from edgegen.runtime.errors import ConfigError

ARCHITECTURES = ("cdcgan", "cmlp", "cvae")


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
