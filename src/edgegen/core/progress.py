"""The one progress protocol of every stage: ``on_progress(Progress)``.

Every stage function takes ``on_progress: ProgressFn | None`` and calls it with ``Progress``
events — train, train-evaluator, distill, export, verify, eval, bench, compare and serve's
start-up alike — so the CLI renders one kind of progress display (``edgegen.cli.common.
progress_display``) and a library caller handles one kind of event:

>>> def show(p: Progress) -> None:
...     print(p.line())
>>> report = verify(VerifyConfig(bundle=Path("bundles/cdcgan")), on_progress=show)

An event either **counts** (``done`` of ``total`` ``unit`` of a task: a bar) or **tells** (no
count: a line, such as "wrote model.onnx at opset 17"). ``task`` names what is being done; a
new ``task`` starts a new bar. ``metrics`` carries the numbers behind ``info`` (losses, img/s)
for callers that log them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace


@dataclass(frozen=True)
class Progress:
    stage: str  # "train", "export", "verify", "eval", "bench", "compare", "serve", "distill"...
    task: str  # what is being done: "steps", "fp16 variant", "cdcgan: samples"
    done: int | None = None  # units finished; None: an event that tells, not counts
    total: int | None = None  # units in all; None: not known (a bar without an end)
    unit: str = ""  # "steps", "samples", "checks", "rounds"
    info: str = ""  # a short human summary: "epoch 3 loss_g=0.712 480 img/s"
    metrics: Mapping[str, float] = field(default_factory=dict)

    @property
    def counts(self) -> bool:
        return self.done is not None

    def line(self) -> str:
        """The event as one line of text (what a log or a non-terminal display shows)."""
        if not self.counts:
            return f"{self.stage}: {self.task}" + (f" ({self.info})" if self.info else "")
        of = f"/{self.total}" if self.total is not None else ""
        unit = f" {self.unit}" if self.unit else ""
        return f"{self.stage}: {self.task} {self.done}{of}{unit}" + (
            f" {self.info}" if self.info else "")


ProgressFn = Callable[[Progress], None]


def ignore(event: Progress) -> None:
    """The default ``on_progress``: a library caller that passes none hears nothing."""


class Reporter:
    """A stage's handle on ``on_progress``: ``say`` tells, ``count`` counts, both for one stage.

    >>> report = Reporter("export", on_progress)
    >>> report.say("wrote model.onnx at opset 17")
    >>> report.count("golden sets", 3, 8)
    """

    def __init__(self, stage: str, on_progress: ProgressFn | None) -> None:
        self.stage = stage
        self.emit: ProgressFn = on_progress or ignore

    def say(self, text: str, info: str = "") -> None:
        self.emit(Progress(self.stage, text, info=info))

    def count(self, task: str, done: int, total: int | None = None, unit: str = "",
              info: str = "", metrics: Mapping[str, float] | None = None) -> None:
        self.emit(Progress(self.stage, task, done, total, unit, info, dict(metrics or {})))

    def prefixed(self, prefix: str) -> ProgressFn:
        """An ``on_progress`` for a stage run inside this one, its tasks prefixed (``compare``
        runs ``evaluate`` per bundle: ``cdcgan: samples``)."""
        return lambda p: self.emit(replace(p, task=f"{prefix}: {p.task}"))


def step_info(epoch: int, losses: Mapping[str, float], images_per_s: float) -> str:
    """A training step's ``info``: ``epoch 3 loss_g=0.712 loss_d=1.203 480 img/s``."""
    shown = " ".join(f"{k}={v:.3f}" for k, v in losses.items())
    return f"epoch {epoch + 1} {shown} {images_per_s:.0f} img/s"
