"""``edgegen train``: train a class-conditional generator, reproducibly, resumably, on one process
or many.

``train(TrainConfig) -> TrainResult``. A run folder holds ``checkpoint.safetensors`` (weights,
optimizer state and the run description), ``config.json``, ``metrics.jsonl`` and
``samples/epoch_NNNN.png``.

**One process or many.** Started by torchrun (``RANK``, ``WORLD_SIZE``... in the environment;
``edgegen train --nproc-per-node N`` runs torchrun itself), the loop trains with DDP
(``edgegen.training.distributed``): ``batch_size`` is the global batch, rank ``r`` computes the
contiguous slice ``r`` of every global batch, BatchNorm statistics are those of the global batch,
gradients are averaged. Only rank 0 writes the checkpoint, sample grids, metrics and the final
fidelity; every rank stops at the same step (a minute budget is agreed on by an all-reduce).
A checkpoint holds global positions only (epoch, batch of the epoch, step, images), so a run
written by N processes resumes on M. Restarted by torchrun (``--max-restarts``), a run resumes
from its checkpoint by itself.

**The loop.** Epoch ``e`` visits the training digits in the order of a permutation seeded by
``(seed, e)``; global batch ``b`` holds positions ``b * batch_size ...`` of that order. Each
step calls the family's step function::

    step_fn(nets, opts, x, y, rnd, mcfg, cfg) -> dict[str, float]   # losses, for the log

with this rank's slice of the batch (``x: [n, C, H, W]`` in [-1, 1], ``y: [n]``), the networks
(``nets[name]``: call them and their methods as usual; on several processes they are DDP
proxies) and their optimizers, and ``rnd``, the slice's ``edgegen.training.draws.Draws``.

**How a step function draws randomness.** Only through ``rnd``, by stream name, one row per
sample: ``rnd.normal("z", z_dim)`` (float32 ``[n, z_dim]``), ``rnd.randint("label", 10)``
(int64 ``[n]``), ``rnd.uniform("t")`` (float32 ``[n]`` in [0, 1)), ``rnd.normal("x0",
*x.shape[1:])``. Each value is a function of (seed, epoch, stream name, the sample's global
position in the epoch) — counter-based, no generator state — so the noise of a sample does not
depend on the process count, on the batch split, or on the order of the draws, and a checkpoint
needs no generator state. Never ``torch.randn``/``rand``/``randint`` or ``nn.Dropout`` in a step
(the loop swaps the networks' ``nn.Dropout`` for ``SampleDropout``, which draws from ``rnd``).
Losses are means over the slice (never sums, never divided by a global count): DDP averages the
ranks' gradients, which is then the gradient of the global batch's mean.

**Reproducible.** The same seed, steps, thread count and machine give bitwise identical weights
(``edgegen.training.torch_utils.setup_torch`` pins what varies otherwise); the same seed on 1 or
N processes gives the same weights up to floating-point summation order (statistics over the
batch — BatchNorm, cmlp's label-grouped minibatch std — are all-reduced over the ranks). One
exception: cvae's free-bits floor (``--free-bits`` > 0) clamps each process's batch-mean KL, so
such a run matches across process counts only approximately.
"""

from __future__ import annotations

import copy
import json
import math
import platform
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from edgegen.core import __version__
from edgegen.core.errors import CheckpointError, ConfigError, require_positive
from edgegen.core.fileio import check_output_dir
from edgegen.core.progress import ProgressFn, Reporter, step_info
from edgegen.core.report import Report
from edgegen.models.config import ARCHITECTURES, ModelConfig, model_config
from edgegen.runtime.fileio import atomic_write_text
from edgegen.training.checkpoint import (
    CHECKPOINT_NAME,
    load_module,
    load_optimizer,
    module_tensors,
    optimizer_tensors,
    parse_checkpoint,
    read_checkpoint_bytes,
    save_checkpoint,
)
from edgegen.training.distributed import check_global_batch, joined
from edgegen.training.draws import Draws, DrawSource
from edgegen.training.torch_utils import sample_images, seed_for

DEFAULT_ARCH = "cdcgan"
# Sound defaults per architecture: Adam 2e-4, betas (0.5, 0.999) for the BCE GANs (Radford et
# al.). cmlp: hinge loss with two time-scales (the discriminator learns 4x faster, Heusel et al.
# 2017) and betas (0, 0.9), as spectrally normalised GANs train (Miyato et al. 2018).
ARCH_DEFAULTS: dict[str, dict[str, Any]] = {
    "cdcgan": {"lr": 2e-4, "beta1": 0.5, "beta2": 0.999, "epochs": 30, "loss": "bce"},
    "cmlp": {"lr": 1e-4, "lr_d": 4e-4, "beta1": 0.0, "beta2": 0.9, "epochs": 200,
             "loss": "hinge"},
    "cvae": {"lr": 1e-3, "beta1": 0.9, "beta2": 0.999, "epochs": 30, "kl_weight": 1.0,
             "free_bits": 0.0},
    # flow matching: plain Adam 1e-3 (betas 0.9, 0.999), gradients clipped at norm 1, EMA
    "cflow": {"lr": 1e-3, "beta1": 0.9, "beta2": 0.999, "epochs": 40},
}
GAN_LOSSES = ("bce", "hinge")
REAL_TARGET = 0.9  # one-sided label smoothing for the discriminator's real targets
TIME_SAMPLING = ("uniform", "logit-normal")
SAMPLE_SEED = 7  # the fixed latent of the per-epoch sample grids
FIDELITY_SEED = 2026

@dataclass(frozen=True)
class TrainConfig:
    out: Path = Path("runs/cdcgan")
    arch: str | None = None  # None: cdcgan for a new run, the checkpoint's for --resume
    epochs: int | None = None  # total epochs; None: the architecture's default (unless
    max_steps: int | None = None  # ... another budget is given)
    max_minutes: float | None = None  # total training time, summed over resumes
    batch_size: int = 64
    lr: float | None = None  # None: the architecture's default (the generator's, for GANs)
    lr_d: float | None = None  # GANs: the discriminator's learning rate (None: default / lr)
    loss: str | None = None  # GANs: "bce" (non-saturating) or "hinge"; None: the arch's
    kl_weight: float | None = None  # cvae: beta, the weight of the KL term (None: the arch's)
    free_bits: float | None = None  # cvae: KL floor per latent dimension, nats (0: none)
    beta1: float | None = None
    beta2: float | None = None
    seed: int = 0
    device: str = "cpu"
    data_dir: Path | None = None
    download: bool = True  # may fetch MNIST with torchvision when no --data-dir is given
    image_size: int | None = None  # resize every image to S x S (None: the data's own size)
    z_dim: int | None = None
    width: int | None = None
    aux_weight: float = 1.0  # cdcgan: weight of the discriminator's auxiliary class loss
    ema_decay: float = 0.999  # GANs, cflow: exponential moving average of the generator (0: off)
    label_dropout: float = 0.1  # cflow: share of labels replaced by the null class (for guidance)
    time_sampling: str = "uniform"  # cflow: how t is drawn: uniform | logit-normal
    evaluator: Path | None = None  # None: <out>/../evaluator when it exists
    fidelity_samples: int = 1000
    threads: int | None = None  # torch threads per process; None: setup_torch's default
    resume: bool = False
    log_every: int = 50
    checkpoint_every: int | None = None  # steps between checkpoints; None: each epoch only
    dist_timeout_s: float = 180.0  # how long a collective waits for a rank that hangs
    force: bool = False  # a new run may replace an existing run folder


@dataclass
class TrainResult(Report):
    out: Path
    arch: str
    epoch: int  # completed epochs
    step: int
    stopped_by: str
    elapsed_s: float
    images_per_s: float
    last_losses: dict[str, float]
    data: str
    checkpoint: Path
    fidelity: dict[str, Any] | None = None
    samples: list[Path] = field(default_factory=list)


# --------------------------------------------------------------------------- config checks

def check_config(cfg: TrainConfig, world_size: int = 1) -> None:
    """The checks that need no data and no checkpoint (a ConfigError naming the option); the
    launcher runs them before it starts any process."""
    require_positive(cfg, "epochs", "max_steps", "max_minutes", "batch_size", "fidelity_samples",
                     "lr", "lr_d", "checkpoint_every", "dist_timeout_s", "threads")
    if cfg.loss is not None and cfg.loss not in GAN_LOSSES:
        raise ConfigError(f"unknown GAN loss {cfg.loss!r}; expected one of "
                          f"{', '.join(GAN_LOSSES)}")
    for name in ("kl_weight", "free_bits"):
        if (getattr(cfg, name) or 0) < 0:
            raise ConfigError(f"--{name.replace('_', '-')} must be >= 0, got "
                              f"{getattr(cfg, name)}")
    if cfg.arch is not None and cfg.arch not in ARCHITECTURES:
        raise ConfigError(f"unknown architecture {cfg.arch!r}; expected one of "
                          f"{', '.join(ARCHITECTURES)}")
    if not 0.0 <= cfg.label_dropout < 1.0:
        raise ConfigError(f"label_dropout must be in [0, 1), got {cfg.label_dropout}")
    if cfg.time_sampling not in TIME_SAMPLING:
        raise ConfigError(f"time_sampling must be one of {', '.join(TIME_SAMPLING)}, got "
                          f"{cfg.time_sampling!r}")
    check_global_batch(cfg.batch_size, world_size)


def _resolve(cfg: TrainConfig, info: dict[str, Any] | None) -> TrainConfig:
    """Validate ``cfg``; to resume from ``info`` (a checkpoint's description), merge the two."""
    check_config(cfg)
    if info is None:
        arch = cfg.arch or DEFAULT_ARCH
        d = ARCH_DEFAULTS[arch]
        epochs = cfg.epochs
        if epochs is None and cfg.max_steps is None and cfg.max_minutes is None:
            epochs = d["epochs"]
        lr = cfg.lr or d["lr"]
        return replace(cfg, arch=arch, epochs=epochs, lr=lr, resume=False,
                       lr_d=cfg.lr_d or d.get("lr_d", lr), loss=cfg.loss or d.get("loss"),
                       kl_weight=_given(cfg.kl_weight, d.get("kl_weight")),
                       free_bits=_given(cfg.free_bits, d.get("free_bits")),
                       beta1=d["beta1"] if cfg.beta1 is None else cfg.beta1,
                       beta2=d["beta2"] if cfg.beta2 is None else cfg.beta2)

    if info.get("kind") != "generator":
        raise CheckpointError(f"{cfg.out} holds a {info.get('kind')!r} run, not a generator; "
                              "resume it with the command that made it")
    stored = info["train"]
    if cfg.arch is not None and cfg.arch != stored["arch"]:
        raise ConfigError(f"{cfg.out} was trained with --arch {stored['arch']}, not {cfg.arch}; "
                          f"drop --arch or pass --arch {stored['arch']} to resume it")
    # Everything that shapes the run comes from the checkpoint (the global batch included: a
    # run resumes on any process count); only budgets, device, evaluator, threads, logging and
    # checkpointing may change on resume.
    if stored["arch"] == "cmlp" and "d_conditioning" not in info["model"]:
        raise CheckpointError(f"{cfg.out} is a cmlp run from before its discriminator changed "
                              "(projection, spectral norm, minibatch std); its generator still "
                              "exports and evaluates, but its training cannot be resumed: start "
                              "a new run with `edgegen train --arch cmlp`")
    budgets = {k: getattr(cfg, k) for k in ("epochs", "max_steps", "max_minutes")}
    if all(v is None for v in budgets.values()):
        budgets = {k: stored[k] for k in budgets}
    merged = TrainConfig(**{
        **{k: v for k, v in stored.items() if k in TrainConfig.__dataclass_fields__},
        **budgets, "out": cfg.out, "resume": True, "device": cfg.device,
        "evaluator": cfg.evaluator, "threads": cfg.threads, "log_every": cfg.log_every,
        "checkpoint_every": cfg.checkpoint_every, "dist_timeout_s": cfg.dist_timeout_s,
        "data_dir": Path(stored["data_dir"]) if stored.get("data_dir") else None,
    })
    # runs from before these were options: one learning rate, the BCE loss, the plain ELBO
    vae, gan = stored["arch"] == "cvae", stored["arch"] in ("cdcgan", "cmlp")
    merged = replace(merged, lr_d=merged.lr_d or merged.lr,
                     loss=merged.loss or ("bce" if gan else None),
                     kl_weight=_given(merged.kl_weight, 1.0 if vae else None),
                     free_bits=_given(merged.free_bits, 0.0 if vae else None))
    return merged


def _given(value: Any, default: Any) -> Any:
    return default if value is None else value


# --------------------------------------------------------------------------- the stage

def train(cfg: TrainConfig, on_progress: ProgressFn | None = None) -> TrainResult:
    """Train (or resume) a generator run as ``cfg`` says, on this process or on every process
    torchrun started; see the module docstring."""
    check_config(cfg)
    with joined(cfg.device, cfg.threads, cfg.dist_timeout_s) as world:
        return _train(cfg, world, on_progress if world.main else None)


def _train(cfg: TrainConfig, world: Any, on_progress: ProgressFn | None) -> TrainResult:
    import torch

    from edgegen.models.registry import build_models
    from edgegen.training.data import load_mnist, to_tensor_range
    from edgegen.training.layers import convert_dropout

    report = Reporter("train", on_progress)
    out = Path(cfg.out)
    device = world.device

    def read_run() -> bytes | None:  # rank 0 decides whether this is a resume, for everyone
        check_output_dir(out, "--resume" if cfg.resume else "--out")
        if cfg.resume:
            return read_checkpoint_bytes(out)
        if (out / CHECKPOINT_NAME).is_file():
            if world.restarted:  # torchrun restarted the workers: continue where they were
                return read_checkpoint_bytes(out)
            if not cfg.force:
                raise ConfigError(f"{out} already holds a run; continue it with `edgegen train "
                                  f"--resume {out}`, pick another --out, or pass --force to "
                                  "start over")
        return None

    raw = world.from_main(read_run)
    info, tensors = parse_checkpoint(raw, out / CHECKPOINT_NAME) if raw else (None, {})
    cfg = _resolve(cfg, info)
    offset, n_local = world.shard(cfg.batch_size)

    data = load_mnist(cfg.data_dir, download=cfg.download, image_size=cfg.image_size)
    report.say(data.describe())
    x_all = torch.from_numpy(to_tensor_range(data.train_images)).to(device)  # [N, C, H, W]
    y_all = torch.from_numpy(data.train_labels).to(device)  # [N]
    n_batches = len(y_all) // cfg.batch_size
    if n_batches == 0:
        raise ConfigError(f"--batch-size {cfg.batch_size} is larger than the "
                          f"{len(y_all)} training images")

    assert cfg.arch is not None
    # the images' shape and the class count come from the data (MNIST: 1x28x28, 10 digits)
    mcfg = (ModelConfig.from_dict(info["model"]) if info else
            model_config(cfg.arch, z_dim=cfg.z_dim, width=cfg.width,
                         image_shape=data.image_shape, n_classes=data.n_classes))
    if (tuple(mcfg.image_shape), mcfg.n_classes) != (data.image_shape, data.n_classes):
        raise ConfigError(f"{out} was trained on {mcfg.n_classes} classes of "
                          f"{'x'.join(map(str, mcfg.image_shape))} images, but the data now "
                          f"holds {data.n_classes} classes of "
                          f"{'x'.join(map(str, data.image_shape))}; resume with the same "
                          "--data-dir and --image-size")
    torch.manual_seed(cfg.seed)  # initial weights (the same on every rank)
    nets = {k: v.to(device) for k, v in build_models(mcfg).items()}
    # The GANs keep an exponential moving average of the generator's weights; it draws the
    # sample grids, is measured, and is what gets exported (BatchNorm statistics are copied).
    ema = (copy.deepcopy(nets["generator"]).eval().requires_grad_(False)
           if cfg.arch != "cvae" and cfg.ema_decay > 0 else None)
    if cfg.arch == "cdcgan" and not cfg.aux_weight:
        # No loss uses the class head: it gets no gradient (Adam would skip it anyway), and DDP
        # must not wait for one.
        nets["discriminator"].cls.requires_grad_(False)
    source = DrawSource()
    for net in nets.values():
        convert_dropout(net, source)  # dropout masks per sample, from the step's Draws
    world.prepare(nets)  # BatchNorm over the global batch on several processes
    opts = {k: torch.optim.Adam([p for p in v.parameters() if p.requires_grad],
                                lr=cfg.lr_d if k == "discriminator" else cfg.lr,
                                betas=(cfg.beta1, cfg.beta2))
            for k, v in nets.items()}
    state = {"epoch": 0, "batch": 0, "step": 0, "elapsed_s": 0.0, "images": 0}
    if info:
        for k, net in nets.items():
            load_module(k, net, tensors, out)
        if ema is not None:
            load_module("generator_ema", ema, tensors, out)
        for k, opt in opts.items():
            load_optimizer(f"optim.{k}", opt, tensors, info["optim_groups"][k])
        state.update({k: info[k] for k in state})
        if world.main:
            _truncate_metrics(out / "metrics.jsonl", state["step"])
        report.say(f"resuming {out} at epoch {state['epoch']}, batch {state['batch']}, step "
                   f"{state['step']}" + (f" (restart {world.launch.restart_count})"
                                         if world.restarted else ""))
    elif world.main and out.exists():  # a new run: nothing of an earlier one may remain
        for stale in ("metrics.jsonl", CHECKPOINT_NAME):
            (out / stale).unlink(missing_ok=True)
    if world.main:
        out.mkdir(parents=True, exist_ok=True)
    if world.size > 1:
        report.say(f"{world.size} processes ({device.type}), global batch {cfg.batch_size} = "
                   f"{world.size} x {n_local}")
    wrapped = world.wrap(nets)  # what the step function calls: DDP proxies on several ranks

    run_cfg = {**asdict(cfg), "out": str(out), "resume": False, "force": False,
               "data_dir": str(cfg.data_dir) if cfg.data_dir else None, "evaluator": None}
    step_fn = {"cvae": _vae_step, "cflow": _flow_step}.get(cfg.arch, _gan_step)
    ckpt = out / CHECKPOINT_NAME

    def snapshot(finished: bool) -> Path:
        if not world.main:
            return ckpt
        tensors = {}
        groups = {}
        for k, net in nets.items():
            tensors.update(module_tensors(k, net))
        if ema is not None:
            tensors.update(module_tensors("generator_ema", ema))
        for k, opt in opts.items():
            flat, groups[k] = optimizer_tensors(f"optim.{k}", opt)
            tensors.update(flat)
        return save_checkpoint(out, tensors, {
            "kind": "generator", "arch": cfg.arch, "model": mcfg.to_dict(), "train": run_cfg,
            "data": data.provenance(), "optim_groups": groups, "finished": finished,
            **state, "world_size": world.size, "threads": torch.get_num_threads(),
            "randomness": "edgegen.draws/1",
            "edgegen_version": __version__, "torch_version": torch.__version__,
            "python": platform.python_version(), "saved_at": time.time(),
        })

    total_steps = _total_steps(cfg, n_batches)
    report.count(f"{cfg.arch} steps", state["step"], total_steps, "steps")
    t_start, budget_s = time.perf_counter(), (cfg.max_minutes or math.inf) * 60.0
    elapsed0, images0 = state["elapsed_s"], state["images"]
    losses: dict[str, float] = {}
    samples: list[Path] = []
    stopped_by = ""
    while not stopped_by:
        if cfg.epochs is not None and state["epoch"] >= cfg.epochs:
            stopped_by = "epochs"
            break
        e = state["epoch"]
        perm = torch.from_numpy(
            np.random.default_rng(seed_for(cfg.seed, e, 0)).permutation(len(y_all))).to(device)
        for b in range(state["batch"], n_batches):
            start = b * cfg.batch_size + offset  # global position of this rank's first sample
            idx = perm[start:start + n_local]
            source.current = Draws(cfg.seed, e, start, n_local, device)
            try:
                losses = step_fn(wrapped, opts, x_all[idx], y_all[idx], source.current, mcfg,
                                 cfg)
            finally:
                source.current = None
            if ema is not None:
                _update_ema(ema, nets["generator"], cfg.ema_decay, state["step"])
            state["step"] += 1
            state["batch"] = b + 1
            state["images"] += cfg.batch_size
            elapsed = elapsed0 + time.perf_counter() - t_start
            # Every rank stops at the same step: the minute budget is judged on the slowest
            # rank's clock (one all-reduce per step, only when there is such a budget).
            state["elapsed_s"] = world.agree_max(elapsed) if cfg.max_minutes else elapsed
            ips = (state["images"] - images0) / max(time.perf_counter() - t_start, 1e-9)
            if state["step"] % cfg.log_every == 0 or b == n_batches - 1:
                row = world.mean(losses)  # the global batch's losses, the same on any count
                if world.main:
                    _append_metrics(out, {"step": state["step"], "epoch": e,
                                          **{k: round(v, 5) for k, v in row.items()},
                                          "images_per_s": round(ips, 1),
                                          "elapsed_s": round(state["elapsed_s"], 2)})
            report.count(f"{cfg.arch} steps", state["step"], total_steps, "steps",
                         info=step_info(e, losses, ips),
                         metrics={**losses, "epoch": e, "images_per_s": ips})
            if cfg.max_steps is not None and state["step"] >= cfg.max_steps:
                stopped_by = "max_steps"
            elif state["elapsed_s"] >= budget_s:
                stopped_by = "max_minutes"
            if state["batch"] < n_batches:
                if stopped_by:
                    ckpt = snapshot(finished=True)
                    break
                if cfg.checkpoint_every and state["step"] % cfg.checkpoint_every == 0:
                    ckpt = snapshot(finished=False)
        if state["batch"] == n_batches:  # epoch complete
            state["epoch"] += 1
            state["batch"] = 0
            if world.main:
                shown = ema if ema is not None else nets["generator"]
                samples.append(_sample_grid(shown, mcfg, out, state["epoch"], device))
            ckpt = snapshot(finished=bool(stopped_by) or state["epoch"] == cfg.epochs)
    world.barrier()  # the last checkpoint is on disk before any rank leaves

    elapsed = state["elapsed_s"] - elapsed0
    result = TrainResult(
        out=out, arch=cfg.arch, epoch=state["epoch"], step=state["step"], stopped_by=stopped_by,
        elapsed_s=round(elapsed, 2),
        images_per_s=round((state["images"] - images0) / elapsed, 1) if elapsed > 0 else 0.0,
        last_losses=losses, data=data.describe(), checkpoint=ckpt, samples=samples)
    if not world.main:
        return result

    from edgegen.training.evaluator import find_evaluator

    evaluator = find_evaluator(cfg.evaluator, out)
    if evaluator is not None:
        from edgegen.training.evaluator import generator_fidelity, load_evaluator

        clf = load_evaluator(evaluator, device=device)
        measured = ema if ema is not None else nets["generator"]
        result.fidelity = generator_fidelity(measured, clf, mcfg.z_dim, cfg.fidelity_samples,
                                             FIDELITY_SEED, device, n_classes=mcfg.n_classes)
        result.fidelity["evaluator"] = str(evaluator)
        _append_metrics(out, {"step": state["step"], "event": "fidelity", **result.fidelity})
        report.say(f"label fidelity {result.fidelity['fidelity']:.2%} on "
                   f"{result.fidelity['samples']} samples (evaluator {evaluator})")
    atomic_write_text(out / "result.json", result.to_json() + "\n")
    return result


def _total_steps(cfg: TrainConfig, n_batches: int) -> int | None:
    bounds = []
    if cfg.epochs is not None:
        bounds.append(cfg.epochs * n_batches)
    if cfg.max_steps is not None:
        bounds.append(cfg.max_steps)
    return min(bounds) if bounds else None


# --------------------------------------------------------------------------- steps

def _update_ema(ema: Any, live: Any, decay: float, step: int) -> None:
    """``ema = d * ema + (1 - d) * live`` with a warm-up so early averages are not stale."""
    import torch

    d = min(decay, (1 + step) / (10 + step))
    with torch.no_grad():
        for pe, pl in zip(ema.parameters(), live.parameters()):
            pe.lerp_(pl, 1 - d)
        for be, bl in zip(ema.buffers(), live.buffers()):
            be.copy_(bl)


def _gan_step(nets: dict, opts: dict, x: Any, y: Any, rnd: Draws, mcfg: ModelConfig,
              cfg: TrainConfig) -> dict[str, float]:
    """One discriminator step on real + detached fakes, then one generator step.

    ``bce``: non-saturating loss, one-sided label smoothing (real target 0.9). ``hinge``: the
    discriminator pushes real scores above +1 and fake ones below -1, the generator raises its
    fakes' scores. A discriminator with the label-grouped minibatch std sees fakes drawn for the
    batch's real labels, so both batches group the same way.
    """
    import torch
    import torch.nn.functional as F

    G, D = nets["generator"], nets["discriminator"]
    G.train()
    D.train()
    z = rnd.normal("z", mcfg.z_dim)  # [B, z_dim]
    # with the label-grouped minibatch std, fakes take the batch's real labels
    y_fake = y if mcfg.mbstd else rnd.randint("label", mcfg.n_classes)  # [B]
    fake = G(z, y_fake)  # [B, C, H, W]

    adv_real, cls_real = D(x, y)
    adv_fake, _ = D(fake.detach(), y_fake)
    if cfg.loss == "hinge":
        loss_d = F.relu(1 - adv_real).mean() + F.relu(1 + adv_fake).mean()
    else:
        loss_d = (F.binary_cross_entropy_with_logits(adv_real,
                                                     torch.full_like(adv_real, REAL_TARGET))
                  + F.binary_cross_entropy_with_logits(adv_fake, torch.zeros_like(adv_fake)))
    if cls_real is not None and cfg.aux_weight:
        loss_d = loss_d + cfg.aux_weight * F.cross_entropy(cls_real, y)
    opts["discriminator"].zero_grad(set_to_none=True)
    loss_d.backward()
    opts["discriminator"].step()

    adv_fake, cls_fake = D(fake, y_fake)
    if cfg.loss == "hinge":
        loss_g = -adv_fake.mean()
    else:
        loss_g = F.binary_cross_entropy_with_logits(adv_fake, torch.ones_like(adv_fake))
    if cls_fake is not None and cfg.aux_weight:
        loss_g = loss_g + cfg.aux_weight * F.cross_entropy(cls_fake, y_fake)
    opts["generator"].zero_grad(set_to_none=True)
    loss_g.backward()
    opts["generator"].step()
    return {"loss_d": round(loss_d.item(), 5), "loss_g": round(loss_g.item(), 5)}


def _vae_step(nets: dict, opts: dict, x: Any, y: Any, rnd: Draws, mcfg: ModelConfig,
              cfg: TrainConfig) -> dict[str, float]:
    """ELBO step: Bernoulli reconstruction (sigmoid(2a) = (tanh(a) + 1) / 2) + beta * KL.

    KL is against the decoder's prior p(z | y) (N(0, I), or the label's learned Gaussian), per
    latent dimension in closed form; with free bits each dimension's batch-mean KL counts at
    least ``free_bits`` nats, so no dimension is pushed to carry nothing.
    """
    import torch
    import torch.nn.functional as F

    enc, dec = nets["encoder"], nets["generator"]
    enc.train()
    dec.train()
    mu, logvar = enc(x, y)  # [B, z_dim] each
    eps = rnd.normal("eps", *mu.shape[1:])  # [B, z_dim]
    code = mu + eps * torch.exp(0.5 * logvar)
    a = dec.decode_logits(code, y)  # [B, C, H, W]
    b = x.shape[0]
    recon = F.binary_cross_entropy_with_logits(2 * a, (x + 1) / 2, reduction="sum") / b
    p_mu, p_logvar = dec.prior(y)  # [B, z_dim] each
    kl_dims = 0.5 * (p_logvar - logvar + (logvar.exp() + (mu - p_mu).pow(2)) / p_logvar.exp()
                     - 1).mean(0)  # [z_dim]
    kl = kl_dims.sum()
    kl_term = kl_dims.clamp(min=cfg.free_bits).sum() if cfg.free_bits else kl
    loss = recon + cfg.kl_weight * kl_term
    for opt in opts.values():
        opt.zero_grad(set_to_none=True)
    loss.backward()
    for opt in opts.values():
        opt.step()
    return {"loss": round(loss.item(), 4), "recon": round(recon.item(), 4),
            "kl": round(kl.item(), 4)}


def _flow_step(nets: dict, opts: dict, x: Any, y: Any, rnd: Draws, mcfg: ModelConfig,
               cfg: TrainConfig) -> dict[str, float]:
    """Conditional flow matching (rectified flow): regress the velocity ``x1 - x0`` at
    ``x_t = (1 - t) x0 + t x1`` (``x0`` noise, ``x1 = x`` the digits); a ``label_dropout`` share
    of labels becomes the null class so that guidance has an unconditional velocity. The
    noise, ``t`` and the dropout are drawn per sample from ``rnd`` (streams x0, t, drop_label)."""
    import torch
    import torch.nn.functional as F

    G = nets["generator"]  # the sampler; G.predict is one unguided call of its UNet
    G.train()
    x0 = rnd.normal("x0", *x.shape[1:])  # [B, C, H, W]
    # t: [B] in [0, 1); logit-normal puts more weight on the middle of the path
    t = torch.sigmoid(rnd.normal("t")) if cfg.time_sampling == "logit-normal" \
        else rnd.uniform("t")
    drop = rnd.uniform("drop_label") < cfg.label_dropout  # [B]
    label = torch.where(drop, torch.full_like(y, mcfg.n_classes), y)
    tb = t[:, None, None, None]
    v = G.predict((1 - tb) * x0 + tb * x, t, label)
    loss = F.mse_loss(v, x - x0)  # a mean over this slice (DDP averages the slices' gradients)
    opt = opts["generator"]
    opt.zero_grad(set_to_none=True)
    loss.backward()
    # after backward the gradients are the global batch's (DDP averaged them): every rank clips
    # by the same norm
    grad_norm = torch.nn.utils.clip_grad_norm_(getattr(G, "module", G).parameters(), 1.0)
    opt.step()
    return {"loss": round(loss.item(), 5), "grad_norm": round(float(grad_norm), 4)}


# --------------------------------------------------------------------------- artefacts

def _sample_grid(generator: Any, mcfg: ModelConfig, out: Path, epoch: int, device: Any) -> Path:
    """One row per label, ten samples each, from the same latents every epoch."""
    from edgegen.runtime.postprocess import to_pixels
    from edgegen.training.images import save_grid

    labels = np.repeat(np.arange(mcfg.n_classes), 10)
    imgs = sample_images(generator, mcfg.z_dim, labels, SAMPLE_SEED, device)
    return save_grid(to_pixels(imgs), out / "samples" / f"epoch_{epoch:04d}.png", nrow=10)


def _append_metrics(out: Path, row: dict[str, Any]) -> None:
    with open(out / "metrics.jsonl", "a", encoding="utf-8") as fh:
        fh.write(json.dumps(row) + "\n")


def _truncate_metrics(path: Path, step: int) -> None:
    """Drop metric lines written after the checkpoint we resume from (they will be redone)."""
    if not path.exists():
        return
    keep = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:  # a line cut short by kill -9
            continue
        if row.get("step", 0) <= step:
            keep.append(line)
    atomic_write_text(path, "".join(k + "\n" for k in keep))
