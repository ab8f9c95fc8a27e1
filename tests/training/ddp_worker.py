"""A torchrun target for the distributed tests: trains every family (and the evaluator) in the
same processes, so one launch covers them all.

    python -m torch.distributed.run --nproc-per-node 2 ... tests/training/ddp_worker.py \
        OUT_DIR DATA_DIR STEPS LONG_STEPS
    python tests/training/ddp_worker.py OUT_DIR DATA_DIR STEPS LONG_STEPS    # one process

``long`` is a cdcgan run checkpointed every 5 steps: the uninterrupted reference of the fault
tests.
"""

from __future__ import annotations

import sys
from pathlib import Path

from edgegen.training.evaluator import EvaluatorConfig, train_evaluator
from edgegen.training.train import TrainConfig, train

ARCHS = ("cdcgan", "cmlp", "cvae", "cflow")


def run_all(out: Path, data: Path, steps: int, long_steps: int) -> None:
    for arch in ARCHS:
        train(TrainConfig(out=out / arch, arch=arch, max_steps=steps, width=8, batch_size=32,
                          seed=3, data_dir=data, log_every=5, threads=1))
    train_evaluator(EvaluatorConfig(out=out / "evaluator", epochs=1, batch_size=32, width=8,
                                    seed=3, data_dir=data, threads=1))
    train(TrainConfig(out=out / "long", arch="cdcgan", max_steps=long_steps, width=8,
                      batch_size=32, seed=3, data_dir=data, checkpoint_every=5, threads=1))


if __name__ == "__main__":
    run_all(Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))
