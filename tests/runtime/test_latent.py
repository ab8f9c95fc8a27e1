"""The portable latent against a from-scratch, pure-Python reading of its documented steps."""

from __future__ import annotations

import math
import struct

import numpy as np
import pytest

from edgegen.runtime.errors import RuntimeInputError
from edgegen.runtime.latent import latent, latent_test_vectors, retry_seed, truncate

M = (1 << 64) - 1


def reference(seed: int, n: int, z_dim: int) -> list[list[float]]:
    """The algorithm as the manifest words it, with Python ints and the math module."""
    def word(k: int) -> int:
        x = (seed + (k + 1) * 0x9E3779B97F4A7C15) & M
        x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & M
        x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & M
        return x ^ (x >> 31)

    def f32(v: float) -> float:
        return struct.unpack("f", struct.pack("f", v))[0]

    pairs = (z_dim + 1) // 2
    rows = []
    for i in range(n):
        row = []
        for j in range(pairs):
            k1 = 2 * (i * pairs + j)
            u1 = ((word(k1) >> 11) + 1) * 2.0**-53
            u2 = (word(k1 + 1) >> 11) * 2.0**-53
            r, t = math.sqrt(-2.0 * math.log(u1)), 6.283185307179586 * u2
            row += [f32(r * math.cos(t)), f32(r * math.sin(t))]
        rows.append(row[:z_dim])
    return rows


@pytest.mark.parametrize("seed,n,z_dim", [(0, 3, 5), (42, 4, 100), (2**64 - 1, 2, 7),
                                          (987654321987654321, 1, 16)])
def test_matches_the_documented_algorithm_bit_for_bit(seed: int, n: int, z_dim: int) -> None:
    ours = latent(seed, n, z_dim)
    assert ours.dtype == np.float32 and ours.shape == (n, z_dim)
    assert np.array_equal(ours, np.array(reference(seed, n, z_dim), dtype=np.float32))


def test_a_sample_does_not_depend_on_the_batch_it_is_drawn_in() -> None:
    big = latent(9, 50, 100)
    assert np.array_equal(big[:3], latent(9, 3, 100))
    assert np.array_equal(big[20:25], latent(9, 5, 100, start=20))


def test_distribution_is_standard_normal() -> None:
    z = latent(1, 4000, 50)
    assert abs(float(z.mean())) < 0.01 and abs(float(z.std()) - 1) < 0.01


def test_test_vectors_reproduce() -> None:
    for tv in latent_test_vectors():
        z = latent(int(tv["seed"]), tv["n"], tv["z_dim"])
        assert [f"{v:08x}" for v in z.view(np.uint32).ravel()] == tv["float32_hex"]


def test_bad_seeds_and_truncation() -> None:
    for bad in (-1, 2**64, 1.5, "7", True):
        with pytest.raises(RuntimeInputError):
            latent(bad, 1, 4)  # type: ignore[arg-type]
    with pytest.raises(RuntimeInputError):
        truncate(np.zeros((1, 4), np.float32), float("nan"))
    z = latent(3, 2, 4)
    assert np.array_equal(truncate(z, 0.5), (z * np.float32(0.5)).astype(np.float32))
    assert truncate(z, None) is z
    assert retry_seed(5, 0) == 5 and retry_seed(5, 1) != 5 and retry_seed(M, 3) <= M
