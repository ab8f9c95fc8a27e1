"""The server scenario over the bundle's variants and the peers (see ``scenarios``).

Workers share one session (ONNX Runtime's ``run`` is thread-safe and releases the GIL; so do
PyTorch's kernels). The thread budget is split: ``workers`` threads each running inferences
with ``threads // workers`` intra-op threads, so contenders never use more cores than the
offline scenario gives them. Sessions here take every batch size up to ``max_batch``, so CUDA
graphs (fixed shapes) and I/O binding are not used in this scenario.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from edgegen.benchmarks.bench import BenchConfig, BenchReport, Progress, record_failure
from edgegen.benchmarks.harness import warm_up
from edgegen.benchmarks.offline import provider_spec, variant_file
from edgegen.benchmarks.runners import Inputs
from edgegen.benchmarks.scenarios import (
    ServerResult,
    poisson_arrivals,
    serve,
    summarize_served,
    sweep_qps,
)

Infer = Callable[[int], object]


def _ort_infer(session: Any, inputs: Inputs) -> Infer:
    names = [i.name for i in session.get_inputs()]

    def infer(k: int) -> object:
        return session.run(None, {names[0]: inputs.z[:k], names[1]: inputs.label[:k]})

    return infer


def _torch_infer(checkpoint: Any, inputs: Inputs, device: str) -> Infer:
    import torch

    from edgegen.export.bundler import load_generator

    gen = load_generator(checkpoint)[0].to(device)
    z = torch.from_numpy(inputs.z).to(device)
    y = torch.from_numpy(inputs.label).to(device)

    def infer(k: int) -> object:
        with torch.inference_mode():  # thread-local: entered in the worker's own thread
            out = gen(z[:k], y[:k])
        if device == "cuda":
            torch.cuda.synchronize()
        return out

    return infer


def _servers(cfg: BenchConfig, bundle: Any, variants: list[str], peers: list[str],
             intra: int, inputs: Inputs, report: BenchReport
             ) -> list[tuple[str, str, str, Callable[[], Infer]]]:
    """(key, kind, variant, factory) for every contender of the scenario."""
    from dataclasses import replace

    from edgegen.providers import make_session

    out = []
    for v in variants:
        spec = replace(provider_spec(cfg, intra, v), cuda_graph=False)
        out.append((f"edgegen/{v}/{cfg.provider}", "edgegen", v,
                    lambda v=v, spec=spec: _ort_infer(
                        make_session(variant_file(bundle, cfg.provider, v), spec), inputs)))
    for p in peers:
        if p == "torch":
            device = "cpu" if cfg.provider == "cpu" else "cuda"
            out.append((f"torch/fp32/{device}", p, "fp32",
                        lambda device=device: _torch_infer(bundle.checkpoint, inputs, device)))
        elif p == "ort-default":
            out.append((f"ort-default/fp32/{cfg.provider}", p, "fp32",
                        lambda: _ort_infer(_default_session(bundle, cfg), inputs)))
        else:
            report.unavailable.setdefault(f"{p} (server)", "measured in the offline scenario "
                                                             "only")
    return out


def _default_session(bundle: Any, cfg: BenchConfig) -> Any:
    """ONNX Runtime with default session options (``ort-default``), provider checked."""
    from edgegen.errors import ProviderError
    from edgegen.providers import EP_NAMES, ort

    ep = EP_NAMES[cfg.provider]
    providers = [ep] if cfg.provider == "cpu" else [ep, "CPUExecutionProvider"]
    session = ort().InferenceSession(str(bundle.variant_path("fp32")), providers=providers)
    if session.get_providers()[0] != ep:
        raise ProviderError(f"ort-default asked for {ep} but got {session.get_providers()}")
    return session


def run_server_scenario(cfg: BenchConfig, bundle: Any, variants: list[str], peers: list[str],
                        threads: int, report: BenchReport, emit: Progress) -> None:
    workers = cfg.workers or threads
    intra = max(1, threads // workers)
    inputs = Inputs.make(cfg.seed, cfg.max_batch, bundle.z_dim, bundle.n_classes)
    report.threads.update(server_workers=workers, server_intra_op_threads=intra,
                          server_max_batch=cfg.max_batch)
    torch_before = None
    if "torch" in peers:
        import torch

        torch_before = torch.get_num_threads()
        torch.set_num_threads(intra)
    try:
        for key, kind, variant, factory in _servers(cfg, bundle, variants, peers, intra,
                                                    inputs, report):
            try:
                infer = factory()
                for k in sorted({1, cfg.max_batch}):
                    warm_up(lambda k=k, f=infer: f(k), cfg.warmup_iters, cfg.warmup_s)
            except Exception as exc:  # noqa: BLE001 - one contender's failure is reported
                record_failure(report, f"{key} (server)", exc, emit)
                continue

            def run_at(qps: float, key: str = key, kind: str = kind, variant: str = variant,
                       infer: Infer = infer) -> ServerResult:
                emit({"kind": "note", "text": f"server: {key} at {qps:.0f} QPS for "
                                              f"{cfg.server_duration_s:g} s"})
                arrivals = poisson_arrivals(qps, cfg.server_duration_s, cfg.seed)
                served = serve(infer, arrivals, workers=workers, max_batch=cfg.max_batch,
                               drain_s=max(1.0, 0.25 * cfg.server_duration_s))
                return summarize_served(
                    served, contender=kind, variant=variant, provider=cfg.provider,
                    target_qps=qps, duration_s=cfg.server_duration_s, workers=workers,
                    max_batch=cfg.max_batch, intra_op_threads=intra,
                    p99_bound_ms=cfg.p99_bound_ms)

            if cfg.p99_bound_ms is None:
                report.server.append(run_at(cfg.qps))
            else:
                sweep = sweep_qps(run_at, cfg.qps, cfg.p99_bound_ms, cfg.sweep_steps)
                report.sweeps[key] = sweep
                ok = [t for t in sweep.trials if t.within_bound]
                report.server.append(max(ok, key=lambda t: t.target_qps) if ok
                                     else sweep.trials[0])
    finally:
        if torch_before is not None:
            import torch

            torch.set_num_threads(torch_before)
