"""The torch helpers every stage shares: device choice, the numerics settings of training,
per-(seed, epoch, stream) seeds and the one batched generation loop (training's sample grids and
fidelity, export's goldens, verify's and eval's PyTorch reference, the benchmark's PyTorch peer).

**Bitwise-reproducible CPU training** needs more than ``torch.use_deterministic_algorithms``.
Several CPU kernels split their sums by thread — BatchNorm's statistics, oneDNN's convolution
weight gradients, and MKL's sgemm for some shapes (the discriminator's class head's weight
gradient, ``[10, B] x [B, 6272]``) — so the thread count is part of the numerics; and Intel MKL
without "conditional numerical reproducibility" picks code paths by the memory alignment of the
operands (sgemv/sgemm for the discriminator's heads give different float32 sums for operands
4-60 bytes off a 64-byte boundary) and, with ``MKL_DYNAMIC`` on, may change its thread count at
run time. MKL's documented conditions for reproducible results are a fixed thread count,
``MKL_DYNAMIC=FALSE`` and ``OMP_DYNAMIC=FALSE``, and CNR mode (``MKL_CBWR``). torch turns
``MKL_DYNAMIC`` off only inside ``torch.set_num_threads``, which a run without ``--threads``
never called; and with ``OMP_DYNAMIC=TRUE`` GNU OpenMP sizes every parallel region by the machine's
load average, so a competing load changes the results. ``NUMERICS_ENV`` holds the settings that
must be in the environment before torch loads (the CLI's ``main`` sets them first, so do torchrun's
workers, which run the CLI); ``setup_torch`` pins the thread count.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping
from typing import Any

import numpy as np

from edgegen.core.errors import ConfigError


def device(name: str) -> Any:
    """``torch.device(name)`` for ``cpu`` or ``cuda``; a ConfigError when CUDA is asked for and
    torch sees none (never a silent CPU run)."""
    import torch

    if name not in ("cpu", "cuda"):
        raise ConfigError(f"--device must be cpu or cuda, got {name!r}")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda was asked for but torch sees no CUDA device "
                          f"(torch {torch.__version__}, built for CUDA {torch.version.cuda}); "
                          "use --device cpu")
    return torch.device(name)


# Read by GNU OpenMP when torch loads and by MKL at its first call: set before either.
NUMERICS_ENV = {
    "OMP_DYNAMIC": "FALSE",  # forced: a team sized by the load average changes the sums
    "MKL_DYNAMIC": "FALSE",  # forced: MKL keeps the thread count it is given
}
NUMERICS_DEFAULTS = {
    "MKL_CBWR": "AUTO",  # CNR mode on this CPU's code path; a user's own branch is kept
}


def pin_numerics_env(env: MutableMapping[str, str] | None = None) -> None:
    """Put ``NUMERICS_ENV`` (always) and ``NUMERICS_DEFAULTS`` (unless set) into ``env``
    (``os.environ``). Effective for this process only before torch loads / MKL first runs, and
    for every process started from it."""
    env = os.environ if env is None else env
    env.update(NUMERICS_ENV)
    for key, value in NUMERICS_DEFAULTS.items():
        env.setdefault(key, value)


def setup_torch(device_name: str, threads: int | None) -> Any:
    """The device of a training run, with the numerics pinned: the environment of
    ``pin_numerics_env`` (in case the caller did not start from the CLI and MKL has not run
    yet), an explicit thread count (``threads``, else torch's current one — calling
    ``torch.set_num_threads`` is also what turns MKL's dynamic threads off) and deterministic
    algorithms."""
    pin_numerics_env()
    import torch

    dev = device(device_name)
    torch.set_num_threads(threads or torch.get_num_threads())
    torch.use_deterministic_algorithms(True, warn_only=dev.type == "cuda")
    return dev


def seed_for(seed: int, epoch: int, stream: int, *more: int) -> int:
    """A 63-bit seed for (run seed, epoch, stream, *more) — independent of how the run was
    split."""
    ss = np.random.SeedSequence([seed, epoch, stream, *more])
    return int(ss.generate_state(1, dtype=np.uint64)[0] >> np.uint64(1))


def generate_images(generator: Any, z: np.ndarray, labels: np.ndarray, *, device: Any = "cpu",
                    batch: int = 500) -> np.ndarray:
    """Run ``generator(z, label)`` in eval mode and without gradients, in chunks of ``batch``:
    float32 ``[N, C, H, W]`` on the CPU. ``z: [N, z_dim]`` float32, ``labels: [N]`` int."""
    import torch

    was_training = generator.training
    generator.eval()
    outs = []
    try:
        with torch.inference_mode():
            for s in range(0, len(labels), batch):
                zb = torch.from_numpy(np.ascontiguousarray(z[s:s + batch], np.float32))
                yb = torch.from_numpy(np.ascontiguousarray(labels[s:s + batch], np.int64))
                outs.append(generator(zb.to(device), yb.to(device)).float().cpu().numpy())
    finally:
        generator.train(was_training)
    if outs:
        return np.concatenate(outs)
    return np.zeros((0, *image_shape(generator)), np.float32)


def image_shape(generator: Any) -> tuple[int, int, int]:
    """(C, H, W) of a generator's images (an attribute of edgegen's models; MNIST's otherwise)."""
    return tuple(getattr(generator, "image_shape", (1, 28, 28)))  # type: ignore[return-value]


def sample_images(generator: Any, z_dim: int, labels: np.ndarray, seed: int,
                  device: Any = "cpu", batch: int = 500) -> np.ndarray:
    """Images for ``labels`` from the portable latents of ``seed`` (row ``i`` for sample ``i``)."""
    from edgegen.runtime.latent import latent

    return generate_images(generator, latent(seed, len(labels), z_dim), np.asarray(labels),
                           device=device, batch=batch)
