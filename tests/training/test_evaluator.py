from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edgegen.core.errors import CheckpointError
from edgegen.training.data import load_folder, to_tensor_range
from edgegen.training.evaluator import classify, load_evaluator, predict


def test_evaluator_learns_real_digits(tiny_evaluator: Path, idx_dir: Path) -> None:
    res = json.loads((tiny_evaluator / "result.json").read_text())
    # 800 real training digits, 3 epochs of a narrow CNN: far above chance (10%)
    assert res["heldout_accuracy"] > 0.5 and res["heldout_samples"] == 200
    splits = load_folder(idx_dir)
    clf = load_evaluator(tiny_evaluator)
    pred = predict(clf, to_tensor_range(splits.heldout_images))
    assert float(np.mean(pred == splits.heldout_labels)) == pytest.approx(res["heldout_accuracy"])
    probs, feats = classify(clf, to_tensor_range(splits.heldout_images[:5]))
    assert probs.shape == (5, 10) and np.allclose(probs.sum(1), 1, atol=1e-5)
    assert feats.shape == (5, 128)


def test_a_generator_run_is_not_an_evaluator(tiny_run: Path) -> None:
    with pytest.raises(CheckpointError, match="not an evaluator"):
        load_evaluator(tiny_run)
