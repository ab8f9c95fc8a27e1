"""Parity's numbers: element-wise differences between a candidate and its reference.

One tolerance rule (numpy's ``isclose``): an element passes when
``|candidate - reference| <= atol + rtol * |reference|``. ``error_stats`` also reports max /
mean / median / p99 absolute and relative error, PSNR, cosine similarity, the number of elements
out of tolerance and the smallest atol that would pass with the given rtol, so a failure says how
far off it is, not only that it is. numpy only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

TOLERANCE_RULE = ("an element passes when |candidate - reference| <= atol + rtol * |reference| "
                  "(numpy.isclose); the reference is the golden output or PyTorch float32 on CPU")
RELATIVE_ERROR = ("relative error = |candidate - reference| / |reference|, over the elements "
                  "whose reference is not exactly 0")
OUTPUT_RANGE = 2.0  # the generator's image is in [-1, 1]: PSNR's peak-to-peak signal


@dataclass(frozen=True)
class Tolerance:
    atol: float
    rtol: float


@dataclass
class ErrorStats:
    """Element-wise differences between a candidate and its reference (float64 arithmetic)."""

    elements: int
    max_abs: float
    mean_abs: float
    median_abs: float
    p99_abs: float
    max_rel: float
    mean_rel: float
    median_rel: float
    p99_rel: float
    psnr_db: float  # peak-to-peak signal = the output range (2.0); inf when identical
    cosine: float
    atol: float
    rtol: float
    out_of_tolerance: int
    min_passing_atol: float  # the smallest atol for which every element passes with ``rtol``
    worst: dict[str, Any]  # where |Δ| is largest: index, candidate and reference values

    @property
    def passed(self) -> bool:
        return self.out_of_tolerance == 0



def error_stats(candidate: np.ndarray, reference: np.ndarray, atol: float, rtol: float,
                data_range: float = OUTPUT_RANGE) -> ErrorStats:
    """Compare two arrays of one shape element by element (see ``TOLERANCE_RULE``).

    A NaN or infinite candidate element is out of tolerance and makes ``min_passing_atol`` inf.
    """
    if candidate.shape != reference.shape:
        raise ValueError(f"shapes differ: candidate {candidate.shape}, reference "
                         f"{reference.shape}")
    c = np.asarray(candidate, dtype=np.float64).ravel()
    r = np.asarray(reference, dtype=np.float64).ravel()
    n = int(c.size)
    if n == 0:
        return ErrorStats(0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, math.inf, 1.0, atol, rtol,
                          0, 0.0, {})
    diff = np.abs(c - r)  # NaN where either side is NaN
    bad = ~np.isfinite(diff)
    d = np.where(bad, np.inf, diff)
    ref_abs = np.abs(r)
    within = diff <= atol + rtol * ref_abs  # False for NaN: numpy.isclose(equal_nan=False)
    nonzero = ref_abs > 0
    rel = d[nonzero] / ref_abs[nonzero]
    mse = float(np.mean(np.square(d)))
    worst = int(np.argmax(d))
    return ErrorStats(
        elements=n,
        max_abs=float(d.max()), mean_abs=float(d.mean()), median_abs=_quantile(d, 50),
        p99_abs=_quantile(d, 99),
        max_rel=float(rel.max()) if rel.size else 0.0,
        mean_rel=float(rel.mean()) if rel.size else 0.0,
        median_rel=_quantile(rel, 50), p99_rel=_quantile(rel, 99),
        psnr_db=psnr(mse, data_range),
        cosine=cosine(c, r),
        atol=float(atol), rtol=float(rtol),
        out_of_tolerance=int(n - np.count_nonzero(within)),
        min_passing_atol=min_passing_atol(d, ref_abs, rtol),
        worst={"flat_index": worst,
               "index": [int(i) for i in np.unravel_index(worst, candidate.shape)],
               "candidate": float(c[worst]), "reference": float(r[worst])},
    )


def _quantile(values: np.ndarray, q: float) -> float:
    """numpy's linear percentile; inf (not NaN) when it falls among infinite differences."""
    if values.size == 0:
        return 0.0
    with np.errstate(invalid="ignore"):
        v = float(np.percentile(values, q))
    return math.inf if math.isnan(v) else v


def psnr(mse: float, data_range: float = OUTPUT_RANGE) -> float:
    """Peak signal-to-noise ratio in dB: ``10 log10(range^2 / mse)``; inf when mse is 0."""
    if not math.isfinite(mse):
        return -math.inf
    return math.inf if mse == 0 else 10.0 * math.log10(data_range ** 2 / mse)


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine similarity of two flattened arrays (1.0 when both are all zeros)."""
    na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
    if not (math.isfinite(na) and math.isfinite(nb)):
        return math.nan
    if na == 0.0 or nb == 0.0:
        return 1.0 if na == nb else 0.0
    return float(np.dot(a, b) / (na * nb))


def min_passing_atol(abs_diff: np.ndarray, ref_abs: np.ndarray, rtol: float) -> float:
    """The smallest atol with ``abs_diff <= atol + rtol * ref_abs`` everywhere (0 when rtol
    alone suffices, inf when a difference is not finite)."""
    if abs_diff.size == 0:
        return 0.0
    need = abs_diff - rtol * ref_abs
    return float(max(0.0, need.max())) if np.all(np.isfinite(need)) else math.inf



def run_difference(first: np.ndarray, again: np.ndarray) -> float:
    """0.0 when two runs are bitwise identical, else their largest |Δ| (inf for another shape,
    NaN when only NaNs differ)."""
    if first.shape != again.shape:
        return math.inf
    if first.tobytes() == again.tobytes():
        return 0.0
    diff = np.abs(again.astype(np.float64) - first.astype(np.float64))
    finite = diff[np.isfinite(diff)]
    return float(finite.max()) if finite.size and finite.max() > 0 else math.nan

