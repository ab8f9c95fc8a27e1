"""Where a bundle's generator comes from: an edgegen run, a user's ``torch.nn.Module``, or an
existing ONNX file.

Each source becomes a ``Source``: what ``export_bundle`` needs to write the same bundle whatever
the origin — the contract (z_dim, classes, label names, image shape), the PyTorch module to export
(None for an ONNX file), the fp32 graph for a foreign ONNX file (its inputs and outputs renamed to
the contract's ``z``, ``label``, ``image``), who computes the goldens, and the provenance.

``--from-module pkg.mod:factory`` imports ``pkg.mod`` (from the current folder or the Python
path), calls ``factory()`` and loads ``--weights`` (safetensors, strict). A dry run then checks
the contract and says exactly what does not fit: ``forward(z, label)`` must accept
``z float32[B, z_dim]`` and ``label int64[B]`` and return one float32 tensor ``[B, C, H, W]`` equal
to ``--image-shape``, finite, in [-1, 1], for any batch size.

``--from-onnx FILE`` takes a generator graph with two inputs (a float latent ``[batch, z_dim]``
and an integer label ``[batch]``) and one image output ``[batch, C, H, W]`` in [-1, 1]; the
names are mapped with ``--z-name``, ``--label-name``, ``--image-name`` when they differ from
``z``, ``label``, ``image``. Its goldens are computed by ONNX Runtime on the CPU in float32: there
is no PyTorch reference for it.
"""

from __future__ import annotations

import importlib
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgegen.core.errors import ConfigError, ExportError
from edgegen.runtime.fileio import sha256_file
from edgegen.runtime.sessions import GENERATOR_IO

RANGE_SLACK = 1e-3  # a tanh output may round a hair past +-1; anything further is not [-1, 1]
DRY_RUN_BATCHES = (1, 3)


@dataclass
class Source:
    """A generator to bundle, whatever made it."""

    kind: str  # "checkpoint" | "module" | "onnx"
    arch: str  # the manifest's generator.architecture
    z_dim: int
    n_classes: int
    labels: list[str]
    image_shape: list[int]  # [C, H, W]
    sha256: str  # of the checkpoint, the weights or the ONNX file
    path: Path  # that file
    gen: Any = None  # the torch module to export (checkpoint, module); None for an ONNX file
    onnx_model: Any = None  # the ONNX file's graph with the contract's I/O names (onnx only)
    info: dict[str, Any] = field(default_factory=dict)  # the run's description (checkpoint)
    weights: str = ""  # which weights, in words
    golden_by: str = ""  # who computes the goldens, in words
    source_entry: dict[str, Any] | None = None  # provenance.source (module, onnx)
    training_seed: Any = None


def label_names(given: tuple[str, ...] | None, n_classes: int,
                recorded: list[str] | None = None) -> list[str]:
    """The class names: ``given`` (``--labels``), else the run's data's, else ``0..n-1``."""
    names = list(given) if given else list(recorded or []) or [str(d) for d in range(n_classes)]
    if len(names) != n_classes:
        raise ConfigError(f"{len(names)} label names ({', '.join(names[:5])}"
                          f"{', ...' if len(names) > 5 else ''}) for {n_classes} classes; give "
                          "one name per class")
    return names


# --------------------------------------------------------------------------- an edgegen run

def checkpoint_source(ckpt: Path, labels: tuple[str, ...] | None) -> Source:
    """An edgegen training run's generator (the EMA weights when the run kept them)."""
    import torch

    from edgegen.training.checkpoint import load_generator
    from edgegen.training.torch_utils import image_shape

    gen, info = load_generator(ckpt)
    n_classes = int(info["model"]["n_classes"])
    return Source(
        kind="checkpoint", arch=info["arch"], z_dim=int(info["model"]["z_dim"]),
        n_classes=n_classes,
        labels=label_names(labels, n_classes, (info.get("data") or {}).get("label_names")),
        image_shape=list(image_shape(gen)), sha256=sha256_file(ckpt), path=ckpt, gen=gen,
        info=info, training_seed=info["train"]["seed"],
        weights=("exponential moving average of the generator"
                 if info["exported_weights"] == "generator_ema"
                 else "the generator's trained weights"),
        golden_by=f"PyTorch {torch.__version__} float32 on CPU from the checkpoint (BatchNorm "
                  "in eval mode, not folded)")


# --------------------------------------------------------------------------- a user's module

def load_factory(spec: str) -> Any:
    """``pkg.mod:function`` -> the function (imported from the current folder too)."""
    mod_name, sep, func = spec.partition(":")
    if not sep or not mod_name or not func.isidentifier():
        raise ConfigError(f"--from-module {spec!r} is not MODULE:FUNCTION (for example "
                          "mypkg.models:make_generator)")
    cwd = str(Path.cwd())
    if cwd not in sys.path:  # a user's package beside them, as `python -m` would find it
        sys.path.insert(0, cwd)
    try:
        module = importlib.import_module(mod_name)
    except Exception as exc:  # noqa: BLE001 - any import failure of user code is bad input
        raise ConfigError(f"--from-module: importing {mod_name!r} failed with "
                          f"{type(exc).__name__}: {exc}; make it importable from the current "
                          "folder or the Python path") from exc
    factory = getattr(module, func, None)
    if factory is None or not callable(factory):
        raise ConfigError(f"--from-module: {mod_name} has no callable {func!r}; name a function "
                          "that returns the generator module")
    return factory


def module_source(spec: str, weights: Path | None, z_dim: int | None, n_classes: int | None,
                  image_shape: tuple[int, ...] | None, labels: tuple[str, ...] | None
                  ) -> Source:
    """A user's module, its safetensors weights loaded strictly, checked on a dry run."""
    import torch
    from safetensors.torch import load_file

    missing = [opt for opt, v in (("--z-dim", z_dim), ("--classes", n_classes),
                                  ("--image-shape", image_shape)) if v is None]
    if missing:
        raise ConfigError(f"--from-module needs {', '.join(missing)}: the contract cannot be "
                          "read from a Python module (for example --z-dim 128 --classes 10 "
                          "--image-shape 3,32,32)")
    assert z_dim is not None and n_classes is not None and image_shape is not None
    shape = check_image_shape(image_shape)
    factory = load_factory(spec)
    try:
        gen = factory()
    except Exception as exc:  # noqa: BLE001 - user code
        raise ConfigError(f"--from-module: {spec}() raised {type(exc).__name__}: {exc}") from exc
    if not isinstance(gen, torch.nn.Module):
        raise ConfigError(f"--from-module: {spec}() returned a {type(gen).__name__}, not a "
                          "torch.nn.Module")
    if weights is not None:
        if not Path(weights).is_file():
            raise ConfigError(f"--weights {weights} does not exist")
        try:
            state = load_file(str(weights))
        except Exception as exc:  # noqa: BLE001 - safetensors' SafetensorError, OSError, ...
            raise ConfigError(f"--weights {weights} is not a safetensors file ({exc})") from exc
        fit_weights(gen, state, weights)
        sha, path = sha256_file(weights), Path(weights)
    else:
        sha, path = "", Path(spec.replace(":", "/"))
    gen.eval()
    check_module(gen, z_dim, n_classes, shape, spec)
    gen.image_shape = tuple(shape)  # what image_shape() and generate_images() read
    return Source(
        kind="module", arch="module", z_dim=z_dim, n_classes=n_classes,
        labels=label_names(labels, n_classes), image_shape=list(shape), sha256=sha,
        path=path, gen=gen, weights=f"{spec}() with {weights}" if weights else f"{spec}()",
        golden_by=f"PyTorch {torch.__version__} float32 on CPU from {spec}() with "
                  f"{Path(weights).name if weights else 'its own initial weights'}",
        source_entry={"kind": "module", "factory": spec,
                      "weights": str(weights) if weights else None,
                      "weights_sha256": sha or None},
    )


def fit_weights(gen: Any, state: dict[str, Any], where: Path) -> None:
    """Load ``state`` into ``gen`` strictly, naming every missing, unexpected and mis-shaped
    tensor."""
    own = gen.state_dict()
    missing = sorted(set(own) - set(state))
    extra = sorted(set(state) - set(own))
    shapes = [f"{k}: file {tuple(state[k].shape)}, module {tuple(own[k].shape)}"
              for k in sorted(set(own) & set(state))
              if tuple(state[k].shape) != tuple(own[k].shape)]
    problems = []
    if missing:
        problems.append(f"missing from the file: {_few(missing)}")
    if extra:
        problems.append(f"not in the module: {_few(extra)}")
    if shapes:
        problems.append(f"shapes differ: {_few(shapes)}")
    if problems:
        raise ConfigError(f"--weights {where} does not fit the module — " + "; ".join(problems)
                          + "; save the weights with safetensors.torch.save_file(module."
                            "state_dict(), ...) from the same module")
    gen.load_state_dict(state, strict=True)


def _few(items: list[str], n: int = 5) -> str:
    return ", ".join(items[:n]) + (f" (and {len(items) - n} more)" if len(items) > n else "")


def check_image_shape(shape: tuple[int, ...]) -> tuple[int, int, int]:
    if len(shape) != 3 or any(not isinstance(v, int) or v < 1 for v in shape):
        raise ConfigError(f"--image-shape must be C,H,W (three positive integers, e.g. 3,32,32),"
                          f" got {','.join(map(str, shape))}")
    if shape[0] not in (1, 3):
        raise ConfigError(f"--image-shape {','.join(map(str, shape))}: edgegen's pixels are "
                          "grayscale (C = 1) or RGB (C = 3)")
    return shape[0], shape[1], shape[2]


def check_module(gen: Any, z_dim: int, n_classes: int, shape: tuple[int, int, int],
                 spec: str) -> None:
    """The dry run: every way ``gen`` misses the contract, in one message."""
    import torch

    from edgegen.runtime.latent import latent

    for b in DRY_RUN_BATCHES:
        z = torch.from_numpy(latent(0, b, z_dim))
        y = torch.arange(b, dtype=torch.int64) % n_classes
        call = f"forward(z float32[{b}, {z_dim}], label int64[{b}])"
        try:
            with torch.inference_mode():
                out = gen(z, y)
        except Exception as exc:  # noqa: BLE001 - user code
            raise ConfigError(f"--from-module {spec}: {call} raised {type(exc).__name__}: "
                              f"{str(exc)[:300]}; the contract is forward(z, label) with z "
                              f"float32[B, z_dim={z_dim}] and label int64[B] in 0..{n_classes - 1}"
                              " (are --z-dim and --classes right?)") from exc
        if not isinstance(out, torch.Tensor):
            raise ConfigError(f"--from-module {spec}: {call} returned a {type(out).__name__}; "
                              "the contract is one tensor image float32[B, C, H, W] (return "
                              "only the image)")
        problems = []
        want = (b, *shape)
        if tuple(out.shape) != want:
            problems.append(f"shape {list(out.shape)}, expected {list(want)} (--image-shape "
                            f"{','.join(map(str, shape))})")
        if out.dtype != torch.float32:
            problems.append(f"dtype {out.dtype}, expected torch.float32")
        x = out.detach().double()
        if not torch.isfinite(x).all():
            problems.append(f"{int((~torch.isfinite(x)).sum())} NaN/inf values")
        elif x.numel() and (x.min() < -1 - RANGE_SLACK or x.max() > 1 + RANGE_SLACK):
            problems.append(f"values in [{float(x.min()):.4g}, {float(x.max()):.4g}], expected "
                            "[-1, 1] (end with tanh, or map [0, 1] images by 2x - 1)")
        if problems:
            raise ConfigError(f"--from-module {spec}: {call} returned " + "; ".join(problems))


# --------------------------------------------------------------------------- a foreign ONNX file

def onnx_source(path: Path, n_classes: int | None, names: tuple[str | None, str | None,
                                                                  str | None],
                labels: tuple[str, ...] | None, opset: int) -> Source:
    """A foreign generator graph, renamed to the contract's I/O names, at ``opset``."""
    import onnxruntime

    if n_classes is None:
        raise ConfigError("--from-onnx needs --classes N: the class count is not in the graph")
    path = Path(path)
    model = _load_onnx(path)
    want = [n or d for n, d in zip(names, GENERATOR_IO)]
    z_dim = _check_onnx_io(path, model, want)
    rename = _rename_io(path, model, want)
    have_opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    model = _at_opset(path, model, have_opset, opset)
    shape = _dry_run(path, model, z_dim, n_classes)
    return Source(
        kind="onnx", arch="onnx", z_dim=z_dim, n_classes=n_classes,
        labels=label_names(labels, n_classes), image_shape=list(shape),
        sha256=sha256_file(path), path=path, onnx_model=model,
        weights=f"the graph of {path.name}, as given",
        golden_by=f"ONNX Runtime {onnxruntime.__version__} float32 on CPU from model.onnx "
                  f"(wrapped from {path.name}); no PyTorch reference",
        source_entry={"kind": "onnx", "file": str(path), "sha256": sha256_file(path),
                      "opset": have_opset, "renamed": rename, "z_dim": z_dim,
                      "image_shape": list(shape), "elements_per_image": math.prod(shape)},
    )


def _load_onnx(path: Path) -> Any:
    import onnx

    if not path.is_file():
        raise ConfigError(f"--from-onnx {path} does not exist")
    try:
        return onnx.load(str(path))
    except Exception as exc:  # noqa: BLE001 - protobuf DecodeError and the like
        raise ConfigError(f"--from-onnx {path} is not an ONNX model ({type(exc).__name__}: "
                          f"{str(exc)[:200]})") from exc


def _graph_io(model: Any) -> tuple[list[Any], list[Any]]:
    """The graph's real inputs (initializers left out) and its outputs."""
    g = model.graph
    inits = {i.name for i in g.initializer}
    return [i for i in g.input if i.name not in inits], list(g.output)


def _check_onnx_io(path: Path, model: Any, want: list[str]) -> int:
    """The graph has the latent ``want[0]`` (float32 [batch, z_dim]) and label ``want[1]``
    (int64 [batch]) as its only inputs and the image ``want[2]`` (float32) among its outputs;
    return z_dim. Every problem is named in one ConfigError."""
    import onnx

    inputs, outputs = _graph_io(model)
    have_in, have_out = [i.name for i in inputs], [o.name for o in outputs]
    missing = ([f"input {want[0]!r} (--z-name)"] if want[0] not in have_in else []) \
        + ([f"input {want[1]!r} (--label-name)"] if want[1] not in have_in else []) \
        + ([f"output {want[2]!r} (--image-name)"] if want[2] not in have_out else [])
    if missing:
        raise ConfigError(f"--from-onnx {path}: no {', '.join(missing)}; the graph has inputs "
                          f"{have_in} and outputs {have_out} — map them with --z-name, "
                          "--label-name and --image-name")
    if len(inputs) != 2:
        extra = [n for n in have_in if n not in want[:2]]
        raise ConfigError(f"--from-onnx {path}: inputs {have_in}; a generator takes exactly the "
                          f"latent and the label (the graph also needs {extra}) — export it with"
                          " those two inputs only")
    by_name = {i.name: i for i in inputs}
    z_type = by_name[want[0]].type.tensor_type
    label_type = by_name[want[1]].type.tensor_type
    out_type = next(o for o in outputs if o.name == want[2]).type.tensor_type
    problems = [f"{name!r} is {_dtype(t.elem_type)}, expected {expected}"
                for name, t, code, expected in (
                    (want[0], z_type, onnx.TensorProto.FLOAT, "float32"),
                    (want[1], label_type, onnx.TensorProto.INT64, "int64"),
                    (want[2], out_type, onnx.TensorProto.FLOAT, "float32"))
                if t.elem_type != code]
    z_dims = [d.dim_value if d.HasField("dim_value") else None for d in z_type.shape.dim]
    if len(z_dims) != 2 or z_dims[1] is None:
        problems.append(f"{want[0]!r} has shape {_shape(z_type)}, expected [batch, z_dim] with a "
                        "fixed z_dim")
    if len(label_type.shape.dim) != 1:
        problems.append(f"{want[1]!r} has shape {_shape(label_type)}, expected [batch]")
    if problems:
        raise ConfigError(f"--from-onnx {path}: " + "; ".join(problems))
    return int(z_dims[1])  # type: ignore[arg-type]


def _rename_io(path: Path, model: Any, want: list[str]) -> dict[str, str]:
    """Rename the graph's I/O to the contract's names everywhere they appear (in place), make
    the batch axis dynamic and keep only the image output; return the renaming."""
    import onnx

    g = model.graph
    inputs, outputs = _graph_io(model)
    inits = {i.name for i in g.initializer}
    rename = {old: new for old, new in zip(want, GENERATOR_IO) if old != new}
    clash = [new for old, new in rename.items()
             if new in {n for node in g.node for n in (*node.input, *node.output)} | inits
             and new not in rename]
    if clash:
        raise ConfigError(f"--from-onnx {path}: the graph already has a tensor named "
                          f"{clash[0]!r} that is not the {clash[0]} input/output; rename it in "
                          "the source model")
    for vi in (*g.input, *g.output, *g.value_info):
        if vi.name in rename:
            vi.name = rename[vi.name]
    for node in g.node:
        node.input[:] = [rename.get(n, n) for n in node.input]
        node.output[:] = [rename.get(n, n) for n in node.output]
    for vi in (*inputs, *outputs):
        dims = vi.type.tensor_type.shape.dim
        if len(dims):
            dims[0].ClearField("dim_value")
            dims[0].dim_param = "batch"
    image_out = onnx.ValueInfoProto()
    image_out.CopyFrom(next(o for o in g.output if o.name == "image"))
    del g.output[:]  # the contract has one output; others are left out of the graph
    g.output.append(image_out)
    return rename


def _at_opset(path: Path, model: Any, have_opset: int, opset: int) -> Any:
    """``model`` converted to ``opset`` (when it is at another) and passing onnx's checker."""
    import onnx

    if have_opset != opset:
        try:
            from onnx import version_converter

            model = version_converter.convert_model(model, opset)
        except Exception as exc:  # noqa: BLE001 - onnx's converter raises many kinds
            raise ExportError(f"--from-onnx {path} is at opset {have_opset}; converting it to "
                              f"--opset {opset} failed ({type(exc).__name__}: "
                              f"{str(exc)[:200]}); pass --opset {have_opset}") from exc
    try:
        onnx.checker.check_model(model)
    except Exception as exc:  # noqa: BLE001
        raise ConfigError(f"--from-onnx {path}: the renamed graph fails onnx's checker "
                          f"({str(exc)[:300]})") from exc
    return model


def _dry_run(path: Path, model: Any, z_dim: int, n_classes: int) -> tuple[int, ...]:
    """A dry run on ONNX Runtime at each of ``DRY_RUN_BATCHES``: the image must be
    [batch, C, H, W] (C = 1 or 3), finite and in [-1, 1]; return (C, H, W)."""
    from edgegen.runtime.latent import latent
    from edgegen.runtime.providers import make_session

    session = make_session(model.SerializeToString(), name=str(path))
    shape: tuple[int, ...] = ()
    for b in DRY_RUN_BATCHES:
        z = latent(0, b, z_dim)
        y = (np.arange(b) % n_classes).astype(np.int64)
        try:
            out = session.run(["image"], {"z": z, "label": y})[0]
        except Exception as exc:  # noqa: BLE001 - onnxruntime's errors
            raise ConfigError(f"--from-onnx {path}: ONNX Runtime failed on z float32[{b}, "
                              f"{z_dim}], label int64[{b}] ({str(exc).splitlines()[0][:300]}); "
                              "is the batch axis fixed in the graph?") from exc
        if out.ndim != 4 or out.shape[0] != b or out.shape[1] not in (1, 3):
            raise ConfigError(f"--from-onnx {path}: the image output has shape "
                              f"{list(out.shape)} for a batch of {b}; expected [batch, C, H, W] "
                              "with C = 1 or 3")
        if not np.isfinite(out).all():
            raise ConfigError(f"--from-onnx {path}: the image output holds NaN/inf")
        if out.min() < -1 - RANGE_SLACK or out.max() > 1 + RANGE_SLACK:
            raise ConfigError(f"--from-onnx {path}: image values in [{out.min():.4g}, "
                              f"{out.max():.4g}], expected [-1, 1]; add the mapping (for example "
                              "x * 2 - 1) to the graph")
        shape = tuple(int(v) for v in out.shape[1:])
    return shape


def _dtype(elem_type: int) -> str:
    import onnx

    return onnx.helper.tensor_dtype_to_np_dtype(elem_type).name if elem_type else "untyped"


def _shape(t: Any) -> list[Any]:
    return [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in t.shape.dim]
