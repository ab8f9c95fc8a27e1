"""The Python-backend steps of the Triton ensemble that ``edgegen export-triton`` writes.

This file is copied verbatim into the model repository as ``<name>_latent/1/model.py`` and
``<name>_uint8/1/model.py``; edgegen itself never imports it. Triton's Python backend gives it
``triton_python_backend_utils`` and numpy, and nothing of edgegen: the portable latent and the
uint8 rule come from the two files written beside it, ``edgegen_latent.py`` (edgegen's
``runtime/latent.py`` with its one edgegen import replaced by a local error class) and
``edgegen_postprocess.py`` (``runtime/postprocess.py`` as is). So a Triton deployment computes
exactly what ``edgegen.runtime.Generator`` computes, with no torch and no second implementation.

The model's ``edgegen_step`` parameter picks the step:

* ``latent``: inputs ``label`` INT64 ``[n, 1]`` and ``seed`` UINT64 ``[n, 1]`` -> ``z`` FP32
  ``[n, z_dim]``, row 0 of each seed's stream (``Generator.generate(labels, seeds=seeds)``);
  a label outside ``0..n_classes-1`` is an error response naming it.
* ``uint8``: ``image`` FP32 ``[n, 1, 28, 28]`` -> ``image_u8`` UINT8 by the bundle's rule.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import numpy as np
import triton_python_backend_utils as pb_utils

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # the two helper files

import edgegen_latent  # noqa: E402 - after the path above
import edgegen_postprocess  # noqa: E402


def _param(config: dict[str, Any], key: str) -> str:
    try:
        return str(config["parameters"][key]["string_value"])
    except KeyError:
        raise ValueError(f"model config parameter {key!r} is missing; re-run "
                         "`edgegen export-triton`") from None


class TritonPythonModel:
    """One step of the ensemble (see the module docstring)."""

    def initialize(self, args: dict[str, Any]) -> None:
        config = json.loads(args["model_config"])
        self.step = _param(config, "edgegen_step")
        if self.step not in ("latent", "uint8"):
            raise ValueError(f"unknown edgegen_step {self.step!r}; expected latent or uint8")
        self.z_dim = int(_param(config, "z_dim")) if self.step == "latent" else 0
        self.n_classes = int(_param(config, "n_classes")) if self.step == "latent" else 0

    def execute(self, requests: list[Any]) -> list[Any]:
        """One response per request, in order; a bad request gets an error response and does
        not fail the others batched with it."""
        responses = []
        for request in requests:
            try:
                outputs = self._latent(request) if self.step == "latent" else self._uint8(request)
                responses.append(pb_utils.InferenceResponse(output_tensors=outputs))
            except ValueError as exc:
                responses.append(pb_utils.InferenceResponse(
                    output_tensors=[], error=pb_utils.TritonError(str(exc))))
        return responses

    def _latent(self, request: Any) -> list[Any]:
        labels = pb_utils.get_input_tensor_by_name(request, "label").as_numpy().reshape(-1)
        seeds = pb_utils.get_input_tensor_by_name(request, "seed").as_numpy().reshape(-1)
        bad = labels[(labels < 0) | (labels >= self.n_classes)]
        if bad.size:
            raise ValueError(f"label {int(bad[0])} is out of range: this model has "
                             f"{self.n_classes} classes, labels 0..{self.n_classes - 1}")
        if seeds.shape != labels.shape:
            raise ValueError(f"{seeds.size} seeds for {labels.size} labels: give one seed per "
                             "label")
        z = edgegen_latent.latent_for_seeds([int(s) for s in seeds], self.z_dim)
        return [pb_utils.Tensor("z", z.astype(np.float32))]

    def _uint8(self, request: Any) -> list[Any]:
        image = pb_utils.get_input_tensor_by_name(request, "image").as_numpy()
        return [pb_utils.Tensor("image_u8", edgegen_postprocess.to_uint8(image))]

    def finalize(self) -> None:
        pass
