"""The server scenario over the bundle's variants, the peers and a served endpoint (see
``scenarios``).

Workers share one session (ONNX Runtime's ``run`` is thread-safe and releases the GIL; so do
PyTorch's kernels). The thread budget is split: ``workers`` threads each running inferences
with ``threads // workers`` intra-op threads, so contenders never use more cores than the
offline scenario gives them. Sessions here take every batch size up to ``max_batch``, so CUDA
graphs (fixed shapes) and I/O binding are not used in this scenario.

With ``max_batch > 1`` the workers batch dynamically (``max_batch``, ``max_delay_ms``, as
Triton's dynamic batcher), and each edgegen variant also runs as today's batch-1 server (one
request per inference, no delay) in the same run, so the report shows what batching buys. With
``--url`` each endpoint runs the scenario too: ``connections`` worker threads each send one
request at a time (the server batches), beside the in-process edgegen contender with the same
batching settings; each served run records the load generator's own CPU share
(``client_cpu_share``: this process's CPU time over the run's wall time and the usable cores),
since on the server's machine the client's cores are the server's too.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

from edgegen.benchmarks.harness import usable_cores, warm_up
from edgegen.benchmarks.remote import Endpoint, served_contender, served_key
from edgegen.benchmarks.results import BenchConfig, BenchReport, Say, record_failure
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


@dataclass(frozen=True)
class Plan:
    """One contender under one batching policy."""

    key: str
    contender: Contender
    workers: int
    intra: int
    max_batch: int  # batching in this process (1 for a served endpoint: the server batches)
    max_delay_ms: float
    shown_batch: int | None = None  # what the report says (a server's own, when it tells)
    shown_delay_ms: float | None = None


def run_server_scenario(cfg: BenchConfig, bundle: Bundle | None, variants: list[str],
                        peers: list[str], threads: int, report: BenchReport,
                        emit: Say, endpoints: list[Endpoint] | None = None) -> None:
    workers = cfg.workers or threads
    intra = max(1, threads // workers)
    report.threads.update(server_workers=workers, server_intra_op_threads=intra,
                          server_max_batch=cfg.max_batch, server_max_delay_ms=cfg.max_delay_ms)
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
        plans = _in_process(cfg, bundle, variants, [p for p in peers if p in SERVER_PEERS],
                            workers, intra, report, emit) if bundle is not None else []
        for endpoint in endpoints or []:
            plans += _served(cfg, endpoint, bundle, report, emit)
        for plan in plans:
            _run(cfg, plan, report, emit)
    finally:
        if torch_before is not None:
            import torch

            torch.set_num_threads(torch_before)


def _in_process(cfg: BenchConfig, bundle: Bundle, variants: list[str], peers: list[str],
                workers: int, intra: int, report: BenchReport, emit: Say) -> list[Plan]:
    inputs = Inputs.make(cfg.seed, cfg.max_batch, bundle.z_dim, bundle.n_classes)
    plans = []
    for key, kind, factory in builders(cfg, bundle, variants, peers, intra, inputs,
                                       server=True):
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
        plans.append(Plan(key, contender, workers, intra, cfg.max_batch, cfg.max_delay_ms))
        if cfg.max_batch > 1 and kind == "edgegen":  # today's batch-1 server, same run
            plans.append(Plan(f"{key} batch-1", contender, workers, intra, 1, 0.0))
    return plans


def _served(cfg: BenchConfig, endpoint: Endpoint, bundle: Bundle | None, report: BenchReport,
            emit: Say) -> list[Plan]:
    n_classes = bundle.n_classes if bundle is not None else \
        int(endpoint.metadata.get("edgegen", {}).get("n_classes", 10))
    inputs = Inputs.make(cfg.seed, 1, endpoint.z_dim, n_classes)
    try:
        contender = served_contender(endpoint, inputs, binary=cfg.http_tensors == "binary",
                                     timeout_s=cfg.http_timeout_s)
        assert contender.infer is not None
        warm_up(lambda f=contender.infer: f(1), cfg.warmup_iters, cfg.warmup_s)
    except Exception as exc:  # noqa: BLE001 - reported as this contender's failure
        record_failure(report, f"{served_key(endpoint)} (server)", exc, emit)
        return []
    # the server batches (edgegen serve says how in its metadata; 0: not said); each
    # connection sends one request at a time
    own = endpoint.metadata.get("edgegen", {})
    return [Plan(contender.key, contender, cfg.connections, 0, 1, 0.0,
                 shown_batch=int(own.get("max_batch", 0)),
                 shown_delay_ms=float(own.get("max_delay_ms", 0.0)))]


def _run(cfg: BenchConfig, plan: Plan, report: BenchReport, emit: Say) -> None:
    c = plan.contender
    batch = plan.max_batch if plan.shown_batch is None else plan.shown_batch
    delay = plan.max_delay_ms if plan.shown_delay_ms is None else plan.shown_delay_ms

    def run_at(qps: float) -> ServerResult:
        emit(f"server: {plan.key} at {qps:.0f} QPS for "
             f"{cfg.server_duration_s:g} s")
        arrivals = poisson_arrivals(qps, cfg.server_duration_s, cfg.seed)
        assert c.infer is not None
        cpu0, wall0 = time.process_time(), time.perf_counter()
        done = serve(c.infer, arrivals, workers=plan.workers, max_batch=plan.max_batch,
                     max_delay_s=plan.max_delay_ms / 1000,
                     drain_s=max(1.0, 0.25 * cfg.server_duration_s))
        share = (time.process_time() - cpu0) / max(1e-9, (time.perf_counter() - wall0)
                                                   * usable_cores())
        result = summarize_served(
            done, contender=c.kind, variant=c.variant, provider=c.provider, target_qps=qps,
            duration_s=cfg.server_duration_s, workers=plan.workers,
            max_batch=batch, intra_op_threads=plan.intra, p99_bound_ms=cfg.p99_bound_ms,
            max_delay_ms=delay)
        return replace(result, client_cpu_share=share) if c.kind == "served" else result

    if cfg.p99_bound_ms is None:
        report.server.append(run_at(cfg.qps))
        return
    sweep = sweep_qps(run_at, cfg.qps, cfg.p99_bound_ms, cfg.sweep_steps)
    report.sweeps[plan.key] = sweep
    ok = [t for t in sweep.trials if t.within_bound]
    report.server.append(max(ok, key=lambda t: t.target_qps) if ok else sweep.trials[0])
