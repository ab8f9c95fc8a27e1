"""ONNX Runtime sessions on a named execution provider, and never a silent fallback.

``make_session(path, ProviderSpec("cuda"))`` raises ``ProviderError`` naming what is available
when the provider is not, and checks after creation that the session really runs on it.
Options follow ONNX Runtime's documented provider options:

* CUDA: ``device_id``, ``use_tf32`` (on by default in ONNX Runtime; edgegen turns it off unless
  asked, so fp32 parity holds), ``enable_cuda_graph``;
* TensorRT: ``trt_fp16_enable``, ``trt_engine_cache_enable`` / ``trt_engine_cache_path``,
  ``trt_timing_cache_enable`` / ``trt_timing_cache_path``, explicit
  ``trt_profile_min_shapes`` / ``trt_profile_opt_shapes`` / ``trt_profile_max_shapes`` for the
  dynamic batch, with CUDA registered after TensorRT for the nodes TensorRT does not take.
* TensorRT-RTX (``tensorrt-rtx``): a *plugin* execution provider (``runtime/plugin_ep.py``
  finds, registers and picks its device through ONNX Runtime's plugin-EP API), added with
  ``SessionOptions.add_provider_for_devices``: ``nv_profile_min_shapes`` / ``opt`` / ``max``
  for the dynamic batch, ``enable_cuda_graph``, and ``nv_runtime_cache_path`` under
  ``<trt_cache_dir>/<EP version and GPU ids>`` (the kernels it compiles for this GPU, per bundle
  and machine). TensorRT-RTX builds strongly typed networks: the fp16 variant runs the fp16
  graph (there is no fp16 builder flag as in TensorRT). Other nodes go to the CPU provider,
  which the placement check of ``edgegen verify`` reports.

* OpenVINO (``openvino``): not an ONNX Runtime execution provider but the OpenVINO runtime
  reading the same ONNX file, behind an adapter with the subset of ``InferenceSession`` that
  edgegen uses (``runtime/ov_session.py``, the one runtime module allowed to import
  ``openvino``, lazily: only when this provider is asked for). Same contract: an error when it
  is not installed, never a fallback.

Imports numpy and onnxruntime only (the torch-free runtime uses it).
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from edgegen.runtime import interrupts, plugin_ep
from edgegen.runtime.errors import ProviderError

EP_NAMES = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
    "tensorrt-rtx": plugin_ep.PLUGINS["tensorrt-rtx"].ep,  # NvTensorRTRTXExecutionProvider
    "openvino": "OpenVINO-CPU",  # the OpenVINO runtime's CPU plugin (runtime/ov_session.py)
}
NOT_ORT = ("openvino",)  # providers served by another runtime behind an ORT-like session
PLUGINS = tuple(plugin_ep.PLUGINS)  # plugin execution providers (registered, not built in)
GPU_PROVIDERS = ("cuda", "tensorrt", "tensorrt-rtx")  # inputs and outputs on an NVIDIA GPU
TRT_PROVIDERS = ("tensorrt", "tensorrt-rtx")  # engines with a batch profile and a cache


@dataclass(frozen=True)
class ProviderSpec:
    name: str = "cpu"  # cpu | cuda | tensorrt | tensorrt-rtx | openvino
    device_id: int = 0
    use_tf32: bool = False  # CUDA / TensorRT: TF32 matmuls break fp32 parity
    cuda_graph: bool = False
    trt_fp16: bool = False
    trt_int8: bool = False  # TensorRT: int8 kernels for a QDQ (explicitly quantized) graph
    trt_cache_dir: Path | None = None  # engine + timing caches (TensorRT-RTX: its runtime
    #                                    cache, in a subfolder per EP version and GPU); None: none
    trt_batch_range: tuple[int, int, int] = (1, 64, 512)  # min / opt / max profile batch
    intra_op_threads: int = 0  # 0: ONNX Runtime's default
    inter_op_threads: int = 0
    spinning: bool | None = None  # None: ONNX Runtime's default (spin-wait on)
    graph_optimization: str = "all"  # all | extended | basic | disabled
    profile_dir: Path | None = None  # when set, ONNX Runtime profiling is on
    # Bitwise repeatable GPU runs: cuDNN's fixed default convolution algorithm
    # (cudnn_conv_algo_search=DEFAULT) instead of the fastest autotuned one, which on an H200
    # gave runs differing by ~5e-7 for the fp32 generator, plus use_deterministic_compute.
    deterministic: bool = False
    # ONNX Runtime exactly as a user runs it first: ``InferenceSession(path, providers=[EP])``,
    # default session options and provider options (the ``ort-default`` benchmark peer). The
    # provider is still checked: a plain session never falls back silently either.
    plain: bool = False
    # OpenVINO: batch sizes that also get a static-shape compilation (its CPU plugin runs
    # static shapes faster); other batch sizes use the dynamic-batch compilation.
    static_batches: tuple[int, ...] = ()
    # More provider options, passed as given after edgegen's own (CUDA: e.g. prefer_nhwc=1 or
    # cudnn_conv_algo_search=HEURISTIC; TensorRT / TensorRT-RTX: any of theirs), for
    # experiments such as benchmarks/scripts/gpu_profile.py; () for edgegen's defaults.
    provider_options: tuple[tuple[str, str], ...] = ()

    @property
    def ep(self) -> str:
        try:
            return EP_NAMES[self.name]
        except KeyError:
            raise ProviderError(f"unknown provider {self.name!r}; expected one of "
                                f"{', '.join(EP_NAMES)}") from None


def ort() -> Any:
    """Import onnxruntime with a clear error when it is missing. A SIGINT/SIGTERM that lands
    while its C extension initialises comes out of the import as an ImportError: that one is
    re-raised as the interruption it was."""
    mark = interrupts.count()
    try:
        import onnxruntime
    except ImportError as exc:
        interrupts.raise_if_received_since(mark)
        raise ProviderError("onnxruntime is not installed: `pip install onnxruntime` (or "
                            "onnxruntime-gpu on a CUDA machine — never both: they are the same "
                            "module)") from exc
    return onnxruntime


def available() -> list[str]:
    """ONNX Runtime's execution providers, and OpenVINO's name when the package is present
    (found without importing it; ``require_providers`` imports it when it is asked for)."""
    import importlib.util

    have = list(ort().get_available_providers()) + plugin_ep.registered_eps()
    try:
        if importlib.util.find_spec("openvino") is not None:
            have.append(EP_NAMES["openvino"])
    except (ImportError, ValueError):  # a broken or blocked install
        pass
    return have


_INSTALL_HINT = {
    "cuda": "install onnxruntime-gpu (`pip install -e .[gpu]`, never together with onnxruntime) "
            "on a machine with an NVIDIA GPU",
    "tensorrt": "install TensorRT and an onnxruntime-gpu build with TensorRT support "
                "(`pip install -e .[gpu]`)",
    "openvino": "install the OpenVINO runtime (`pip install -e .[openvino]`)",
    "tensorrt-rtx": f"install {plugin_ep.PLUGINS['tensorrt-rtx'].package} beside onnxruntime "
                    ">= 1.24, on a machine with an NVIDIA GPU it accepts",
}


def require_providers(names: tuple[str, ...] | list[str]) -> list[str]:
    """Refuse, before any work, a provider name that is unknown or that this onnxruntime does not
    have — never a silent CPU fallback. Returns the available execution providers."""
    have = available()
    for name in names:
        ep = ProviderSpec(name=name).ep  # a ProviderError for an unknown name
        if name == "openvino":
            from edgegen.runtime.ov_session import import_openvino

            import_openvino()  # a ProviderError with the install hint when it does not import
            continue
        if name in PLUGINS:  # package, ORT API, driver and a device: each refused by name
            plugin_ep.device_for(ort(), name)
            continue
        if ep not in have:
            hint = _INSTALL_HINT.get(name, "")
            raise ProviderError(f"provider {name!r} ({ep}) is not available in this onnxruntime "
                                f"{ort().__version__}; available: {', '.join(have)}. "
                                f"{hint + '. ' if hint else ''}edgegen never falls back to "
                                "another provider silently")
    return have


def spec_for(provider: str, precision: str, *, batch_range: tuple[int, int, int] = (1, 64, 512),
             trt_cache_dir: Path | None = None, **options: Any) -> ProviderSpec:
    """edgegen's session settings for a model of ``precision`` on ``provider``: TF32 off (fp32
    parity); TensorRT builds fp16 kernels for the fp16 variant and int8 ones for the QDQ int8
    variant, with one min/opt/max profile over ``batch_range`` and engine caches in
    ``trt_cache_dir``; TensorRT-RTX takes the same profile and cache folder, and its precision
    from the graph it is given (strongly typed: no fp16/int8 flags). ``options`` are any other
    ``ProviderSpec`` fields (threads, spinning...)."""
    trt = provider == "tensorrt"
    return ProviderSpec(name=provider, use_tf32=False, trt_fp16=trt and precision == "fp16",
                        trt_int8=trt and precision == "int8",
                        trt_cache_dir=trt_cache_dir if provider in TRT_PROVIDERS else None,
                        trt_batch_range=batch_range, **options)


def _preload_cuda_libraries() -> None:
    """onnxruntime-gpu >= 1.21 can load the CUDA/cuDNN libraries that pip (or torch) brought."""
    preload = getattr(ort(), "preload_dlls", None)
    if preload is not None:
        with contextlib.suppress(Exception):  # best effort: session creation reports failures
            preload()


def _input_shapes(session_or_model: Any, batch: int) -> str:
    """``z:Bx100,label:B`` for TensorRT's profile options."""
    parts = []
    for inp in session_or_model:
        dims = [str(batch) if not isinstance(d, int) else str(d) for d in inp.shape]
        parts.append(f"{inp.name}:{'x'.join(dims)}")
    return ",".join(parts)


def provider_list(spec: ProviderSpec, model: str | bytes) -> list[Any]:
    """The ``providers=`` argument for ``InferenceSession``."""
    if spec.name == "cpu":
        return ["CPUExecutionProvider"]
    cuda_opts = {"device_id": str(spec.device_id), "use_tf32": "1" if spec.use_tf32 else "0"}
    if spec.cuda_graph:
        cuda_opts["enable_cuda_graph"] = "1"
    if spec.deterministic:
        cuda_opts["cudnn_conv_algo_search"] = "DEFAULT"
    extra = dict(spec.provider_options)
    if spec.name == "cuda":
        cuda_opts.update(extra)
        return [("CUDAExecutionProvider", cuda_opts), "CPUExecutionProvider"]
    # TensorRT: explicit profiles covering the dynamic batch, caches, CUDA for the rest.
    probe = ort().InferenceSession(model, providers=["CPUExecutionProvider"])
    lo, opt, hi = spec.trt_batch_range
    trt = {
        "device_id": str(spec.device_id),
        "trt_fp16_enable": "1" if spec.trt_fp16 else "0",
        **({"trt_int8_enable": "1"} if spec.trt_int8 else {}),
        "trt_profile_min_shapes": _input_shapes(probe.get_inputs(), lo),
        "trt_profile_opt_shapes": _input_shapes(probe.get_inputs(), opt),
        "trt_profile_max_shapes": _input_shapes(probe.get_inputs(), hi),
    }
    if spec.trt_cache_dir is not None:
        Path(spec.trt_cache_dir).mkdir(parents=True, exist_ok=True)
        trt.update({"trt_engine_cache_enable": "1",
                    "trt_engine_cache_path": str(spec.trt_cache_dir),
                    "trt_timing_cache_enable": "1",
                    "trt_timing_cache_path": str(spec.trt_cache_dir)})
    if spec.cuda_graph:
        trt["trt_cuda_graph_enable"] = "1"
    trt.update(extra)
    return [("TensorrtExecutionProvider", trt), ("CUDAExecutionProvider", cuda_opts),
            "CPUExecutionProvider"]


ORT_FORMAT_ID = b"ORTM"  # the flatbuffer file identifier of an ORT-format model (bytes 4..8)


def is_ort_format(model: str | Path | bytes) -> bool:
    """Whether ``model`` (bytes, or a path by its suffix) is an ORT-format model (``.ort``)."""
    if isinstance(model, bytes):
        return model[4:8] == ORT_FORMAT_ID
    return Path(model).suffix.lower() == ".ort"


def plugin_options(spec: ProviderSpec, model: str | bytes, device: Any) -> dict[str, str]:
    """TensorRT-RTX's provider options (``add_provider_for_devices``): one profile over the
    dynamic batch, CUDA graphs when asked, its runtime cache per bundle and machine."""
    probe = ort().InferenceSession(model, providers=["CPUExecutionProvider"])
    lo, opt, hi = spec.trt_batch_range
    opts = {"nv_profile_min_shapes": _input_shapes(probe.get_inputs(), lo),
            "nv_profile_opt_shapes": _input_shapes(probe.get_inputs(), opt),
            "nv_profile_max_shapes": _input_shapes(probe.get_inputs(), hi)}
    if spec.cuda_graph:
        opts["enable_cuda_graph"] = "1"
    if spec.trt_cache_dir is not None:
        cache = Path(spec.trt_cache_dir) / plugin_ep.cache_key(device)
        cache.mkdir(parents=True, exist_ok=True)
        opts["nv_runtime_cache_path"] = str(cache)
    opts.update(dict(spec.provider_options))
    return opts


def _plugin_session(source: str | bytes, spec: ProviderSpec) -> Any:
    """A session on a plugin EP: its device from ``get_ep_devices`` (``plugin_ep``), added with
    the plugin-EP API; ``plain``: default session and provider options."""
    rt = ort()
    device = plugin_ep.device_for(rt, spec.name, spec.device_id)
    so = rt.SessionOptions() if spec.plain else session_options(spec, source)
    so.add_provider_for_devices([device], {} if spec.plain
                                else plugin_options(spec, source, device))
    return rt.InferenceSession(source, sess_options=so)


def session_options(spec: ProviderSpec, model: str | Path | bytes | None = None) -> Any:
    """ONNX Runtime's session options for ``spec``. An ORT-format ``model`` (``.ort``, written
    by ``edgegen export --ort-format`` in the Runtime optimization style) gets its saved runtime
    optimizations replayed (``session.enable_saved_runtime_optimizations``; ONNX Runtime leaves
    them off by default, for untrusted models): a bundle's ``.ort`` bytes are the ones its
    manifest lists by sha256 (and its signature covers, when checked), so it runs the fusions
    export measured rather than the unfused graph."""
    rt = ort()
    so = rt.SessionOptions()
    so.intra_op_num_threads = spec.intra_op_threads
    so.inter_op_num_threads = spec.inter_op_threads
    levels = {"all": rt.GraphOptimizationLevel.ORT_ENABLE_ALL,
              "extended": rt.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
              "basic": rt.GraphOptimizationLevel.ORT_ENABLE_BASIC,
              "disabled": rt.GraphOptimizationLevel.ORT_DISABLE_ALL}
    so.graph_optimization_level = levels[spec.graph_optimization]
    if spec.spinning is not None:
        flag = "1" if spec.spinning else "0"
        so.add_session_config_entry("session.intra_op.allow_spinning", flag)
        so.add_session_config_entry("session.inter_op.allow_spinning", flag)
    if spec.profile_dir is not None:
        so.enable_profiling = True
        so.profile_file_prefix = str(Path(spec.profile_dir) / "ort_profile")
    if spec.deterministic:
        so.use_deterministic_compute = True
    so.log_severity_level = 3  # errors only: warnings about fallbacks are checked below
    if model is not None and is_ort_format(model):
        so.add_session_config_entry("session.enable_saved_runtime_optimizations", "1")
    return so


def arena_shrinking(spec: ProviderSpec) -> Any | None:
    """``RunOptions`` that hand the session's CPU memory arena back when each run ends
    (``memory.enable_memory_arena_shrinkage``), or None for OpenVINO (no arena, no RunOptions).

    An arena keeps a session's largest run for reuse, so a process holding several sessions of
    a large graph holds all their peaks at once: eval's variants of the demo's unrolled cflow at
    batch 500 kept ~0.6 GB each. Shrinking costs one re-allocation per run (measured ~2% at
    batch 500), where turning the arena off re-allocates every tensor (2-3x slower)."""
    if spec.name == "openvino":
        return None
    options = ort().RunOptions()
    options.add_run_config_entry("memory.enable_memory_arena_shrinkage", "cpu:0")
    return options


def make_session(model: str | Path | bytes, spec: ProviderSpec | None = None, *,
                 name: str | None = None) -> Any:
    """An ``InferenceSession`` on ``spec``'s provider, or a ``ProviderError``. ``model`` is the
    model's bytes as ``Bundle.read`` returns them after checking their sha256 (every bundle
    model is loaded this way: what was checked is what runs), or a path for files that are not
    part of a bundle; ``name`` says which file the bytes came from, for messages."""
    spec = spec or ProviderSpec()
    ep = spec.ep
    rt = ort()
    require_providers([spec.name])
    if spec.name == "openvino":
        if is_ort_format(model):
            raise ProviderError(f"{name or 'the model'} is an ORT-format model; the OpenVINO "
                                "runtime reads ONNX only — load the bundle's .onnx files on "
                                "openvino, or its .ort files on cpu or cuda")
        return _openvino_session(model, spec)
    if spec.name in ("cuda", "tensorrt"):
        _preload_cuda_libraries()
    where = name or ("<bytes>" if isinstance(model, bytes) else str(model))
    source = model if isinstance(model, bytes) else str(model)
    try:
        if spec.name in PLUGINS:
            session = _plugin_session(source, spec)
        elif spec.plain:
            providers = [ep] if spec.name == "cpu" else [ep, "CPUExecutionProvider"]
            session = rt.InferenceSession(source, providers=providers)
        else:
            session = rt.InferenceSession(source, sess_options=session_options(spec, source),
                                          providers=provider_list(spec, source))
    except ProviderError:
        raise
    except Exception as exc:  # noqa: BLE001 - ORT raises its own exception types
        raise ProviderError(f"onnxruntime could not create a {spec.name} session for "
                            f"{where}: {str(exc).splitlines()[0][:300]}") from exc
    used = session.get_providers()
    if not used or used[0] != ep:
        raise ProviderError(f"asked for {ep} but onnxruntime registered {used} for "
                            f"{where}: the provider failed to initialise (check the "
                            "CUDA/cuDNN/TensorRT libraries); refusing a silent CPU run")
    return session


def _openvino_session(model: str | Path | bytes, spec: ProviderSpec) -> Any:
    from edgegen.runtime.ov_session import OpenVINOSession

    where = "<bytes>" if isinstance(model, bytes) else str(model)
    try:
        return OpenVINOSession(model, threads=0 if spec.plain else spec.intra_op_threads,
                               static_batches=spec.static_batches,
                               profile_dir=spec.profile_dir)
    except ProviderError:
        raise
    except Exception as exc:  # noqa: BLE001 - OpenVINO raises RuntimeError and others
        raise ProviderError(f"openvino could not compile {where}: "
                            f"{str(exc).splitlines()[0][:300]}") from exc


def profile_events(model: str | Path | bytes, spec: ProviderSpec,
                   feeds: dict[str, Any], runs: int = 1) -> list[dict[str, Any]]:
    """ONNX Runtime's own profile of ``runs`` runs of ``feeds``: its list of trace events."""
    with tempfile.TemporaryDirectory() as tmp:
        session = make_session(model, replace(spec, profile_dir=Path(tmp), cuda_graph=False,
                                              plain=False))
        for _ in range(runs):
            session.run(None, feeds)
        path = session.end_profiling()
        events = json.loads(Path(path).read_text())
        os.unlink(path)
    return events


def kernel_times(events: list[dict[str, Any]]) -> list[tuple[str, str, str, float]]:
    """(node name, op type, provider, microseconds) of every node kernel in a profile."""
    out = []
    for ev in events:
        args = ev.get("args", {})
        name = ev.get("name", "")
        if ev.get("cat") == "Node" and name.endswith("_kernel_time"):
            out.append((name[: -len("_kernel_time")], args.get("op_name", "?"),
                        args.get("provider", "?"), float(ev.get("dur", 0.0))))
    return out


def node_placement(model: str | Path | bytes, spec: ProviderSpec, feeds: dict[str, Any]
                   ) -> dict[str, Any]:
    """Which provider ran which node, read from one profiled run of ``feeds``."""
    nodes = {name: {"op": op, "provider": provider}
             for name, op, provider, _ in kernel_times(profile_events(model, spec, feeds))}
    counts: dict[str, int] = {}
    for n in nodes.values():
        counts[n["provider"]] = counts.get(n["provider"], 0) + 1
    providers = [spec.ep] if spec.name in ("cpu", *NOT_ORT) else [spec.ep,
                                                                 "CPUExecutionProvider"]
    return {"providers": providers, "node_counts": counts, "nodes": nodes}
