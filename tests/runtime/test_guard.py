"""The guard redraws rejected samples along the documented seed sequence, and no further."""

from __future__ import annotations

import numpy as np
import pytest

from edgegen.runtime.guard import accept, guarded_generate, softmax
from edgegen.runtime.latent import RETRY_STEP, latent, retry_seed

Z_DIM, SEED, N = 6, 2024, 300


def fake_generate(z: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """An "image" that records its inputs: pixel (0, 0) = z[:, 0], pixel (0, 1) = the label."""
    images = np.zeros((len(labels), 1, 28, 28), np.float32)
    images[:, 0, 0, 0] = z[:, 0]
    images[:, 0, 0, 1] = labels
    return images


def fake_classify(images: np.ndarray) -> np.ndarray:
    """Sees the asked digit when z[0] > 0, the next digit otherwise (about half rejected)."""
    asked = images[:, 0, 0, 1].astype(np.int64)
    seen = np.where(images[:, 0, 0, 0] > 0, asked, (asked + 1) % 10)
    return np.eye(10)[seen] * 0.9 + 0.01


def test_retry_seeds_are_the_documented_ones() -> None:
    assert retry_seed(5, 0) == 5
    assert retry_seed(5, 2) == (5 + 2 * 0xD1B54A32D192ED03) % 2**64 == 5 + 2 * RETRY_STEP - 2**64
    assert retry_seed(2**64 - 1, 1) == (2**64 - 1 + RETRY_STEP) % 2**64


@pytest.mark.parametrize("psi", [None, 0.5])
def test_redraws_follow_the_seed_sequence(psi: float | None) -> None:
    labels = np.arange(N) % 10
    res = guarded_generate(fake_generate, fake_classify, labels, SEED, Z_DIM, truncation=psi,
                           max_retries=3)
    scale = 1.0 if psi is None else psi
    # the first z[0] of sample i along the documented sequence: attempt a uses retry_seed(SEED, a)
    z0 = np.stack([latent(retry_seed(SEED, a), N, Z_DIM)[:, 0] for a in range(4)])  # [4, N]
    good = z0 > 0
    want_attempt = np.where(good.any(0), good.argmax(0), 3)  # first accepted, else the last
    assert np.array_equal(res.attempts, want_attempt)
    assert np.array_equal(res.accepted, good.any(0))
    got_z0 = res.images[:, 0, 0, 0]
    assert np.allclose(got_z0, np.float32(scale) * z0[want_attempt, np.arange(N)])
    assert res.fired == int(np.count_nonzero(want_attempt))
    assert res.rejected == int(np.count_nonzero(~good.any(0))) > 0  # (1/2)^4 of 300 samples
    assert np.array_equal(res.predicted[res.accepted], labels[res.accepted])
    # deterministic: the same request gives the same images
    again = guarded_generate(fake_generate, fake_classify, labels, SEED, Z_DIM, truncation=psi,
                             max_retries=3)
    assert np.array_equal(again.images, res.images)


def test_retries_are_bounded_and_min_prob_counts() -> None:
    labels = np.arange(50) % 10
    never = guarded_generate(fake_generate, fake_classify, labels, SEED, Z_DIM, max_retries=0)
    assert never.fired == 0 and not never.attempts.any()
    assert never.rejected == int(np.count_nonzero(latent(SEED, 50, Z_DIM)[:, 0] <= 0))

    calls = []

    def lukewarm(images: np.ndarray) -> np.ndarray:  # right digit, but only p = 0.6
        calls.append(len(images))
        asked = images[:, 0, 0, 1].astype(np.int64)
        return np.eye(10)[asked] * 0.556 + 0.044

    res = guarded_generate(fake_generate, lukewarm, labels, SEED, Z_DIM, max_retries=2,
                           min_prob=0.7)
    assert res.rejected == 50 and np.all(res.attempts == 2)
    assert calls == [50, 50, 50]  # the first draw and exactly two redraws, never more
    ok = guarded_generate(fake_generate, lukewarm, labels, SEED, Z_DIM, min_prob=0.5)
    assert ok.rejected == 0 and ok.fired == 0


def test_accept_and_softmax() -> None:
    probs = softmax(np.array([[2.0, 0.0, 0.0], [0.0, 0.1, 0.0], [0.0, 0.0, 5.0]]))
    assert np.allclose(probs.sum(1), 1.0)
    assert accept(probs, np.array([0, 1, 1]), 0.5).tolist() == [True, False, False]
    assert accept(probs, np.array([0, 1, 2]), 0.0).tolist() == [True, True, True]


def test_guard_on_a_real_bundle_accepts_some_draws_and_redraws_the_others(
        half_right_bundle) -> None:
    """Real ONNX sessions, the bundle's real evaluator: a lookup generator that draws the asked
    digit for some ``z`` and the next digit for the others. Which draws the evaluator accepts
    is known from ``z`` alone, so the guard's every step is predicted from the documented seed
    sequence: it keeps an accepted first draw, redraws a rejected one along ``retry_seed`` until
    a draw is accepted, and gives up after ``max_retries`` redraws."""
    from edgegen.runtime.bundle import load_bundle
    from edgegen.runtime.providers import make_session
    from edgegen.runtime.sessions import run_evaluator, run_generator

    lookup, retries = half_right_bundle, 2
    b = load_bundle(lookup.path)
    gen, ev = make_session(b.variant_path("fp32")), make_session(b.evaluator_path)
    labels = np.arange(N) % 10
    generate = lambda z, y: run_generator(gen, z, y)  # noqa: E731
    classify = lambda x: softmax(run_evaluator(ev, x)[0])  # noqa: E731
    res = guarded_generate(generate, classify, labels, SEED, b.z_dim, max_retries=retries)

    # the prediction: attempt a draws row i of retry_seed(SEED, a); rows < k / 2 are accepted
    z = np.stack([latent(retry_seed(SEED, a), N, b.z_dim) for a in range(retries + 1)])
    good = np.stack([lookup.row(za) < lookup.k // 2 for za in z])  # [attempts, N]
    want_attempt = np.where(good.any(0), good.argmax(0), retries)
    first = accept(classify(generate(z[0], labels)), labels, 0.5)  # the plain, unguarded draw
    assert np.array_equal(first, good[0])  # the evaluator judges these digits as designed
    assert 0.3 < first.mean() < 0.7  # both kinds of first draw are common
    assert np.array_equal(res.attempts, want_attempt)
    assert np.array_equal(res.accepted, good.any(0))
    assert res.fired == int(np.count_nonzero(~first))
    assert res.rejected == int(np.count_nonzero(~good.any(0))) > 0  # (1/2)^3 of 300 give up
    # the guard's effect: far more of the returned samples are the digit that was asked for
    assert res.accepted.mean() > first.mean() + 0.25
    assert np.array_equal(res.predicted[res.accepted], labels[res.accepted])
    # every returned image is the model's image for the latent of its last attempt
    want = lookup.images(z[want_attempt, np.arange(N)], labels)
    np.testing.assert_array_equal(res.images, want)
    kept = res.attempts == 0
    np.testing.assert_array_equal(res.images[kept], generate(z[0], labels)[kept])
