"""Golden data: fixed-seed inputs and the PyTorch float32 CPU outputs they must reproduce.

Written twice, from the same arrays:

* the ONNX model-zoo layout, ``golden/test_data_set_N/input_0.pb`` (z), ``input_1.pb`` (label),
  ``output_0.pb`` (image) — serialized ``TensorProto`` files that ``onnx.numpy_helper``,
  ``onnx_test_runner`` and ``onnxruntime_perf_test`` read;
* Polygraphy's JSON formats, ``golden/polygraphy_inputs.json`` (a list of feed dicts) and
  ``golden/polygraphy_outputs.json`` (``RunResults``), so that
  ``polygraphy run model.onnx --onnxrt --load-inputs golden/polygraphy_inputs.json
  --load-outputs golden/polygraphy_outputs.json`` checks them.
"""

from __future__ import annotations

import base64
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgegen.core.errors import BundleError
from edgegen.runtime.bundle import Bundle

SET_SIZE = 10  # every set asks for each digit once: together the sets cover every label
POLYGRAPHY_RUNNER = "edgegen-pytorch-fp32-cpu"


@dataclass(frozen=True)
class GoldenSet:
    z: np.ndarray  # float32 [B, z_dim]
    label: np.ndarray  # int64 [B]
    image: np.ndarray  # float32 [B, 1, 28, 28]
    seed: int
    start: int  # the sets use samples start .. start + B - 1 of the seed's latent stream


def golden_inputs(seed: int, n_sets: int, z_dim: int, n_classes: int
                  ) -> list[tuple[np.ndarray, np.ndarray, int]]:
    """(z, label, start) per set: set k holds samples k*B .. k*B + B - 1 of ``seed``."""
    from edgegen.runtime.latent import latent

    size = max(SET_SIZE, n_classes)
    out = []
    for k in range(n_sets):
        start = k * size
        labels = (np.arange(size) % n_classes).astype(np.int64)
        out.append((latent(seed, size, z_dim, start=start), labels, start))
    return out


def write_tensor(path: Path, array: np.ndarray, name: str) -> None:
    from onnx import numpy_helper

    path.write_bytes(numpy_helper.from_array(array, name=name).SerializeToString())


def parse_tensor(data: bytes, where: str = "a golden file") -> np.ndarray:
    """A serialized ``TensorProto`` as an array; a BundleError naming ``where`` when it is not
    one (a damaged golden file is bad input, not a bug)."""
    from onnx import TensorProto, numpy_helper

    proto = TensorProto()
    try:
        proto.ParseFromString(data)
        return numpy_helper.to_array(proto)
    except Exception as exc:  # noqa: BLE001 - protobuf's DecodeError, onnx's ValueError
        raise BundleError(f"{where} is not a serialized ONNX TensorProto "
                          f"({type(exc).__name__}: {str(exc)[:200]}); re-export the bundle"
                          ) from None


def read_tensor(path: Path) -> np.ndarray:
    return parse_tensor(Path(path).read_bytes(), str(path))


def write_golden(root: Path, sets: list[GoldenSet], input_names: list[str],
                 output_name: str) -> list[dict[str, Any]]:
    """Write all sets under ``root/golden``; return their manifest entries."""
    golden = root / "golden"
    entries = []
    for k, s in enumerate(sets):
        d = golden / f"test_data_set_{k}"
        d.mkdir(parents=True)
        write_tensor(d / "input_0.pb", s.z, input_names[0])
        write_tensor(d / "input_1.pb", s.label, input_names[1])
        write_tensor(d / "output_0.pb", s.image, output_name)
        entries.append({"dir": f"golden/test_data_set_{k}", "batch": int(len(s.label)),
                        "seed": str(s.seed), "start": s.start,
                        "labels": s.label.tolist()})
    feeds = [{input_names[0]: _np(s.z), input_names[1]: _np(s.label)} for s in sets]
    (golden / "polygraphy_inputs.json").write_text(json.dumps(feeds, indent=1))
    iterations = [{"outputs": {output_name: {"values": _np(s.image),
                                             "polygraphy_class": "LazyArray"}},
                   "runtime": None, "runner_name": POLYGRAPHY_RUNNER,
                   "polygraphy_class": "IterationResult"} for s in sets]
    results = {"lst": [[POLYGRAPHY_RUNNER, iterations]], "polygraphy_class": "RunResults"}
    (golden / "polygraphy_outputs.json").write_text(json.dumps(results, indent=1))
    return entries


def _np(array: np.ndarray) -> dict[str, str]:
    """Polygraphy's JSON encoding of an ndarray: base64 of ``np.save`` bytes, no pickle."""
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    return {"array": base64.b64encode(buf.getvalue()).decode(), "polygraphy_class": "ndarray"}


def bundle_golden_set(bundle: Bundle, index: int) -> tuple[list[np.ndarray], np.ndarray]:
    """(inputs in order, expected output) of golden set ``index`` of a checked bundle, from
    bytes that ``Bundle.read`` checked against the manifest (what is compared is what was
    hashed)."""
    inputs, output = bundle.golden_files(index)
    return ([parse_tensor(bundle.read(rel), str(bundle.path(rel))) for rel in inputs],
            parse_tensor(bundle.read(output), str(bundle.path(output))))


def load_golden_set(directory: Path) -> tuple[list[np.ndarray], np.ndarray]:
    """(inputs in order, expected output) of one ``test_data_set_N`` folder."""
    inputs = [read_tensor(p) for p in sorted(directory.glob("input_*.pb"),
                                            key=lambda p: int(p.stem.split("_")[1]))]
    return inputs, read_tensor(directory / "output_0.pb")
