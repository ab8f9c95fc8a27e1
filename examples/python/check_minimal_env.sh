#!/usr/bin/env bash
# Prove that the edgegen-runtime wheel, installed as a user installs it, runs a bundle with only
# numpy, onnxruntime, jsonschema and their own dependencies:
#   bash examples/python/check_minimal_env.sh BUNDLE [LABEL SEED EXPECTED_SHA256]
#   bash examples/python/check_minimal_env.sh      # no bundle: runs the test suite's wheel checks
#                                                  # (tests/test_packaging.py), which export a
#                                                  # tiny bundle and call this script with it
# 1. builds the wheel with `python -m build` from a copy of runtime/ (the checkout gets no build/
#    or egg-info), or takes WHEEL=path/to/edgegen_runtime-*.whl; refuses one over 200 kB;
# 2. installs it into a fresh venv WITH its dependencies (from the package index; pip's cache
#    makes a rerun fast), and lists what the venv holds next to the wheel's dependency closure:
#    anything else, or torch / onnx / typer importable, fails;
# 3. from outside the repository (nothing is imported from the source tree) loads BUNDLE (schema,
#    paths, every sha256, against the bundle.schema.json shipped in the wheel), generates every
#    digit, checks that torch, onnx and model_signing were never imported, and prints the sha256
#    of the uint8 bytes of generate([LABEL], seed=SEED) (default 7, 42); with EXPECTED_SHA256 it
#    exits 1 unless they match. With GOLDEN=DIR (z_K.npy, label_K.npy from a bundle's golden set
#    K) it also writes the float32 images of those inputs to DIR/image_K.npy.
# PYTHON (default: the project's .venv, else python3) makes the venv and needs `build` and pip;
# REPORT=FILE writes what was checked as JSON. 4. The on-device bench runs there both ways
# (`edgegen-runtime bench`, `python -m edgegen.runtime.bench`). Takes ~30-90 s.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
if [[ $# -eq 0 ]]; then
  cd "$REPO"
  exec "$REPO/.venv/bin/python" -m pytest -q -p no:cacheprovider "$REPO/tests/test_packaging.py" \
    -k runtime
fi
if [[ $# -ne 1 && $# -ne 4 ]]; then
  echo "usage: $0 BUNDLE [LABEL SEED EXPECTED_SHA256]" >&2
  exit 2
fi
BUNDLE=$(realpath "$1")
LABEL=${2:-7}
SEED=${3:-42}
EXPECTED=${4:-}
if [[ -z "${PYTHON:-}" ]]; then
  PYTHON=python3
  [[ -x "$REPO/.venv/bin/python" ]] && PYTHON="$REPO/.venv/bin/python"
fi
MAX_WHEEL_BYTES=200000
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

if [[ -z "${WHEEL:-}" ]]; then
  # a copy without caches or earlier build output, so the checkout is never written to
  (cd "$REPO" && tar --exclude=__pycache__ --exclude='*.egg-info' --exclude=build \
    -cf - runtime) | tar -xf - -C "$WORK"
  "$PYTHON" -m build --wheel --outdir "$WORK/wheels" "$WORK/runtime" >"$WORK/build.log" 2>&1 \
    || { cat "$WORK/build.log" >&2; exit 1; }
  WHEEL=$(ls "$WORK"/wheels/edgegen_runtime-*.whl)
fi
WHEEL=$(realpath "$WHEEL")
size=$(stat -c %s "$WHEEL")
echo "wheel: $(basename "$WHEEL") ($size bytes)"
if (( size > MAX_WHEEL_BYTES )); then
  echo "the wheel is $size bytes, over the $MAX_WHEEL_BYTES-byte target" >&2
  exit 1
fi

"$PYTHON" -m venv --without-pip "$WORK/venv"
VPY="$WORK/venv/bin/python"
# pip runs from $PYTHON against the fresh venv, which holds no pip or setuptools of its own:
# what is installed there is exactly the wheel and what it pulls in
"$PYTHON" -m pip --python "$VPY" --disable-pip-version-check -q install "$WHEEL" 2>&1 \
  | { grep -v "^WARNING: Location" || true; } >&2
SITE=$("$VPY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')

# the closure, computed by $PYTHON (it has `packaging`) over the venv's installed metadata
"$PYTHON" - "$SITE" "$WORK/closure.json" <<'PY'
import importlib.metadata as md
import json
import sys

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

site, out = sys.argv[1], sys.argv[2]
dists = {canonicalize_name(d.metadata["Name"]): d for d in md.distributions(path=[site])}
closure, todo = set(), ["edgegen-runtime"]
while todo:
    name = canonicalize_name(todo.pop())
    if name in closure:
        continue
    if name not in dists:
        sys.exit(f"{name} is required but not installed in the venv")
    closure.add(name)
    for text in dists[name].requires or []:
        req = Requirement(text)
        if req.marker is None or req.marker.evaluate({"extra": ""}):
            todo.append(req.name)
installed = {n: d.version for n, d in dists.items()}
extra = sorted(set(installed) - closure)
print("installed:", " ".join(f"{n}=={v}" for n, v in sorted(installed.items())))
print("closure of edgegen-runtime:", " ".join(sorted(closure)))
json.dump({"installed": installed, "closure": sorted(closure)}, open(out, "w"))
if extra:
    sys.exit(f"the venv holds more than edgegen-runtime's dependency closure: {extra}")
PY

cd "$WORK"
"$VPY" - "$BUNDLE" "$LABEL" "$SEED" "$EXPECTED" "${GOLDEN:-}" "$WORK/closure.json" \
  "${REPORT:-}" <<'PY'
import hashlib
import importlib.util
import json
import sys
from pathlib import Path

import numpy as np

from edgegen.runtime import Generator

bundle, label, seed, expected, golden, closure, report = sys.argv[1:8]
label, seed = int(label), int(seed)
heavy = ("torch", "torchvision", "onnx", "onnxscript", "typer", "rich", "model_signing")
found = [m for m in heavy if importlib.util.find_spec(m) is not None]
assert not found, f"{found} importable: the venv is not minimal"
g = Generator.load(bundle)
images = g.generate(list(range(g.n_classes)), seed=seed)
assert images.shape == (g.n_classes, 28, 28) and images.dtype.name == "uint8", images.shape
assert images.std() > 0, "blank images"
digest = hashlib.sha256(g.generate([label], seed=seed).tobytes()).hexdigest()
sets = 0
if golden:
    while (Path(golden) / f"z_{sets}.npy").is_file():
        z = np.load(Path(golden) / f"z_{sets}.npy")
        y = np.load(Path(golden) / f"label_{sets}.npy")
        np.save(Path(golden) / f"image_{sets}.npy", g.generate(y, z=z, output="float"))
        sets += 1
loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "onnx", "model_signing"))
assert g.signature["status"] in ("unsigned", "signed, not checked"), g.signature
assert not loaded, f"imported {loaded}"
where = sys.modules["edgegen.runtime"].__file__
print(f"{where} in a minimal venv: label {label} seed {seed} sha256 {digest}")
if report:
    Path(report).write_text(json.dumps({**json.load(open(closure)), "module": where,
                                        "sha256": digest, "golden_sets": sets,
                                        "python": sys.executable}))
if expected and digest != expected:
    sys.exit(f"MISMATCH: expected sha256 {expected}")
PY

# The on-device benchmark runs there too, both ways (`edgegen-runtime bench`, the wheel's console
# script, and `python -m edgegen.runtime.bench`), on a tiny budget; its JSON is checked (every
# variant timed, torch absent).
QUICK=(--batch 1,2 --iters 3 --rounds 1 --warmup-iters 1 --warmup-s 0 --noise-window 0)
"$WORK/venv/bin/edgegen-runtime" bench "$BUNDLE" "${QUICK[@]}" --json "$WORK/script.json" >/dev/null
"$VPY" -m edgegen.runtime.bench "$BUNDLE" "${QUICK[@]}" --json "$WORK/module.json" >/dev/null
"$VPY" - "$WORK/script.json" "$WORK/module.json" <<'PY'
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
