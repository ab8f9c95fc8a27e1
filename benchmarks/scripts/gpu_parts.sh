#!/usr/bin/env bash
# Prepares the GPU wheels for the lent GPU machine, which reaches no package index and takes at
# most 64 MiB of carried files per call: downloads onnxruntime-gpu (cp312, the machine's Python)
# and the TensorRT-RTX plugin EP onnxruntime-ep-nv-tensorrt-rtx-cu13 (py3, ~146 MB), splits each
# into parts of at most 55 MiB (57.7 MB), one part per folder .gpuparts/1 ... .gpuparts/N
# (git-ignored), each with SHA256SUMS and PARTS (which parts make which wheel), and prints the
# device calls: one per part (benchmarks/scripts/gpu_install.sh gathers them on the machine),
# then the one that installs both wheels and runs benchmarks/scripts/gpu_check.sh.
# The machine is given back after ~30 s without a call, and /tmp with it: issue the calls back
# to back. Run from the repository root:
#
#   bash benchmarks/scripts/gpu_parts.sh [ORT_GPU_VERSION] [TRT_RTX_EP_VERSION]
#   (defaults 1.31.1 and 0.5.0; the sha256 of each wheel is printed and kept in SHA256SUMS)
set -euo pipefail
ort_version=${1:-1.31.1}
rtx_version=${2:-0.5.0}
part_size=55M
root=$(git rev-parse --show-toplevel)
cd "$root"
rm -rf .gpuparts && mkdir -p .gpuparts/wheels
download() {  # download SPEC EXTRA_PIP_ARGS...: one wheel, no dependencies, for the machine
  local spec=$1
  shift
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
    --platform manylinux_2_17_x86_64 -d .gpuparts/wheels "$@" "$spec"
}
download "onnxruntime-gpu==$ort_version"
download "onnxruntime-ep-nv-tensorrt-rtx-cu13==$rtx_version"
(cd .gpuparts/wheels && sha256sum ./*.whl | sed 's| \./| |') > .gpuparts/SHA256SUMS
n=0
: > .gpuparts/PARTS
for whl in .gpuparts/wheels/*.whl; do
  name=$(basename "$whl")
  split -b "$part_size" -d -a 2 "$whl" ".gpuparts/tmp_${name}.part_"
  for p in .gpuparts/tmp_"$name".part_*; do
    n=$((n + 1))
    mkdir -p ".gpuparts/$n"
    part=${p#.gpuparts/tmp_}
    mv "$p" ".gpuparts/$n/$part"
    echo "$name $part" >> .gpuparts/PARTS
  done
done
for d in .gpuparts/[0-9]*; do cp .gpuparts/SHA256SUMS .gpuparts/PARTS "$d/"; done
rm -rf .gpuparts/wheels
echo "wheels (sha256):"
sed 's/^/  /' .gpuparts/SHA256SUMS
echo "parts: $n (largest $(du -b .gpuparts/[0-9]*/*.part_* | sort -n | tail -1 | cut -f1) bytes)"
echo
echo "Device calls, back to back (each carries one part folder; the machine keeps /tmp only"
echo "while it stays warm):"
for i in $(seq 1 "$n"); do
  echo "  run carry=[\".gpuparts/$i\"] timeout_s=60 command: bash benchmarks/scripts/gpu_install.sh --gather .gpuparts/$i"
done
echo "  run carry=[\"bundles\", \"runs\", \".gpu/mnist\"] timeout_s=540 command: bash benchmarks/scripts/gpu_install.sh --install && PYTHONPATH=/tmp/site bash benchmarks/scripts/gpu_check.sh --results \"\$OUT/gpu-check\" --data-dir .gpu/mnist --budget-s 480 bundles/cdcgan bundles/cflow bundles/<one-step>"
