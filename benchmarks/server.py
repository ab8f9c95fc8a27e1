"""The server scenario over the bundle's variants and the peers (see ``scenarios``).

Workers share one session (ONNX Runtime's ``run`` is thread-safe and releases the GIL; so do
PyTorch's kernels). The thread budget is split: ``workers`` threads each running inferences
with ``threads // workers`` intra-op threads, so contenders never use more cores than the
offline scenario gives them. Sessions here take every batch size up to ``max_batch``, so CUDA
graphs (fixed shapes) and I/O binding are not used in this scenario.
"""

from __future__ import annotations

from edgegen.benchmarks.harness import warm_up
from edgegen.benchmarks.results import BenchConfig, BenchReport, Progress, record_failure
from edgegen.benchmarks.runners import Contender, Inputs, PeerUnavailable, builders
from edgegen.benchmarks.scenarios import (
    ServerResult,
    poisson_arrivals,
    serve,
    summarize_served,
    sweep_qps,
)
from edgegen.runtime.bundle import Bundle

SERVER_PEERS = ("torch", "ort-default")  # the others take fixed shapes or compile per shape


def run_server_scenario(cfg: BenchConfig, bundle: Bundle, variants: list[str],
                        peers: list[str], threads: int, report: BenchReport,
                        emit: Progress) -> None:
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
    for p in peers:
        if p not in SERVER_PEERS:
            report.unavailable.setdefault(f"{p} (server)", "measured in the offline scenario "
                                                             "only")
    try:
        for key, kind, factory in builders(cfg, bundle, variants,
                                           [p for p in peers if p in SERVER_PEERS], intra,
                                           inputs, server=True):
            try:
                contender: Contender = factory()
                infer = contender.infer
                assert infer is not None  # server builders make variable-batch contenders
                for k in sorted({1, cfg.max_batch}):
                    warm_up(lambda k=k, f=infer: f(k), cfg.warmup_iters, cfg.warmup_s)
            except PeerUnavailable as exc:
                report.unavailable[f"{kind} (server)"] = str(exc)
                continue
            except Exception as exc:  # noqa: BLE001 - one contender's failure is reported
                record_failure(report, f"{key} (server)", exc, emit)
                continue

            def run_at(qps: float, key: str = key, contender: Contender = contender
                       ) -> ServerResult:
                emit({"kind": "note", "text": f"server: {key} at {qps:.0f} QPS for "
                                              f"{cfg.server_duration_s:g} s"})
                arrivals = poisson_arrivals(qps, cfg.server_duration_s, cfg.seed)
                assert contender.infer is not None
                served = serve(contender.infer, arrivals, workers=workers,
                               max_batch=cfg.max_batch,
                               drain_s=max(1.0, 0.25 * cfg.server_duration_s))
                return summarize_served(
                    served, contender=contender.kind, variant=contender.variant,
                    provider=cfg.provider,
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
