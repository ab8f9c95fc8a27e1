"""ONNX export, precision variants, golden data and parity checks (``edgegen.export``)."""

from __future__ import annotations

__all__ = ["ExportConfig", "ExportResult", "export_bundle"]


def __getattr__(name: str):  # lazy: importing the package must not import torch or onnx
    if name in __all__:
        from edgegen.export import bundler

        return getattr(bundler, name)
    raise AttributeError(name)
