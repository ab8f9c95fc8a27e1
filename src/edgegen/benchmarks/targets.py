"""The performance targets, judged on a typed ``BenchReport``: what ``edgegen bench --target``
gates on and what ``benchmarks/scripts/run_benchmarks.py`` writes into BENCHMARKS.md.

Each target is a ``TargetSpec`` (a name, what it measures, a bound, a unit, a comparison) and
a function that reads its value from one report. Judging gives a ``results.Target``:

* ``met`` / ``not met`` — the value against the bound;
* ``not judged (noise)`` — a speed target on a run whose noise record
  (``benchmarks.noise.NoiseRecord``) says the machine was too busy: neither met nor missed,
  and a gate does not fail on it (it says so). Quality targets (fidelity) do not depend on
  load and are judged anyway;
* ``not measured`` — the run lacks what the target needs (a peer, batch 1, an eval report);
  ``detail`` says what to add. A gate that asked for it fails.

Targets of issue 12 (CPU; ``gan`` families: cdcgan, cmlp, cvae; ``cflow``) and of issue 24
(CUDA: fp16 against fp32). A target missed on a run with a profile (``benchmarks.reasons``)
carries the measured reason.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgegen.benchmarks.reasons import (
    Profile,
    batch1_reason,
    fp16_reason,
    int8_reason,
    throughput_reason,
)
from edgegen.benchmarks.results import BenchReport, BenchResult, Target, Verdict
from edgegen.core.errors import ConfigError

OURS = ("edgegen", "tuned")  # edgegen's ORT contenders (default settings, the --tune grid)
OPENVINO = ("openvino", "openvino-plain")


@dataclass(frozen=True)
class TargetSpec:
    name: str
    title: str
    measures: str
    bound: float
    unit: str  # "x" | "fraction" | "pp"
    comparison: str = ">="
    speed: bool = True  # a speed (judged only on a quiet run); False: quality (fidelity)
    needs: str = ""  # what the run must include, said when it is not measured

    def holds(self, value: float) -> bool:
        return value >= self.bound if self.comparison == ">=" else value <= self.bound


SPECS = {s.name: s for s in (
    TargetSpec("torch-throughput", "ORT fp32 best-batch img/s ≥ 1.5× PyTorch eager's best",
               "best img/s of edgegen's fp32 session over the batch sweep ÷ PyTorch eager's "
               "best", 1.5, "x", needs="--peers torch"),
    TargetSpec("openvino-throughput", "… ≥ 1.25× OpenVINO's best (either graph)",
               "best img/s of edgegen's fp32 session ÷ the best of OpenVINO on the bundle's "
               "graph and on the unrewritten export", 1.25, "x",
               needs="--peers openvino,openvino-plain (CPU, with OpenVINO installed)"),
    TargetSpec("efficiency", "achieved FLOP/s ÷ matmul yardstick ≥ 60%",
               "the best achieved GFLOP/s of edgegen's fp32 session ÷ the machine's dense fp32 "
               "matmul rate", 0.60, "fraction", needs="--matmul (and torch for the yardstick)"),
    TargetSpec("batch1-latency", "batch-1 p50 ≥ 5× faster than PyTorch eager",
               "PyTorch eager batch-1 p50 ÷ edgegen's fp32 batch-1 p50", 5.0, "x",
               needs="batch 1 in --batch and --peers torch"),
    TargetSpec("int8-throughput", "int8 img/s ÷ fp32 ≥ 1.5×",
               "best img/s of the int8 variant ÷ the fp32 variant's, both edgegen sessions",
               1.5, "x", needs="the int8 and fp32 variants (--precision fp32,int8)"),
    TargetSpec("int8-fidelity", "… at ≤ 0.5 pp fidelity loss (eval vs PyTorch)",
               "label fidelity of int8 minus PyTorch's, from `edgegen eval` (a loss is "
               "positive)", 0.5, "pp", comparison="<=", speed=False,
               needs="--eval-report (the --json of `edgegen eval`, with the int8 variant)"),
    TargetSpec("fp16-throughput", "fp16 img/s ÷ fp32 ≥ 1.3× (GPU, issue 24)",
               "best img/s of the fp16 variant ÷ the fp32 variant's on the same provider",
               1.3, "x", needs="the fp16 and fp32 variants (--precision fp32,fp16)"),
    TargetSpec("cflow-vs-plain", "cflow sampler ≥ 1.5× its plain ORT export",
               "best img/s of edgegen's fp32 sampler ÷ ONNX Runtime's on the export without "
               "graph rewrites", 1.5, "x", needs="--peers ort-plain"),
    TargetSpec("cflow-vs-openvino", "cflow sampler ≥ 1.25× OpenVINO's best",
               "best img/s of edgegen's fp32 sampler ÷ the best of OpenVINO on either graph",
               1.25, "x", needs="--peers openvino,openvino-plain (CPU, with OpenVINO)"),
)}
FAMILIES = {"gan": ("torch-throughput", "openvino-throughput", "efficiency", "batch1-latency",
                    "int8-throughput", "int8-fidelity", "fp16-throughput"),
            "cflow": ("cflow-vs-plain", "cflow-vs-openvino", "fp16-throughput")}
# What BENCHMARKS.md shows per family (the CPU targets of issue 12).
CPU_TARGETS = {"gan": FAMILIES["gan"][:-1], "cflow": FAMILIES["cflow"][:-1]}


def family_of(architecture: str | None) -> str:
    """``cflow`` for the iterative sampler, ``gan`` for every one-shot generator."""
    return "cflow" if architecture == "cflow" else "gan"


def judge(spec: TargetSpec, report: BenchReport, value: float | None, detail: str,
          reason: Callable[[], str] | None = None) -> Target:
    """The verdict on ``value``: noise first (for a speed), then the bound; ``reason`` is
    computed only for a target that is not met."""
    noise = report.noise
    verdict: Verdict
    if value is None:
        verdict = "not measured"
        detail = f"{detail} (needs {spec.needs})" if spec.needs else detail
    elif spec.speed and noise is not None and noise.noisy:
        verdict = "not judged (noise)"
    else:
        verdict = "met" if spec.holds(value) else "not met"
    return Target(spec.name, spec.title, spec.measures, spec.bound, spec.unit, spec.comparison,
                  value, detail, verdict,
                  reason=reason() if verdict == "not met" and reason is not None else None,
                  noise=tuple(noise.reasons) if verdict == "not judged (noise)" and noise
                  else ())


# --------------------------------------------------------------------------- reading a report
def best(rows: Iterable[BenchResult]) -> BenchResult | None:
    return max(rows, key=lambda r: r.latency.images_per_s, default=None)


def rows(report: BenchReport, contenders: tuple[str, ...], variant: str | None = None,
         batch: int | None = None) -> list[BenchResult]:
    return [r for c in contenders for r in report.find(c, variant, batch)]


def at(r: BenchResult) -> str:
    return f"{r.variant} {r.label}, {r.latency.images_per_s:,.0f} img/s at batch {r.batch}"


def _missing(report: BenchReport, *peers: str) -> str:
    why = [f"{p}: {report.unavailable[p]}" for p in peers if p in report.unavailable]
    return "not measured" + (f" ({'; '.join(why)})" if why else "")


def _ratio_target(name: str, report: BenchReport, ours: BenchResult | None,
                  peer: BenchResult | None, peer_names: tuple[str, ...],
                  reason: Callable[[], str]) -> Target:
    """``ours`` img/s ÷ ``peer`` img/s, both at their best batch."""
    if ours is None or peer is None:
        return judge(SPECS[name], report, None, _missing(report, *peer_names))
    x = ours.latency.images_per_s / peer.latency.images_per_s
    return judge(SPECS[name], report, x, f"{x:.2f}× ({at(ours)} vs {at(peer)})", reason)


# --------------------------------------------------------------------------- the targets
def _efficiency(report: BenchReport, prof: Profile | None) -> Target:
    eff = [r for r in rows(report, OURS, "fp32") if r.matmul_fraction is not None]
    if not eff or report.matmul is None:
        return judge(SPECS["efficiency"], report, None, "no matmul yardstick or no FLOP count")
    e = max(eff, key=lambda r: r.matmul_fraction or 0.0)
    assert e.matmul_fraction is not None and e.achieved_gflops is not None
    return judge(SPECS["efficiency"], report, e.matmul_fraction,
                 f"{e.matmul_fraction:.1%} ({e.achieved_gflops:.1f} of "
                 f"{report.matmul.gflops:.0f} GFLOP/s; {e.label}, batch {e.batch})",
                 lambda: throughput_reason(report, prof))


def _batch1(report: BenchReport, prof: Profile | None) -> Target:
    b1 = [r for r in rows(report, OURS, "fp32", 1) if r.speedup_p50 is not None]
    torch1 = report.find("torch", batch=1)
    if not b1 or not torch1:
        return judge(SPECS["batch1-latency"], report, None, _missing(report, "torch"))
    ours = max(b1, key=lambda r: r.speedup_p50 or 0.0)
    assert ours.speedup_p50 is not None
    return judge(SPECS["batch1-latency"], report, ours.speedup_p50,
                 f"{ours.speedup_p50:.2f}× ({ours.label} {ours.latency.p50_ms:.3f} ms vs torch "
                 f"{torch1[0].latency.p50_ms:.3f} ms)", lambda: batch1_reason(ours, prof))


def _int8(report: BenchReport, deltas: dict[str, FidelityDelta] | None,
          prof: Profile | None) -> list[Target]:
    int8, fp32 = best(report.find("edgegen", "int8")), best(report.find("edgegen", "fp32"))
    speed = _ratio_target("int8-throughput", report, int8, fp32, (),
                          lambda: int8_reason(report, prof))
    d = (deltas or {}).get("int8")
    if d is None:
        fid = judge(SPECS["int8-fidelity"], report, None,
                    "no eval report" if deltas is None else "the eval report has no int8 "
                    "variant compared with PyTorch")
    else:
        fid = judge(SPECS["int8-fidelity"], report, -d.delta_pp,
                    f"{d.delta_pp:+.2f} pp vs {d.reference} (McNemar p={d.p_value:.2g})",
                    lambda: "int8 is judged by fidelity on the evaluator; see the eval report's "
                            "per-digit table")
    return [speed, fid]


def _fp16(report: BenchReport, prof: Profile | None) -> Target:
    return _ratio_target("fp16-throughput", report, best(report.find("edgegen", "fp16")),
                         best(report.find("edgegen", "fp32")), (),
                         lambda: fp16_reason(report, prof))


def compute(report: BenchReport, *, deltas: dict[str, FidelityDelta] | None = None,
            profile: Profile | None = None, family: str | None = None) -> dict[str, Target]:
    """Every target of the report's family (``report.architecture``, or ``family``), by name."""
    fam = family or family_of(report.architecture)
    ours = best(rows(report, OURS, "fp32"))
    out: list[Target]
    if fam == "cflow":
        out = [_ratio_target("cflow-vs-plain", report, ours, best(report.find("ort-plain")),
                             ("ort-plain",), lambda: throughput_reason(report, profile,
                                                                       "ort-plain")),
               _ratio_target("cflow-vs-openvino", report, ours,
                             best(rows(report, OPENVINO)), OPENVINO,
                             lambda: throughput_reason(report, profile, "openvino"))]
    else:
        out = [_ratio_target("torch-throughput", report, ours, best(report.find("torch")),
                             ("torch",), lambda: throughput_reason(report, profile)),
               _ratio_target("openvino-throughput", report, ours,
                             best(rows(report, OPENVINO)), OPENVINO,
                             lambda: throughput_reason(report, profile, "openvino")),
               _efficiency(report, profile), _batch1(report, profile),
               *_int8(report, deltas, profile)]
    out.append(_fp16(report, profile))
    return {t.name: t for t in out}


def gan_targets(report: BenchReport, deltas: dict[str, FidelityDelta] | None = None,
                profile: Profile | None = None) -> list[Target]:
    """The CPU targets of issue 12 for a one-shot generator (cdcgan, cmlp, cvae)."""
    every = compute(report, deltas=deltas, profile=profile, family="gan")
    return [every[n] for n in CPU_TARGETS["gan"]]


def cflow_targets(report: BenchReport, profile: Profile | None = None) -> list[Target]:
    """The CPU targets of issue 12 for the iterative sampler (cflow)."""
    every = compute(report, profile=profile, family="cflow")
    return [every[n] for n in CPU_TARGETS["cflow"]]


def select(names: Iterable[str], architecture: str | None, provider: str = "cpu"
           ) -> tuple[str, ...]:
    """``--target`` names checked against the bundle's family; ``all``: every target of the
    family for this provider (on CPU issue 12's, on a GPU issue 24's fp16 target)."""
    fam = family_of(architecture)
    names = tuple(dict.fromkeys(n.strip().lower() for n in names if n.strip()))
    if "all" in names:
        return CPU_TARGETS[fam] if provider in ("cpu", "openvino") else ("fp16-throughput",)
    unknown = [n for n in names if n not in SPECS]
    if unknown:
        raise ConfigError(f"unknown target {', '.join(unknown)}; expected a comma-separated "
                          f"list of {', '.join(FAMILIES[fam])} (the {fam} family's), or all")
    other = [n for n in names if n not in FAMILIES[fam]]
    if other:
        raise ConfigError(f"target {', '.join(other)} is not one of the {fam} family's "
                          f"({architecture or 'this bundle'}): {', '.join(FAMILIES[fam])}")
    return names


def gate(report: BenchReport, names: tuple[str, ...]) -> list[Target]:
    """The targets ``names`` (from ``select``) judged on a finished run; the eval report of
    ``--eval-report`` gives the fidelity targets their numbers."""
    path = report.config.get("eval_report")
    every = compute(report, deltas=fidelity_deltas(path) if path else None)
    return [every[n] for n in names]


# --------------------------------------------------------------------------- eval reports
@dataclass(frozen=True)
class FidelityDelta:
    """A variant's label fidelity against the reference's (``edgegen eval``'s vs_reference)."""

    reference: str
    delta_pp: float  # this fidelity minus the reference's, percentage points
    p_value: float  # McNemar's exact test on the paired samples


def fidelity_deltas(path: str | Path) -> dict[str, FidelityDelta]:
    """Per variant, its fidelity change against PyTorch from an ``edgegen eval --json``."""
    try:
        data: Any = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"--eval-report {path} is not a readable JSON report ({exc}); pass "
                          "the --json output of `edgegen eval`") from exc
    out: dict[str, FidelityDelta] = {}
    for v in data.get("variants", []) if isinstance(data, dict) else []:
        vs = v.get("vs_reference") if isinstance(v, dict) else None
        if isinstance(vs, dict) and "delta_pp" in vs and "p_value" in vs:
            out[str(v.get("name"))] = FidelityDelta(str(vs.get("reference", "reference")),
                                                    float(vs["delta_pp"]),
                                                    float(vs["p_value"]))
    return out
