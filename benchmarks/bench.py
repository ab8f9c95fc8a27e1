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
import gc
import json
import shlex
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from edgegen.benchmarks.harness import TimingPlan, usable_cores
from edgegen.benchmarks.machine import MatmulRate
from edgegen.benchmarks.scenarios import ServerResult, Sweep
from edgegen.benchmarks.stats import LatencyStats
from edgegen.errors import ConfigError, EdgegenError, ProviderError
from edgegen.report import Report

PEERS = ("torch", "torch-compile", "ort-default", "openvino")
PROVIDERS = ("cpu", "cuda", "tensorrt")
PRECISIONS = ("fp32", "fp16", "int8")
SCENARIOS = ("offline", "server")
Progress = Callable[[dict[str, Any]], None]


@dataclass(frozen=True)
class BenchConfig:
    """Every default of ``edgegen bench`` lives here; the CLI reuses them."""

    bundle: Path = Path("bundles/cdcgan")
    provider: str = "cpu"  # cpu | cuda | tensorrt
    precisions: tuple[str, ...] = ()  # (): every variant the bundle has
    batches: tuple[int, ...] = (1, 8, 64, 256)
    io_binding: bool = False  # CUDA/TensorRT: inputs and output live on the device
    cuda_graph: bool = False  # capture and replay (implies io_binding)
    peers: tuple[str, ...] = ("torch", "ort-default", "openvino")
    threads: int = 0  # intra-op threads of ORT, torch and OpenVINO; 0: the usable cores
    spinning: bool | None = None  # ORT intra-op spin-wait; None: ORT's default (on)
    tune: bool = False  # CPU: also time fp32 over threads {1, N} x spinning {on, off}
    warmup_iters: int = 10
    warmup_s: float = 0.3
    iters: int | None = None  # timed calls per contender and batch; None: by duration
    duration_s: float = 1.0  # timed seconds per contender and batch (offline)
    rounds: int = 5  # interleaved blocks per contender
    scenario: str = "offline"  # offline | server
    qps: float = 500.0  # server: offered load (Poisson)
    server_duration_s: float = 10.0  # server: seconds of arrivals per contender
    workers: int = 0  # server: worker threads; 0: one per thread of the budget
    max_batch: int = 1  # server: requests a worker may batch together (1: MLPerf server)
    p99_bound_ms: float | None = None  # server: sweep for the highest QPS with p99 <= this
    sweep_steps: int = 8
    seed: int = 2024  # latents of the inputs (same for every contender)
    device_id: int = 0
    trt_cache_dir: Path | None = None  # None: <bundle>/trt_cache (the bundle allows it)
    measure_matmul: bool = True
    eval_report: Path | None = None  # JSON of `edgegen eval` for the fidelity column
    command: str | None = None

    def plan(self) -> TimingPlan:
        return TimingPlan(warmup_iters=self.warmup_iters, warmup_s=self.warmup_s,
                          iters=self.iters, duration_s=self.duration_s, rounds=self.rounds)


@dataclass
class BenchResult:
    """One contender at one batch size."""

    key: str
    contender: str  # edgegen | tuned | ort-default | torch | torch-compile | openvino
    variant: str
    provider: str
    batch: int
    latency: LatencyStats
    session_create_s: float
    first_run_s: float
    warmup_iters: int
    warmup_s: float
    settings: dict[str, Any]
    speedup_p50: float | None = None  # PyTorch eager p50 / this p50, same batch
    speedup_throughput: float | None = None  # this img/s / PyTorch eager img/s, same batch
    fidelity: float | None = None
    fidelity_source: str | None = None
    achieved_gflops: float | None = None
    matmul_fraction: float | None = None  # achieved / the machine's dense fp32 matmul rate
    best_tuned: bool = False

    @property
    def label(self) -> str:
        """What the table's provider column shows."""
        s = self.settings
        if self.contender == "edgegen":
            extra = "+graph" if s.get("cuda_graph") else "+iobind" if s.get("io_binding") else ""
            return f"{self.provider}{extra}"
        if self.contender == "tuned":
            return f"cpu {s['intra_op_threads']}t spin-{s['spinning']}" \
                + ("*" if self.best_tuned else "")
        return self.contender


@dataclass
class BenchReport(Report):
    bundle: Path
    provider: str
    scenario: str
    config: dict[str, Any]
    machine: dict[str, Any]
    versions: dict[str, str | None]
    threads: dict[str, Any]
    flops: dict[str, Any]
    matmul: MatmulRate | None
    results: list[BenchResult] = field(default_factory=list)
    server: list[ServerResult] = field(default_factory=list)
    sweeps: dict[str, Sweep] = field(default_factory=dict)
    unavailable: dict[str, str] = field(default_factory=dict)  # peer -> why it was not run
    failures: dict[str, str] = field(default_factory=dict)  # contender -> what went wrong
    notes: list[str] = field(default_factory=list)
    started: str = ""
    wall_s: float = 0.0
    command: str = ""

    @property
    def passed(self) -> bool:
        """Bench gates nothing: it passes when every contender asked for was measured."""
        return not self.failures and (bool(self.results) or bool(self.server))

    def find(self, contender: str, variant: str | None = None, batch: int | None = None
             ) -> list[BenchResult]:
        return [r for r in self.results if r.contender == contender
                and (variant is None or r.variant == variant)
                and (batch is None or r.batch == batch)]

    def table_rows(self) -> list[BenchResult]:
        """Rows for the terminal table: every result except tuned configs that lost."""
        return [r for r in self.results if r.contender != "tuned" or r.best_tuned]

    def save_json(self, path: str | Path) -> None:
        from edgegen.fileio import atomic_write_text

        atomic_write_text(path, self.to_json() + "\n")


# --------------------------------------------------------------------------- validation
def _validate(cfg: BenchConfig) -> None:
    if cfg.provider not in PROVIDERS:
        raise ConfigError(f"unknown provider {cfg.provider!r}; expected one of "
                          f"{', '.join(PROVIDERS)}")
    bad = [p for p in cfg.precisions if p not in PRECISIONS]
    if bad:
        raise ConfigError(f"unknown precision {', '.join(bad)}; expected a comma-separated "
                          f"list of {', '.join(PRECISIONS)}")
    unknown = [p for p in cfg.peers if p not in PEERS]
    if unknown:
        raise ConfigError(f"unknown peer {', '.join(unknown)}; expected a comma-separated list "
                          f"of {', '.join(PEERS)} (or none)")
    if not cfg.batches or any(b < 1 for b in cfg.batches):
        raise ConfigError(f"--batch needs positive batch sizes, got {list(cfg.batches)}")
    if cfg.scenario not in SCENARIOS:
        raise ConfigError(f"unknown scenario {cfg.scenario!r}; expected offline or server")
    if cfg.threads < 0 or cfg.workers < 0 or cfg.max_batch < 1:
        raise ConfigError("--threads and --workers must be >= 0 and --max-batch >= 1")
    if (cfg.io_binding or cfg.cuda_graph) and cfg.provider == "cpu":
        raise ConfigError("--io-binding and --cuda-graph are for --provider cuda or tensorrt "
                          "(on CPU the inputs already live where the model runs)")
    if cfg.scenario == "server" and not (cfg.qps > 0 and cfg.server_duration_s > 0):
        raise ConfigError(f"--qps and --duration must be positive, got {cfg.qps} and "
                          f"{cfg.server_duration_s}")
    if cfg.p99_bound_ms is not None and not cfg.p99_bound_ms > 0:
        raise ConfigError(f"--p99-bound-ms must be positive, got {cfg.p99_bound_ms}")
    cfg.plan().validate()


def check_provider(provider: str) -> None:
    """A ProviderError naming what is available when ``provider`` is not: never a fallback."""
    from edgegen.providers import EP_NAMES, available, ort

    have = available()
    ep = EP_NAMES[provider]
    if ep not in have:
        raise ProviderError(f"provider {provider!r} ({ep}) is not available in this "
                            f"onnxruntime {ort().__version__}; available: {', '.join(have)}. "
                            "Install onnxruntime-gpu (`pip install -e .[gpu]`) on a machine "
                            "with an NVIDIA GPU for cuda (and TensorRT for tensorrt), or bench "
                            "with --provider cpu")


def _probe_provider(cfg: BenchConfig, bundle: Any, variant: str, threads: int) -> None:
    """Create one session up front, so that a provider listed as available whose libraries do
    not load (TensorRT without libnvinfer, CUDA without cuDNN) is a ProviderError (exit 2)
    before anything is timed, not a table of failures."""
    from edgegen.benchmarks.offline import provider_spec, variant_file
    from edgegen.providers import make_session

    if cfg.provider != "cpu":
        make_session(variant_file(bundle, cfg.provider, variant),
                     replace(provider_spec(cfg, threads, variant), cuda_graph=False))


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
def bench(cfg: BenchConfig, on_progress: Progress | None = None) -> BenchReport:
    from edgegen.benchmarks.flops import count_flops
    from edgegen.benchmarks.machine import best_of, machine_info, matmul_rate, versions
    from edgegen.bundle import load_bundle

    emit = on_progress or (lambda event: None)
    _validate(cfg)
    if cfg.cuda_graph and not cfg.io_binding:
        emit({"kind": "note", "text": "--cuda-graph implies --io-binding (ONNX Runtime "
                                      "replays graphs only over bound device buffers)"})
    bundle = load_bundle(cfg.bundle)
    check_provider(cfg.provider)
    variants = list(cfg.precisions) or [p for p in PRECISIONS if p in bundle.variants]
    for v in variants:
        bundle.variant_path(v)  # a BundleError naming what the bundle has
    threads = cfg.threads or usable_cores()
    cfg = replace(cfg, io_binding=cfg.io_binding or cfg.cuda_graph)
    started = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    t_start = time.perf_counter()
    gpu = cfg.provider != "cpu"
    flops = count_flops(bundle.variant_path("fp32") if "fp32" in bundle.variants
                        else bundle.variant_path(variants[0]))
    report = BenchReport(
        bundle=Path(cfg.bundle), provider=cfg.provider, scenario=cfg.scenario,
        config=_config_dict(cfg), machine=machine_info(gpu=gpu), versions=versions(),
        threads={"budget": threads, "usable_cores": usable_cores(),
                 "ort_intra_op_threads": threads, "ort_inter_op_threads": "ORT default",
                 "ort_spinning": ("ORT default (on)" if cfg.spinning is None
                                  else "on" if cfg.spinning else "off"),
                 "torch_threads": threads, "openvino_threads": threads},
        flops={"per_image": flops.per_image, "by_op_per_image":
               {k: v / flops.batch for k, v in flops.by_op.items()},
               "counted_on": "fp32 graph: Gemm/MatMul/Conv/ConvTranspose, 2 FLOPs per "
                             "multiply-add", "unknown_nodes": flops.unknown},
        matmul=None, started=started,
        command=cfg.command or shlex.join([Path(sys.argv[0]).name, *sys.argv[1:]]))
    if cfg.measure_matmul and cfg.scenario == "offline":  # the yardstick of offline rates
        report.matmul = _matmul(cfg, threads, report, emit, matmul_rate)
    _probe_provider(cfg, bundle, variants[0], threads)
    fidelity = _fidelity(bundle, cfg.eval_report)
    peers = _available_peers(cfg, report)
    if cfg.scenario == "offline":
        from edgegen.benchmarks.offline import run_offline

        run_offline(cfg, bundle, variants, peers, threads, fidelity, report, emit)
    else:
        from edgegen.benchmarks.server import run_server_scenario

        run_server_scenario(cfg, bundle, variants, peers, threads, report, emit)
    if cfg.measure_matmul and report.matmul is not None and report.results:
        # measured again at the end: the faster of the two is the machine's rate
        report.matmul = best_of(report.matmul, _matmul(cfg, threads, report, emit, matmul_rate))
        _efficiency(report)
    report.machine["load_average_after"] = machine_info()["load_average"]
    report.wall_s = time.perf_counter() - t_start
    return report


def _config_dict(cfg: BenchConfig) -> dict[str, Any]:
    d = asdict(cfg)
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in d.items()}


def _matmul(cfg: BenchConfig, threads: int, report: BenchReport, emit: Progress,
            matmul_rate: Callable[..., MatmulRate]) -> MatmulRate | None:
    device = "cpu"
    if cfg.provider != "cpu":
        try:
            import torch

            device = "cuda" if torch.cuda.is_available() else "cpu"
        except ImportError:
            device = "cpu"
        if device == "cpu":
            report.notes.append("PyTorch has no CUDA device here: the matmul yardstick is the "
                                "CPU's, so the GPU efficiency column is not meaningful")
    emit({"kind": "note", "text": f"measuring the dense fp32 matmul rate ({device}, "
                                  f"{threads} threads)"})
    try:
        return matmul_rate(threads, device)
    except ImportError:
        report.notes.append("torch is not installed: no matmul yardstick, no efficiency column")
        return None


def _available_peers(cfg: BenchConfig, report: BenchReport) -> list[str]:
    from edgegen.benchmarks.runners import openvino_available

    peers = []
    for p in dict.fromkeys(cfg.peers):
        if p == "openvino":
            why = openvino_available()
            if why:
                report.unavailable[p] = why
                continue
            if cfg.provider != "cpu":
                report.unavailable[p] = "measured on CPU only (edgegen benches OpenVINO's CPU "\
                                        "plugin); run with --provider cpu"
                continue
        if p.startswith("torch"):
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


def release() -> None:
    """Drop sessions between batch groups so that memory and thread pools do not pile up."""
    gc.collect()


def record_failure(report: BenchReport, key: str, exc: Exception, emit: Progress) -> None:
    msg = str(exc).splitlines()[0][:400] if str(exc) else type(exc).__name__
    if not isinstance(exc, EdgegenError):
        msg = f"{type(exc).__name__}: {msg}"
    report.failures[key] = msg
    emit({"kind": "note", "text": f"{key} failed: {msg}"})
