"""The bundle, checked from its files alone by independent ONNX consumers."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx.reference import ReferenceEvaluator

from edgegen.core.errors import CheckpointError, ConfigError, ExportError
from edgegen.export.bundler import ExportConfig, export_bundle
from edgegen.export.golden import load_golden_set
from edgegen.runtime.bundle import load_bundle


def _session(path: Path) -> ort.InferenceSession:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def test_model_is_self_contained_at_exactly_the_opset(tiny_bundle: Path) -> None:
    model = onnx.load(str(tiny_bundle / "model.onnx"))
    assert {o.domain or "ai.onnx": o.version for o in model.opset_import}["ai.onnx"] == 17
    assert not list(tiny_bundle.glob("*.data"))
    onnx.checker.check_model(model, full_check=True)
    ops = [n.op_type for n in model.graph.node]
    assert "BatchNormalization" not in ops and "ConvTranspose" in ops
    io = {v.name: (v.type.tensor_type.elem_type,
                   [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim])
          for v in list(model.graph.input) + list(model.graph.output)}
    assert io == {"z": (onnx.TensorProto.FLOAT, ["batch", 100]),
                  "label": (onnx.TensorProto.INT64, ["batch"]),
                  "image": (onnx.TensorProto.FLOAT, ["batch", 1, 28, 28])}
    meta = {p.key: p.value for p in model.metadata_props}
    for key in ("edgegen_version", "architecture", "z_dim", "n_classes", "label_names",
                "output_range", "opset", "training_seed", "checkpoint_sha256"):
        assert meta[key], key
    assert meta["label_names"] == "0,1,2,3,4,5,6,7,8,9" and meta["opset"] == "17"


def test_goldens_reproduce_through_onnxruntime_and_the_reference_evaluator(
        tiny_bundle: Path) -> None:
    sess = _session(tiny_bundle / "model.onnx")
    ref = ReferenceEvaluator(str(tiny_bundle / "model.onnx"))
    labels_seen: set[int] = set()
    sets = sorted((tiny_bundle / "golden").glob("test_data_set_*"))
    assert len(sets) == 3
    for d in sets:
        (z, label), expected = load_golden_set(d)
        assert z.dtype == np.float32 and label.dtype == np.int64
        labels_seen |= set(label.tolist())
        got = sess.run(None, {"z": z, "label": label})[0]
        np.testing.assert_allclose(got, expected, atol=1e-5, rtol=0)
        got_ref = ref.run(None, {"z": z, "label": label})[0]
        np.testing.assert_allclose(got_ref, expected, atol=1e-5, rtol=0)
    assert labels_seen == set(range(10))


def test_dynamic_batch_1_and_37_and_variants_run(tiny_bundle: Path) -> None:
    for name in ("model.onnx", "model.fp16.onnx", "model.int8.onnx"):
        sess = _session(tiny_bundle / name)
        assert [i.type for i in sess.get_inputs()] == ["tensor(float)", "tensor(int64)"]
        for b in (1, 37):
            z = np.random.default_rng(b).standard_normal((b, 100)).astype(np.float32)
            out = sess.run(None, {"z": z, "label": np.arange(b, dtype=np.int64) % 10})[0]
            assert out.shape == (b, 1, 28, 28) and out.dtype == np.float32
            assert np.all(np.abs(out) <= 1.0 + 1e-6)
    int8_ops = {n.op_type for n in onnx.load(str(tiny_bundle / "model.int8.onnx")).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear", "ConvTranspose"} <= int8_ops


def test_manifest_describes_and_protects_everything(tiny_bundle: Path) -> None:
    bundle = load_bundle(tiny_bundle)  # checks every sha256
    m = bundle.manifest
    assert m["schema"] == "edgegen.bundle/1"
    on_disk = {p.relative_to(tiny_bundle).as_posix() for p in tiny_bundle.rglob("*")
               if p.is_file() and p.name != "manifest.json"}
    assert set(m["files"]) == on_disk
    assert set(m["variants"]) >= {"fp32", "fp16", "int8"}
    for v in ("fp16", "int8"):
        dev = m["variants"][v]["deviation_from_fp32"]
        assert dev["max_abs"] > 0 and 0 <= dev["label_agreement"] <= 1
    assert m["evaluator"]["file"] == "evaluator.onnx"
    assert m["latent"]["test_vectors"] and m["postprocess"]["rule"].startswith("u8 =")
    prov = m["provenance"]
    assert prov["torch"] and prov["onnx"] and prov["onnxruntime"] and prov["command"]
    assert len(prov["checkpoint"]["sha256"]) == 64
    assert "How" not in (tiny_bundle / "README.md").read_text()[:0]  # the card exists
    assert "edgegen verify" in (tiny_bundle / "README.md").read_text()


def test_polygraphy_json_round_trips(tiny_bundle: Path) -> None:
    polygraphy_json = pytest.importorskip("polygraphy.json")
    feeds = polygraphy_json.load_json(str(tiny_bundle / "golden" / "polygraphy_inputs.json"))
    results = polygraphy_json.load_json(str(tiny_bundle / "golden" / "polygraphy_outputs.json"))
    (z, label), expected = load_golden_set(tiny_bundle / "golden" / "test_data_set_0")
    assert np.array_equal(feeds[0]["z"], z) and np.array_equal(feeds[0]["label"], label)
    runner, iterations = results[0]
    assert np.array_equal(iterations[0]["image"], expected)


def test_another_opset_and_the_torchscript_fallback(tmp_path: Path, tiny_run: Path) -> None:
    for opset in (13, 18):  # 13: dynamo cannot down-convert, the TorchScript exporter can
        out = tmp_path / f"b{opset}"
        res = export_bundle(ExportConfig(checkpoint=tiny_run, out=out, opset=opset,
                                         precisions=("fp32",), golden_sets=1))
        assert res.opset == opset
        model = onnx.load(str(out / "model.onnx"))
        assert {o.domain or "ai.onnx": o.version for o in model.opset_import}["ai.onnx"] == opset
        (z, label), expected = load_golden_set(out / "golden" / "test_data_set_0")
        got = _session(out / "model.onnx").run(None, {"z": z, "label": label})[0]
        np.testing.assert_allclose(got, expected, atol=1e-5, rtol=0)
    assert res.exporter == "dynamo"


@pytest.mark.parametrize("kw,err,match", [
    ({"opset": 5}, ExportError, "opset 5 is not supported"),
    ({"opset": 99}, ExportError, "opset 99 is not supported"),
    ({"precisions": ("fp32", "bf8")}, ConfigError, "unknown precision bf8"),
])
def test_bad_options(tmp_path: Path, tiny_run: Path, kw: dict, err: type, match: str) -> None:
    with pytest.raises(err, match=match):
        export_bundle(ExportConfig(checkpoint=tiny_run, out=tmp_path / "b", **kw))
    assert not (tmp_path / "b").exists()


def test_bad_checkpoints(tmp_path: Path, tiny_run: Path, tiny_evaluator: Path) -> None:
    with pytest.raises(CheckpointError, match="does not exist"):
        export_bundle(ExportConfig(checkpoint=tmp_path / "nope", out=tmp_path / "b"))
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    data = (tiny_run / "checkpoint.safetensors").read_bytes()
    (corrupt / "checkpoint.safetensors").write_bytes(data[:1000])
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        export_bundle(ExportConfig(checkpoint=corrupt, out=tmp_path / "b"))
    with pytest.raises(CheckpointError, match="not a generator"):
        export_bundle(ExportConfig(checkpoint=tiny_evaluator, out=tmp_path / "b"))
    # a checkpoint whose description names an architecture edgegen does not know
    from safetensors.torch import load_file, save_file

    alien = tmp_path / "alien"
    alien.mkdir()
    info = json.loads((tiny_run / "config.json").read_text())
    info["arch"] = "stylegan9"
    save_file(load_file(str(tiny_run / "checkpoint.safetensors")),
              str(alien / "checkpoint.safetensors"), metadata={"edgegen": json.dumps(info)})
    with pytest.raises(CheckpointError, match="architecture 'stylegan9'"):
        export_bundle(ExportConfig(checkpoint=alien, out=tmp_path / "b"))
    assert not (tmp_path / "b").exists()


def test_existing_output_needs_force_and_a_failed_export_leaves_nothing(
        tmp_path: Path, tiny_run: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "b"
    export_bundle(ExportConfig(checkpoint=tiny_run, out=out, precisions=("fp32",),
                               golden_sets=1))
    before = (out / "manifest.json").read_bytes()
    with pytest.raises(ConfigError, match="already exists; pass --force"):
        export_bundle(ExportConfig(checkpoint=tiny_run, out=out, precisions=("fp32",)))

    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("edgegen.export.variants.make_int8", killed)
    with pytest.raises(KeyboardInterrupt):
        export_bundle(ExportConfig(checkpoint=tiny_run, out=out, force=True, golden_sets=1))
    assert (out / "manifest.json").read_bytes() == before  # the old bundle is untouched
    assert [p.name for p in tmp_path.iterdir()] == ["b"]  # no partial folder left behind
    shutil.rmtree(out)


@pytest.mark.parametrize("arch", ["cdcgan", "cmlp"])
def test_batchnorm_folding_is_exact_in_eval_mode(arch: str) -> None:
    """Linear+BatchNorm1d and ConvTranspose2d+BatchNorm2d folded by torch.nn.utils.fusion give
    the unfolded model's eval-mode output, and no BatchNorm is left."""
    import torch

    from edgegen.export.onnx_export import fold_batchnorm
    from edgegen.models.config import model_config
    from edgegen.models.registry import build_models

    torch.manual_seed(0)
    gen = build_models(model_config(arch, width=8))["generator"]
    for m in gen.modules():  # non-trivial running statistics
        if isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
    gen.eval()
    folded = fold_batchnorm(gen)
    assert not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm)
                   for m in folded.modules())
    z, y = torch.randn(16, 100), torch.arange(16) % 10
    with torch.no_grad():
        torch.testing.assert_close(folded(z, y), gen(z, y), atol=1e-5, rtol=1e-5)
