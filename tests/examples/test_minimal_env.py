"""A fresh venv with only numpy, onnxruntime, jsonschema and the edgegen-runtime wheel (--no-deps)
generates Python's bytes (the wheel ships bundle.schema.json: loading validates against it) and
runs the on-device benchmark, as its console script and as ``python -m``."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

from edgegen.runtime import Generator

SCRIPT = Path(__file__).resolve().parents[2] / "examples" / "python" / "check_minimal_env.sh"


def test_minimal_venv_generates_the_same_bytes(tiny_bundle: Path) -> None:
    """Builds a venv and installs numpy + onnxruntime + jsonschema + the edgegen-runtime wheel."""
    want = hashlib.sha256(Generator.load(tiny_bundle).generate([3], seed=99).tobytes())
    done = subprocess.run(["bash", str(SCRIPT), str(tiny_bundle), "3", "99", want.hexdigest()],
                          capture_output=True, text=True, timeout=900,
                          env={**os.environ, "PYTHON": sys.executable})
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"sha256 {want.hexdigest()}" in done.stdout
    installed = done.stdout.split("installed: ")[1].splitlines()[0].split()
    names = {line.split("==")[0].lower() for line in installed}
    assert {"edgegen-runtime", "numpy", "onnxruntime", "jsonschema"} <= names, names
    assert not names & {"torch", "onnx", "torchvision", "onnxscript", "typer", "model-signing"}
    n = 3 * 2  # fp32, fp16, int8 at batch 1 and 2
    assert (f"bench in a minimal venv: {n} results (edgegen-runtime bench), {n} results "
            "(python -m edgegen.runtime.bench), torch not installed") in done.stdout, done.stdout
