"""``edgegen export-triton``: every config.pbtxt parsed by Triton's own ModelConfig protobuf and
checked against the bundle, the ensemble's wiring, and the Python-backend ``model.py`` run here
(with a small stand-in for ``triton_python_backend_utils``) giving the runtime's bytes."""

from __future__ import annotations

import ast
import importlib.util
import json
import sys
import types
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest
from typer.testing import CliRunner

from edgegen.cli.app import app
from edgegen.core.errors import BundleError, ConfigError
from edgegen.export.triton import LATENT_IMPORT, LATENT_STANDIN, TritonConfig, export_triton
from edgegen.runtime import Generator

model_config_pb2 = pytest.importorskip("tritonclient.grpc.model_config_pb2")
text_format = pytest.importorskip("google.protobuf.text_format")
json_format = pytest.importorskip("google.protobuf.json_format")

ROOT = Path(__file__).resolve().parents[2]
TYPES = {"TYPE_FP32": np.float32, "TYPE_INT64": np.int64, "TYPE_UINT64": np.uint64,
         "TYPE_UINT8": np.uint8}


def _parse(path: Path) -> Any:
    return text_format.Parse(path.read_text(), model_config_pb2.ModelConfig())


def _manifest(bundle: Path) -> dict[str, Any]:
    return json.loads((bundle / "manifest.json").read_text())


@pytest.fixture(scope="module")
def repo(tiny_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("triton") / "repo"
    export_triton(TritonConfig(bundle=tiny_bundle, out=out, name="gen", max_batch=16,
                               max_delay_ms=1.5))
    return out


def test_every_config_parses_and_matches_the_bundle(repo: Path, tiny_bundle: Path) -> None:
    gen_m = _manifest(tiny_bundle)["generator"]
    configs = {p.parent.name: _parse(p) for p in repo.glob("*/config.pbtxt")}
    assert set(configs) == {"gen", "gen_latent", "gen_uint8", "gen_generate"}
    for name, c in configs.items():
        assert c.name == name and c.max_batch_size == 16  # dims below exclude the batch axis
        assert (repo / name / "1").is_dir()  # the versioned folder Triton loads
    g = configs["gen"]
    assert g.platform == "onnxruntime_onnx" and not g.backend
    z, label = g.input
    assert (z.name, z.data_type, list(z.dims)) == ("z", model_config_pb2.TYPE_FP32,
                                                   [gen_m["z_dim"]])
    # the graph's label is [batch]: Triton's [1] per sample, reshaped to a scalar
    assert (label.name, label.data_type, list(label.dims)) == ("label",
                                                               model_config_pb2.TYPE_INT64, [1])
    assert label.HasField("reshape") and list(label.reshape.shape) == []
    (image,) = g.output
    assert image.name == "image" and list(image.dims) == gen_m["outputs"][0]["shape"][1:]
    assert image.data_type == model_config_pb2.TYPE_FP32
    assert g.dynamic_batching.max_queue_delay_microseconds == 1500
    assert [(i.kind, i.count) for i in g.instance_group] == [
        (model_config_pb2.ModelInstanceGroup.KIND_CPU, 1)]
    assert not g.optimization.execution_accelerators.gpu_execution_accelerator
    assert (repo / "gen" / "1" / "model.onnx").read_bytes() == \
        (tiny_bundle / "model.onnx").read_bytes()
    for step in ("gen_latent", "gen_uint8"):
        assert configs[step].backend == "python" and not configs[step].platform
        assert (repo / step / "1" / "model.py").is_file()
    assert configs["gen_latent"].parameters["z_dim"].string_value == str(gen_m["z_dim"])
    assert configs["gen_generate"].platform == "ensemble"


def test_the_ensemble_is_wired_consistently(repo: Path) -> None:
    """What Triton checks when it loads an ensemble: each step's model exists, every input_map
    key is an input of that model and its value an ensemble input or an earlier step's output,
    and the two sides agree on data type and dims."""
    configs = {p.parent.name: _parse(p) for p in repo.glob("*/config.pbtxt")}
    ens = configs["gen_generate"]
    tensors = {t.name: (t.data_type, list(t.dims)) for t in ens.input}
    for step in ens.ensemble_scheduling.step:
        model = configs[step.model_name]
        ins = {t.name: (t.data_type, list(t.dims)) for t in model.input}
        outs = {t.name: (t.data_type, list(t.dims)) for t in model.output}
        assert set(step.input_map) == set(ins)
        for key, value in step.input_map.items():
            assert tensors[value] == ins[key], (step.model_name, key)
        for key, value in step.output_map.items():
            tensors[value] = outs[key]
    for t in ens.output:
        assert tensors[t.name] == (t.data_type, list(t.dims))
    assert tensors["image"] == (model_config_pb2.TYPE_UINT8, [1, 28, 28])


def test_gpu_config_asks_for_tensorrt_fp16_with_a_profile(tiny_bundle: Path,
                                                          tmp_path: Path) -> None:
    export_triton(TritonConfig(bundle=tiny_bundle, out=tmp_path / "r", name="g", max_batch=32,
                               gpu=True, tensorrt_fp16=True, instances=2, ensemble=False))
    assert sorted(p.name for p in (tmp_path / "r").iterdir()) == ["README.md", "edgegen.json",
                                                                   "g"]
    c = _parse(tmp_path / "r" / "g" / "config.pbtxt")
    assert [(i.kind, i.count) for i in c.instance_group] == [
        (model_config_pb2.ModelInstanceGroup.KIND_GPU, 2)]
    (acc,) = c.optimization.execution_accelerators.gpu_execution_accelerator
    assert acc.name == "tensorrt" and acc.parameters["precision_mode"] == "FP16"
    z_dim = _manifest(tiny_bundle)["generator"]["z_dim"]
    assert acc.parameters["trt_profile_min_shapes"] == f"z:1x{z_dim},label:1"
    assert acc.parameters["trt_profile_max_shapes"] == f"z:32x{z_dim},label:32"


class _Tensor:
    def __init__(self, name: str, array: np.ndarray) -> None:
        self._name, self._array = name, np.asarray(array)

    def name(self) -> str:
        return self._name

    def as_numpy(self) -> np.ndarray:
        return self._array


class _Response:
    def __init__(self, output_tensors: list[_Tensor], error: Any = None) -> None:
        self.outputs = {t.name(): t.as_numpy() for t in output_tensors}
        self.error = error


class _Error:
    def __init__(self, message: str) -> None:
        self._message = message

    def message(self) -> str:
        return self._message


def _stand_in() -> types.ModuleType:
    """The part of Triton's ``triton_python_backend_utils`` that model.py uses."""
    pb = types.ModuleType("triton_python_backend_utils")
    pb.Tensor = _Tensor
    pb.InferenceResponse = _Response
    pb.TritonError = _Error
    pb.get_input_tensor_by_name = lambda request, name: request.get(name)
    return pb


@pytest.fixture
def load_step(monkeypatch: pytest.MonkeyPatch, repo: Path):
    monkeypatch.setitem(sys.modules, "triton_python_backend_utils", _stand_in())
    monkeypatch.setattr(sys, "path", list(sys.path))  # model.py prepends its folder
    for helper in ("edgegen_latent", "edgegen_postprocess"):
        monkeypatch.delitem(sys.modules, helper, raising=False)

    def load(step: str) -> Any:
        folder = repo / step
        spec = importlib.util.spec_from_file_location(f"triton_{step}", folder / "1" / "model.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        model = module.TritonPythonModel()
        config = json_format.MessageToDict(_parse(folder / "config.pbtxt"),
                                           preserving_proto_field_name=True)
        model.initialize({"model_config": json.dumps(config)})  # what Triton passes
        return model

    return load


def test_python_steps_give_the_runtimes_bytes(repo: Path, tiny_bundle: Path, load_step) -> None:
    """Ensemble by hand: latent step -> the generator on ONNX Runtime (as Triton's onnxruntime
    backend runs it, label reshaped to [n]) -> uint8 step; equal to Generator.generate."""
    latent_step, uint8_step = load_step("gen_latent"), load_step("gen_uint8")
    labels = np.array([[3], [1], [4], [9]], np.int64)  # [n, 1]: dims [1] plus the batch
    seeds = np.array([[42], [0], [2**64 - 1], [7]], np.uint64)
    (r,) = latent_step.execute([{"label": _Tensor("label", labels),
                                 "seed": _Tensor("seed", seeds)}])
    assert r.error is None and r.outputs["z"].dtype == np.float32
    session = ort.InferenceSession(str(repo / "gen" / "1" / "model.onnx"),
                                   providers=["CPUExecutionProvider"])
    image = session.run(["image"], {"z": r.outputs["z"], "label": labels.reshape(-1)})[0]
    (u,) = uint8_step.execute([{"image": _Tensor("image", image)}])
    got = u.outputs["image_u8"]
    want = Generator.load(tiny_bundle).generate(labels.reshape(-1), seeds=seeds.reshape(-1))
    assert got.dtype == np.uint8 and got.shape == (4, 1, 28, 28)
    assert np.array_equal(got[:, 0], want)


def test_python_step_refuses_a_bad_label_alone(load_step) -> None:
    step = load_step("gen_latent")
    good = {"label": _Tensor("label", np.array([[1]])), "seed": _Tensor("seed", np.array([[1]],
                                                                                   np.uint64))}
    bad = {"label": _Tensor("label", np.array([[10]])), "seed": _Tensor("seed", np.array(
        [[1]], np.uint64))}
    ok, err = step.execute([good, bad])
    assert ok.error is None and "z" in ok.outputs
    assert "label 10 is out of range" in err.error.message()


def test_model_py_needs_no_torch_and_no_edgegen(repo: Path) -> None:
    for step in ("gen_latent", "gen_uint8"):
        folder = repo / step / "1"
        for f in folder.glob("*.py"):
            tree = ast.parse(f.read_text())
            names = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import)
                     for a in n.names}
            names |= {(n.module or "").split(".")[0] for n in ast.walk(tree)
                      if isinstance(n, ast.ImportFrom) and n.level == 0}
            assert not names & {"torch", "edgegen", "onnx", "onnxruntime"}, (f, names)
        # one definition: edgegen's own sources, copied (the latent's one import replaced)
        runtime = ROOT / "runtime" / "src" / "edgegen" / "runtime"
        assert (folder / "edgegen_postprocess.py").read_text() == \
            (runtime / "postprocess.py").read_text()
        ours = (folder / "edgegen_latent.py").read_text()
        assert ours == (runtime / "latent.py").read_text().replace(LATENT_IMPORT, LATENT_STANDIN)
        assert "from edgegen" not in ours and "def latent_for_seeds" in ours


def test_bad_options_are_refused(tiny_bundle: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="add --gpu"):
        export_triton(TritonConfig(bundle=tiny_bundle, out=tmp_path / "a", tensorrt_fp16=True))
    with pytest.raises(BundleError, match="no 'fp64' variant"):
        export_triton(TritonConfig(bundle=tiny_bundle, out=tmp_path / "a", variant="fp64"))
    (tmp_path / "b").mkdir()
    with pytest.raises(ConfigError, match="--force"):
        export_triton(TritonConfig(bundle=tiny_bundle, out=tmp_path / "b"))


def test_cli(tiny_bundle: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    res = runner.invoke(app, ["export-triton", str(tiny_bundle), "--out",
                              str(tmp_path / "triton_repo")])
    assert res.exit_code == 0, res.output
    assert "docker run" in res.output and "tritonserver --model-repository=/models" in res.output
    assert (tmp_path / "triton_repo" / "cdcgan_generate" / "config.pbtxt").is_file()
    res = runner.invoke(app, ["export-triton", str(tiny_bundle), "--out",
                              str(tmp_path / "triton_repo")])
    assert res.exit_code == 2 and "--force" in res.output and "Traceback" not in res.output
