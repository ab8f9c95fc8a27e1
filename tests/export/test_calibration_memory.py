"""The int8 calibration runs in small batches to bound its memory; the ranges it finds — and so
the int8 model — do not depend on the batch (min / max over the same samples)."""

from __future__ import annotations

from pathlib import Path

import onnx
from onnx import numpy_helper

from edgegen.export.variants import CALIBRATION_BATCH, make_int8
from edgegen.runtime.bundle import load_bundle


def _graph(path: Path) -> tuple[dict[str, bytes], list[bytes]]:
    model = onnx.load(str(path))
    return ({i.name: numpy_helper.to_array(i).tobytes() for i in model.graph.initializer},
            [n.SerializeToString() for n in model.graph.node])


def test_the_int8_model_is_the_same_whatever_the_calibration_batch(tiny_bundle: Path,
                                                                   tmp_path: Path) -> None:
    b = load_bundle(tiny_bundle)
    args = dict(seed=1235, samples=100, z_dim=b.z_dim, n_classes=b.n_classes)
    small, large = tmp_path / "b10.onnx", tmp_path / "b100.onnx"
    assert CALIBRATION_BATCH == 10
    info = make_int8(b.variant_path("fp32"), small, **args)
    make_int8(b.variant_path("fp32"), large, batch=100, **args)
    assert info["calibration_samples"] == 100
    (w_small, n_small), (w_large, n_large) = _graph(small), _graph(large)
    scales = [k for k in w_small if k.endswith("_scale")]
    assert scales and n_small == n_large and w_small == w_large  # every byte of every range
