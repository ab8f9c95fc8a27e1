"""The runtime's errors: the base of edgegen's one error hierarchy.

Every message says what was found, what was expected, and what to do. An app that embeds a
bundle catches ``EdgegenError`` (or one of the subclasses below); the toolchain adds its own
subclasses in ``edgegen.core.errors`` and decides exit codes in its CLI — the runtime knows
nothing of command lines.
"""

from __future__ import annotations


class EdgegenError(Exception):
    """Base class of every error edgegen raises on purpose."""


class ConfigError(EdgegenError):
    """A bad option or combination of options (unknown provider, unreadable key file...)."""


class BundleError(EdgegenError):
    """A bundle that is missing files, has an unknown schema, or fails its hash checks."""


class ProviderError(EdgegenError):
    """An ONNX Runtime execution provider was asked for but is not available."""


class RuntimeInputError(EdgegenError, ValueError):
    """Bad input to the torch-free runtime (labels out of range, NaN latents...)."""
