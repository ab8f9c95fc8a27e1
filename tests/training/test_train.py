from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from edgegen.core.errors import CheckpointError, ConfigError
from edgegen.training.checkpoint import CHECKPOINT_NAME, load_checkpoint, read_info
from edgegen.training.train import TrainConfig, train


def _cfg(out: Path, data: Path, **kw) -> TrainConfig:
    base = {"out": out, "width": 8, "data_dir": data, "batch_size": 32}
    return TrainConfig(**{**base, **kw})


def _weights(run: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(run)[1]


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("arch", ["cdcgan", "cmlp", "cvae"])
def test_same_seed_gives_bitwise_identical_weights(tmp_path: Path, idx_dir: Path,
                                                   arch: str) -> None:
    train(_cfg(tmp_path / "a", idx_dir, arch=arch, max_steps=4, seed=3))
    train(_cfg(tmp_path / "b", idx_dir, arch=arch, max_steps=4, seed=3))
    train(_cfg(tmp_path / "c", idx_dir, arch=arch, max_steps=4, seed=4))
    assert _same(_weights(tmp_path / "a"), _weights(tmp_path / "b"))
    assert not _same(_weights(tmp_path / "a"), _weights(tmp_path / "c"))


def test_fresh_processes_give_one_result_under_a_competing_load(tmp_path: Path,
                                                                 idx_dir: Path) -> None:
    """The issue-14 flake: the same short run in fresh processes (what `edgegen train` is), with
    another process spinning on the CPU, must give one result. (More runs, and without load:
    benchmarks/scripts/repro_runs.py.)"""
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    hashes = []
    try:
        for i in range(3):
            out = tmp_path / f"r{i}"
            res = subprocess.run([sys.executable, "-m", "edgegen", "train", "--max-steps", "8",
                                  "--width", "8", "--seed", "7", "--out", str(out),
                                  "--data-dir", str(idx_dir)],
                                 capture_output=True, text=True, timeout=600)
            assert res.returncode == 0, res.stdout + res.stderr
            _, tensors = load_checkpoint(out)
            digest = hashlib.sha256()
            for name in sorted(tensors):
                digest.update(name.encode() + tensors[name].numpy().tobytes())
            hashes.append(digest.hexdigest())
    finally:
        busy.kill()
        busy.wait()
    assert len(set(hashes)) == 1


@pytest.mark.parametrize("arch", ["cdcgan", "cmlp", "cvae"])
def test_resume_mid_epoch_and_across_epochs_is_exact(tmp_path: Path, idx_dir: Path,
                                                     arch: str) -> None:
    # 800 digits / batch 32 = 25 steps per epoch; stop at step 10 (mid-epoch), then at 30.
    straight = train(_cfg(tmp_path / "straight", idx_dir, arch=arch, max_steps=30))
    first = train(_cfg(tmp_path / "split", idx_dir, arch=arch, max_steps=10))
    assert first.stopped_by == "max_steps" and first.step == 10 and first.epoch == 0
    resumed = train(TrainConfig(out=tmp_path / "split", resume=True, max_steps=30))
    assert resumed.step == 30 and resumed.epoch == 1 and straight.epoch == 1
    assert _same(_weights(tmp_path / "straight"), _weights(tmp_path / "split"))
    steps = [json.loads(x)["step"] for x in
             (tmp_path / "split" / "metrics.jsonl").read_text().splitlines()]
    assert steps == sorted(steps) and len(steps) == len(set(steps))


def test_new_runs_record_their_family_recipe(tmp_path: Path, idx_dir: Path) -> None:
    train(_cfg(tmp_path / "m", idx_dir, arch="cmlp", max_steps=2))
    info = read_info(tmp_path / "m")
    assert {k: info["model"][k] for k in ("d_conditioning", "spectral_norm", "mbstd")} == \
        {"d_conditioning": "projection", "spectral_norm": True, "mbstd": True}
    assert (info["train"]["loss"], info["train"]["lr"], info["train"]["lr_d"]) == \
        ("hinge", 1e-4, 4e-4)
    # two time-scales: the optimizers were built with, and stored, their own rates
    assert info["optim_groups"]["discriminator"][0]["lr"] == 4e-4
    assert info["optim_groups"]["generator"][0]["lr"] == 1e-4
    train(_cfg(tmp_path / "v", idx_dir, arch="cvae", max_steps=2, kl_weight=0.5))
    info = read_info(tmp_path / "v")
    assert info["model"]["prior"] == "learned"
    assert (info["train"]["kl_weight"], info["train"]["free_bits"]) == (0.5, 0.0)
    assert "generator.prior_mu.weight" in _weights(tmp_path / "v")


def _as_written_before_the_options(run: Path, model_keys: tuple[str, ...]) -> None:
    """Rewrite ``run``'s checkpoint as an edgegen from before this change wrote it: its stored
    model and training configs lack the options that did not exist then."""
    from edgegen.training.checkpoint import save_checkpoint

    info, tensors = load_checkpoint(run)
    for k in model_keys:
        info["model"].pop(k)
    for k in ("loss", "lr_d", "kl_weight", "free_bits"):
        info["train"].pop(k)
    save_checkpoint(run, tensors, {k: v for k, v in info.items() if k != "format"})


MODEL_OPTIONS = ("d_conditioning", "spectral_norm", "mbstd", "d_dropout", "prior")


def test_a_cdcgan_run_from_before_resumes_exactly(tmp_path: Path, idx_dir: Path) -> None:
    train(_cfg(tmp_path / "straight", idx_dir, max_steps=30))
    train(_cfg(tmp_path / "old", idx_dir, max_steps=10))
    _as_written_before_the_options(tmp_path / "old", MODEL_OPTIONS)
    train(TrainConfig(out=tmp_path / "old", resume=True, max_steps=30))
    assert _same(_weights(tmp_path / "straight"), _weights(tmp_path / "old"))
    assert read_info(tmp_path / "old")["train"]["loss"] == "bce"


def test_cmlp_and_cvae_runs_from_before_still_load(tmp_path: Path, idx_dir: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from edgegen.training.checkpoint import load_generator

    # the networks as they were: no family options beyond the dataclass defaults
    monkeypatch.setattr("edgegen.models.config.ARCH_MODEL", {"cvae": {"z_dim": 16}})
    for arch in ("cmlp", "cvae"):
        train(_cfg(tmp_path / arch, idx_dir, arch=arch, max_steps=3))
        _as_written_before_the_options(tmp_path / arch, MODEL_OPTIONS)
        gen, info = load_generator(tmp_path / arch)  # export, verify and eval still work
        assert gen(torch.zeros(2, info["model"]["z_dim"]), torch.tensor([1, 2])).shape == \
            (2, 1, 28, 28)
    # the VAE resumes with the plain ELBO it was trained with
    res = train(TrainConfig(out=tmp_path / "cvae", resume=True, max_steps=5))
    info = read_info(tmp_path / "cvae")
    assert res.step == 5 and (info["train"]["kl_weight"], info["train"]["free_bits"]) == (1.0, 0)
    assert info["model"].get("prior", "standard") == "standard"
    # the old MLP GAN's discriminator is gone: resuming it is a clear error, not a crash
    with pytest.raises(CheckpointError, match="from before its discriminator changed"):
        train(TrainConfig(out=tmp_path / "cmlp", resume=True, max_steps=5))


def test_run_folder_describes_itself(tmp_path: Path, idx_dir: Path) -> None:
    res = train(_cfg(tmp_path / "r", idx_dir, epochs=1))
    info = read_info(tmp_path / "r")
    assert info["kind"] == "generator" and info["arch"] == "cdcgan"
    assert info["train"]["seed"] == 0 and info["epoch"] == 1 and info["step"] == 25
    assert info["data"]["source"] == "idx-folder"
    assert json.loads((tmp_path / "r" / "config.json").read_text()) == info
    assert (tmp_path / "r" / "samples" / "epoch_0001.png").stat().st_size > 1000
    assert res.samples == [tmp_path / "r" / "samples" / "epoch_0001.png"]
    rows = [json.loads(x) for x in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["step"] == 25 and rows[-1]["images_per_s"] > 0
    assert not list((tmp_path / "r").glob(".*tmp"))  # no temporary files left behind


def test_fidelity_is_reported_when_an_evaluator_exists(tiny_run: Path) -> None:
    res = json.loads((tiny_run / "result.json").read_text())
    fid = res["fidelity"]
    assert fid["samples"] == 100 and 0.0 <= fid["fidelity"] <= 1.0
    assert len(fid["per_label"]) == 10 and fid["ci95"][0] <= fid["fidelity"] <= fid["ci95"][1]


def test_a_crash_while_saving_leaves_the_good_checkpoint(tmp_path: Path, idx_dir: Path,
                                                         monkeypatch: pytest.MonkeyPatch
                                                         ) -> None:
    out = tmp_path / "r"
    train(_cfg(out, idx_dir, max_steps=2))
    good = (out / CHECKPOINT_NAME).read_bytes()

    def boom(*args, **kwargs):
        raise KeyboardInterrupt  # what kill -9 looks like from inside the write: it stops

    monkeypatch.setattr("edgegen.runtime.fileio.os.replace", boom)
    with pytest.raises(KeyboardInterrupt):
        train(TrainConfig(out=out, resume=True, max_steps=4))
    assert (out / CHECKPOINT_NAME).read_bytes() == good
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]


@pytest.mark.parametrize("kw,match", [
    ({"arch": "gan9000"}, "unknown architecture 'gan9000'"),
    ({"epochs": 0}, "--epochs must be positive"),
    ({"max_steps": -3}, "--max-steps must be positive"),
    ({"max_minutes": 0.0}, "--max-minutes must be positive"),
    ({"device": "tpu"}, "--device must be cpu or cuda"),
    ({"arch": "cmlp", "loss": "wgan"}, "unknown GAN loss 'wgan'"),
    ({"arch": "cmlp", "lr_d": 0.0}, "--lr-d must be positive"),
    ({"arch": "cvae", "kl_weight": -1.0}, "--kl-weight must be >= 0"),
])
def test_bad_configs(tmp_path: Path, idx_dir: Path, kw: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        train(_cfg(tmp_path / "x", idx_dir, **kw))


def test_resume_errors(tmp_path: Path, idx_dir: Path) -> None:
    train(_cfg(tmp_path / "r", idx_dir, max_steps=1))
    with pytest.raises(ConfigError, match="trained with --arch cdcgan, not cvae"):
        train(TrainConfig(out=tmp_path / "r", resume=True, arch="cvae"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="holds no checkpoint"):
        train(TrainConfig(out=tmp_path / "empty", resume=True))
    with pytest.raises(ConfigError, match="already holds a run"):
        train(_cfg(tmp_path / "r", idx_dir, max_steps=1))


def test_cuda_asked_for_but_absent(tmp_path: Path, idx_dir: Path) -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(ConfigError, match="--device cuda was asked for"):
        train(_cfg(tmp_path / "r", idx_dir, device="cuda", max_steps=1))
