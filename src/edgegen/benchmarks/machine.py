"""What machine the numbers came from, and how fast it multiplies dense fp32 matrices.

The matmul rate is the yardstick for the efficiency column: achieved FLOP/s of the generator
divided by the best dense fp32 matrix-product rate this machine reaches with the same threads
(PyTorch's ``torch.mm``, MKL/oneDNN on x86, cuBLAS on CUDA with TF32 off — fp32 proper, like
the fp32 model). It is measured, not taken from a datasheet: a VM's vCPU can be far from the
part's nominal peak, and a shared machine is slower still.
"""

from __future__ import annotations

import os
import platform
import re
import time
from dataclasses import dataclass, field, replace
from importlib import metadata
from pathlib import Path
from typing import Any

from edgegen.benchmarks.harness import usable_cores
from edgegen.core import __version__


@dataclass(frozen=True)
class MatmulRate:
    gflops: float  # best over the sizes tried
    size: int  # n of the n x n x n product that reached it
    device: str
    threads: int
    library: str
    by_size: dict[int, float] = field(default_factory=dict)
    measurements: tuple[float, ...] = ()  # every measurement combined into ``gflops``


def best_of(*rates: MatmulRate | None) -> MatmulRate | None:
    """The fastest of several measurements of the yardstick (noise only slows one down)."""
    have = [r for r in rates if r is not None]
    if not have:
        return None
    best = max(have, key=lambda r: r.gflops)
    return replace(best, measurements=tuple(r.gflops for r in have))


def cpu_model() -> str:
    """The CPU's marketing name from /proc/cpuinfo (Linux) or the platform module."""
    info = Path("/proc/cpuinfo")
    if info.is_file():
        for line in info.read_text(errors="replace").splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def cpu_flags() -> list[str]:
    """The vector extensions that matter for these kernels (AVX2, AVX-512, AMX, VNNI...)."""
    info = Path("/proc/cpuinfo")
    if not info.is_file():
        return []
    for line in info.read_text(errors="replace").splitlines():
        if line.startswith("flags"):
            flags = line.split(":", 1)[1].split()
            keep = ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_fp16", "avx512_vnni",
                    "avx_vnni", "amx_tile", "amx_bf16", "amx_int8", "f16c")
            return [f for f in keep if f in flags]
    return []


def ram_gib() -> float | None:
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") / 2**30
    except (ValueError, OSError, AttributeError):
        return None


def versions() -> dict[str, str | None]:
    """Versions of everything that takes part in a measurement (None: not installed)."""
    out: dict[str, str | None] = {"python": platform.python_version()}
    for dist in ("edgegen", "numpy", "onnx", "onnxruntime", "onnxruntime-gpu", "torch",
                 "openvino", "onnxruntime-ep-nv-tensorrt-rtx-cu13"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = None
    if out["edgegen"] is None:  # run from the source tree (PYTHONPATH), not installed
        out["edgegen"] = f"{__version__} (source tree)"
    return out


def machine_info(gpu: bool = False) -> dict[str, Any]:
    """CPU model, cores, memory, load, OS; the GPU's name when ``gpu``."""
    info: dict[str, Any] = {
        "cpu": cpu_model(), "cpu_flags": cpu_flags(), "logical_cores": os.cpu_count(),
        "usable_cores": usable_cores(), "ram_gib": ram_gib(),
        "os": f"{platform.system()} {platform.release()}", "arch": platform.machine(),
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }
    if gpu:
        import torch

        if torch.cuda.is_available():
            p = torch.cuda.get_device_properties(0)
            info["gpu"] = {"name": p.name, "memory_gib": p.total_memory / 2**30,
                           "multiprocessors": p.multi_processor_count,
                           "cuda": torch.version.cuda}
    return info


def machine_slug(info: dict[str, Any]) -> str:
    """A folder-friendly name for a machine: CPU model and core count (or the GPU)."""
    name = info.get("gpu", {}).get("name") if info.get("gpu") else info["cpu"]
    name = re.sub(r"\((r|tm)\)|cpu|processor|@.*", "", str(name), flags=re.I)
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    return f"{slug}-{info['usable_cores']}c"


def matmul_rate(threads: int, device: str = "cpu", sizes: tuple[int, ...] | None = None,
                seconds: float = 0.3, trials: int = 5, warmup: int = 2) -> MatmulRate:
    """Best dense fp32 ``n x n @ n x n`` rate over ``sizes`` (GFLOP/s), ``threads`` threads.

    Each size is timed in ``trials`` windows of ``seconds / trials`` and the best window
    counts: other processes can only slow a window down, so the fastest one is the closest
    to what the machine can do."""
    import torch

    cuda = device == "cuda"
    sizes = sizes or ((2048, 4096, 8192) if cuda else (512, 1024, 2048))
    before = torch.get_num_threads()
    if not cuda:
        torch.set_num_threads(threads)
    tf32 = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False  # fp32 proper, like the fp32 model
    rates: dict[int, float] = {}
    try:
        for n in sizes:
            a = torch.randn(n, n, device=device)
            b = torch.randn(n, n, device=device)
            c = torch.empty(n, n, device=device)
            sync = torch.cuda.synchronize if cuda else (lambda: None)
            for _ in range(warmup):
                torch.mm(a, b, out=c)
            sync()
            for _ in range(max(1, trials)):
                calls, t0 = 0, time.perf_counter_ns()
                while True:
                    torch.mm(a, b, out=c)
                    calls += 1
                    sync()
                    elapsed = time.perf_counter_ns() - t0
                    if elapsed >= seconds / max(1, trials) * 1e9 and calls >= 2:
                        break
                rate = 2 * n**3 * calls / elapsed  # FLOP per ns = GFLOP/s
                rates[n] = max(rates.get(n, 0.0), rate)
    finally:
        torch.backends.cuda.matmul.allow_tf32 = tf32
        if not cuda:
            torch.set_num_threads(before)
    best = max(rates, key=lambda k: rates[k])
    lib = "cuBLAS (TF32 off)" if cuda else _cpu_blas(torch)
    return MatmulRate(gflops=rates[best], size=best, device=device,
                      threads=threads, library=lib, by_size=rates)


def _cpu_blas(torch: Any) -> str:
    cfg = torch.__config__.show()
    m = re.search(r"BLAS_INFO=(\w+)", cfg)
    return f"torch.mm ({m.group(1) if m else 'unknown BLAS'})"
