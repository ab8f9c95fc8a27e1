"""The offline scenario: every contender at every batch size, timed in interleaved blocks.

One group per batch size: all contenders of the group are built, run once, warmed up and timed
together, then released before the next group, so that a CUDA graph or a TensorRT profile is
never shared between batch sizes and memory does not pile up.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from edgegen.benchmarks.bench import (
    BenchConfig,
    BenchReport,
    BenchResult,
    Progress,
    record_failure,
    release,
)
from edgegen.benchmarks.harness import measure_interleaved
from edgegen.benchmarks.runners import (
    Contender,
    Inputs,
    PeerUnavailable,
    openvino_peer,
    ort_default,
    ort_edgegen,
    torch_peer,
)
from edgegen.benchmarks.stats import summarize
from edgegen.providers import ProviderSpec

Builder = tuple[str, str, Callable[[], Contender]]  # key, kind, factory


def provider_spec(cfg: BenchConfig, threads: int, variant: str) -> ProviderSpec:
    """edgegen's session settings for ``variant`` on ``cfg.provider``."""
    b = sorted(cfg.batches)
    cache = cfg.trt_cache_dir or Path(cfg.bundle) / "trt_cache"
    return ProviderSpec(
        name=cfg.provider, device_id=cfg.device_id, cuda_graph=cfg.cuda_graph,
        # TensorRT's fp16 is a builder flag on the fp32 graph; its int8 reads the QDQ graph.
        trt_fp16=cfg.provider == "tensorrt" and variant == "fp16",
        trt_int8=cfg.provider == "tensorrt" and variant == "int8",
        trt_cache_dir=cache if cfg.provider == "tensorrt" else None,
        trt_batch_range=(b[0], b[-1], b[-1]),  # one profile covering the sweep, tuned for
        intra_op_threads=threads, spinning=cfg.spinning)  # the largest batch (offline)


def variant_file(bundle: Any, provider: str, variant: str) -> Path:
    """TensorRT builds fp16 from the fp32 graph (its own precision flag); the rest use their
    own file."""
    if provider == "tensorrt" and variant == "fp16":
        return bundle.variant_path("fp32")
    return bundle.variant_path(variant)


def builders(cfg: BenchConfig, bundle: Any, variants: list[str], peers: list[str],
             threads: int, inputs: Inputs) -> list[Builder]:
    out: list[Builder] = []
    for v in variants:
        spec = provider_spec(cfg, threads, v)
        out.append((f"edgegen/{v}/{cfg.provider}", "edgegen",
                    lambda v=v, spec=spec: ort_edgegen(variant_file(bundle, cfg.provider, v),
                                                       spec, inputs, variant=v,
                                                       io_binding=cfg.io_binding)))
    if cfg.tune and cfg.provider == "cpu":
        for t in sorted({1, threads}):
            for spin in (True, False):
                key = f"tuned/fp32/cpu/{t}t-spin-{'on' if spin else 'off'}"
                spec = ProviderSpec(intra_op_threads=t, spinning=spin)
                out.append((key, "tuned",
                            lambda spec=spec, key=key: ort_edgegen(
                                bundle.variant_path("fp32"), spec, inputs, variant="fp32",
                                io_binding=False, kind="tuned", key=key)))
    fp32 = bundle.variant_path("fp32")
    device = "cpu" if cfg.provider == "cpu" else "cuda"
    for p in peers:
        if p in ("torch", "torch-compile"):
            out.append((f"{p}/fp32/{device}", p,
                        lambda p=p: torch_peer(bundle.checkpoint, inputs, device=device,
                                               threads=threads, compile_=p == "torch-compile")))
        elif p == "ort-default":
            out.append((f"ort-default/fp32/{cfg.provider}", p,
                        lambda: ort_default(fp32, cfg.provider, inputs)))
        elif p == "openvino":
            out.append(("openvino/fp32/cpu", p,
                        lambda: openvino_peer(fp32, inputs, threads=threads)))
    return out


def run_offline(cfg: BenchConfig, bundle: Any, variants: list[str], peers: list[str],
                threads: int, fidelity: dict[str, tuple[float, str]], report: BenchReport,
                emit: Progress) -> None:
    torch_threads = _set_torch_threads(threads) if any(p.startswith("torch") for p in peers) \
        else None
    plan = cfg.plan()
    try:
        for batch in cfg.batches:
            inputs = Inputs.make(cfg.seed, batch, bundle.z_dim, bundle.n_classes)
            contenders: list[Contender] = []
            for key, kind, build in builders(cfg, bundle, variants, peers, threads, inputs):
                if kind in report.unavailable:
                    continue
                try:
                    c = build()
                    c.first_run()
                    contenders.append(c)
                except PeerUnavailable as exc:
                    report.unavailable[kind] = str(exc)
                except Exception as exc:  # noqa: BLE001 - one contender's failure is reported
                    record_failure(report, f"{key} batch {batch}", exc, emit)
            if not contenders:
                continue
            emit({"kind": "note", "text": f"batch {batch}: timing {len(contenders)} contenders "
                                          f"in {plan.rounds} interleaved rounds"})
            samples, warm = measure_interleaved({c.key: c.call for c in contenders}, plan)
            group = [_result(c, samples[c.key], warm[c.key]) for c in contenders]
            _compare(group, report, fidelity)
            report.results.extend(group)
            del contenders
            release()
    finally:
        if torch_threads is not None:
            _set_torch_threads(torch_threads)


def _result(c: Contender, samples: list[int], warm: Any) -> BenchResult:
    return BenchResult(key=c.key, contender=c.kind, variant=c.variant, provider=c.provider,
                       batch=c.batch, latency=summarize(samples, c.batch),
                       session_create_s=c.session_create_s, first_run_s=c.first_run_s,
                       warmup_iters=warm.iters, warmup_s=warm.seconds, settings=c.settings)


def _compare(group: list[BenchResult], report: BenchReport,
             fidelity: dict[str, tuple[float, str]]) -> None:
    """Ratios to PyTorch eager in the same group, efficiency, fidelity, best tuned config."""
    ref = next((r for r in group if r.contender == "torch"), None)
    per_image = report.flops["per_image"]
    for r in group:
        if ref is not None:
            r.speedup_p50 = ref.latency.p50_ms / r.latency.p50_ms
            r.speedup_throughput = r.latency.images_per_s / ref.latency.images_per_s
        if per_image:
            r.achieved_gflops = per_image * r.latency.images_per_s / 1e9
            if report.matmul is not None:
                r.matmul_fraction = r.achieved_gflops / report.matmul.gflops
        if r.variant in fidelity:
            r.fidelity, r.fidelity_source = fidelity[r.variant]
    tuned = [r for r in group if r.contender == "tuned"]
    if tuned:
        min(tuned, key=lambda r: r.latency.p50_ms).best_tuned = True


def _set_torch_threads(n: int) -> int:
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    return before
