"""``edgegen distill``: an iterative teacher (cflow) becomes a one-call student.

``distill(DistillConfig) -> DistillResult``. The teacher is a cflow run; its guided Euler sampler
(``steps`` steps, guidance ``guidance``: ``2 * steps`` network calls per image on a doubled
batch) is run once, deterministically, on ``pairs`` portable latents (``training.pairs``). The
student learns to map the same noise and label to the teacher's image in ONE network call —
the guidance folded into its weights — and its run folder is a normal generator run:
``edgegen export RUN`` exports it, and verify, eval, bench and serve treat the bundle like any
other (the contract ``z float32[B, z_dim]``, ``label int64[B]`` -> ``image float32[B, C, H, W]``
in [-1, 1] is unchanged; ``z`` is the teacher's 784-d noise).

**Students** (``--student``): ``same`` — the teacher's own UNet initialised from the teacher's
(EMA) weights, called once as one Euler step of length 1 (``models.cflow1``:
``image = clamp(z + v(z, 0, label), -1, 1)``); ``unet`` — that shape at ``--width`` (default
12: 15 MFLOP per image, GAN-sized), fresh weights; ``cdcgan``, ``cmlp``, ``cvae`` (its decoder)
— the single-pass families, fresh weights, taking the 784-d noise as their latent.

**Methods** (``--method``), chosen by the table in docs/distillation.md:

* ``regress`` — regression on the teacher's deterministic sampler output (Luhman & Luhman 2021,
  "Knowledge distillation in iterative generative models for improved sampling speed"): loss
  ``(student(z, y) - teacher(z, y))^2`` (``--loss l2``, the default: at the same teacher and
  budget it was the only row of docs/distillation.md's table to meet all four targets —
  fidelity, agreement, diversity, FID; ``l1`` keeps edges a little sharper, but at lower
  fidelity);
* ``regress-adv`` — the same regression plus a non-saturating adversarial term against REAL
  digits (weight ``adv_weight``): a critic (cdcgan's conditional discriminator, trained jointly,
  from scratch, on real digits vs the student's images) pushes the student's images off the
  blur that a regression leaves where the teacher's map is hard to fit. The critic is the
  student's own partner network, like a GAN's; edgegen's evaluator is never a training signal.

**Like train**: the loop is ``training.loop`` (checkpoints, budgets, resume, DDP, metrics.jsonl,
progress); every random number comes from the step's ``Draws`` (the critic's real digits are
drawn per sample: stream ``real``); the same seed, steps, threads and machine give the same
weights; ``--resume`` continues exactly; ``max_minutes`` counts the teacher pairs of a new run
too. The checkpoint's run description records the teacher in ``distilled_from``: ``run`` (the
teacher's folder as given), ``checkpoint_sha256`` (of its checkpoint.safetensors),
``architecture``, ``steps``, ``guidance``, ``method``, ``loss`` and ``pairs``.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from edgegen.core.errors import CheckpointError, ConfigError, require_positive
from edgegen.core.progress import ProgressFn, Reporter
from edgegen.core.report import Report
from edgegen.models.config import ModelConfig, model_config
from edgegen.runtime.fileio import atomic_write_text
from edgegen.runtime.sampler import calls_per_image
from edgegen.training.checkpoint import (
    CHECKPOINT_NAME,
    generator_from,
    parse_checkpoint,
    read_checkpoint_bytes,
)
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
    save,
)
from edgegen.training.pairs import Pairs, PairSpec, teacher_pairs
from edgegen.training.torch_utils import seed_for

STUDENTS = ("same", "unet", "cdcgan", "cmlp", "cvae")
STUDENT_ARCH = {"same": "cflow1", "unet": "cflow1", "cdcgan": "cdcgan", "cmlp": "cmlp",
                "cvae": "cvae"}
UNET_WIDTH = 12  # --student unet: the teacher's UNet shape at this width (15 MFLOP per image)
METHODS = ("regress", "regress-adv")
LOSSES = ("l1", "l2")
# What a new run takes for the options that shape it (None in DistillConfig: on --resume the
# checkpoint's values hold, and a different one given is an error). The teacher's sampler at 8
# steps / guidance 1.5 has both fidelity and diversity (README: 100%, diversity 0.86 / 0.84).
NEW_RUN = {"student": "same", "method": "regress", "loss": "l2", "steps": 8, "guidance": 1.5,
           "pairs": 12000}
# the budget when none is given (batch 64: ~5 passes over 12,000 pairs): the method table's
DEFAULT_STEPS = 1000
# Adam learning rates: a student that starts from the teacher's weights is fine-tuned; a fresh
# single-pass network learns from scratch (the rate its family trains with as a GAN, x5).
STUDENT_LR = {"same": 2e-4, "unet": 1e-3, "cdcgan": 1e-3, "cmlp": 5e-4, "cvae": 1e-3}
PAIR_STREAM = 4  # seed_for stream of the pairs' latent (0: data order, 3: the steps' Draws)
REAL_TARGET = 0.9  # one-sided label smoothing of the critic's real targets (as cdcgan's)
CRITIC_WIDTH = 32  # the critic's base channels (cdcgan's discriminator)


@dataclass(frozen=True)
class DistillConfig:
    teacher: Path = Path("runs/cflow")
    out: Path = Path("runs/cflow-1")
    # None: NEW_RUN's value for a new run, the checkpoint's on --resume
    student: str | None = None  # same | cdcgan | cmlp | cvae
    method: str | None = None  # regress | regress-adv
    loss: str | None = None  # the regression loss: l1 | l2
    steps: int | None = None  # the teacher's sampler: Euler steps ...
    guidance: float | None = None  # ... and classifier-free guidance (1 = none)
    pairs: int | None = None  # teacher pairs computed before training
    epochs: int | None = None  # passes over the pairs; None: DEFAULT_STEPS unless another budget
    max_steps: int | None = None
    max_minutes: float | None = None  # the teacher pairs of a new run count too
    batch_size: int = 64
    lr: float | None = None  # None: STUDENT_LR of the student
    lr_d: float = 2e-4  # regress-adv: the critic's learning rate
    adv_weight: float = 0.05  # regress-adv: weight of the adversarial term beside the regression
    width: int | None = None  # single-pass students: base channels (None: the family's)
    ema_decay: float = 0.999  # exponential moving average of the student (0: off)
    seed: int = 0
    device: str = "cpu"
    data_dir: Path | None = None  # regress-adv's real digits; None: the teacher's training data
    download: bool = True
    evaluator: Path | None = None  # fidelity report; None: <out>/../ or <teacher>/../evaluator
    fidelity_samples: int = 1000
    threads: int | None = None
    resume: bool = False
    log_every: int = 50
    checkpoint_every: int | None = None
    dist_timeout_s: float = 180.0
    force: bool = False


@dataclass
class DistillResult(Report):
    out: Path
    student: str  # the --student choice
    arch: str  # the student's architecture (what the manifest will name)
    method: str
    epoch: int
    step: int
    stopped_by: str
    elapsed_s: float  # training time of this invocation
    pairs_s: float  # time spent computing teacher pairs in this invocation (0: cached)
    images_per_s: float
    last_losses: dict[str, float]
    checkpoint: Path
    distilled_from: dict[str, Any]
    fidelity: dict[str, Any] | None = None
    samples: list[Path] = field(default_factory=list)


# --------------------------------------------------------------------------- config checks

def check_config(cfg: DistillConfig, world_size: int = 1) -> None:
    """The checks that need no teacher and no data (a ConfigError naming the option)."""
    require_positive(cfg, "epochs", "max_steps", "max_minutes", "batch_size", "pairs", "lr",
                     "lr_d", "steps", "width", "fidelity_samples", "checkpoint_every",
                     "dist_timeout_s", "threads", "log_every")
    for name, value, allowed in (("student", cfg.student, STUDENTS),
                                 ("method", cfg.method, METHODS), ("loss", cfg.loss, LOSSES)):
        if value is not None and value not in allowed:
            raise ConfigError(f"unknown --{name} {value!r}; expected one of "
                              f"{', '.join(allowed)}")
    if cfg.adv_weight < 0 or not 0 <= cfg.ema_decay < 1:
        raise ConfigError(f"--adv-weight must be >= 0 and --ema-decay in [0, 1); got "
                          f"{cfg.adv_weight} and {cfg.ema_decay}")
    if cfg.pairs is not None and cfg.pairs < cfg.batch_size:
        raise ConfigError(f"--pairs {cfg.pairs} is fewer than one --batch-size "
                          f"({cfg.batch_size}); compute more pairs or take a smaller batch")
    from edgegen.runtime.inputs import check_guidance, check_steps

    try:
        if cfg.steps is not None:
            check_steps(cfg.steps)
        if cfg.guidance is not None:
            check_guidance(cfg.guidance)
    except ValueError as exc:
        raise ConfigError(f"the teacher's sampler (--steps, --guidance): {exc}") from exc
    check_global_batch(cfg.batch_size, world_size)


def _resolve(cfg: DistillConfig, info: dict[str, Any] | None) -> DistillConfig:
    """Validate ``cfg``; to resume from ``info`` (the student's checkpoint), merge the two:
    everything that shapes the run comes from the checkpoint; budgets, device, evaluator,
    threads, logging and checkpointing may change."""
    check_config(cfg)
    if info is None:
        shaped = {k: v if getattr(cfg, k) is None else getattr(cfg, k)
                  for k, v in NEW_RUN.items()}
        budget = (cfg.max_steps if (cfg.epochs or cfg.max_steps or cfg.max_minutes)
                  else DEFAULT_STEPS)
        return replace(cfg, **shaped, lr=cfg.lr or STUDENT_LR[shaped["student"]],
                       max_steps=budget, resume=False)
    if not info.get("distilled_from"):
        raise CheckpointError(f"{cfg.out} holds a run made by `edgegen train`, not a distilled "
                              f"student; continue it with `edgegen train --resume {cfg.out}`")
    stored = info["train"]
    for name in NEW_RUN:
        given = getattr(cfg, name)
        if given is not None and given != stored[name]:
            raise ConfigError(f"{cfg.out} was distilled with --{name} {stored[name]}, not "
                              f"{given}; drop --{name} (or pass --{name} {stored[name]}) to "
                              "resume it, or start a new student with --force")
    budgets = {k: getattr(cfg, k) for k in ("epochs", "max_steps", "max_minutes")}
    if all(v is None for v in budgets.values()):
        budgets = {k: stored[k] for k in budgets}
    return DistillConfig(**{
        **{k: v for k, v in stored.items() if k in DistillConfig.__dataclass_fields__},
        **budgets, "teacher": cfg.teacher, "out": cfg.out, "resume": True,
        "device": cfg.device, "evaluator": cfg.evaluator, "threads": cfg.threads,
        "log_every": cfg.log_every, "checkpoint_every": cfg.checkpoint_every,
        "dist_timeout_s": cfg.dist_timeout_s,
        "data_dir": Path(stored["data_dir"]) if stored.get("data_dir") else None,
    })


# --------------------------------------------------------------------------- the stage

def distill(cfg: DistillConfig, on_progress: ProgressFn | None = None) -> DistillResult:
    """Distil (or resume distilling) a student as ``cfg`` says, on this process or on every
    process torchrun started; see the module docstring."""
    check_config(cfg)
    with joined(cfg.device, cfg.threads, cfg.dist_timeout_s) as world:
        return _distill(cfg, world, on_progress if world.main else None)


def _distill(cfg: DistillConfig, world: Any, on_progress: ProgressFn | None) -> DistillResult:
    report = Reporter("distill", on_progress)
    out = Path(cfg.out)
    info, tensors = open_run(out, world, resume=cfg.resume, force=cfg.force,
                             resume_hint=f"edgegen distill {cfg.teacher} --out {out} --resume")
    cfg = _resolve(cfg, info)
    teacher, tinfo, sha = _teacher(cfg, world, info)
    report.say(f"teacher {cfg.teacher}: {tinfo['arch']}, {cfg.steps} steps, guidance "
               f"{cfg.guidance:g} ({calls_per_image(cfg.steps, cfg.guidance)} network "
               f"calls per image)")
    smcfg = _student_config(cfg, ModelConfig.from_dict(tinfo["model"]), info)
    real, data_record = _real_digits(cfg, tinfo, report, world.device)
    networks = _build_networks(cfg, smcfg, teacher, world, info)
    origin = {"run": str(cfg.teacher), "checkpoint_sha256": sha, "architecture": tinfo["arch"],
              "steps": cfg.steps, "guidance": cfg.guidance, "method": cfg.method,
              "loss": cfg.loss, "pairs": cfg.pairs}
    job = _job(cfg, smcfg, networks, world, report, origin, data_record)
    state = begin(job, info, tensors)
    pairs = teacher_pairs(_pair_spec(cfg, sha, smcfg), teacher, out, world,
                          lambda done, total: report.count("teacher pairs", done, total,
                                                           "pairs"))
    report.say(f"{cfg.pairs:,} teacher pairs " + ("reloaded from the run folder" if pairs.cached
                                                  else f"computed in {pairs.seconds:.0f} s"))
    del teacher  # not needed any more: its memory goes back before training
    if info is None:  # a new run: the pairs count toward its minute budget; a first checkpoint
        state["elapsed_s"] = world.agree_max(pairs.seconds) if cfg.max_minutes else pairs.seconds
        save(job, state, finished=False)
    job.step = _stepper(cfg, networks, world, pairs, real)
    done = run(job, state)
    result = DistillResult(
        out=out, student=str(cfg.student), arch=smcfg.arch, method=str(cfg.method),
        epoch=state["epoch"], step=state["step"], stopped_by=done.stopped_by,
        elapsed_s=done.elapsed_s, pairs_s=round(pairs.seconds, 2),
        images_per_s=done.images_per_s, last_losses=done.losses,
        checkpoint=done.checkpoint or out, distilled_from=origin, samples=done.samples)
    if world.main:
        result.fidelity = measure_fidelity(_evaluator(cfg), out, networks.shown, smcfg,
                                           cfg.fidelity_samples, state["step"], world.device,
                                           report)
        atomic_write_text(out / "result.json", result.to_json() + "\n")
    return result


def _evaluator(cfg: DistillConfig) -> Path | None:
    """``--evaluator``, else ``<out>/../evaluator``, else the teacher's ``<teacher>/../evaluator``
    (None: no fidelity report)."""
    if cfg.evaluator is not None:
        return cfg.evaluator
    for where in (Path(cfg.out).parent, Path(cfg.teacher).parent):
        if (where / "evaluator" / CHECKPOINT_NAME).is_file():
            return where / "evaluator"
    return None


def _job(cfg: DistillConfig, smcfg: ModelConfig, networks: Networks, world: Any,
         report: Reporter, origin: dict[str, Any], data_record: dict[str, Any]) -> Job:
    """The loop's job (its step function is set once the networks and the pairs are there)."""
    out = Path(cfg.out)
    run_cfg = {**asdict(cfg), "teacher": str(cfg.teacher), "out": str(out), "resume": False,
               "force": False, "data_dir": str(cfg.data_dir) if cfg.data_dir else None,
               "evaluator": None, "stage": "distill"}
    critic = networks.nets.get("discriminator")
    describe = {"kind": "generator", "arch": smcfg.arch, "model": smcfg.to_dict(),
                "train": run_cfg, "data": data_record, "distilled_from": origin,
                **({"critic": _critic_config(smcfg).to_dict()} if critic is not None else {})}
    return Job(out=out, world=world, networks=networks, report=report,
               schedule=Schedule(seed=cfg.seed, batch_size=cfg.batch_size, n_items=cfg.pairs,
                                 epochs=cfg.epochs, max_steps=cfg.max_steps,
                                 max_minutes=cfg.max_minutes, log_every=cfg.log_every,
                                 checkpoint_every=cfg.checkpoint_every,
                                 task=f"{cfg.student} student steps"),
               describe=lambda finished: describe,
               on_epoch=lambda e: sample_grid(networks.shown, smcfg, out, e, world.device))


# --------------------------------------------------------------------------- teacher, student

def _teacher(cfg: DistillConfig, world: Any, info: dict[str, Any] | None
             ) -> tuple[Any, dict[str, Any], str]:
    """(the teacher's generator in eval mode with the sampler set, its run description, the
    sha256 of its checkpoint). Rank 0 reads the checkpoint for every rank."""
    raw = world.from_main(lambda: read_checkpoint_bytes(cfg.teacher))
    assert raw is not None
    sha = hashlib.sha256(raw).hexdigest()
    tinfo, tensors = parse_checkpoint(raw, Path(cfg.teacher))
    if info is not None and info["distilled_from"]["checkpoint_sha256"] != sha:
        raise CheckpointError(
            f"{cfg.teacher} is not the teacher {cfg.out} was distilled from (its checkpoint's "
            f"sha256 is {sha[:16]}…, the student's record says "
            f"{info['distilled_from']['checkpoint_sha256'][:16]}… from "
            f"{info['distilled_from']['run']}); pass that teacher to resume, or start a new "
            "student with --force")
    teacher = generator_from(tinfo, tensors, cfg.teacher)
    if not hasattr(teacher, "set_sampler"):
        raise ConfigError(f"{cfg.teacher} is a {tinfo.get('arch')} run: it already draws an "
                          "image in one network call, so there is nothing to distil; the "
                          "teacher must be an iterative run (edgegen train --arch cflow)")
    teacher.set_sampler(cfg.steps, cfg.guidance)
    return teacher.to(world.device).requires_grad_(False), tinfo, sha


def _student_config(cfg: DistillConfig, teacher_cfg: ModelConfig, info: dict[str, Any] | None
                    ) -> ModelConfig:
    """The student's shape: the checkpoint's on resume; for ``same`` the teacher's UNet; for a
    single-pass family its new-run shape with the teacher's latent, images and classes."""
    if info is not None:
        return ModelConfig.from_dict(info["model"])
    assert cfg.student is not None
    arch = STUDENT_ARCH[cfg.student]
    if cfg.student == "same":
        if cfg.width is not None:
            raise ConfigError("--width shapes a fresh student; --student same keeps the "
                              f"teacher's UNet (width {teacher_cfg.width}); --student unet is "
                              "that shape at another width")
        return replace(teacher_cfg, arch=arch)
    if cfg.student == "unet":
        return replace(teacher_cfg, arch=arch, width=cfg.width or UNET_WIDTH)
    return model_config(arch, z_dim=teacher_cfg.z_dim, width=cfg.width,
                        image_shape=tuple(teacher_cfg.image_shape),
                        n_classes=teacher_cfg.n_classes)


def _critic_config(smcfg: ModelConfig) -> ModelConfig:
    """regress-adv's critic: cdcgan's conditional discriminator for the student's images."""
    return model_config("cdcgan", width=CRITIC_WIDTH, image_shape=tuple(smcfg.image_shape),
                        n_classes=smcfg.n_classes)


def _build_networks(cfg: DistillConfig, smcfg: ModelConfig, teacher: Any, world: Any,
                    info: dict[str, Any] | None) -> Networks:
    """The student (``same``: the teacher's UNet weights; else fresh, seeded), its EMA, and for
    regress-adv the critic; Adam for each (betas 0.5, 0.999 with a critic, as GANs train)."""
    import torch

    from edgegen.models.cdcgan import Discriminator
    from edgegen.models.registry import build_models

    torch.manual_seed(cfg.seed)  # initial weights (the same on every rank)
    student = build_models(smcfg)["generator"]
    if cfg.student == "same" and info is None:
        student.net.load_state_dict(teacher.net.state_dict())
    nets = {"generator": student.to(world.device)}
    if cfg.method == "regress-adv":
        critic = Discriminator(_critic_config(smcfg))
        critic.cls.requires_grad_(False)  # no class loss: the critic only tells real from fake
        nets["discriminator"] = critic.to(world.device)
    assert cfg.lr is not None
    lrs = {"generator": cfg.lr, "discriminator": cfg.lr_d}
    betas = (0.5, 0.999) if "discriminator" in nets else (0.9, 0.999)
    return make_networks(nets, world, lrs, betas, cfg.ema_decay)


def _pair_spec(cfg: DistillConfig, sha: str, smcfg: ModelConfig) -> PairSpec:
    return PairSpec(teacher_sha256=sha, steps=cfg.steps, guidance=cfg.guidance, n=cfg.pairs,
                    seed=seed_for(cfg.seed, 0, PAIR_STREAM), z_dim=smcfg.z_dim,
                    n_classes=smcfg.n_classes)


def _real_digits(cfg: DistillConfig, tinfo: dict[str, Any], report: Reporter, device: Any
                 ) -> tuple[tuple[Any, Any] | None, dict[str, Any]]:
    """regress-adv's real digits (``[N, C, H, W]`` in [-1, 1], labels ``[N]``) from
    ``--data-dir`` or the teacher's training data, and the data record of the student's run
    (the teacher's for ``regress``, which sees no real digit)."""
    if cfg.method != "regress-adv":
        return None, dict(tinfo.get("data") or {})
    import torch

    from edgegen.training.data import load_mnist, to_tensor_range

    stored = tinfo["train"]
    where = cfg.data_dir or (Path(stored["data_dir"]) if stored.get("data_dir") else None)
    data = load_mnist(where, download=cfg.download, image_size=stored.get("image_size"))
    shape = tuple(tinfo["model"]["image_shape"])
    if (data.image_shape, data.n_classes) != (shape, tinfo["model"]["n_classes"]):
        raise ConfigError(f"the real digits ({data.describe()}) are not the teacher's kind of "
                          f"image ({tinfo['model']['n_classes']} classes of "
                          f"{'x'.join(map(str, shape))}); pass the teacher's --data-dir")
    report.say(f"real digits for the critic: {data.describe()}")
    x = torch.from_numpy(to_tensor_range(data.train_images)).to(device)
    return (x, torch.from_numpy(data.train_labels).to(device)), data.provenance()


# --------------------------------------------------------------------------- the step

def _stepper(cfg: DistillConfig, networks: Networks, world: Any, pairs: Pairs,
             real: tuple[Any, Any] | None) -> StepFn:
    """The loop's ``step(idx, rnd)`` over this rank's slice of the pairs."""
    wrapped = world.wrap(networks.nets)  # DDP proxies on several processes
    return lambda idx, rnd: _distill_step(wrapped, networks.opts, pairs.z[idx],
                                          pairs.label[idx], pairs.target[idx], rnd, cfg, real)


def _distill_step(nets: dict, opts: dict, z: Any, y: Any, target: Any, rnd: Draws,
                  cfg: DistillConfig, real: tuple[Any, Any] | None) -> dict[str, float]:
    """One student step on a slice of pairs (``z: [n, z_dim]``, ``y: [n]``, ``target: [n, C, H,
    W]``): for regress-adv first one critic step on real digits vs the detached images, then the
    student's step on the regression loss (+ ``adv_weight`` x the non-saturating adversarial
    term). Gradients of the student clipped at norm 1."""
    import torch
    import torch.nn.functional as F

    G = nets["generator"]
    G.train()
    image = G(z, y)  # [n, C, H, W] in [-1, 1]
    rec = F.l1_loss(image, target) if cfg.loss == "l1" else F.mse_loss(image, target)
    losses = {"rec": rec}
    loss = rec
    if real is not None:
        D = nets["discriminator"]
        D.train()
        pick = rnd.randint("real", len(real[1]))  # [n] real digits, per sample
        adv_real, _ = D(real[0][pick], real[1][pick])
        adv_fake, _ = D(image.detach(), y)
        loss_d = (F.binary_cross_entropy_with_logits(adv_real,
                                                     torch.full_like(adv_real, REAL_TARGET))
                  + F.binary_cross_entropy_with_logits(adv_fake, torch.zeros_like(adv_fake)))
        opts["discriminator"].zero_grad(set_to_none=True)
        loss_d.backward()
        opts["discriminator"].step()
        adv_g, _ = D(image, y)
        adv = F.binary_cross_entropy_with_logits(adv_g, torch.ones_like(adv_g))
        loss = rec + cfg.adv_weight * adv
        losses.update({"loss_d": loss_d, "adv": adv})
    opt = opts["generator"]
    opt.zero_grad(set_to_none=True)
    loss.backward()
    # after backward the gradients are the global batch's (DDP averaged them): every rank clips
    # by the same norm
    torch.nn.utils.clip_grad_norm_(getattr(G, "module", G).parameters(), 1.0)
    opt.step()
    return {k: round(float(v.item()), 5) for k, v in losses.items()}
