"""What ``edgegen bench`` takes and gives: ``BenchConfig`` (every default of the command),
``BenchResult`` (one contender at one batch size) and ``BenchReport``; shared by the stage in
``bench`` and the scenarios in ``offline`` and ``server``."""

from __future__ import annotations

import dataclasses
import gc
import json
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from edgegen.benchmarks.harness import TimingPlan
from edgegen.benchmarks.machine import MatmulRate
from edgegen.benchmarks.noise import NoiseRecord
from edgegen.benchmarks.scenarios import ServerResult, Sweep
from edgegen.benchmarks.stats import LatencyStats
from edgegen.core.errors import ConfigError, EdgegenError, require_positive
from edgegen.core.report import Report
from edgegen.runtime.bundle import PRECISIONS
from edgegen.runtime.fileio import atomic_write_text
from edgegen.runtime.providers import EP_NAMES

PEERS = ("torch", "torch-compile", "ort-default", "openvino", "ort-plain", "openvino-plain")
PROVIDERS = tuple(EP_NAMES)
SCENARIOS = ("offline", "server")
HTTP_TENSORS = ("binary", "json")
Say = Callable[[str], None]  # a stage's Reporter.say: one line of progress


@dataclass(frozen=True)
class BenchConfig:
    """Every default of ``edgegen bench`` lives here; the CLI reuses them."""

    bundle: Path | None = Path("bundles/cdcgan")  # None: only --url (nothing in-process)
    provider: str = "cpu"  # cpu | cuda | tensorrt | tensorrt-rtx | openvino
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
    max_delay_ms: float = 0.0  # server: how long a batch waits for more requests (Triton's
    #                            max_queue_delay); with max_batch > 1 the batch-1 server runs too
    p99_bound_ms: float | None = None  # server: sweep for the highest QPS with p99 <= this
    sweep_steps: int = 8
    seed: int = 2024  # latents of the inputs (same for every contender)
    device_id: int = 0
    trt_cache_dir: Path | None = None  # None: <bundle>/trt_cache (the bundle allows it)
    measure_matmul: bool = True
    noise_window_s: float = 1.0  # idle seconds before and after the run: others' CPU use
    yardstick_probe_s: float = 0.3  # the matmul yardstick again between rounds; 0: not
    eval_report: Path | None = None  # JSON of `edgegen eval` for the fidelity column
    # KServe v2 endpoints to measure (edgegen serve, Triton, KServe): one URL, or several
    # (the server scenario measures each, e.g. both serve engines, beside in-process)
    url: str | tuple[str, ...] | None = None
    model: str | None = None  # its model name; None: the bundle folder's, or the only one listed
    http_tensors: str = "binary"  # binary (the v2 binary tensor extension) | json
    connections: int = 32  # server scenario over HTTP: worker threads, one keep-alive each
    http_timeout_s: float = 10.0  # the longest one HTTP request may take
    command: str | None = None
    # The performance targets to gate on (``benchmarks.targets``; "all": every target of the
    # bundle's family): a judged target that is not met, or one not measured, fails the run.
    targets: tuple[str, ...] = ()

    def plan(self) -> TimingPlan:
        return TimingPlan(warmup_iters=self.warmup_iters, warmup_s=self.warmup_s,
                          iters=self.iters, duration_s=self.duration_s, rounds=self.rounds)


@dataclass
class BenchResult:
    """One contender at one batch size."""

    key: str
    contender: str  # edgegen | tuned | torch | torch-compile | ort-default | openvino | *-plain
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


Verdict = Literal["met", "not met", "not judged (noise)", "not measured"]


@dataclass(frozen=True)
class Target:
    """One performance target judged on one run (``benchmarks.targets`` computes them).

    ``value`` is what was measured, in ``unit``, held against ``bound`` by ``comparison``;
    ``detail`` says where it came from (contenders, batch sizes, rates). The verdict is
    ``not judged (noise)`` when the run's noise record (``benchmarks.noise``) says the machine
    was too busy and the target is a speed (``noise`` then holds that record's reasons), and
    ``not measured`` when the run lacks a contender it needs (``detail`` says which).
    ``reason``: where the time went (the engines' own profiles) when it is not met."""

    name: str  # what --target takes: torch-throughput, batch1-latency, int8-fidelity...
    title: str  # the target as a sentence
    measures: str  # what is measured
    bound: float
    unit: str  # "x" (a ratio), "fraction" (of the matmul yardstick), "pp" (percentage points)
    comparison: str  # ">=" | "<="
    value: float | None
    detail: str
    verdict: Verdict
    reason: str | None = None
    noise: tuple[str, ...] = ()

    @property
    def misses(self) -> bool:
        """What fails a gate: judged and not met, or not measured at all."""
        return self.verdict in ("not met", "not measured")


@dataclass
class BenchReport(Report):
    bundle: Path | None
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
    noise: NoiseRecord | None = None  # the machine before, during and after (benchmarks.noise)
    unavailable: dict[str, str] = field(default_factory=dict)  # peer -> why it was not run
    failures: dict[str, str] = field(default_factory=dict)  # contender -> what went wrong
    notes: list[str] = field(default_factory=list)
    served: dict[str, Any] = field(default_factory=dict)  # --url: the endpoint, the comparison
    started: str = ""
    wall_s: float = 0.0
    command: str = ""
    architecture: str | None = None  # the bundle's generator family (which targets apply)
    targets: list[Target] = field(default_factory=list)  # --target: each one asked for, judged
    source: str = "edgegen bench"  # or the on-device reader (edgegen.runtime.bench, Node's)

    @property
    def passed(self) -> bool:
        """Every contender asked for was measured and no target asked for (``--target``) was
        missed: not met, or not measured. A target the noise left unjudged does not fail."""
        return (not self.failures and (bool(self.results) or bool(self.server))
                and not any(t.misses for t in self.targets))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BenchReport:
        """The report back from its JSON (``to_json``), nested dataclasses included; keys this
        version does not know are ignored, missing ones take their defaults."""
        return from_jsonable(cls, data)

    def find(self, contender: str, variant: str | None = None, batch: int | None = None
             ) -> list[BenchResult]:
        return [r for r in self.results if r.contender == contender
                and (variant is None or r.variant == variant)
                and (batch is None or r.batch == batch)]

    def table_rows(self) -> list[BenchResult]:
        """Rows for the terminal table: every result except tuned configs that lost."""
        return [r for r in self.results if r.contender != "tuned" or r.best_tuned]

    def save_json(self, path: str | Path) -> None:
        atomic_write_text(path, self.to_json() + "\n")


def load_report(path: str | Path) -> BenchReport:
    """A ``--json`` report of ``edgegen bench`` read back as a typed ``BenchReport``."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path} is not a readable bench report ({exc}); pass the --json "
                          "output of `edgegen bench`") from exc
    if not isinstance(data, dict) or "results" not in data:
        raise ConfigError(f"{path} is not a bench report (no 'results'); pass the --json "
                          "output of `edgegen bench` or of `edgegen-runtime bench`")
    try:
        return BenchReport.from_dict(data)
    except (TypeError, KeyError, ValueError, AttributeError) as exc:
        raise ConfigError(f"{path} is not a bench report ({type(exc).__name__}: "
                          f"{str(exc)[:200]}); pass the --json output of `edgegen bench` or "
                          "of `edgegen-runtime bench`") from None



def from_jsonable(tp: Any, value: Any) -> Any:
    """``value`` (parsed JSON) as type ``tp``: dataclasses field by field (their type hints
    say how), lists, tuples, dicts (int keys back from JSON's strings), ``X | None``, Path.
    Anything else is returned as it is."""
    if value is None:
        return None
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        return from_jsonable(inner[0], value) if len(inner) == 1 else value
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        hints = typing.get_type_hints(tp)
        return tp(**{f.name: from_jsonable(hints[f.name], value[f.name])
                     for f in dataclasses.fields(tp) if f.init and f.name in value})
    if origin is list:
        return [from_jsonable(args[0], v) for v in value] if args else list(value)
    if origin is tuple:
        item = args[0] if args else Any
        return tuple(from_jsonable(item, v) for v in value)
    if origin is dict and args:
        key = int if args[0] is int else (lambda k: k)
        return {key(k): from_jsonable(args[1], v) for k, v in value.items()}
    if tp is Path:
        return Path(value)
    return value

def validate(cfg: BenchConfig) -> None:
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
    if cfg.threads < 0 or cfg.workers < 0 or cfg.max_batch < 1 or cfg.max_delay_ms < 0:
        raise ConfigError("--threads, --workers and --max-delay-ms must be >= 0 and "
                          "--max-batch >= 1")
    if cfg.bundle is None and cfg.url is None:
        raise ConfigError("give a bundle, a --url to measure, or both")
    if cfg.url is not None:
        for u in urls(cfg):
            split_url(u)
        if len(urls(cfg)) > 1 and cfg.scenario != "server":
            raise ConfigError("several --url endpoints are measured in the server scenario; "
                              "add --scenario server (or give one --url)")
        if cfg.http_tensors not in HTTP_TENSORS:
            raise ConfigError(f"--http-tensors takes binary or json, got {cfg.http_tensors!r}")
        require_positive(cfg, "connections", "http_timeout_s")
    if (cfg.io_binding or cfg.cuda_graph) and cfg.provider == "cpu":
        raise ConfigError("--io-binding and --cuda-graph are for --provider cuda, tensorrt or "
                          "tensorrt-rtx (on CPU the inputs already live where the model runs)")
    require_positive(cfg, "qps", "p99_bound_ms", "sweep_steps")
    if cfg.noise_window_s < 0 or cfg.yardstick_probe_s < 0:
        raise ConfigError("--noise-window and the yardstick probe time must be >= 0")
    if cfg.scenario == "server" and not cfg.server_duration_s > 0:
        raise ConfigError(f"--duration must be positive, got {cfg.server_duration_s}")
    cfg.plan().validate()


def urls(cfg: BenchConfig) -> tuple[str, ...]:
    """The endpoints of ``cfg.url`` (one, several, or none)."""
    if cfg.url is None:
        return ()
    return (cfg.url,) if isinstance(cfg.url, str) else tuple(cfg.url)


def split_url(url: str) -> tuple[str, int]:
    """(host, port) of ``--url``, which must be a plain-HTTP server root."""
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise ConfigError(f"--url {url!r}: expected http://HOST:PORT (plain HTTP)")
    if parts.path not in ("", "/"):
        raise ConfigError(f"--url {url!r}: give the server's root (the v2 paths are added), "
                          "not a path")
    return parts.hostname, parts.port or 80


def release() -> None:
    """Drop sessions between batch groups so that memory and thread pools do not pile up."""
    gc.collect()


def record_failure(report: BenchReport, key: str, exc: Exception, emit: Say) -> None:
    msg = str(exc).splitlines()[0][:400] if str(exc) else type(exc).__name__
    if not isinstance(exc, EdgegenError):
        msg = f"{type(exc).__name__}: {msg}"
    report.failures[key] = msg
    emit(f"{key} failed: {msg}")
