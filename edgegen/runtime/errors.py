"""One error hierarchy for edgegen.

Every message says what was found, what was expected, and what to do. The CLI turns an
``EdgegenError`` into a short message and a non-zero exit code with no traceback; any other
exception is a bug and keeps its traceback.
"""

from __future__ import annotations


class EdgegenError(Exception):
    """Base class of every error edgegen raises on purpose."""

    exit_code: int = 2  # usage or input error


class ConfigError(EdgegenError):
    """A bad option or combination of options (unknown architecture, negative budget...)."""


class DataError(EdgegenError):
    """Missing, truncated or inconsistent dataset files."""


class CheckpointError(EdgegenError):
    """A run folder or checkpoint that is missing, corrupt or of the wrong kind."""


class BundleError(EdgegenError):
    """A bundle that is missing files, has an unknown schema, or fails its hash checks."""


class ExportError(EdgegenError):
    """The ONNX export could not produce what was asked for (e.g. the exact opset)."""


class ProviderError(EdgegenError):
    """An ONNX Runtime execution provider was asked for but is not available."""


class RuntimeInputError(EdgegenError, ValueError):
    """Bad input to the torch-free runtime (labels out of range, NaN latents...)."""


class OutputError(EdgegenError):
    """An output could not be written. ``text`` is the report that was meant to go there: the
    CLI prints it, so a finished measurement is never lost to a full disk or a bad path."""

    def __init__(self, message: str, text: str | None = None) -> None:
        super().__init__(message)
        self.text = text


class DistributedError(EdgegenError):
    """A training process lost the others (one was killed or hung) or could not join them."""

    exit_code = 1


class CheckFailed(EdgegenError):
    """A gate failed: parity, fidelity or FID outside the requested bounds (exit code 1)."""

    exit_code = 1


def require_positive(config: object, *names: str) -> None:
    """A ConfigError naming the CLI option (``--max-steps``) when one of ``config``'s numeric
    fields ``names`` is not a positive number; ``None`` (not given) passes."""
    for name in names:
        value = getattr(config, name)
        if value is not None and not value > 0:
            raise ConfigError(f"--{name.replace('_', '-')} must be positive, got {value}")
