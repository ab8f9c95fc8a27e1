"""``edgegen export-triton``: a model repository for NVIDIA Triton Inference Server.

``export_triton(TritonConfig) -> TritonResult`` writes, from a verified bundle::

    <out>/
      <name>/config.pbtxt           the generator: platform onnxruntime_onnx, dynamic batching
      <name>/1/model.onnx           the bundle's model file, byte for byte
      <name>_latent/config.pbtxt    Python backend: (label, seed) -> z, the portable latent
      <name>_latent/1/model.py      export/triton_model.py (+ edgegen_latent.py and
                                    edgegen_postprocess.py, edgegen's runtime modules)
      <name>_uint8/config.pbtxt     Python backend: image -> uint8, the bundle's rule
      <name>_uint8/1/...            the same three files
      <name>_generate/config.pbtxt  the ensemble: latent -> generator -> uint8
      <name>_generate/1/            (an ensemble's version folder is empty)
      README.md                     the docker command and example requests
      edgegen.json                  where it came from (bundle, variant, manifest sha256)

Triton's batch convention: with ``max_batch_size > 0`` a tensor's ``dims`` exclude the batch
axis, so the generator's ``z`` is ``dims: [z_dim]`` and its ``label``, a batch of scalars in the
ONNX graph (``[batch]``), is ``dims: [1]`` with ``reshape: { shape: [] }`` (clients send
``[n, 1]``). The generator as a model takes ``z`` and ``label`` like the bundle's graph (and
like ``edgegen serve``); the ensemble takes ``label`` and ``seed`` (one seed per sample) and
answers UINT8 ``[n, 1, 28, 28]`` equal to ``Generator.generate(labels, seeds=seeds)`` on the CPU.

``--gpu`` makes the generator's instances KIND_GPU with ONNX Runtime's TensorRT accelerator
(``precision_mode`` FP32, or FP16 with ``--tensorrt-fp16``; one optimization profile from batch 1
to ``max_batch``); the Python steps stay on the CPU. The repository is built in a temporary folder
and renamed into place; an existing ``--out`` is refused without ``--force``.
"""

from __future__ import annotations

import inspect
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgegen.core.errors import ConfigError, ExportError, require_positive
from edgegen.core.fileio import atomic_dir
from edgegen.core.report import Report
from edgegen.runtime import latent as latent_module
from edgegen.runtime import postprocess as postprocess_module
from edgegen.runtime.bundle import Bundle, load_bundle
from edgegen.runtime.fileio import sha256_file

TRITON_IMAGE = "nvcr.io/nvidia/tritonserver:24.08-py3"  # has the onnxruntime and python backends
TRITON_DTYPES = {"float32": "TYPE_FP32", "int64": "TYPE_INT64", "uint8": "TYPE_UINT8"}
# runtime/latent.py's own import (the runtime has its own errors), replaced by a stand-in
LATENT_IMPORT = "from edgegen.runtime.errors import RuntimeInputError\n"
LATENT_STANDIN = ("class RuntimeInputError(ValueError):  # edgegen.runtime.errors' name, "
                  "for Triton\n    pass\n")


@dataclass(frozen=True)
class TritonConfig:
    """Every default of ``edgegen export-triton`` lives here; the CLI reuses them."""

    bundle: Path = Path("bundles/cdcgan")
    out: Path = Path("triton_repo")
    name: str | None = None  # None: the bundle folder's name
    variant: str = "fp32"
    max_batch: int = 64  # Triton's max_batch_size (rows of a request and of a dynamic batch)
    max_delay_ms: float = 2.0  # dynamic_batching max_queue_delay_microseconds / 1000
    instances: int = 1  # instance_group count of the generator
    gpu: bool = False  # KIND_GPU + ONNX Runtime's TensorRT accelerator
    tensorrt_fp16: bool = False  # TensorRT precision_mode FP16 (with --gpu)
    ensemble: bool = True  # also the (label, seed) -> uint8 ensemble with its Python steps
    force: bool = False


@dataclass
class TritonResult(Report):
    out: Path
    models: dict[str, dict[str, Any]]  # model name -> platform/backend, inputs, outputs
    docker: str  # the command that serves the repository
    files: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _check(cfg: TritonConfig, bundle: Bundle) -> str:
    require_positive(cfg, "max_batch", "instances")
    if cfg.max_delay_ms < 0:
        raise ConfigError(f"--max-delay-ms must be >= 0, got {cfg.max_delay_ms}")
    if cfg.tensorrt_fp16 and not cfg.gpu:
        raise ConfigError("--tensorrt-fp16 is a TensorRT setting: add --gpu")
    name = cfg.name or Path(bundle.root).resolve().name
    if not name or not all(c.isalnum() or c in "-_" for c in name):
        raise ConfigError(f"model name {name!r}: Triton model names here are letters, digits, "
                          "'-' and '_'; pass --name")
    bundle.variant_path(cfg.variant)  # a BundleError naming the bundle's variants
    if Path(cfg.out).exists() and not cfg.force:
        raise ConfigError(f"{cfg.out} exists; pass --force to replace it")
    return name


def export_triton(cfg: TritonConfig) -> TritonResult:
    bundle = load_bundle(cfg.bundle)
    name = _check(cfg, bundle)
    gen = bundle.manifest["generator"]
    z_in, label_in = gen["inputs"]
    image_out = gen["outputs"][0]
    if (z_in["dtype"], label_in["dtype"], image_out["dtype"]) != ("float32", "int64", "float32"):
        raise ExportError(f"{bundle.root}: generator I/O dtypes are not (float32, int64, "
                          "float32); re-export the bundle")
    image_dims = [int(d) for d in image_out["shape"][1:]]
    names = {"generator": name, "latent": f"{name}_latent", "uint8": f"{name}_uint8",
             "ensemble": f"{name}_generate"}
    texts = {names["generator"]: generator_config(cfg, name, bundle.z_dim, image_dims,
                                                  (z_in["name"], label_in["name"],
                                                   image_out["name"]))}
    if cfg.ensemble:
        texts[names["latent"]] = latent_config(cfg, names["latent"], bundle.z_dim,
                                               bundle.n_classes)
        texts[names["uint8"]] = uint8_config(cfg, names["uint8"], image_dims)
        texts[names["ensemble"]] = ensemble_config(cfg, names, image_dims)
    model_file = bundle.model_path(cfg.variant, "tensorrt" if cfg.gpu else "cpu")
    written: list[str] = []
    with atomic_dir(cfg.out, force=cfg.force) as tmp:
        for model, text in texts.items():
            (tmp / model / "1").mkdir(parents=True)
            (tmp / model / "config.pbtxt").write_text(text)
            written.append(f"{model}/config.pbtxt")
        shutil.copyfile(model_file, tmp / name / "1" / "model.onnx")
        written.append(f"{name}/1/model.onnx")
        if cfg.ensemble:
            for step in (names["latent"], names["uint8"]):
                for fname, text in python_step_files().items():
                    (tmp / step / "1" / fname).write_text(text)
                    written.append(f"{step}/1/{fname}")
        docker = docker_command(cfg)
        (tmp / "README.md").write_text(readme(cfg, names, bundle, docker))
        (tmp / "edgegen.json").write_text(json.dumps({
            "bundle": str(Path(bundle.root).resolve()), "variant": cfg.variant,
            "model_file": model_file.name, "model_sha256": sha256_file(model_file),
            "manifest_sha256": sha256_file(Path(bundle.root) / "manifest.json"),
            "latent": bundle.manifest["latent"].get("name"),
            "postprocess": bundle.manifest["postprocess"].get("rule"),
            "models": names if cfg.ensemble else {"generator": name}}, indent=2) + "\n")
        written += ["README.md", "edgegen.json"]
    models = {m: {"config": f"{m}/config.pbtxt"} for m in texts}
    notes = []
    if cfg.gpu:
        notes.append("on a GPU the images match edgegen's CPU bytes up to the provider's "
                     "arithmetic (check with `edgegen verify --provider tensorrt`)")
    return TritonResult(out=Path(cfg.out), models=models, docker=docker, files=written,
                        notes=notes)


# ----------------------------------------------------------------------------- config.pbtxt
def _tensor(name: str, dtype: str, dims: list[int], reshape: list[int] | None = None) -> str:
    text = f'  {{ name: "{name}" data_type: {dtype} dims: [ {", ".join(map(str, dims))} ]'
    if reshape is not None:
        text += f" reshape: {{ shape: [ {', '.join(map(str, reshape))} ] }}"
    return text + " }"


def _block(kind: str, tensors: list[str]) -> str:
    return f"{kind} [\n" + ",\n".join(tensors) + "\n]\n"


def _batching(cfg: TritonConfig) -> str:
    delay_us = round(cfg.max_delay_ms * 1000)
    return f"dynamic_batching {{ max_queue_delay_microseconds: {delay_us} }}\n"


def _params(values: dict[str, str]) -> str:
    return "".join(f'parameters {{ key: "{k}" value: {{ string_value: "{v}" }} }}\n'
                   for k, v in values.items())


def generator_config(cfg: TritonConfig, name: str, z_dim: int, image_dims: list[int],
                     io: tuple[str, str, str]) -> str:
    z_name, label_name, image_name = io
    text = (f'# the bundle\'s generator; written by edgegen export-triton\nname: "{name}"\n'
            f'platform: "onnxruntime_onnx"\nmax_batch_size: {cfg.max_batch}\n')
    text += _block("input", [_tensor(z_name, "TYPE_FP32", [z_dim]),
                             _tensor(label_name, "TYPE_INT64", [1], reshape=[])])
    text += _block("output", [_tensor(image_name, "TYPE_FP32", image_dims)])
    text += _batching(cfg)
    kind = "KIND_GPU" if cfg.gpu else "KIND_CPU"
    text += f"instance_group [ {{ count: {cfg.instances} kind: {kind} }} ]\n"
    if cfg.gpu:
        b = cfg.max_batch
        shapes = {"min": 1, "opt": b, "max": b}
        trt = {"precision_mode": "FP16" if cfg.tensorrt_fp16 else "FP32",
               "max_workspace_size_bytes": str(1 << 30),
               **{f"trt_profile_{k}_shapes": f"{z_name}:{n}x{z_dim},{label_name}:{n}"
                  for k, n in shapes.items()}}
        params = "".join(f'      parameters {{ key: "{k}" value: "{v}" }}\n'
                         for k, v in trt.items())
        text += ("optimization { execution_accelerators {\n  gpu_execution_accelerator: [ {\n"
                 '      name: "tensorrt"\n' + params + "  } ]\n} }\n")
    return text


def latent_config(cfg: TritonConfig, name: str, z_dim: int, n_classes: int) -> str:
    text = (f'# (label, seed) -> z, the portable latent; written by edgegen export-triton\n'
            f'name: "{name}"\nbackend: "python"\nmax_batch_size: {cfg.max_batch}\n')
    text += _block("input", [_tensor("label", "TYPE_INT64", [1]),
                             _tensor("seed", "TYPE_UINT64", [1])])
    text += _block("output", [_tensor("z", "TYPE_FP32", [z_dim])])
    text += _batching(cfg) + "instance_group [ { count: 1 kind: KIND_CPU } ]\n"
    return text + _params({"edgegen_step": "latent", "z_dim": str(z_dim),
                           "n_classes": str(n_classes)})


def uint8_config(cfg: TritonConfig, name: str, image_dims: list[int]) -> str:
    text = (f"# image -> uint8 by the bundle's rule; written by edgegen export-triton\n"
            f'name: "{name}"\nbackend: "python"\nmax_batch_size: {cfg.max_batch}\n')
    text += _block("input", [_tensor("image", "TYPE_FP32", image_dims)])
    text += _block("output", [_tensor("image_u8", "TYPE_UINT8", image_dims)])
    text += _batching(cfg) + "instance_group [ { count: 1 kind: KIND_CPU } ]\n"
    return text + _params({"edgegen_step": "uint8"})


def ensemble_config(cfg: TritonConfig, names: dict[str, str], image_dims: list[int]) -> str:
    def step(model: str, inputs: dict[str, str], outputs: dict[str, str]) -> str:
        maps = "".join(f' input_map {{ key: "{k}" value: "{v}" }}' for k, v in inputs.items())
        maps += "".join(f' output_map {{ key: "{k}" value: "{v}" }}' for k, v in outputs.items())
        return f'  {{ model_name: "{model}" model_version: -1{maps} }}'

    text = (f"# (label, seed) -> uint8 image, the bytes of edgegen's Generator.generate(labels, "
            f"seeds=seeds)\n"
            f'name: "{names["ensemble"]}"\nplatform: "ensemble"\n'
            f"max_batch_size: {cfg.max_batch}\n")
    text += _block("input", [_tensor("label", "TYPE_INT64", [1]),
                             _tensor("seed", "TYPE_UINT64", [1])])
    text += _block("output", [_tensor("image", "TYPE_UINT8", image_dims)])
    steps = [step(names["latent"], {"label": "label", "seed": "seed"}, {"z": "z"}),
             step(names["generator"], {"z": "z", "label": "label"}, {"image": "image_f32"}),
             step(names["uint8"], {"image": "image_f32"}, {"image_u8": "image"})]
    return text + "ensemble_scheduling {\n step [\n" + ",\n".join(steps) + "\n ]\n}\n"


# ----------------------------------------------------------------------------- Python steps
def python_step_files() -> dict[str, str]:
    """``model.py`` and the two helper files it imports, from edgegen's own sources."""
    # read, not imported: it imports triton_python_backend_utils, which only Triton has
    model_src = Path(__file__).with_name("triton_model.py").read_text(encoding="utf-8")
    latent_src = inspect.getsource(latent_module)
    if latent_src.count(LATENT_IMPORT) != 1:
        raise ExportError("edgegen/runtime/latent.py no longer imports RuntimeInputError the "
                          "way export/triton.py expects; update LATENT_IMPORT")
    return {"model.py": model_src,
            "edgegen_latent.py": latent_src.replace(LATENT_IMPORT, LATENT_STANDIN),
            "edgegen_postprocess.py": inspect.getsource(postprocess_module)}


# ----------------------------------------------------------------------------- how to serve it
def docker_command(cfg: TritonConfig) -> str:
    gpus = "--gpus all " if cfg.gpu else ""
    return (f"docker run --rm {gpus}-p 8000:8000 -p 8001:8001 -p 8002:8002 "
            f"-v \"$PWD/{Path(cfg.out).name}\":/models {TRITON_IMAGE} "
            "tritonserver --model-repository=/models")


def readme(cfg: TritonConfig, names: dict[str, str], bundle: Bundle, docker: str) -> str:
    n, z_dim = names["generator"], bundle.z_dim
    return f"""# Triton model repository for {Path(bundle.root).name}

Written by `edgegen export-triton` from `{Path(bundle.root).resolve()}` (variant {cfg.variant}).

Serve it (from the folder that holds this repository):

```
{docker}
curl -s localhost:8000/v2/health/ready
```

The generator, `{n}`, takes the bundle graph's inputs (Triton counts the batch outside `dims`, so
`label` is sent as `[n, 1]`):

```
curl -s -X POST localhost:8000/v2/models/{n}/infer -d '{{"inputs": [
  {{"name": "z", "shape": [1, {z_dim}], "datatype": "FP32", "data": [...{z_dim} numbers...]}},
  {{"name": "label", "shape": [1, 1], "datatype": "INT64", "data": [7]}}]}}'
```

The ensemble, `{names['ensemble']}`, takes a label and a seed per sample and answers the uint8
image that `edgegen.runtime.Generator.generate(labels, seeds=seeds)` gives on the CPU:

```
curl -s -X POST localhost:8000/v2/models/{names['ensemble']}/infer -d '{{"inputs": [
  {{"name": "label", "shape": [1, 1], "datatype": "INT64", "data": [7]}},
  {{"name": "seed", "shape": [1, 1], "datatype": "UINT64", "data": [42]}}]}}'
```

`edgegen serve` answers the same two requests (it also takes `label` as `[n]`), and
`edgegen bench --url http://localhost:8000 --model {n}` measures either server.
"""
