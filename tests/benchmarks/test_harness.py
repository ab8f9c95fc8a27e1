"""The timing loop's bookkeeping: warm-up rules, block sizes, interleaving order."""

from __future__ import annotations

import pytest

from edgegen.benchmarks.harness import (
    TimingPlan,
    block_sizes,
    measure_interleaved,
    rotation,
    time_calls,
    warm_up,
)
from edgegen.core.errors import ConfigError


def test_warm_up_needs_both_iterations_and_time() -> None:
    calls = []
    w = warm_up(lambda: calls.append(1), iters=7, seconds=0.0)
    assert w.iters == 7 == len(calls)
    calls.clear()
    w = warm_up(lambda: calls.append(1), iters=1, seconds=0.02)
    assert w.iters == len(calls) >= 1 and w.seconds >= 0.02


def test_time_calls_by_count_and_by_duration() -> None:
    assert len(time_calls(lambda: None, iters=12)) == 12
    out = time_calls(lambda: None, seconds=0.01, min_iters=3)
    assert len(out) >= 3 and all(isinstance(t, int) and t >= 0 for t in out)
    with pytest.raises(ValueError):
        time_calls(lambda: None)


def test_blocks_and_rotation() -> None:
    assert block_sizes(10, 3) == [4, 3, 3] and sum(block_sizes(10, 3)) == 10
    assert block_sizes(2, 5) == [1, 1]  # never an empty block
    names = ["a", "b", "c"]
    orders = [rotation(names, r) for r in range(4)]
    assert orders[0] == ["a", "b", "c"] and orders[1] == ["a", "c", "b"]
    assert all(sorted(o) == names for o in orders)
    assert len({o[0] for o in orders[:3]}) > 1  # nobody always goes first


def test_measure_interleaved_alternates_contenders() -> None:
    log: list[str] = []
    contenders = {n: (lambda n=n: log.append(n)) for n in ("x", "y")}
    plan = TimingPlan(warmup_iters=2, warmup_s=0.0, iters=6, rounds=3, settle_s=0.0)
    samples, warm = measure_interleaved(contenders, plan)
    assert {k: len(v) for k, v in samples.items()} == {"x": 6, "y": 6}
    assert warm["x"].iters == warm["y"].iters == 2
    timed = log[4:]  # after 2 + 2 warm-up calls
    runs = [timed[0]]
    for name in timed[1:]:
        if name != runs[-1]:
            runs.append(name)
    assert len(runs) >= 3  # x and y took turns, not all of x then all of y


def test_plan_validation() -> None:
    with pytest.raises(ConfigError):
        TimingPlan(iters=0).validate()
    with pytest.raises(ConfigError):
        TimingPlan(duration_s=0).validate()
    with pytest.raises(ConfigError):
        TimingPlan(warmup_s=-1).validate()
