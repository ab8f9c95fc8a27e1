"""A cflow bundle: the sampler unrolled in model.onnx with its weights stored once, the denoiser
and its variants, the manifest's sampler section, and the runtime loop's agreement."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import numpy_helper

from edgegen.core.errors import ConfigError, RuntimeInputError
from edgegen.export.bundler import ExportConfig, export_bundle
from edgegen.export.denoiser import LOOP_TOLERANCE
from edgegen.export.golden import load_golden_set
from edgegen.runtime.bundle import load_bundle
from edgegen.runtime.latent import latent
from edgegen.runtime.sampler import sample
from edgegen.training.checkpoint import load_generator
from edgegen.training.torch_utils import generate_images

FILES = ("model.onnx", "model.fp16.onnx", "model.int8.onnx", "denoiser.onnx",
         "denoiser.fp16.onnx", "denoiser.int8.onnx")


def _session(path: Path) -> ort.InferenceSession:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def _io(model: onnx.ModelProto) -> dict[str, tuple[int, list]]:
    return {v.name: (v.type.tensor_type.elem_type,
                     [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim])
            for v in list(model.graph.input) + list(model.graph.output)}


def test_every_file_is_self_contained_at_opset_17_with_a_dynamic_batch(
        tiny_cflow_bundle: Path) -> None:
    assert not list(tiny_cflow_bundle.glob("*.data"))
    for name in FILES:
        model = onnx.load(str(tiny_cflow_bundle / name))
        assert {o.domain or "ai.onnx": o.version
                for o in model.opset_import}["ai.onnx"] == 17, name
        onnx.checker.check_model(model, full_check=True)
        io = _io(model)
        assert all(dims[0] == "batch" for _, dims in io.values()), (name, io)
    f = onnx.TensorProto.FLOAT
    assert _io(onnx.load(str(tiny_cflow_bundle / "model.onnx"))) == {
        "z": (f, ["batch", 784]), "label": (onnx.TensorProto.INT64, ["batch"]),
        "image": (f, ["batch", 1, 28, 28])}
    assert _io(onnx.load(str(tiny_cflow_bundle / "denoiser.onnx"))) == {
        "x": (f, ["batch", 1, 28, 28]), "t": (f, ["batch"]),
        "label": (onnx.TensorProto.INT64, ["batch"]), "velocity": (f, ["batch", 1, 28, 28])}


def _initializer_bytes(path: Path) -> int:
    return sum(numpy_helper.to_array(i).nbytes for i in onnx.load(str(path)).graph.initializer)


def test_weights_are_stored_once_whatever_the_number_of_steps(
        tiny_cflow_bundle: Path, tiny_cflow_run: Path) -> None:
    gen, _ = load_generator(tiny_cflow_run)
    params = sum(p.numel() for p in gen.parameters()) * 4
    unrolled = _initializer_bytes(tiny_cflow_bundle / "model.onnx")  # 3 steps x 2 (guidance)
    one_call = _initializer_bytes(tiny_cflow_bundle / "denoiser.onnx")
    assert params <= unrolled < 1.02 * params + 4096, (unrolled, params)
    assert abs(unrolled - one_call) < 4096
    model = onnx.load(str(tiny_cflow_bundle / "model.onnx"))
    convs = [n for n in model.graph.node if n.op_type == "Conv"]
    weights = {n.input[1] for n in convs}
    assert len(convs) == 3 * len(weights)  # read by each step's call (on the doubled batch)


def test_goldens_are_the_pytorch_sampler_and_onnxruntime_reproduces_them(
        tiny_cflow_bundle: Path, tiny_cflow_run: Path) -> None:
    gen, _ = load_generator(tiny_cflow_run)
    gen.set_sampler(3, 2.0)
    sess = _session(tiny_cflow_bundle / "model.onnx")
    for d in sorted((tiny_cflow_bundle / "golden").glob("test_data_set_*")):
        (z, label), expected = load_golden_set(d)
        np.testing.assert_array_equal(generate_images(gen, z, label), expected)
        np.testing.assert_allclose(sess.run(None, {"z": z, "label": label})[0], expected,
                                   atol=1e-5, rtol=0)


def test_manifest_records_the_sampler(tiny_cflow_bundle: Path) -> None:
    m = json.loads((tiny_cflow_bundle / "manifest.json").read_text())
    s = m["sampler"]
    assert (s["solver"], s["steps"], s["guidance"], s["null_label"]) == ("euler", 3, 2.0, 10)
    assert s["time_grid"] == pytest.approx([0.0, 1 / 3, 2 / 3, 1.0])
    assert s["calls_per_image"] == 6 and "v_u + w * (v_c - v_u)" in s["formula"]
    assert set(s["denoiser"]["variants"]) == {"fp32", "fp16", "int8"}
    assert s["kept_in_fp32"]["fp16"]["time_embedding"] >= 4  # sin, cos, their input, concat
    assert s["kept_in_fp32"]["fp16"]["normalization"] > 0
    loop = s["runtime_loop"]
    assert loop["max_abs"] <= loop["tolerance_max_abs"] == LOOP_TOLERANCE
    for v in s["denoiser"]["variants"].values():
        assert v["file"] in m["files"] and v["opset"] == 17
        assert v["deviation_from_fp32"]["non_finite"] == 0
    assert m["variants"]["fp16"]["fp16"]["kept_in_fp32"]["time_embedding"] > 0
    meta = {p.key: p.value for p in onnx.load(str(tiny_cflow_bundle / "model.onnx"))
            .metadata_props}
    assert (meta["sampler"], meta["steps"], meta["guidance"]) == ("euler", "3", "2.0")
    assert load_bundle(tiny_cflow_bundle).sampler == s


def test_fp16_keeps_the_time_embedding_and_normalisation_in_float32(
        tiny_cflow_bundle: Path) -> None:
    for name in ("model.fp16.onnx", "denoiser.fp16.onnx"):
        model = onnx.shape_inference.infer_shapes(onnx.load(str(tiny_cflow_bundle / name)))
        types = {v.name: v.type.tensor_type.elem_type
                 for v in [*model.graph.value_info, *model.graph.output]}
        for node in model.graph.node:
            if node.op_type in ("Sin", "Cos", "InstanceNormalization"):
                assert types[node.output[0]] == onnx.TensorProto.FLOAT, (name, node.name)
            if node.op_type == "Conv":
                assert types[node.output[0]] == onnx.TensorProto.FLOAT16, (name, node.name)


def test_the_runtime_loop_over_the_denoiser_matches_model_onnx(tiny_cflow_bundle: Path) -> None:
    z = latent(5, 40, 784)
    y = (np.arange(40) % 10).astype(np.int64)
    unrolled = _session(tiny_cflow_bundle / "model.onnx").run(None, {"z": z, "label": y})[0]
    looped = sample(_session(tiny_cflow_bundle / "denoiser.onnx"), z, y, steps=3, guidance=2.0,
                    null_label=10, image_shape=(1, 28, 28), batch=16)
    assert np.abs(looped - unrolled).max() <= LOOP_TOLERANCE
    for prec in ("fp16", "int8"):
        out = sample(_session(tiny_cflow_bundle / f"denoiser.{prec}.onnx"), z, y, steps=3,
                     guidance=2.0, null_label=10, image_shape=(1, 28, 28))
        assert np.isfinite(out).all() and np.abs(out).max() <= 1.0


def test_steps_and_guidance_are_for_iterative_families_only(tiny_run: Path,
                                                            tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no(ne)?.*cflow"):
        export_bundle(ExportConfig(checkpoint=tiny_run, out=tmp_path / "b", steps=4))
    with pytest.raises(RuntimeInputError, match="steps"):
        export_bundle(ExportConfig(checkpoint=tiny_run, out=tmp_path / "b", steps=0))
    with pytest.raises(RuntimeInputError, match="guidance"):
        export_bundle(ExportConfig(checkpoint=tiny_run, out=tmp_path / "b", guidance=-2.0))
    assert not (tmp_path / "b").exists()


def test_a_single_pass_bundle_has_no_sampler(tiny_bundle: Path) -> None:
    m = json.loads((tiny_bundle / "manifest.json").read_text())
    assert "sampler" not in m and not list(tiny_bundle.glob("denoiser*"))
    assert "fp16" not in m["variants"]["fp16"]  # nothing kept in fp32: the graph is unchanged
    assert "kept_in_fp32" not in m["variants"]["int8"]["quantization"]


def test_cli_export_steps_and_guidance(tiny_cflow_run: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from edgegen.cli.app import app

    out = tmp_path / "b"
    res = CliRunner().invoke(app, ["export", str(tiny_cflow_run), "--out", str(out),
                                   "--precision", "fp32", "--golden-sets", "1", "--steps", "2",
                                   "--guidance", "1"])
    assert res.exit_code == 0, res.output
    assert "2 steps, guidance 1 unrolled" in res.output
    s = json.loads((out / "manifest.json").read_text())["sampler"]
    assert (s["steps"], s["guidance"], s["calls_per_image"]) == (2, 1.0, 2)
    assert set(s["denoiser"]["variants"]) == {"fp32"}
    res = CliRunner().invoke(app, ["export", str(tiny_cflow_run), "--out", str(tmp_path / "c"),
                                   "--steps", "0"])
    assert res.exit_code == 2 and "steps must be an integer" in res.output
