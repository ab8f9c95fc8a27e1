"""The toolchain's errors, on top of the runtime's base (``edgegen.runtime.errors``).

Toolchain code imports every error from here (the runtime's are re-exported, so there is one
place to look). The CLI maps them to exit codes (``edgegen.cli.common``): 1 for a failed gate or
a lost training process, 2 for everything else a user can fix.
"""

from __future__ import annotations

from edgegen.runtime.errors import (
    BundleError,
    ConfigError,
    EdgegenError,
    ProviderError,
    RuntimeInputError,
)

__all__ = ["BundleError", "CheckFailed", "CheckpointError", "ConfigError", "DataError",
           "DistributedError", "EdgegenError", "ExportError", "OutputError", "ProviderError",
           "RuntimeInputError", "require_positive"]


class DataError(EdgegenError):
    """Missing, truncated or inconsistent dataset files."""


class CheckpointError(EdgegenError):
    """A run folder or checkpoint that is missing, corrupt or of the wrong kind."""


class ExportError(EdgegenError):
    """The ONNX export could not produce what was asked for (e.g. the exact opset)."""


class OutputError(EdgegenError):
    """An output could not be written. ``text`` is the report that was meant to go there: the
    CLI prints it, so a finished measurement is never lost to a full disk or a bad path."""

    def __init__(self, message: str, text: str | None = None) -> None:
        super().__init__(message)
        self.text = text


class DistributedError(EdgegenError):
    """A training process lost the others (one was killed or hung) or could not join them."""


class CheckFailed(EdgegenError):
    """A gate failed: parity, fidelity or FID outside the requested bounds (exit code 1)."""


def require_positive(config: object, *names: str) -> None:
    """A ConfigError naming the CLI option (``--max-steps``) when one of ``config``'s numeric
    fields ``names`` is not a positive number; ``None`` (not given) passes."""
    for name in names:
        value = getattr(config, name)
        if value is not None and not value > 0:
            raise ConfigError(f"--{name.replace('_', '-')} must be positive, got {value}")
