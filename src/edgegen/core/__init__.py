"""edgegen.core: what every layer of the toolchain shares, above the runtime.

``errors`` (the toolchain's errors on the runtime's base, ``require_positive``), ``fileio``
(atomic folders, output checks, reports never lost), ``report`` (the ``Report`` base of every
stage's result), ``progress`` (the one progress event every stage emits). The toolchain's
version lives here; the runtime distribution has the same one (released together).
"""

from __future__ import annotations

__version__ = "0.2.0"

__all__ = ["__version__"]
