"""``providers.ort()``: a missing onnxruntime is a ProviderError that says what to install; a
signal that lands while onnxruntime initialises is the interruption, not "not installed"."""

from __future__ import annotations

import signal
import sys
from typing import Any

import pytest

from edgegen.runtime import interrupts, providers
from edgegen.runtime.errors import ProviderError


class _FailingImport:
    """A meta-path finder that fails ``import onnxruntime`` (after a signal, when asked)."""

    def __init__(self, signal_first: bool) -> None:
        self.signal_first = signal_first

    def find_spec(self, name: str, path: Any, target: Any = None) -> None:
        if name == "onnxruntime":
            if self.signal_first:
                interrupts._record(signal.SIGTERM)  # what the handler does when SIGTERM lands
            raise ImportError("initialization failed")


@pytest.fixture
def no_onnxruntime(monkeypatch: pytest.MonkeyPatch) -> Any:
    def install(signal_first: bool) -> None:
        monkeypatch.delitem(sys.modules, "onnxruntime", raising=False)
        monkeypatch.setattr(sys, "meta_path", [_FailingImport(signal_first), *sys.meta_path])
    return install


def test_missing_onnxruntime_says_what_to_install(no_onnxruntime: Any) -> None:
    no_onnxruntime(signal_first=False)
    with pytest.raises(ProviderError, match="pip install onnxruntime.*never both"):
        providers.ort()


def test_a_signal_during_the_import_is_the_interruption(no_onnxruntime: Any) -> None:
    no_onnxruntime(signal_first=True)
    with pytest.raises(interrupts.Interrupted) as info:
        providers.ort()
    assert info.value.exit_code == 128 + signal.SIGTERM


def test_the_real_import_works() -> None:
    assert providers.ort().InferenceSession is not None
