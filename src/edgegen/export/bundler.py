"""``edgegen export``: checkpoint -> bundle, the unit of deployment.

``export_bundle(ExportConfig) -> ExportResult``. The bundle is built in a hidden temporary folder
beside ``--out`` and renamed into place at the end, so an export that is killed leaves nothing
that looks like a bundle. docs/ARCHITECTURE.md describes the layout and the contracts.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import os
import platform
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgegen.core import __version__
from edgegen.core.errors import ConfigError, ExportError, require_positive
from edgegen.core.fileio import atomic_dir, check_output_dir
from edgegen.core.progress import ProgressFn, Reporter
from edgegen.core.report import Report
from edgegen.export.optimize import OptimizeConfig
from edgegen.runtime.bundle import (
    MANIFEST,
    PRECISIONS,
    SCHEMA,
    VARIANT_FILES,
    list_files,
    replace_refusal,
)
from edgegen.runtime.fileio import atomic_write_json, sha256_file
from edgegen.training.checkpoint import (
    CHECKPOINT_NAME,
    checkpoint_path,
)
from edgegen.training.evaluator import find_evaluator
from edgegen.training.torch_utils import generate_images

OUTPUT_RANGE = (-1.0, 1.0)


@dataclass(frozen=True)
class ExportConfig:
    checkpoint: Path | None = None  # a run folder (or its checkpoint.safetensors)
    out: Path = Path("bundles/cdcgan")
    opset: int = 17
    precisions: tuple[str, ...] = PRECISIONS
    golden_sets: int = 8
    seed: int = 1234  # goldens use this seed; calibration and deviation use seed + 1, + 2
    evaluator: Path | None = None  # None: <checkpoint>/../evaluator when it exists
    calibration_samples: int = 500
    deviation_samples: int = 1000
    # an iterative sampler's settings unrolled into model.onnx (cflow only); None: the run's
    # own (ModelConfig.sampler_steps / guidance: 4 steps, guidance 2.0 by default)
    steps: int | None = None
    guidance: float | None = None
    # Exact graph rewrites (export.rewrite, checked by export.optimize); --no-optimize: off
    optimize: OptimizeConfig = OptimizeConfig()
    force: bool = False  # replace an existing bundle (only a bundle, or an empty folder)
    command: str | None = None  # the command line, for provenance
    sign_key: Path | None = None  # PEM EC private key: sign the bundle before it is renamed in
    # other ways in (export.sources): a user's torch module or a foreign ONNX generator
    from_module: str | None = None  # "pkg.module:factory" returning the nn.Module
    weights: Path | None = None  # --from-module: safetensors state_dict
    from_onnx: Path | None = None  # an existing ONNX generator graph
    z_dim: int | None = None  # --from-module: the latent size
    n_classes: int | None = None  # --from-module, --from-onnx: the class count (--classes)
    image_shape: tuple[int, ...] | None = None  # --from-module: (C, H, W)
    io_names: tuple[str | None, str | None, str | None] = (None, None, None)  # --from-onnx
    labels: tuple[str, ...] | None = None  # class names (default: the data's, else 0..N-1)


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


def _source(cfg: ExportConfig) -> tuple[Any, Path | None, Path | None]:
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


def export_bundle(cfg: ExportConfig, on_progress: ProgressFn | None = None) -> ExportResult:
    import onnx
    import onnxruntime
    import torch

    from edgegen.export.golden import GoldenSet, golden_inputs, write_golden
    from edgegen.export.onnx_export import (
        check_model,
        export_onnx,
        fold_batchnorm,
        graph_ops,
        model_opset,
        set_metadata,
    )
    from edgegen.export.variants import deviation, make_fp16, make_int8, make_optimized
    from edgegen.runtime.guard import DEFAULT_MAX_RETRIES, DEFAULT_MIN_PROB
    from edgegen.runtime.latent import describe, extra_test_vectors, latent, latent_test_vectors
    from edgegen.runtime.postprocess import RULE
    from edgegen.runtime.providers import make_session
    from edgegen.runtime.sessions import run_generator

    emit = Reporter("export", on_progress).say
    precisions = _validate(cfg)
    src, run_dir, evaluator_run = _source(cfg)
    check_out(cfg, run_dir, evaluator_run)
    if cfg.sign_key is not None:
        from edgegen.export.signing import check_private_key

        check_private_key(cfg.sign_key, "--sign-key")
    gen, info = src.gen, src.info
    iterative = hasattr(gen, "set_sampler")  # cflow: the sampler is unrolled into the graph
    if iterative:
        gen.set_sampler(gen.steps if cfg.steps is None else cfg.steps,
                        gen.guidance if cfg.guidance is None else cfg.guidance)
    elif cfg.steps is not None or cfg.guidance is not None:
        raise ConfigError(f"--steps and --guidance set an iterative sampler; {src.arch} "
                          "draws an image in one network call and has none (they apply to "
                          "cflow) — drop them")
    shape = list(src.image_shape)
    ckpt_sha = src.sha256
    z_dim, n_classes, labels = src.z_dim, src.n_classes, src.labels
    ev_problem = (_evaluator_mismatch(evaluator_run, n_classes, shape)
                  if evaluator_run is not None else None)
    if ev_problem and cfg.evaluator is not None:
        raise ConfigError(f"--evaluator {cfg.evaluator}: {ev_problem}")
    notes: list[str] = []
    if ev_problem:  # the evaluator beside the run judges other data: leave it out
        notes.append(f"the evaluator at {evaluator_run} was left out: {ev_problem}")
        evaluator_run = None
    measured: dict[str, str] = {}  # file -> sha256 of the bytes the deviation was measured on

    def checked_session(path: Path) -> Any:
        """A session from the file's bytes, read once; their sha256 must be what the manifest
        finally lists (the figures in the manifest describe exactly the shipped file)."""
        data = path.read_bytes()
        measured[path.relative_to(root).as_posix()] = hashlib.sha256(data).hexdigest()
        return make_session(data, name=str(path.name))

    with atomic_dir(cfg.out, force=cfg.force) as root:
        # 1. the fp32 generator, BatchNorm folded, exactly at the requested opset
        model_path = root / VARIANT_FILES["fp32"]
        if src.onnx_model is not None:  # a foreign graph: written as given, names mapped
            onnx.save(src.onnx_model, str(model_path))
            how = {"exporter": f"none (wrapped from {src.path.name})", "attempts": []}
        else:
            folded = fold_batchnorm(gen)
            z0 = torch.from_numpy(latent(cfg.seed, 2, z_dim))
            y0 = torch.tensor([0, 1 % n_classes], dtype=torch.int64)
            how = export_onnx(folded, (z0, y0), model_path, cfg.opset, ["z", "label"],
                              ["image"], {"image": ["batch", *shape]})
            if src.kind == "checkpoint" and "BatchNormalization" in graph_ops(model_path):
                raise ExportError("BatchNormalization survived folding; refusing an unfolded "
                                  "model")
        notes += how["attempts"]
        emit(f"wrote model.onnx at opset {cfg.opset} ({how['exporter']} exporter)")
        meta = {
            "edgegen_version": __version__, "architecture": src.arch, "z_dim": z_dim,
            "n_classes": n_classes, "label_names": ",".join(labels),
            "image_shape": ",".join(map(str, shape)),
            "output_range": f"{OUTPUT_RANGE[0]},{OUTPUT_RANGE[1]}", "opset": cfg.opset,
            "training_seed": src.training_seed,
            ("checkpoint_sha256" if src.kind == "checkpoint" else "source_sha256"): ckpt_sha,
            "latent_algorithm": describe()["name"], "postprocess": RULE,
        }
        meta = {k: v for k, v in meta.items() if v not in (None, "")}
        if iterative:
            meta.update({"sampler": "euler", "steps": gen.steps, "guidance": gen.guidance})
        set_metadata(model_path, meta, f"edgegen {src.arch} generator: (z float32[batch,"
                                       f"{z_dim}], label int64[batch]) -> image float32[batch,"
                                       f"{','.join(map(str, shape))}] in [-1, 1]"
                                       + (f"; Euler sampler, {gen.steps} steps, guidance "
                                          f"{gen.guidance:g}, unrolled" if iterative else ""))
        check_model(model_path)

        # 2. golden data from PyTorch float32 on CPU, unfolded model, straight from the checkpoint
        # (or the user's module); a foreign ONNX graph's from ONNX Runtime CPU float32
        if gen is None:
            cpu = make_session(model_path.read_bytes(), name="model.onnx")

            def reference(z: np.ndarray, y: np.ndarray) -> np.ndarray:
                return run_generator(cpu, z, y)
        else:
            def reference(z: np.ndarray, y: np.ndarray) -> np.ndarray:
                return generate_images(gen, z, y)
        sets = [GoldenSet(z=z, label=y, image=reference(z, y), seed=cfg.seed, start=start)
                for z, y, start in golden_inputs(cfg.seed, cfg.golden_sets, z_dim, n_classes)]
        golden_entries = write_golden(root, sets, ["z", "label"], "image")
        emit(f"wrote {len(sets)} golden test sets")

        # 2b. exact graph rewrites, each checked against the graph before it and the goldens
        optimization = _optimize(model_path, sets, cfg, z_dim, n_classes)
        if optimization["applied"]:
            set_metadata(model_path, {**meta, "graph_rewrites": ",".join(
                r["name"] for r in optimization["applied"])}, _doc(model_path))
            check_model(model_path)
        emit(_optimization_line(optimization))

        # 3. the evaluator, for verify, eval and runtime guards
        evaluator_entry = None
        ev_session = None
        if evaluator_run is not None:
            evaluator_entry = _export_evaluator(evaluator_run, root, cfg.opset)
            ev_session = checked_session(root / "evaluator.onnx")
            emit(f"exported evaluator.onnx from {evaluator_run}")
        else:
            notes.append("no evaluator found (pass --evaluator): label agreement is not measured"
                         " and the runtime guard is unavailable")

        # 4. precision variants, each measured against fp32 on the same latents
        dev_z = latent(cfg.seed + 2, cfg.deviation_samples, z_dim)
        dev_y = (np.arange(cfg.deviation_samples) % n_classes).astype(np.int64)
        ref = run_generator(checked_session(model_path), dev_z, dev_y)
        variants: dict[str, dict[str, Any]] = {}
        for prec in precisions:
            path = root / VARIANT_FILES[prec]
            extra: dict[str, Any] = {}
            if prec == "fp16":
                islands = make_fp16(model_path, path)
                if any(islands.values()):
                    extra = {"kept_in_fp32": {k: len(v) for k, v in islands.items()}}
            elif prec == "int8":
                extra = make_int8(model_path, path, seed=cfg.seed + 1,
                                  samples=cfg.calibration_samples, z_dim=z_dim,
                                  n_classes=n_classes)
            if prec != "fp32":
                set_metadata(path, {**meta, "precision": prec},
                             f"edgegen {src.arch} generator, {prec} variant")
                check_model(path)
            got = model_opset(path)
            if got != cfg.opset:
                raise ExportError(f"{path.name} came out at opset {got}, not {cfg.opset}")
            out = run_generator(checked_session(path), dev_z, dev_y)
            variants[prec] = {
                "file": path.name, "precision": prec, "opset": got,
                "bytes": path.stat().st_size,
                "io": "float32 in, float32 out" if prec != "fp32" else "float32",
                "deviation_from_fp32": deviation(ref, out, dev_y, ev_session),
                **({"quantization": extra} if extra and prec == "int8" else
                   {"fp16": extra} if extra else {}),
            }
            emit(f"{prec}: max |Δ| vs fp32 = "
                 f"{variants[prec]['deviation_from_fp32']['max_abs']:.2e}")
        variants["fp32"]["deviation_from_fp32"]["seed"] = str(cfg.seed + 2)
        opt = make_optimized(model_path, root / "model.opt.onnx")
        if opt["written"]:
            variants["fp32-opt"] = {"file": "model.opt.onnx", "precision": "fp32",
                                    "opset": model_opset(root / "model.opt.onnx"),
                                    "bytes": (root / "model.opt.onnx").stat().st_size,
                                    "optimization": opt}
        notes.append(opt["note"])
        sampler = None
        if iterative:
            from edgegen.export.denoiser import export_sampler

            sampler = export_sampler(
                gen, root, opset=cfg.opset, seed=cfg.seed,
                precisions=tuple(p for p in precisions if p in PRECISIONS),
                calibration_samples=cfg.calibration_samples,
                deviation_samples=cfg.deviation_samples, model_path=model_path, meta=meta,
                evaluator=ev_session, emit=emit)

        # 5. manifest and model card
        manifest = {
            "schema": SCHEMA,
            "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
            "generator": {
                "architecture": src.arch, "file": VARIANT_FILES["fp32"], "opset": cfg.opset,
                "z_dim": z_dim, "n_classes": n_classes, "labels": labels,
                "image_shape": shape,
                "inputs": [{"name": "z", "dtype": "float32", "shape": ["batch", z_dim]},
                           {"name": "label", "dtype": "int64", "shape": ["batch"],
                            "range": [0, n_classes - 1]}],
                "outputs": [{"name": "image", "dtype": "float32",
                             "shape": ["batch", *shape], "range": list(OUTPUT_RANGE)}],
                "batchnorm": ("folded into the preceding layers (eval-mode statistics)"
                              if src.kind != "onnx" else "as in the given graph"),
                "exporter": how["exporter"],
                "optimization": optimization,
                "weights": src.weights,
            },
            "variants": variants,
            **({"sampler": sampler} if sampler is not None else {}),
            "evaluator": evaluator_entry,
            "latent": {**describe(), "test_vectors": latent_test_vectors(),
                       "extra_test_vectors": extra_test_vectors(),
                       "per_sample": "sample i of a request with seed s is row i of "
                                     "latent(s, n, z_dim); it does not depend on n"},
            "guard": None if evaluator_entry is None else {
                "accept": "argmax(softmax(logits)) == label and softmax(logits)[label] >= "
                          "min_prob, where logits = evaluator(image) on the generator's float32 "
                          "image (not the uint8 pixels)",
                "min_prob": DEFAULT_MIN_PROB, "max_retries": DEFAULT_MAX_RETRIES,
                "redraw": "attempt a redraws sample i from row i of latent(retry_seed(seed, a)); "
                          "with one seed per sample, from row 0 of retry_seed(seeds[i], a)",
                "after_last_retry": "the last draw is returned, marked not accepted",
            },
            "postprocess": {"rule": RULE, "input_range": list(OUTPUT_RANGE), "dtype": "uint8",
                            "image_shape": shape[1:] if shape[0] == 1 else shape,
                            "layout": "row-major, one channel" if shape[0] == 1 else
                            "the float [C, H, W] image as uint8 [H, W, C], row-major, channels "
                            "interleaved (RGB)"},
            "golden": {"seed": str(cfg.seed), "sets": golden_entries,
                       "computed_by": src.golden_by,
                       "reference": ("pytorch" if gen is not None else
                                     "onnxruntime-cpu-fp32 (no PyTorch reference)"),
                       "layout": "ONNX model zoo: input_0.pb = z, input_1.pb = label, "
                                 "output_0.pb = image (serialized TensorProto)",
                       "polygraphy": {"inputs": "golden/polygraphy_inputs.json",
                                      "outputs": "golden/polygraphy_outputs.json"},
                       # an iterative sampler adds up rounding over its steps (verify's
                       # fp32-sampler tolerance; measured 1.3e-5 on a 4-step cflow)
                       "suggested_atol": 1e-4 if iterative else 1e-5},
            "provenance": {
                "edgegen": __version__, "torch": torch.__version__, "onnx": onnx.__version__,
                "onnxruntime": onnxruntime.__version__, "python": platform.python_version(),
                **({"checkpoint": {"path": _rel_or_abs(src.path, Path(cfg.out)),
                                   "sha256": ckpt_sha, "step": info.get("step"),
                                   "epoch": info.get("epoch")},
                    "training_seed": info["train"]["seed"], "training_data": info.get("data"),
                    "training": _training_record(info),
                    "fidelity_at_training": _fidelity_from_run(src.path.parent)}
                   if src.kind == "checkpoint" else {"source": src.source_entry}),
                "export_seed": str(cfg.seed),
                "command": cfg.command or shlex.join([Path(sys.argv[0]).name, *sys.argv[1:]]),
                "notes": notes,
            },
        }
        (root / "README.md").write_text(_model_card(manifest), encoding="utf-8")
        manifest["files"] = list_files(root)
        for rel, digest in measured.items():
            if manifest["files"][rel]["sha256"] != digest:
                raise ExportError(f"{rel} changed between its measurement and the manifest "
                                  "(another process wrote into the export folder?); retry")
        from edgegen.runtime.manifest import validate

        validate(manifest, "the manifest export wrote")  # never write what readers refuse
        atomic_write_json(root / MANIFEST, manifest)
        files = manifest["files"]
        if cfg.sign_key is not None:  # inside the temporary folder: signed before it appears
            from edgegen.export.signing import sign_bundle

            sign_bundle(root, cfg.sign_key)
            emit(f"signed {len(files) + 1} files into bundle.sig")

    emit(f"bundle written to {cfg.out}")
    return ExportResult(out=Path(cfg.out), opset=cfg.opset, exporter=how["exporter"],
                        variants=variants, files=files, golden_sets=len(sets),
                        evaluator=evaluator_entry is not None,
                        manifest=Path(cfg.out) / MANIFEST, optimization=optimization,
                        notes=notes, sampler=sampler)


def _training_record(info: dict[str, Any]) -> dict[str, Any]:
    """How long and how far the run trained (its wall time summed over resumes), for the family
    table; None where the checkpoint does not say."""
    train = info.get("train", {})
    return {"elapsed_s": info.get("elapsed_s"), "steps": info.get("step"),
            "epochs": info.get("epoch"), "images": info.get("images"),
            "batch_size": train.get("batch_size"), "device": train.get("device"),
            "threads": train.get("threads")}


def _optimize(model_path: Path, sets: list[Any], cfg: ExportConfig, z_dim: int,
              n_classes: int) -> dict[str, Any]:
    """Rewrite ``model_path`` in place (export.optimize). Check cases: every golden set (with
    PyTorch's output) and fresh portable latents at batch 1 and 64 (seed + 3)."""
    from edgegen.export.optimize import Case, optimize_model
    from edgegen.runtime.latent import latent

    cases = [Case(f"golden {i}", {"z": g.z, "label": g.label}, g.image)
             for i, g in enumerate(sets)]
    start = 0
    for b in (1, 64):
        cases.append(Case(f"fresh@{b}", {"z": latent(cfg.seed + 3, b, z_dim, start=start),
                                         "label": (np.arange(start, start + b) % n_classes)
                                         .astype(np.int64)}))
        start += b
    return optimize_model(model_path, model_path, cases, cfg.optimize)


def _doc(path: Path) -> str:
    import onnx

    return onnx.load(str(path), load_external_data=False).doc_string


def _optimization_line(opt: dict[str, Any]) -> str:
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


def _rel_or_abs(ckpt: Path, out: Path) -> str:
    """The checkpoint path as seen from the bundle (relative when both are in one tree)."""
    import os

    try:
        return os.path.relpath(ckpt.resolve(), out.resolve())
    except ValueError:  # another drive on Windows
        return str(ckpt.resolve())


def _fidelity_from_run(run: Path) -> dict[str, Any] | None:
    import json

    result = run / "result.json"
    if result.is_file():
        return json.loads(result.read_text()).get("fidelity")
    return None


def _evaluator_mismatch(run: Path, n_classes: int, shape: list[int]) -> str | None:
    """Why the evaluator of ``run`` cannot judge this generator (other classes or image shape),
    or None when it can."""
    from edgegen.models.config import ClassifierConfig
    from edgegen.training.checkpoint import read_info

    ccfg = ClassifierConfig.from_dict(read_info(run).get("model", {}))
    if ccfg.n_classes != n_classes or list(ccfg.image_shape) != list(shape):
        return (f"it judges {ccfg.n_classes} classes of "
                f"{'x'.join(map(str, ccfg.image_shape))} images and the generator draws "
                f"{n_classes} classes of {'x'.join(map(str, shape))}; train one on the "
                "generator's data (edgegen train-evaluator --data-dir ... --image-size ...)")
    return None


def _export_evaluator(run: Path, root: Path, opset: int) -> dict[str, Any]:
    import torch

    from edgegen.export.onnx_export import check_model, export_onnx, fold_batchnorm, set_metadata
    from edgegen.models.classifier import ExportableClassifier
    from edgegen.training.checkpoint import read_info
    from edgegen.training.evaluator import load_evaluator

    clf = load_evaluator(run)
    info = read_info(run)
    path = root / "evaluator.onnx"
    model = ExportableClassifier(fold_batchnorm(clf)).eval()
    shape = list(clf.image_shape)  # [C, H, W]
    k, f = clf.head.out_features, clf.head.in_features
    export_onnx(model, (torch.zeros(2, *shape),), path, opset, ["image"],
                ["logits", "features"], {"logits": ["batch", k], "features": ["batch", f]})
    set_metadata(path, {"edgegen_version": __version__, "role": "evaluator",
                        "heldout_accuracy": f"{info['heldout_accuracy']:.4f}",
                        "checkpoint_sha256": sha256_file(run / CHECKPOINT_NAME)},
                 f"edgegen evaluator: image float32[batch,{','.join(map(str, shape))}] in "
                 f"[-1, 1] -> logits float32[batch,{k}], features float32[batch,{f}]")
    check_model(path)
    return {
        "file": "evaluator.onnx",
        "inputs": [{"name": "image", "dtype": "float32", "shape": ["batch", *shape],
                    "range": list(OUTPUT_RANGE)}],
        "outputs": [{"name": "logits", "dtype": "float32", "shape": ["batch", k]},
                    {"name": "features", "dtype": "float32", "shape": ["batch", f]}],
        "heldout_accuracy": info["heldout_accuracy"],
        "trained_on": info.get("data"),
        "checkpoint_sha256": sha256_file(run / CHECKPOINT_NAME),
        "note": "trained on real images only; never used to train the generator",
    }


def _model_card(m: dict[str, Any]) -> str:
    g = m["generator"]
    rows = "\n".join(
        f"| {name} | `{v['file']}` | {v['bytes']:,} | "
        f"{v.get('deviation_from_fp32', {}).get('max_abs', 0):.2e} | "
        f"{_pct(v.get('deviation_from_fp32', {}).get('label_agreement'))} |"
        for name, v in m["variants"].items())
    ev = m["evaluator"]
    labels = g.get("labels") or [str(d) for d in range(g["n_classes"])]
    named = ", ".join(labels[:10]) + (", ..." if len(labels) > 10 else "")
    return f"""# edgegen bundle — {g['architecture']} generator

A class-conditional image generator, bundled by edgegen {m['provenance']['edgegen']} at ONNX opset \
{g['opset']}. Ask it for a class ({g['n_classes']}: {named}) and give it a latent vector; it
draws an image of that class.

## Contract
- inputs: `z` float32 [batch, {g['z_dim']}], `label` int64 [batch] (0–{g['n_classes'] - 1})
- output: `image` float32 [batch, {', '.join(map(str, g.get('image_shape', [1, 28, 28])))}] \
in [-1, 1]
- to pixels: `{m['postprocess']['rule']}`
- latents: `{m['latent']['name']}` — see `manifest.json` → `latent.steps` and its test vectors;
  sample *i* of seed *s* is the same in every language and every batch size.

## Files
| variant | file | bytes | max abs deviation from fp32 | label agreement |
|---|---|---|---|---|
{rows}

Graph rewrites: {_rewrites_line(g.get('optimization') or {})}.
{_sampler_card(m.get("sampler"))}Evaluator: {_evaluator_line(ev)}.
Golden data: `golden/test_data_set_N/` (ONNX model-zoo layout) and Polygraphy JSON in `golden/`.

## Run it
```
edgegen verify <this folder>                 # parity against the goldens and PyTorch
edgegen eval <this folder>                   # does it draw the digits it is asked for?
polygraphy run model.onnx --onnxrt --load-inputs golden/polygraphy_inputs.json \\
    --load-outputs golden/polygraphy_outputs.json --atol 1e-5 --rtol 0
```
```python
from edgegen.runtime import Generator
g = Generator.load("<this folder>")
images = g.generate(labels=[0, 1, 0], seed=42)   # uint8 [3, H, W] (RGB: [3, H, W, 3])
```
Every file's sha256 is in `manifest.json`; readers refuse a bundle whose files do not match.
"""


def _sampler_card(s: dict[str, Any] | None) -> str:
    if not s:
        return ""
    files = ", ".join(f"`{v['file']}`" for v in s["denoiser"]["variants"].values())
    return f"""## Sampler
`model.onnx` runs {s['steps']} Euler steps of a flow-matching model with classifier-free guidance
{s['guidance']:g}, unrolled (weights stored once; `z` is the initial noise). For other settings,
loop over the denoiser ({files}: x, t, label -> velocity; label {s['null_label']} is the null
class): `{s['formula']}`. In Python: `g.generate([3], seed=42, steps=8, guidance=1.5)`.

"""


def _rewrites_line(opt: dict[str, Any]) -> str:
    if not opt.get("enabled"):
        return "none (exported with --no-optimize)"
    if not opt.get("applied"):
        return "none applied"
    return ", ".join(f"`{r['name']}` ({len(r['sites'])} site(s))" for r in opt["applied"]) + \
        f" — exact within atol {opt['tolerance']['atol']:g}, rtol {opt['tolerance']['rtol']:g}" \
        " of the unrewritten graph (manifest: `generator.optimization`)"


def _evaluator_line(ev: dict[str, Any] | None) -> str:
    if not ev:
        return "not included"
    return f"`evaluator.onnx` (held-out accuracy {_pct(ev['heldout_accuracy'])})"


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{x:.2%}"
