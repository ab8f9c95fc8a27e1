"""``edgegen export --ort-format``: every ONNX model of the bundle also in ONNX Runtime's ORT
format, for ONNX Runtime Mobile and minimal builds, and the operator config of a reduced build.

ONNX Runtime's own converter (``onnxruntime.tools.convert_onnx_models_to_ort``) writes them:

* **Runtime optimization style.** The ``.ort`` graph has ONNX Runtime's basic (provider-
  independent) optimizations applied; the extended ones (Conv+Relu -> FusedConv, QDQ ->
  QLinearConv, ...) are saved beside it and replayed at load when the session enables
  ``session.enable_saved_runtime_optimizations`` (``runtime.providers`` does for ``.ort``
  bytes). The Fixed style bakes this machine's choices into the file: measured on the cdcgan
  bundle, its fp16 model stores fp32 copies of the weights behind Casts (x86's CPU EP has no
  fp16 Conv; 724,640 bytes against Runtime's 391,808, and no fp16 arithmetic on a phone that has
  it), its int8 model is fused to x86's uint8 QLinearConv, and its contrib ops (FusedConv,
  FusedGemm) are ones NNAPI / CoreML cannot take. The converter leaves the NCHWc layout (the
  vector width: 16 floats on AVX-512, 8 on AVX2) out of both styles unless asked for
  ``target_platform="amd64"``: a Fixed model made here still loads and matches the goldens on an
  AVX2 CPU (measured under ``qemu-x86_64 -cpu Haswell``), while one with NCHWc baked in loads there
  and silently returns wrong images (max |Δ| 1.95). See docs/ARCHITECTURE.md.
* **Type reduction.** ``required_operators.config`` lists each operator with the types the
  models use (``--enable_reduced_operator_type_support`` of ONNX Runtime's build): for the
  cdcgan bundle's ops, 18 of the 98 type instantiations the CPU kernels register.

Each ``.ort`` file is checked before the bundle is written: on the golden inputs (generators,
evaluator) or a fixed denoiser input, it must reproduce its ``.onnx`` within ``tolerance``.
"""

from __future__ import annotations

import contextlib
import io
import logging
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from edgegen.core.errors import ExportError
from edgegen.export.parity.config import Tolerance, VerifyConfig, tolerance_for
from edgegen.runtime.sampler import DENOISER_IO

STYLE = "Runtime"
TYPE_REDUCTION = True
REQUIRED_OPERATORS = "required_operators.config"


def tolerance(onnx_file: str, sampler: bool) -> Tolerance:
    """How close ``<name>.ort`` must stay to ``<name>.onnx`` on ONNX Runtime's CPU EP: verify's
    tolerance for the file's precision (``tolerance_for``; an iterative family's unrolled
    ``model*.onnx`` at the sampler's). The same graph, optimized and saved, so only kernel choice
    differs for fp32 (the .onnx session may use NCHWc kernels, the .ort does not: 7.2e-7 on
    cdcgan). fp16 moves more: loaded as .onnx, ONNX Runtime's extended optimizations also drop
    fp16 round trips between the Casts it inserts for the CPU, which the .ort's replayed subset
    keeps (measured 8.9e-4 on a cflow denoiser.fp16), within fp16's tolerance."""
    precision = next((p for p in ("fp16", "int8") if f".{p}." in onnx_file), "fp32")
    unrolled = sampler and onnx_file.startswith("model")
    return tolerance_for(VerifyConfig(), precision, "cpu", sampler=unrolled)


def ort_name(onnx_file: str) -> str:
    """``model.fp16.onnx`` -> ``model.fp16.ort``."""
    return onnx_file[: -len(".onnx")] + ".ort"


def convert_bundle(root: Path, sets: list[Any], session: Callable[[Path], Any],
                   emit: Callable[[str], None], sampler: bool = False
                   ) -> tuple[dict[str, Any], list[str]]:
    """Write ``<name>.ort`` for every ``<name>.onnx`` in ``root`` and ``required_operators.config``;
    check each against its ONNX model (``session`` makes a session from a file's measured
    bytes). Returns the manifest's ``ort_format`` section and notes with the measured |Δ|."""
    import onnxruntime

    models = sorted(p.name for p in root.glob("*.onnx"))
    if not models:
        raise ExportError(f"{root} holds no ONNX model to convert to ORT format")
    with tempfile.TemporaryDirectory(prefix="edgegen-ort-") as tmp:
        src, out = Path(tmp) / "onnx", Path(tmp) / "ort"
        src.mkdir()
        for name in models:
            shutil.copyfile(root / name, src / name)
        convert_models(src, out)
        for name in models:
            shutil.copyfile(out / _converted(name), root / ort_name(name))
        config = (out / "required_operators_and_types.with_runtime_opt.config").read_text()
    (root / REQUIRED_OPERATORS).write_text(config_text(config, models, onnxruntime.__version__),
                                           encoding="utf-8")
    deltas = {name: check_ort(root, name, sets, session, tolerance(name, sampler))
              for name in models}
    emit(f"wrote {len(models)} ORT-format models ({STYLE} style) and {REQUIRED_OPERATORS}; max "
         f"|Δ| vs their .onnx: {max(deltas.values()):.1e}")
    note = (f"ORT format ({STYLE} optimization style, onnxruntime {onnxruntime.__version__}, "
            "type-reduced required_operators.config): max |Δ| of each .ort vs its .onnx on CPU: "
            + ", ".join(f"{ort_name(n)} {d:.1e}" for n, d in deltas.items()))
    section = {"onnxruntime": onnxruntime.__version__, "optimization_style": STYLE,
               "required_operators": REQUIRED_OPERATORS, "type_reduction": TYPE_REDUCTION,
               "models": {name: ort_name(name) for name in models}}
    return section, [note]


def _converted(onnx_file: str) -> str:
    """The converter's name for the Runtime-style ``.ort`` of ``onnx_file``."""
    return onnx_file[: -len(".onnx")] + ".with_runtime_opt.ort"


def convert_models(src: Path, out: Path) -> None:
    """Run ONNX Runtime's converter over every model in ``src`` into ``out``, quietly (it prints
    each step); a failure is an ExportError naming the converter's message."""
    from onnxruntime.tools.convert_onnx_models_to_ort import (
        OptimizationStyle,
        convert_onnx_models_to_ort,
    )

    chatty = logging.getLogger("ort_format_model.utils")
    level = chatty.level
    chatty.setLevel(logging.WARNING)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            convert_onnx_models_to_ort(src, output_dir=out,
                                       optimization_styles=[OptimizationStyle[STYLE]],
                                       enable_type_reduction=TYPE_REDUCTION)
    except Exception as exc:  # noqa: BLE001 - the converter raises ORT's and its own errors
        raise ExportError(f"ONNX Runtime's ORT-format converter failed: "
                          f"{str(exc).splitlines()[0][:300]}; export without --ort-format, or "
                          "report the model that fails") from exc
    finally:
        chatty.setLevel(level)


def config_text(config: str, models: list[str], version: str) -> str:
    """The converter's config with its header (temporary paths of this machine) replaced by the
    bundle's model names; the operator lines are kept as written."""
    ops = [line for line in config.splitlines() if line.strip() and not line.startswith("#")]
    header = [f"# Generated by onnxruntime {version} tools.convert_onnx_models_to_ort "
              f"(optimization style {STYLE}, type reduction) from the bundle's models:",
              *(f"# - {ort_name(m)}" for m in models)]
    return "\n".join([*header, *ops]) + "\n"


def check_ort(root: Path, onnx_file: str, sets: list[Any], session: Callable[[Path], Any],
              tol: Tolerance) -> float:
    """The largest |Δ| between ``<name>.ort`` and ``<name>.onnx`` on the same inputs; an
    ExportError beyond ``tol`` (the conversion must not change the model)."""
    onnx_session = session(root / onnx_file)
    ort_session = session(root / ort_name(onnx_file))
    worst = 0.0
    for feeds in model_inputs(onnx_session, sets):
        want = onnx_session.run(None, feeds)
        got = ort_session.run(None, feeds)
        for a, b in zip(got, want):
            diff = np.abs(a.astype(np.float64) - b.astype(np.float64))
            if not np.all(diff <= tol.atol + tol.rtol * np.abs(b.astype(np.float64))):
                raise ExportError(f"{ort_name(onnx_file)} differs from {onnx_file} by "
                                  f"{float(np.nanmax(diff)):.3g} (> atol {tol.atol:g}, rtol "
                                  f"{tol.rtol:g}): the ORT-format conversion changed the "
                                  "model — export without --ort-format and report it")
            worst = max(worst, float(diff.max()))
    return worst


def model_inputs(session: Any, sets: list[Any]) -> list[dict[str, np.ndarray]]:
    """Feeds for a bundle model, chosen by its input names: a generator (z, label) gets every
    golden set's inputs, the evaluator (image) every golden image, a denoiser (x, t, label) the
    golden latents as states at t = 0.5 with their labels."""
    names = [i.name for i in session.get_inputs()]
    if names == ["z", "label"]:
        return [{"z": g.z, "label": g.label} for g in sets]
    if names == ["image"]:
        return [{"image": g.image.astype(np.float32)} for g in sets]
    if names == list(DENOISER_IO[:3]):
        shape = [int(d) for d in session.get_inputs()[0].shape[1:]]  # [C, H, W]
        return [{"x": g.z.reshape(len(g.z), *shape),
                 "t": np.full(len(g.z), 0.5, np.float32), "label": g.label} for g in sets]
    raise ExportError(f"a bundle model with inputs {names} is none of generator (z, label), "
                      "evaluator (image) or denoiser (x, t, label); cannot check its .ort")
