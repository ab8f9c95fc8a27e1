"""The offline scenario: every contender at every batch size, timed in interleaved blocks.

One group per batch size: all contenders of the group are built, run once, warmed up and timed
together, then released before the next group, so that a CUDA graph or a TensorRT profile is
never shared between batch sizes and memory does not pile up. With ``--url`` the endpoint is one
more contender of each group (one request of ``batch`` images per call, over one keep-alive
connection), timed in the same interleaved rounds as the in-process edgegen session; its first
reply must equal the in-process image, so a server of another bundle is caught.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from edgegen.benchmarks.harness import measure_interleaved
from edgegen.benchmarks.remote import Endpoint, reference_images, served_contender, served_key
from edgegen.benchmarks.results import (
    BenchConfig,
    BenchReport,
    BenchResult,
    Say,
    record_failure,
    release,
)
from edgegen.benchmarks.runners import Contender, Inputs, PeerUnavailable, builders
from edgegen.benchmarks.stats import summarize


def run_offline(cfg: BenchConfig, bundle: Any, variants: list[str], peers: list[str],
                threads: int, fidelity: dict[str, tuple[float, str]], report: BenchReport,
                emit: Say, endpoint: Endpoint | None = None,
                between_rounds: Callable[[str], None] | None = None,
                plain: Callable[[], Path] | None = None) -> None:
    """Time every batch group; ``endpoint`` adds the served contender (``bench --url``);
    ``between_rounds(label)`` runs between the interleaved rounds of a group (the noise probe
    and the yardstick); ``plain`` gives the unrewritten export for the ``*-plain`` peers."""
    torch_threads = _set_torch_threads(threads) if any(p.startswith("torch") for p in peers) \
        else None
    plan = cfg.plan()
    try:
        for batch in cfg.batches:
            if bundle is not None:
                inputs = Inputs.make(cfg.seed, batch, bundle.z_dim, bundle.n_classes)
                todo = builders(cfg, bundle, variants, peers, threads, inputs, plain=plain)
            else:
                assert endpoint is not None
                n_classes = int(endpoint.metadata.get("edgegen", {}).get("n_classes", 10))
                inputs = Inputs.make(cfg.seed, batch, endpoint.z_dim, n_classes)
                todo = []
            if endpoint is not None:
                todo.append(_served_builder(cfg, endpoint, inputs, bundle, variants))
            contenders: list[Contender] = []
            for key, kind, build in todo:
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
            emit(f"batch {batch}: timing {len(contenders)} contenders "
                 f"in {plan.rounds} interleaved rounds")
            hook = None if between_rounds is None else \
                (lambda r, b=batch: between_rounds(f"batch {b} round {r + 1}"))
            samples, warm = measure_interleaved({c.key: c.call for c in contenders}, plan,
                                                between_rounds=hook)
            group = [_result(c, samples[c.key], warm[c.key]) for c in contenders]
            _compare(group, report, fidelity)
            report.results.extend(group)
            del contenders
            release()
    finally:
        if torch_threads is not None:
            _set_torch_threads(torch_threads)


def _served_builder(cfg: BenchConfig, endpoint: Endpoint, inputs: Inputs, bundle: Any,
                    variants: list[str]) -> tuple[str, str, Any]:
    served_variant = endpoint.metadata.get("edgegen", {}).get("variant", "fp32")

    def build() -> Contender:
        check = None
        if bundle is not None and served_variant in bundle.variants:
            check = reference_images(inputs, bundle, served_variant)
        return served_contender(endpoint, inputs, binary=cfg.http_tensors == "binary",
                                timeout_s=cfg.http_timeout_s, check=check)

    return served_key(endpoint), "served", build


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
