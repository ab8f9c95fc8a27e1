"""The steps of ``export_bundle``, in the order it calls them. Each writes its files into the
temporary bundle folder (``Job.root``) and returns what the manifest says about them:

1. ``write_model`` — the fp32 generator, BatchNorm folded, exactly at the requested opset;
2. ``write_goldens`` — golden sets from the reference (PyTorch float32 on CPU, or ONNX Runtime
   CPU float32 for a foreign graph);
3. ``rewrite`` — exact graph rewrites, each checked against the graph before it and the goldens;
4. ``write_evaluator`` — the evaluator, for verify, eval and runtime guards;
5. ``write_variants`` — precision variants, each measured against fp32 on the same latents, and
   the offline-optimized ``model.opt.onnx`` when it helps;
6. ``write_sampler`` — an iterative family's denoiser and sampler section (export.denoiser);
7. ``write_ort`` — with ``--ort-format``, every ONNX model as ``.ort`` (export.ort_format);
8. ``finish`` — model card, ``files``, schema check, manifest, signature.

Every model a measurement ran on is read once and its sha256 recorded (``Job.session``);
``finish`` refuses a manifest whose file differs from the bytes that were measured.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from edgegen.core import __version__
from edgegen.core.errors import ExportError
from edgegen.export.config import OUTPUT_RANGE, ExportConfig
from edgegen.export.sources import Source
from edgegen.runtime.bundle import MANIFEST, PRECISIONS, VARIANT_FILES, list_files
from edgegen.runtime.fileio import atomic_write_json


@dataclass
class Job:
    """One export, passed from step to step."""

    cfg: ExportConfig
    src: Source
    root: Path  # the temporary folder the bundle is built in (renamed into place at the end)
    precisions: tuple[str, ...]  # fp32 first
    evaluator_run: Path | None  # None: no evaluator is bundled
    emit: Callable[[str], None]
    notes: list[str] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)  # model.onnx's metadata (variants too)
    measured: dict[str, str] = field(default_factory=dict)  # file -> sha256 of measured bytes

    @property
    def model_path(self) -> Path:
        return self.root / VARIANT_FILES["fp32"]

    @property
    def iterative(self) -> bool:
        """An iterative sampler (cflow): unrolled into model.onnx, its denoiser shipped too."""
        return hasattr(self.src.gen, "set_sampler")

    def session(self, path: Path) -> Any:
        """A CPU session from the file's bytes, read once; their sha256 must be what the
        manifest finally lists (the figures in the manifest describe exactly the shipped
        file)."""
        from edgegen.runtime.providers import make_session

        data = path.read_bytes()
        self.measured[path.relative_to(self.root).as_posix()] = hashlib.sha256(data).hexdigest()
        return make_session(data, name=str(path.name))


# --------------------------------------------------------------------------- 1. the model


def write_model(job: Job) -> str:
    """Write model.onnx (fp32); return the exporter that made it."""
    import onnx
    import torch

    from edgegen.export.onnx_export import (
        check_model,
        export_onnx,
        fold_batchnorm,
        graph_ops,
        set_metadata,
    )
    from edgegen.runtime.latent import latent

    src, cfg, path = job.src, job.cfg, job.model_path
    if src.onnx_model is not None:  # a foreign graph: written as given, names mapped
        onnx.save(src.onnx_model, str(path))
        how = {"exporter": f"none (wrapped from {src.path.name})", "attempts": []}
    else:
        z0 = torch.from_numpy(latent(cfg.seed, 2, src.z_dim))  # [2, z_dim]
        y0 = torch.tensor([0, 1 % src.n_classes], dtype=torch.int64)  # [2]
        how = export_onnx(fold_batchnorm(src.gen), (z0, y0), path, cfg.opset, ["z", "label"],
                          ["image"], {"image": ["batch", *src.image_shape]})
        if src.kind == "checkpoint" and "BatchNormalization" in graph_ops(path):
            raise ExportError("BatchNormalization survived folding; refusing an unfolded model")
    job.notes += how["attempts"]
    job.emit(f"wrote model.onnx at opset {cfg.opset} ({how['exporter']} exporter)")
    job.meta = model_metadata(job)
    set_metadata(path, job.meta, model_doc(job))
    check_model(path)
    return str(how["exporter"])


def model_metadata(job: Job) -> dict[str, Any]:
    """model.onnx's metadata_props: the contract and where the model came from."""
    from edgegen.runtime.latent import describe
    from edgegen.runtime.postprocess import RULE

    src = job.src
    meta = {
        "edgegen_version": __version__, "architecture": src.arch, "z_dim": src.z_dim,
        "n_classes": src.n_classes, "label_names": ",".join(src.labels),
        "image_shape": ",".join(map(str, src.image_shape)),
        "output_range": f"{OUTPUT_RANGE[0]},{OUTPUT_RANGE[1]}", "opset": job.cfg.opset,
        "training_seed": src.training_seed,
        ("checkpoint_sha256" if src.kind == "checkpoint" else "source_sha256"): src.sha256,
        "latent_algorithm": describe()["name"], "postprocess": RULE,
    }
    meta = {k: v for k, v in meta.items() if v not in (None, "")}
    if job.iterative:
        meta.update({"sampler": "euler", "steps": src.gen.steps, "guidance": src.gen.guidance})
    return meta


def model_doc(job: Job) -> str:
    src, gen = job.src, job.src.gen
    shape = ",".join(map(str, src.image_shape))
    doc = (f"edgegen {src.arch} generator: (z float32[batch,{src.z_dim}], label int64[batch]) "
           f"-> image float32[batch,{shape}] in [-1, 1]")
    if job.iterative:
        doc += f"; Euler sampler, {gen.steps} steps, guidance {gen.guidance:g}, unrolled"
    return doc


# ----------------------------------------------------------------------- 2, 3. goldens, rewrites


def write_goldens(job: Job) -> tuple[list[Any], list[dict[str, Any]]]:
    """Golden sets from PyTorch float32 on CPU, the unfolded model straight from the checkpoint
    (or the user's module); a foreign ONNX graph's from ONNX Runtime CPU float32. Returns the
    ``GoldenSet`` list and the manifest's ``golden.sets``."""
    from edgegen.export.golden import GoldenSet, golden_inputs, write_golden
    from edgegen.runtime.providers import make_session
    from edgegen.runtime.sessions import run_generator
    from edgegen.training.torch_utils import generate_images

    src, cfg = job.src, job.cfg
    reference: Callable[[np.ndarray, np.ndarray], np.ndarray]
    if src.gen is None:
        cpu = make_session(job.model_path.read_bytes(), name="model.onnx")
        reference = partial(run_generator, cpu)
    else:
        reference = partial(generate_images, src.gen)
    sets = [GoldenSet(z=z, label=y, image=reference(z, y), seed=cfg.seed, start=start)
            for z, y, start in golden_inputs(cfg.seed, cfg.golden_sets, src.z_dim,
                                             src.n_classes)]
    entries = write_golden(job.root, sets, ["z", "label"], "image")
    job.emit(f"wrote {len(sets)} golden test sets")
    return sets, entries


def rewrite(job: Job, sets: list[Any]) -> dict[str, Any]:
    """Rewrite model.onnx in place (export.optimize); the manifest's
    ``generator.optimization``. Check cases: every golden set (with its reference output) and
    fresh portable latents at batch 1 and 64 (seed + 3)."""
    import onnx

    from edgegen.export.onnx_export import check_model, set_metadata
    from edgegen.export.optimize import Case, optimize_model
    from edgegen.runtime.latent import latent

    cfg, src, path = job.cfg, job.src, job.model_path
    cases = [Case(f"golden {i}", {"z": g.z, "label": g.label}, g.image)
             for i, g in enumerate(sets)]
    start = 0
    for b in (1, 64):
        labels = (np.arange(start, start + b) % src.n_classes).astype(np.int64)
        cases.append(Case(f"fresh@{b}", {"z": latent(cfg.seed + 3, b, src.z_dim, start=start),
                                         "label": labels}))
        start += b
    optimization = optimize_model(path, path, cases, cfg.optimize)
    if optimization["applied"]:
        doc = onnx.load(str(path), load_external_data=False).doc_string
        set_metadata(path, {**job.meta, "graph_rewrites": ",".join(
            r["name"] for r in optimization["applied"])}, doc)
        check_model(path)
    job.emit(optimization_line(optimization))
    return optimization


def optimization_line(opt: dict[str, Any]) -> str:
    if not opt.get("enabled"):
        return "graph rewrites: off (--no-optimize)"
    if not opt["applied"]:
        return "graph rewrites: none applied" + (f" ({opt['reverted']})" if opt.get("reverted")
                                                 else "")
    names = ", ".join(f"{r['name']} ×{len(r['sites'])}" for r in opt["applied"])
    speed = "; ".join(f"batch {b}: {e['speedup']:.2f}× faster here"
                      for b, e in opt.get("effect", {}).get("per_batch", {}).items())
    return (f"graph rewrites: {names}; max |Δ| vs the unrewritten graph "
            f"{opt['vs_unrewritten']['max_abs']:.1e}" + (f"; {speed}" if speed else ""))


# --------------------------------------------------------------------------- 4. the evaluator


def write_evaluator(job: Job) -> tuple[dict[str, Any] | None, Any]:
    """evaluator.onnx and its manifest entry, with a session on its measured bytes; (None,
    None) and a note when no evaluator is bundled."""
    from edgegen.export.evaluator import export_evaluator

    if job.evaluator_run is None:
        job.notes.append("no evaluator found (pass --evaluator): label agreement is not "
                         "measured and the runtime guard is unavailable")
        return None, None
    entry = export_evaluator(job.evaluator_run, job.root, job.cfg.opset)
    session = job.session(job.root / "evaluator.onnx")
    job.emit(f"exported evaluator.onnx from {job.evaluator_run}")
    return entry, session


# --------------------------------------------------------------------------- 5. variants


def write_variants(job: Job, evaluator: Any) -> dict[str, dict[str, Any]]:
    """Each precision's model, measured against fp32 on the same latents (seed + 2), then the
    offline-optimized fp32 copy when it shrinks the graph: the manifest's ``variants``."""
    from edgegen.runtime.latent import latent
    from edgegen.runtime.sessions import run_generator

    cfg, src = job.cfg, job.src
    dev_z = latent(cfg.seed + 2, cfg.deviation_samples, src.z_dim)  # [N, z_dim]
    dev_y = (np.arange(cfg.deviation_samples) % src.n_classes).astype(np.int64)  # [N]
    ref = run_generator(job.session(job.model_path), dev_z, dev_y)  # [N, C, H, W]
    variants = {prec: write_variant(job, prec, dev_z, dev_y, ref, evaluator)
                for prec in job.precisions}
    variants["fp32"]["deviation_from_fp32"]["seed"] = str(cfg.seed + 2)
    opt = write_optimized(job)
    if opt is not None:
        variants["fp32-opt"] = opt
    return variants


def write_variant(job: Job, prec: str, dev_z: np.ndarray, dev_y: np.ndarray, ref: np.ndarray,
                  evaluator: Any) -> dict[str, Any]:
    """One precision's model (fp32: model.onnx as it is) and its deviation from fp32."""
    from edgegen.export.onnx_export import check_model, model_opset, set_metadata
    from edgegen.export.variants import deviation, make_fp16, make_int8
    from edgegen.runtime.sessions import run_generator

    cfg, src, path = job.cfg, job.src, job.root / VARIANT_FILES[prec]
    extra: dict[str, Any] = {}
    if prec == "fp16":
        islands = make_fp16(job.model_path, path)
        if any(islands.values()):
            extra = {"kept_in_fp32": {k: len(v) for k, v in islands.items()}}
    elif prec == "int8":
        extra = make_int8(job.model_path, path, seed=cfg.seed + 1,
                          samples=cfg.calibration_samples, z_dim=src.z_dim,
                          n_classes=src.n_classes)
    if prec != "fp32":
        set_metadata(path, {**job.meta, "precision": prec},
                     f"edgegen {src.arch} generator, {prec} variant")
        check_model(path)
    got = model_opset(path)
    if got != cfg.opset:
        raise ExportError(f"{path.name} came out at opset {got}, not {cfg.opset}")
    out = run_generator(job.session(path), dev_z, dev_y)
    entry = {
        "file": path.name, "precision": prec, "opset": got, "bytes": path.stat().st_size,
        "io": "float32 in, float32 out" if prec != "fp32" else "float32",
        "deviation_from_fp32": deviation(ref, out, dev_y, evaluator),
        **({"quantization": extra} if extra and prec == "int8" else
           {"fp16": extra} if extra else {}),
    }
    job.emit(f"{prec}: max |Δ| vs fp32 = {entry['deviation_from_fp32']['max_abs']:.2e}")
    return entry


def write_optimized(job: Job) -> dict[str, Any] | None:
    """model.opt.onnx (ORT's offline basic optimizations) when they shrink the graph."""
    from edgegen.export.onnx_export import model_opset
    from edgegen.export.variants import make_optimized

    path = job.root / "model.opt.onnx"
    opt = make_optimized(job.model_path, path)
    job.notes.append(opt["note"])
    if not opt["written"]:
        return None
    return {"file": path.name, "precision": "fp32", "opset": model_opset(path),
            "bytes": path.stat().st_size, "optimization": opt}


# --------------------------------------------------------------------------- 6, 7. sampler, .ort


def write_sampler(job: Job, evaluator: Any) -> dict[str, Any] | None:
    """An iterative family's denoiser*.onnx and the manifest's ``sampler`` section."""
    if not job.iterative:
        return None
    from edgegen.export.denoiser import SamplerExport, export_sampler

    cfg = job.cfg
    return export_sampler(SamplerExport(
        gen=job.src.gen, root=job.root, opset=cfg.opset, seed=cfg.seed,
        precisions=tuple(p for p in job.precisions if p in PRECISIONS),
        calibration_samples=cfg.calibration_samples, deviation_samples=cfg.deviation_samples,
        model_path=job.model_path, meta=job.meta, evaluator=evaluator, emit=job.emit))


def write_ort(job: Job, sets: list[Any]) -> dict[str, Any] | None:
    """With ``--ort-format``: every ONNX model as ``.ort`` and required_operators.config, each
    checked against its ONNX model; the manifest's ``ort_format``."""
    if not job.cfg.ort_format:
        return None
    from edgegen.export.ort_format import convert_bundle

    section, notes = convert_bundle(job.root, sets, job.session, job.emit, job.iterative)
    job.notes += notes
    return section


# --------------------------------------------------------------------------- 8. finish


def finish(job: Job, manifest: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Write the model card and the manifest (its ``files`` listing everything, checked against
    the measured bytes and the schema), then sign inside the temporary folder; return
    ``files``."""
    from edgegen.export.model_card import model_card
    from edgegen.runtime.manifest import validate

    (job.root / "README.md").write_text(model_card(manifest), encoding="utf-8")
    manifest["files"] = list_files(job.root)
    for rel, digest in job.measured.items():
        if manifest["files"][rel]["sha256"] != digest:
            raise ExportError(f"{rel} changed between its measurement and the manifest "
                              "(another process wrote into the export folder?); retry")
    validate(manifest, "the manifest export wrote")  # never write what readers refuse
    atomic_write_json(job.root / MANIFEST, manifest)
    if job.cfg.sign_key is not None:  # before the folder is renamed in: it appears signed
        from edgegen.export.signing import sign_bundle

        sign_bundle(job.root, job.cfg.sign_key)
        job.emit(f"signed {len(manifest['files']) + 1} files into bundle.sig")
    return manifest["files"]
