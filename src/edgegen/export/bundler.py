"""``edgegen export``: checkpoint -> bundle, the unit of deployment.

``export_bundle(ExportConfig) -> ExportResult``. Everything is checked before any work
(``plan``: the options, the source, ``--out``, the signing key); the bundle is then built in a
hidden temporary folder beside ``--out`` by the steps of ``export.steps``, described by
``export.manifest``, and renamed into place at the end, so an export that is killed leaves
nothing that looks like a bundle. docs/ARCHITECTURE.md describes the layout and the contracts.
"""

from __future__ import annotations

import os
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgegen.core.errors import ConfigError, require_positive
from edgegen.core.fileio import atomic_dir, check_output_dir
from edgegen.core.progress import ProgressFn, Reporter
from edgegen.core.report import Report
from edgegen.export import steps
from edgegen.export.config import ExportConfig
from edgegen.export.manifest import ManifestParts, build_manifest
from edgegen.export.sources import Source
from edgegen.runtime.bundle import MANIFEST, PRECISIONS, replace_refusal
from edgegen.training.checkpoint import checkpoint_path
from edgegen.training.evaluator import find_evaluator

__all__ = ["ExportConfig", "ExportResult", "Plan", "check_out", "export_bundle", "plan"]


@dataclass
class ExportResult(Report):
    out: Path
    opset: int
    exporter: str
    variants: dict[str, dict[str, Any]]
    files: dict[str, dict[str, Any]]
    golden_sets: int
    evaluator: bool
    manifest: Path
    optimization: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    sampler: dict[str, Any] | None = None  # the manifest's sampler section (cflow)
    ort_format: dict[str, Any] | None = None  # the manifest's ort_format section (--ort-format)


@dataclass
class Plan:
    """An export checked before any work: what to write and from where."""

    precisions: tuple[str, ...]  # fp32 first
    src: Source
    evaluator_run: Path | None  # None: no evaluator is bundled
    notes: list[str] = field(default_factory=list)


def export_bundle(cfg: ExportConfig, on_progress: ProgressFn | None = None) -> ExportResult:
    """Write the bundle ``cfg.out`` (see the module docstring and ``export.steps``)."""
    emit = Reporter("export", on_progress).say
    p = plan(cfg)
    with atomic_dir(cfg.out, force=cfg.force) as root:
        job = steps.Job(cfg, p.src, root, p.precisions, p.evaluator_run, emit, notes=p.notes)
        exporter = steps.write_model(job)
        sets, golden = steps.write_goldens(job)
        optimization = steps.rewrite(job, sets)
        evaluator, ev_session = steps.write_evaluator(job)
        variants = steps.write_variants(job, ev_session)
        sampler = steps.write_sampler(job, ev_session)
        ort_format = steps.write_ort(job, sets)
        manifest = build_manifest(ManifestParts(
            src=p.src, opset=cfg.opset, seed=cfg.seed, out=Path(cfg.out),
            command=cfg.command or shlex.join([Path(sys.argv[0]).name, *sys.argv[1:]]),
            exporter=exporter, optimization=optimization, variants=variants,
            golden_sets=golden, evaluator=evaluator, sampler=sampler, ort_format=ort_format,
            notes=job.notes))
        files = steps.finish(job, manifest)
    emit(f"bundle written to {cfg.out}")
    return ExportResult(out=Path(cfg.out), opset=cfg.opset, exporter=exporter,
                        variants=variants, files=files, golden_sets=len(sets),
                        evaluator=evaluator is not None, manifest=Path(cfg.out) / MANIFEST,
                        optimization=optimization, notes=job.notes, sampler=sampler,
                        ort_format=ort_format)


def plan(cfg: ExportConfig) -> Plan:
    """Every check that needs no work: the options, the generator source, ``--out``, the
    signing key, the sampler settings and whether the evaluator fits the generator."""
    from edgegen.export.evaluator import evaluator_mismatch

    precisions = _validate(cfg)
    src, run_dir, evaluator_run = _source(cfg)
    check_out(cfg, run_dir, evaluator_run)
    if cfg.sign_key is not None:
        from edgegen.export.signing import check_private_key

        check_private_key(cfg.sign_key, "--sign-key")
    _set_sampler(cfg, src)
    p = Plan(precisions, src, evaluator_run)
    problem = (evaluator_mismatch(evaluator_run, src.n_classes, list(src.image_shape))
               if evaluator_run is not None else None)
    if problem and cfg.evaluator is not None:
        raise ConfigError(f"--evaluator {cfg.evaluator}: {problem}")
    if problem:  # the evaluator beside the run judges other data: leave it out
        p.notes.append(f"the evaluator at {evaluator_run} was left out: {problem}")
        p.evaluator_run = None
    return p


def _set_sampler(cfg: ExportConfig, src: Source) -> None:
    """An iterative sampler (cflow) gets --steps / --guidance (else the run's own) unrolled into
    the graph; any other family refuses them."""
    gen = src.gen
    if hasattr(gen, "set_sampler"):
        gen.set_sampler(gen.steps if cfg.steps is None else cfg.steps,
                        gen.guidance if cfg.guidance is None else cfg.guidance)
    elif cfg.steps is not None or cfg.guidance is not None:
        raise ConfigError(f"--steps and --guidance set an iterative sampler; {src.arch} "
                          "draws an image in one network call and has none (they apply to "
                          "cflow) — drop them")


def _validate(cfg: ExportConfig) -> tuple[str, ...]:
    from edgegen.export.onnx_export import check_opset

    check_opset(cfg.opset)
    precisions = tuple(dict.fromkeys(p.strip().lower() for p in cfg.precisions if p.strip()))
    unknown = [p for p in precisions if p not in PRECISIONS]
    if unknown or not precisions:
        raise ConfigError(f"unknown precision {', '.join(unknown) or '(none)'}; expected a "
                          f"comma-separated list of {', '.join(PRECISIONS)}")
    if "fp32" not in precisions:  # every other variant is made from, and measured against, fp32
        precisions = ("fp32", *precisions)
    require_positive(cfg, "golden_sets", "calibration_samples", "deviation_samples")
    cfg.optimize.validate()
    from edgegen.runtime.inputs import check_guidance, check_steps

    if cfg.steps is not None:
        check_steps(cfg.steps)
    if cfg.guidance is not None:
        check_guidance(cfg.guidance)
    return precisions


def check_out(cfg: ExportConfig, run: Path | None, evaluator: Path | None) -> None:
    """Refuse, before any work, an ``--out`` that export must not write: the current folder or
    one above it, the training run or evaluator run it reads from (or a folder inside or above
    them), a path under a regular file or in an unwritable place, and an existing path that is
    not an edgegen bundle or an empty folder (even with ``--force``: a bundle is the only thing
    export ever replaces)."""
    out = Path(cfg.out)
    where = out.resolve()
    cwd = Path.cwd().resolve()
    if where == cwd or where in cwd.parents:
        raise ConfigError(f"--out {out} is the current folder or a folder above it; name a new "
                          "folder for the bundle, such as bundles/NAME")
    for what, folder in (("the training run", run), ("the evaluator run", evaluator)):
        if folder is None:
            continue
        f = folder.resolve()
        if where == f or f in where.parents or where in f.parents:
            raise ConfigError(f"--out {out} is, is inside or contains {what} the export reads "
                              f"({f}); refusing to write there — a bundle goes in its own "
                              "folder, such as bundles/NAME")
    check_output_dir(out, "--out")
    if not os.path.lexists(out):
        return
    why = replace_refusal(out)
    if why is not None:
        raise ConfigError(f"--out {out} already exists and {why}; edgegen export replaces only "
                          "an edgegen bundle or an empty folder, even with --force — pick "
                          "another --out or move it away yourself")
    if not cfg.force:
        if not any(out.iterdir()):
            raise ConfigError(f"{out} already exists (an empty folder); pass --force to export "
                              "into it")
        raise ConfigError(f"{out} already exists; pass --force to replace it (the old bundle "
                          "stays until the new one is complete)")


def _source(cfg: ExportConfig) -> tuple[Source, Path | None, Path | None]:
    """(the generator's ``Source``, the run folder export must not write into, the evaluator
    run to include), the options of the other ways in refused where they do not apply."""
    from edgegen.export.sources import checkpoint_source, module_source, onnx_source

    ways = [w for w, v in (("a run folder", cfg.checkpoint), ("--from-module", cfg.from_module),
                           ("--from-onnx", cfg.from_onnx)) if v is not None]
    if len(ways) != 1:
        raise ConfigError(f"export needs exactly one generator: a run folder, --from-module or "
                          f"--from-onnx; got {' and '.join(ways) or 'none'}")
    if cfg.from_module is None and cfg.from_onnx is None:
        given = [o for o, v in (("--weights", cfg.weights), ("--z-dim", cfg.z_dim),
                                ("--classes", cfg.n_classes), ("--image-shape", cfg.image_shape))
                 if v is not None] + [o for o, v in zip(("--z-name", "--label-name",
                                                         "--image-name"), cfg.io_names) if v]
        if given:
            raise ConfigError(f"{', '.join(given)} describe --from-module / --from-onnx; a run "
                              "folder carries its own contract — drop them")
        ckpt = checkpoint_path(cfg.checkpoint)
        evaluator_run = find_evaluator(cfg.evaluator, ckpt.parent)
        return checkpoint_source(ckpt, cfg.labels), ckpt.parent, evaluator_run
    evaluator_run = find_evaluator(cfg.evaluator, ".") if cfg.evaluator is not None else None
    if cfg.from_module is not None:
        if any(cfg.io_names):
            raise ConfigError("--z-name, --label-name and --image-name map a --from-onnx graph's "
                              "names; a module's export uses z, label, image — drop them")
        return (module_source(cfg.from_module, cfg.weights, cfg.z_dim, cfg.n_classes,
                              cfg.image_shape, cfg.labels), None, evaluator_run)
    given = [o for o, v in (("--weights", cfg.weights), ("--z-dim", cfg.z_dim),
                            ("--image-shape", cfg.image_shape)) if v is not None]
    if given:
        raise ConfigError(f"{', '.join(given)}: an ONNX file's latent size and image shape come "
                          "from its graph — drop them")
    assert cfg.from_onnx is not None
    return (onnx_source(cfg.from_onnx, cfg.n_classes, cfg.io_names, cfg.labels, cfg.opset),
            None, evaluator_run)

