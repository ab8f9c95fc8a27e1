"""The sample count of ``edgegen eval``: the Wilson-interval stopping rule on its own, and in the
stage — it stops within [floor, cap], reaches the half-width it promised, and a sized run gives
the same numbers as a fixed one of the same count (the rounds only cut the work)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgegen.core.errors import ConfigError
from edgegen.core.progress import Progress
from edgegen.quality.evaluate import EvalConfig, evaluate
from edgegen.quality.metrics import wilson
from edgegen.quality.sizing import SampleSizer, half_width


def run_rule(sizer: SampleSizer, p: float, seed: int = 0) -> tuple[int, list[float]]:
    """Drive the rule with Bernoulli(p) verdicts; the count it stops at and the widest
    half-width after each round."""
    rng = np.random.default_rng(seed)
    hits, done, widths = 0, 0, []
    while n := sizer.next_round(done, [(hits, done)]):
        hits += int((rng.random(n) < p).sum())
        done += n
        widths.append(half_width(hits, done))
    return done, widths


@pytest.mark.parametrize("p", [1.0, 0.998, 0.99, 0.97])
def test_the_rule_stops_at_the_first_round_that_meets_the_target(p: float) -> None:
    sizer = SampleSizer.for_ci(0.003, 1000, 20_000, 10)
    n, widths = run_rule(sizer, p)
    assert 1000 <= n <= 20_000 and n % 1000 == 0
    assert widths[-1] <= 0.003  # the promise, in the interval the report prints
    assert all(w > 0.003 for w in widths[:-1])  # and not one round later than needed
    # the textbook sample size z² p (1 - p) / h² is where it lands, within a round or two
    if p < 1:
        textbook = 1.96 ** 2 * p * (1 - p) / 0.003 ** 2
        assert abs(n - max(textbook, 1000)) <= 2000


def test_at_100_percent_wilson_stays_honest_where_wald_would_claim_zero() -> None:
    sizer = SampleSizer.for_ci(0.003, 1000, 20_000, 10)
    assert run_rule(sizer, 1.0)[0] == 1000
    assert half_width(1000, 1000) == pytest.approx(0.00191, abs=1e-5)  # not 0
    # a tighter target needs more samples even with every sample right
    tight = SampleSizer.for_ci(0.001, 1000, 20_000, 10)
    assert run_rule(tight, 1.0)[0] == 2000


def test_an_unreachable_target_stops_at_the_cap() -> None:
    sizer = SampleSizer.for_ci(0.003, 1000, 5000, 10)
    n, widths = run_rule(sizer, 0.5)
    assert n == 5000 and widths[-1] > 0.003 and len(widths) == 5


def test_the_projection_is_where_the_rule_lands() -> None:
    sizer = SampleSizer.for_ci(0.003, 1000, 20_000, 10)
    hits = 970  # 97% after the first round
    projected = sizer.projected(1000, [(hits, 1000)])
    n, _ = run_rule(sizer, 0.97)
    assert abs(projected - n) <= 2000 and 10_000 <= projected <= 16_000
    assert sizer.projected(1000, [(1000, 1000)]) == 1000


def test_fixed_counts_and_bad_options() -> None:
    fixed = SampleSizer.fixed(2500, 1000, 10)
    assert run_rule(fixed, 0.5)[0] == 2500 and fixed.round_size == 1000
    assert SampleSizer.fixed(205, 1000, 10).next_round(0, []) == 205
    assert SampleSizer.for_ci(0.01, 95, 1000, 10).round_size == 100  # labels stay balanced
    with pytest.raises(ConfigError, match="--ci-half-width is a share"):
        SampleSizer.for_ci(3.0, 1000, 20_000, 10)
    with pytest.raises(ConfigError, match="--min-samples <= --max-samples"):
        SampleSizer.for_ci(0.003, 1000, 500, 10)


def test_eval_sizes_its_count_and_keeps_the_numbers_of_a_fixed_run(tiny_bundle: Path,
                                                                    idx_dir: Path) -> None:
    events: list[Progress] = []
    common = dict(bundle=tiny_bundle, data_dir=idx_dir, out=None, truncation=(), guard=False,
                  precisions=("fp32", "int8"), seed=3)
    sized = evaluate(EvalConfig(ci_half_width=0.03, min_samples=100, max_samples=3000,
                                **common), events.append)
    s = sized.sizing
    assert s["rule"] == "ci" and s["reached"] and 100 <= sized.samples <= 3000
    for v in sized.variants:  # every variant's interval meets the promise
        lo, hi = v.ci95
        assert (hi - lo) / 2 <= 0.03 and v.samples == sized.samples
        assert (lo, hi) == pytest.approx(wilson(round(v.fidelity * v.samples), v.samples))
    widths = [r["widest_half_width"] for r in s["rounds"]]
    assert widths[-1] <= 0.03 and all(w > 0.03 for w in widths[:-1])
    assert [r["samples"] for r in s["rounds"]] == list(range(100, sized.samples + 1, 100))
    # the estimate after the first round, and one bar per variant counting to the end
    assert any(e.task.startswith("first round: 100 samples per variant") and "estimated" in
               e.task for e in events)
    bars = [e for e in events if e.counts and e.task == "int8: samples"]
    assert bars[-1].done == sized.samples and bars[-1].unit == "samples"
    assert [e.done for e in bars] == sorted(e.done for e in bars)
    # the same samples in one fixed draw: the same verdicts, so the same numbers
    fixed = evaluate(EvalConfig(samples=sized.samples, **common))
    assert fixed.sizing["rule"] == "fixed" and fixed.samples == sized.samples
    for a, b in zip(sized.variants, fixed.variants):
        assert a.fidelity == b.fidelity and a.ci95 == b.ci95
        assert a.vs_reference == b.vs_reference and a.fid["value"] == pytest.approx(b.fid["value"])
