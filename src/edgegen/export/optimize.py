"""Apply ``export.rewrite``'s passes to an exported graph, keep each one only when it is exact,
and measure what they bought.

``optimize_model(src, dst, cases, OptimizeConfig) -> dict`` (the manifest's
``generator.optimization`` section). For every pass in ``rewrite.REWRITES``, in order:

1. apply it to a copy of the current graph (a pass that finds no supported pattern is listed
   under ``not_applied`` with that reason);
2. ``onnx.checker`` (full, with shape inference) must pass;
3. ONNX Runtime (CPU provider, default optimizations: the deployment path) runs the graph before
   and after the pass on every check case; every output element must satisfy
   ``|after - before| <= atol + rtol * |before|`` — the tolerance ``edgegen verify`` holds fp32
   on CPU to, so a rewritten bundle still passes verify. A pass that misses is dropped and listed
   under ``dropped`` with its measured error; the graph before it is kept.

Then the final graph is compared with the unrewritten one and, for cases that carry expected
outputs (the bundle's goldens, PyTorch float32), with those expected outputs under the same
rule; when the unrewritten graph meets a golden and the rewritten one does not, every rewrite is
undone (``reverted``) and the export ships the exporter's graph. Finally both graphs are timed,
interleaved, at a few batch sizes on this machine (``effect``): a record of what the rewrites did
where the export ran, not a benchmark (``edgegen bench`` is).

ONNX Runtime's own offline optimization is not shipped in the generator's place: saved at the
``extended``/``all`` levels the graph holds ``com.microsoft`` ops (FusedConv, NchwcConv with an
AVX2 or AVX-512 block size baked in) that only ONNX Runtime's CPU provider on a like CPU runs,
and it only saves session-creation time (measured here: 58 vs 78 ms for the rewritten cdcgan;
the same kernels run either way). ``variants.make_optimized`` ships the provider-independent
``basic`` level as ``model.opt.onnx`` when it shrinks the graph.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgegen.core.errors import ConfigError
from edgegen.export.rewrite import FORMS, REWRITES, Site


@dataclass(frozen=True)
class OptimizeConfig:
    enabled: bool = True  # False: ``--no-optimize``, the exporter's graph ships as it is
    form: str = "auto"  # phase-conv layout: auto | phases | fused (see export.rewrite)
    atol: float = 1e-5  # verify's fp32-on-CPU tolerance: a rewritten bundle still passes it
    rtol: float = 1e-5
    timing_s: float = 0.3  # timed seconds per graph and batch for ``effect``; 0: not timed
    timing_batches: tuple[int, ...] = (1, 64)

    def validate(self) -> None:
        if self.form not in FORMS:
            raise ConfigError(f"unknown rewrite form {self.form!r}; expected one of "
                              f"{', '.join(FORMS)}")
        if not (self.atol >= 0 and self.rtol >= 0 and self.timing_s >= 0):
            raise ConfigError("optimization tolerances and timing must be >= 0")


@dataclass(frozen=True)
class Case:
    """Inputs of one check run, with the expected output when one is known (a golden)."""

    name: str
    feeds: dict[str, np.ndarray]
    expected: np.ndarray | None = None


def optimize_model(src: Path, dst: Path, cases: list[Case], cfg: OptimizeConfig
                   ) -> dict[str, Any]:
    """Rewrite ``src`` into ``dst`` (see the module docstring); returns the manifest section."""
    import onnx

    cfg.validate()
    tolerance = {"atol": cfg.atol, "rtol": cfg.rtol,
                 "rule": "every output element: |after - before| <= atol + rtol * |before|, "
                         "ONNX Runtime CPU, on every check case"}
    original = onnx.load(str(src))
    if not cfg.enabled:
        onnx.save(original, str(dst))
        return {"enabled": False, "applied": [], "tolerance": tolerance,
                "note": "--no-optimize: the exporter's graph is shipped unrewritten"}
    runs = {"before": _outputs(original, cases)}
    current, applied, not_applied, dropped = original, [], [], []
    for rw in REWRITES:
        candidate = onnx.ModelProto()
        candidate.CopyFrom(current)
        sites: list[Site] = rw.apply(candidate, cfg.form)
        if not sites:
            not_applied.append({"name": rw.name, "reason": "no supported pattern in the graph"})
            continue
        try:
            onnx.checker.check_model(candidate, full_check=True)
        except Exception as exc:  # noqa: BLE001 - onnx raises ValidationError and others
            dropped.append({"name": rw.name, "reason": f"onnx.checker: {exc}"[:300]})
            continue
        after = _outputs(candidate, cases)
        err = _worst(after, runs.get("current", runs["before"]), cfg)
        if err["out_of_tolerance"]:
            dropped.append({"name": rw.name, "reason": "not exact within the tolerance",
                            **err})
            continue
        current, runs["current"] = candidate, after
        applied.append({"name": rw.name, "what": rw.what,
                        "sites": [{"nodes": s.nodes, "pattern": s.pattern, "form": s.form,
                                   **s.detail} for s in sites], **err})
    out: dict[str, Any] = {"enabled": True, "form": cfg.form, "tolerance": tolerance,
                           "applied": applied, "not_applied": not_applied, "dropped": dropped,
                           "check_cases": [{"name": c.name, "batch": _batch(c)} for c in cases]}
    if applied:
        final = runs["current"]
        out["vs_unrewritten"] = _worst(final, runs["before"], cfg)
        golden = _golden(final, runs["before"], cases, cfg)
        out["vs_golden"] = golden
        if golden["rewritten_misses"] and not golden["unrewritten_misses"]:
            out["reverted"] = ("the rewritten graph missed golden outputs the exporter's graph "
                               f"meets ({golden['rewritten_misses']}); shipping the exporter's "
                               "graph")
            out["applied"], current = [], original
        elif cfg.timing_s > 0:
            out["effect"] = measure_effect(original, current, cases, cfg)
    onnx.save(current, str(dst))
    out["nodes"] = {"before": len(original.graph.node), "after": len(current.graph.node)}
    return out


def _batch(case: Case) -> int:
    return int(next(iter(case.feeds.values())).shape[0])


def _session(model: Any) -> Any:
    from edgegen.runtime.providers import ProviderSpec, make_session

    return make_session(model.SerializeToString(), ProviderSpec("cpu"))


def _outputs(model: Any, cases: list[Case]) -> list[np.ndarray]:
    session = _session(model)
    return [session.run(None, c.feeds)[0] for c in cases]


def _worst(got: list[np.ndarray], ref: list[np.ndarray], cfg: OptimizeConfig) -> dict[str, Any]:
    """Largest |Δ| and elements out of tolerance over every case."""
    worst, bad, elements = 0.0, 0, 0
    for g, r in zip(got, ref):
        if g.shape != r.shape:
            return {"max_abs": float("inf"), "out_of_tolerance": int(r.size), "elements":
                    int(r.size), "shape_mismatch": [list(g.shape), list(r.shape)]}
        d = np.abs(g.astype(np.float64) - r.astype(np.float64))
        worst = max(worst, float(np.nanmax(d)) if d.size else 0.0)
        bad += int(np.count_nonzero(~(d <= cfg.atol + cfg.rtol * np.abs(r))))
        elements += int(r.size)
    return {"max_abs": worst, "out_of_tolerance": bad, "elements": elements}


def _golden(final: list[np.ndarray], before: list[np.ndarray], cases: list[Case],
            cfg: OptimizeConfig) -> dict[str, Any]:
    idx = [i for i, c in enumerate(cases) if c.expected is not None]
    exp = [cases[i].expected for i in idx]
    new = _worst([final[i] for i in idx], exp, cfg)  # type: ignore[misc]
    old = _worst([before[i] for i in idx], exp, cfg)  # type: ignore[misc]
    return {"cases": len(idx), "rewritten_max_abs": new["max_abs"],
            "unrewritten_max_abs": old["max_abs"],
            "rewritten_misses": new["out_of_tolerance"],
            "unrewritten_misses": old["out_of_tolerance"]}


def measure_effect(before: Any, after: Any, cases: list[Case], cfg: OptimizeConfig
                   ) -> dict[str, Any]:
    """p50 latency of both graphs per batch size, timed in alternating short blocks so that the
    load of other processes falls on both alike (the ratio is what to read)."""
    template = cases[0].feeds
    sessions = {"unrewritten": _session(before), "rewritten": _session(after)}
    out: dict[str, Any] = {"load_average_before": _load(), "threads": "ONNX Runtime default",
                           "per_batch": {}}
    for b in cfg.timing_batches:
        feeds = {k: np.resize(v, (b, *v.shape[1:])) for k, v in template.items()}
        times: dict[str, list[int]] = {k: [] for k in sessions}
        for s in sessions.values():
            s.run(None, feeds)  # lazy initialisation outside the timed region
        blocks = 6
        for r in range(blocks):
            for name in (list(sessions) if r % 2 == 0 else list(sessions)[::-1]):
                deadline = time.perf_counter() + cfg.timing_s / blocks
                while True:
                    t0 = time.perf_counter_ns()
                    sessions[name].run(None, feeds)
                    times[name].append(time.perf_counter_ns() - t0)
                    if time.perf_counter() >= deadline:
                        break
        p50 = {k: float(np.median(v)) / 1e6 for k, v in times.items()}
        out["per_batch"][str(b)] = {"unrewritten_p50_ms": p50["unrewritten"],
                                    "rewritten_p50_ms": p50["rewritten"],
                                    "speedup": p50["unrewritten"] / p50["rewritten"],
                                    "calls": {k: len(v) for k, v in times.items()}}
    out["load_average_after"] = _load()
    out["note"] = ("measured at export on the exporting machine, interleaved; `edgegen bench` "
                   "measures speed properly")
    return out


def _load() -> list[float] | None:
    return [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None
