"""``edgegen train-evaluator``: the independent judge of hallucination.

A small CNN (``edgegen.models.classifier``) trained on **real** digits only — never on generated
images, and never used as a training signal for a generator. ``train_evaluator(cfg) ->
EvaluatorResult`` reports its accuracy on the held-out digits, which no training step sees.

Like the generator's loop (``edgegen.training.train``) it runs on one process or on every process
torchrun started: ``batch_size`` is the global batch (each epoch drops the last, incomplete one,
so every process count sees the same batches), the augmentation and the dropout masks of a digit
come from its global position (``edgegen.training.draws``), BatchNorm uses the global batch, DDP
averages the gradients, and only rank 0 measures and writes the result. A torchrun restart
trains it again from the start (it has no intermediate checkpoint).
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgegen.core import __version__
from edgegen.core.errors import CheckpointError, ConfigError, require_positive
from edgegen.core.fileio import check_output_dir
from edgegen.core.progress import ProgressFn, Reporter, step_info
from edgegen.core.report import Report
from edgegen.models.config import ClassifierConfig
from edgegen.runtime.fileio import atomic_write_text
from edgegen.training.checkpoint import (
    CHECKPOINT_NAME,
    load_checkpoint,
    load_module,
    module_tensors,
    save_checkpoint,
)
from edgegen.training.distributed import check_global_batch, joined
from edgegen.training.draws import Draws, DrawSource
from edgegen.training.torch_utils import sample_images, seed_for


@dataclass(frozen=True)
class EvaluatorConfig:
    out: Path = Path("runs/evaluator")
    epochs: int = 12
    max_minutes: float | None = None
    batch_size: int = 128
    lr: float = 2e-3
    weight_decay: float = 1e-4
    augment: bool = True  # small random affine warps of the real digits
    seed: int = 0
    device: str = "cpu"
    data_dir: Path | None = None
    download: bool = True  # may fetch MNIST with torchvision when no --data-dir is given
    image_size: int | None = None  # resize every image to S x S (None: the data's own size)
    width: int = 32
    threads: int | None = None  # torch threads per process; None: setup_torch's default
    dist_timeout_s: float = 180.0  # how long a collective waits for a rank that hangs
    force: bool = False


@dataclass
class EvaluatorResult(Report):
    out: Path
    heldout_accuracy: float
    heldout_samples: int
    per_label_accuracy: list[float]
    train_accuracy: float
    epochs: int
    elapsed_s: float
    images_per_s: float
    data: str
    checkpoint: Path


def _augment(x: Any, rnd: Draws) -> Any:
    """Random rotation (±12°), scale (0.9–1.1) and shift (±2 px of a 28-pixel image, the same
    share of any other size) of ``x: [B, C, H, W]``; per sample, from ``rnd``."""
    import torch
    import torch.nn.functional as F

    u = rnd.uniform("augment", 4) * 2 - 1  # [B, 4] in [-1, 1)
    ang = u[:, 0] * math.radians(12)
    scale = 1 + 0.1 * u[:, 1]
    cos, sin = torch.cos(ang) / scale, torch.sin(ang) / scale
    shift = u[:, 2:] * (2 * 2 / 28)  # 2 pixels in normalised coordinates
    theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1),
                         torch.stack([sin, cos, shift[:, 1]], 1)], 1)  # [B, 2, 3]
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    # background is -1; grid_sample pads with 0, so shift to [0, 2] and back
    return F.grid_sample(x + 1, grid, align_corners=False, padding_mode="zeros") - 1


def check_evaluator_config(cfg: EvaluatorConfig, world_size: int = 1) -> None:
    """The checks that need no data (a ConfigError naming the option)."""
    require_positive(cfg, "epochs", "batch_size", "lr", "max_minutes", "threads",
                     "dist_timeout_s")
    check_global_batch(cfg.batch_size, world_size)


def train_evaluator(cfg: EvaluatorConfig, on_progress: ProgressFn | None = None
                    ) -> EvaluatorResult:
    """Train the evaluator as ``cfg`` says, on this process or on every process torchrun
    started; see the module docstring."""
    check_evaluator_config(cfg)
    with joined(cfg.device, cfg.threads, cfg.dist_timeout_s) as world:
        return _train_evaluator(cfg, world, on_progress if world.main else None)


def _train_evaluator(cfg: EvaluatorConfig, world: Any, on_progress: ProgressFn | None
                     ) -> EvaluatorResult:
    import torch
    import torch.nn.functional as F

    from edgegen.models.classifier import DigitClassifier
    from edgegen.training.data import load_mnist, to_tensor_range
    from edgegen.training.layers import convert_dropout

    report = Reporter("train-evaluator", on_progress)
    out = Path(cfg.out)
    device = world.device

    def check_out() -> None:  # rank 0 looks at the folder, for everyone
        check_output_dir(out, "--out")
        if (out / CHECKPOINT_NAME).exists() and not cfg.force and not world.restarted:
            raise ConfigError(f"{out} already holds an evaluator; pick another --out or pass "
                              "--force")

    world.from_main(check_out)
    offset, n_local = world.shard(cfg.batch_size)

    data = load_mnist(cfg.data_dir, download=cfg.download, image_size=cfg.image_size)
    report.say(data.describe())
    x = torch.from_numpy(to_tensor_range(data.train_images)).to(device)
    y = torch.from_numpy(data.train_labels).to(device)
    n_batches = len(y) // cfg.batch_size  # the last, incomplete batch is dropped
    if n_batches == 0:
        raise ConfigError(f"--batch-size {cfg.batch_size} is larger than the {len(y)} "
                          "training digits")

    ccfg = ClassifierConfig(width=cfg.width, n_classes=data.n_classes,
                            image_shape=data.image_shape)
    torch.manual_seed(cfg.seed)
    model = DigitClassifier(ccfg).to(device)
    source = DrawSource()
    convert_dropout(model, source)
    world.prepare({"classifier": model})
    net = world.wrap({"classifier": model})["classifier"]
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, epochs=cfg.epochs,
                                                steps_per_epoch=n_batches)
    total = cfg.epochs * n_batches
    report.count("evaluator steps", 0, total, "steps")
    t0, step, seen, epoch = time.perf_counter(), 0, 0, 0
    budget = (cfg.max_minutes or math.inf) * 60
    for epoch in range(1, cfg.epochs + 1):
        net.train()
        perm = torch.from_numpy(
            np.random.default_rng(seed_for(cfg.seed, epoch, 0)).permutation(len(y))).to(device)
        for b in range(n_batches):
            start = b * cfg.batch_size + offset  # global position of this rank's first digit
            idx = perm[start:start + n_local]
            rnd = source.current = Draws(cfg.seed, epoch, start, n_local, device)
            try:
                xb = _augment(x[idx], rnd) if cfg.augment else x[idx]
                loss = F.cross_entropy(net(xb), y[idx], label_smoothing=0.05)
                opt.zero_grad(set_to_none=True)
                loss.backward()
            finally:
                source.current = None
            opt.step()
            sched.step()
            step += 1
            seen += cfg.batch_size
            losses, ips = {"loss": round(loss.item(), 4)}, seen / (time.perf_counter() - t0)
            report.count("evaluator steps", step, total, "steps",
                         info=step_info(epoch - 1, losses, ips),
                         metrics={**losses, "epoch": epoch - 1, "images_per_s": ips})
        # every rank stops after the same epoch: the slowest rank's clock decides
        if world.agree_max(time.perf_counter() - t0) >= budget:
            break
    elapsed = time.perf_counter() - t0
    world.barrier()

    model.eval()
    pred_ho = predict(model, to_tensor_range(data.heldout_images), device)
    pred_tr = predict(model, to_tensor_range(data.train_images), device)
    per_label = [float(np.mean(pred_ho[data.heldout_labels == d] == d))
                 if np.any(data.heldout_labels == d) else float("nan")
                 for d in range(data.n_classes)]
    result = EvaluatorResult(
        out=out, heldout_accuracy=float(np.mean(pred_ho == data.heldout_labels)),
        heldout_samples=int(len(pred_ho)), per_label_accuracy=per_label,
        train_accuracy=float(np.mean(pred_tr == data.train_labels)), epochs=epoch,
        elapsed_s=round(elapsed, 2), images_per_s=round(seen / elapsed, 1),
        data=data.describe(), checkpoint=out / CHECKPOINT_NAME)
    if not world.main:
        return result
    out.mkdir(parents=True, exist_ok=True)
    save_checkpoint(out, module_tensors("classifier", model), {
        "kind": "evaluator", "arch": "digit-cnn", "model": ccfg.to_dict(),
        "train": {**asdict(cfg), "out": str(out), "force": False,
                  "data_dir": str(cfg.data_dir) if cfg.data_dir else None},
        "data": data.provenance(), "heldout_accuracy": result.heldout_accuracy,
        "per_label_accuracy": per_label, "epoch": epoch, "step": step,
        "world_size": world.size, "threads": torch.get_num_threads(),
        "edgegen_version": __version__, "torch_version": torch.__version__,
    })
    atomic_write_text(out / "result.json", result.to_json() + "\n")
    return result


# --------------------------------------------------------------------------- use

def find_evaluator(explicit: str | Path | None, run_dir: str | Path) -> Path | None:
    """The evaluator run to use: ``explicit`` (which must hold a checkpoint), else the
    ``evaluator`` folder beside ``run_dir`` when there is one, else None."""
    if explicit is not None:
        if not (Path(explicit) / CHECKPOINT_NAME).is_file():
            raise CheckpointError(f"--evaluator {explicit} holds no {CHECKPOINT_NAME}; "
                                  "train one with `edgegen train-evaluator`")
        return Path(explicit)
    default = Path(run_dir).parent / "evaluator"
    return default if (default / CHECKPOINT_NAME).is_file() else None


def load_evaluator(run: str | Path, device: Any = "cpu") -> Any:
    """The evaluator of ``run`` (a ``DigitClassifier``) in eval mode."""
    from edgegen.models.classifier import DigitClassifier

    info, tensors = load_checkpoint(run)
    if info.get("kind") != "evaluator":
        raise CheckpointError(f"{run} holds a {info.get('kind')!r} run, not an evaluator; "
                              "train one with `edgegen train-evaluator`")
    model = DigitClassifier(ClassifierConfig.from_dict(info["model"]))
    load_module("classifier", model, tensors, run)
    return model.to(device).eval()


def predict(model: Any, images: np.ndarray, device: Any = "cpu", batch: int = 1000
            ) -> np.ndarray:
    """Predicted labels for float32 ``[N, C, H, W]`` images in [-1, 1]."""
    return classify(model, images, device, batch)[0].argmax(1)


def classify(model: Any, images: np.ndarray, device: Any = "cpu", batch: int = 1000
             ) -> tuple[np.ndarray, np.ndarray]:
    """(probabilities ``[N, n_classes]``, features ``[N, F]``) of float32 images in [-1, 1]."""
    import torch

    probs, feats = [], []
    with torch.no_grad():
        for s in range(0, len(images), batch):
            xb = torch.from_numpy(np.ascontiguousarray(images[s:s + batch])).to(device)
            f = model.features(xb)
            probs.append(torch.softmax(model.head(f), 1).cpu().numpy())
            feats.append(f.cpu().numpy())
    if not probs:
        n_classes = model.head.out_features
        return np.zeros((0, n_classes), np.float32), np.zeros((0, 0), np.float32)
    return np.concatenate(probs), np.concatenate(feats)


def generator_fidelity(generator: Any, evaluator: Any, z_dim: int, n: int, seed: int,
                       device: Any = "cpu", n_classes: int = 10) -> dict[str, Any]:
    """Share of ``n`` generated samples (labels balanced) the evaluator calls the asked label."""
    if evaluator.head.out_features != n_classes:
        raise CheckpointError(f"the evaluator judges {evaluator.head.out_features} classes and "
                              f"the generator draws {n_classes}; train an evaluator on the same "
                              "data (edgegen train-evaluator --data-dir ...)")
    labels = np.arange(n) % n_classes
    images = sample_images(generator, z_dim, labels, seed, device)
    pred = predict(evaluator, images, device)
    hit = pred == labels
    p = float(hit.mean())
    half = 1.96 * math.sqrt(max(p * (1 - p), 1e-12) / n)
    return {"fidelity": p, "ci95": [max(0.0, p - half), min(1.0, p + half)], "samples": n,
            "seed": seed, "per_label": [float(hit[labels == d].mean()) if np.any(labels == d)
                                        else float("nan") for d in range(n_classes)]}


__all__ = ["EvaluatorConfig", "EvaluatorResult", "check_evaluator_config", "classify",
           "find_evaluator",
           "generator_fidelity",
           "load_evaluator", "predict", "train_evaluator"]
