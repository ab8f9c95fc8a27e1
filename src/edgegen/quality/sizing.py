"""How many samples ``edgegen eval`` draws: as many as the confidence interval it reports needs.

The report states every share (label fidelity, agreement with a teacher) with a **Wilson** 95%
score interval (``metrics.wilson``), so the stopping rule is stated in that same interval: draw in
rounds, and stop as soon as the widest interval of the shares that matter has a half-width
``(hi - lo) / 2`` at or under the target — never before the floor, never past the cap. Why
Wilson and not the normal (Wald) interval: the report prints Wilson, so the promise is exactly
what a reader sees; and near 100% — where a good generator sits — Wald's half-width
``z * sqrt(p (1 - p) / n)`` collapses to 0 at ``p = 1`` and would stop at the floor claiming
±0 pp, while Wilson's stays honest (``(z²/2n) / (1 + z²/n)``: 0.19 pp at 1,000 samples).

Rounds are ``floor`` samples each (rounded up to a multiple of the class count so that the
labels, sample ``i`` asking for ``i % C``, stay balanced), so the rule stops within one round of
the smallest count that meets the target. The rule looks at the interval's width, never at the
estimate's distance to a gate, so it does not "peek" toward a verdict; the width depends on the
estimate only through ``p (1 - p)``, which moves little between rounds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from edgegen.core.errors import ConfigError
from edgegen.quality.metrics import wilson


def half_width(successes: float, n: int) -> float:
    """Half the width of the Wilson 95% interval of ``successes / n`` (0.5 when ``n`` is 0)."""
    lo, hi = wilson(successes, n)  # type: ignore[arg-type]  # float successes: a projection
    return (hi - lo) / 2.0


@dataclass(frozen=True)
class SampleSizer:
    """The stopping rule: ``target`` half-width (a share; None: exactly ``cap`` samples),
    ``floor`` and ``cap`` samples per variant, rounds of ``round_size``."""

    target: float | None
    floor: int
    cap: int
    round_size: int

    @classmethod
    def for_ci(cls, target: float, floor: int, cap: int, n_classes: int) -> SampleSizer:
        if not 0.0 < target < 0.5:
            raise ConfigError(f"--ci-half-width is a share in (0, 0.5) (0.003 = ±0.3 pp), got "
                              f"{target}")
        if floor < 20 or cap < floor:
            raise ConfigError(f"need 20 <= --min-samples <= --max-samples; got {floor} and "
                              f"{cap}")
        return cls(target, floor, cap, _round_up(floor, n_classes))

    @classmethod
    def fixed(cls, n: int, round_size: int, n_classes: int) -> SampleSizer:
        """Exactly ``n`` samples (``--samples N``), drawn in rounds for the progress bar."""
        return cls(None, n, n, min(n, _round_up(max(round_size, 1), n_classes)))

    def widest(self, shares: list[tuple[int, int]]) -> float:
        """The largest half-width among ``(successes, n)`` shares (0.5 when there are none)."""
        return max((half_width(k, n) for k, n in shares), default=0.5)

    def next_round(self, done: int, shares: list[tuple[int, int]]) -> int:
        """Samples to draw next (0: stop), after ``done`` with these shares."""
        if done >= self.cap:
            return 0
        if done >= self.floor and self.target is not None and \
                self.widest(shares) <= self.target:
            return 0
        return min(self.round_size, self.cap - done)

    def projected(self, done: int, shares: list[tuple[int, int]]) -> int:
        """The total count the rule will likely stop at, from the shares measured so far: the
        smallest count whose Wilson half-width at the same estimates meets the target,
        rounded up to a whole round, within [floor, cap]."""
        if self.target is None:
            return self.cap
        need = max((self._needed(k / n) for k, n in shares if n), default=self.cap)
        need = max(need, self.floor)
        rounds = math.ceil(max(need - self.floor, 0) / self.round_size)
        return min(self.cap, self.floor + rounds * self.round_size)

    def _needed(self, p: float) -> int:
        """Smallest n with half_width(p * n, n) <= target (the cap when none up to it)."""
        lo, hi = 1, self.cap
        if half_width(p * hi, hi) > self.target:  # type: ignore[operator]
            return self.cap
        while lo < hi:  # the half-width falls as n grows (p fixed): bisect
            mid = (lo + hi) // 2
            if half_width(p * mid, mid) <= self.target:  # type: ignore[operator]
                hi = mid
            else:
                lo = mid + 1
        return lo

    def describe(self) -> str:
        if self.target is None:
            return f"{self.cap:,} samples per variant (fixed by --samples)"
        return (f"until every 95% CI half-width <= {100 * self.target:.2g} pp (Wilson), "
                f"{self.floor:,} to {self.cap:,} samples per variant in rounds of "
                f"{self.round_size:,}")


def _round_up(n: int, step: int) -> int:
    return -(-n // step) * step


__all__ = ["SampleSizer", "half_width"]
