"""The bundle's ``evaluator.onnx``: the independent digit classifier, exported for verify, eval
and the runtime guard (never a training signal for the generator)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgegen.core import __version__
from edgegen.export.config import OUTPUT_RANGE
from edgegen.runtime.fileio import sha256_file
from edgegen.training.checkpoint import CHECKPOINT_NAME


def evaluator_mismatch(run: Path, n_classes: int, shape: list[int]) -> str | None:
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


def export_evaluator(run: Path, root: Path, opset: int) -> dict[str, Any]:
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

