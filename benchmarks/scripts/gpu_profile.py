"""Where the fp16 graph loses to fp32 on a GPU provider (issue 24 item 3), measured.

On the H200 (benchmarks/results/h200-2026-11-28) the cdcgan fp16 variant ran at 0.59x of fp32
with CUDA graphs at batch 512. This script takes one bundle and, for each *form* of its graph
and each set of CUDA provider options, at each batch size:

* times fp32 and fp16 side by side (I/O binding, CUDA graphs on CUDA; interleaved blocks,
  ``edgegen.benchmarks.harness``): img/s and the fp16 ÷ fp32 ratio;
* records every GPU kernel of a few runs by name and duration (CUPTI through
  ``torch.profiler``, which sees ONNX Runtime's kernels: one process), grouped into convolution,
  GEMM, layout transforms (cuDNN's nchwToNhwc / nhwcToNchw), casts, element-wise, other —
  so a layout transform or a kernel without tensor cores shows by name;
* ONNX Runtime's own profile (``benchmarks.opprofile``: per-op time, placement, inserted casts);
* and reads the graph itself (onnx): its casts, which compute ops stay fp32, the channel counts
  and Gemm K of the dense ops (tensor cores want multiples of 8), asymmetric pads.

The forms: ``bundle`` (model.onnx / model.fp16.onnx as exported), ``plain`` (the export without
edgegen's CPU-chosen graph rewrites, and its fp16: the graph the H200 run of 2026-11-28 timed),
``ct-fp32`` (the fp16 graph with its ConvTranspose nodes kept in fp32; only where it has any).
The option sets: ``default`` and ``nhwc`` (``prefer_nhwc=1``).
Nothing here changes the export: it says which form and option the next fix should take.

    python benchmarks/scripts/gpu_profile.py BUNDLE --provider cuda --out DIR
    python benchmarks/scripts/gpu_profile.py BUNDLE --provider cpu --out DIR   # plumbing

Writes ``DIR/profile-<provider>.json`` and prints one line per (form, options, batch).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from edgegen.benchmarks.harness import TimingPlan, measure_interleaved
from edgegen.benchmarks.opprofile import op_profile
from edgegen.benchmarks.runners import Inputs, ort_edgegen, plain_export
from edgegen.benchmarks.stats import summarize
from edgegen.core.fileio import save_report
from edgegen.runtime.bundle import load_bundle
from edgegen.runtime.providers import GPU_PROVIDERS, spec_for

OPTIONS = {"default": (), "nhwc": (("prefer_nhwc", "1"),)}
KERNEL_GROUPS = (("layout", ("nchwToNhwc", "nhwcToNchw", "Transpose", "transpose")),
                 ("cast", ("Cast", "cast")), ("conv", ("conv", "Conv", "dgrad", "fprop",
                                                       "implicit_gemm", "xmma_fprop")),
                 ("gemm", ("gemm", "Gemm", "gemv", "cutlass")),
                 ("elementwise", ("Elementwise", "elementwise", "Relu", "Tanh", "Concat")))


# --------------------------------------------------------------------------- the graph itself
def graph_facts(model: bytes) -> dict[str, Any]:
    """Casts, fp32 compute ops, the dense ops' shapes (multiples of 8?), asymmetric pads."""
    import onnx
    from onnx import TensorProto, shape_inference

    m = shape_inference.infer_shapes(onnx.load_from_string(model))
    g = m.graph
    init = {i.name: (list(i.dims), i.data_type) for i in g.initializer}
    types = {v.name: v.type.tensor_type.elem_type for v in [*g.value_info, *g.input, *g.output]}
    types.update({k: t for k, (_, t) in init.items()})
    fp32_compute = sorted({n.op_type for n in g.node if n.op_type not in ("Cast", "Shape")
                           and any(types.get(i) == TensorProto.FLOAT for i in n.input)})
    dense = []
    for n in g.node:
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in n.attribute}
        if n.op_type in ("Conv", "ConvTranspose") and n.input[1] in init:
            w = init[n.input[1]][0]  # Conv [out, in, kh, kw]; ConvTranspose [in, out, kh, kw]
            cin, cout = (w[1], w[0]) if n.op_type == "Conv" else (w[0], w[1])
            pads = list(attrs.get("pads", [0, 0, 0, 0]))
            dense.append({"node": n.name, "op": n.op_type, "in": cin, "out": cout,
                          "kernel": w[2:], "strides": list(attrs.get("strides", [1, 1])),
                          "pads": pads, "asymmetric_pads": pads[:2] != pads[2:],
                          "channels_multiple_of_8": cin % 8 == 0 and cout % 8 == 0})
        elif n.op_type == "Gemm" and n.input[1] in init:
            k, nn = init[n.input[1]][0][::-1] if attrs.get("transB") else init[n.input[1]][0]
            dense.append({"node": n.name, "op": "Gemm", "k": k, "n": nn,
                          "k_multiple_of_8": k % 8 == 0, "n_multiple_of_8": nn % 8 == 0})
    return {"ops": dict(Counter(n.op_type for n in g.node)),
            "casts": [f"{n.input[0]} -> {n.output[0]}" for n in g.node if n.op_type == "Cast"],
            "compute_ops_with_fp32_inputs": fp32_compute, "dense": dense,
            "initializers": dict(Counter(TensorProto.DataType.Name(t) for _, t in init.values()))}


def forms(bundle: Any, folder: Path) -> dict[str, dict[str, bytes]]:
    """Each form's fp32 and fp16 graph (bytes)."""
    from edgegen.export.variants import make_fp16

    out = {"bundle": {"fp32": bundle.model_bytes("fp32"), "fp16": bundle.model_bytes("fp16")}}
    try:
        plain = plain_export(bundle, folder)
        make_fp16(plain, folder / "plain.fp16.onnx")
        out["plain"] = {"fp32": plain.read_bytes(),
                        "fp16": (folder / "plain.fp16.onnx").read_bytes()}
    except Exception as exc:  # noqa: BLE001 - a form that cannot be built is reported
        print(f"form plain: not built ({type(exc).__name__}: {exc})", file=sys.stderr)
    ct = _fp16_keeping(bundle.model_bytes("fp32"), "ConvTranspose")
    if ct is not None:
        out["ct-fp32"] = {"fp32": out["bundle"]["fp32"], "fp16": ct}
    return out


def _fp16_keeping(model: bytes, op: str) -> bytes | None:
    """The bundle's fp16 conversion (its fp32 islands kept, ``export.variants``) with every
    ``op`` node also left in fp32 (the converter adds the casts); None: the graph has none."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    from edgegen.export.variants import fp32_islands, topological_sort

    m = onnx.load_from_string(model)
    keep = [n.name for n in m.graph.node if n.op_type == op]
    if not keep:
        return None
    keep += [n for names in fp32_islands(m).values() for n in names]
    m = convert_float_to_float16(m, keep_io_types=True, node_block_list=keep)
    topological_sort(m.graph)
    return m.SerializeToString()


# --------------------------------------------------------------------------- measuring
def gpu_kernels(call: Any, runs: int) -> dict[str, Any]:
    """Every CUDA kernel of ``runs`` calls (CUPTI via torch.profiler), per name and group."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(runs):
            call()
        torch.cuda.synchronize()
    per: dict[str, float] = {}
    for ev in prof.key_averages():
        us = getattr(ev, "device_time_total", None) or getattr(ev, "cuda_time_total", 0.0)
        if us:
            per[ev.key] = per.get(ev.key, 0.0) + float(us) / runs
    groups: dict[str, float] = {}
    for name, us in per.items():
        group = next((g for g, keys in KERNEL_GROUPS if any(k in name for k in keys)), "other")
        groups[group] = groups.get(group, 0.0) + us
    top = sorted(per.items(), key=lambda kv: -kv[1])[:12]
    return {"us_per_run": sum(per.values()), "groups_us": groups,
            "top": [{"kernel": k[:160], "us": round(v, 2)} for k, v in top]}


def measure(models: dict[str, bytes], provider: str, batch: int, options: tuple, b: Any,
            plan: TimingPlan, trace: bool) -> dict[str, Any]:
    """fp32 and fp16 of one form at one batch: img/s interleaved, kernels, ORT's profile."""
    gpu = provider in GPU_PROVIDERS
    inputs = Inputs.make(2024, batch, b.z_dim, b.n_classes)
    contenders, out = {}, {}
    for prec, model in models.items():
        spec = spec_for(provider, prec, batch_range=(batch, batch, batch), cuda_graph=gpu,
                        provider_options=options)
        c = ort_edgegen(model, spec, inputs, variant=prec, io_binding=gpu)
        c.first_run()
        contenders[prec] = c.call
        out[prec] = {"session_create_s": c.session_create_s, "first_run_s": c.first_run_s}
        feeds = {"z": inputs.z, "label": inputs.label}
        out[prec]["ort_profile"] = op_profile(model, spec_for(provider, prec,
                                                             provider_options=options),
                                              feeds, runs=10)
        if trace:
            try:  # the kernel trace is extra: its failure must not lose the timing
                out[prec]["gpu_kernels"] = gpu_kernels(c.call, runs=20)
            except Exception as exc:  # noqa: BLE001 - reported in the JSON
                out[prec]["gpu_kernels"] = {"error": f"{type(exc).__name__}: {exc}"[:300]}
    samples, _ = measure_interleaved(contenders, plan)
    for prec, ns in samples.items():
        out[prec]["images_per_s"] = summarize(ns, batch).images_per_s
        out[prec]["p50_ms"] = summarize(ns, batch).p50_ms
    if "fp16" in out and "fp32" in out:
        out["fp16_over_fp32"] = out["fp16"]["images_per_s"] / out["fp32"]["images_per_s"]
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("bundle", type=Path)
    ap.add_argument("--provider", default="cuda", help="cuda (the question) or cpu (plumbing)")
    ap.add_argument("--batches", default="64,512,2048")
    ap.add_argument("--duration", type=float, default=0.5, help="timed seconds per graph")
    ap.add_argument("--options", default="default,nhwc",
                    help=f"CUDA option sets: {', '.join(OPTIONS)}")
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args(argv)
    b = load_bundle(a.bundle)
    gpu = a.provider in GPU_PROVIDERS
    trace = gpu and _cuda_tracing()
    plan = TimingPlan(warmup_iters=10, warmup_s=0.2, duration_s=a.duration, rounds=3)
    report: dict[str, Any] = {"bundle": str(a.bundle), "provider": a.provider, "runs": [],
                              "kernel_trace": trace or "not taken (no CUDA torch here)"}
    with tempfile.TemporaryDirectory(prefix="edgegen-profile-") as tmp:
        graphs = forms(b, Path(tmp))
        report["graphs"] = {f"{form}/{prec}": graph_facts(m) for form, ms in graphs.items()
                            for prec, m in ms.items()}
        opts = [o for o in a.options.split(",") if o] if gpu else ["default"]
        for form, models in graphs.items():
            for opt in opts:
                for batch in (int(x) for x in a.batches.split(",")):
                    row = {"form": form, "options": opt, "batch": batch}
                    try:
                        row.update(measure(models, a.provider, batch, OPTIONS[opt], b, plan,
                                           trace))
                    except Exception as exc:  # noqa: BLE001 - one failed cell, the rest run
                        row["error"] = f"{type(exc).__name__}: {str(exc)[:300]}"
                    report["runs"].append(row)
                    print(_line(row), flush=True)
    a.out.mkdir(parents=True, exist_ok=True)
    path = a.out / f"profile-{a.provider}.json"
    save_report(path, json.dumps(report, indent=2, default=_plain) + "\n")
    print(f"wrote {path}")
    return 1 if all("error" in r for r in report["runs"]) else 0


def _cuda_tracing() -> bool:
    try:
        import torch

        return bool(torch.cuda.is_available())
    except ImportError:
        return False


def _line(row: dict[str, Any]) -> str:
    head = f"{row['form']:8s} {row['options']:8s} batch {row['batch']:5d}: "
    if "error" in row:
        return head + "FAILED " + row["error"]
    f32, f16 = row["fp32"], row["fp16"]
    s = head + (f"fp32 {f32['images_per_s']:,.0f} img/s, fp16 {f16['images_per_s']:,.0f} img/s "
         f"(fp16/fp32 {row['fp16_over_fp32']:.2f})")
    if "groups_us" in f16.get("gpu_kernels", {}) and "groups_us" in f32.get("gpu_kernels", {}):
        g16, g32 = f16["gpu_kernels"]["groups_us"], f32["gpu_kernels"]["groups_us"]
        s += "; GPU us/run fp16 vs fp32: " + ", ".join(
            f"{k} {g16.get(k, 0):.1f}/{g32.get(k, 0):.1f}" for k in sorted({*g16, *g32}))
    return s


def _plain(obj: Any) -> Any:
    return obj.tolist() if isinstance(obj, np.ndarray | np.generic) else str(obj)


if __name__ == "__main__":
    sys.exit(main())
