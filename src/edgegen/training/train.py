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

**The loop** (``edgegen.training.loop``, the one ``edgegen distill`` runs too). Epoch ``e``
visits the training digits in the order of a permutation seeded by ``(seed, e)``; global batch
``b`` holds positions ``b * batch_size ...`` of that order. Each step calls the family's step
function::

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

from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from edgegen.core.errors import CheckpointError, ConfigError, require_positive
from edgegen.core.progress import ProgressFn, Reporter
from edgegen.core.report import Report
from edgegen.models.config import ARCHITECTURES, ModelConfig, model_config
from edgegen.runtime.fileio import atomic_write_text
from edgegen.training.distributed import check_global_batch, joined
from edgegen.training.draws import Draws
from edgegen.training.loop import (
    Job,
    Networks,
    Schedule,
    StepFn,
    begin,
    make_networks,
    measure_fidelity,
    open_run,
    run,
    sample_grid,
)

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
    if cfg.arch is not None and cfg.arch not in ARCH_DEFAULTS:
        if cfg.arch in ARCHITECTURES:  # a family without a recipe of its own: a student
            raise ConfigError(f"{cfg.arch} is the one-call student of a cflow teacher; make it "
                              "with `edgegen distill TEACHER_RUN --out RUN`")
        raise ConfigError(f"unknown architecture {cfg.arch!r}; expected one of "
                          f"{', '.join(ARCH_DEFAULTS)}")
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
    if info.get("distilled_from"):
        raise ConfigError(f"{cfg.out} is a student distilled from "
                          f"{info['distilled_from'].get('run')}; continue it with `edgegen "
                          f"distill TEACHER_RUN --out {cfg.out} --resume`")
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
    report = Reporter("train", on_progress)
    out = Path(cfg.out)
    info, tensors = open_run(out, world, resume=cfg.resume, force=cfg.force,
                             resume_hint=f"edgegen train --resume {out}")
    cfg = _resolve(cfg, info)
    assert cfg.arch is not None
    data, x_all, y_all = _load_data(cfg, report, world.device)
    mcfg = _model_config(cfg, info, data)
    networks = _build_networks(cfg, mcfg, world)
    run_cfg = {**asdict(cfg), "out": str(out), "resume": False, "force": False,
               "data_dir": str(cfg.data_dir) if cfg.data_dir else None, "evaluator": None}
    job = Job(out=out, world=world, networks=networks, report=report,
              schedule=Schedule(seed=cfg.seed, batch_size=cfg.batch_size, n_items=len(y_all),
                                epochs=cfg.epochs, max_steps=cfg.max_steps,
                                max_minutes=cfg.max_minutes, log_every=cfg.log_every,
                                checkpoint_every=cfg.checkpoint_every, task=f"{cfg.arch} steps"),
              describe=lambda finished: {"kind": "generator", "arch": cfg.arch,
                                         "model": mcfg.to_dict(), "train": run_cfg,
                                         "data": data.provenance()},
              on_epoch=lambda e: sample_grid(networks.shown, mcfg, out, e, world.device))
    state = begin(job, info, tensors)
    if world.size > 1:
        _, n_local = world.shard(cfg.batch_size)
        report.say(f"{world.size} processes ({world.device.type}), global batch "
                   f"{cfg.batch_size} = {world.size} x {n_local}")
    job.step = _stepper(cfg, mcfg, networks, world, x_all, y_all)  # DDP wraps restored nets
    done = run(job, state)
    result = TrainResult(
        out=out, arch=cfg.arch, epoch=state["epoch"], step=state["step"],
        stopped_by=done.stopped_by, elapsed_s=done.elapsed_s, images_per_s=done.images_per_s,
        last_losses=done.losses, data=data.describe(), checkpoint=done.checkpoint or out,
        samples=done.samples)
    if world.main:
        result.fidelity = measure_fidelity(cfg.evaluator, out, networks.shown, mcfg,
                                           cfg.fidelity_samples, state["step"], world.device,
                                           report)
        atomic_write_text(out / "result.json", result.to_json() + "\n")
    return result


def _load_data(cfg: TrainConfig, report: Reporter, device: Any) -> tuple[Any, Any, Any]:
    """(the splits, the training digits ``[N, C, H, W]`` in [-1, 1], their labels ``[N]``) on
    ``device``; a ConfigError when the global batch is larger than the data."""
    import torch

    from edgegen.training.data import load_mnist, to_tensor_range

    data = load_mnist(cfg.data_dir, download=cfg.download, image_size=cfg.image_size)
    report.say(data.describe())
    x_all = torch.from_numpy(to_tensor_range(data.train_images)).to(device)  # [N, C, H, W]
    y_all = torch.from_numpy(data.train_labels).to(device)  # [N]
    if len(y_all) < cfg.batch_size:
        raise ConfigError(f"--batch-size {cfg.batch_size} is larger than the "
                          f"{len(y_all)} training images")
    return data, x_all, y_all


def _model_config(cfg: TrainConfig, info: dict[str, Any] | None, data: Any) -> ModelConfig:
    """A resumed run's stored shape, or a new one's; the images' shape and the class count come
    from the data (MNIST: 1x28x28, 10 digits) and must match a resumed run's."""
    assert cfg.arch is not None
    mcfg = (ModelConfig.from_dict(info["model"]) if info else
            model_config(cfg.arch, z_dim=cfg.z_dim, width=cfg.width,
                         image_shape=data.image_shape, n_classes=data.n_classes))
    if (tuple(mcfg.image_shape), mcfg.n_classes) != (data.image_shape, data.n_classes):
        raise ConfigError(f"{cfg.out} was trained on {mcfg.n_classes} classes of "
                          f"{'x'.join(map(str, mcfg.image_shape))} images, but the data now "
                          f"holds {data.n_classes} classes of "
                          f"{'x'.join(map(str, data.image_shape))}; resume with the same "
                          "--data-dir and --image-size")
    return mcfg


def _build_networks(cfg: TrainConfig, mcfg: ModelConfig, world: Any) -> Networks:
    """The family's networks with fresh weights (the same on every rank), their optimizers and,
    for every family but cvae, the EMA of the generator."""
    import torch

    from edgegen.models.registry import build_models

    torch.manual_seed(cfg.seed)  # initial weights (the same on every rank)
    nets = {k: v.to(world.device) for k, v in build_models(mcfg).items()}
    if cfg.arch == "cdcgan" and not cfg.aux_weight:
        # No loss uses the class head: it gets no gradient (Adam would skip it anyway), and DDP
        # must not wait for one.
        nets["discriminator"].cls.requires_grad_(False)
    assert cfg.lr is not None and cfg.lr_d is not None
    assert cfg.beta1 is not None and cfg.beta2 is not None
    lrs = {k: cfg.lr_d if k == "discriminator" else cfg.lr for k in nets}
    return make_networks(nets, world, lrs, (cfg.beta1, cfg.beta2), cfg.ema_decay,
                         keep_ema=cfg.arch != "cvae")


def _stepper(cfg: TrainConfig, mcfg: ModelConfig, networks: Networks, world: Any, x_all: Any,
             y_all: Any) -> StepFn:
    """The loop's ``step(idx, rnd)``: the family's step function on this rank's slice of the
    digits, with the networks as DDP proxies on several processes."""
    step_fn = {"cvae": _vae_step, "cflow": _flow_step}.get(str(cfg.arch), _gan_step)
    wrapped = world.wrap(networks.nets)  # what the step function calls
    return lambda idx, rnd: step_fn(wrapped, networks.opts, x_all[idx], y_all[idx], rnd,
                                    mcfg, cfg)


# --------------------------------------------------------------------------- steps

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
