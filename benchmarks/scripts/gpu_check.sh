#!/usr/bin/env bash
# Every GPU check of issue 24 in one command, for the lent GPU machine (one call: start it with a
# timeout that leaves room for a rerun). Each step runs under its own time limit, its output kept
# in <results>/<bundle>/<step>.txt; a step that fails says so loudly (!! ... FAILED) and the next
# one runs. steps.tsv lists every step with its exit code, seconds and status; the script exits
# 1 when any step failed or timed out, 0 otherwise.
#
#   bash benchmarks/scripts/gpu_check.sh [options] BUNDLE [BUNDLE ...]
#
#   BUNDLE            bundle folders: the cdcgan, the cflow and the distilled one-step bundle
#                     (each with the run it came from, for the PyTorch peers and references)
#   --results DIR     where everything goes (default: $OUT/gpu-check, else
#                     benchmarks/results/gpu-check-<date>); environment.txt / .json there
#   --provider P      cuda (default), or cpu: the plumbing check on a machine without a GPU —
#                     the CUDA steps run on the CPU, the TensorRT-RTX steps must refuse clearly
#   --data-dir DIR    real digits for eval (default: $EDGEGEN_DATA_DIR; none: eval skipped)
#   --batches LIST    bench batch sizes (default 1,8,64,512,2048,8192)
#   --profile-batches LIST  the profile's batch sizes (default 64,512,2048)
#   --duration S      timed seconds per contender and batch (default 0.5)
#   --eval-samples N  samples per variant for eval (default 5000)
#   --step-timeout S  the limit of each step (default 240; the profile gets 1.5x)
#   --budget-s S      start no step after S seconds in all (default 0: no budget)
#   --no-profile      skip the fp16-vs-fp32 profile (benchmarks/scripts/gpu_profile.py)
#   --only LIST       run only these steps: verify, verify-rtx, bench-graph, profile,
#                     verify-deterministic, bench-iobind, bench-rtx, eval
#
# On the GPU machine, after benchmarks/scripts/gpu_install.sh --install (see gpu_parts.sh):
#   PYTHONPATH=/tmp/site bash benchmarks/scripts/gpu_check.sh --results "$OUT/gpu-check" \
#     --data-dir .gpu/mnist --budget-s 480 bundles/cdcgan bundles/cflow bundles/<one-step>
# Here (CPU, the plumbing):
#   PYTHON=.venv/bin/python bash benchmarks/scripts/gpu_check.sh --provider cpu --batches 1,8 \
#     --profile-batches 1,8 \
#     --duration 0.05 --eval-samples 200 --results /tmp/gpu-check BUNDLE
# Then copy the results folder under benchmarks/results/ and regenerate BENCHMARKS.md
# (`run_benchmarks.py --render-only`: it renders every GPU bench-*.json found there).
set -u
usage() { sed -n '2,/^set -u/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit "${1:-2}"; }
repo=$(cd "$(dirname "$0")/../.." && pwd)
py=${PYTHON:-python3}
results="" provider=cuda data_dir=${EDGEGEN_DATA_DIR:-} batches=1,8,64,512,2048,8192
duration=0.5 eval_samples=5000 step_timeout=240 budget=0 profile=1 only=""
profile_batches=64,512,2048
while [ $# -gt 0 ]; do
  case "$1" in
    --results) results=$2; shift 2 ;;
    --provider) provider=$2; shift 2 ;;
    --data-dir) data_dir=$2; shift 2 ;;
    --batches) batches=$2; shift 2 ;;
    --profile-batches) profile_batches=$2; shift 2 ;;
    --duration) duration=$2; shift 2 ;;
    --eval-samples) eval_samples=$2; shift 2 ;;
    --step-timeout) step_timeout=$2; shift 2 ;;
    --budget-s) budget=$2; shift 2 ;;
    --no-profile) profile=0; shift ;;
    --only) only=",$2,"; shift 2 ;;
    -h|--help) usage 0 ;;
    --*) echo "unknown option $1" >&2; usage ;;
    *) break ;;
  esac
done
[ $# -ge 1 ] || { echo "give at least one BUNDLE folder" >&2; usage; }
case "$provider" in cuda|cpu) ;; *) echo "--provider takes cuda or cpu" >&2; exit 2 ;; esac
for b in "$@"; do
  [ -f "$b/manifest.json" ] || { echo "$b is not a bundle (no manifest.json)" >&2; exit 2; }
done
results=${results:-${OUT:+$OUT/gpu-check}}
results=${results:-$repo/benchmarks/results/gpu-check-$(date +%F)}
mkdir -p "$results" || exit 2
results=$(cd "$results" && pwd)
# The source tree after anything already on PYTHONPATH (the GPU build of onnxruntime first)
export PYTHONPATH="${PYTHONPATH:+$PYTHONPATH:}$repo/runtime/src:$repo/src"
export PYTHONUNBUFFERED=1 COLUMNS=160
t0=$(date +%s)
failed=0
printf 'step\tbundle\texit\tseconds\tstatus\tcommand\n' > "$results/steps.tsv"

step() {  # step KIND NAME DIR LIMIT CMD...: one step, recorded in steps.tsv, loud on failure
  local kind=$1 name=$2 dir=$3 limit=$4
  shift 4
  [ -z "$only" ] || [[ "$only" == *",$kind,"* ]] || return 0
  local bundle status now
  bundle=$(basename "$dir")
  now=$(date +%s)
  if [ "$budget" != 0 ] && [ $((now - t0)) -ge "$budget" ]; then
    printf '%s\t%s\t-\t0\tskipped (budget %ss spent)\t%s\n' "$name" "$bundle" "$budget" \
      "$*" >> "$results/steps.tsv"
    echo "-- $name ($bundle): skipped, the budget of ${budget}s is spent"
    return 0
  fi
  echo "== $name ($bundle): $*"
  timeout -k 10 "$limit" "$@" > "$dir/$name.txt" 2>&1
  local rc=$?
  case $rc in
    0) status=ok ;;
    124|137) status="TIMEOUT (${limit}s)" ;;
    *) status=FAILED ;;
  esac
  # TensorRT-RTX on the CPU plumbing run: the clear refusal (exit 2, ProviderError) is the point
  if [ "$provider" = cpu ] && [[ "$name" == *tensorrt-rtx* ]] && [ $rc = 2 ] &&
     grep -q "provider 'tensorrt-rtx'" "$dir/$name.txt"; then
    status="refused as expected (no GPU here)"
  fi
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$bundle" "$rc" "$(( $(date +%s) - now ))" \
    "$status" "$*" >> "$results/steps.tsv"
  echo "   exit $rc: $status"
  if [ "$status" != ok ] && [[ "$status" != refused* ]]; then
    failed=$((failed + 1))
    echo "!! $name ($bundle) $status — its last lines:"
    tail -6 "$dir/$name.txt" | sed 's/^/!!   /'
  else
    tail -2 "$dir/$name.txt" | sed 's/^/   /'
  fi
}


environment() {
  {
    date -u +"%F %T UTC"
    nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv \
      2>&1 || echo "nvidia-smi: not here"
    "$py" - "$results/environment.json" <<'EOF'
import json, sys
from edgegen.benchmarks.machine import machine_info, versions
import onnxruntime as o
getattr(o, "preload_dlls", lambda: None)()
env = {"machine": machine_info(gpu=True), "versions": versions(),
       "onnxruntime_providers": o.get_available_providers()}
try:
    from edgegen.runtime.plugin_ep import device_for
    device_for(o, "tensorrt-rtx")
    env["tensorrt_rtx"] = "registered, device found"
except Exception as exc:  # the refusal is a result: which part is missing
    env["tensorrt_rtx"] = f"{type(exc).__name__}: {exc}"
env["ep_devices"] = [f"{d.ep_name} on {str(d.device.type).rsplit('.', 1)[-1]} "
                     f"{d.device.vendor} {d.device.vendor_id:04x}:{d.device.device_id:04x}"
                     for d in o.get_ep_devices()]
try:
    import torch
    env["torch"] = {"version": torch.__version__, "cuda": torch.cuda.is_available(),
                    "device": torch.cuda.get_device_name(0) if torch.cuda.is_available()
                    else None}
except ImportError:
    env["torch"] = None
json.dump(env, open(sys.argv[1], "w"), indent=2, default=str)
for k in ("versions", "onnxruntime_providers", "tensorrt_rtx", "ep_devices", "torch"):
    print(f"{k}: {env[k]}")
EOF
  } > "$results/environment.txt" 2>&1
  cat "$results/environment.txt"
}

environment
eg=("$py" -m edgegen)  # edgegen from the source tree (PYTHONPATH above)
# On CUDA: I/O binding and CUDA graphs, torch.compile beside PyTorch eager; on CPU neither
gpu_flags=() iobind=() compile_peer="" main=peers all=all
if [ "$provider" = cuda ]; then
  gpu_flags=(--io-binding --cuda-graph) iobind=(--io-binding) compile_peer=",torch-compile"
  main=graph all=iobind
fi
prof_limit=$((step_timeout * 3 / 2))
for b in "$@"; do mkdir -p "$results/$(basename "$b")"; done
# Step-major: the most wanted measurement of every bundle before the next kind of step.
for b in "$@"; do d="$results/$(basename "$b")"
  step verify "verify-$provider" "$d" "$step_timeout" "${eg[@]}" verify "$b" --provider "$provider" \
    --json "$d/verify-$provider.json"; done
for b in "$@"; do d="$results/$(basename "$b")"
  step verify-rtx verify-tensorrt-rtx "$d" "$step_timeout" "${eg[@]}" verify "$b" \
    --provider tensorrt-rtx --precision fp32,fp16 --json "$d/verify-tensorrt-rtx.json"; done
for b in "$@"; do d="$results/$(basename "$b")"
  step bench-graph "bench-$provider-$main" "$d" "$step_timeout" "${eg[@]}" bench "$b" \
    --provider "$provider" --precision fp32,fp16 --batch "$batches" "${gpu_flags[@]}" \
    --peers "torch$compile_peer" --duration "$duration" --rounds 3 --warmup-s 0.2 \
    --json "$d/bench-$provider-$main.json"; done
if [ "$profile" = 1 ]; then
  for b in "$@"; do d="$results/$(basename "$b")"
    step profile "profile-$provider" "$d" "$prof_limit" "$py" "$repo/benchmarks/scripts/gpu_profile.py" \
      "$b" --provider "$provider" --batches "$profile_batches" --duration "$duration" --out "$d"; done
fi
if [ "$provider" = cuda ]; then
  for b in "$@"; do d="$results/$(basename "$b")"
    step verify-deterministic verify-cuda-deterministic "$d" "$step_timeout" "${eg[@]}" verify "$b" \
      --provider cuda --deterministic --json "$d/verify-cuda-deterministic.json"; done
fi
for b in "$@"; do d="$results/$(basename "$b")"
  step bench-iobind "bench-$provider-$all" "$d" "$step_timeout" "${eg[@]}" bench "$b" \
    --provider "$provider" --batch "$batches" "${iobind[@]}" --peers ort-default \
    --duration "$duration" --rounds 3 --warmup-s 0.2 \
    --json "$d/bench-$provider-$all.json"; done
for b in "$@"; do d="$results/$(basename "$b")"
  step bench-rtx bench-tensorrt-rtx "$d" "$step_timeout" "${eg[@]}" bench "$b" \
    --provider tensorrt-rtx --precision fp32,fp16 --batch "$batches" --io-binding --cuda-graph \
    --peers none --duration "$duration" --rounds 3 --json "$d/bench-tensorrt-rtx.json"; done
for b in "$@"; do d="$results/$(basename "$b")"
  if [ -z "$data_dir" ]; then
    echo "-- eval-$provider ($(basename "$b")): skipped, no --data-dir (real digits) given"
    printf 'eval-%s\t%s\t-\t0\tskipped (no --data-dir)\t\n' "$provider" "$(basename "$b")" \
      >> "$results/steps.tsv"
    continue
  fi
  step eval "eval-$provider" "$d" "$step_timeout" "${eg[@]}" eval "$b" --provider "$provider" \
    --samples "$eval_samples" --truncation "" --data-dir "$data_dir" --out "$d/eval-$provider" \
    --json "$d/eval-$provider.json"; done

# The targets of issue 24 on what was measured (fp16 vs fp32 on the provider; TensorRT-RTX vs
# ONNX Runtime CUDA on the same bundle), from the JSON reports
"$py" - "$results" <<'EOF' | tee "$results/targets.txt"
import sys
from pathlib import Path
from edgegen.benchmarks.results import load_report
from edgegen.benchmarks.targets import compute
for folder in sorted(p for p in Path(sys.argv[1]).iterdir() if p.is_dir()):
    best = {}
    for path in sorted(folder.glob("bench-*.json")):
        r = load_report(path)
        t = compute(r)["fp16-throughput"]
        print(f"{folder.name} {path.name}: {t.name} {t.detail}: {t.verdict.upper()}")
        ours = [x for x in r.results if x.contender == "edgegen"]
        if ours:
            best[r.provider] = max(ours, key=lambda x: x.latency.images_per_s)
    if "tensorrt-rtx" in best and "cuda" in best:
        x = best["tensorrt-rtx"].latency.images_per_s / best["cuda"].latency.images_per_s
        print(f"{folder.name}: TensorRT-RTX best img/s / ONNX Runtime CUDA best = {x:.2f} "
              f"(target >= 1.5): {'MET' if x >= 1.5 else 'NOT MET'}")
    elif "cuda" in best:
        print(f"{folder.name}: TensorRT-RTX vs CUDA: not measured (no TensorRT-RTX bench)")
EOF
echo "all steps run in $(( $(date +%s) - t0 )) s; $failed failed; results in $results"
column -t -s $'\t' "$results/steps.tsv" 2>/dev/null | cut -c1-150 || cat "$results/steps.tsv"
[ "$failed" = 0 ]
