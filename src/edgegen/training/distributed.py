"""Training on several processes (and machines): torchrun's environment, the process group, the
DDP wrappers, and the few collectives the loops need.

A process started by ``torchrun`` (or by ``edgegen train --nproc-per-node N``, which runs
torchrun) finds ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT`` in
its environment. ``start_world`` reads them and, for more than one process, joins the process
group: gloo for CPU training, NCCL for CUDA (one GPU per process, ``cuda:LOCAL_RANK``). Without
them a ``World`` of one process does nothing and costs nothing.

What the loops rely on:

* ``World.shard(batch)``: rank ``r`` takes the contiguous slice ``[r * b, (r + 1) * b)`` of each
  global batch (``b = batch / world_size``; a batch that does not divide is a ``ConfigError``).
* ``World.wrap(nets)``: each network in its own ``DistributedDataParallel``, called through a
  ``DistributedNet`` — a step function calls ``net(x)`` or ``net.logits(z, y)`` as it always did,
  and every call that builds a graph goes through DDP, so the backward pass averages the
  gradients over the ranks. Every rank's loss is a mean over its equal slice, so the average is
  the gradient of the global batch's mean loss, the single-process gradient up to summation
  order. A call with gradients off (sampling, EMA, a frozen network) bypasses DDP.
* ``World.from_main(fn)``: rank 0 decides (reads the checkpoint to resume from, ...) and every
  rank gets the same bytes — or the same ``EdgegenError``; no rank reads a file that only rank 0
  can see.
* ``World.agree_max(x)``, ``World.mean(losses)``, ``World.barrier()``, and
  ``World.all_gather_rows(block, total, per_rank)`` (distillation's teacher pairs, computed in
  blocks).

A rank that loses its peers (one was killed) gets a ``DistributedError`` at its next collective
instead of hanging: the connection closes at once, and ``timeout_s`` bounds a peer that hangs.
"""

from __future__ import annotations

import atexit
import functools
import inspect
import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from edgegen.core import errors
from edgegen.core.errors import ConfigError, DistributedError, EdgegenError
from edgegen.training.torch_utils import device as torch_device
from edgegen.training.torch_utils import setup_torch

DEFAULT_TIMEOUT_S = 180.0  # a collective waits this long for a rank that hangs (not one that died)


@dataclass(frozen=True)
class Launch:
    """What the launcher (torchrun) put into this process's environment."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1
    restart_count: int = 0  # TORCHELASTIC_RESTART_COUNT: > 0 after torchrun restarted the group

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Launch:
        env = os.environ if env is None else env

        def num(name: str, default: int) -> int:
            raw = env.get(name)
            if raw is None or raw == "":
                return default
            try:
                return int(raw)
            except ValueError:
                raise ConfigError(f"environment variable {name}={raw!r} is not an integer; "
                                  "it is set by torchrun — launch with torchrun or unset it"
                                  ) from None

        world = num("WORLD_SIZE", 1)
        launch = cls(rank=num("RANK", 0), world_size=world, local_rank=num("LOCAL_RANK", 0),
                     local_world_size=num("LOCAL_WORLD_SIZE", world),
                     restart_count=num("TORCHELASTIC_RESTART_COUNT", 0))
        if world < 1 or not 0 <= launch.rank < world:
            raise ConfigError(f"RANK={launch.rank} and WORLD_SIZE={world} are inconsistent; "
                              "they are set by torchrun — launch with torchrun or unset them")
        if world > 1 and not (env.get("MASTER_ADDR") and env.get("MASTER_PORT")):
            raise ConfigError(f"WORLD_SIZE={world} but MASTER_ADDR/MASTER_PORT are not set; "
                              "launch with torchrun (or `edgegen train --nproc-per-node N`)")
        return launch

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def check_global_batch(batch: int, world_size: int, option: str = "--batch-size") -> None:
    """A ConfigError when the global batch does not divide among ``world_size`` processes."""
    if batch % world_size:
        k = world_size
        raise ConfigError(f"{option} {batch} is the global batch and must divide among the {k} "
                          f"processes; pass a multiple of {k} such as {batch // k * k or k} or "
                          f"{(batch // k + 1) * k}")


class World:
    """This process's place among the training processes (one process: rank 0 of 1)."""

    def __init__(self, launch: Launch, device: Any) -> None:
        self.launch = launch
        self.rank, self.size = launch.rank, launch.world_size
        self.device = device
        self._cpu_group: Any = None  # control messages (always gloo: CPU tensors)
        self._bn_group: Any = None  # SyncBatchNorm's statistics (the device's backend)
        if self.size > 1:
            import torch.distributed as dist

            cuda = getattr(device, "type", str(device)) == "cuda"
            self._cpu_group = dist.new_group(backend="gloo") if cuda else dist.group.WORLD
            self._bn_group = dist.new_group(backend="nccl" if cuda else "gloo")

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def restarted(self) -> bool:
        return self.launch.restart_count > 0

    def __repr__(self) -> str:
        return f"World(rank={self.rank}, size={self.size}, device={self.device})"

    # ---------------------------------------------------------------- batches

    def shard(self, batch: int, option: str = "--batch-size") -> tuple[int, int]:
        """(offset, n): this rank's contiguous slice of a global batch of ``batch`` samples."""
        check_global_batch(batch, self.size, option)
        n = batch // self.size
        return self.rank * n, n

    # ---------------------------------------------------------------- networks

    def prepare(self, nets: Mapping[str, Any]) -> None:
        """Synchronise the networks' batch statistics over the global batch (in place):
        BatchNorm, and any ``batch_sum`` (cmlp's minibatch std)."""
        if self.size == 1:
            return
        from edgegen.training.layers import convert_batchnorm, global_batch_sums

        for net in nets.values():
            convert_batchnorm(net, self._bn_group, self.size)
            global_batch_sums(net, self._bn_group)

    def wrap(self, nets: Mapping[str, Any]) -> dict[str, Any]:
        """What step functions get: the networks themselves for one process, ``DistributedNet``
        proxies around one DDP wrapper per network otherwise."""
        if self.size == 1:
            return dict(nets)
        from torch.nn.parallel import DistributedDataParallel

        cuda = self.device.type == "cuda"
        out = {}
        for name, net in nets.items():
            # forward_sync_buffers=False: BatchNorm statistics are already global (prepare),
            # so the buffers are identical on every rank without a broadcast per forward.
            # find_unused_parameters=False: in every family, each parameter of a network takes
            # part in the backward pass that follows a forward with gradients.
            ddp = DistributedDataParallel(
                _methods_class()(net), device_ids=[self.device.index] if cuda else None,
                forward_sync_buffers=False, find_unused_parameters=False)
            out[name] = DistributedNet(net, ddp)
        return out

    # ---------------------------------------------------------------- collectives

    def agree_max(self, value: float) -> float:
        """The largest ``value`` over the ranks (every rank gets it): budgets are agreed on."""
        if self.size == 1:
            return value
        import torch
        import torch.distributed as dist

        t = torch.tensor([value], dtype=torch.float64)
        with self.guard():
            dist.all_reduce(t, op=dist.ReduceOp.MAX, group=self._cpu_group)
        return float(t.item())

    def mean(self, values: Mapping[str, float]) -> dict[str, float]:
        """The mean over the ranks of each value (every rank's mean over its equal slice, so the
        result is the global batch's mean). The keys must be the same on every rank."""
        if self.size == 1 or not values:
            return dict(values)
        import torch
        import torch.distributed as dist

        keys = sorted(values)
        t = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64)
        with self.guard():
            dist.all_reduce(t, group=self._cpu_group)
        return {k: float(v) / self.size for k, v in zip(keys, t.tolist())}

    def all_gather_rows(self, block: Any, total: int, per_rank: int) -> Any:
        """Every rank's ``block`` of rows, concatenated in rank order, on every rank (CPU).

        Rank ``r`` holds rows ``[r * per_rank, min((r + 1) * per_rank, total))`` of a
        ``total``-row tensor (fewer, or none, on the last ranks); the result is the whole
        ``[total, ...]`` tensor."""
        import torch

        if self.size == 1:
            return block.cpu()[:total]
        import torch.distributed as dist

        buf = torch.zeros((per_rank, *block.shape[1:]), dtype=block.dtype)
        buf[:len(block)] = block.cpu()
        parts = [torch.empty_like(buf) for _ in range(self.size)]
        with self.guard():
            dist.all_gather(parts, buf, group=self._cpu_group)
        return torch.cat(parts)[:total]

    def barrier(self) -> None:
        if self.size == 1:
            return
        import torch.distributed as dist

        with self.guard():
            dist.barrier(group=self._cpu_group)

    def from_main(self, fn: Callable[[], bytes | None]) -> bytes | None:
        """Run ``fn`` on rank 0 and give every rank its result; an ``EdgegenError`` raised by
        ``fn`` is raised on every rank (so no rank waits for a message that never comes)."""
        if self.size == 1:
            return fn()
        import torch
        import torch.distributed as dist

        status, payload, failure = 0, b"", None
        if self.main:
            try:
                data = fn()
                status, payload = (1, data) if data is not None else (0, b"")
            except EdgegenError as exc:
                failure = exc
                status, payload = 2, f"{type(exc).__name__}\n{exc}".encode()
        head = torch.tensor([status, len(payload)], dtype=torch.int64)
        with self.guard():
            dist.broadcast(head, 0, group=self._cpu_group)
            status, length = (int(v) for v in head.tolist())
            buf = (torch.frombuffer(bytearray(payload), dtype=torch.uint8)
                   if self.main and length else torch.empty(length, dtype=torch.uint8))
            if length:
                dist.broadcast(buf, 0, group=self._cpu_group)
        if status == 2:
            if failure is not None:
                raise failure
            name, _, message = bytes(buf.numpy()).decode().partition("\n")
            cls = getattr(errors, name, EdgegenError)
            raise (cls if isinstance(cls, type) and issubclass(cls, EdgegenError)
                   else EdgegenError)(message)
        return bytes(buf.numpy()) if status == 1 else None

    @contextmanager
    def guard(self) -> Iterator[None]:
        """Turn a lost peer (a collective that fails because another rank died or hung) into a
        ``DistributedError`` with a message instead of a backend traceback."""
        if self.size == 1:
            yield
            return
        import torch.distributed as dist

        try:
            yield
        except (dist.DistError, RuntimeError) as exc:
            text = str(exc)
            if not isinstance(exc, dist.DistError) and not any(
                    s in text for s in ("gloo", "Gloo", "NCCL", "Connection", "closed",
                                        "timed out", "Timed out")):
                raise
            first = text.strip().splitlines()[0][:300] if text.strip() else type(exc).__name__
            raise DistributedError(
                f"rank {self.rank} of {self.size} lost contact with the other training "
                f"processes ({first}); another rank stopped or hung. The last checkpoint is "
                "intact: resume with `edgegen train --resume <run>` (any process count), or "
                "launch with torchrun --max-restarts K to resume automatically") from exc

    def close(self) -> None:
        """Leave the groups this World made. The default process group stays for the life of
        the process (a second stage on the same processes reuses it; torch cannot re-create it
        on the same rendezvous store) and is destroyed at exit."""
        if self.size > 1:
            import torch.distributed as dist

            for group in {id(g): g for g in (self._bn_group, self._cpu_group)
                          if g is not None and g is not dist.group.WORLD}.values():
                dist.destroy_process_group(group)
            self._bn_group = self._cpu_group = None


@contextmanager
def joined(device_name: str, threads: int | None,
           timeout_s: float = DEFAULT_TIMEOUT_S) -> Iterator[World]:
    """A training stage's process setup: torch's numerics pinned (``setup_torch``), this
    process's ``World`` (joining the process group when torchrun started several), lost peers
    turned into ``DistributedError``s, the World's groups left at the end."""
    setup_torch(device_name, threads)
    world = start_world(device_name, timeout_s)
    try:
        with world.guard():
            yield world
    finally:
        world.close()


def start_world(device_name: str, timeout_s: float = DEFAULT_TIMEOUT_S,
                env: Mapping[str, str] | None = None) -> World:
    """The ``World`` of this process: joins the process group when torchrun started more than
    one process (gloo on CPU, NCCL on CUDA); the device is ``cuda:LOCAL_RANK`` for CUDA."""
    import torch

    launch = Launch.from_env(env)
    dev = torch_device(device_name)
    if dev.type == "cuda":
        if launch.local_rank >= torch.cuda.device_count():
            raise ConfigError(f"LOCAL_RANK {launch.local_rank} but torch sees "
                              f"{torch.cuda.device_count()} CUDA devices; start at most one "
                              "process per GPU (--nproc-per-node)")
        dev = torch.device("cuda", launch.local_rank)
        torch.cuda.set_device(dev)
    if not launch.distributed:
        return World(launch, dev)
    import datetime

    import torch.distributed as dist

    if not dist.is_initialized():
        backend = "nccl" if dev.type == "cuda" else "gloo"
        timeout = datetime.timedelta(seconds=timeout_s)
        try:
            dist.init_process_group(backend=backend, store=_round_store(launch, timeout),
                                    rank=launch.rank, world_size=launch.world_size,
                                    timeout=timeout,
                                    device_id=dev if dev.type == "cuda" else None)
        except (dist.DistError, RuntimeError, ValueError) as exc:
            raise DistributedError(f"rank {launch.rank} could not join the {backend} process "
                                   f"group at {os.environ.get('MASTER_ADDR')}:"
                                   f"{os.environ.get('MASTER_PORT')} within {timeout_s:.0f} s "
                                   f"({str(exc).splitlines()[0] if str(exc) else exc!r})"
                                   ) from exc
        atexit.register(_leave)
    elif dist.get_world_size() != launch.world_size:
        raise ConfigError(f"the process group has {dist.get_world_size()} ranks but "
                          f"WORLD_SIZE={launch.world_size}")
    return World(launch, dev)


def _round_store(launch: Launch, timeout: Any) -> Any:
    """The key-value store the process group meets in, private to this restart round.

    torchrun's c10d rendezvous keeps one store server for all rounds and hands every round's
    workers the same address (``TORCHELASTIC_USE_AGENT_STORE``), so after a restart the keys of
    the dead round are still there: a rank can read a killed peer's gloo address before the new
    peer has written its own, and then fails with "Connection refused". Prefixing the keys with
    the restart count (``TORCHELASTIC_RESTART_COUNT``) gives each round a clean namespace.
    """
    import torch.distributed as dist
    from torch.distributed.rendezvous import rendezvous

    store, _, _ = next(rendezvous("env://", launch.rank, launch.world_size, timeout=timeout))
    return dist.PrefixStore(f"edgegen/round{launch.restart_count}", store)


def _leave() -> None:
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()


@functools.lru_cache(maxsize=1)
def _methods_class() -> type:
    from torch import nn

    class Methods(nn.Module):
        """DDP only intercepts ``forward``; this routes ``net.<method>(...)`` through it, so a
        step function may call ``dec.logits(z, y)`` (or a diffusion net's ``velocity``) and still
        get averaged gradients."""

        def __init__(self, net: nn.Module) -> None:
            super().__init__()
            self.net = net

        def forward(self, method: str, *args: Any, **kwargs: Any) -> Any:
            return getattr(self.net, method)(*args, **kwargs)

    return Methods


class DistributedNet:
    """A network as a step function sees it on several processes: call it and its methods as
    usual; calls that build a graph go through the network's DDP wrapper."""

    def __init__(self, net: Any, ddp: Any) -> None:
        self.__dict__.update(_net=net, _ddp=ddp)

    @property
    def module(self) -> Any:
        """The network itself (its parameters, buffers and ``state_dict``)."""
        return self._net

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._call("forward", *args, **kwargs)

    def train(self, mode: bool = True) -> DistributedNet:
        self._ddp.train(mode)
        return self

    def eval(self) -> DistributedNet:
        return self.train(False)

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._net, name)
        from torch import nn

        if inspect.ismethod(attr) and not hasattr(nn.Module, name) and not name.startswith("_"):
            return lambda *args, **kwargs: self._call(name, *args, **kwargs)
        return attr

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._net, name, value)

    def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        import torch

        if torch.is_grad_enabled() and any(p.requires_grad for p in self._net.parameters()):
            return self._ddp(method, *args, **kwargs)
        return getattr(self._net, method)(*args, **kwargs)
