"""The portable latent: the same ``z`` for the same (seed, sample index) in any language.

``latent(seed, n, z_dim)`` is counter-based, so a few lines of C, JavaScript or Rust reproduce it
bit for bit (the algorithm is also written, step by step, into every bundle's manifest):

1. ``GAMMA = 0x9E3779B97F4A7C15``. SplitMix64's k-th output (k = 0, 1, ...) for a 64-bit seed is
   ``mix(seed + (k + 1) * GAMMA)`` (all arithmetic modulo 2**64), where ``mix(x)`` is
   ``x ^= x >> 30; x *= 0xBF58476D1CE4E5B9; x ^= x >> 27; x *= 0x94D049BB133111EB; x ^= x >> 31``.
2. Sample ``i`` uses ``P = ceil(z_dim / 2)`` pairs; pair ``j`` takes the words
   ``k1 = 2 * (i * P + j)`` and ``k2 = k1 + 1``.
3. 53-bit uniforms in float64: ``u1 = ((w1 >> 11) + 1) * 2**-53`` in (0, 1] and
   ``u2 = (w2 >> 11) * 2**-53`` in [0, 1).
4. Box-Muller in float64: ``r = sqrt(-2 * log(u1))``, ``t = 6.283185307179586 * u2``;
   ``z[i, 2j] = r * cos(t)`` and ``z[i, 2j + 1] = r * sin(t)`` (the last one is dropped when
   ``z_dim`` is odd).
5. Round each value to float32 (round to nearest even).

Because sample ``i`` depends only on ``(seed, i, z_dim)``, a sample is the same whatever the batch
size it is drawn in. This module imports numpy only (the runtime uses it without torch).
"""

from __future__ import annotations

import math

import numpy as np

from edgegen.runtime.errors import RuntimeInputError

GAMMA = 0x9E3779B97F4A7C15
MIX1 = 0xBF58476D1CE4E5B9
MIX2 = 0x94D049BB133111EB
RETRY_STEP = 0xD1B54A32D192ED03  # odd constant: retry seeds never collide with the base seed
TWO_PI = 6.283185307179586
MASK64 = (1 << 64) - 1
ALGORITHM = "splitmix64-boxmuller-f64-to-f32/1"


def _check_seed(seed: int) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise RuntimeInputError(f"seed must be an integer in [0, 2**64), got {seed!r}")
    seed = int(seed)
    if not 0 <= seed <= MASK64:
        raise RuntimeInputError(f"seed must be in [0, 2**64), got {seed}")
    return seed


def splitmix64_words(seed: int, counters: np.ndarray) -> np.ndarray:
    """SplitMix64's outputs number ``counters`` (uint64 array) for ``seed``."""
    seed = _check_seed(seed)
    with np.errstate(over="ignore"):
        x = np.uint64(seed) + (counters.astype(np.uint64) + np.uint64(1)) * np.uint64(GAMMA)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(MIX1)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(MIX2)
        return x ^ (x >> np.uint64(31))


def latent(seed: int, n: int, z_dim: int, start: int = 0) -> np.ndarray:
    """Latents for samples ``start .. start + n - 1`` of ``seed``: float32 ``[n, z_dim]``."""
    if n < 0 or z_dim <= 0 or start < 0:
        raise RuntimeInputError(f"need n >= 0, z_dim > 0, start >= 0; got {n}, {z_dim}, {start}")
    pairs = (z_dim + 1) // 2
    # counters of the first word of each pair: [n, pairs]
    first = 2 * ((np.arange(start, start + n, dtype=np.uint64)[:, None] * np.uint64(pairs))
                 + np.arange(pairs, dtype=np.uint64)[None, :])
    w1 = splitmix64_words(seed, first)
    w2 = splitmix64_words(seed, first + np.uint64(1))
    u1 = ((w1 >> np.uint64(11)) + np.uint64(1)).astype(np.float64) * 2.0**-53
    u2 = (w2 >> np.uint64(11)).astype(np.float64) * 2.0**-53
    r = np.sqrt(-2.0 * np.log(u1))
    t = TWO_PI * u2
    z = np.empty((n, 2 * pairs), dtype=np.float64)
    z[:, 0::2] = r * np.cos(t)
    z[:, 1::2] = r * np.sin(t)
    return z[:, :z_dim].astype(np.float32)


def latent_for_seeds(seeds: list[int] | np.ndarray, z_dim: int) -> np.ndarray:
    """One latent per seed (sample 0 of each seed's stream): float32 ``[len(seeds), z_dim]``."""
    rows = [latent(int(s), 1, z_dim)[0] for s in seeds]
    return np.stack(rows) if rows else np.zeros((0, z_dim), np.float32)


def retry_seed(seed: int, attempt: int) -> int:
    """The seed that the guard uses for its ``attempt``-th resample (attempt 0 = ``seed``)."""
    return (_check_seed(seed) + attempt * RETRY_STEP) & MASK64


def truncate(z: np.ndarray, psi: float | None) -> np.ndarray:
    """The control knob: scale ``z`` by ``psi`` in float32 (``None`` or 1.0 leaves it unchanged)."""
    if psi is None or psi == 1.0:
        return z
    if not (isinstance(psi, (int, float)) and math.isfinite(psi) and 0.0 < psi <= 4.0):
        raise RuntimeInputError(f"truncation must be a number in (0, 4], got {psi!r}")
    return (z.astype(np.float32) * np.float32(psi)).astype(np.float32)


def latent_test_vectors() -> list[dict]:
    """Reference values written into every manifest so other languages can check themselves."""
    cases = [(0, 2, 5), (42, 3, 4), (2**64 - 1, 1, 3), (1234567890123, 2, 2)]
    out = []
    for seed, n, z_dim in cases:
        z = latent(seed, n, z_dim)
        out.append({
            "seed": str(seed),  # a string: JSON readers lose precision above 2**53
            "n": n,
            "z_dim": z_dim,
            "float32_hex": [f"{v:08x}" for v in z.view(np.uint32).ravel().tolist()],
            "values": [float(v) for v in z.ravel().tolist()],
        })
    return out


def extra_test_vectors() -> dict[str, list[dict]]:
    """Vectors for the truncation knob and the guard's retry seeds (also in every manifest)."""
    trunc = []
    for seed, psi in ((42, 0.7), (7, 0.5)):
        z = truncate(latent(seed, 1, 4), psi)
        trunc.append({"seed": str(seed), "n": 1, "z_dim": 4, "psi": psi,
                      "float32_hex": [f"{v:08x}" for v in z.view(np.uint32).ravel().tolist()]})
    retry = [{"seed": str(s), "attempt": a, "retry_seed": str(retry_seed(s, a))}
             for s, a in ((42, 1), (42, 4), (2**64 - 1, 2))]
    return {"truncation": trunc, "retry_seed": retry}


def describe() -> dict:
    """The algorithm, step by step, for the manifest."""
    return {
        "name": ALGORITHM,
        "steps": [
            "All integer arithmetic is unsigned 64-bit, modulo 2**64.",
            "GAMMA = 0x9E3779B97F4A7C15; mix(x): x ^= x >> 30; x *= 0xBF58476D1CE4E5B9; "
            "x ^= x >> 27; x *= 0x94D049BB133111EB; x ^= x >> 31.",
            "word(seed, k) = mix(seed + (k + 1) * GAMMA) for k = 0, 1, 2, ...",
            "Sample i has P = ceil(z_dim / 2) pairs; pair j uses k1 = 2 * (i * P + j), "
            "k2 = k1 + 1.",
            "u1 = ((word(seed, k1) >> 11) + 1) * 2**-53 (in (0, 1]); "
            "u2 = (word(seed, k2) >> 11) * 2**-53 (in [0, 1)), both float64.",
            "r = sqrt(-2 * log(u1)); t = 6.283185307179586 * u2 (float64).",
            "z[i][2j] = r * cos(t); z[i][2j + 1] = r * sin(t); drop index z_dim when z_dim is odd.",
            "Round every value to float32 (IEEE round to nearest, ties to even).",
            "Truncation psi (optional): z = float32(z * float32(psi)).",
            "Guard retries: attempt a (a >= 1) redraws sample i as row i of seed "
            "(seed + a * 0xD1B54A32D192ED03) mod 2**64.",
        ],
        "gamma": hex(GAMMA),
        "mix_constants": [hex(MIX1), hex(MIX2)],
        "retry_step": hex(RETRY_STEP),
        "two_pi": TWO_PI,
    }
