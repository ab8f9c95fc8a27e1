"""edgegen.runtime: run a bundle anywhere Python and ONNX Runtime run — no torch, no onnx.

This package is the bottom layer of edgegen. It imports numpy, onnxruntime, jsonschema (the
manifest's validator, on first use) and the standard library only (an import-linter contract in
pyproject.toml enforces it), so an app can embed a bundle with ``pip install numpy onnxruntime
jsonschema`` and ``pip install --no-deps edgegen``:

>>> from edgegen.runtime import Generator
>>> g = Generator.load("bundles/cdcgan", provider="cpu")   # schema, files, links, every sha256
>>> g.generate([3, 1, 4], seed=42)                         # uint8 [3, 28, 28]

Modules: ``generator`` (``Generator``), ``manifest`` (the bounded reader and the one JSON Schema,
``bundle.schema.json``), ``bundle`` (file rules, hashing, checked reads), ``signature``
(``bundle.sig`` checks; imports model_signing only when a public key is given), ``providers``
(execution providers, sessions, no silent fallback), ``sessions`` (batched runs of the bundle's
models), ``latent`` (the portable latent), ``inputs`` (request checks), ``postprocess`` (the
uint8 rule), ``guard`` (redraw what the evaluator rejects). ``errors``, ``interrupts``, ``fileio``
and ``report`` are the foundations every other layer of edgegen shares.
"""

from __future__ import annotations

from edgegen.runtime.errors import BundleError, EdgegenError, ProviderError, RuntimeInputError
from edgegen.runtime.generator import Generation, Generator, GuardStats

__all__ = ["BundleError", "EdgegenError", "Generation", "Generator", "GuardStats",
           "ProviderError", "RuntimeInputError"]
