"""Drawing ``edgegen eval``'s samples in rounds, every variant on the same latents.

Round ``r`` takes samples ``start .. start + n - 1`` of the portable latent stream
(``latent(seed, n, z_dim, start)``: row ``i`` depends only on ``(seed, i, z_dim)``) with labels
``i % C``, and every runner — each variant, and the teacher when there is one — draws and is
judged on exactly those rows. So whatever the round sizes, every variant holds the same samples
as the others and as a single large draw would (paired comparisons and McNemar stay valid), and
the ``SampleSizer`` decides after each round whether the intervals are narrow enough.

After the first round the measured images per second of every runner give the estimated time of
the rest (the caller adds the guard's and the sweeps' work), printed before going on.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgegen.core.progress import Reporter
from edgegen.quality.judging import Judge, Judged, judge_images
from edgegen.quality.metrics import KnnReferee
from edgegen.quality.sizing import SampleSizer
from edgegen.runtime.guard import GenerateFn
from edgegen.runtime.latent import latent, truncate


@dataclass(frozen=True)
class Runner:
    """One variant to evaluate: a name, where it runs, and ``generate(z, labels) -> images``."""

    name: str
    source: str
    generate: GenerateFn
    onnx: bool


@dataclass
class Drawn:
    """One runner's samples so far: verdicts and uint8 pixels per round, and the time spent."""

    parts: list[Judged] = field(default_factory=list)
    pixels: list[np.ndarray] = field(default_factory=list)  # uint8 [n_r, H, W] (RGB: [.., 3])
    generate_ns: int = 0  # generation only (ms_per_image)
    total_ns: int = 0  # generation + judging (the time estimate)

    @property
    def n(self) -> int:
        return sum(len(p.correct) for p in self.parts)

    def judged(self) -> Judged:
        return Judged.concat(self.parts)

    def u8(self) -> np.ndarray:
        return np.concatenate(self.pixels)

    def rate(self) -> float:
        """Images per second, generation and judging together."""
        return self.n / (self.total_ns / 1e9) if self.total_ns else float("inf")

    def ms_per_image(self) -> float:
        return self.generate_ns / 1e6 / max(self.n, 1)


def timed(generate: GenerateFn, z: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, float]:
    """Images and milliseconds per image, after one small warm-up call (lazy initialisation
    and first-call allocations are not the model's speed)."""
    generate(z[:10], labels[:10])
    t0 = time.perf_counter_ns()
    images = generate(z, labels)
    return images, (time.perf_counter_ns() - t0) / 1e6 / max(len(labels), 1)


def labels_for(start: int, n: int, n_classes: int) -> np.ndarray:
    """int64 ``[n]``: sample ``i`` asks for ``i % n_classes`` (balanced)."""
    return (np.arange(start, start + n) % n_classes).astype(np.int64)


def draw_round(runner: Runner, drawn: Drawn, z: np.ndarray, labels: np.ndarray, judge: Judge,
               referee: KnnReferee) -> None:
    t0 = time.perf_counter_ns()
    images = runner.generate(z, labels)  # float32 [n, C, H, W]
    t1 = time.perf_counter_ns()
    j, u8 = judge_images(images, labels, judge, referee)
    drawn.parts.append(j)
    drawn.pixels.append(u8)
    drawn.generate_ns += t1 - t0
    drawn.total_ns += time.perf_counter_ns() - t0


def shares(drawn: dict[str, Drawn], teacher: str | None) -> list[tuple[int, int]]:
    """The shares the rule watches: every variant's fidelity and, with a teacher, every
    variant's agreement with it (the teacher's own fidelity is context, not a gate)."""
    out = []
    t = drawn[teacher].parts if teacher else None
    for name, d in drawn.items():
        if name == teacher:
            continue
        correct = sum(int(p.correct.sum()) for p in d.parts)
        out.append((correct, d.n))
        if t is not None:
            agree = sum(int(np.sum(p.predicted == q.predicted)) for p, q in zip(d.parts, t))
            out.append((agree, d.n))
    return out


@dataclass(frozen=True)
class Plan:
    """What one call of ``draw`` needs besides the runners."""

    seed: int
    psi: float | None
    z_dim: int
    n_classes: int
    sizer: SampleSizer
    # seconds the rest of eval will take (guard, sweeps) given images/s per runner and the
    # projected sample count: added to the estimate printed after the first round
    extra_s: Callable[[dict[str, float], int], float] = lambda rates, n: 0.0


def draw(runners: list[Runner], plan: Plan, judge: Judge, referee: KnnReferee,
         report: Reporter, teacher: str | None = None) -> tuple[dict[str, Drawn], dict[str, Any]]:
    """Every runner's samples, round by round until ``plan.sizer`` stops; also the sizing
    record (rounds, widest half-width after each, whether the target was reached)."""
    warm = latent(plan.seed, min(10, plan.sizer.cap), plan.z_dim)
    for r in runners:  # lazy initialisation and first-call allocations are not the speed
        r.generate(truncate(warm, plan.psi), labels_for(0, len(warm), plan.n_classes))
    drawn = {r.name: Drawn() for r in runners}
    rounds: list[dict[str, Any]] = []
    done, total = 0, plan.sizer.cap if plan.sizer.target is None else plan.sizer.floor
    while n := plan.sizer.next_round(done, shares(drawn, teacher)):
        z = truncate(latent(plan.seed, n, plan.z_dim, start=done), plan.psi)  # [n, z_dim]
        labels = labels_for(done, n, plan.n_classes)
        for r in runners:
            draw_round(r, drawn[r.name], z, labels, judge, referee)
            report.count(f"{r.name}: samples", done + n, max(total, done + n), "samples")
        done += n
        now = shares(drawn, teacher)
        rounds.append({"samples": done, "widest_half_width": plan.sizer.widest(now)})
        total = plan.sizer.projected(done, now)
        if len(rounds) == 1:
            report.say(estimate(drawn, plan, done, total))
    widest = rounds[-1]["widest_half_width"] if rounds else 0.5
    sizing = {"rule": "fixed" if plan.sizer.target is None else "ci",
              "interval": "Wilson score 95%", "target_half_width": plan.sizer.target,
              "min_samples": plan.sizer.floor, "max_samples": plan.sizer.cap,
              "round_samples": plan.sizer.round_size, "samples": done,
              "widest_half_width": widest,
              "reached": plan.sizer.target is None or widest <= plan.sizer.target,
              "watched": "every variant's fidelity" + (" and agreement with the teacher"
                                                        if teacher else ""),
              "rounds": rounds}
    return drawn, sizing


def estimate(drawn: dict[str, Drawn], plan: Plan, done: int, total: int) -> str:
    """The line printed after the first round: measured speed, projected count, time left."""
    rates = {name: d.rate() for name, d in drawn.items()}
    left = sum((total - done) / rates[name] for name in rates) + plan.extra_s(rates, total)
    speeds = ", ".join(f"{name} {rate:,.0f} img/s" for name, rate in rates.items())
    return (f"first round: {done:,} samples per variant ({speeds}, generation and judging); "
            f"{plan.sizer.describe()}: about {total:,} samples per variant, estimated "
            f"{_duration(left)} more (guard and sweeps included)")


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


__all__ = ["Drawn", "Plan", "Runner", "draw", "labels_for", "timed"]
