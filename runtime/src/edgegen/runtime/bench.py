"""The on-device benchmark: ``python -m edgegen.runtime.bench BUNDLE --batch 1,8,64``.

It runs where only ``edgegen-runtime`` is installed (numpy and onnxruntime; no torch, no
toolchain) and measures the bundle's models the way ``edgegen bench`` measures its ``edgegen``
contender, so that a device's report can be put beside the workstation's
(``edgegen bench --from-json workstation.json --from-json device.json``):

* the same inputs (the portable latent of seed 2024, labels cycling over the classes) and the
  same session settings (``make_session`` on the provider, intra-op threads = the usable cores
  unless ``--threads`` says otherwise, ONNX Runtime's other defaults);
* one group per batch size: each variant's session is created (timed apart:
  ``session_create_s``), run once (``first_run_s``), warmed up for at least ``--warmup-iters``
  calls *and* ``--warmup-s`` seconds, then every variant of the group is timed in ``--rounds``
  interleaved blocks (rotated order, as ``edgegen.benchmarks.harness``), each call on its own
  with ``perf_counter_ns``;
* latency min/mean/p50/p90/p95/p99/max (linear interpolation between closest ranks, as numpy
  and ``edgegen bench``) and images per second over the time spent inside the timed calls;
* the machine (CPU model, cores, ISA flags, memory, OS), ONNX Runtime's version and providers,
  and how quiet it was: the load average, and other processes' share of the CPU (``/proc/stat``
  less this process's own time) in idle windows and in each group, judged against the same
  thresholds as ``edgegen.benchmarks.noise``.

The JSON (``--json``) has the shape of ``edgegen bench --json`` (``BenchReport.to_json``): the
device's rows are ``edgegen`` contenders; ``source`` says which reader measured them. ``--format
ort`` times the bundle's ORT-format models (the manifest's ``ort_format`` section).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import shlex
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from edgegen.runtime.bundle import PRECISIONS, Bundle, load_bundle
from edgegen.runtime.errors import BundleError, ConfigError, EdgegenError
from edgegen.runtime.fileio import atomic_write_text
from edgegen.runtime.latent import latent
from edgegen.runtime.providers import EP_NAMES, ProviderSpec, available, make_session, ort

FORMATS = ("onnx", "ort")
# edgegen.benchmarks.noise's thresholds (a test keeps the two equal)
NOISE_THRESHOLDS = {"others": 0.10, "steal": 0.02, "yardstick_spread": 0.15, "freq_spread": 0.10}
ISA_FLAGS = ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_fp16", "avx512_vnni", "avx_vnni",
             "amx_tile", "amx_bf16", "amx_int8", "f16c",  # x86-64 (/proc/cpuinfo "flags")
             "asimd", "asimddp", "sve", "sve2", "i8mm", "bf16")  # Arm ("Features")
SOURCE = "edgegen-runtime bench (python)"


@dataclass(frozen=True)
class DeviceBenchConfig:
    """Every default of the on-device bench (the timing ones are ``edgegen bench``'s)."""

    bundle: Path
    batches: tuple[int, ...] = (1, 8, 64)
    variants: tuple[str, ...] = ()  # (): every variant of the bundle
    format: str = "onnx"  # onnx | ort (the manifest's ort_format models)
    provider: str = "cpu"
    threads: int = 0  # intra-op threads; 0: the usable cores
    spinning: bool | None = None  # ORT intra-op spin-wait; None: ORT's default (on)
    warmup_iters: int = 10
    warmup_s: float = 0.3
    iters: int | None = None  # timed calls per variant and batch; None: by duration
    duration_s: float = 1.0  # timed seconds per variant and batch
    rounds: int = 5
    min_iters: int = 5
    seed: int = 2024
    noise_window_s: float = 1.0  # idle seconds before and after: others' CPU use
    command: str | None = None


@dataclass
class DeviceBenchReport:
    """``BenchReport``'s shape (``edgegen.benchmarks.results``), filled by the device."""

    bundle: str
    provider: str
    config: dict[str, Any]
    machine: dict[str, Any]
    versions: dict[str, str | None]
    threads: dict[str, Any]
    scenario: str = "offline"
    flops: dict[str, Any] = field(default_factory=lambda: {"per_image": None})
    matmul: None = None
    results: list[dict[str, Any]] = field(default_factory=list)
    server: list[Any] = field(default_factory=list)
    sweeps: dict[str, Any] = field(default_factory=dict)
    noise: dict[str, Any] | None = None
    unavailable: dict[str, str] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    served: dict[str, Any] = field(default_factory=dict)
    started: str = ""
    wall_s: float = 0.0
    command: str = ""
    architecture: str | None = None  # the bundle's generator family
    targets: list[Any] = field(default_factory=list)  # none are judged on the device
    source: str = SOURCE

    @property
    def passed(self) -> bool:
        return not self.failures and bool(self.results)

    def to_dict(self) -> dict[str, Any]:
        return {"passed": self.passed, **asdict(self)}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)


# --------------------------------------------------------------------------- statistics


def latency_stats(samples_ns: list[int], batch: int) -> dict[str, Any]:
    """``LatencyStats``'s fields (milliseconds) of per-call durations in nanoseconds."""
    ns = np.asarray(samples_ns, dtype=np.float64)
    if ns.size == 0:
        raise ValueError("no timed samples")
    ms = ns / 1e6
    total_s = float(ns.sum()) / 1e9
    pct = {q: float(np.percentile(ms, q)) for q in (50, 90, 95, 99)}
    return {"batch": int(batch), "count": int(ns.size), "min_ms": float(ms.min()),
            "mean_ms": float(ms.mean()), "p50_ms": pct[50], "p90_ms": pct[90],
            "p95_ms": pct[95], "p99_ms": pct[99], "max_ms": float(ms.max()),
            "std_ms": float(ms.std()), "total_s": total_s,
            "images_per_s": batch * ns.size / total_s}


def rotation(names: list[str], r: int) -> list[str]:
    """Round ``r``'s order: rotated by ``r``, reversed every other round (as the harness)."""
    if not names:
        return []
    k = r % len(names)
    order = names[k:] + names[:k]
    return order[::-1] if r % 2 else order


def warm_up(fn: Callable[[], object], iters: int, seconds: float) -> tuple[int, float]:
    """Untimed calls until both ``iters`` calls and ``seconds`` have passed."""
    start = time.perf_counter_ns()
    done = 0
    while done < iters or time.perf_counter_ns() - start < seconds * 1e9:
        fn()
        done += 1
    return done, (time.perf_counter_ns() - start) / 1e9


def time_block(fn: Callable[[], object], iters: int | None, seconds: float | None,
               min_iters: int) -> list[int]:
    """Per-call durations (ns): ``iters`` calls, or calls until ``seconds`` have passed."""
    clock = time.perf_counter_ns
    out: list[int] = []
    deadline = None if seconds is None else clock() + int(seconds * 1e9)
    while True:
        t0 = clock()
        fn()
        t1 = clock()
        out.append(t1 - t0)
        if iters is not None and len(out) >= iters:
            return out
        if deadline is not None and t1 >= deadline and len(out) >= min_iters:
            return out


# --------------------------------------------------------------------------- the machine


def _cpuinfo() -> list[str]:
    try:
        return Path("/proc/cpuinfo").read_text(errors="replace").splitlines()
    except OSError:
        return []


def cpu_model() -> str:
    """The CPU's name from /proc/cpuinfo (Linux), else the platform module."""
    for line in _cpuinfo():
        key = line.split(":", 1)[0].strip().lower()
        if key in ("model name", "hardware", "processor") and ":" in line \
                and not line.split(":", 1)[1].strip().isdigit():
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def cpu_flags() -> list[str]:
    """The vector extensions that matter for these kernels (AVX2, AVX-512, AMX, NEON, SVE...)."""
    for line in _cpuinfo():
        if line.split(":", 1)[0].strip().lower() in ("flags", "features"):
            have = set(line.split(":", 1)[1].split())
            return [f for f in ISA_FLAGS if f in have]
    return []


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _load() -> list[float] | None:
    return list(os.getloadavg()) if hasattr(os, "getloadavg") else None


def machine_facts() -> dict[str, Any]:
    """CPU model, ISA flags, cores, memory, OS and load: what a reader needs to trust a number."""
    try:
        ram = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") / 2**30
    except (ValueError, OSError, AttributeError):
        ram = None
    flags = cpu_flags()
    return {"cpu": cpu_model(), "cpu_flags": flags,
            "isa": {"avx2": "avx2" in flags, "avx512": "avx512f" in flags,
                    "neon": "asimd" in flags, "sve": "sve" in flags},
            "logical_cores": os.cpu_count(), "usable_cores": usable_cores(), "ram_gib": ram,
            "os": f"{platform.system()} {platform.release()}", "arch": platform.machine(),
            "python": platform.python_version(), "load_average": _load()}


def versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {"python": platform.python_version()}
    for dist in ("edgegen-runtime", "numpy", "onnxruntime", "onnxruntime-gpu", "torch"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = None
    out["onnxruntime_module"] = ort().__version__  # the module that runs (CPU or GPU build)
    return out


# --------------------------------------------------------------------------- noise


def _snapshot() -> dict[str, Any]:
    """CPU jiffies of the whole machine (/proc/stat) and this process's own CPU seconds."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    snap: dict[str, Any] = {"t": time.perf_counter(), "own_s": usage.ru_utime + usage.ru_stime,
                            "busy": None, "steal": None, "total": None}
    try:
        v = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    except (OSError, ValueError, IndexError):
        return snap
    v += [0] * (8 - len(v))  # user nice system idle iowait irq softirq steal
    snap.update(busy=v[0] + v[1] + v[2] + v[5] + v[6], steal=v[7], total=sum(v[:8]))
    return snap


class Noise:
    """Intervals between marks: other processes' share of the machine's CPU capacity (``busy``
    less this process's own time) and the hypervisor's steal, as ``edgegen.benchmarks.noise``."""

    def __init__(self) -> None:
        self.samples: list[dict[str, Any]] = []
        self._last = _snapshot()

    def restart(self) -> None:
        self._last = _snapshot()

    def mark(self, label: str, idle: bool = False) -> None:
        a, b = self._last, _snapshot()
        self._last = b
        seconds = max(b["t"] - a["t"], 1e-9)
        others = steal = None
        if a["busy"] is not None and b["busy"] is not None:
            hz = os.sysconf("SC_CLK_TCK")
            capacity = (b["total"] - a["total"]) / hz or seconds * (os.cpu_count() or 1)
            others = max(0.0, ((b["busy"] - a["busy"]) / hz - (b["own_s"] - a["own_s"]))
                         / capacity)
            steal = (b["steal"] - a["steal"]) / hz / capacity
        self.samples.append({"label": label, "seconds": seconds, "others": others,
                             "steal": steal, "load_average": _load(), "freq_mhz": None,
                             "matmul_gflops": None, "idle": idle})

    def idle(self, label: str, seconds: float) -> None:
        self.restart()
        time.sleep(seconds)
        self.mark(label, idle=True)

    def record(self) -> dict[str, Any]:
        """NoiseRecord's shape: samples, thresholds, noisy, reasons, summary."""
        others = [(s["others"], s["label"]) for s in self.samples if s["others"] is not None]
        steal = [(s["steal"], s["label"]) for s in self.samples if s["steal"] is not None]
        reasons = []
        if others and max(others)[0] > NOISE_THRESHOLDS["others"]:
            worst = max(others)
            reasons.append(f"other processes used {worst[0]:.0%} of the CPU capacity "
                           f"({worst[1]}; threshold {NOISE_THRESHOLDS['others']:.0%})")
        if steal and max(steal)[0] > NOISE_THRESHOLDS["steal"]:
            worst = max(steal)
            reasons.append(f"the hypervisor stole {worst[0]:.1%} of the CPU time ({worst[1]}; "
                           f"threshold {NOISE_THRESHOLDS['steal']:.0%})")
        loads = [s["load_average"] for s in self.samples if s["load_average"]]
        return {"samples": self.samples, "thresholds": dict(NOISE_THRESHOLDS),
                "server_on_this_machine": False, "noisy": bool(reasons), "reasons": reasons,
                "summary": {"others_max": max(others)[0] if others else None,
                            "others_judged_on": "every interval",
                            "steal_max": max(steal)[0] if steal else None,
                            "load_average_first": loads[0] if loads else None,
                            "load_average_last": loads[-1] if loads else None}}


# --------------------------------------------------------------------------- the stage


def model_file(bundle: Bundle, variant: str, fmt: str) -> str:
    """The bundle-relative file that runs ``variant`` in ``fmt`` (``ort``: its ORT-format copy
    from the manifest's ``ort_format.models``)."""
    rel = bundle.variant_file(variant)
    if fmt == "onnx":
        return rel
    section = bundle.manifest.get("ort_format")
    if not section:
        raise BundleError(f"{bundle.root} has no ORT-format models (no ort_format section): "
                          "export with `edgegen export --ort-format`, or bench --format onnx")
    ort_rel = section["models"].get(rel)
    if ort_rel is None:
        raise BundleError(f"{bundle.root}: ort_format.models has no .ort file for {rel}; "
                          "re-export with --ort-format")
    return ort_rel


def validate(cfg: DeviceBenchConfig) -> None:
    if cfg.format not in FORMATS:
        raise ConfigError(f"--format takes onnx or ort, got {cfg.format!r}")
    if cfg.provider not in EP_NAMES:
        raise ConfigError(f"unknown provider {cfg.provider!r}; expected one of "
                          f"{', '.join(EP_NAMES)}")
    if not cfg.batches or any(b < 1 for b in cfg.batches):
        raise ConfigError(f"--batch needs positive batch sizes, got {list(cfg.batches)}")
    if cfg.warmup_iters < 0 or cfg.warmup_s < 0 or cfg.threads < 0 or cfg.noise_window_s < 0:
        raise ConfigError("--warmup-iters, --warmup-s, --threads and --noise-window must be "
                          ">= 0")
    if cfg.rounds < 1 or (cfg.iters is not None and cfg.iters < 1):
        raise ConfigError("--rounds and --iters must be at least 1")
    if cfg.iters is None and not cfg.duration_s > 0:
        raise ConfigError(f"--duration must be positive, got {cfg.duration_s}")


class _Variant:
    """One variant's session at one batch size, its inputs, and its measurements."""

    def __init__(self, bundle: Bundle, cfg: DeviceBenchConfig, variant: str, batch: int,
                 spec: ProviderSpec) -> None:
        self.variant, self.batch = variant, batch
        self.file = model_file(bundle, variant, cfg.format)
        data = bundle.read(self.file)  # checked bytes: what was hashed is what runs
        t0 = time.perf_counter_ns()
        session = make_session(data, spec, name=str(bundle.path(self.file)))
        self.session_create_s = (time.perf_counter_ns() - t0) / 1e9
        z_name, label_name = (i.name for i in session.get_inputs())
        # the toolchain's Inputs.make: the portable latent of the seed, labels cycling
        feeds = {z_name: latent(cfg.seed, batch, bundle.z_dim),
                 label_name: (np.arange(batch) % bundle.n_classes).astype(np.int64)}
        self.call = lambda: session.run(None, feeds)
        t0 = time.perf_counter_ns()
        self.call()
        self.first_run_s = (time.perf_counter_ns() - t0) / 1e9
        self.samples: list[int] = []
        self.warm = (0, 0.0)

    def result(self, cfg: DeviceBenchConfig, spec: ProviderSpec, fidelity: Any) -> dict:
        return {"key": f"edgegen/{self.variant}/{cfg.provider}", "contender": "edgegen",
                "variant": self.variant, "provider": cfg.provider, "batch": self.batch,
                "latency": latency_stats(self.samples, self.batch),
                "session_create_s": self.session_create_s, "first_run_s": self.first_run_s,
                "warmup_iters": self.warm[0], "warmup_s": self.warm[1],
                "settings": {"intra_op_threads": spec.intra_op_threads or "ORT default",
                             "inter_op_threads": "ORT default",
                             "spinning": ("ORT default (on)" if spec.spinning is None
                                          else "on" if spec.spinning else "off"),
                             "graph_optimization": spec.graph_optimization,
                             "io_binding": False, "format": cfg.format, "model": self.file},
                "speedup_p50": None, "speedup_throughput": None,
                "fidelity": fidelity[0] if fidelity else None,
                "fidelity_source": fidelity[1] if fidelity else None,
                "achieved_gflops": None, "matmul_fraction": None, "best_tuned": False}


def _time_group(group: list[_Variant], cfg: DeviceBenchConfig) -> None:
    """Warm each variant up, then time them in rotated, interleaved blocks."""
    for v in group:
        v.warm = warm_up(v.call, cfg.warmup_iters, cfg.warmup_s)
    by_name = {v.variant: v for v in group}
    if cfg.iters is not None:
        base, extra = divmod(cfg.iters, min(cfg.rounds, cfg.iters))
        blocks = [base + (1 if r < extra else 0) for r in range(min(cfg.rounds, cfg.iters))]
    else:
        blocks = [None] * cfg.rounds
    per_block_s = None if cfg.iters is not None else cfg.duration_s / cfg.rounds
    per_block_min = max(1, -(-cfg.min_iters // cfg.rounds))
    for r, size in enumerate(blocks):
        for name in rotation(list(by_name), r):
            by_name[name].samples += time_block(by_name[name].call, size, per_block_s,
                                                per_block_min)
            time.sleep(0.02)  # let ORT's spinning threads go idle before the next block


def bench(cfg: DeviceBenchConfig, say: Callable[[str], None] | None = None
          ) -> DeviceBenchReport:
    """Time every variant at every batch size (see the module docstring)."""
    say = say or (lambda _text: None)
    validate(cfg)
    bundle = load_bundle(cfg.bundle)
    variants = list(cfg.variants) or [p for p in PRECISIONS if p in bundle.variants] \
        or list(bundle.variants)
    for v in variants:
        model_file(bundle, v, cfg.format)  # a BundleError naming what the bundle has
    threads = cfg.threads or usable_cores()
    spec = ProviderSpec(name=cfg.provider, intra_op_threads=threads, spinning=cfg.spinning)
    report = DeviceBenchReport(
        bundle=str(cfg.bundle), provider=cfg.provider,
        architecture=(bundle.manifest.get("generator") or {}).get("architecture"),
        config={k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(cfg).items()},
        machine=machine_facts(), versions=versions(),
        threads={"budget": threads, "usable_cores": usable_cores(),
                 "ort_intra_op_threads": threads, "ort_inter_op_threads": "ORT default",
                 "ort_spinning": ("ORT default (on)" if cfg.spinning is None
                                  else "on" if cfg.spinning else "off")},
        started=_dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        command=cfg.command or shlex.join([Path(sys.argv[0]).name, *sys.argv[1:]]))
    report.machine["providers"] = available()
    t_start = time.perf_counter()
    noise = Noise()
    if cfg.noise_window_s > 0:
        say(f"reading the machine's noise ({cfg.noise_window_s:g} s idle)")
        noise.idle("before (idle)", cfg.noise_window_s)
    fidelity = {name: (float(v["deviation_from_fp32"]["fidelity"]), "manifest (export, ORT CPU)")
                for name, v in bundle.variants.items()
                if (v.get("deviation_from_fp32") or {}).get("fidelity") is not None}
    for batch in cfg.batches:
        noise.restart()
        try:
            group = [_Variant(bundle, cfg, v, batch, spec) for v in variants]
        except (EdgegenError, OSError):
            raise
        except Exception as exc:  # noqa: BLE001 - ORT's own exception types: reported
            report.failures[f"batch {batch}"] = f"{type(exc).__name__}: {str(exc)[:300]}"
            continue
        say(f"batch {batch}: timing {', '.join(variants)} in {cfg.rounds} interleaved rounds")
        _time_group(group, cfg)
        noise.mark(f"batch {batch}")
        report.results += [v.result(cfg, spec, fidelity.get(v.variant)) for v in group]
        del group
    if cfg.noise_window_s > 0:
        noise.idle("after (idle)", cfg.noise_window_s)
    report.noise = noise.record()
    if report.noise["noisy"]:
        report.notes.append("noisy machine: " + "; ".join(report.noise["reasons"])
                            + " — absolute numbers may not hold; rerun on a quiet machine")
    report.machine["load_average_after"] = _load()
    report.wall_s = time.perf_counter() - t_start
    return report


# --------------------------------------------------------------------------- command line


def _ints(text: str, option: str) -> tuple[int, ...]:
    try:
        values = tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise ConfigError(f"{option} takes comma-separated integers, got {text!r}") from None
    return values


def parser() -> argparse.ArgumentParser:
    d = DeviceBenchConfig(bundle=Path("."))
    p = argparse.ArgumentParser(prog="edgegen-runtime bench",
                                description="Time a bundle on this device (torch-free).")
    p.add_argument("bundle", type=Path, help="bundle folder made by `edgegen export`")
    p.add_argument("--batch", "-b", default=",".join(map(str, d.batches)))
    p.add_argument("--variant", "--precision", default="",
                   help="variants, comma-separated (default: every variant)")
    p.add_argument("--format", default=d.format, choices=FORMATS)
    p.add_argument("--provider", "-p", default=d.provider)
    p.add_argument("--threads", type=int, default=d.threads, help="0: the usable cores")
    p.add_argument("--spinning", default="default", choices=("on", "off", "default"))
    p.add_argument("--warmup-iters", type=int, default=d.warmup_iters)
    p.add_argument("--warmup-s", type=float, default=d.warmup_s)
    p.add_argument("--iters", type=int, default=None, help="timed calls (instead of --duration)")
    p.add_argument("--duration", type=float, default=d.duration_s,
                   help="timed seconds per variant and batch")
    p.add_argument("--rounds", type=int, default=d.rounds)
    p.add_argument("--noise-window", type=float, default=d.noise_window_s)
    p.add_argument("--json", type=Path, default=None, help="write the report here")
    return p


def render(report: DeviceBenchReport) -> str:
    m = report.machine
    lines = [f"{m['cpu']} · {m['usable_cores']} usable cores · {' '.join(m['cpu_flags'])} · "
             f"onnxruntime {report.versions.get('onnxruntime_module')} · load "
             f"{', '.join(f'{x:.1f}' for x in m.get('load_average') or [])}",
             f"{'variant':8} {'batch':>5} {'p50 ms':>9} {'p99 ms':>9} {'img/s':>10} "
             f"{'session s':>9} {'first s':>8}"]
    for r in report.results:
        lat = r["latency"]
        lines.append(f"{r['variant']:8} {r['batch']:>5} {lat['p50_ms']:>9.3f} "
                     f"{lat['p99_ms']:>9.3f} {lat['images_per_s']:>10,.0f} "
                     f"{r['session_create_s']:>9.3f} {r['first_run_s']:>8.3f}")
    lines += [f"failed: {k}: {v}" for k, v in report.failures.items()]
    lines += [f"note: {n}" for n in report.notes]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        if args.json is not None and (args.json.is_dir() or not args.json.parent.is_dir()):
            raise ConfigError(f"--json {args.json}: expected a file path in an existing folder")
        cfg = DeviceBenchConfig(
            bundle=args.bundle, batches=_ints(args.batch, "--batch"),
            variants=tuple(v for v in args.variant.split(",") if v), format=args.format,
            provider=args.provider, threads=args.threads,
            spinning={"on": True, "off": False, "default": None}[args.spinning],
            warmup_iters=args.warmup_iters, warmup_s=args.warmup_s, iters=args.iters,
            duration_s=args.duration, rounds=args.rounds, noise_window_s=args.noise_window)
        report = bench(cfg, say=lambda text: print(text, file=sys.stderr, flush=True))
    except EdgegenError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(render(report))
    if args.json is not None:
        atomic_write_text(args.json, report.to_json() + "\n")
        print(f"report: {args.json}")
    return 0 if report.passed else 1


if __name__ == "__main__":
    sys.exit(main())
