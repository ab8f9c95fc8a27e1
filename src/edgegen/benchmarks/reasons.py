"""Why a performance target is not met, measured rather than guessed: ONNX Runtime's (and
OpenVINO's) own profiler on every graph a target compares (``profile_bundle``), and the
sentences ``benchmarks.targets`` attaches to a target that was missed.

A profile is ``{"threads", "batches": {"1": {graph: op_profile}, "64": {...}}, "notes",
"cpu_kernel_types"}``, each ``op_profile`` as ``benchmarks.opprofile.op_profile`` returns it
(``total_us``, ``ops``, ``families`` with GFLOP/s, ``int8_ops``, ``float_ops_between_qdq``) or
``{"error": ...}`` when that profile could not be taken.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgegen.benchmarks.opprofile import FAMILY
from edgegen.benchmarks.results import BenchReport, BenchResult

Profile = dict[str, Any]
PROFILE_BATCHES = (1, 64)


def profile_bundle(bundle: Path, folder: Path, batches: tuple[int, ...] = PROFILE_BATCHES
                   ) -> Profile:
    """Per-op kernel time (and the dense ops' GFLOP/s) of every graph that a target compares:
    the bundle's variants on ONNX Runtime, the export without rewrites on ONNX Runtime (written
    into ``folder``), both fp32 graphs on OpenVINO — at each of ``batches``, with the session
    settings of ``edgegen bench``'s default contender."""
    from edgegen.benchmarks.harness import usable_cores
    from edgegen.benchmarks.opprofile import kernel_types
    from edgegen.benchmarks.runners import PeerUnavailable, openvino_available, plain_export
    from edgegen.runtime.bundle import load_bundle

    b = load_bundle(bundle)
    graphs: dict[str, tuple[Path, str]] = {v: (b.variant_path(v), "cpu") for v in b.variants
                                           if v in ("fp32", "fp16", "int8")}
    out: Profile = {"threads": usable_cores(), "batches": {}, "notes": [], "cpu_kernel_types": {
        op: kernel_types(op) for op in ("Gemm", "ConvTranspose", "Conv", "QLinearConv",
                                        "QLinearConvTranspose", "DepthToSpace")}}
    try:
        graphs["plain"] = (plain_export(b, folder), "cpu")
    except PeerUnavailable as exc:
        out["notes"].append(str(exc))
    if openvino_available() is None:
        graphs["openvino"] = (b.variant_path("fp32"), "openvino")
        if "plain" in graphs:
            graphs["openvino-plain"] = (graphs["plain"][0], "openvino")
    for batch in batches:
        out["batches"][str(batch)] = _profile_graphs(b, graphs, batch, out["threads"])
    return out


def _profile_graphs(b: Any, graphs: dict[str, tuple[Path, str]], batch: int, threads: int
                    ) -> dict[str, Any]:
    """``op_profile`` of each graph at one batch size; a profile that fails is reported."""
    from edgegen.benchmarks.opprofile import op_profile
    from edgegen.benchmarks.runners import Inputs
    from edgegen.quality.flops import count_flops
    from edgegen.runtime.providers import ProviderSpec

    inputs = Inputs.make(2024, batch, b.z_dim, b.n_classes)
    feeds = {"z": inputs.z, "label": inputs.label}
    per: dict[str, Any] = {}
    for name, (path, provider) in graphs.items():
        # useful FLOPs come from the fp32 graph: the int8/fp16 ones hide them behind Q/DQ, casts
        flops = count_flops(path if name not in ("int8", "fp16") else b.variant_path("fp32"),
                            batch=batch).by_op
        spec = ProviderSpec(provider, intra_op_threads=threads,
                            static_batches=(batch,) if provider == "openvino" else ())
        try:
            per[name] = op_profile(path, spec, feeds, runs=20 if batch > 1 else 200,
                                   flops_by_op=flops)
        except Exception as exc:  # noqa: BLE001 - a profile that fails is reported, not fatal
            per[name] = {"error": f"{type(exc).__name__}: {str(exc)[:200]}"}
    return per


def ops_summary(p: dict[str, Any] | None, n: int = 4) -> str:
    """'Conv 78% (212 GFLOP/s for all Conv), FusedGemm 15%, ...' from one op profile."""
    if not p or "error" in p:
        return (p or {}).get("error", "no profile")
    parts = []
    fams = p.get("families", {})
    for op, o in list(p["ops"].items())[:n]:
        fam = FAMILY.get(op)
        rate = fams.get(fam, {}).get("gflops") if fam else None
        parts.append(f"{op} {o['share']:.0%}" + (f" ({rate:.0f} GFLOP/s for all {fam})"
                                                   if rate else ""))
    return ", ".join(parts)


def throughput_reason(report: BenchReport, prof: Profile | None, vs: str = "torch") -> str:
    """Where the time goes at batch 64 on each engine compared (their own profilers)."""
    if not prof:
        return "no profile recorded"
    p = prof["batches"].get("64", {})
    mm = report.matmul.gflops if report.matmul else None
    s = (f"ONNX Runtime, fp32, batch 64 (kernel time): {ops_summary(p.get('fp32', {}))}"
         + (f"; yardstick {mm:.0f} GFLOP/s" if mm else ""))
    if vs in ("openvino", "torch") and "openvino" in p:
        s += (f". OpenVINO on the same graph: {ops_summary(p['openvino'])}"
              + (f"; on the unrewritten export: {ops_summary(p['openvino-plain'])}"
                 if "openvino-plain" in p else ""))
    if "plain" in p:
        s += f". ONNX Runtime on the unrewritten export: {ops_summary(p['plain'])}"
    return s


def batch1_reason(ours: BenchResult, prof: Profile | None) -> str:
    """How much of the batch-1 p50 is kernels and how much is per-call overhead."""
    if not prof or "fp32" not in prof["batches"].get("1", {}):
        return "no profile recorded"
    p = prof["batches"]["1"]["fp32"]
    if "error" in p:
        return p["error"]
    kernels_ms = p["total_us"] / 1e3
    p50 = ours.latency.p50_ms
    return (f"at batch 1 ONNX Runtime's kernels take {kernels_ms:.3f} ms of the "
            f"{p50:.3f} ms p50 ({max(0.0, 1 - kernels_ms / p50):.0%} is per-call overhead "
            f"outside the kernels); kernels: {ops_summary(p)}")


def int8_reason(report: BenchReport, prof: Profile | None) -> str:
    """Which int8 kernels ran, what stayed float between Q/DQ, what Q/DQ cost."""
    if not prof or "int8" not in prof["batches"].get("64", {}):
        return "no profile recorded"
    p = prof["batches"]["64"]["int8"]
    if "error" in p:
        return p["error"]
    f32 = prof["batches"]["64"].get("fp32", {}).get("families", {}).get("Conv", {})
    q = p.get("families", {}).get("Conv", {})
    flags = ", ".join(report.machine.get("cpu_flags", [])) or "unknown"
    qdq = sum(o["share"] for op, o in p["ops"].items()
              if op in ("QuantizeLinear", "DequantizeLinear"))
    rate = (f"; int8 convolutions reach {q['gflops']:.0f} GOP/s vs fp32's "
            f"{f32.get('gflops', float('nan')):.0f} GFLOP/s" if q.get("gflops") else "")
    return (f"int8 kernels that ran: {', '.join(p['int8_ops']) or 'none'}; float dense ops left "
            f"between Q/DQ: {', '.join(p['float_ops_between_qdq']) or 'none'}; "
            f"QuantizeLinear + DequantizeLinear {qdq:.0%} of kernel time{rate}; "
            f"kernels: {ops_summary(p)}; CPU flags: {flags} (without VNNI, u8×s8 products go "
            "through vpmaddubsw/vpmaddwd)")


def fp16_reason(report: BenchReport, prof: Profile | None) -> str:
    """fp16 against fp32 on the same provider: their kernels side by side, and the casts."""
    if not prof:
        return (f"no profile recorded: profile both graphs on {report.provider} "
                f"(`benchmarks/scripts/gpu_check.sh` does, with --profile)")
    p = prof["batches"].get("64", {})
    f16, f32 = p.get("fp16"), p.get("fp32")
    casts = (f16 or {}).get("inserted_casts")
    return (f"fp16 kernels: {ops_summary(f16)}; fp32 kernels: {ops_summary(f32)}"
            + (f"; {casts} casts inserted by ONNX Runtime" if casts else ""))
