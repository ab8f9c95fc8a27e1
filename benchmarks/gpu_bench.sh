#!/usr/bin/env bash
# The GPU bench check, for the GPU machine (see ../shared/tools/device-ort-gpu.md): run it as
# the last step of the onnxruntime-gpu recipe, with PYTHONPATH=/tmp/site already exported and
# the bundle and its run carried (carry: bundles/t5, runs/cdcgan-5m — ignored by git).
#
#   bash benchmarks/gpu_bench.sh [BUNDLE]        # writes $OUT/bench-cuda.{json,png,txt}
#
# edgegen is not installed there: this lays the package out under /tmp/edgegen-src the way
# pyproject's package-dir mapping does (symlinks), so `python3 -m edgegen` runs from the tree.
# CUDA provider, I/O binding, CUDA graphs, batch 1..512, PyTorch CUDA as the peer; bounded to
# about a minute (0.2 s warm-up and 1 s timed per contender and batch size).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bundle=${1:-bundles/t5}
out=${OUT:-/tmp/edgegen-gpu-out}
mkdir -p "$out"
src=/tmp/edgegen-src
rm -rf "$src" && mkdir -p "$src"
mkdir -p "$src/edgegen"
for f in "$root"/edgegen/*; do ln -s "$f" "$src/edgegen/$(basename "$f")"; done
ln -s "$root/export" "$src/edgegen/export"
ln -s "$root/benchmarks" "$src/edgegen/benchmarks"
ln -s "$root/cli" "$src/edgegen/cli"
export PYTHONPATH="$src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
cd "$root"
python3 - <<'PY'
import onnxruntime as o, torch
o.preload_dlls() if hasattr(o, "preload_dlls") else None
print("onnxruntime", o.__version__, o.get_available_providers())
print("torch", torch.__version__, "cuda", torch.cuda.is_available(),
      torch.cuda.get_device_name(0) if torch.cuda.is_available() else "")
PY
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem --format=csv || true
set +e
timeout 240 python3 -m edgegen bench "$bundle" --provider cuda --batch 1,8,64,512 \
  --io-binding --cuda-graph --peers torch --warmup-s 0.2 --duration 1 \
  --json "$out/bench-cuda.json" --plot "$out/bench-cuda.png" 2>&1 | tee "$out/bench-cuda.txt"
rc=${PIPESTATUS[0]}
echo "edgegen bench exit code: $rc"
exit "$rc"
