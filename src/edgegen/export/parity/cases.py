"""Parity's inputs: the batches verify runs (``Case``) and their reference outputs.

* ``golden_case`` — every golden set of the bundle (PyTorch float32 on CPU at export time), read
  through ``Bundle.read`` (sha256 checked);
* ``fresh_cases`` — fresh portable latents at each requested batch size, their reference filled
  by ``pytorch_reference`` from the checkpoint the manifest names (when it is still there and
  unchanged).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgegen.core.errors import BundleError, ConfigError
from edgegen.export.parity.config import VerifyConfig
from edgegen.runtime.bundle import Bundle
from edgegen.runtime.sessions import run_evaluator, run_generator
from edgegen.training.checkpoint import bundle_checkpoint, load_reference
from edgegen.training.torch_utils import generate_images


@dataclass
class Case:
    """A batch of generator inputs with its reference outputs and where each sample came from."""

    name: str  # "golden" or "pytorch@B"
    z: np.ndarray  # float32 [N, z_dim]
    label: np.ndarray  # int64 [N]
    seeds: list[str]  # per sample (strings: seeds may exceed 2**53)
    index: list[int]  # per sample: row of latent(seed, ...) it came from
    reference: np.ndarray | None  # float32 [N, 1, 28, 28]; None when no reference exists
    parts: list[tuple[int, int]] = field(default_factory=list)  # run in these [start, stop)


def golden_case(bundle: Bundle) -> Case:
    """Every golden set concatenated; each set is still run at its own batch size. The tensors
    come from bytes checked against the manifest (``Bundle.read``)."""
    from edgegen.export.golden import bundle_golden_set

    zs, labels, outs, seeds, index, parts = [], [], [], [], [], []
    entries = bundle.manifest["golden"]["sets"]
    start = 0
    for i, entry in enumerate(entries):
        inputs, expected = bundle_golden_set(bundle, i)
        if len(inputs) != 2 or inputs[0].ndim != 2 or inputs[1].shape != inputs[0].shape[:1]:
            raise BundleError(f"{bundle.root}: golden set {entry['dir']} does not hold a z "
                              "[B, z_dim] and a label [B] input; re-export the bundle")
        z, label = inputs  # [B, z_dim], [B] -> expected [B, C, H, W]
        zs.append(z)
        labels.append(label)
        outs.append(expected)
        seeds += [str(entry.get("seed", bundle.manifest["golden"].get("seed")))] * len(label)
        index += list(range(int(entry.get("start", 0)), int(entry.get("start", 0)) + len(label)))
        parts.append((start, start + len(label)))
        start += len(label)
    if not zs:
        raise ConfigError(f"{bundle.root} lists no golden sets; re-export the bundle")
    return Case("golden", np.concatenate(zs), np.concatenate(labels), seeds, index,
                np.concatenate(outs), parts)


def fresh_cases(bundle: Bundle, cfg: VerifyConfig) -> list[Case]:
    """One batch per requested size, each from its own range of ``cfg.seed``'s latent stream
    (batch 1 is sample 0, the next batch starts at sample 1, ...), labels cycling 0..9."""
    from edgegen.runtime.latent import latent

    cases, offset = [], 0
    for b in cfg.batches:
        z = latent(cfg.seed, b, bundle.z_dim, start=offset)  # [b, z_dim]
        label = (np.arange(offset, offset + b) % bundle.n_classes).astype(np.int64)
        cases.append(Case(f"pytorch@{b}", z, label, [str(cfg.seed)] * b,
                          list(range(offset, offset + b)), None, [(0, b)]))
        offset += b
    return cases


def pytorch_reference(bundle: Bundle, cases: list[Case]) -> dict[str, Any]:
    """Fill ``case.reference`` from the checkpoint the manifest names, when it is there and is
    the one the bundle was exported from; say why not otherwise."""
    recorded = bundle.manifest.get("provenance", {}).get("checkpoint", {})
    info: dict[str, Any] = {"recorded_path": recorded.get("path"),
                            "recorded_sha256": recorded.get("sha256")}
    ckpt, why = bundle_checkpoint(bundle)
    if ckpt is None:
        info.update(status="skipped", reason=f"{why}. The pytorch@B checks are skipped; the "
                    "fresh inputs still go through determinism, labels are checked on the "
                    "golden images only")
        return info
    import torch

    gen, run_info = load_reference(bundle, ckpt)
    for case in cases:  # [B, z_dim], [B] -> [B, C, H, W], float32 on CPU like the goldens
        case.reference = generate_images(gen, case.z, case.label, batch=len(case.label))
    info.update(status="used", path=str(ckpt), sha256=recorded.get("sha256"),
                weights=run_info.get("exported_weights"), torch=torch.__version__,
                device="cpu", dtype="float32")
    return info


def run_case(session: Any, case: Case) -> np.ndarray:
    """ONNX Runtime outputs for ``case``, each part at its own batch size: [N, 1, 28, 28]."""
    outs = [run_generator(session, case.z[a:b], case.label[a:b], batch=b - a)
            for a, b in case.parts]
    return np.concatenate(outs)


def predict(evaluator: Any, images: np.ndarray) -> np.ndarray:
    """The evaluator's digit for each image: int64 [N]."""
    return run_evaluator(evaluator, images.astype(np.float32))[0].argmax(1)

