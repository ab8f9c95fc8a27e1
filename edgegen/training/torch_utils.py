"""The torch helpers every stage shares: device choice, per-(seed, epoch, stream) seeds and the
one batched generation loop (training's sample grids and fidelity, export's goldens, verify's
and eval's PyTorch reference, the benchmark's PyTorch peer)."""

from __future__ import annotations

from typing import Any

import numpy as np

from edgegen.runtime.errors import ConfigError


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


def setup_torch(device_name: str, threads: int | None) -> Any:
    """The device of a training run, with its thread count and deterministic algorithms set."""
    import torch

    dev = device(device_name)
    if threads:
        torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True, warn_only=dev.type == "cuda")
    return dev


def seed_for(seed: int, epoch: int, stream: int) -> int:
    """A 63-bit seed for (run seed, epoch, stream) — independent of how the run was split."""
    ss = np.random.SeedSequence([seed, epoch, stream])
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
