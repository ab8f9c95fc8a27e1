"""The statistics behind ``edgegen eval``, in numpy and the standard library only.

* ``wilson`` — a 95% confidence interval for a share (label fidelity) that stays inside [0, 1]
  and behaves at 0% and 100%, where the normal approximation does not;
* ``mcnemar`` — the paired test of "did this variant get a different set of samples right than
  the reference did" (exact binomial for small discordant counts, chi-square otherwise);
* ``frechet_distance`` / ``fid`` — the Fréchet distance between two Gaussians fitted to feature
  sets; the matrix square root uses eigendecompositions of symmetric PSD matrices (scipy is only
  a development dependency);
* ``mean_pairwise_distance`` — the diversity of a set of samples (mode collapse drives it to 0);
* ``KnnReferee`` — an independent digit classifier (k-nearest neighbours on PCA of real pixels)
  that shares neither method, features nor weights with the evaluator.

Nothing here is fitted on generated images: the referee sees real training digits only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

Z95 = 1.959963984540054  # two-sided 95% normal quantile
EXACT_MAX = 1000  # McNemar: exact binomial up to this many discordant pairs (math.comb is cheap)


# --------------------------------------------------------------------------- shares

def wilson(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for ``successes / n``; (0, 1) when ``n`` is 0 (nothing is known)."""
    if n <= 0:
        return 0.0, 1.0
    p = successes / n
    z2 = z * z
    denom = 1.0 + z2 / n
    centre = (p + z2 / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / denom
    # the bounds at 0 and n are exactly 0 and 1; rounding would leave 0.9999999999999999
    lo = 0.0 if successes == 0 else max(0.0, centre - half)
    hi = 1.0 if successes == n else min(1.0, centre + half)
    return lo, hi


@dataclass(frozen=True)
class McNemar:
    """Paired comparison of per-sample correctness of a candidate against a reference."""

    lost: int  # b: the reference was right, the candidate wrong
    gained: int  # c: the reference was wrong, the candidate right
    p_value: float
    method: str  # "exact binomial", "chi-square (continuity-corrected)" or "no discordant pairs"

    @property
    def discordant(self) -> int:
        return self.lost + self.gained


def mcnemar(reference_correct: np.ndarray, candidate_correct: np.ndarray) -> McNemar:
    """McNemar's test on two bool ``[N]`` arrays judged on the same samples.

    Only discordant pairs carry information; under "no change" each is equally likely to be a
    loss or a gain, so ``lost ~ Binomial(lost + gained, 1/2)``. Two-sided exact p-value:
    ``min(1, 2 * P(X <= min(b, c)))``, computed with integers (``math.comb``) so it never
    underflows. Above ``EXACT_MAX`` discordant pairs, the continuity-corrected chi-square
    ``(|b - c| - 1)^2 / (b + c)`` with one degree of freedom: ``p = erfc(sqrt(x / 2))``.
    """
    ref = np.asarray(reference_correct, dtype=bool)
    cand = np.asarray(candidate_correct, dtype=bool)
    if ref.shape != cand.shape:
        raise ValueError(f"McNemar needs paired samples; got shapes {ref.shape} and {cand.shape}")
    b = int(np.count_nonzero(ref & ~cand))
    c = int(np.count_nonzero(~ref & cand))
    n = b + c
    if n == 0:
        return McNemar(b, c, 1.0, "no discordant pairs")
    if n <= EXACT_MAX:
        tail = sum(math.comb(n, k) for k in range(min(b, c) + 1))
        p = float(min(Fraction(1), Fraction(2 * tail, 2 ** n)))
        return McNemar(b, c, p, "exact binomial")
    x = (abs(b - c) - 1) ** 2 / n
    return McNemar(b, c, math.erfc(math.sqrt(x / 2)), "chi-square (continuity-corrected)")


# --------------------------------------------------------------------------- Fréchet distance

def _sqrt_psd(a: np.ndarray) -> np.ndarray:
    """Symmetric square root of a symmetric PSD matrix (tiny negative eigenvalues clipped)."""
    w, v = np.linalg.eigh((a + a.T) / 2)
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def frechet_distance(mu1: np.ndarray, cov1: np.ndarray, mu2: np.ndarray,
                     cov2: np.ndarray, sqrt_cov1: np.ndarray | None = None) -> float:
    """``|mu1 - mu2|^2 + tr(S1) + tr(S2) - 2 tr((S1 S2)^(1/2))`` between two Gaussians.

    ``S1 S2`` is not symmetric, but it is similar to ``R S2 R`` with ``R = S1^(1/2)``, which is
    symmetric PSD; so ``tr((S1 S2)^(1/2))`` is the sum of the square roots of the eigenvalues of
    ``R S2 R`` — two ``eigh`` calls, no general (complex) matrix square root. ``sqrt_cov1``
    (``R``, when already known) saves one of them.
    """
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    cov1, cov2 = np.atleast_2d(cov1).astype(np.float64), np.atleast_2d(cov2).astype(np.float64)
    r = _sqrt_psd(cov1) if sqrt_cov1 is None else sqrt_cov1
    m = r @ cov2 @ r
    tr_covmean = float(np.sqrt(np.clip(np.linalg.eigvalsh((m + m.T) / 2), 0.0, None)).sum())
    diff = mu1 - mu2
    value = float(diff @ diff + np.trace(cov1) + np.trace(cov2) - 2.0 * tr_covmean)
    return max(value, 0.0)  # rounding can leave -1e-12 for identical sets


def gaussian_stats(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean ``[F]`` and unbiased covariance ``[F, F]`` of ``features: [N, F]`` in float64."""
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2 or len(x) < 2:
        raise ValueError(f"FID needs at least 2 feature vectors of shape [N, F]; got {x.shape}")
    return x.mean(0), np.cov(x, rowvar=False)


def fid(features_a: np.ndarray, features_b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets ``[Na, F]``, ``[Nb, F]``.

    FID is biased upwards by small sample counts: compare only values computed with the same
    counts on each side (``edgegen eval`` reports a real-vs-real floor measured that way).
    """
    return frechet_distance(*gaussian_stats(features_a), *gaussian_stats(features_b))


@dataclass(frozen=True)
class FrechetReference:
    """A fixed (real) feature set's Gaussian with its covariance square root computed once, so
    the FID of each candidate set against it costs a single symmetric eigendecomposition."""

    mu: np.ndarray  # float64 [F]
    cov: np.ndarray  # float64 [F, F]
    sqrt_cov: np.ndarray  # float64 [F, F]
    n: int

    @classmethod
    def of(cls, features: np.ndarray) -> FrechetReference:
        mu, cov = gaussian_stats(features)
        return cls(mu=mu, cov=cov, sqrt_cov=_sqrt_psd(cov), n=len(features))

    def fid(self, features: np.ndarray) -> float:
        """FID between ``features: [N, F]`` and this reference (symmetric in its arguments)."""
        return frechet_distance(self.mu, self.cov, *gaussian_stats(features),
                                sqrt_cov1=self.sqrt_cov)


# --------------------------------------------------------------------------- diversity

def mean_pairwise_distance(x: np.ndarray) -> float:
    """Mean Euclidean distance over all pairs ``i < j`` of ``x: [N, D]``; NaN when N < 2.

    An unbiased (U-)statistic: unlike FID it does not drift with the sample count, so a
    generated set and a real set of different sizes can be compared directly.
    """
    x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    n = len(x)
    if n < 2:
        return float("nan")
    sq = np.einsum("ij,ij->i", x, x)
    d2 = sq[:, None] + sq[None, :] - 2.0 * (x @ x.T)  # [N, N]
    iu = np.triu_indices(n, k=1)
    return float(np.sqrt(np.clip(d2[iu], 0.0, None)).mean())


# --------------------------------------------------------------------------- referee

def pixels(images_u8: np.ndarray) -> np.ndarray:
    """uint8 ``[N, 28, 28]`` -> float32 ``[N, 784]`` in [0, 1] (the referee's raw features)."""
    return np.asarray(images_u8, dtype=np.float32).reshape(len(images_u8), -1) / 255.0


@dataclass(frozen=True)
class KnnReferee:
    """k-nearest neighbours over a PCA of real training pixels: the evaluator's cross-check.

    It shares nothing with the evaluator (no CNN, no learned features, no gradient training):
    if both call a generated "7" a 7, the call is not an artefact of one model's blind spots.
    Distance-weighted votes (weight 1 / distance) break ties toward the nearest digits.
    """

    mean: np.ndarray  # float32 [784]
    basis: np.ndarray  # float32 [784, dims]: the top principal directions of real digits
    train: np.ndarray  # float32 [N, dims]: projected real training digits
    train_sq: np.ndarray  # float32 [N]: their squared norms
    labels: np.ndarray  # int64 [N]
    k: int
    n_classes: int

    @classmethod
    def fit(cls, images_u8: np.ndarray, labels: np.ndarray, *, dims: int = 32, k: int = 3,
            n_classes: int = 10) -> KnnReferee:
        """Fit on REAL digits (uint8 ``[N, 28, 28]``) only; never on generated images."""
        x = pixels(images_u8)
        if len(x) <= k:
            raise ValueError(f"the referee needs more than k={k} training digits, got {len(x)}")
        mean = x.mean(0)
        xc = (x - mean).astype(np.float64)
        # covariance eigenvectors (784 x 784) instead of an SVD of [N, 784]: cheap for N = 60,000
        w, v = np.linalg.eigh(xc.T @ xc)
        basis = v[:, np.argsort(w)[::-1][:dims]].astype(np.float32)
        train = ((x - mean) @ basis).astype(np.float32)
        return cls(mean=mean, basis=basis, train=train,
                   train_sq=np.einsum("ij,ij->i", train, train), labels=np.asarray(labels,
                   dtype=np.int64), k=k, n_classes=n_classes)

    def predict(self, images_u8: np.ndarray, batch: int = 256) -> np.ndarray:
        """int64 ``[N]`` digits for uint8 ``[N, 28, 28]`` images."""
        out = []
        for s in range(0, len(images_u8), batch):
            q = (pixels(images_u8[s:s + batch]) - self.mean) @ self.basis  # [B, dims]
            d2 = (np.einsum("ij,ij->i", q, q)[:, None] + self.train_sq[None, :]
                  - 2.0 * (q @ self.train.T))  # [B, N]
            idx = np.argpartition(d2, self.k - 1, axis=1)[:, :self.k]  # [B, k]
            dist = np.sqrt(np.clip(np.take_along_axis(d2, idx, 1), 0.0, None))
            votes = np.zeros((len(q), self.n_classes), np.float64)
            rows = np.repeat(np.arange(len(q)), self.k)
            np.add.at(votes, (rows, self.labels[idx].ravel()), (1.0 / (dist + 1e-6)).ravel())
            out.append(votes.argmax(1))
        return np.concatenate(out) if out else np.zeros(0, np.int64)


__all__ = ["EXACT_MAX", "FrechetReference", "KnnReferee", "McNemar", "fid", "frechet_distance",
           "gaussian_stats", "mcnemar", "mean_pairwise_distance", "pixels", "wilson"]
