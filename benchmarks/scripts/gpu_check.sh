#!/usr/bin/env bash
# All GPU checks in one call, for the lent GPU machine (see ../shared/tools/device-ort-gpu.md):
# verify, bench and eval with ONNX Runtime's CUDA provider, PyTorch CUDA as the peer, and the
# TensorRT path (which must refuse clearly where libnvinfer is missing). Results go to $OUT.
#
# Run it as the last step of the onnxruntime-gpu recipe, from the repository root, after the
# earlier calls left the wheel parts in /tmp/ortparts. It expects, carried (git-ignored):
#   .ortgpu/5/part_4           the last part of the onnxruntime-gpu wheel
#   .gpu/edgegen-*.whl         `pip wheel --no-deps --no-build-isolation -w .gpu .` (this code)
#   .gpu/mnist/                held-out real digits for eval (a copy of the IDX files)
#   $BUNDLE and the run it came from (the torch peer and the PyTorch reference need it)
#
#   bash benchmarks/scripts/gpu_check.sh BUNDLE
set -u
repo=$(pwd)
bundle=$(cd "${1:?usage: gpu_check.sh BUNDLE}" && pwd)
out=${OUT:-/tmp/edgegen-gpu-out}
mkdir -p "$out"
whl=onnxruntime_gpu-1.31.1-cp312-cp312-manylinux_2_28_x86_64.whl
cp .ortgpu/5/* /tmp/ortparts/ && cat /tmp/ortparts/part_* > "/tmp/$whl"
sha256sum -c <<<"05d548956197b9d01f59b625de740e0d6be3593f874e241a12dc0362650ecdf7  /tmp/$whl" \
  || exit 3
python3 -m pip install -q --no-index --no-deps --target /tmp/site "/tmp/$whl" .gpu/edgegen-*.whl \
  || exit 4
export PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1 COLUMNS=160
cd /tmp  # so that the repository's source folders do not shadow the installed package

step() {  # step NAME TIMEOUT ARGS...: run `edgegen ARGS`, keep its output and exit code
  local name=$1 limit=$2
  shift 2
  echo "== $name: edgegen $*"
  timeout "$limit" python3 -m edgegen "$@" > "$out/$name.txt" 2>&1
  echo "exit=$?" | tee -a "$out/$name.txt"
  tail -4 "$out/$name.txt"
}

{
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
  python3 -c 'import onnxruntime as o, torch, numpy; o.preload_dlls();
print("onnxruntime", o.__version__, o.get_available_providers());
print("torch", torch.__version__, torch.cuda.get_device_name(0), "numpy", numpy.__version__)'
} > "$out/environment.txt" 2>&1
cat "$out/environment.txt"

step verify-cuda 90 verify "$bundle" --provider cuda --json "$out/verify-cuda.json"
step verify-cuda-deterministic 90 verify "$bundle" --provider cuda --deterministic \
  --json "$out/verify-cuda-deterministic.json"
step verify-tensorrt 40 verify "$bundle" --provider tensorrt --precision fp16
# Plots and report pictures need matplotlib and Pillow, which that machine may lack.
if python3 -c 'import matplotlib, PIL' 2>/dev/null; then pictures=1; else pictures=0; fi
echo "matplotlib and Pillow importable: $pictures" | tee -a "$out/environment.txt"
plot=()
[ "$pictures" = 1 ] && plot=(--plot "$out/bench-cuda.png")
step bench-cuda 150 bench "$bundle" --provider cuda --batch 1,8,64,512 --io-binding \
  --cuda-graph --peers torch --warmup-s 0.2 --duration 1 --json "$out/bench-cuda.json" "${plot[@]}"
if [ "$pictures" = 1 ]; then
  step eval-cuda 120 eval "$bundle" --provider cuda --samples 5000 --truncation 0.7,1.0 \
    --data-dir "$repo/.gpu/mnist" --out "$out/eval-cuda" --json "$out/eval-cuda.json"
fi
echo "all steps run; results in $out"
