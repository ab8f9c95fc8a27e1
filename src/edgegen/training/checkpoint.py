"""Checkpoints: one safetensors file holding every tensor and, in its metadata, the JSON that
describes the run. No pickle anywhere.

A run folder holds ``checkpoint.safetensors`` (the truth, replaced atomically so a crash never
leaves a half-written checkpoint in place of a good one) and ``config.json`` (the same
description, for people to read).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from edgegen.core.errors import CheckpointError
from edgegen.models.config import ARCHITECTURES, ModelConfig
from edgegen.runtime.bundle import Bundle
from edgegen.runtime.fileio import atomic_write_bytes, atomic_write_json, sha256_file

FORMAT = "edgegen.checkpoint/1"
CHECKPOINT_NAME = "checkpoint.safetensors"
CONFIG_NAME = "config.json"


def checkpoint_path(run: str | Path) -> Path:
    run = Path(run)
    return run if run.suffix == ".safetensors" else run / CHECKPOINT_NAME


def save_checkpoint(run_dir: str | Path, tensors: dict[str, Any], info: dict[str, Any]) -> Path:
    """Write ``tensors`` (name -> torch.Tensor) and ``info`` atomically into ``run_dir``."""
    from safetensors.torch import save

    info = {"format": FORMAT, **info}
    flat = {k: v.detach().cpu().contiguous().clone() for k, v in tensors.items()}
    data = save(flat, metadata={"edgegen": json.dumps(info)})
    path = checkpoint_path(run_dir)
    atomic_write_bytes(path, data)
    atomic_write_json(path.parent / CONFIG_NAME, info)
    return path


def read_info(run: str | Path) -> dict[str, Any]:
    """The run description stored in a checkpoint, without loading its tensors."""
    from safetensors import safe_open

    path = _existing(run)
    try:
        with safe_open(str(path), framework="pt") as fh:
            meta = fh.metadata() or {}
    except Exception as exc:  # noqa: BLE001 - safetensors raises several types for bad files
        raise CheckpointError(f"{path} is not a readable safetensors checkpoint ({exc}); it is "
                              "corrupt or truncated — retrain or restore it") from exc
    return _parse_info(path, meta)


def load_checkpoint(run: str | Path, *, sha256: str | None = None
                    ) -> tuple[dict[str, Any], dict[str, Any]]:
    """Return (info, tensors) of the checkpoint in ``run`` (a run folder or the file itself).
    With ``sha256`` the bytes read (and parsed: read once) must have that digest."""
    path = _existing(run)
    raw = path.read_bytes()
    if sha256 is not None and hashlib.sha256(raw).hexdigest() != sha256:
        raise CheckpointError(f"{path} changed since it was checked (its sha256 is no longer "
                              f"{sha256[:16]}…); rerun once it is back")
    return parse_checkpoint(raw, path)


def read_checkpoint_bytes(run: str | Path) -> bytes:
    """The bytes of the checkpoint in ``run`` (a CheckpointError when there is none)."""
    return _existing(run).read_bytes()


def parse_checkpoint(raw: bytes, path: str | Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """(info, tensors) of checkpoint bytes ``raw`` read from ``path`` (named in errors)."""
    from safetensors.torch import load

    path = Path(path)
    try:
        tensors = load(raw)
        header_len = int.from_bytes(raw[:8], "little")
        meta = json.loads(raw[8:8 + header_len]).get("__metadata__", {})
    except Exception as exc:  # noqa: BLE001
        raise CheckpointError(f"{path} is not a readable safetensors checkpoint ({exc}); it is "
                              "corrupt or truncated — retrain or restore it") from exc
    return _parse_info(path, meta), tensors


def _existing(run: str | Path) -> Path:
    path = checkpoint_path(run)
    if not path.is_file():
        where = Path(run)
        what = "does not exist" if not where.exists() else f"holds no {CHECKPOINT_NAME}"
        raise CheckpointError(f"{where} {what}: expected a run folder made by `edgegen train` "
                              "or `edgegen train-evaluator`")
    return path


def _parse_info(path: Path, meta: dict[str, str]) -> dict[str, Any]:
    try:
        info = json.loads(meta["edgegen"])
    except (KeyError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path} has no edgegen run description in its metadata; it was "
                              "not written by edgegen") from exc
    if info.get("format") != FORMAT:
        raise CheckpointError(f"{path} has format {info.get('format')!r}; this edgegen reads "
                              f"{FORMAT!r}")
    return info


def module_tensors(prefix: str, module: Any) -> dict[str, Any]:
    return {f"{prefix}.{k}": v for k, v in module.state_dict().items()}


def load_module(prefix: str, module: Any, tensors: dict[str, Any], source: Path | str) -> None:
    """Load ``prefix.*`` tensors into ``module``, strictly."""
    sub = {k[len(prefix) + 1:]: v for k, v in tensors.items() if k.startswith(prefix + ".")}
    try:
        module.load_state_dict(sub, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"{source}: the {prefix} weights do not fit the architecture its "
                              f"config describes ({str(exc).splitlines()[0]})") from exc


def optimizer_tensors(prefix: str, opt: Any) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Flatten an optimizer's state into tensors plus its JSON-able param_groups."""
    import torch

    sd = opt.state_dict()
    flat = {}
    for idx, state in sd["state"].items():
        for key, val in state.items():
            flat[f"{prefix}.{idx}.{key}"] = val if torch.is_tensor(val) else torch.tensor(val)
    return flat, sd["param_groups"]


def load_optimizer(prefix: str, opt: Any, tensors: dict[str, Any],
                   groups: list[dict[str, Any]]) -> None:
    state: dict[int, dict[str, Any]] = {}
    for name, val in tensors.items():
        if name.startswith(prefix + "."):
            idx, key = name[len(prefix) + 1:].split(".", 1)
            state.setdefault(int(idx), {})[key] = val
    opt.load_state_dict({"state": state, "param_groups": groups})


# --------------------------------------------------------------------------- generators

def load_generator(checkpoint: Path, sampler: dict[str, Any] | None = None, *,
                   sha256: str | None = None) -> tuple[Any, dict[str, Any]]:
    """The generator of a run (eval mode) and the run's description. ``sampler`` (a bundle's
    ``sampler`` section) sets an iterative family's steps and guidance to the bundle's, so that
    PyTorch runs exactly what model.onnx unrolls; with ``sha256`` the checkpoint's bytes must
    have that digest (``load_checkpoint``)."""
    info, tensors = load_checkpoint(checkpoint, sha256=sha256)
    return generator_from(info, tensors, checkpoint, sampler), info


def generator_from(info: dict[str, Any], tensors: dict[str, Any], where: Path | str,
                   sampler: dict[str, Any] | None = None) -> Any:
    """The generator (eval mode) of a parsed checkpoint (``parse_checkpoint``) read from
    ``where`` (named in errors); ``info["exported_weights"]`` says which weights it holds."""
    from edgegen.models.registry import build_models

    if info.get("kind") != "generator":
        raise CheckpointError(f"{where} holds a {info.get('kind')!r} run, not a generator; "
                              "export a run made by `edgegen train`")
    if info.get("arch") not in ARCHITECTURES:
        raise CheckpointError(f"{where} is of architecture {info.get('arch')!r}, which this "
                              f"edgegen does not know (it knows {', '.join(ARCHITECTURES)})")
    mcfg = ModelConfig.from_dict(info["model"])
    gen = build_models(mcfg)["generator"]
    # GAN runs keep an exponential moving average of the generator: that is the one to ship.
    prefix = "generator_ema" if any(k.startswith("generator_ema.") for k in tensors) \
        else "generator"
    load_module(prefix, gen, tensors, where)
    info["exported_weights"] = prefix
    if sampler and hasattr(gen, "set_sampler"):
        gen.set_sampler(int(sampler["steps"]), float(sampler["guidance"]))
    return gen.eval()


def load_reference(bundle: Bundle, checkpoint: Path) -> tuple[Any, dict[str, Any]]:
    """The bundle's PyTorch reference: the generator of ``checkpoint`` (from
    ``bundle_checkpoint``), its bytes checked against the manifest's sha256, with the bundle's
    sampler settings — what verify, eval and the benchmark's PyTorch peer compare with."""
    recorded = bundle.manifest.get("provenance", {}).get("checkpoint", {}).get("sha256")
    return load_generator(checkpoint, bundle.sampler, sha256=recorded)


def bundle_checkpoint(bundle: Bundle) -> tuple[Path | None, str]:
    """The checkpoint ``bundle`` was exported from, when it is still where the manifest says and
    unchanged (its sha256 matches); otherwise ``(None, why)``. This is the PyTorch reference of
    verify, eval and the benchmark's PyTorch peer."""
    recorded = bundle.manifest.get("provenance", {}).get("checkpoint", {})
    source = bundle.manifest.get("provenance", {}).get("source") or {}
    ckpt = bundle.checkpoint
    if ckpt is None and source.get("kind") == "onnx":
        return None, (f"the PyTorch reference is unavailable: the bundle wraps the ONNX graph "
                      f"{source.get('file')!r} (its goldens were computed by ONNX Runtime CPU "
                      "float32)")
    if ckpt is None and source.get("kind") == "module":
        return None, (f"the PyTorch reference is unavailable after export: the bundle comes from "
                      f"the module {source.get('factory')} (its goldens were computed by it in "
                      "PyTorch float32 at export)")
    if ckpt is None:
        where = (bundle.root / str(recorded.get("path"))) if recorded.get("path") else None
        return None, (f"the checkpoint the bundle was exported from is not at {where} (the "
                      f"manifest's provenance.checkpoint.path {recorded.get('path')!r}, relative "
                      "to the bundle); put the run back there to compare with PyTorch")
    digest = sha256_file(ckpt)
    if recorded.get("sha256") and digest != recorded["sha256"]:
        return None, (f"{ckpt} has sha256 {digest[:16]}…, the bundle was exported from "
                      f"{str(recorded['sha256'])[:16]}…: the run was retrained or replaced since "
                      "export, so PyTorch is not this bundle's reference; re-export to compare "
                      "with it")
    return ckpt, ""
