"""PyTorch -> ONNX at exactly the requested opset, self-contained, with BatchNorm folded.

torch 2.14's default (dynamo) exporter builds at opset 18 and down-converts when asked for less;
the conversion can fail silently (the model stays at 18). We check ``opset_import`` after every
export and fall back to the TorchScript exporter, and if neither gives the exact opset we fail
with a clear message: another opset is never shipped silently.

A fallback is for an exporter that *fails*, never for one that was interrupted: torch's dynamo
exporter can swallow a ``KeyboardInterrupt`` (Ctrl-C while it imports or traces) and then fail
with an unrelated error. Every attempt runs under ``interrupts.watching()``, and a signal that
arrived during it is raised as ``Interrupted`` instead of trying the next exporter.
"""

from __future__ import annotations

import copy
import io
import logging
import warnings
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

from edgegen.core.errors import ExportError
from edgegen.runtime import interrupts

MIN_OPSET = 11


def max_opset() -> int:
    """The highest opset both the installed torch exporter and onnx support."""
    import onnx

    try:
        from torch.onnx._constants import ONNX_MAX_OPSET as torch_max
    except ImportError:  # private constant; be conservative when it moves
        torch_max = 20
    return min(int(torch_max), onnx.defs.onnx_opset_version())


def check_opset(opset: int) -> None:
    hi = max_opset()
    if not MIN_OPSET <= opset <= hi:
        raise ExportError(f"opset {opset} is not supported: the installed torch and onnx export "
                          f"opsets {MIN_OPSET} to {hi}; pass --opset in that range (17 is the "
                          "default)")


# --------------------------------------------------------------------------- BatchNorm folding

def fold_batchnorm(model: Any) -> Any:
    """A copy of ``model`` (eval mode) in which every BatchNorm that directly follows a Linear,
    Conv2d or ConvTranspose2d inside an ``nn.Sequential`` is folded into that layer's weights
    (``torch.nn.utils.fusion``) and replaced by Identity. Folding uses the running statistics,
    exactly what eval mode does.
    """
    from torch import nn
    from torch.nn.utils.fusion import fuse_conv_bn_eval, fuse_linear_bn_eval

    model = copy.deepcopy(model).eval()
    for seq in [m for m in model.modules() if isinstance(m, nn.Sequential)]:
        names = list(seq._modules)
        for a, b in zip(names, names[1:]):
            layer, bn = seq._modules[a], seq._modules[b]
            if not isinstance(bn, (nn.BatchNorm1d, nn.BatchNorm2d)):
                continue
            if isinstance(layer, nn.Linear):
                seq._modules[a] = fuse_linear_bn_eval(layer, bn)
            elif isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d)):
                seq._modules[a] = fuse_conv_bn_eval(
                    layer, bn, transpose=isinstance(layer, nn.ConvTranspose2d))
            else:
                continue
            seq._modules[b] = nn.Identity()
    return model


# --------------------------------------------------------------------------- export

def export_onnx(model: Any, args: tuple[Any, ...], path: Path, opset: int,
                input_names: list[str], output_names: list[str],
                output_shapes: dict[str, list[int | str]]) -> dict[str, Any]:
    """Export ``model(*args)`` to one self-contained ``path`` with a dynamic batch axis.

    Returns what happened: which exporter produced the file and what was tried first.
    """
    import onnx

    check_opset(opset)
    attempts: list[str] = []
    for exporter in ("dynamo", "torchscript"):
        mark = interrupts.count()
        try:
            with interrupts.watching():
                _run_exporter(exporter, model, args, path, opset, input_names, output_names)
        except Exception as exc:  # noqa: BLE001 - any exporter failure: try the other one
            interrupts.raise_if_received_since(mark)  # ...unless it was Ctrl-C / SIGTERM
            attempts.append(f"{exporter}: failed ({type(exc).__name__}: "
                            f"{str(exc).splitlines()[0][:160]})")
            continue
        interrupts.raise_if_received_since(mark)  # swallowed, yet the export "succeeded"
        got = _default_opset(onnx.load(str(path), load_external_data=False))
        if got == opset:
            _finish(path, input_names, output_shapes)
            return {"exporter": exporter, "attempts": attempts}
        attempts.append(f"{exporter}: produced opset {got}, not {opset}")
    raise ExportError(f"could not export at exactly opset {opset}: " + "; ".join(attempts)
                      + f". Try another --opset between {MIN_OPSET} and {max_opset()}.")


def _run_exporter(exporter: str, model: Any, args: tuple[Any, ...], path: Path, opset: int,
                  input_names: list[str], output_names: list[str]) -> None:
    import torch

    kwargs: dict[str, Any]
    if exporter == "dynamo":
        batch = torch.export.Dim("batch", min=1, max=1 << 16)
        kwargs = {"dynamo": True, "external_data": False,
                  "dynamic_shapes": tuple({0: batch} for _ in args)}
    else:
        kwargs = {"dynamo": False, "do_constant_folding": True,
                  "dynamic_axes": {n: {0: "batch"} for n in input_names + output_names}}
    sink = io.StringIO()  # the exporters print progress and version-converter tracebacks
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), redirect_stdout(sink), redirect_stderr(sink):
            warnings.simplefilter("ignore")
            torch.onnx.export(model, args, str(path), input_names=input_names,
                              output_names=output_names, opset_version=opset, **kwargs)
    finally:
        logger.setLevel(level)
    stray = Path(str(path) + ".data")
    if stray.exists():  # never ship weights beside the model
        stray.unlink()
        raise ExportError(f"{exporter} exporter wrote external data; refusing a split model")


def _default_opset(model: Any) -> int | None:
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)


def model_opset(path: Path) -> int | None:
    """The default-domain opset a saved model imports."""
    import onnx

    return _default_opset(onnx.load(str(path), load_external_data=False))


def _finish(path: Path, input_names: list[str], output_shapes: dict[str, list[int | str]]
            ) -> None:
    """Name every batch axis ``batch``, pin the other output dims, run shape inference."""
    import onnx

    model = onnx.load(str(path))
    for vi in list(model.graph.input) + list(model.graph.output):
        dims = vi.type.tensor_type.shape.dim
        if dims:
            dims[0].ClearField("dim_value")
            dims[0].dim_param = "batch"
        if vi.name in output_shapes:
            for d, want in zip(dims[1:], output_shapes[vi.name][1:]):
                if isinstance(want, int):
                    d.ClearField("dim_param")
                    d.dim_value = want
    del model.graph.value_info[:]
    model = onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True)
    onnx.save(model, str(path))


def set_metadata(path: Path, props: dict[str, str], doc: str) -> None:
    import onnx

    model = onnx.load(str(path))
    del model.metadata_props[:]
    for k, v in props.items():
        model.metadata_props.add(key=k, value=str(v))
    model.doc_string = doc
    model.producer_name = "edgegen"
    onnx.save(model, str(path))


def check_model(path: Path) -> None:
    """onnx's full checker (with shape inference) must pass, or the export fails."""
    import onnx

    try:
        onnx.checker.check_model(str(path), full_check=True)
    except Exception as exc:  # noqa: BLE001 - onnx raises ValidationError and others
        raise ExportError(f"{path.name} fails onnx.checker.check_model(full_check=True): "
                          f"{exc}") from exc


def graph_ops(path: Path) -> list[str]:
    import onnx

    return [n.op_type for n in onnx.load(str(path), load_external_data=False).graph.node]
