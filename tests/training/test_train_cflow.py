"""cflow training: flow matching, reproducible and resumable like every family."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from edgegen.core.errors import ConfigError
from edgegen.training.checkpoint import load_checkpoint, load_generator, read_info
from edgegen.training.train import TrainConfig, train


def _cfg(out: Path, data: Path, **kw) -> TrainConfig:
    base = {"out": out, "arch": "cflow", "width": 8, "data_dir": data, "batch_size": 32}
    return TrainConfig(**{**base, **kw})


def _same(a: Path, b: Path) -> bool:
    ta, tb = load_checkpoint(a)[1], load_checkpoint(b)[1]
    return ta.keys() == tb.keys() and all(torch.equal(ta[k], tb[k]) for k in ta)


def test_resume_mid_epoch_and_across_epochs_is_exact(tmp_path: Path, idx_dir: Path) -> None:
    # 800 digits / batch 32 = 25 steps per epoch: stop at step 7 (mid-epoch), then at 27
    straight = train(_cfg(tmp_path / "straight", idx_dir, max_steps=27))
    first = train(_cfg(tmp_path / "split", idx_dir, max_steps=7))
    assert first.stopped_by == "max_steps" and first.step == 7 and first.epoch == 0
    resumed = train(TrainConfig(out=tmp_path / "split", resume=True, max_steps=27))
    assert resumed.step == 27 and resumed.epoch == 1 and straight.epoch == 1
    assert _same(tmp_path / "straight", tmp_path / "split")
    info = read_info(tmp_path / "split")
    assert info["arch"] == "cflow" and info["model"]["image_shape"] == [1, 28, 28]
    assert info["train"]["label_dropout"] == 0.1
    assert any(k.startswith("generator_ema.") for k in load_checkpoint(tmp_path / "split")[1])


def test_seed_and_time_sampling_change_the_weights_reproducibly(tmp_path: Path,
                                                                idx_dir: Path) -> None:
    train(_cfg(tmp_path / "a", idx_dir, max_steps=3, seed=1))
    train(_cfg(tmp_path / "b", idx_dir, max_steps=3, seed=1))
    train(_cfg(tmp_path / "c", idx_dir, max_steps=3, seed=1, time_sampling="logit-normal"))
    train(_cfg(tmp_path / "d", idx_dir, max_steps=3, seed=1, label_dropout=0.0))
    assert _same(tmp_path / "a", tmp_path / "b")
    assert not _same(tmp_path / "a", tmp_path / "c")
    assert not _same(tmp_path / "a", tmp_path / "d")


def test_the_exported_generator_is_the_ema_sampler_with_the_run_settings(
        tmp_path: Path, idx_dir: Path) -> None:
    res = train(_cfg(tmp_path / "r", idx_dir, epochs=1, log_every=5))
    gen, info = load_generator(tmp_path / "r")
    assert info["exported_weights"] == "generator_ema"
    assert (gen.steps, gen.guidance) == (4, 2.0)
    assert res.samples == [tmp_path / "r" / "samples" / "epoch_0001.png"]
    rows = [json.loads(x) for x in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["step"] == 25 and {"loss", "grad_norm"} <= rows[-1].keys()
    assert rows[-1]["loss"] < rows[0]["loss"]


@pytest.mark.parametrize("kw,message", [({"label_dropout": 1.0}, "label_dropout"),
                                        ({"time_sampling": "cosine"}, "time_sampling")])
def test_bad_flow_options_are_refused(tmp_path: Path, idx_dir: Path, kw: dict,
                                      message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        train(_cfg(tmp_path / "x", idx_dir, max_steps=1, **kw))
