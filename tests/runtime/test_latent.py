"""The portable latent against a from-scratch, pure-Python reading of its documented steps."""

from __future__ import annotations

import math
import struct

import numpy as np
import pytest

from edgegen.runtime.errors import RuntimeInputError
from edgegen.runtime.latent import (
    extra_test_vectors,
    latent,
    latent_test_vectors,
    retry_seed,
    truncate,
)

M = (1 << 64) - 1


def word(seed: int, k: int) -> int:
    """SplitMix64's k-th output for ``seed``, with Python ints."""
    x = (seed + (k + 1) * 0x9E3779B97F4A7C15) & M
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & M
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & M
    return x ^ (x >> 31)


def reference(seed: int, n: int, z_dim: int) -> list[list[float]]:
    """The algorithm as the manifest words it, with Python ints and the math module."""
    def f32(v: float) -> float:
        return struct.unpack("f", struct.pack("f", v))[0]

    pairs = (z_dim + 1) // 2
    rows = []
    for i in range(n):
        row = []
        for j in range(pairs):
            k1 = 2 * (i * pairs + j)
            u1 = ((word(seed, k1) >> 11) + 1) * 2.0**-53
            u2 = (word(seed, k1 + 1) >> 11) * 2.0**-53
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


# Literals computed once from the documented steps by ``reference`` above (plain Python ints and
# the math module, no numpy) and written here by hand, so neither the runtime nor the reference
# can drift unnoticed: (seed, n, z_dim) -> float32 bits of row-major z, and z[0, 0] in decimal.
PINNED = {
    (0, 2, 5): (["bee7cfdd", "3e54c09f", "4029a387", "befb18b3", "bf7d1529",
                 "3e8142cb", "bfed3d02", "3fcccc97", "befeaa1a", "3dc0fd71"], -0.45275774598121643),
    (42, 3, 4): (["3ed45626", "3f27161e", "bf6452a8", "3fa9d5af", "3fdd634e", "bff113cd",
                  "3f0badc8", "bfd41332", "bf8a4af9", "bf7ecfa1", "bfe3b14b", "3da0951e"],
                 0.41471976041793823),
    (2**64 - 1, 1, 3): (["3ececbbe", "be7d1a1d", "bfc7665e"], 0.4038981795310974),
    (1234567890123, 2, 2): (["3f6476a8", "3eef1f06", "3fa4b79d", "3b6dd1b3"],
                            0.8924355506896973),
}
# truncate(latent(seed, 1, 4), psi) and retry_seed(seed, attempt), the manifest's extra vectors
PINNED_TRUNCATION = {(42, 0.7): ["3e94a2b4", "3ee9ebc3", "bf1fd375", "3f6dc4c2"],
                     (7, 0.5): ["3f2eb811", "3d93fd5f", "be4b0531", "bde90f02"]}
PINNED_RETRY = {(42, 1): 15111065706836454701, (42, 4): 5104030606217163830,
                (2**64 - 1, 2): 11775387339963357701}


def hex32(values: list[float]) -> list[str]:
    """float32 bit patterns, as the manifest writes them (``f"{bits:08x}"``)."""
    return [struct.pack(">f", v).hex() for v in values]


def test_splitmix64_is_the_published_generator() -> None:
    """The first outputs of SplitMix64 from state 0 (Vigna's splitmix64.c, also Java's
    SplittableRandom): the words under every latent are the well-known ones."""
    from edgegen.runtime.latent import splitmix64_words

    published = [0xE220A8397B1DCDAF, 0x6E789E6AA1B965F4, 0x06C45D188009454F]
    assert splitmix64_words(0, np.arange(3, dtype=np.uint64)).tolist() == published
    assert [word(0, k) for k in range(3)] == published


@pytest.mark.parametrize("case", sorted(PINNED))
def test_pinned_vectors_from_the_spec(case: tuple[int, int, int]) -> None:
    seed, n, z_dim = case
    want, first = PINNED[case]
    assert hex32([v for row in reference(seed, n, z_dim) for v in row]) == want
    assert [f"{v:08x}" for v in latent(seed, n, z_dim).view(np.uint32).ravel()] == want
    assert float(latent(seed, n, z_dim)[0, 0]) == first


def test_the_manifests_test_vectors_are_the_pinned_ones() -> None:
    """What every bundle carries for other languages to check themselves against."""
    vectors = latent_test_vectors()
    assert [(int(tv["seed"]), tv["n"], tv["z_dim"]) for tv in vectors] == list(PINNED)
    for tv in vectors:
        want, first = PINNED[(int(tv["seed"]), tv["n"], tv["z_dim"])]
        assert tv["float32_hex"] == want
        assert tv["values"] == [struct.unpack(">f", bytes.fromhex(h))[0] for h in want]
        assert tv["values"][0] == first
    extra = extra_test_vectors()
    assert {(int(t["seed"]), t["psi"]): t["float32_hex"] for t in extra["truncation"]} \
        == PINNED_TRUNCATION
    assert {(int(r["seed"]), r["attempt"]): int(r["retry_seed"]) for r in extra["retry_seed"]} \
        == PINNED_RETRY


def test_truncation_and_retry_seeds_from_the_spec() -> None:
    """float32(z * float32(psi)) and (seed + a * 0xD1B54A32D192ED03) mod 2**64, in plain Python
    (the float64 product of two float32 values is exact, so rounding it once is float32's)."""
    def f32(v: float) -> float:
        return struct.unpack("f", struct.pack("f", v))[0]

    for (seed, psi), want in PINNED_TRUNCATION.items():
        assert hex32([f32(v * f32(psi)) for v in reference(seed, 1, 4)[0]]) == want
        got = truncate(latent(seed, 1, 4), psi)
        assert [f"{v:08x}" for v in got.view(np.uint32).ravel()] == want
    for (seed, attempt), want in PINNED_RETRY.items():
        assert (seed + attempt * 0xD1B54A32D192ED03) % 2**64 == want == retry_seed(seed, attempt)


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
