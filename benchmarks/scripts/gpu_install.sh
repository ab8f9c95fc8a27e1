#!/usr/bin/env bash
# The GPU machine's side of benchmarks/scripts/gpu_parts.sh:
#
#   bash benchmarks/scripts/gpu_install.sh --gather .gpuparts/N   # one call per carried part
#   bash benchmarks/scripts/gpu_install.sh --install              # after the last part
#
# --gather copies the part (with SHA256SUMS and PARTS) into $GPU_PARTS (default /tmp/gpuparts).
# --install joins each wheel from its parts in the order PARTS lists, refuses any wheel whose
# sha256 differs from SHA256SUMS or that lacks a part (exit 3, naming it), installs the wheels
# without dependencies into $GPU_SITE (default /tmp/site; run edgegen with PYTHONPATH=$GPU_SITE
# so that `import onnxruntime` is the GPU build) and says what ONNX Runtime then offers.
# GPU_PIP_ARGS adds pip arguments (to rehearse it on a machine whose Python is not 3.12:
# GPU_PIP_ARGS="--python-version 3.12 --only-binary=:all: --platform manylinux_2_28_x86_64").
set -euo pipefail
parts=${GPU_PARTS:-/tmp/gpuparts}
site=${GPU_SITE:-/tmp/site}
case "${1:-}" in
  --gather)
    src=${2:?usage: gpu_install.sh --gather PART_FOLDER}
    mkdir -p "$parts"
    cp "$src"/* "$parts"/
    echo "gathered $(ls "$src" | grep -c '\.part_') part(s) from $src; $parts holds:"
    ls -la "$parts"
    ;;
  --install)
    [ -f "$parts/PARTS" ] || { echo "no parts gathered in $parts (run --gather first)"; exit 3; }
    mkdir -p "$parts/wheels" "$site"
    for whl in $(cut -d' ' -f1 "$parts/PARTS" | sort -u); do
      : > "$parts/wheels/$whl"
      for part in $(awk -v w="$whl" '$1 == w {print $2}' "$parts/PARTS"); do
        [ -f "$parts/$part" ] || { echo "MISSING part $part of $whl: gather it first"; exit 3; }
        cat "$parts/$part" >> "$parts/wheels/$whl"
      done
    done
    (cd "$parts/wheels" && sha256sum -c "$parts/SHA256SUMS") || {
      echo "a wheel does not match its sha256 (SHA256SUMS): a part is damaged or missing"
      exit 3
    }
    # shellcheck disable=SC2086 - GPU_PIP_ARGS: extra pip arguments, word-split on purpose
    python3 -m pip install -q --no-index --no-deps ${GPU_PIP_ARGS:-} --target "$site" \
      "$parts"/wheels/*.whl
    PYTHONPATH=$site python3 -c 'import onnxruntime as o
getattr(o, "preload_dlls", lambda: None)()
print("onnxruntime", o.__version__, o.get_available_providers())
import onnxruntime_ep_nv_tensorrt_rtx as rtx
print("TensorRT-RTX EP package", rtx.__version__, rtx.get_library_path())'
    ;;
  *)
    echo "usage: gpu_install.sh --gather PART_FOLDER | --install" >&2
    exit 2
    ;;
esac
