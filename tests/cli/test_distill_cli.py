"""``edgegen distill`` on the command line: a student, its resume, its errors, and two processes
that distil what one process distils."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from edgegen.cli.app import app
from edgegen.training.checkpoint import load_generator, read_info

runner = CliRunner()
TINY = ["--pairs", "96", "--batch-size", "32", "--steps", "2", "--threads", "1"]


def _fails(args: list[str], match: str) -> None:
    res = runner.invoke(app, args)
    assert res.exit_code == 2, res.output
    assert match in res.output, res.output
    assert "Traceback" not in res.output


def test_distill_and_resume(tmp_path: Path, tiny_cflow_run: Path) -> None:
    out = tmp_path / "student"
    res = runner.invoke(app, ["distill", str(tiny_cflow_run), "--out", str(out), *TINY,
                              "--max-steps", "2"], env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    assert "same student (cflow1, regress)" in res.output and "stopped by max_steps" in res.output
    assert "label fidelity" in res.output  # the teacher's evaluator, found beside it
    assert f"edgegen export {out}" in res.output
    res = runner.invoke(app, ["distill", str(tiny_cflow_run), "--out", str(out), "--resume",
                              "--max-steps", "4"], env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    assert "resuming" in res.output and "reloaded from the run folder" in res.output
    assert read_info(out)["step"] == 4


def test_bad_inputs_are_clear_errors(tmp_path: Path, tiny_cflow_run: Path,
                                     tiny_run: Path) -> None:
    out = ["--out", str(tmp_path / "s"), *TINY, "--max-steps", "1"]
    _fails(["distill", str(tmp_path / "nowhere"), *out], "does not exist")
    _fails(["distill", str(tiny_run), *out], "nothing to distil")
    _fails(["distill", str(tiny_cflow_run), *out, "--student", "gpt"],
           "unknown --student 'gpt'")
    _fails(["distill", str(tiny_cflow_run), *out, "--guidance", "-2"], "the teacher's sampler")
    _fails(["distill", str(tiny_cflow_run), *out, "--max-restarts", "1"],
           "--max-restarts needs --nproc-per-node")
    _fails(["distill", str(tiny_cflow_run), *out, "--nproc-per-node", "2", "--batch-size",
            "33"], "must divide among the 2 processes")
    (tmp_path / "empty").mkdir()
    _fails(["distill", str(tiny_cflow_run), "--out", str(tmp_path / "empty"), "--resume"],
           "holds no checkpoint")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="torchrun's c10d on Linux")
def test_two_processes_distil_what_one_process_distils(tmp_path: Path,
                                                       tiny_cflow_run: Path) -> None:
    # 320 pairs: two chunks of the teacher's calls (250 + 70), one per process
    args = [str(tiny_cflow_run), *TINY, "--pairs", "320", "--max-steps", "4", "--seed", "2"]
    one = runner.invoke(app, ["distill", *args, "--out", str(tmp_path / "one")])
    assert one.exit_code == 0, one.output
    # --nproc-per-node runs torchrun, which starts 2 workers; it waits for them and returns
    two = subprocess.run([sys.executable, "-m", "edgegen", "distill", *args, "--out",
                          str(tmp_path / "two"), "--nproc-per-node", "2"],
                         capture_output=True, text=True, timeout=900)
    assert two.returncode == 0, two.stdout + two.stderr
    assert read_info(tmp_path / "two")["world_size"] == 2
    # the same pairs (each process computed a block, bitwise what one process computes), the
    # same steps: the same network up to
    # summation order (compared by what it draws, as cflow's DDP test does)
    a, _ = load_generator(tmp_path / "one")
    b, _ = load_generator(tmp_path / "two")
    z, y = torch.randn(8, 784, generator=torch.Generator().manual_seed(0)), torch.arange(8)
    with torch.no_grad():
        diff = (a(z, y) - b(z, y)).abs().max().item()
    assert diff < 1e-3, diff
    from safetensors.torch import load_file

    pa, pb = load_file(tmp_path / "one" / "pairs.safetensors"), \
        load_file(tmp_path / "two" / "pairs.safetensors")
    assert torch.equal(pa["target"], pb["target"])
