"""The timing loop: warm up, then time every contender in interleaved blocks.

Why interleave: on a shared machine the load changes from second to second. Timing contender A
for ten seconds and then B for ten seconds lets a burst of someone else's work land on one of
them only; splitting each contender's timed budget into ``rounds`` blocks and rotating their
order spreads the noise over all of them alike, so the *ratios* hold even when absolute times
do not. Each call is timed on its own with ``perf_counter_ns`` (no single-call "benchmarks"),
and a short pause between blocks lets thread pools that spin after work (ONNX Runtime's,
OpenMP's) go idle before the next contender starts.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

Call = Callable[[], object]


@dataclass(frozen=True)
class TimingPlan:
    """How long to warm up and how much to time; every field has a say in the bench's cost."""

    warmup_iters: int = 10  # at least this many untimed calls ...
    warmup_s: float = 0.3  # ... and at least this long
    iters: int | None = None  # timed calls per contender; None: time by duration
    duration_s: float = 1.0  # timed seconds per contender (when iters is None)
    rounds: int = 5  # blocks per contender, interleaved with the others
    min_iters: int = 5  # per contender, even when one call outlasts the duration
    settle_s: float = 0.02  # pause between blocks

    def validate(self) -> None:
        from edgegen.core.errors import ConfigError

        if self.warmup_iters < 0 or self.warmup_s < 0:
            raise ConfigError("warm-up iterations and seconds must be >= 0, got "
                              f"{self.warmup_iters} and {self.warmup_s}")
        if self.iters is not None and self.iters < 1:
            raise ConfigError(f"--iters must be at least 1, got {self.iters}")
        if self.iters is None and not self.duration_s > 0:
            raise ConfigError(f"--duration must be positive, got {self.duration_s}")
        if self.rounds < 1:
            raise ConfigError(f"rounds must be at least 1, got {self.rounds}")


@dataclass(frozen=True)
class WarmUp:
    iters: int
    seconds: float


def warm_up(fn: Call, iters: int, seconds: float) -> WarmUp:
    """Call ``fn`` until both ``iters`` calls and ``seconds`` have passed (untimed)."""
    start = time.perf_counter_ns()
    done = 0
    while done < iters or (time.perf_counter_ns() - start) < seconds * 1e9:
        fn()
        done += 1
    return WarmUp(done, (time.perf_counter_ns() - start) / 1e9)


def time_calls(fn: Call, *, iters: int | None = None, seconds: float | None = None,
               min_iters: int = 1) -> list[int]:
    """Per-call durations (ns) of ``iters`` calls, or of calls until ``seconds`` have passed."""
    if (iters is None) == (seconds is None):
        raise ValueError("give exactly one of iters and seconds")
    out: list[int] = []
    clock = time.perf_counter_ns
    if iters is not None:
        for _ in range(iters):
            t0 = clock()
            fn()
            out.append(clock() - t0)
        return out
    deadline = clock() + int(seconds * 1e9)  # type: ignore[operator]
    while True:
        t0 = clock()
        fn()
        t1 = clock()
        out.append(t1 - t0)
        if t1 >= deadline and len(out) >= min_iters:
            return out


def block_sizes(total: int, rounds: int) -> list[int]:
    """Split ``total`` timed calls into ``rounds`` blocks that differ by at most one."""
    rounds = max(1, min(rounds, total))
    base, extra = divmod(total, rounds)
    return [base + (1 if r < extra else 0) for r in range(rounds)]


def rotation(names: list[str], r: int) -> list[str]:
    """Round ``r``'s order: rotated by ``r`` and reversed every other round, so that no
    contender always follows the same one."""
    if not names:
        return []
    k = r % len(names)
    order = names[k:] + names[:k]
    return order[::-1] if r % 2 else order


def measure_interleaved(contenders: Mapping[str, Call], plan: TimingPlan,
                        on_block: Callable[[str, int], None] | None = None,
                        between_rounds: Callable[[int], None] | None = None
                        ) -> tuple[dict[str, list[int]], dict[str, WarmUp]]:
    """Warm each contender up, then time them in rotated blocks. Returns samples and warm-ups.
    ``between_rounds(r)`` runs after round ``r`` (outside the timed calls): the noise probe and
    the interleaved yardstick."""
    plan.validate()
    names = list(contenders)
    warm = {n: warm_up(contenders[n], plan.warmup_iters, plan.warmup_s) for n in names}
    samples: dict[str, list[int]] = {n: [] for n in names}
    if plan.iters is not None:
        sizes = block_sizes(plan.iters, plan.rounds)
        rounds = len(sizes)
    else:
        rounds = plan.rounds
        per_block_s = plan.duration_s / rounds
        per_block_min = max(1, -(-plan.min_iters // rounds))
    for r in range(rounds):
        for name in rotation(names, r):
            if plan.iters is not None:
                got = time_calls(contenders[name], iters=sizes[r])
            else:
                got = time_calls(contenders[name], seconds=per_block_s, min_iters=per_block_min)
            samples[name].extend(got)
            if on_block is not None:
                on_block(name, r)
            if plan.settle_s > 0:
                time.sleep(plan.settle_s)
        if between_rounds is not None:
            between_rounds(r)
    return samples, warm


def usable_cores() -> int:
    """CPU cores this process may run on (the affinity mask, not the machine's total)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1
