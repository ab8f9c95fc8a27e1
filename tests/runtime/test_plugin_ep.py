"""``--provider tensorrt-rtx``: the plugin execution provider found, registered and its device
chosen through ONNX Runtime's plugin-EP API — and on a machine without the package, without the
NVIDIA driver or without a GPU it accepts, a ProviderError naming exactly what is missing.

The driver case runs a real registration: a shared library linked against ``libcuda.so.1``,
built here with the C compiler against a stub that is then removed (so dlopen fails exactly as
the real plugin does on a machine without the NVIDIA driver), offered by a package of the
plugin's name on ``sys.path``. With the real wheel installed (``pip install
onnxruntime-ep-nv-tensorrt-rtx-cu13``), the same test runs on the real plugin.
"""

from __future__ import annotations

import ctypes.util
import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from edgegen.runtime import plugin_ep
from edgegen.runtime.bundle import load_bundle
from edgegen.runtime.errors import ProviderError
from edgegen.runtime.providers import (
    EP_NAMES,
    ProviderSpec,
    make_session,
    ort,
    plugin_options,
    require_providers,
    spec_for,
)

PKG = "onnxruntime_ep_nv_tensorrt_rtx"
HAVE_WHEEL = importlib.util.find_spec(PKG) is not None
HAVE_DRIVER = ctypes.util.find_library("cuda") is not None


@pytest.fixture(autouse=True)
def _fresh_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test registers from scratch (the registry is per process)."""
    monkeypatch.setattr(plugin_ep, "_REGISTERED", {})


@pytest.mark.skipif(HAVE_WHEEL, reason="the TensorRT-RTX plugin package is installed here")
def test_without_the_package_the_error_names_it() -> None:
    for call in (lambda: require_providers(["tensorrt-rtx"]),
                 lambda: make_session(b"not a model", ProviderSpec("tensorrt-rtx"))):
        with pytest.raises(ProviderError) as err:
            call()
        msg = str(err.value)
        assert "onnxruntime-ep-nv-tensorrt-rtx-cu13" in msg and "is not installed" in msg
        assert "pip install onnxruntime-ep-nv-tensorrt-rtx-cu13" in msg
        assert "never falls back" in msg


def _driverless_plugin(root: Path) -> Path:
    """A package named like the plugin's whose library needs libcuda.so.1, which is absent."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler to build a library that links libcuda.so.1")
    stub, pkg = root / "stub", root / "site" / PKG
    stub.mkdir()
    pkg.mkdir(parents=True)
    (root / "stub.c").write_text("int cuInit(unsigned int flags) { return flags; }\n")
    (root / "ep.c").write_text("int cuInit(unsigned int);\nint CreateEpFactories(void) "
                               "{ return cuInit(0); }\n")
    subprocess.run([cc, "-shared", "-fPIC", "-o", str(stub / "libcuda.so.1"),
                    "-Wl,-soname,libcuda.so.1", str(root / "stub.c")], check=True)
    lib = pkg / "libonnxruntime_providers_nv_tensorrt_rtx.so"
    subprocess.run([cc, "-shared", "-fPIC", "-o", str(lib), str(root / "ep.c"),
                    f"-L{stub}", "-l:libcuda.so.1"], check=True)
    shutil.rmtree(stub)  # now the library's NEEDED libcuda.so.1 resolves nowhere
    (pkg / "__init__.py").write_text(
        "import pathlib\n__version__ = '0.5.0'\n"
        "def get_library_path():\n"
        f"    return str(pathlib.Path(__file__).parent / {lib.name!r})\n")
    return root / "site"


@pytest.mark.skipif(HAVE_DRIVER, reason="this machine has the NVIDIA driver (libcuda)")
def test_without_the_driver_registration_names_libcuda(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    if not HAVE_WHEEL:  # the real wheel when it is installed, else the driverless stand-in
        monkeypatch.syspath_prepend(str(_driverless_plugin(tmp_path)))
    try:
        with pytest.raises(ProviderError) as err:
            require_providers(["tensorrt-rtx"])
    finally:
        if not HAVE_WHEEL:
            sys.modules.pop(PKG, None)  # the stand-in must not outlive the test
    msg = str(err.value)
    assert "libcuda.so.1 is not on this machine" in msg and "no NVIDIA GPU driver" in msg
    assert "did not register" in msg and "libonnxruntime_providers_nv_tensorrt_rtx.so" in msg
    assert "compute capability" in msg and "never falls back" in msg
    assert plugin_ep.registered_eps() == []  # nothing half-registered


def test_a_failed_load_that_is_not_the_driver_says_what_ort_said() -> None:
    msg = plugin_ep.why_not_loaded(
        "tensorrt-rtx", "/x/lib.so", "[ONNXRuntimeError] : 1 : FAIL : Failed to load library "
        "/x/lib.so with error: libtensorrt_rtx.so.1: cannot open shared object file: No such "
        "file or directory")
    assert "the shared library libtensorrt_rtx.so.1 it links is missing" in msg
    other = plugin_ep.why_not_loaded("tensorrt-rtx", "/x/lib.so", "FAIL : no factories")
    assert "onnxruntime could not load it: FAIL : no factories" in other


def test_options_follow_the_plugin_ep_api(tiny_bundle: Path, tmp_path: Path) -> None:
    """spec_for and the provider options for a real model and a real OrtEpDevice (the CPU one
    ORT lists: the options and the cache folder do not depend on which device it is)."""
    assert EP_NAMES["tensorrt-rtx"] == "NvTensorRTRTXExecutionProvider"
    spec = spec_for("tensorrt-rtx", "fp16", batch_range=(1, 64, 512),
                    trt_cache_dir=tmp_path / "trt_cache", cuda_graph=True)
    assert not spec.trt_fp16 and not spec.trt_int8  # strongly typed: the graph says fp16
    bundle = load_bundle(tiny_bundle)
    assert bundle.model_file("fp16", "tensorrt-rtx") == bundle.variant_file("fp16")
    device = ort().get_ep_devices()[0]
    opts = plugin_options(spec, bundle.model_bytes("fp16", "tensorrt-rtx"), device)
    assert opts["nv_profile_min_shapes"].startswith("z:1x") and ",label:1" in \
        opts["nv_profile_min_shapes"]
    assert opts["nv_profile_max_shapes"].endswith("label:512")
    assert opts["enable_cuda_graph"] == "1"
    cache = Path(opts["nv_runtime_cache_path"])
    assert cache.is_dir() and cache.parent == tmp_path / "trt_cache"
    hw = device.device
    assert cache.name.endswith(f"-{hw.vendor_id:04x}-{hw.device_id:04x}")  # per GPU model
    assert spec_for("cuda", "fp32", trt_cache_dir=tmp_path).trt_cache_dir is None


def test_importing_the_runtime_never_imports_the_plugin(tmp_path: Path) -> None:
    """With a package of the plugin's name importable, ``edgegen.runtime.providers`` still
    does not import it: only asking for the provider does."""
    site = tmp_path / PKG
    site.mkdir()
    (site / "__init__.py").write_text("raise SystemExit('imported')\n")
    code = f"import sys; sys.path.insert(0, {str(tmp_path)!r}); import edgegen.runtime, " \
           "edgegen.runtime.providers, edgegen.runtime.plugin_ep; print('fine')"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "fine", out.stderr
