"""The ``openvino`` provider: the OpenVINO runtime reading a bundle's ONNX, behind the part of
ONNX Runtime's ``InferenceSession`` interface that edgegen uses (``run``, ``get_inputs``,
``get_outputs``, ``get_providers``, ``end_profiling``).

This is the one module of ``edgegen.runtime`` that may import a third package besides numpy and
onnxruntime, and it imports ``openvino`` only inside its functions, when provider ``openvino`` is
asked for (``runtime.providers.make_session``); pyproject's import-linter contract and
``tests/test_architecture.py`` name this exception and no other.

Why the OpenVINO runtime and not ONNX Runtime's OpenVINO execution provider: the EP ships as
``onnxruntime-openvino``, which installs the same ``onnxruntime`` module as ``onnxruntime`` (an
environment has one or the other), and on this project's CPUs it adds nothing the runtime does
not do by itself. Settings: f32 inference pinned (``INFERENCE_PRECISION_HINT``; OpenVINO picks
bf16 by itself on AMX/AVX-512-BF16 CPUs, which would break fp32 parity), the LATENCY hint (one
stream: a ``run`` uses every thread, like an ORT session), ``INFERENCE_NUM_THREADS`` from the
spec. The model is compiled with a dynamic batch; batch sizes listed in
``ProviderSpec.static_batches`` also get a static-shape compilation, which OpenVINO's CPU plugin
runs faster (measured: 0.74 vs 1.10 ms at batch 1 for the cdcgan generator, one thread).
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgegen.runtime.errors import ProviderError

NAME = "OpenVINO-CPU"  # what get_providers() reports (not an ONNX Runtime execution provider)
_TYPES = {"f32": "tensor(float)", "f16": "tensor(float16)", "i64": "tensor(int64)",
          "i32": "tensor(int32)", "u8": "tensor(uint8)", "i8": "tensor(int8)",
          "boolean": "tensor(bool)", "f64": "tensor(double)"}


def import_openvino() -> Any:
    """The ``openvino`` module, or a ProviderError saying how to install it."""
    try:
        import openvino
    except ImportError as exc:
        raise ProviderError(f"provider 'openvino' needs the OpenVINO runtime, which is not "
                            f"installed ({exc}): `pip install -e .[openvino]`. edgegen never "
                            "falls back to another provider silently") from exc
    return openvino


def version() -> str:
    return str(import_openvino().get_version())


@dataclass(frozen=True)
class NodeArg:
    """ONNX Runtime's ``NodeArg`` as edgegen reads it: name, shape (None for a dynamic dim),
    type string."""

    name: str
    shape: list[int | None]
    type: str


class OpenVINOSession:
    """One compiled OpenVINO model (plus static-batch compilations) used like an ORT session.
    ``run`` is safe to call from several threads: each thread gets its own infer request."""

    def __init__(self, model: str | Path | bytes, *, threads: int = 0,
                 static_batches: tuple[int, ...] = (), profile_dir: Path | None = None,
                 device: str = "CPU") -> None:
        ov = import_openvino()
        self._core = ov.Core()
        self._source = model if isinstance(model, bytes) else str(model)
        self._config: dict[str, Any] = {"INFERENCE_PRECISION_HINT": "f32",
                                        "PERFORMANCE_HINT": "LATENCY"}
        if threads:
            self._config["INFERENCE_NUM_THREADS"] = int(threads)
        if profile_dir is not None:
            self._config["PERF_COUNT"] = True
        self._device = device
        self._profile_dir = profile_dir
        read = self._core.read_model(self._source)
        self._inputs = [_arg(p) for p in read.inputs]
        self._outputs = [_arg(p) for p in read.outputs]
        self._compiled = {None: self._core.compile_model(read, device, self._config)}
        for b in dict.fromkeys(static_batches):
            self._compiled[int(b)] = self._compile_static(int(b))
        self._local = threading.local()
        self._events: list[dict[str, Any]] = []  # profiled runs' node timings
        self._lock = threading.Lock()
        self._start_us = time.time() * 1e6

    def _compile_static(self, batch: int) -> Any:
        model = self._core.read_model(self._source)
        model.reshape({p.get_any_name(): [batch, *[d.get_length() for d in list(
            p.get_partial_shape())[1:]]] for p in model.inputs})
        return self._core.compile_model(model, self._device, self._config)

    # -- the InferenceSession subset ---------------------------------------------------------
    def get_inputs(self) -> list[NodeArg]:
        return list(self._inputs)

    def get_outputs(self) -> list[NodeArg]:
        return list(self._outputs)

    def get_providers(self) -> list[str]:
        return [NAME]

    def run(self, output_names: list[str] | None, feeds: dict[str, np.ndarray],
            run_options: Any = None) -> list[np.ndarray]:
        batch = int(np.shape(next(iter(feeds.values())))[0]) if feeds else None
        key = batch if batch in self._compiled else None
        request = self._request(key)
        result = request.infer({k: np.ascontiguousarray(v) for k, v in feeds.items()})
        if self._profile_dir is not None:  # counters describe the last run only: keep them now
            events = _node_events(request, self._start_us)
            with self._lock:
                self._events.extend(events)
        # a compiled output may carry aliases (the fp16 graph's output cast): map every name
        by_name = {n: result[p] for p in self._compiled[key].outputs for n in p.get_names()}
        names = output_names or [o.name for o in self._outputs]
        try:
            return [np.asarray(by_name[n]) for n in names]
        except KeyError as exc:
            raise ProviderError(f"openvino: no output named {exc}; the model has "
                                f"{', '.join(by_name)}") from None

    def end_profiling(self) -> str:
        """Write the per-node execution times of every profiled run as ONNX Runtime's profiler
        does (``cat: Node``, ``<node>_kernel_time``, args ``op_name`` and ``provider``) and
        return the file's path."""
        if self._profile_dir is None:
            raise ProviderError("profiling is off: create the session with a profile_dir")
        with self._lock:
            events, self._events = self._events, []
        path = Path(self._profile_dir) / f"openvino_profile_{id(self)}.json"
        path.write_text(json.dumps(events))
        return str(path)

    def _request(self, key: int | None) -> Any:
        requests = getattr(self._local, "requests", None)
        if requests is None:
            requests = self._local.requests = {}
        request = requests.get(key)
        if request is None:
            request = requests[key] = self._compiled[key].create_infer_request()
        return request


def _node_events(request: Any, ts: float) -> list[dict[str, Any]]:
    """The executed nodes of the request's last run, as ONNX Runtime's profiler lists them."""
    return [{"cat": "Node", "name": f"{info.node_name}_kernel_time", "ts": ts,
             "dur": info.real_time.total_seconds() * 1e6,
             "args": {"op_name": info.node_type, "provider": NAME,
                      "exec_type": info.exec_type}}
            for info in request.profiling_info if info.status.name == "EXECUTED"]


def _arg(port: Any) -> NodeArg:
    shape = [d.get_length() if d.is_static else None for d in port.get_partial_shape()]
    et = port.get_element_type().get_type_name()
    return NodeArg(port.get_any_name(), shape, _TYPES.get(et, f"tensor({et})"))
