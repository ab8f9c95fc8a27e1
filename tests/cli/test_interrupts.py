"""SIGINT / SIGTERM at any moment: exit 130 / 143, nothing that looks complete, no temporary
folder left behind; a re-run cleans what ``kill -9`` left (issue 15, cases 2 and 5). Real signals
on real ``edgegen`` processes (``python -m edgegen``, the entry point that installs the
handlers).

Each signal is sent on an event the work reports, never after a fixed sleep (on a fast machine
the work could finish first, on a slow one not have started): a line the stage prints, a file it
writes, or the interpreter's own import record (``-X importtime``) when the stage prints nothing
at the moment that matters."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from typer.testing import CliRunner

from edgegen.cli.app import app

runner = CliRunner()


class Cli:
    """``edgegen ARGS`` in a subprocess whose output lines are collected as they come."""

    def __init__(self, *args: str | Path, cwd: Path, python_flags: tuple[str, ...] = ()) -> None:
        env = {k: v for k, v in os.environ.items() if k != "EDGEGEN_DATA_DIR"}
        env["PYTHONUNBUFFERED"] = "1"
        self.proc = subprocess.Popen([sys.executable, *python_flags, "-m", "edgegen",
                                      *map(str, args)],
                                     cwd=cwd, env=env, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True)
        self.lines: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)

    def wait_for(self, ready: object, timeout: float = 300) -> None:
        """Poll ``ready()`` until it is true (or the process ended: then the test fails)."""
        end = time.monotonic() + timeout
        while not ready():
            assert self.proc.poll() is None, "".join(self.lines)
            assert time.monotonic() < end, "timed out: " + "".join(self.lines)
            time.sleep(0.05)

    def saw(self, text: str, times: int = 1) -> bool:
        return sum(text in line for line in list(self.lines)) >= times

    def finish(self, timeout: float = 300) -> tuple[int, str]:
        try:
            code = self.proc.wait(timeout=timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
        self.reader.join(timeout=10)
        # without the interpreter's import records (torch.onnx's own module names hold
        # "torchscript"): what the command itself printed
        return code, "".join(line for line in self.lines if not line.startswith("import time:"))


def _written_after(path: Path, first: Path) -> bool:
    """Both files exist and ``path`` was (re)written no earlier than ``first``."""
    try:
        return path.stat().st_mtime_ns >= first.stat().st_mtime_ns
    except FileNotFoundError:
        return False


def _partial(parent: Path, name: str) -> list[Path]:
    return [p for p in parent.iterdir() if p.name.startswith(f".{name}.partial-")]


def test_ctrl_c_during_the_dynamo_exporter_exits_130_and_never_falls_back(
        tiny_run: Path, tmp_path: Path) -> None:
    """The probe: SIGINT ~1 s into the export used to run the TorchScript fallback and exit 0
    with a complete bundle. The signal goes when the interpreter reports that onnxscript has
    been imported: only the dynamo exporter imports it, inside ``torch.onnx.export``, and
    tracing the model takes seconds after that."""
    cli = Cli("export", tiny_run, "--out", tmp_path / "b", "--precision", "fp32",
              "--golden-sets", "1", cwd=tmp_path, python_flags=("-X", "importtime"))
    cli.wait_for(lambda: any(re.search(r"\|\s+onnxscript$", line) for line in list(cli.lines)))
    assert _partial(tmp_path, "b") and not cli.saw("wrote model.onnx")  # inside the exporter
    cli.proc.send_signal(signal.SIGINT)
    code, output = cli.finish()
    assert code == 130, output
    assert "interrupted (SIGINT)" in output and "Traceback" not in output
    assert "torchscript" not in output.lower() and "bundle written" not in output
    assert list(tmp_path.iterdir()) == []  # no bundle, no partial folder


def test_sigterm_during_export_exits_143_and_leaves_the_old_bundle(tiny_run: Path,
                                                                   tmp_path: Path) -> None:
    out = tmp_path / "b"
    res = runner.invoke(app, ["export", str(tiny_run), "--out", str(out), "--precision", "fp32",
                              "--golden-sets", "1"])
    assert res.exit_code == 0, res.output
    before = (out / "manifest.json").read_bytes()
    cli = Cli("export", tiny_run, "--out", out, "--golden-sets", "1", "--force", cwd=tmp_path)
    cli.wait_for(lambda: cli.saw("wrote model.onnx"))  # half a bundle in the partial folder
    assert _partial(tmp_path, "b")
    cli.proc.send_signal(signal.SIGTERM)
    code, output = cli.finish()
    assert code == 143, output
    assert "interrupted (SIGTERM)" in output and "Traceback" not in output
    assert (out / "manifest.json").read_bytes() == before  # the old bundle is untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b"]


def test_kill_9_leaves_a_hidden_partial_folder_that_the_next_export_removes(
        tiny_run: Path, tmp_path: Path) -> None:
    cli = Cli("export", tiny_run, "--out", tmp_path / "b", "--precision", "fp32",
              "--golden-sets", "1", cwd=tmp_path)
    cli.wait_for(lambda: cli.saw("wrote model.onnx"))  # the partial folder holds a model
    cli.proc.send_signal(signal.SIGKILL)
    code, _ = cli.finish()
    assert code == -signal.SIGKILL
    left = _partial(tmp_path, "b")
    assert left and not (tmp_path / "b").exists()  # nothing that looks like a bundle
    res = runner.invoke(app, ["export", str(tiny_run), "--out", str(tmp_path / "b"),
                              "--precision", "fp32", "--golden-sets", "1"])
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b"]  # the dead writer's folder: gone


def test_sigterm_during_training_exits_143_with_no_temporary_file(idx_dir: Path,
                                                                  tmp_path: Path) -> None:
    run = tmp_path / "run"
    cli = Cli("train", "--out", run, "--max-steps", "100000", "--data-dir", idx_dir,
              "--threads", "1", cwd=tmp_path)
    # the first epoch's snapshot is complete (checkpoint.safetensors, then config.json, both
    # atomic): what follows is the second epoch's training
    cli.wait_for(lambda: _written_after(run / "config.json", run / "checkpoint.safetensors"))
    cli.proc.send_signal(signal.SIGTERM)
    code, output = cli.finish()
    assert code == 143, output
    assert "interrupted (SIGTERM)" in output and "Traceback" not in output
    names = [p.name for p in run.rglob("*")]
    assert not [n for n in names if ".tmp" in n or "partial" in n], names
    assert "result.json" not in names  # a finished run's record: not written
    from edgegen.training.checkpoint import read_info

    assert read_info(run)["kind"] == "generator"  # the last checkpoint is whole


def test_ctrl_c_during_verify_exits_130_and_writes_no_report(tiny_bundle: Path,
                                                            tmp_path: Path) -> None:
    report = tmp_path / "verify.json"
    cli = Cli("verify", tiny_bundle, "--json", report, "--batch", "1,256", "--repeats", "50",
              cwd=tmp_path)
    # the second variant's session: the first variant's checks are done, the report is not
    cli.wait_for(lambda: cli.saw("creating the session", times=2))
    cli.proc.send_signal(signal.SIGINT)
    code, output = cli.finish()
    assert code == 130, output
    assert "interrupted (SIGINT)" in output and "Traceback" not in output
    assert list(tmp_path.iterdir()) == []
