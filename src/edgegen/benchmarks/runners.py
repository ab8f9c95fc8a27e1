"""The contenders: ONNX Runtime the edgegen way, and what a user would otherwise run.

Each factory builds one contender for one batch size and returns a ``Contender`` whose ``call``
runs one inference to completion (on a GPU: synchronized), with the session creation (model
load, graph optimization, engine build setup) and the first call (lazy initialization, CUDA
graph capture, TensorRT engine build, torch.compile) timed separately from the timed region.

* ``ort_edgegen``: ``edgegen.runtime.providers.make_session`` — the requested provider and no silent
  fallback; on CUDA/TensorRT optionally I/O binding (inputs and output preallocated on the
  device as ``OrtValue``s) and CUDA graph capture, which ONNX Runtime allows only with fixed
  shapes and bound device buffers: hence one session per batch size.
* ``ort_default``: ``InferenceSession(path, providers=[EP])`` with default session options
  (``make_session`` with ``ProviderSpec(plain=True)``: still never a silent fallback).
* ``torch_peer``: the generator from the checkpoint, eager (or ``torch.compile``d), with
  ``torch.set_num_threads`` equal to ONNX Runtime's intra-op threads; on CUDA when the provider
  is, synchronized after each call.
* ``openvino_peer``: OpenVINO on CPU with the same thread count, a static-shape compilation for
  the group's batch, f32 precision — through the ``openvino`` provider's adapter
  (``edgegen.runtime.ov_session``), the same code ``--provider openvino`` runs.
* ``ort-plain`` / ``openvino-plain``: ONNX Runtime (default options) and OpenVINO on the
  bundle's checkpoint exported again *without* edgegen's graph rewrites (``plain_export``): what
  the export gave before it optimized, the baseline the rewrites are judged against.

The offline scenario times ``Contender.call`` (the whole batch); the server scenario calls
``Contender.infer(k)`` (the first ``k`` rows, ``k`` up to the batch the contender was built for).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from edgegen.benchmarks.results import BenchConfig
from edgegen.core.errors import EdgegenError
from edgegen.runtime.bundle import Bundle
from edgegen.runtime.latent import latent
from edgegen.runtime.providers import (
    GPU_PROVIDERS,
    NOT_ORT,
    TRT_PROVIDERS,
    ProviderSpec,
    make_session,
    ort,
    spec_for,
)
from edgegen.training.checkpoint import bundle_checkpoint, load_reference


class PeerUnavailable(EdgegenError):
    """A peer that cannot run here (not installed, no checkpoint): reported, not fatal."""


Infer = Callable[[int], object]  # runs the first k rows of the contender's inputs


@dataclass
class Contender:
    key: str  # unique within a run: kind/variant/provider[/config]
    kind: str  # edgegen | tuned | ort-default | torch | torch-compile | openvino
    variant: str
    provider: str
    batch: int
    infer: Infer | None  # None: fixed shapes only (I/O binding, OpenVINO's static reshape)
    session_create_s: float
    first_run_s: float = 0.0
    settings: dict[str, Any] = field(default_factory=dict)
    call: Callable[[], object] | None = None  # the timed call; None: ``infer(batch)``

    def __post_init__(self) -> None:
        if self.call is None:
            if self.infer is None:
                raise ValueError(f"{self.key}: a contender needs infer or call")
            infer, batch = self.infer, self.batch
            self.call = lambda: infer(batch)

    def first_run(self) -> None:
        assert self.call is not None
        t0 = time.perf_counter_ns()
        self.call()
        self.first_run_s = (time.perf_counter_ns() - t0) / 1e9


@dataclass(frozen=True)
class Inputs:
    """The same inputs for every contender: portable latents and cycling labels."""

    z: np.ndarray  # float32 [batch, z_dim]
    label: np.ndarray  # int64 [batch]

    @property
    def batch(self) -> int:
        return int(self.label.shape[0])

    @classmethod
    def make(cls, seed: int, batch: int, z_dim: int, n_classes: int) -> Inputs:
        return cls(latent(seed, batch, z_dim),
                   (np.arange(batch) % n_classes).astype(np.int64))


def session_spec(cfg: BenchConfig, bundle: Bundle, threads: int, variant: str) -> ProviderSpec:
    """edgegen's session settings for ``variant`` on ``cfg.provider``: one TensorRT profile over
    the batch sweep, tuned for its largest batch (offline), engine caches beside the bundle."""
    b = sorted(cfg.batches)
    return spec_for(cfg.provider, bundle.variants[variant].get("precision", variant),
                    batch_range=(b[0], b[-1], b[-1]),
                    trt_cache_dir=cfg.trt_cache_dir or Path(cfg.bundle) / "trt_cache",
                    device_id=cfg.device_id, cuda_graph=cfg.cuda_graph,
                    intra_op_threads=threads, spinning=cfg.spinning)


def _session_infer(session: Any, inputs: Inputs) -> Infer:
    z_name, label_name = (i.name for i in session.get_inputs())

    def infer(k: int) -> object:
        return session.run(None, {z_name: inputs.z[:k], label_name: inputs.label[:k]})

    return infer


def ort_settings(spec: ProviderSpec, io_binding: bool) -> dict[str, Any]:
    s: dict[str, Any] = {
        "intra_op_threads": spec.intra_op_threads or "ORT default",
        "inter_op_threads": spec.inter_op_threads or "ORT default",
        "spinning": ("ORT default (on)" if spec.spinning is None
                     else "on" if spec.spinning else "off"),
        "graph_optimization": spec.graph_optimization, "io_binding": io_binding,
    }
    if spec.name in GPU_PROVIDERS:
        s.update(use_tf32=spec.use_tf32, cuda_graph=spec.cuda_graph)
    if spec.name in TRT_PROVIDERS:
        s.update(trt_fp16=spec.trt_fp16, trt_profile_min_opt_max=list(spec.trt_batch_range),
                 trt_cache_dir=str(spec.trt_cache_dir) if spec.trt_cache_dir else None)
    return s


def ort_edgegen(model: Path | bytes, spec: ProviderSpec, inputs: Inputs, *, variant: str,
                io_binding: bool, kind: str = "edgegen", key: str | None = None) -> Contender:
    """``model``: a bundle model's checked bytes (``Bundle.model_bytes``) or a path."""
    t0 = time.perf_counter_ns()
    session = make_session(model, spec)
    create_s = (time.perf_counter_ns() - t0) / 1e9
    bound = _bound_call(session, spec, inputs) if io_binding else None
    return Contender(key=key or f"{kind}/{variant}/{spec.name}", kind=kind, variant=variant,
                     provider=spec.name, batch=inputs.batch,
                     infer=None if bound else _session_infer(session, inputs), call=bound,
                     session_create_s=create_s, settings=ort_settings(spec, io_binding))


def _bound_call(session: Any, spec: ProviderSpec, inputs: Inputs) -> Callable[[], object]:
    """Run with I/O binding: inputs copied once to the device, the output preallocated there,
    so the timed call moves no data between host and device (and CUDA graphs can replay)."""
    rt = ort()
    device = "cpu" if spec.name == "cpu" else "cuda"
    dev_id = 0 if device == "cpu" else spec.device_id
    binding = session.io_binding()
    keep = []
    for inp, arr in zip(session.get_inputs(), (inputs.z, inputs.label)):
        v = rt.OrtValue.ortvalue_from_numpy(np.ascontiguousarray(arr), device, dev_id)
        binding.bind_ortvalue_input(inp.name, v)
        keep.append(v)
    out = session.get_outputs()[0]
    shape = [inputs.batch if not isinstance(d, int) else d for d in out.shape]
    ov = rt.OrtValue.ortvalue_from_shape_and_type(shape, np.float32, device, dev_id)
    binding.bind_ortvalue_output(out.name, ov)
    keep.append(ov)

    def call() -> object:
        session.run_with_iobinding(binding)
        binding.synchronize_outputs()
        return keep  # the bound buffers live as long as the call

    return call


def ort_default(model: Path | bytes, provider: str, inputs: Inputs, *, variant: str = "fp32",
                kind: str = "ort-default") -> Contender:
    """ONNX Runtime as a user runs it first: default session options, the provider's defaults
    (on CPU when edgegen's provider is not an ONNX Runtime one, i.e. OpenVINO)."""
    provider = "cpu" if provider in NOT_ORT else provider
    t0 = time.perf_counter_ns()
    session = make_session(model, ProviderSpec(name=provider, plain=True))
    create_s = (time.perf_counter_ns() - t0) / 1e9
    return Contender(key=f"{kind}/{variant}/{provider}", kind=kind,
                     variant=variant, provider=provider, batch=inputs.batch,
                     infer=_session_infer(session, inputs), session_create_s=create_s,
                     settings={"session_options": "defaults",
                               "providers": session.get_providers()})


def torch_peer(bundle: Bundle, inputs: Inputs, *, device: str, threads: int,
               compile_: bool = False) -> Contender:
    """PyTorch from the training checkpoint (BatchNorm not folded: what a user would run)."""
    checkpoint, why = bundle_checkpoint(bundle)
    if checkpoint is None:
        raise PeerUnavailable(f"the PyTorch peer needs the bundle's checkpoint: {why}")
    import torch

    if device == "cuda" and not torch.cuda.is_available():
        raise PeerUnavailable("PyTorch here has no CUDA device for the CUDA peer")
    torch.set_num_threads(threads)
    t0 = time.perf_counter_ns()
    gen, _ = load_reference(bundle, checkpoint)
    gen = gen.to(device)
    fn = torch.compile(gen) if compile_ else gen
    z = torch.from_numpy(inputs.z).to(device)
    y = torch.from_numpy(inputs.label).to(device)
    if device == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False  # fp32 proper, as ORT with use_tf32=0
        torch.backends.cudnn.allow_tf32 = False
        torch.cuda.synchronize()
    create_s = (time.perf_counter_ns() - t0) / 1e9
    sync = torch.cuda.synchronize if device == "cuda" else None

    def infer(k: int) -> object:
        with torch.inference_mode():  # thread-local: entered in the calling thread
            out = fn(z[:k], y[:k])
        if sync is not None:
            sync()
        return out

    kind = "torch-compile" if compile_ else "torch"
    return Contender(key=f"{kind}/fp32/{device}", kind=kind, variant="fp32",
                     provider=f"torch-{device}", batch=inputs.batch, infer=infer,
                     session_create_s=create_s,
                     settings={"torch_threads": torch.get_num_threads(), "device": device,
                               "mode": "torch.compile" if compile_ else "eager",
                               "inference_mode": True})


def openvino_available() -> str | None:
    """None when OpenVINO can be imported, else why not."""
    from edgegen.core.errors import ProviderError
    from edgegen.runtime.ov_session import import_openvino

    try:
        import_openvino()
    except ProviderError:
        return "not installed (`pip install -e .[openvino]`)"
    return None


def openvino_peer(model: Path | bytes, inputs: Inputs, *, threads: int, variant: str = "fp32",
                  kind: str = "openvino", name: str = "model.onnx") -> Contender:
    """OpenVINO on CPU through the ``openvino`` provider's adapter: f32 pinned (on CPUs with AMX
    or AVX-512 BF16 it would otherwise pick bf16 by itself, and the comparison would no longer
    be at equal precision), the LATENCY hint, a static-shape compilation for this batch."""
    why = openvino_available()
    if why:
        raise PeerUnavailable(f"openvino is {why}")
    from edgegen.runtime.ov_session import version

    t0 = time.perf_counter_ns()
    session = make_session(model, ProviderSpec("openvino", intra_op_threads=threads,
                                              static_batches=(inputs.batch,)))
    create_s = (time.perf_counter_ns() - t0) / 1e9
    return Contender(key=f"{kind}/{variant}/cpu", kind=kind, variant=variant,
                     provider="openvino-cpu", batch=inputs.batch,
                     infer=_session_infer(session, inputs), session_create_s=create_s,
                     settings={"threads": threads, "precision": "f32",
                               "performance_hint": "LATENCY", "shapes": "static for this batch",
                               "version": version(),
                               "model": model.name if isinstance(model, Path) else name})


def plain_export(bundle: Bundle, folder: Path) -> Path:
    """``model.onnx`` of the bundle's checkpoint exported again into ``folder`` with
    ``--no-optimize`` (fp32, same opset): the graph as the exporter wrote it, before edgegen's
    rewrites — the baseline of the ``*-plain`` peers. Needs the checkpoint, like the torch
    peer."""
    checkpoint, why = bundle_checkpoint(bundle)
    if checkpoint is None:
        raise PeerUnavailable(f"the plain peers need the bundle's checkpoint: {why}")
    from edgegen.export.bundler import ExportConfig, export_bundle
    from edgegen.export.optimize import OptimizeConfig

    out = folder / "plain"
    if not (out / "model.onnx").is_file():
        export_bundle(ExportConfig(checkpoint=checkpoint, out=out,
                                   opset=int(bundle.manifest["generator"]["opset"]),
                                   precisions=("fp32",), golden_sets=1, calibration_samples=10,
                                   deviation_samples=10, optimize=OptimizeConfig(enabled=False),
                                   force=True))
    return out / "model.onnx"


Builder = tuple[str, str, Callable[[], Contender]]  # key, kind, factory


def builders(cfg: BenchConfig, bundle: Bundle, variants: list[str], peers: list[str],
             threads: int, inputs: Inputs, *, server: bool = False,
             plain: Callable[[], Path] | None = None) -> list[Builder]:
    """(key, kind, factory) of every contender, in the order they are timed. ``server``: for
    the server scenario (variable batch: no I/O binding or CUDA graphs, no tuned configs).
    ``plain``: where the ``*-plain`` peers get the unrewritten export (``plain_export``)."""
    out: list[Builder] = []
    for v in variants:
        spec = session_spec(cfg, bundle, threads, v)
        if server:
            spec = replace(spec, cuda_graph=False)
        elif cfg.provider == "openvino":  # OpenVINO runs a static shape faster
            spec = replace(spec, static_batches=(inputs.batch,))
        out.append((f"edgegen/{v}/{cfg.provider}", "edgegen",
                    lambda v=v, spec=spec: ort_edgegen(bundle.model_bytes(v, cfg.provider),
                                                       spec, inputs, variant=v,
                                                       io_binding=cfg.io_binding and not server)))
    if cfg.tune and cfg.provider == "cpu" and not server:
        for t in sorted({1, threads}):
            for spin in (True, False):
                key = f"tuned/fp32/cpu/{t}t-spin-{'on' if spin else 'off'}"
                spec = ProviderSpec(intra_op_threads=t, spinning=spin)
                out.append((key, "tuned",
                            lambda spec=spec, key=key: ort_edgegen(
                                bundle.model_bytes("fp32"), spec, inputs, variant="fp32",
                                io_binding=False, kind="tuned", key=key)))
    fp32 = bundle.model_bytes("fp32")  # checked against the manifest, read once
    device = "cuda" if cfg.provider in GPU_PROVIDERS else "cpu"
    for p in peers:
        if p in ("torch", "torch-compile"):
            out.append((f"{p}/fp32/{device}", p,
                        lambda p=p: torch_peer(bundle, inputs, device=device,
                                               threads=threads, compile_=p == "torch-compile")))
        elif p == "ort-default":
            out.append((f"ort-default/fp32/{cfg.provider}", p,
                        lambda: ort_default(fp32, cfg.provider, inputs)))
        elif p == "openvino":
            out.append(("openvino/fp32/cpu", p,
                        lambda: openvino_peer(fp32, inputs, threads=threads)))
        elif p in ("ort-plain", "openvino-plain"):
            if plain is None:
                continue
            if p == "ort-plain":
                out.append((f"ort-plain/fp32/{cfg.provider}", p,
                            lambda: ort_default(plain(), cfg.provider, inputs,
                                                kind="ort-plain")))
            else:
                out.append(("openvino-plain/fp32/cpu", p,
                            lambda: openvino_peer(plain(), inputs, threads=threads,
                                                  kind="openvino-plain")))
    return out
