"""edgegen distill: a one-call student of a tiny cflow teacher — a normal run that exports and
loads in the runtime, reproducible, resumable exactly, with clear errors."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from edgegen.core.errors import CheckpointError, ConfigError
from edgegen.training.checkpoint import load_checkpoint, load_generator, read_info
from edgegen.training.distill import DistillConfig, distill
from edgegen.training.pairs import PAIRS_NAME

# 96 pairs / batch 32 = 3 steps per pass; the teacher's sampler at 2 steps keeps pairs cheap
TINY = {"pairs": 96, "batch_size": 32, "steps": 2, "guidance": 1.5, "fidelity_samples": 40}


def _cfg(teacher: Path, out: Path, **kw) -> DistillConfig:
    return DistillConfig(**{"teacher": teacher, "out": out, **TINY, **kw})


def _weights(run: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(run)[1]


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_the_student_is_a_normal_run_that_exports_and_runs_in_the_runtime(
        tmp_path: Path, tiny_cflow_run: Path) -> None:
    from edgegen.export.bundler import ExportConfig, export_bundle
    from edgegen.runtime import Generator

    res = distill(_cfg(tiny_cflow_run, tmp_path / "student", max_steps=4))
    assert (res.arch, res.student, res.method, res.step, res.epoch) == \
        ("cflow1", "same", "regress", 4, 1)
    assert res.stopped_by == "max_steps" and res.pairs_s > 0
    info = read_info(tmp_path / "student")
    teacher_sha = hashlib.sha256(
        (tiny_cflow_run / "checkpoint.safetensors").read_bytes()).hexdigest()
    assert info["kind"] == "generator" and info["distilled_from"] == {
        "run": str(tiny_cflow_run), "checkpoint_sha256": teacher_sha, "architecture": "cflow",
        "steps": 2, "guidance": 1.5, "method": "regress", "loss": "l2", "pairs": 96}
    assert res.fidelity is not None and res.fidelity["samples"] == 40  # the fixture evaluator
    assert (tmp_path / "student" / "samples" / "epoch_0001.png").is_file()

    bundle = tmp_path / "bundle"
    export_bundle(ExportConfig(checkpoint=tmp_path / "student", out=bundle, golden_sets=1,
                               calibration_samples=40, deviation_samples=40))
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["generator"]["architecture"] == "cflow1"
    assert "sampler" not in manifest and not (bundle / "denoiser.onnx").exists()
    gen = Generator.load(bundle)
    images = gen.generate([0, 3, 9], seed=5)
    assert images.shape == (3, 28, 28) and images.dtype == np.uint8
    # the runtime's images are the student's in PyTorch (one call per image)
    student, _ = load_generator(tmp_path / "student")
    from edgegen.runtime.latent import latent
    from edgegen.runtime.postprocess import to_pixels

    with torch.no_grad():
        ref = student(torch.from_numpy(latent(5, 3, 784)), torch.tensor([0, 3, 9])).numpy()
    assert np.abs(to_pixels(ref).astype(int) - images.astype(int)).max() <= 1
    # verify proves its parity like any bundle's (goldens, PyTorch, variants)
    from edgegen.export.verify import VerifyConfig, verify

    report = verify(VerifyConfig(bundle=bundle))
    assert report.passed and not [c for c in report.checks if c.status == "fail"]


def test_the_student_starts_from_the_teacher_and_learns_its_pairs(tmp_path: Path,
                                                                  tiny_cflow_run: Path) -> None:
    from edgegen.runtime.latent import latent
    from edgegen.training.pairs import PairSpec, pair_inputs

    distill(_cfg(tiny_cflow_run, tmp_path / "s", max_steps=1, ema_decay=0.0, lr=1e-9))
    teacher, tinfo = load_generator(tiny_cflow_run)
    student, _ = load_generator(tmp_path / "s")
    s_net = student.net.state_dict()
    assert all(torch.allclose(v, s_net[k], atol=1e-6) for k, v in teacher.net.state_dict().items())
    # the cached pairs are the teacher's sampler at 2 steps / guidance 1.5, from portable latents
    from safetensors.torch import load_file

    pairs = load_file(tmp_path / "s" / PAIRS_NAME)
    assert pairs["target"].shape == (96, 1, 28, 28) and pairs["target"].dtype == torch.float16
    assert pairs["label"].tolist() == [i % 10 for i in range(96)]
    from edgegen.training.distill import PAIR_STREAM
    from edgegen.training.torch_utils import seed_for

    spec = PairSpec(teacher_sha256="", steps=2, guidance=1.5, n=96,
                    seed=seed_for(0, 0, PAIR_STREAM), z_dim=784, n_classes=10)
    z, y = pair_inputs(spec, 90, 6)  # pairs 90..95: the portable latent's rows 90..95
    assert np.array_equal(z, latent(spec.seed, 96, 784)[90:])
    teacher.set_sampler(2, 1.5)
    with torch.no_grad():
        want = teacher(torch.from_numpy(z), torch.from_numpy(y))
    assert torch.allclose(pairs["target"][90:].float(), want, atol=1e-3)


def test_same_seed_same_weights_and_resume_equals_uninterrupted(tmp_path: Path,
                                                                tiny_cflow_run: Path) -> None:
    # 3 steps per pass: stop at step 2 (mid-pass), resume to 5 (the second pass)
    distill(_cfg(tiny_cflow_run, tmp_path / "a", max_steps=5, seed=3))
    distill(_cfg(tiny_cflow_run, tmp_path / "b", max_steps=5, seed=3))
    distill(_cfg(tiny_cflow_run, tmp_path / "c", max_steps=5, seed=4))
    assert _same(_weights(tmp_path / "a"), _weights(tmp_path / "b"))
    assert not _same(_weights(tmp_path / "a"), _weights(tmp_path / "c"))

    first = distill(_cfg(tiny_cflow_run, tmp_path / "split", max_steps=2, seed=3))
    assert first.step == 2 and first.epoch == 0
    resumed = distill(DistillConfig(teacher=tiny_cflow_run, out=tmp_path / "split",
                                    resume=True, max_steps=5))
    assert resumed.step == 5 and resumed.epoch == 1 and resumed.pairs_s == 0.0  # reloaded
    assert _same(_weights(tmp_path / "a"), _weights(tmp_path / "split"))
    steps = [json.loads(x)["step"] for x in
             (tmp_path / "split" / "metrics.jsonl").read_text().splitlines()]
    assert steps == sorted(steps) and len(steps) == len(set(steps))


def test_single_pass_students_and_the_adversarial_method(tmp_path: Path, tiny_cflow_run: Path,
                                                         idx_dir: Path) -> None:
    res = distill(_cfg(tiny_cflow_run, tmp_path / "gan", student="cdcgan", width=8,
                       method="regress-adv", max_steps=2, data_dir=idx_dir))
    assert (res.arch, res.method) == ("cdcgan", "regress-adv")
    assert {"rec", "adv", "loss_d"} <= res.last_losses.keys()
    info = read_info(tmp_path / "gan")
    assert info["model"]["z_dim"] == 784 and info["critic"]["arch"] == "cdcgan"
    assert info["data"]["source"] == "idx-folder"
    assert any(k.startswith("discriminator.") for k in _weights(tmp_path / "gan"))
    for student, arch in (("cmlp", "cmlp"), ("cvae", "cvae"), ("unet", "cflow1")):
        distill(_cfg(tiny_cflow_run, tmp_path / student, student=student, width=8,
                     max_steps=1, loss="l2"))
        gen, info = load_generator(tmp_path / student)
        assert info["arch"] == arch and info["model"]["width"] == 8
        assert gen(torch.zeros(2, 784), torch.tensor([1, 2])).shape == (2, 1, 28, 28)


def test_errors_are_clear(tmp_path: Path, tiny_cflow_run: Path, tiny_run: Path) -> None:
    from edgegen.training.train import TrainConfig, train

    with pytest.raises(ConfigError, match="nothing to distil"):
        distill(_cfg(tiny_run, tmp_path / "x", max_steps=1))
    with pytest.raises(CheckpointError, match="does not exist"):
        distill(_cfg(tmp_path / "nowhere", tmp_path / "x", max_steps=1))
    for kw, match in [({"student": "gpt"}, "unknown --student 'gpt'"),
                      ({"method": "magic"}, "unknown --method 'magic'"),
                      ({"pairs": 10}, "fewer than one --batch-size"),
                      ({"steps": 0}, "--steps must be positive"),
                      ({"guidance": -1.0}, "the teacher's sampler"),
                      ({"width": 16}, "--student same keeps the teacher's UNet")]:
        with pytest.raises(ConfigError, match=match):
            distill(_cfg(tiny_cflow_run, tmp_path / "x", max_steps=1, **kw))

    distill(_cfg(tiny_cflow_run, tmp_path / "s", max_steps=1))
    with pytest.raises(ConfigError, match="already holds a run"):
        distill(_cfg(tiny_cflow_run, tmp_path / "s", max_steps=1))
    with pytest.raises(ConfigError, match="distilled with --student same, not cdcgan"):
        distill(DistillConfig(teacher=tiny_cflow_run, out=tmp_path / "s", resume=True,
                              student="cdcgan"))
    with pytest.raises(CheckpointError, match="is not the teacher"):
        distill(DistillConfig(teacher=tiny_run, out=tmp_path / "s", resume=True))
    with pytest.raises(ConfigError, match="edgegen distill TEACHER_RUN"):
        train(TrainConfig(out=tmp_path / "s", resume=True))  # train cannot resume a student
    with pytest.raises(ConfigError, match="one-call student"):
        train(TrainConfig(out=tmp_path / "t", arch="cflow1"))
