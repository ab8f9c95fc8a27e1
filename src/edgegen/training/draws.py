"""How a training step draws randomness: per sample, from the sample's global position.

Every random number a training step uses — latent noise, fake labels, diffusion times, label
dropout, augmentation parameters, dropout masks — is a pure function of

    (run seed, epoch, stream name, the sample's global position in the epoch, element index)

and of nothing else: not of the batch the sample lands in, not of the process that computes it,
not of how many processes there are, not of the order in which the step draws its streams, and
not of any generator state. So a run on N processes sees exactly the samples one process would,
a checkpoint needs no generator state to resume exactly (also on another process count), and a
new stream in a step function leaves the others unchanged.

A step function receives ``rnd: Draws`` for its slice of the global batch (``rnd.n`` samples,
the first at global position ``rnd.start``) and draws by stream name; row ``i`` of every draw
belongs to sample ``i`` of the slice::

    z = rnd.normal("z", mcfg.z_dim)            # float32 [n, z_dim], N(0, 1)
    y_fake = rnd.randint("label", n_classes)   # int64   [n], uniform on 0 .. n_classes - 1
    x0 = rnd.normal("x0", *x.shape[1:])        # float32 [n, C, H, W]
    t = rnd.uniform("t")                       # float32 [n], uniform on [0, 1)
    drop = rnd.uniform("drop_label") < p       # bool    [n]

A name may be drawn once per step (a second draw of the same name raises: it would repeat the
noise). ``torch.randn``/``torch.rand``/``torch.randint`` and ``nn.Dropout`` must not be used in a
step: they depend on a generator's state, so on the process count and on the draw order. The
training loop replaces every ``nn.Dropout`` of the networks by
``edgegen.training.layers.SampleDropout``, which draws its masks here (stream
``dropout:<module path>#<call>``).

The algorithm (counter-based; a few lines in any language reproduce it):

1. The stream key is ``seed_for(seed, epoch, DRAW_STREAM, crc32(name))`` — numpy's
   ``SeedSequence`` (``edgegen.training.torch_utils.seed_for``).
2. ``normal``: the portable latent (``edgegen.runtime.latent.latent``: SplitMix64 words →
   53-bit uniforms → Box–Muller in float64 → float32) of the key, rows ``start .. start + n - 1``
   with ``W = prod(shape)`` values per row.
3. ``uniform``: SplitMix64 word ``k = position * W + j`` of the key; ``(word >> 40) * 2**-24`` —
   24 random bits, exact in float32, in [0, 1).
4. ``randint(high)``: the same word; ``((word >> 32) * high) >> 32`` (bias below ``high / 2**32``).

The arithmetic runs in numpy on the host (a few ms per step for the image-sized draws of a
diffusion step) and the result is copied to the step's device.
"""

from __future__ import annotations

import math
import zlib
from typing import Any

import numpy as np

from edgegen.runtime.latent import latent, splitmix64_words
from edgegen.training.torch_utils import seed_for

DRAW_STREAM = 3  # seed_for streams 0 (data order), 1 and 2 (pre-draws generator seeds) are taken


class Draws:
    """The per-sample randomness of one process's slice of one global batch."""

    def __init__(self, seed: int, epoch: int, start: int, n: int, device: Any = "cpu") -> None:
        self.seed, self.epoch, self.start, self.n, self.device = seed, epoch, start, n, device
        self._used: set[str] = set()
        self._calls: dict[str, int] = {}

    def __repr__(self) -> str:
        return (f"Draws(seed={self.seed}, epoch={self.epoch}, start={self.start}, n={self.n}, "
                f"device={self.device})")

    # ---------------------------------------------------------------- the three draws

    def normal(self, name: str, *shape: int) -> Any:
        """Standard normal float32 ``[n, *shape]``."""
        width = math.prod(shape)
        values = latent(self._key(name), self.n, width, start=self.start) if width else \
            np.zeros((self.n, 0), np.float32)
        return self._tensor(values.reshape(self.n, *shape))

    def uniform(self, name: str, *shape: int) -> Any:
        """Uniform float32 on [0, 1), ``[n, *shape]``."""
        words = self._words(name, shape)
        return self._tensor((words >> np.uint64(40)).astype(np.float32) * np.float32(2.0**-24))

    def randint(self, name: str, high: int, *shape: int) -> Any:
        """Uniform int64 on ``0 .. high - 1``, ``[n, *shape]``."""
        if not 0 < high <= 2**31:
            raise ValueError(f"randint needs 0 < high <= 2**31, got {high}")
        words = self._words(name, shape)
        with np.errstate(over="ignore"):
            values = ((words >> np.uint64(32)) * np.uint64(high)) >> np.uint64(32)
        return self._tensor(values.astype(np.int64))

    def call_name(self, prefix: str) -> str:
        """``prefix#k`` for the k-th call with this prefix in the step: a module that runs
        several times per step (a discriminator on real and on fake digits) draws a fresh,
        reproducible stream each time."""
        k = self._calls.get(prefix, 0)
        self._calls[prefix] = k + 1
        return f"{prefix}#{k}"

    # ---------------------------------------------------------------- internals

    def _key(self, name: str) -> int:
        if name in self._used:
            raise ValueError(f"the stream {name!r} was already drawn in this step; every draw "
                             "needs its own name (a repeated name would repeat the noise)")
        self._used.add(name)
        return seed_for(self.seed, self.epoch, DRAW_STREAM, zlib.crc32(name.encode()))

    def _words(self, name: str, shape: tuple[int, ...]) -> np.ndarray:
        """SplitMix64 words ``[n, *shape]`` for the slice's rows of stream ``name``."""
        width = math.prod(shape)
        pos = np.arange(self.start, self.start + self.n, dtype=np.uint64)[:, None]
        with np.errstate(over="ignore"):
            counters = pos * np.uint64(width) + np.arange(width, dtype=np.uint64)[None, :]
        return splitmix64_words(self._key(name), counters).reshape(self.n, *shape)

    def _tensor(self, values: np.ndarray) -> Any:
        import torch

        # copy=True: a tensor of torch's own (64-byte aligned) memory, like every other operand
        return torch.from_numpy(np.ascontiguousarray(values)).to(self.device, copy=True)


class DrawSource:
    """Where the networks' ``SampleDropout`` layers find the current step's ``Draws``: the loop
    sets ``current`` before each step and clears it after."""

    def __init__(self) -> None:
        self.current: Draws | None = None
