"""Where the time goes inside ONNX Runtime, per op type, from its own profiler.

Used to say *why* a variant is or is not faster on a provider rather than guess: which kernels
ran, what share of the time each took, and whether ONNX Runtime inserted casts (fp16 graphs on a
provider without fp16 kernels: ``InsertCastTransformer`` names them ``InsertedPrecisionFree…``)
or ran float kernels between Quantize/DequantizeLinear pairs (QDQ ops it has no int8 kernel for).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edgegen.runtime.providers import ProviderSpec, kernel_times, profile_events

# Kernel names (ONNX Runtime's fused / NCHWc / int8 ones, OpenVINO's) -> the graph's dense op
# whose FLOPs they compute.
FAMILY = {"Conv": "Conv", "FusedConv": "Conv", "QLinearConv": "Conv", "NchwcConv": "Conv",
          "ConvInteger": "Conv", "Convolution": "Conv", "GroupConvolution": "Conv",
          "ConvTranspose": "ConvTranspose", "ConvolutionBackpropData": "ConvTranspose",
          "Gemm": "Gemm", "FusedGemm": "Gemm", "QGemm": "Gemm", "FullyConnected": "Gemm",
          "MatMul": "MatMul", "FusedMatMul": "MatMul", "MatMulInteger": "MatMul",
          "QLinearMatMul": "MatMul"}


def op_profile(model: Path | bytes, spec: ProviderSpec, feeds: dict[str, np.ndarray],
               runs: int = 20, flops_by_op: dict[str, float] | None = None) -> dict[str, Any]:
    """Median kernel time per node over ``runs`` profiled runs, summed per op type; with
    ``flops_by_op`` (the graph's dense FLOPs per op type for this batch, ``flops.count_flops``)
    also the rate each dense op family reached (``families``: us, share, GFLOP/s)."""
    per_node: dict[tuple[str, str], list[float]] = {}
    for node, op, _provider, us in kernel_times(profile_events(model, spec, feeds, runs)):
        per_node.setdefault((op, node), []).append(us)
    ops: dict[str, dict[str, float]] = {}
    for (op, _node), durs in per_node.items():
        o = ops.setdefault(op, {"us": 0.0, "nodes": 0})
        o["us"] += float(np.median(durs))
        o["nodes"] += 1
    total = sum(o["us"] for o in ops.values()) or 1.0
    for o in ops.values():
        o["share"] = o["us"] / total
    nodes = [n for _, n in per_node]
    families: dict[str, dict[str, float]] = {}
    for op, o in ops.items():
        fam = FAMILY.get(op)
        if fam is not None:
            f = families.setdefault(fam, {"us": 0.0, "share": 0.0})
            f["us"] += o["us"]
            f["share"] += o["share"]
    for fam, f in families.items():
        if flops_by_op and flops_by_op.get(fam) and f["us"] > 0:
            f["gflops"] = flops_by_op[fam] / f["us"] / 1e3  # FLOP / us / 1e3 = GFLOP/s
    return {
        "model": "<bytes>" if isinstance(model, bytes) else Path(model).name, "runs": runs,
        "total_us": total, "families": families,
        "ops": dict(sorted(ops.items(), key=lambda kv: -kv[1]["us"])),
        "inserted_casts": sum(1 for n in nodes if n.startswith("InsertedPrecisionFree")),
        "float_ops_between_qdq": sorted({op for op, _ in per_node
                                         if op in ("ConvTranspose", "Conv", "Gemm", "MatMul")}),
        "int8_ops": sorted({op for op, _ in per_node if op.startswith(("QLinear", "QGemm",
                                                                      "MatMulInteger",
                                                                      "ConvInteger"))}),
    }


def kernel_types(op: str, provider: str = "CPUExecutionProvider") -> list[str] | None:
    """The element types ONNX Runtime registers ``op`` for on ``provider`` (None: unknown).

    Reads the kernel registry through ``onnxruntime.capi._pybind_state.get_all_opkernel_def``;
    it is not a public API, so any failure answers None rather than a guess.
    """
    try:
        from onnxruntime.capi import _pybind_state as c

        types: set[str] = set()
        for d in c.get_all_opkernel_def():
            if d.provider == provider and d.op_name == op and d.domain in ("", "ai.onnx"):
                for constraint in d.type_constraints.values():
                    types.update(t.replace("tensor(", "").rstrip(")") for t in constraint)
        return sorted(types)
    except Exception:  # noqa: BLE001 - private API: absence is an answer, not an error
        return None
