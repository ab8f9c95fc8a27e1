from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from typer.testing import CliRunner

from edgegen.cli.app import app
from edgegen.core import __version__

runner = CliRunner()


def test_version_and_python_m() -> None:
    assert runner.invoke(app, ["--version"]).output.strip() == f"edgegen {__version__}"
    out = subprocess.run([sys.executable, "-m", "edgegen", "--version"], capture_output=True,
                         text=True, check=True)
    assert out.stdout.strip() == f"edgegen {__version__}"


def test_the_cli_starts_without_torch_or_onnxruntime() -> None:
    code = ("import sys, edgegen.cli.app; "
            "print(sorted(m for m in ('torch', 'onnxruntime', 'onnx') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"


def test_train_and_resume(tmp_path: Path, idx_dir: Path) -> None:
    out = tmp_path / "run"
    res = runner.invoke(app, ["train", "--out", str(out), "--max-steps", "2",
                              "--data-dir", str(idx_dir)])
    assert res.exit_code == 0, res.output
    assert "data: idx-folder" in res.output and "stopped by max_steps" in res.output
    res = runner.invoke(app, ["train", "--resume", str(out), "--max-steps", "3"])
    assert res.exit_code == 0, res.output
    assert "resuming" in res.output and "3 steps" in res.output


def _fails(args: list[str], match: str) -> None:
    res = runner.invoke(app, args)
    assert res.exit_code == 2, res.output
    assert match in res.output, res.output
    assert "Traceback" not in res.output


def test_bad_inputs_are_clear_errors(tmp_path: Path, idx_dir: Path) -> None:
    d = ["--data-dir", str(idx_dir)]
    _fails(["train", "--arch", "gan9000", "--out", str(tmp_path / "a"), *d],
           "unknown architecture 'gan9000'")
    _fails(["train", "--epochs", "0", "--out", str(tmp_path / "a"), *d],
           "--epochs must be positive")
    _fails(["train", "--max-minutes", "-1", "--out", str(tmp_path / "a"), *d],
           "--max-minutes must be positive")
    _fails(["train", "--max-steps", "1", "--out", str(tmp_path / "a"),
            "--data-dir", str(tmp_path / "nowhere")], "does not exist")
    (tmp_path / "empty").mkdir()
    _fails(["train", "--resume", str(tmp_path / "empty")], "holds no checkpoint")


def test_corrupt_idx_file_is_named(tmp_path: Path, real_digits,
                                   write_idx: Callable[..., Path]) -> None:
    images, labels = real_digits
    folder = tmp_path / "mnist"
    folder.mkdir()
    path = write_idx(folder / "t10k-images-idx3-ubyte", images, gz=False)
    path.write_bytes(path.read_bytes()[:5000])
    write_idx(folder / "t10k-labels-idx1-ubyte", labels, gz=False)
    _fails(["train", "--max-steps", "1", "--out", str(tmp_path / "r"), "--data-dir",
            str(folder)], "t10k-images-idx3-ubyte")


def test_resume_with_another_architecture(tmp_path: Path, idx_dir: Path) -> None:
    out = tmp_path / "run"
    assert runner.invoke(app, ["train", "--out", str(out), "--max-steps", "1",
                               "--data-dir", str(idx_dir)]).exit_code == 0
    _fails(["train", "--resume", str(out), "--arch", "cmlp"], "trained with --arch cdcgan")


def test_train_evaluator_command(tmp_path: Path, idx_dir: Path) -> None:
    res = runner.invoke(app, ["train-evaluator", "--out", str(tmp_path / "ev"), "--epochs",
                              "1", "--data-dir", str(idx_dir)])
    assert res.exit_code == 0, res.output
    assert "held-out accuracy" in res.output
