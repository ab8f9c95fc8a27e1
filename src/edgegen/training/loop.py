"""The training loop of the generator stages: ``train`` and ``distill`` run this one loop.

A stage builds its networks (``Networks``: the modules by checkpoint prefix, their optimizers,
an optional exponential moving average of the generator), a ``Schedule`` (the global batch, the
items an epoch visits — training digits for ``train``, teacher pairs for ``distill`` — and the
budgets) and a step function ``step(idx, rnd) -> losses``; ``run`` does everything else:

* epoch ``e`` visits the items in the order of a permutation seeded by ``(seed, e)``; global
  batch ``b`` holds positions ``b * batch_size ...`` of that order and this rank computes its
  contiguous slice (``World.shard``): ``idx`` (int64 ``[n_local]``, indices into the stage's
  items) and ``rnd``, the slice's ``Draws`` (per-sample randomness, see ``draws.py``);
* the EMA after each step, the budgets (epochs, steps, minutes — the minute budget judged on the
  slowest rank's clock, so every rank stops at the same step), ``metrics.jsonl`` (the global
  batch's losses every ``log_every`` steps), the progress bar;
* checkpoints (rank 0 writes): when a budget stops the run, at the end of every epoch and every
  ``checkpoint_every`` steps; a sample grid at the end of every epoch.

A checkpoint holds global positions only (epoch, batch of the epoch, step, images), so a run
written by N processes resumes on M. ``open_run`` decides (on rank 0, for every rank) whether a
folder is resumed and ``begin`` restores a run's networks, optimizers and position or clears what
an earlier run left.
"""

from __future__ import annotations

import copy
import json
import math
import platform
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgegen.core import __version__
from edgegen.core.errors import ConfigError
from edgegen.core.fileio import check_output_dir
from edgegen.core.progress import Reporter, step_info
from edgegen.models.config import ModelConfig
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
from edgegen.training.draws import Draws, DrawSource
from edgegen.training.torch_utils import sample_images, seed_for

SAMPLE_SEED = 7  # the fixed latent of the per-epoch sample grids
FIDELITY_SEED = 2026  # the latent of the fidelity measured at the end of a run
STATE_KEYS = ("epoch", "batch", "step", "elapsed_s", "images")
METRICS_NAME = "metrics.jsonl"

StepFn = Callable[[Any, Draws], dict[str, float]]  # (idx int64 [n_local], rnd) -> losses


@dataclass
class Networks:
    """What a run trains: ``nets`` by checkpoint prefix (``generator`` always; its partners),
    one optimizer per network that learns, and the EMA of the generator (None: none kept)."""

    nets: dict[str, Any]
    opts: dict[str, Any]
    ema: Any = None
    ema_decay: float = 0.0
    source: DrawSource = field(default_factory=DrawSource)  # the dropout layers' Draws

    @property
    def shown(self) -> Any:
        """The generator that is sampled, measured and exported: the EMA when there is one."""
        return self.ema if self.ema is not None else self.nets["generator"]

    def tensors(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """(every tensor by checkpoint name, the optimizers' JSON-able param groups)."""
        tensors: dict[str, Any] = {}
        groups: dict[str, Any] = {}
        for k, net in self.nets.items():
            tensors.update(module_tensors(k, net))
        if self.ema is not None:
            tensors.update(module_tensors("generator_ema", self.ema))
        for k, opt in self.opts.items():
            flat, groups[k] = optimizer_tensors(f"optim.{k}", opt)
            tensors.update(flat)
        return tensors, groups

    def load(self, tensors: dict[str, Any], groups: dict[str, Any], where: Path) -> None:
        for k, net in self.nets.items():
            load_module(k, net, tensors, where)
        if self.ema is not None:
            load_module("generator_ema", self.ema, tensors, where)
        for k, opt in self.opts.items():
            load_optimizer(f"optim.{k}", opt, tensors, groups[k])


def make_networks(nets: dict[str, Any], world: Any, lrs: Mapping[str, float],
                  betas: tuple[float, float], ema_decay: float, keep_ema: bool = True
                  ) -> Networks:
    """``Networks`` of freshly built ``nets`` (already on the device): dropout drawn per sample,
    BatchNorm over the global batch on several processes, Adam with ``lrs[name]`` for every
    network that has trainable parameters, the EMA of the generator when ``keep_ema`` and
    ``ema_decay > 0`` (it draws the sample grids, is measured and exported; BatchNorm statistics
    are copied)."""
    import torch

    from edgegen.training.layers import convert_dropout

    ema = (copy.deepcopy(nets["generator"]).eval().requires_grad_(False)
           if keep_ema and ema_decay > 0 else None)
    source = DrawSource()
    for net in nets.values():
        convert_dropout(net, source)  # dropout masks per sample, from the step's Draws
    world.prepare(nets)  # BatchNorm over the global batch on several processes
    opts = {k: torch.optim.Adam([p for p in v.parameters() if p.requires_grad], lr=lrs[k],
                                betas=betas)
            for k, v in nets.items() if any(p.requires_grad for p in v.parameters())}
    return Networks(nets=nets, opts=opts, ema=ema, ema_decay=ema_decay, source=source)


@dataclass(frozen=True)
class Schedule:
    """How far a run goes and how it walks its items."""

    seed: int
    batch_size: int  # the global batch
    n_items: int  # what one epoch visits (training digits, teacher pairs)
    epochs: int | None = None
    max_steps: int | None = None
    max_minutes: float | None = None  # summed over resumes (the state's elapsed_s)
    log_every: int = 50
    checkpoint_every: int | None = None
    task: str = "steps"  # the progress bar's name

    @property
    def n_batches(self) -> int:
        return self.n_items // self.batch_size

    def total_steps(self) -> int | None:
        bounds = [b for b in (self.epochs and self.epochs * self.n_batches, self.max_steps)
                  if b is not None]
        return min(bounds) if bounds else None


@dataclass
class Job:
    """A stage's run, as the loop drives it. ``describe(finished)`` gives the checkpoint's run
    description (kind, arch, model, train, data...); the loop adds the position, the optimizer
    groups and the versions. ``on_epoch(epoch)`` (rank 0) writes the epoch's sample grid.
    ``step`` is set once the networks are restored (``begin``): it holds their DDP wrappers."""

    out: Path
    world: Any
    networks: Networks
    schedule: Schedule
    describe: Callable[[bool], dict[str, Any]]
    report: Reporter
    on_epoch: Callable[[int], Path] | None = None
    step: StepFn | None = None


@dataclass
class Outcome:
    stopped_by: str = ""
    losses: dict[str, float] = field(default_factory=dict)
    samples: list[Path] = field(default_factory=list)
    checkpoint: Path | None = None
    elapsed_s: float = 0.0  # this invocation's training time
    images_per_s: float = 0.0


# --------------------------------------------------------------------------- run folders

def open_run(out: Path, world: Any, *, resume: bool, force: bool, resume_hint: str
             ) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """(info, tensors) of the checkpoint to resume from, or (None, {}) for a new run. Rank 0
    decides for everyone: ``resume`` asks for it; a torchrun restart continues where the workers
    were; an existing run without ``force`` is a ConfigError quoting ``resume_hint``."""

    def read() -> bytes | None:
        check_output_dir(out, "--resume" if resume else "--out")
        if resume:
            return read_checkpoint_bytes(out)
        if (out / CHECKPOINT_NAME).is_file():
            if world.restarted:  # torchrun restarted the workers: continue where they were
                return read_checkpoint_bytes(out)
            if not force:
                raise ConfigError(f"{out} already holds a run; continue it with `{resume_hint}`, "
                                  "pick another --out, or pass --force to start over")
        return None

    raw = world.from_main(read)
    return parse_checkpoint(raw, out / CHECKPOINT_NAME) if raw else (None, {})


def begin(job: Job, info: dict[str, Any] | None, tensors: dict[str, Any],
          stale: tuple[str, ...] = ()) -> dict[str, Any]:
    """The run's position: restored with the networks and optimizers from ``info`` / ``tensors``,
    or zero for a new run (whose folder loses an earlier run's checkpoint, metrics and
    ``stale`` files)."""
    out, world = job.out, job.world
    state: dict[str, Any] = {"epoch": 0, "batch": 0, "step": 0, "elapsed_s": 0.0, "images": 0}
    if info:
        job.networks.load(tensors, info["optim_groups"], out)
        state.update({k: info[k] for k in STATE_KEYS})
        if world.main:
            truncate_metrics(out / METRICS_NAME, state["step"])
        job.report.say(f"resuming {out} at epoch {state['epoch']}, batch {state['batch']}, step "
                       f"{state['step']}" + (f" (restart {world.launch.restart_count})"
                                             if world.restarted else ""))
    elif world.main and out.exists():  # a new run: nothing of an earlier one may remain
        for name in (METRICS_NAME, CHECKPOINT_NAME, *stale):
            (out / name).unlink(missing_ok=True)
    if world.main:
        out.mkdir(parents=True, exist_ok=True)
    return state


def save(job: Job, state: dict[str, Any], finished: bool) -> Path:
    """Write the checkpoint (rank 0; the other ranks only name it)."""
    path = job.out / CHECKPOINT_NAME
    if not job.world.main:
        return path
    import torch

    tensors, groups = job.networks.tensors()
    return save_checkpoint(job.out, tensors, {
        **job.describe(finished), "optim_groups": groups, "finished": finished,
        **{k: state[k] for k in STATE_KEYS}, "world_size": job.world.size,
        "threads": torch.get_num_threads(), "randomness": "edgegen.draws/1",
        "edgegen_version": __version__, "torch_version": torch.__version__,
        "python": platform.python_version(), "saved_at": time.time(),
    })


# --------------------------------------------------------------------------- the loop

def run(job: Job, state: dict[str, Any]) -> Outcome:
    """Train until a budget (or the epochs) is spent; see the module docstring."""
    s, world = job.schedule, job.world
    done = Outcome(checkpoint=job.out / CHECKPOINT_NAME)
    clock = _Clock(state, world, s.max_minutes)
    total = s.total_steps()
    job.report.count(s.task, state["step"], total, "steps")
    while not done.stopped_by:
        if s.epochs is not None and state["epoch"] >= s.epochs:
            done.stopped_by = "epochs"
            break
        order = _order(s.seed, state["epoch"], s.n_items, world.device)
        for b in range(state["batch"], s.n_batches):
            done.losses = _step(job, order, b, state)
            clock.tick(state, s.batch_size)
            _log(job, state, done.losses, clock.images_per_s(state), total,
                 last=b == s.n_batches - 1)
            if s.max_steps is not None and state["step"] >= s.max_steps:
                done.stopped_by = "max_steps"
            elif state["elapsed_s"] >= clock.budget_s:
                done.stopped_by = "max_minutes"
            if state["batch"] < s.n_batches:
                if done.stopped_by:
                    done.checkpoint = save(job, state, finished=True)
                    break
                if s.checkpoint_every and state["step"] % s.checkpoint_every == 0:
                    done.checkpoint = save(job, state, finished=False)
        if state["batch"] == s.n_batches:  # epoch complete
            state["epoch"] += 1
            state["batch"] = 0
            if world.main and job.on_epoch is not None:
                done.samples.append(job.on_epoch(state["epoch"]))
            done.checkpoint = save(job, state, finished=bool(done.stopped_by)
                                   or state["epoch"] == s.epochs)
    world.barrier()  # the last checkpoint is on disk before any rank leaves
    done.elapsed_s = round(state["elapsed_s"] - clock.elapsed0, 2)
    done.images_per_s = round((state["images"] - clock.images0) / done.elapsed_s, 1) \
        if done.elapsed_s > 0 else 0.0
    return done


def _order(seed: int, epoch: int, n_items: int, device: Any) -> Any:
    """The epoch's visiting order of the items: int64 ``[n_items]``."""
    import torch

    rng = np.random.default_rng(seed_for(seed, epoch, 0))
    return torch.from_numpy(rng.permutation(n_items)).to(device)


def _step(job: Job, order: Any, b: int, state: dict[str, Any]) -> dict[str, float]:
    """Global batch ``b`` of the epoch: this rank's slice through the step function, the EMA,
    the position advanced."""
    s, nets = job.schedule, job.networks
    offset, n_local = job.world.shard(s.batch_size)
    start = b * s.batch_size + offset  # global position of this rank's first item
    rnd = nets.source.current = Draws(s.seed, state["epoch"], start, n_local, job.world.device)
    assert job.step is not None, "the stage sets its step function before running the loop"
    try:
        losses = job.step(order[start:start + n_local], rnd)
    finally:
        nets.source.current = None
    if nets.ema is not None:
        update_ema(nets.ema, nets.nets["generator"], nets.ema_decay, state["step"])
    state["step"] += 1
    state["batch"] = b + 1
    state["images"] += s.batch_size
    return losses


class _Clock:
    """The run's training time (summed over resumes) and its minute budget."""

    def __init__(self, state: dict[str, Any], world: Any, max_minutes: float | None) -> None:
        self.world, self.timed = world, max_minutes is not None
        self.budget_s = (max_minutes or math.inf) * 60.0
        self.t0 = time.perf_counter()
        self.elapsed0, self.images0 = state["elapsed_s"], state["images"]

    def tick(self, state: dict[str, Any], batch: int) -> None:
        elapsed = self.elapsed0 + time.perf_counter() - self.t0
        # Every rank stops at the same step: the minute budget is judged on the slowest rank's
        # clock (one all-reduce per step, only when there is such a budget).
        state["elapsed_s"] = self.world.agree_max(elapsed) if self.timed else elapsed

    def images_per_s(self, state: dict[str, Any]) -> float:
        return (state["images"] - self.images0) / max(time.perf_counter() - self.t0, 1e-9)


def _log(job: Job, state: dict[str, Any], losses: dict[str, float], ips: float,
         total: int | None, last: bool) -> None:
    """metrics.jsonl (every ``log_every`` steps and at the end of an epoch) and the progress."""
    e = state["epoch"]
    if state["step"] % job.schedule.log_every == 0 or last:
        row = job.world.mean(losses)  # the global batch's losses, the same on any count
        if job.world.main:
            append_metrics(job.out, {"step": state["step"], "epoch": e,
                                     **{k: round(v, 5) for k, v in row.items()},
                                     "images_per_s": round(ips, 1),
                                     "elapsed_s": round(state["elapsed_s"], 2)})
    job.report.count(job.schedule.task, state["step"], total, "steps",
                     info=step_info(e, losses, ips),
                     metrics={**losses, "epoch": e, "images_per_s": ips})


def update_ema(ema: Any, live: Any, decay: float, step: int) -> None:
    """``ema = d * ema + (1 - d) * live`` with a warm-up so early averages are not stale."""
    import torch

    d = min(decay, (1 + step) / (10 + step))
    with torch.no_grad():
        for pe, pl in zip(ema.parameters(), live.parameters()):
            pe.lerp_(pl, 1 - d)
        for be, bl in zip(ema.buffers(), live.buffers()):
            be.copy_(bl)


# --------------------------------------------------------------------------- artefacts

def sample_grid(generator: Any, mcfg: ModelConfig, out: Path, epoch: int, device: Any) -> Path:
    """One row per label, ten samples each, from the same latents every epoch."""
    from edgegen.runtime.postprocess import to_pixels
    from edgegen.training.images import save_grid

    labels = np.repeat(np.arange(mcfg.n_classes), 10)
    imgs = sample_images(generator, mcfg.z_dim, labels, SAMPLE_SEED, device)
    return save_grid(to_pixels(imgs), out / "samples" / f"epoch_{epoch:04d}.png", nrow=10)


def measure_fidelity(evaluator: Path | None, out: Path, generator: Any, mcfg: ModelConfig,
                     samples: int, step: int, device: Any, report: Reporter
                     ) -> dict[str, Any] | None:
    """The evaluator's label fidelity of ``generator`` (reported, logged to metrics.jsonl; never
    a training signal), or None when there is no evaluator (``--evaluator``, else
    ``<out>/../evaluator``)."""
    from edgegen.training.evaluator import find_evaluator

    found = find_evaluator(evaluator, out)
    if found is None:
        return None
    from edgegen.training.evaluator import generator_fidelity, load_evaluator

    clf = load_evaluator(found, device=device)
    fidelity = generator_fidelity(generator, clf, mcfg.z_dim, samples, FIDELITY_SEED, device,
                                  n_classes=mcfg.n_classes)
    fidelity["evaluator"] = str(found)
    append_metrics(out, {"step": step, "event": "fidelity", **fidelity})
    report.say(f"label fidelity {fidelity['fidelity']:.2%} on {fidelity['samples']} samples "
               f"(evaluator {found})")
    return fidelity


def append_metrics(out: Path, row: dict[str, Any]) -> None:
    with open(out / METRICS_NAME, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(row) + "\n")


def truncate_metrics(path: Path, step: int) -> None:
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
