"""``compare(CompareConfig) -> CompareReport``: the family table — every bundle measured the same
way, side by side.

For each bundle (any family: a one-pass GAN or VAE decoder, or a multi-step sampler unrolled into
``model.onnx``, the code does not care which) it reads from the graph the parameters (the
floating-point initializers, so weights shared by the unrolled steps count once) and the dense
FLOPs per image (``flops.count_flops``); from the manifest's provenance the training time; it
runs the quality stage (``quality.evaluate.evaluate``: fidelity by the evaluator and by the
independent referee, FID beside its floor, diversity against the real digits) on the deployed
fp32 model, and the bench stage (``bench.bench``, no peers) for images/s at the best batch and
the batch-1 latency. Every bundle sees the same latents, the same real digits and the same
referee; the evaluator is each bundle's own ``evaluator.onnx`` (a warning says when they differ).
Network calls per image come from the manifest's sampler (1 for a one-pass family).

With ``teacher`` (``--teacher BUNDLE``, added as the first row when it is not among the bundles)
every student that shares its generator contract and evaluator file also gets its agreement
with the teacher: the quality stage's own teacher/student measurement
(``quality.teacher.vs_teacher`` through ``evaluate(EvalConfig(teacher=...))``), never a copy. A
bundle that cannot be paired (another z_dim, other labels, another evaluator) is a peer: its
agreement cell says so, with the reason among the warnings.

``cfg.out`` receives ``report.md`` and ``report.json`` (each written atomically) and one eval
report folder per bundle (its sample grid shows what the numbers mean).
"""

from __future__ import annotations

import shlex
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgegen.benchmarks.bench import bench
from edgegen.benchmarks.machine import machine_info
from edgegen.benchmarks.results import BenchConfig
from edgegen.core.errors import BundleError, CheckpointError, ConfigError
from edgegen.core.progress import ProgressFn, Reporter
from edgegen.core.report import Report
from edgegen.quality.eval_report import md_table
from edgegen.quality.evaluate import evaluate
from edgegen.quality.flops import count_params
from edgegen.quality.results import EvalConfig
from edgegen.quality.sizing import SampleSizer
from edgegen.quality.teacher import generator_cost, pairing_problem
from edgegen.runtime.bundle import Bundle, load_bundle
from edgegen.runtime.fileio import atomic_write_text, sha256_file
from edgegen.training.checkpoint import bundle_checkpoint, read_info

E, B = EvalConfig(), BenchConfig()

COLUMNS = ("family", "params", "calls/image", "MFLOP/image", "training min",
           "fidelity (evaluator / referee)", "FID (floor)", "diversity feat / pix (worst label)",
           "CPU img/s (best batch)", "batch-1 ms")
AGREEMENT = "agreement with teacher (95% CI)"  # the last column, with --teacher


@dataclass(frozen=True)
class CompareConfig:
    """Every default of ``edgegen compare``; the CLI reuses them."""

    bundles: tuple[Path, ...] = ()
    out: Path | None = Path("reports/compare")  # None: compute only, write nothing
    # per bundle, fp32 ONNX, labels balanced; None: sized by the confidence interval (eval's
    # rule: rounds until every fidelity / agreement Wilson half-width <= ci_half_width)
    samples: int | None = E.samples
    ci_half_width: float = E.ci_half_width
    min_samples: int = E.min_samples
    max_samples: int = E.max_samples
    teacher: Path | None = None  # agreement of every pairable student with this bundle
    seed: int = E.seed  # the portable latents every bundle draws
    data_dir: Path | None = None  # the real digits of FID, diversity and the referee
    provider: str = "cpu"  # where the generators run (evaluation and timing)
    batches: tuple[int, ...] = B.batches
    duration_s: float = B.duration_s  # timed seconds per batch size
    rounds: int = B.rounds
    threads: int = B.threads  # 0: the usable cores
    batch: int = E.batch  # generation batch of the quality measurement
    command: str | None = None


@dataclass
class FamilyRow:
    """One bundle's line of the table, and the numbers behind it."""

    bundle: str
    family: str  # manifest generator.architecture, with its sampler settings when it has any
    params: int
    calls_per_image: int
    mflop_per_image: float
    training: dict[str, Any]  # minutes, steps, epochs, device, source
    fidelity: float
    fidelity_ci95: tuple[float, float]
    referee_fidelity: float
    fid: float
    fid_floor: float
    diversity_feature: float
    diversity_pixel: float
    diversity_worst: float
    diversity_worst_label: int
    collapsed: list[int]
    best_images_per_s: float
    best_batch: int
    batch1_ms: float | None  # p50 at batch 1 (None when batch 1 was not timed)
    bench: list[dict[str, Any]]  # per batch: p50/p99 ms and images/s
    evaluator_sha256: str
    eval_report: str | None  # relative to the compare folder
    samples: int = 0  # what the quality measurement drew (sized or fixed)
    role: str = ""  # "teacher", "student" (paired with the teacher), "peer" (not pairable)
    agreement: dict[str, Any] | None = None  # a student's: value, ci95, samples

    def agreement_cell(self) -> str:
        if self.role == "teacher":
            return "teacher"
        if self.agreement is None:
            return "— (not pairable)"
        lo, hi = self.agreement["ci95"]
        return f"{self.agreement['value']:.2%} ({100 * lo:.1f}–{100 * hi:.1f}%)"

    def cells(self, with_teacher: bool = False) -> list[str]:
        t = self.training.get("minutes")
        params = f"{self.params / 1e6:.2f} M" if self.params >= 100_000 else f"{self.params:,}"
        collapsed = f" COLLAPSED {','.join(map(str, self.collapsed))}" if self.collapsed else ""
        cells = [
            self.family, params, str(self.calls_per_image), f"{self.mflop_per_image:.2f}",
            "—" if t is None else f"{t:.1f}",
            f"{self.fidelity:.2%} / {self.referee_fidelity:.2%}",
            f"{self.fid:.2f} ({self.fid_floor:.2f})",
            f"{self.diversity_feature:.2f} / {self.diversity_pixel:.2f} "
            f"({self.diversity_worst:.2f}){collapsed}",
            f"{self.best_images_per_s:,.0f} ({self.best_batch})",
            "—" if self.batch1_ms is None else f"{self.batch1_ms:.3f}",
        ]
        return [*cells, self.agreement_cell()] if with_teacher else cells


@dataclass
class CompareReport(Report):
    rows: list[FamilyRow]
    samples: int
    seed: int
    provider: str
    data: dict[str, Any]
    machine: dict[str, Any]
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    files: dict[str, str] = field(default_factory=dict)
    command: str = ""
    elapsed_s: float = 0.0
    teacher: str | None = None

    @property
    def passed(self) -> bool:  # a table, not a gate: it passes when every bundle was measured
        return bool(self.rows)

    def columns(self) -> tuple[str, ...]:
        return (*COLUMNS, AGREEMENT) if self.teacher else COLUMNS

    def table(self) -> list[list[str]]:
        return [r.cells(self.teacher is not None) for r in self.rows]


# --------------------------------------------------------------------------- checks

def validate(cfg: CompareConfig) -> list[Bundle]:
    """Refuse what cannot give a table before anything slow runs; return the loaded bundles."""
    if not cfg.bundles:
        raise ConfigError("compare needs at least one bundle folder (made by `edgegen export`), "
                          "e.g. `edgegen compare bundles/cdcgan bundles/cmlp`")
    if cfg.samples is not None and cfg.samples < 20:
        raise ConfigError(f"--samples must be at least 20 (2 per label for diversity), got "
                          f"{cfg.samples}")
    if not cfg.duration_s > 0 or cfg.rounds < 1:
        raise ConfigError(f"--duration must be positive (got {cfg.duration_s}) and rounds at "
                          f"least 1 (got {cfg.rounds})")
    if not cfg.batches or any(b < 1 for b in cfg.batches):
        raise ConfigError(f"--batch needs positive batch sizes, got {list(cfg.batches)}")
    if cfg.samples is None:  # the CI options, before anything slow (the classes: any)
        SampleSizer.for_ci(cfg.ci_half_width, cfg.min_samples, cfg.max_samples, 1)
    if cfg.out is not None:
        writable_folder(Path(cfg.out))
    paths = list(cfg.bundles)
    if cfg.teacher is not None and not any(_same_path(p, cfg.teacher) for p in paths):
        paths.insert(0, cfg.teacher)  # the teacher's own row comes first
    bundles = []
    for path in paths:
        b = load_bundle(path)  # schema, paths and every sha256: a BundleError (exit 2)
        if "fp32" not in b.variants:
            raise BundleError(f"{path} has no fp32 variant (it has {', '.join(b.variants)}); "
                              "the table compares the fp32 models — re-export with fp32")
        if b.evaluator_path is None:
            raise BundleError(f"{path} has no evaluator.onnx, the judge of fidelity; re-export "
                              "with `edgegen export RUN --evaluator runs/evaluator`")
        bundles.append(b)
    names = [_name(b) for b in bundles]
    if len(set(names)) != len(names):
        raise ConfigError(f"two bundles share a folder name ({', '.join(names)}); their eval "
                          "reports would overwrite each other — give the folders distinct names")
    return bundles


def _same_path(a: Path, b: Path) -> bool:
    return Path(a).expanduser().resolve() == Path(b).expanduser().resolve()


def roles(bundles: list[Bundle], cfg: CompareConfig) -> tuple[dict[str, str], list[str]]:
    """Each bundle's role with ``--teacher`` (teacher, student or peer) and, for a peer, why
    it cannot be paired with the teacher — known before anything slow runs."""
    if cfg.teacher is None:
        return {}, []
    teacher = next(b for b in bundles if _same_path(b.root, cfg.teacher))
    out, warnings = {}, []
    for b in bundles:
        if b is teacher:
            out[_name(b)] = "teacher"
            continue
        problem = pairing_problem(b, teacher)
        out[_name(b)] = "peer" if problem else "student"
        if problem:
            warnings.append(f"{_name(b)}: no agreement with the teacher — {problem}")
    return out, warnings


def writable_folder(out: Path) -> None:
    """``out`` is, or can become, a folder: no part of it is an existing file."""
    for p in (out, *out.parents):
        if p.exists():
            if not p.is_dir():
                raise ConfigError(f"--out {out}: {p} is a file, not a folder; pick an --out "
                                  "whose parents are folders")
            return


# --------------------------------------------------------------------------- measurements

def _name(bundle: Bundle) -> str:
    return bundle.root.resolve().name


def family_name(bundle: Bundle) -> str:
    """The architecture, plus the sampler settings an iterative family's manifest records (its
    ``sampler`` section: steps, guidance)."""
    g = bundle.manifest["generator"]
    arch = str(g.get("architecture", "?"))
    sampler = bundle.manifest.get("sampler")
    sampler = sampler if isinstance(sampler, dict) else {}
    extra = [f"{k} {sampler[k]:g}" if isinstance(sampler[k], (int, float)) else
             f"{k} {sampler[k]}" for k in ("steps", "guidance") if k in sampler]
    return f"{arch} ({', '.join(extra)})" if extra else arch


def training_time(bundle: Bundle) -> dict[str, Any]:
    """Training wall time from the manifest's provenance (recorded at export), else from the
    checkpoint the bundle names when it is still there; ``minutes`` None when neither knows."""
    prov = bundle.manifest.get("provenance", {})
    t = prov.get("training")
    if isinstance(t, dict) and t.get("elapsed_s") is not None:
        return {**t, "minutes": float(t["elapsed_s"]) / 60.0, "source": "manifest provenance"}
    ckpt, why = bundle_checkpoint(bundle)
    if ckpt is not None:
        try:
            info = read_info(ckpt)
        except CheckpointError as exc:
            return {"minutes": None, "source": str(exc)}
        if info.get("elapsed_s") is not None:
            return {"elapsed_s": info["elapsed_s"], "minutes": float(info["elapsed_s"]) / 60.0,
                    "steps": info.get("step"), "epochs": info.get("epoch"),
                    "device": info.get("train", {}).get("device"),
                    "source": f"checkpoint {ckpt}"}
    return {"minutes": None, "source": why or "the checkpoint records no training time"}


def _bench_block(bundle: Bundle, cfg: CompareConfig) -> tuple[list[dict[str, Any]], list[str]]:
    rep = bench(BenchConfig(bundle=bundle.root, provider=cfg.provider, precisions=("fp32",),
                            batches=cfg.batches, peers=(), threads=cfg.threads,
                            duration_s=cfg.duration_s, rounds=cfg.rounds, measure_matmul=False,
                            command=cfg.command))
    rows = [{"batch": r.batch, "p50_ms": r.latency.p50_ms, "p99_ms": r.latency.p99_ms,
             "images_per_s": r.latency.images_per_s, "provider": r.label}
            for r in rep.find("edgegen", "fp32")]
    return rows, [f"bench {k}: {v}" for k, v in rep.failures.items()]


def measure(bundle: Bundle, cfg: CompareConfig, report: Reporter, role: str = ""
            ) -> tuple[FamilyRow, list[str]]:
    """One bundle's row (and its warnings); a ``student`` also against ``cfg.teacher``."""
    name = _name(bundle)
    emit = report.say
    model = bundle.variant_path("fp32")
    emit(f"{name}: counting parameters and FLOPs of {model.name}")
    cost = generator_cost(bundle)
    warnings = [f"{name}: FLOPs of {', '.join(cost['flops_not_counted'])} not counted (shapes "
                "unknown)"] if cost["flops_not_counted"] else []
    count = "sized by the confidence interval" if cfg.samples is None else \
        f"{cfg.samples:,} samples"
    emit(f"{name}: label fidelity, FID and diversity ({count}, fp32)"
         + (" and agreement with the teacher" if role == "student" else ""))
    eval_out = Path(cfg.out) / name if cfg.out is not None else None
    q = evaluate(EvalConfig(bundle=bundle.root, samples=cfg.samples,
                            ci_half_width=cfg.ci_half_width, min_samples=cfg.min_samples,
                            max_samples=cfg.max_samples, provider=cfg.provider,
                            precisions=("fp32",), torch=False, seed=cfg.seed, truncation=(),
                            guard=False, batch=cfg.batch, out=eval_out, data_dir=cfg.data_dir,
                            teacher=cfg.teacher if role == "student" else None),
                 report.prefixed(name))
    v = q.variant("fp32")
    warnings += [f"{name}: {w}" for w in q.warnings]
    emit(f"{name}: timing fp32 at batch {', '.join(map(str, cfg.batches))}")
    timing, failures = _bench_block(bundle, cfg)
    warnings += [f"{name}: {f}" for f in failures]
    if not timing:
        raise ConfigError(f"{name}: no batch size could be timed ({'; '.join(failures)})")
    best = max(timing, key=lambda r: r["images_per_s"])
    b1 = next((r["p50_ms"] for r in timing if r["batch"] == 1), None)
    d = v.diversity
    row = FamilyRow(
        bundle=str(bundle.root), family=family_name(bundle), params=count_params(model),
        calls_per_image=cost["calls_per_image"], mflop_per_image=cost["mflop_per_image"],
        training=training_time(bundle),
        fidelity=v.fidelity, fidelity_ci95=v.ci95, referee_fidelity=v.referee["fidelity"],
        fid=v.fid["value"], fid_floor=v.fid["floor"], diversity_feature=d["feature"]["ratio"],
        diversity_pixel=d["pixel"]["ratio"], diversity_worst=d["worst_ratio"],
        diversity_worst_label=d["worst_label"], collapsed=list(d["collapsed"]),
        best_images_per_s=best["images_per_s"], best_batch=best["batch"], batch1_ms=b1,
        bench=timing, evaluator_sha256=sha256_file(bundle.evaluator_path),
        eval_report=f"{name}/report.md" if eval_out is not None else None, samples=q.samples,
        role=role, agreement=(v.vs_teacher or {}).get("agreement"))
    return row, warnings


# --------------------------------------------------------------------------- the stage

def compare(cfg: CompareConfig, on_progress: ProgressFn | None = None) -> CompareReport:
    """Measure every bundle of ``cfg`` the same way; write the report when ``cfg.out``."""
    report = Reporter("compare", on_progress)
    emit = report.say
    t0 = time.perf_counter()
    bundles = validate(cfg)
    role, warnings = roles(bundles, cfg)
    load_before = machine_info()["load_average"]
    rows = []
    for b in bundles:
        row, w = measure(b, cfg, report, role.get(_name(b), ""))
        rows.append(row)
        warnings += w
    judges = {r.evaluator_sha256 for r in rows}
    if len(judges) > 1:
        warnings.append("the bundles carry different evaluators (evaluator.onnx differs): each "
                        "fidelity is judged by its own bundle's evaluator; the referee column is "
                        "the common judge — export every bundle with the same --evaluator")
    untimed = [r.family for r in rows if r.training.get("minutes") is None]
    notes = [f"training minutes unknown for {', '.join(untimed)}: neither the manifest nor a "
             "reachable checkpoint records them"] if untimed else []
    report = CompareReport(
        rows=rows, samples=max(r.samples for r in rows), seed=cfg.seed, provider=cfg.provider,
        teacher=str(cfg.teacher) if cfg.teacher is not None else None,
        data=_data_of(cfg), machine={**machine_info(), "load_average_before": load_before},
        warnings=warnings, notes=notes,
        command=cfg.command or shlex.join([Path(sys.argv[0]).name, *sys.argv[1:]]))
    report.elapsed_s = round(time.perf_counter() - t0, 1)
    if cfg.out is not None:
        write(report, Path(cfg.out))
        emit(f"report written to {cfg.out}")
    return report


def _data_of(cfg: CompareConfig) -> dict[str, Any]:
    from edgegen.training.data import load_mnist

    return load_mnist(cfg.data_dir).provenance()


# --------------------------------------------------------------------------- the report

def markdown(r: CompareReport) -> str:
    load = r.machine.get("load_average")
    parts = [
        "# edgegen compare — the family table\n\n",
        f"{len(r.rows)} bundles · {_counts(r)} (fp32 ONNX on `{r.provider}`, "
        f"labels balanced, portable latents seed {r.seed}) · real digits: "
        f"{r.data.get('source')} at `{r.data.get('location')}` ({r.data.get('heldout'):,} "
        f"held-out) · load average {_load(r.machine.get('load_average_before'))} before, "
        f"{_load(load)} after · {r.elapsed_s:.0f} s\n\n",
        f"Command: `{r.command}`\n\n",
    ]
    parts += [f"> **warning:** {w}\n\n" for w in r.warnings]
    parts += [md_table(r.columns(), r.table()), "\n", LEGEND]
    if r.teacher:
        parts.append(TEACHER_LEGEND.format(teacher=r.teacher))
    parts += ["\n## Per bundle\n\n"]
    for row in r.rows:
        t = row.training
        took = "unknown" if t.get("minutes") is None else f"{t['minutes']:.1f} min"
        steps = "" if t.get("steps") is None else f", {t['steps']:,} steps"
        speed = ", ".join(f"batch {b['batch']}: {b['images_per_s']:,.0f} img/s "
                          f"(p50 {b['p50_ms']:.3f} ms)" for b in row.bench)
        parts.append(
            f"- **{row.family}** — `{row.bundle}`: {row.samples:,} samples, fidelity 95% CI "
            f"{100 * row.fidelity_ci95[0]:.1f}–{100 * row.fidelity_ci95[1]:.1f}%; worst "
            f"diversity label {row.diversity_worst_label}; training {took}{steps} "
            f"({t.get('source')}); {speed}"
            + (f"; [eval report]({row.eval_report}), ![samples]"
               f"({Path(row.eval_report).parent.as_posix()}/samples_fp32.png)"
               if row.eval_report else "") + "\n")
    parts += [f"\nnote: {n}\n" for n in r.notes]
    return "".join(parts)


LEGEND = """
- **params**: floating-point initializers of `model.onnx` (weights shared by unrolled sampler
  steps count once). **MFLOP/image**: dense ops of the graph (Gemm, MatMul, Conv, ConvTranspose;
  2 FLOPs per multiply-add) — for a sampler, all its steps.
- **training min**: wall time of `edgegen train` as recorded in the run (summed over resumes),
  on the machine that trained it.
- **fidelity**: share of samples the bundle's evaluator (CNN, real digits only) calls the asked
  digit, and the same share by the independent referee (k-NN on PCA of real pixels).
- **FID**: in the evaluator's features against held-out real digits, beside the real-vs-real
  floor at the same sample counts. **diversity**: mean pairwise distance within a label,
  generated / real, in the evaluator's features and in pixels (1 = as varied as real digits;
  a collapsed label is near 0), and the worst label (the lower of the two spaces).
- **calls/image**: network evaluations per image (a sampler's steps, two per step with
  guidance; 1 for a one-pass family).
- **CPU img/s**: ONNX Runtime, fp32, the best of the timed batch sizes; **batch-1 ms**: p50.
  Speed is measured on this machine at this load; compare rows of one report only.
"""


TEACHER_LEGEND = """- **agreement with teacher**: for the same portable latents and labels, the
  share of samples for which the evaluator names the same digit on the student's image and on the
  teacher's (`{teacher}`), Wilson 95% interval; the pixel and feature distances are in each
  student's eval report. A peer (another z_dim, other labels, or another evaluator file) cannot
  be paired.
"""


def _counts(r: CompareReport) -> str:
    """The sample counts of the quality measurement (per bundle when sized by the CI)."""
    counts = sorted({row.samples for row in r.rows})
    if len(counts) == 1:
        return f"{counts[0]:,} samples each"
    return f"{counts[0]:,}–{counts[-1]:,} samples (each bundle's count sized by its 95% CI)"


def _load(x: Any) -> str:
    if isinstance(x, (list, tuple)) and x:
        return f"{float(x[0]):.2f}"
    return "?" if x is None else str(x)


def write(report: CompareReport, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    report.files = {"markdown": str(out / "report.md"), "json": str(out / "report.json")}
    atomic_write_text(out / "report.md", markdown(report))
    atomic_write_text(out / "report.json", report.to_json() + "\n")


__all__ = ["CompareConfig", "CompareReport", "FamilyRow", "compare"]
