"""``export_onnx`` falls back to the TorchScript exporter only when dynamo *fails*, never when
it was interrupted — even when the exporter swallows the KeyboardInterrupt itself (torch's does:
issue 15, case 2; the real-signal test is tests/cli/test_interrupts.py)."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
import torch

from edgegen.export import onnx_export
from edgegen.runtime.interrupts import Interrupted


def test_a_swallowed_interrupt_is_raised_not_taken_for_a_failure(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tried = []

    def exporter(name: str, *args: object, **kwargs: object) -> None:
        tried.append(name)
        try:  # what torch's dynamo exporter does with a Ctrl-C during an import
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(1.0)
        except KeyboardInterrupt:
            pass
        raise AttributeError("module 'sympy' has no attribute 'logic'")

    monkeypatch.setattr(onnx_export, "_run_exporter", exporter)
    model = torch.nn.Linear(2, 2)
    with pytest.raises(Interrupted):
        onnx_export.export_onnx(model, (torch.zeros(1, 2),), tmp_path / "m.onnx", 17, ["x"],
                                ["y"], {"y": ["batch", 2]})
    assert tried == ["dynamo"]  # the TorchScript fallback never ran


def test_a_real_failure_still_falls_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = onnx_export._run_exporter
    tried = []

    def exporter(name: str, *args: object, **kwargs: object) -> None:
        tried.append(name)
        if name == "dynamo":
            raise RuntimeError("dynamo cannot trace this")
        real(name, *args, **kwargs)

    monkeypatch.setattr(onnx_export, "_run_exporter", exporter)
    how = onnx_export.export_onnx(torch.nn.Linear(2, 2), (torch.zeros(1, 2),),
                                  tmp_path / "m.onnx", 17, ["x"], ["y"], {"y": ["batch", 2]})
    assert tried == ["dynamo", "torchscript"] and how["exporter"] == "torchscript"
