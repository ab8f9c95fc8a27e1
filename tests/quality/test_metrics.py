"""The statistics of eval, against closed forms, hand-made cases and an independent library."""

from __future__ import annotations

import math

import numpy as np
import pytest

from edgegen.quality.metrics import (
    EXACT_MAX,
    KnnReferee,
    fid,
    frechet_distance,
    mcnemar,
    mean_pairwise_distance,
    wilson,
)


def test_wilson_matches_published_values() -> None:
    # Newcombe (1998), Table I / the usual textbook cases
    lo, hi = wilson(0, 10)
    assert lo == 0.0 and hi == pytest.approx(0.2775, abs=1e-4)
    lo, hi = wilson(5, 10)
    assert (lo, hi) == pytest.approx((0.2366, 0.7634), abs=1e-4)
    lo, hi = wilson(10, 10)
    assert lo == pytest.approx(0.7225, abs=1e-4) and hi == 1.0
    lo, hi = wilson(970, 1000)
    assert lo < 0.97 < hi and hi - lo == pytest.approx(0.0211, abs=5e-4)
    assert wilson(0, 0) == (0.0, 1.0)


def _pairs(lost: int, gained: int, same: int = 7) -> tuple[np.ndarray, np.ndarray]:
    """Paired correctness arrays with the given discordant counts (and some concordant pairs)."""
    ref = np.array([True] * lost + [False] * gained + [True] * same + [False] * same)
    cand = np.array([False] * lost + [True] * gained + [True] * same + [False] * same)
    return ref, cand


def test_mcnemar_exact_by_hand() -> None:
    m = mcnemar(*_pairs(5, 0))
    assert (m.lost, m.gained, m.method) == (5, 0, "exact binomial")
    assert m.p_value == pytest.approx(2 / 32)  # 2 * P(X <= 0), X ~ Bin(5, 1/2)
    m = mcnemar(*_pairs(10, 2))
    assert m.p_value == pytest.approx(2 * (1 + 12 + 66) / 4096)  # 2 * P(X <= 2), X ~ Bin(12, .5)
    m = mcnemar(*_pairs(3, 3))
    assert m.p_value == 1.0  # symmetric: capped at 1
    m = mcnemar(*_pairs(0, 0))
    assert (m.p_value, m.method) == (1.0, "no discordant pairs")


def test_mcnemar_large_counts_use_the_chi_square() -> None:
    m = mcnemar(*_pairs(1500, 1400))
    assert m.discordant > EXACT_MAX and m.method.startswith("chi-square")
    x = (100 - 1) ** 2 / 2900  # continuity-corrected statistic by hand: 3.3797
    assert m.p_value == pytest.approx(math.erfc(math.sqrt(x / 2)))
    assert m.p_value == pytest.approx(0.06598, abs=2e-4)  # chi-square(1) tail at 3.3797
    # and it agrees with the exact binomial computed independently
    stats = pytest.importorskip("scipy.stats")
    exact = stats.binomtest(1400, 2900, 0.5).pvalue
    assert m.p_value == pytest.approx(exact, rel=0.05)


def test_mcnemar_refuses_unpaired_inputs() -> None:
    with pytest.raises(ValueError, match="paired"):
        mcnemar(np.ones(3, bool), np.ones(4, bool))


def test_fid_of_identical_sets_is_zero() -> None:
    x = np.random.default_rng(0).normal(size=(500, 16))
    assert fid(x, x) == pytest.approx(0.0, abs=1e-8)
    assert fid(x, x[::-1]) == pytest.approx(0.0, abs=1e-8)  # order does not matter


def test_fid_of_shifted_gaussians_matches_the_closed_form() -> None:
    # diagonal covariances: FID = |dmu|^2 + sum (sqrt(a) - sqrt(b))^2
    mu1, mu2 = np.zeros(4), np.array([1.0, -2.0, 0.5, 0.0])
    a, b = np.array([1.0, 4.0, 0.25, 9.0]), np.array([4.0, 1.0, 0.25, 1.0])
    closed = float(mu2 @ mu2 + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2))
    assert frechet_distance(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(closed)
    # same covariance, shifted mean: FID = |dmu|^2 exactly
    rng = np.random.default_rng(1)
    m = rng.normal(size=(6, 6))
    cov = m @ m.T
    assert frechet_distance(mu1[:1].repeat(6), cov, np.ones(6), cov) == pytest.approx(6.0)
    # from samples: 40,000 draws of N(0, I) and N(shift, 4 I) in 3-d -> 3 * 1 + 3 * (1 - 2)^2
    x = rng.normal(size=(40_000, 3))
    y = rng.normal(size=(40_000, 3)) * 2.0 + np.array([1.0, 0.0, -1.0])
    assert fid(x, y) == pytest.approx(2.0 + 3.0, rel=0.03)


def test_fid_agrees_with_scipy_sqrtm_for_non_commuting_covariances() -> None:
    linalg = pytest.importorskip("scipy.linalg")
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(8, 8)), rng.normal(size=(8, 8))
    s1, s2 = a @ a.T, b @ b.T + np.eye(8)
    mu1, mu2 = rng.normal(size=8), rng.normal(size=8)
    covmean = linalg.sqrtm(s1 @ s2).real
    want = float((mu1 - mu2) @ (mu1 - mu2) + np.trace(s1 + s2 - 2 * covmean))
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(want, rel=1e-8)


def test_mean_pairwise_distance() -> None:
    assert mean_pairwise_distance(np.array([[0.0], [3.0]])) == pytest.approx(3.0)
    assert mean_pairwise_distance(np.array([[0.0], [1.0], [2.0]])) == pytest.approx(4 / 3)
    collapsed = np.tile(np.arange(10.0), (50, 1))  # 50 copies of one sample
    assert mean_pairwise_distance(collapsed) == pytest.approx(0.0, abs=1e-6)
    assert math.isnan(mean_pairwise_distance(np.zeros((1, 4))))


def test_knn_referee_reads_real_digits(real_digits) -> None:
    images, labels = real_digits  # 100 per label, label-major
    train = np.arange(len(labels)) % 5 != 0  # 80 per label to fit, 20 per label to judge
    ref = KnnReferee.fit(images[train], labels[train], dims=32, k=3)
    assert np.mean(ref.predict(images[~train]) == labels[~train]) > 0.8
    one = KnnReferee.fit(images[train], labels[train], dims=784, k=1)
    assert np.array_equal(one.predict(images[train]), labels[train])  # its own digits
    assert ref.predict(images[:0]).shape == (0,)
