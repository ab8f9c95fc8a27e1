"""``Generator.load(format="ort")``: the bundle's .ort files through the same checked reads."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from edgegen.export.golden import load_golden_set
from edgegen.runtime import Generator
from edgegen.runtime.bundle import MANIFEST
from edgegen.runtime.errors import BundleError, ProviderError, RuntimeInputError
from edgegen.runtime.providers import is_ort_format, session_options


@pytest.fixture(scope="module")
def gen_ort(tiny_ort_bundle: Path) -> Generator:
    return Generator.load(tiny_ort_bundle, format="ort")


def _edit_manifest(root: Path, edit) -> None:
    path = root / MANIFEST
    manifest = json.loads(path.read_text())
    edit(manifest)
    path.write_text(json.dumps(manifest))


def test_ort_sessions_reproduce_the_goldens(gen_ort: Generator, tiny_ort_bundle: Path) -> None:
    for d in sorted((tiny_ort_bundle / "golden").glob("test_data_set_*")):
        (z, label), expected = load_golden_set(d)
        got = gen_ort.generate(label, z=z, output="float")
        np.testing.assert_allclose(got, expected, atol=1e-5, rtol=1e-5)


def test_every_model_is_its_ort_file(gen_ort: Generator, tiny_ort_bundle: Path) -> None:
    """Each variant and the evaluator run from .ort bytes, and give what the .onnx gives (the
    same graph: within fp32 rounding, or the variant's precision)."""
    onnx_gen = Generator.load(tiny_ort_bundle)
    labels = list(range(10)) * 3
    for variant in gen_ort.variants:
        a = gen_ort.generate(labels, seed=11, variant=variant, output="float")
        b = onnx_gen.generate(labels, seed=11, variant=variant, output="float")
        np.testing.assert_allclose(a, b, atol=1e-5 if variant == "fp32" else 1e-2)
        assert gen_ort.model_file(variant).endswith(".ort")
        assert is_ort_format(gen_ort.bundle.read(gen_ort.model_file(variant)))
    guarded = gen_ort.run(labels, seed=3, guard=True)
    assert guarded.accepted is not None and gen_ort.model_file("evaluator") == "evaluator.ort"
    np.testing.assert_array_equal(guarded.predicted,
                                  onnx_gen.run(labels, seed=3, guard=True).predicted)


def test_a_bundle_without_ort_files_refuses_format_ort(tiny_bundle: Path) -> None:
    with pytest.raises(BundleError, match="no ORT-format models.*--ort-format"):
        Generator.load(tiny_bundle, format="ort")
    with pytest.raises(RuntimeInputError, match="format must be one of"):
        Generator.load(tiny_bundle, format="tflite")


def test_ort_needs_an_onnxruntime_as_new_as_the_converter(tiny_ort_bundle: Path,
                                                         tmp_path: Path) -> None:
    root = Path(shutil.copytree(tiny_ort_bundle, tmp_path / "b"))
    _edit_manifest(root, lambda m: m["ort_format"].update(onnxruntime="99.0.0"))
    with pytest.raises(BundleError, match="written by onnxruntime 99.0.0.*upgrade"):
        Generator.load(root, format="ort")
    Generator.load(root)  # the ONNX models still load


def test_openvino_cannot_read_ort(tiny_ort_bundle: Path) -> None:
    with pytest.raises(ProviderError, match="only ONNX Runtime reads"):
        Generator.load(tiny_ort_bundle, "openvino", format="ort")


def test_saved_runtime_optimizations_are_replayed_for_ort_only(tiny_ort_bundle: Path,
                                                              tmp_path: Path) -> None:
    """The Runtime-style .ort keeps its fusions for load time: replayed (what make_session does
    for .ort bytes), the int8 .ort runs ONNX Runtime's fused QLinearConv and gives exactly the
    .onnx's images; a plain session runs the unfused QDQ graph."""
    from edgegen.runtime.providers import (
        ProviderSpec,
        kernel_times,
        make_session,
        profile_events,
    )

    data = (tiny_ort_bundle / "model.int8.ort").read_bytes()
    spec = ProviderSpec()
    assert session_options(spec, data).get_session_config_entry(
        "session.enable_saved_runtime_optimizations") == "1"
    with pytest.raises(RuntimeError, match="does not have configuration"):
        session_options(spec, (tiny_ort_bundle / "model.int8.onnx").read_bytes()
                        ).get_session_config_entry("session.enable_saved_runtime_optimizations")
    (z, label), _ = load_golden_set(tiny_ort_bundle / "golden" / "test_data_set_0")
    feeds = {"z": z, "label": label}
    onnx_out = make_session((tiny_ort_bundle / "model.int8.onnx").read_bytes()).run(None, feeds)
    np.testing.assert_array_equal(make_session(data).run(None, feeds)[0], onnx_out[0])
    replayed = {op for _, op, _, _ in kernel_times(profile_events(data, spec, feeds))}
    so = ort.SessionOptions()
    so.enable_profiling = True
    so.profile_file_prefix = str(tmp_path / "plain")
    plain_session = ort.InferenceSession(data, so, providers=["CPUExecutionProvider"])
    plain_session.run(None, feeds)
    events = json.loads(Path(plain_session.end_profiling()).read_text())
    plain = {op for _, op, _, _ in kernel_times(events)}
    assert "QLinearConv" in replayed and "QLinearConv" not in plain and "Conv" in plain
