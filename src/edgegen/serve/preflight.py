"""Every check of ``edgegen serve`` that needs neither a worker nor Ray: a bad command line,
port, bundle, variant, guard or provider is an ``EdgegenError`` (exit 2) before anything starts.
"""

from __future__ import annotations

from edgegen.core.errors import ConfigError
from edgegen.runtime.bundle import load_bundle
from edgegen.runtime.providers import require_providers
from edgegen.serve.config import ServeConfig, validate


def preflight(cfg: ServeConfig) -> str:
    """Returns the variant that will be served."""
    validate(cfg)
    bundle = load_bundle(cfg.bundle)
    variant = cfg.variant or ("fp32" if "fp32" in bundle.variants else next(iter(bundle.variants)))
    bundle.variant_path(variant)  # a BundleError naming the variants the bundle has
    if cfg.guard and bundle.evaluator_path is None:
        raise ConfigError(f"--guard needs the bundle's evaluator and {cfg.bundle} has none; "
                          "export with an evaluator run or serve without --guard")
    if (cfg.steps or cfg.guidance) and not bundle.sampler:
        arch = bundle.manifest["generator"].get("architecture")
        raise ConfigError(f"--steps and --guidance set an iterative sampler, and {cfg.bundle} "
                          f"({arch}) has none; leave them out")
    require_providers([cfg.provider])
    if cfg.address is not None and cfg.address != "auto" and ":" not in cfg.address:
        raise ConfigError(f"--address {cfg.address!r}: expected 'auto' or HOST:PORT of a Ray "
                          "head (e.g. 127.0.0.1:6379)")
    return variant
