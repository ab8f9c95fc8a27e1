"""``--provider tensorrt-rtx`` in every command that runs a bundle: on a machine without the
plugin package, exit 2 with the ProviderError naming the package — before any work, never a
CPU run. (With the package and no NVIDIA driver, tests/runtime/test_plugin_ep.py.)"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from typer.testing import CliRunner

from edgegen.cli.app import app

runner = CliRunner()
pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("onnxruntime_ep_nv_tensorrt_rtx") is not None,
    reason="the TensorRT-RTX plugin package is installed here")


@pytest.mark.parametrize("command", [
    ["verify", "{b}", "--provider", "tensorrt-rtx", "--precision", "fp32,fp16"],
    ["eval", "{b}", "--provider", "tensorrt-rtx", "--samples", "20", "--out", "{t}/eval"],
    ["bench", "{b}", "--provider", "tensorrt-rtx", "--peers", "none", "--iters", "2",
     "--noise-window", "0", "--no-matmul", "--io-binding", "--cuda-graph"],
    ["serve", "{b}", "--provider", "tensorrt-rtx"],
])
def test_refused_by_name_with_exit_2(command: list[str], tiny_bundle: Path,
                                     tmp_path: Path) -> None:
    args = [a.format(b=tiny_bundle, t=tmp_path) for a in command]
    res = runner.invoke(app, args)
    assert res.exit_code == 2, res.output
    out = " ".join(res.output.split())  # the message wraps at the terminal's width
    assert "provider 'tensorrt-rtx' (NvTensorRTRTXExecutionProvider) needs the " \
           "onnxruntime-ep-nv-tensorrt-rtx-cu13 package" in out
    assert "never falls back" in out and "Traceback" not in res.output
    assert not (tmp_path / "eval").exists()  # nothing half-written
