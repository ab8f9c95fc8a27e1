"""Precision variants of the fp32 generator, and how far each one moves from it.

* ``fp16`` — fp16 weights and arithmetic, fp32 inputs and outputs kept (callers change nothing);
* ``int8`` — static QDQ quantization of the *rewritten* graph (``export.rewrite``: its
  convolutions run as QLinearConv), calibrated on portable latents, per-channel int8 weights,
  uint8 activations; ops without an int8 CPU kernel stay float without Q/DQ around them;
* an ONNX Runtime-optimized copy, kept only when offline optimization actually changes the graph.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from edgegen.runtime.latent import latent
from edgegen.runtime.postprocess import to_uint8
from edgegen.runtime.sessions import run_evaluator

FP32_OPS = ("Sin", "Cos", "InstanceNormalization")


def fp32_islands(model: Any) -> dict[str, list[str]]:
    """The nodes a reduced-precision variant keeps in float32, by reason (empty for graphs
    without them, e.g. cdcgan's):

    * ``time_embedding``: every ``Sin`` / ``Cos``, the nodes they depend on (``t * freqs``,
      arguments up to ~1000: fp16's spacing there is 0.5 rad) and the ``Concat`` joining them;
    * ``normalization``: every ``InstanceNormalization`` (GroupNorm at opset 17: the variance
      sums squares over a whole group, which fp16 may overflow).
    """
    producers = {o: n for n in model.graph.node for o in n.output}
    trig = [n for n in model.graph.node if n.op_type in ("Sin", "Cos")]
    keep: dict[str, Any] = {}
    stack = list(trig)
    while stack:  # every ancestor of a Sin / Cos
        n = stack.pop()
        if n.name in keep:
            continue
        keep[n.name] = n
        stack += [producers[i] for i in n.input if i in producers]
    outs = {o for n in trig for o in n.output}
    joins = [n.name for n in model.graph.node
             if n.op_type == "Concat" and n.input and set(n.input) <= outs]
    norms = [n.name for n in model.graph.node if n.op_type == "InstanceNormalization"]
    return {"time_embedding": [*keep, *joins], "normalization": norms}


def make_fp16(src: Path, dst: Path) -> dict[str, list[str]]:
    """fp16 weights and arithmetic, float32 I/O; the ``fp32_islands`` stay float32 (returned)."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = onnx.load(str(src))
    islands = fp32_islands(model)
    blocked = [n for names in islands.values() for n in names]
    model = convert_float_to_float16(model, keep_io_types=True,
                                     node_block_list=blocked or None)
    topological_sort(model.graph)  # the converter appends its input casts at the end
    onnx.save(model, str(dst))
    return islands


def topological_sort(graph: Any) -> None:
    """Reorder ``graph.node`` so every node comes after the producers of its inputs."""
    available = {i.name for i in graph.input} | {t.name for t in graph.initializer} | {""}
    pending, ordered = list(graph.node), []
    while pending:
        ready = [n for n in pending if all(i in available for i in n.input)]
        if not ready:
            raise ValueError("graph has a cycle or an input nobody produces: "
                             + ", ".join(sorted({i for n in pending for i in n.input
                                                 if i not in available})))
        for n in ready:
            ordered.append(n)
            available.update(n.output)
        pending = [n for n in pending if n not in ready]
    del graph.node[:]
    graph.node.extend(ordered)


# Samples per calibration run. ONNX Runtime's MinMax calibrator runs a copy of the model with a
# ReduceMin/ReduceMax output on every float tensor, and that session holds every intermediate
# tensor of a run at once: measured on the demo's cflow (4 steps x 2 calls unrolled), ~60 MB
# per sample — 100 per run took the demo to 8.0 GB peak RSS, 10 per run to 0.8 GB. The ranges
# are min / max over the same samples however they are batched (checked: the int8 graph is
# identical, every initializer byte for byte), so the batch changes memory only.
CALIBRATION_BATCH = 10


class _LatentReader:
    """Calibration batches for ONNX Runtime's static quantizer: portable latents, all labels."""

    def __init__(self, seed: int, n: int, z_dim: int, n_classes: int,
                 batch: int = CALIBRATION_BATCH):
        self.batches = []
        for start in range(0, n, batch):
            k = min(batch, n - start)
            self.batches.append({"z": latent(seed, k, z_dim, start=start),
                                 "label": (np.arange(start, start + k) % n_classes)
                                 .astype(np.int64)})
        self._it = iter(self.batches)

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._it, None)

    def rewind(self) -> None:
        self._it = iter(self.batches)


# ONNX Runtime's CPU provider registers no integer ConvTranspose (no QLinearConvTranspose):
# quantized, it runs in float between DequantizeLinear/QuantizeLinear pairs that only add work
# and, before the output's tanh, error. Left out, its output stays float.
FLOAT_OPS = ("ConvTranspose",)


class _FeedReader:
    """Calibration batches given as feed dicts (the denoiser's states along the sampler)."""

    def __init__(self, batches: list[dict[str, np.ndarray]]):
        self.batches = batches
        self._it = iter(self.batches)

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._it, None)

    def rewind(self) -> None:
        self._it = iter(self.batches)


def make_int8(src: Path, dst: Path, *, seed: int, samples: int, z_dim: int,
              n_classes: int, feeds: list[dict[str, np.ndarray]] | None = None,
              batch: int = CALIBRATION_BATCH) -> dict[str, Any]:
    """Static QDQ int8 of ``src``, calibrated on portable latents (``batch`` per run) or on
    ``feeds``, batches of named inputs; the ``fp32_islands`` are left out of quantization."""
    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.registry import QDQRegistry, QLinearOpsRegistry
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if feeds is None:
        reader = type("Reader", (_LatentReader, CalibrationDataReader), {})(
            seed, samples, z_dim, n_classes, batch)
    else:
        reader = type("Reader", (_FeedReader, CalibrationDataReader), {})(feeds)
    # QGemm takes a constant bias only: a Gemm whose C is computed at run time (the
    # embedding-into-gemm rewrite's label rows) would run in float behind a dequantized weight
    # matrix on every call (measured 9x slower at batch 1); it stays a float Gemm.
    model = onnx.load(str(src))
    consts = {t.name for t in model.graph.initializer}
    float_gemms = [n.name for n in model.graph.node if n.op_type == "Gemm"
                   and len(n.input) > 2 and n.input[2] and n.input[2] not in consts]
    with tempfile.TemporaryDirectory() as tmp:
        pre = Path(tmp) / "pre.onnx"
        quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
        islands = fp32_islands(onnx.load(str(pre)))
        excluded = [n for names in islands.values() for n in names] + float_gemms
        ops = sorted((set(QLinearOpsRegistry) | set(QDQRegistry)) - set(FLOAT_OPS))
        quantize_static(str(pre), str(dst), reader, quant_format=QuantFormat.QDQ,
                        per_channel=True, reduce_range=True, activation_type=QuantType.QUInt8,
                        weight_type=QuantType.QInt8, calibrate_method=CalibrationMethod.MinMax,
                        op_types_to_quantize=ops, nodes_to_exclude=excluded or None,
                        extra_options={"WeightSymmetric": True, "ActivationSymmetric": False})
    graph_ops = {n.op_type for n in onnx.load(str(dst)).graph.node}
    # reduce_range: 7-bit weights. x86 CPUs without VNNI (AVX2) multiply u8 x s8 pairs with
    # vpmaddubsw, whose int16 sums saturate with full 8-bit weights: measured on an AVX2 CPU,
    # ONNX Runtime's fused int8 kernels then missed the QDQ graph's own float result by 0.24
    # (0.009 with reduce_range), and the browser (WebAssembly, no saturation) drew other pixels.
    out = {"format": "QDQ", "weights": "int8 per-channel symmetric, 7-bit range (reduce_range)",
           "activations": "uint8 per-tensor asymmetric", "calibration": "MinMax",
           "calibration_samples": samples, "calibration_seed": str(seed),
           "left_in_float": sorted(graph_ops & set(FLOAT_OPS)) + (
               ["Gemm with a run-time C"] if float_gemms else []),
           "float_reason": "ONNX Runtime's CPU provider has no integer kernel for them (QGemm "
                           "takes a constant C only)"}
    if any(islands.values()):
        out["kept_in_fp32"] = {k: len(v) for k, v in islands.items()}
    return out


def make_optimized(src: Path, dst: Path) -> dict[str, Any]:
    """Offline ORT basic optimizations (provider-independent). Returns node counts; ``dst`` is
    written only when the graph shrinks."""
    import onnx
    import onnxruntime as ort

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "opt.onnx"
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        so.optimized_model_filepath = str(out)
        ort.InferenceSession(str(src), so, providers=["CPUExecutionProvider"])
        before = len(onnx.load(str(src)).graph.node)
        after = len(onnx.load(str(out)).graph.node)
        helps = after < before
        if helps:
            out.replace(dst)
    return {"nodes_before": before, "nodes_after": after, "written": helps,
            "note": ("basic (provider-independent) optimizations removed "
                     f"{before - after} nodes" if helps else
                     f"ORT basic optimizations leave the {before}-node graph unchanged (the "
                     "exporter already folded constants and BatchNorm), so no optimized copy "
                     "is shipped; ORT applies its provider-specific fusions at load time")}


def deviation(reference: np.ndarray, candidate: np.ndarray, labels: np.ndarray,
              evaluator: Any | None) -> dict[str, Any]:
    """How far ``candidate`` images are from ``reference`` (both ``[N, 1, 28, 28]``)."""
    diff = np.abs(candidate.astype(np.float64) - reference.astype(np.float64))
    u8_ref, u8_cand = to_uint8(reference), to_uint8(candidate)
    out: dict[str, Any] = {
        "samples": int(len(labels)),
        "max_abs": float(diff.max()) if diff.size else 0.0,
        "mean_abs": float(diff.mean()) if diff.size else 0.0,
        "p99_abs": float(np.percentile(diff, 99)) if diff.size else 0.0,
        "uint8_pixels_changed": float(np.mean(u8_ref != u8_cand)) if diff.size else 0.0,
    }
    if evaluator is not None:
        pred_ref = run_evaluator(evaluator, reference)[0].argmax(1)
        pred_cand = run_evaluator(evaluator, candidate)[0].argmax(1)
        out.update({"label_agreement": float(np.mean(pred_ref == pred_cand)),
                    "fidelity_reference": float(np.mean(pred_ref == labels)),
                    "fidelity": float(np.mean(pred_cand == labels))})
    return out
