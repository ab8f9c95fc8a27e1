"""``bench(BenchConfig) -> BenchReport``: latency and throughput of a bundle, per variant,
provider and batch size, with the peers a user would otherwise run measured in the same run.

For each batch size every contender is built (session creation timed), run once (first-run
time: lazy init, CUDA graph capture, TensorRT engine build), warmed up, and then timed in
interleaved blocks with all the others (see ``harness``). Ratios to PyTorch eager are taken
within that batch's group, which is why they hold on a noisy machine when absolute times do
not. ``--scenario server`` replaces the batch sweep with Poisson load (see ``scenarios``).
"""

from __future__ import annotations

import datetime as _dt
import json
import shlex
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from edgegen.benchmarks.harness import usable_cores
from edgegen.benchmarks.machine import MatmulRate, best_of, machine_info, matmul_rate, versions
from edgegen.benchmarks.noise import NoiseProbe
from edgegen.benchmarks.offline import run_offline
from edgegen.benchmarks.remote import discover, served_key
from edgegen.benchmarks.results import (
    PRECISIONS,
    BenchConfig,
    BenchReport,
    Say,
    urls,
    validate,
)
from edgegen.benchmarks.runners import openvino_available, plain_export, session_spec
from edgegen.benchmarks.server import run_server_scenario
from edgegen.benchmarks.targets import gate, select
from edgegen.core.errors import ConfigError
from edgegen.core.progress import ProgressFn, Reporter
from edgegen.quality.flops import count_flops
from edgegen.runtime.bundle import load_bundle
from edgegen.runtime.providers import GPU_PROVIDERS, make_session, require_providers


def _probe_provider(cfg: BenchConfig, bundle: Any, variant: str, threads: int) -> None:
    """Create one session up front, so that a provider listed as available whose libraries do
    not load (TensorRT without libnvinfer, CUDA without cuDNN) is a ProviderError (exit 2)
    before anything is timed, not a table of failures."""
    if cfg.provider != "cpu":
        make_session(bundle.model_bytes(variant, cfg.provider),
                     replace(session_spec(cfg, bundle, threads, variant), cuda_graph=False),
                     name=str(bundle.model_path(variant, cfg.provider)))


def _fidelity(bundle: Any, eval_report: Path | None) -> dict[str, tuple[float, str]]:
    """Label fidelity per variant: an eval report when given, else the bundle's manifest."""
    out: dict[str, tuple[float, str]] = {}
    for name, v in bundle.variants.items():
        f = v.get("deviation_from_fp32", {}).get("fidelity")
        if f is not None:
            out[name] = (float(f), "manifest (export, ORT CPU)")
    if eval_report is not None:
        try:
            data = json.loads(Path(eval_report).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ConfigError(f"--eval-report {eval_report} is not a readable JSON report "
                              f"({exc}); pass the --json output of `edgegen eval`") from exc
        variants = data.get("variants", [])
        items = variants.items() if isinstance(variants, dict) else \
            ((v.get("name"), v) for v in variants if isinstance(v, dict))
        for name, v in items:
            f = v.get("fidelity") if isinstance(v, dict) else None
            f = f.get("fidelity") if isinstance(f, dict) else f
            if name and isinstance(f, (int, float)):
                out[str(name)] = (float(f), f"eval report {Path(eval_report).name}")
    return out


# --------------------------------------------------------------------------- the stage
def bench(cfg: BenchConfig, on_progress: ProgressFn | None = None) -> BenchReport:
    emit = Reporter("bench", on_progress).say
    validate(cfg)
    if cfg.cuda_graph and not cfg.io_binding:
        emit("--cuda-graph implies --io-binding (ONNX Runtime "
             "replays graphs only over bound device buffers)")
    endpoints = []
    if cfg.url is not None:
        model = cfg.model or (Path(cfg.bundle).resolve().name if cfg.bundle else None)
        endpoints = [discover(u, model, cfg.http_timeout_s) for u in urls(cfg)]
        if cfg.peers and cfg.bundle is not None:
            emit("--url: the peers are left out; the endpoint is "
                 "measured beside the in-process edgegen session")
        cfg = replace(cfg, peers=(), tune=False)
    bundle = load_bundle(cfg.bundle) if cfg.bundle is not None else None
    architecture = str(bundle.manifest["generator"].get("architecture")) if bundle else None
    if cfg.targets and bundle is None:
        raise ConfigError("--target judges a bundle's run: give the BUNDLE folder too")
    targets = select(cfg.targets, architecture, cfg.provider)  # unknown names: before timing
    require_providers([cfg.provider])
    endpoint = endpoints[0] if endpoints else None
    variants = _variants(cfg, bundle, endpoint)
    threads = cfg.threads or usable_cores()
    cfg = replace(cfg, io_binding=cfg.io_binding or cfg.cuda_graph)
    started = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
    t_start = time.perf_counter()
    probe = NoiseProbe()
    probe.record.server_on_this_machine = any(e.on_this_machine for e in endpoints)
    if cfg.noise_window_s > 0:
        emit(f"reading the machine's noise ({cfg.noise_window_s:g} s "
             "idle)")
        probe.idle("before (idle)", cfg.noise_window_s)
    gpu = cfg.provider in GPU_PROVIDERS
    flops = count_flops(bundle.model_bytes("fp32" if "fp32" in bundle.variants
                                           else variants[0])) if bundle is not None else None
    report = BenchReport(
        bundle=Path(cfg.bundle) if cfg.bundle is not None else None, provider=cfg.provider,
        scenario=cfg.scenario,
        config=_config_dict(cfg), machine=machine_info(gpu=gpu), versions=versions(),
        threads={"budget": threads, "usable_cores": usable_cores(),
                 "ort_intra_op_threads": threads, "ort_inter_op_threads": "ORT default",
                 "ort_spinning": ("ORT default (on)" if cfg.spinning is None
                                  else "on" if cfg.spinning else "off"),
                 "torch_threads": threads, "openvino_threads": threads},
        flops={"per_image": flops.per_image, "by_op_per_image":
               {k: v / flops.batch for k, v in flops.by_op.items()},
               "counted_on": "fp32 graph: Gemm/MatMul/Conv/ConvTranspose, 2 FLOPs per "
                             "multiply-add", "unknown_nodes": flops.unknown}
        if flops is not None else {"per_image": None},
        matmul=None, started=started, noise=probe.record, architecture=architecture,
        command=cfg.command or shlex.join([Path(sys.argv[0]).name, *sys.argv[1:]]))
    if cfg.measure_matmul and cfg.scenario == "offline":  # the yardstick of offline rates
        report.matmul = _matmul(cfg, threads, report, emit, matmul_rate)
        probe.mark("yardstick", report.matmul.gflops if report.matmul else None)
    if bundle is not None:
        _probe_provider(cfg, bundle, variants[0], threads)
    fidelity = _fidelity(bundle, cfg.eval_report) if bundle is not None else {}
    peers = _available_peers(cfg, report)
    if endpoint is not None:
        described = [{"url": e.url, "model": e.model, "key": served_key(e),
                      "platform": e.metadata.get("platform"),
                      "server_settings": e.metadata.get("edgegen", {}),
                      "tensors": cfg.http_tensors} for e in endpoints]
        report.served = {**described[0], "endpoints": described,
                         "client": "edgegen bench's own Python load generator (http.client, "
                                   "one thread per connection): on the server's machine it "
                                   "takes cores from the server, so its CPU share is reported "
                                   "per run (client_cpu_share); benchmarks/scripts/"
                                   "serve_bench.py measures with wrk, a compiled client"}
    probe.restart()  # building the contenders is our own work, not noise
    if cfg.scenario == "offline":
        with tempfile.TemporaryDirectory(prefix="edgegen-plain-") as tmp:
            run_offline(cfg, bundle, variants, peers, threads, fidelity, report, emit, endpoint,
                        between_rounds=lambda label: _between_rounds(cfg, report, probe, label),
                        plain=(lambda: plain_export(bundle, Path(tmp))) if bundle is not None
                        else None)
    else:
        run_server_scenario(cfg, bundle, variants, peers, threads, report, emit, endpoints)
        probe.mark("server scenario")
    if endpoint is not None:
        report.served["comparison"] = served_comparison(report)
    if cfg.measure_matmul and report.matmul is not None and report.results:
        # measured again at the end; the fastest of every measurement is the machine's rate
        end = _matmul(cfg, threads, report, emit, matmul_rate)
        probe.mark("yardstick", end.gflops if end else None)
        report.matmul = _best_yardstick(report.matmul, end, probe)
        _efficiency(report)
    if cfg.noise_window_s > 0:
        probe.idle("after (idle)", cfg.noise_window_s)
    probe.record.judge()
    if probe.record.noisy:
        report.notes.append("noisy machine: " + "; ".join(probe.record.reasons)
                            + " — absolute numbers and even ratios may not hold; rerun on a "
                              "quiet machine")
    report.machine["load_average_after"] = machine_info()["load_average"]
    report.wall_s = time.perf_counter() - t_start
    report.targets = gate(report, targets)
    return report


def _variants(cfg: BenchConfig, bundle: Any, endpoint: Any) -> list[str]:
    """The in-process variants to time: ``--precision``, else every variant; with ``--url``
    the one the endpoint serves (edgegen serve says which; fp32 otherwise)."""
    if bundle is None:
        return []
    if cfg.precisions:
        variants = list(cfg.precisions)
    elif endpoint is not None:
        served = endpoint.metadata.get("edgegen", {}).get("variant", "fp32")
        variants = [served if served in bundle.variants else "fp32"]
    else:
        variants = [p for p in PRECISIONS if p in bundle.variants]
    for v in variants:
        bundle.variant_path(v)  # a BundleError naming what the bundle has
    return variants


def served_comparison(report: BenchReport) -> list[dict[str, Any]]:
    """The endpoint against the in-process edgegen contender of the same run: img/s per batch
    (offline), or the highest QPS under the p99 bound (server, dynamic batching)."""
    rows: list[dict[str, Any]] = []
    for r in report.results:
        if r.contender != "served":
            continue
        ref = next((x for x in report.results if x.contender == "edgegen"
                    and x.batch == r.batch), None)
        rows.append({"batch": r.batch, "served_img_s": r.latency.images_per_s,
                     "in_process_img_s": ref.latency.images_per_s if ref else None,
                     "served_p50_ms": r.latency.p50_ms,
                     "in_process_p50_ms": ref.latency.p50_ms if ref else None,
                     "ratio": r.latency.images_per_s / ref.latency.images_per_s
                     if ref else None})
    served = {k: v for k, v in report.sweeps.items() if k.startswith("served/")}
    local = {k: v for k, v in report.sweeps.items()
             if k.startswith("edgegen/") and not k.endswith("batch-1")}
    for key, sw in served.items():
        ref = next(iter(local.values()), None)
        best = sw.best_qps
        ref_best = ref.best_qps if ref is not None else None
        rows.append({"p99_bound_ms": sw.p99_bound_ms, "served_best_qps": best,
                     "in_process_best_qps": ref_best, "endpoint": key,
                     "ratio": best / ref_best if best and ref_best else None})
    return rows


YARDSTICK_SETTLE_S = 0.25  # idle time before each interleaved yardstick probe


def _between_rounds(cfg: BenchConfig, report: BenchReport, probe: NoiseProbe,
                    label: str) -> None:
    """After each interleaved round: close the noise interval, then measure the yardstick
    once more (a short probe at the size that reached the best rate).

    The probe first lets the contenders' thread pools go idle (ONNX Runtime's, OpenVINO's and
    OpenMP's workers spin-wait for a while after a run before they sleep): they are this
    process's threads, so they would slow the probe without counting as other processes. It
    then keeps the best of three windows, as the first yardstick does."""
    sample = probe.mark(label)
    mm = report.matmul
    if mm is None or cfg.yardstick_probe_s <= 0:
        return
    time.sleep(YARDSTICK_SETTLE_S)
    try:
        rate = matmul_rate(mm.threads, mm.device, sizes=(mm.size,),
                           seconds=cfg.yardstick_probe_s, trials=3, warmup=1)
    except ImportError:  # torch went away: nothing to probe with
        return
    sample.matmul_gflops = rate.gflops


def _best_yardstick(start: MatmulRate, end: MatmulRate | None, probe: NoiseProbe
                    ) -> MatmulRate:
    """The fastest of the start, end and interleaved measurements (noise only slows one
    down); ``measurements`` keeps them all."""
    best = best_of(start, end)
    assert best is not None
    between = [s.matmul_gflops for s in probe.record.samples if s.matmul_gflops
               and s.label not in ("yardstick",)]
    every = (*best.measurements, *between)
    return replace(best, gflops=max(every), measurements=tuple(every))


def _config_dict(cfg: BenchConfig) -> dict[str, Any]:
    d = asdict(cfg)
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in d.items()}


def _matmul(cfg: BenchConfig, threads: int, report: BenchReport, emit: Say,
            matmul_rate: Callable[..., MatmulRate]) -> MatmulRate | None:
    device = "cpu"
    if cfg.provider in GPU_PROVIDERS:
        try:
            import torch

            device = "cuda" if torch.cuda.is_available() else "cpu"
        except ImportError:
            device = "cpu"
        if device == "cpu":
            report.notes.append("PyTorch has no CUDA device here: the matmul yardstick is the "
                                "CPU's, so the GPU efficiency column is not meaningful")
    emit(f"measuring the dense fp32 matmul rate ({device}, "
         f"{threads} threads)")
    try:
        return matmul_rate(threads, device)
    except ImportError:
        report.notes.append("torch is not installed: no matmul yardstick, no efficiency column")
        return None


def _available_peers(cfg: BenchConfig, report: BenchReport) -> list[str]:
    peers = []
    for p in dict.fromkeys(cfg.peers):
        if p in ("openvino", "openvino-plain"):
            why = openvino_available()
            if why:
                report.unavailable[p] = why
                continue
            if cfg.provider in GPU_PROVIDERS:
                report.unavailable[p] = "measured on CPU only (edgegen benches OpenVINO's CPU "\
                                        "plugin); run with --provider cpu or openvino"
                continue
        if p.startswith("torch") or p.endswith("-plain"):  # the plain peers export again
            try:
                import torch  # noqa: F401
            except ImportError:
                report.unavailable[p] = "torch is not installed"
                continue
        peers.append(p)
    return peers


def _efficiency(report: BenchReport) -> None:
    """Achieved GFLOP/s of every result as a fraction of the matmul yardstick."""
    mm = report.matmul
    if mm is None:
        return
    for r in report.results:
        if r.achieved_gflops is not None:
            r.matmul_fraction = r.achieved_gflops / mm.gflops
    if any((r.matmul_fraction or 0) > 1 for r in report.results):
        report.notes.append("an achieved rate exceeds the matmul yardstick: the machine was "
                            "busier while the yardstick ran; the efficiency figures are not "
                            "reliable on this run")


