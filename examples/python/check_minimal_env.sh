#!/usr/bin/env bash
# Prove that edgegen.runtime works with only numpy, onnxruntime, jsonschema (the manifest's
# validator) and edgegen (installed --no-deps):
#   bash examples/python/check_minimal_env.sh BUNDLE [LABEL SEED EXPECTED_SHA256]
#   bash examples/python/check_minimal_env.sh      # no bundle: runs tests/examples/test_minimal_env.py,
#                                                  # which exports a tiny bundle and calls this script
# Creates a throw-away venv, installs numpy + onnxruntime + jsonschema from the package index (pip's cache
# makes a rerun fast), builds and installs edgegen as a wheel with --no-deps, then - from outside
# the repository, so nothing is imported from the source tree - loads BUNDLE (schema, paths,
# every sha256, against bundle.schema.json shipped in the wheel), generates digits, checks that
# torch, onnx and model_signing were never imported and prints the
# sha256 of the uint8 bytes of generate([LABEL], seed=SEED) (default 7, 42). With
# EXPECTED_SHA256 it exits 1 unless they match. Then the on-device benchmark runs there too, both
# ways (`edgegen-runtime bench`, the wheel's console script, and `python -m edgegen.runtime.bench`),
# on a tiny budget, and its JSON is checked (every variant timed, torch absent). Takes ~20-60 s.
# The test suite runs it (tests/examples/test_minimal_env.py).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
if [[ $# -eq 0 ]]; then
  # A bundle needs a trained checkpoint; the test suite's fixture makes a tiny one (torch, in the
  # project's .venv), then calls this script with it and compares the bytes with its own.
  cd "$REPO"
  exec "$REPO/.venv/bin/python" -m pytest -q -p no:cacheprovider "$REPO/tests/examples/test_minimal_env.py"
fi
if [[ $# -ne 1 && $# -ne 4 ]]; then
  echo "usage: $0 BUNDLE [LABEL SEED EXPECTED_SHA256]" >&2
  exit 2
fi
BUNDLE=$(realpath "$1")
LABEL=${2:-7}
SEED=${3:-42}
EXPECTED=${4:-}
PYTHON=${PYTHON:-python3}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

"$PYTHON" -m venv "$WORK/venv"
PIP=("$WORK/venv/bin/python" -m pip --disable-pip-version-check --quiet)
"${PIP[@]}" install numpy onnxruntime jsonschema
# build from a copy of the package's sources, so the checkout gets no build/ or egg-info
cp -r "$REPO/runtime" "$WORK/src"
"${PIP[@]}" wheel --no-deps --wheel-dir "$WORK/wheels" "$WORK/src"
"${PIP[@]}" install --no-deps "$WORK"/wheels/edgegen_runtime-*.whl
echo "installed: $("$WORK/venv/bin/python" -m pip list --format=freeze --disable-pip-version-check | tr '\n' ' ')"

cd "$WORK"
"$WORK/venv/bin/python" - "$BUNDLE" "$LABEL" "$SEED" "$EXPECTED" <<'PY'
import hashlib
import importlib.util
import sys

from edgegen.runtime import Generator

bundle, label, seed, expected = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
for heavy in ("torch", "onnx", "torchvision"):
    assert importlib.util.find_spec(heavy) is None, f"{heavy} is installed: the venv is not minimal"
g = Generator.load(bundle)
images = g.generate(list(range(g.n_classes)), seed=seed)
assert images.shape == (g.n_classes, 28, 28) and images.dtype.name == "uint8", images.shape
assert images.std() > 0, "blank images"
digest = hashlib.sha256(g.generate([label], seed=seed).tobytes()).hexdigest()
loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "onnx", "model_signing"))
assert g.signature["status"] in ("unsigned", "signed, not checked"), g.signature
assert not loaded, f"imported {loaded}"
print(f"{sys.modules['edgegen.runtime'].__file__} in a minimal venv: label {label} seed {seed} "
      f"sha256 {digest}")
if expected and digest != expected:
    sys.exit(f"MISMATCH: expected sha256 {expected}")
PY
QUICK=(--batch 1,2 --iters 3 --rounds 1 --warmup-iters 1 --warmup-s 0 --noise-window 0)
"$WORK/venv/bin/edgegen-runtime" bench "$BUNDLE" "${QUICK[@]}" --json "$WORK/script.json" >/dev/null
"$WORK/venv/bin/python" -m edgegen.runtime.bench "$BUNDLE" "${QUICK[@]}" --json "$WORK/module.json" \
  >/dev/null
"$WORK/venv/bin/python" - "$WORK/script.json" "$WORK/module.json" <<'PY'
import json
import sys

counts = []
for path in sys.argv[1:]:
    report = json.load(open(path))
    assert report["passed"] and report["versions"]["torch"] is None, report["versions"]
    assert all(r["latency"]["count"] == 3 for r in report["results"]), path
    counts.append(len(report["results"]))
print(f"bench in a minimal venv: {counts[0]} results (edgegen-runtime bench), "
      f"{counts[1]} results (python -m edgegen.runtime.bench), torch not installed")
PY
