"""edgegen.runtime: run a bundle anywhere Python and ONNX Runtime run — no torch, no onnx.

This package is its own distribution, ``edgegen-runtime`` (``pip install edgegen-runtime``), and
the bottom layer of the edgegen toolchain. It imports numpy, onnxruntime, jsonschema (the
manifest's validator, on first use) and the standard library only (an import-linter contract in
pyproject.toml enforces it):

>>> from edgegen.runtime import Generator
>>> g = Generator.load("bundles/cdcgan", provider="cpu")   # schema, files, links, every sha256
>>> g.generate([3, 1, 4], seed=42)                         # uint8 [3, 28, 28]

Modules: ``generator`` (``Generator``), ``manifest`` (the bounded reader and the one JSON Schema,
``bundle.schema.json``), ``bundle`` (file rules, hashing, checked reads), ``signature``
(``bundle.sig`` checks; imports model_signing only when a public key is given), ``providers``
(execution providers, sessions, no silent fallback), ``sessions`` (batched runs of the bundle's
models), ``latent`` (the portable latent), ``inputs`` (request checks), ``postprocess`` (the
uint8 rule), ``guard`` (redraw what the evaluator rejects). Its own small base:
``errors`` (``EdgegenError`` and the runtime's subclasses), ``fileio`` (atomic file writes,
hashes), ``interrupts`` (SIGINT/SIGTERM stop a commit).
"""

from __future__ import annotations

from edgegen.runtime.errors import BundleError, EdgegenError, ProviderError, RuntimeInputError
from edgegen.runtime.generator import Generation, Generator, GuardStats

__version__ = "0.2.0"  # released together with the edgegen toolchain (edgegen.core.__version__)

__all__ = ["__version__", "BundleError", "EdgegenError", "Generation", "Generator", "GuardStats",
           "ProviderError", "RuntimeInputError"]
