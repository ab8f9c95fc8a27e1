"""Plugin execution providers: libraries that register into the ordinary ``onnxruntime`` package
through ONNX Runtime's plugin-EP ABI (ORT >= 1.23), found, registered and their device chosen
here — or a ``ProviderError`` that names exactly what is missing, never a fallback.

One today: ``tensorrt-rtx``, NVIDIA's TensorRT-RTX EP from the ``onnxruntime-ep-nv-tensorrt-rtx-
cu13`` wheel (the TensorRT-RTX 1.7 builder, its ONNX parser and the plugin library;
``get_library_path()`` names the plugin). The steps, each with its own refusal:

1. import the package (it preloads its TensorRT-RTX libraries and ``libonnxruntime``);
2. ``onnxruntime.register_execution_provider_library(ep_name, path)``, once per process: this
   loads the plugin, which links the NVIDIA driver's ``libcuda.so.1`` — on a machine without
   the driver it fails here, and the message says so;
3. ``onnxruntime.get_ep_devices()``: the devices the plugin's factory accepted. TensorRT-RTX
   1.7 accepts compute capability 8.6, 8.9 and >= 12.0 (``IsComputeCapabilitySupported`` in
   the wheel's ``tensorrt_rtx_provider_options.h``), so a GPU it does not take — a data-centre
   Hopper (9.0) among them — leaves the list empty: refused, naming the hardware ORT saw;
4. ``SessionOptions.add_provider_for_devices([device], options)`` (``providers.make_session``).

This is the runtime's one module that imports a plugin package, inside functions only, when
the provider is asked for (``tests/test_architecture.py`` lists it).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from edgegen.runtime.errors import ProviderError


@dataclass(frozen=True)
class Plugin:
    ep: str  # the execution provider's name in ONNX Runtime
    package: str  # what to pip install
    needs: str  # the hardware and driver it runs on, for messages


PLUGINS = {
    "tensorrt-rtx": Plugin(
        ep="NvTensorRTRTXExecutionProvider", package="onnxruntime-ep-nv-tensorrt-rtx-cu13",
        needs="an NVIDIA GPU that TensorRT-RTX 1.7 accepts (its header lists compute "
              "capability 8.6, 8.9 and >= 12.0, RTX 30xx/40xx/50xx-class; not 9.0, the "
              "H100/H200) and an NVIDIA driver with CUDA 13 support"),
}
_REGISTERED: dict[str, str] = {}  # provider -> the library path registered in this process


def _library_path(name: str) -> tuple[str, str]:
    """(package version, plugin library path), importing the package (which preloads the
    TensorRT-RTX libraries it ships); a ProviderError naming the package when it is absent."""
    plugin = PLUGINS[name]
    try:
        import onnxruntime_ep_nv_tensorrt_rtx as pkg
    except ImportError as exc:
        raise ProviderError(
            f"provider {name!r} ({plugin.ep}) needs the {plugin.package} package, which is not "
            f"installed (import onnxruntime_ep_nv_tensorrt_rtx: {exc}): `pip install "
            f"{plugin.package}` beside onnxruntime >= 1.24, on {plugin.needs}. edgegen never "
            "falls back to another provider silently") from exc
    try:
        return str(pkg.__version__), str(pkg.get_library_path())
    except (FileNotFoundError, AttributeError) as exc:
        raise ProviderError(f"{plugin.package} is installed but incomplete: {exc}; reinstall "
                            f"it (`pip install --force-reinstall {plugin.package}`)") from exc


def why_not_loaded(name: str, path: str, error: str) -> str:
    """What a failed registration means, from ONNX Runtime's message (dlopen's)."""
    plugin = PLUGINS[name]
    missing = re.search(r"([\w.+-]+\.so(?:\.[\d.]+)?): cannot open shared object file", error)
    if missing and missing.group(1).startswith("libcuda.so"):
        what = (f"the NVIDIA driver's CUDA library {missing.group(1)} is not on this machine "
                "(no NVIDIA GPU driver is installed)")
    elif missing:
        what = f"the shared library {missing.group(1)} it links is missing"
    else:
        what = f"onnxruntime could not load it: {error.splitlines()[0][:300]}"
    return (f"provider {name!r}: the {plugin.package} plugin {path} did not register: {what}. "
            f"It needs {plugin.needs}. edgegen never falls back to another provider silently")


def register(rt: Any, name: str) -> str:
    """Register the plugin library of provider ``name`` with ONNX Runtime (``rt``: the
    imported ``onnxruntime``; ``providers.ort()``) once per process; returns the EP's name.
    A ProviderError when the package, the ORT API or the driver is missing."""
    plugin = PLUGINS[name]
    if name in _REGISTERED:
        return plugin.ep
    if not hasattr(rt, "register_execution_provider_library"):
        raise ProviderError(f"provider {name!r} is a plugin execution provider, and this "
                            f"onnxruntime {rt.__version__} has no plugin-EP API (ONNX Runtime "
                            f">= 1.23; {plugin.package} asks for >= 1.24): upgrade onnxruntime")
    _version, path = _library_path(name)
    try:
        rt.register_execution_provider_library(plugin.ep, path)
    except Exception as exc:  # noqa: BLE001 - ORT raises its own Fail type
        if "already registered" not in str(exc):
            raise ProviderError(why_not_loaded(name, path, str(exc))) from exc
    _REGISTERED[name] = path
    return plugin.ep


def _describe(hw: Any) -> str:
    kind = str(getattr(hw, "type", "?")).rsplit(".", 1)[-1]
    return (f"{kind} {getattr(hw, 'vendor', '?')} "
            f"{getattr(hw, 'vendor_id', 0):04x}:{getattr(hw, 'device_id', 0):04x}")


def device_for(rt: Any, name: str, device_id: int = 0) -> Any:
    """The ``OrtEpDevice`` of provider ``name`` for GPU ``device_id`` (the n-th device its
    factory offers), registering the plugin first."""
    ep = register(rt, name)
    every = list(rt.get_ep_devices())
    mine = [d for d in every if d.ep_name == ep]
    if not mine:
        seen = ", ".join(sorted({_describe(d.device) for d in every})) or "none"
        raise ProviderError(
            f"provider {name!r}: {ep} is registered but offers no device on this machine "
            f"(hardware ONNX Runtime found: {seen}). It needs {PLUGINS[name].needs}. edgegen "
            "never falls back to another provider silently")
    if not 0 <= device_id < len(mine):
        raise ProviderError(f"provider {name!r}: device {device_id} asked for, {ep} offers "
                            f"{len(mine)} ({', '.join(_describe(d.device) for d in mine)})")
    return mine[device_id]


def cache_key(device: Any) -> str:
    """A folder name for engines built for this EP build on this GPU model: the EP's version
    (its metadata) and the device's PCI vendor:device ids, e.g. ``rtx-0.5.0-10de-2684``."""
    version = dict(getattr(device, "ep_metadata", {}) or {}).get("version", "unknown")
    hw = device.device
    return re.sub(r"[^\w.-]", "_", f"rtx-{version}-{hw.vendor_id:04x}-{hw.device_id:04x}")


def registered_eps() -> list[str]:
    """Names of the plugin EPs registered in this process (for 'available' lists)."""
    return [PLUGINS[n].ep for n in _REGISTERED]
