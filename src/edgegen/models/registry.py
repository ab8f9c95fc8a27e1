"""Architecture names -> model builders. No globals beyond this table of constructors."""

from __future__ import annotations

from typing import Any

from edgegen.core.errors import ConfigError
from edgegen.models import cdcgan, cflow, cflow1, cmlp, cvae
from edgegen.models.config import ARCHITECTURES, ModelConfig


def build_models(cfg: ModelConfig) -> dict[str, Any]:
    """Build the networks of ``cfg.arch``: always a ``generator``, plus its training partner."""
    if cfg.arch == "cdcgan":
        return {"generator": cdcgan.Generator(cfg), "discriminator": cdcgan.Discriminator(cfg)}
    if cfg.arch == "cmlp":
        return {"generator": cmlp.Generator(cfg), "discriminator": cmlp.Discriminator(cfg)}
    if cfg.arch == "cflow":  # trained by flow matching alone: no partner network
        return {"generator": cflow.Generator(cfg)}
    if cfg.arch == "cflow1":  # made by distillation from a cflow teacher: no partner network
        return {"generator": cflow1.Generator(cfg)}
    if cfg.arch == "cvae":
        return {"generator": cvae.Decoder(cfg), "encoder": cvae.Encoder(cfg)}
    raise ConfigError(f"unknown architecture {cfg.arch!r}; expected one of "
                      f"{', '.join(ARCHITECTURES)}")
