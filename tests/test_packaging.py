"""The two distributions as a user gets them: both wheels built with ``python -m build`` from a
copy of the tree (the checkout is never written to), each installed from its wheel (not
editable) into a fresh venv and run from outside the source tree.

* ``edgegen-runtime``: a venv holding exactly its dependency closure (numpy, onnxruntime,
  jsonschema and what they pull in, from the package index), no torch, no onnx, no typer; the
  wheel is at most 200 kB and reproduces a bundle's golden outputs and Python's uint8 bytes
  (``examples/python/check_minimal_env.sh`` does the work; this test gives it the wheel).
* ``edgegen``: installed with the runtime wheel by ``pip install --no-index``, its dependencies
  resolved against the project's own venv (read-only, through a ``.pth`` view without the
  editable edgegen distributions: torch is ~3 GB and is not installed again); ``edgegen
  --version`` and a short train -> export -> verify run from the installed wheel.

Slow (~2-3 min on 2 cores: two builds, two venvs, three CLI runs); ``make test`` and CI run
them; ``pytest -m "not slow"`` leaves them out while iterating.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tomllib
from pathlib import Path

import numpy as np
import pytest

from edgegen.core import __version__ as toolchain_version
from edgegen.runtime import __version__ as runtime_version

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "examples" / "python" / "check_minimal_env.sh"
MAX_RUNTIME_WHEEL = 200_000  # bytes (issue 20's target)
HEAVY = {"torch", "torchvision", "onnx", "onnxscript", "typer", "rich", "model-signing"}
COPY_IGNORE = shutil.ignore_patterns("__pycache__", "*.egg-info", "build", "dist", "*.pyc")


def test_both_distributions_have_one_version_and_the_toolchain_pins_the_runtime() -> None:
    """Released together: the same version, and the toolchain (and its extras that reach into
    the runtime's) require exactly that runtime."""
    assert toolchain_version == runtime_version
    top = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    runtime = tomllib.loads((ROOT / "runtime" / "pyproject.toml").read_text())["project"]
    assert runtime["name"] == "edgegen-runtime" and "version" in runtime["dynamic"]
    assert f"edgegen-runtime=={runtime_version}" in top["dependencies"]
    pins = [r for reqs in top["optional-dependencies"].values() for r in reqs
            if r.startswith("edgegen-runtime")]
    assert pins and all(r.endswith(f"=={runtime_version}") for r in pins), pins


def _env() -> dict[str, str]:
    """The environment of a user's shell: nothing that points at the source tree or the data."""
    drop = {"PYTHONPATH", "EDGEGEN_DATA_DIR", "VIRTUAL_ENV", "PYTHONHOME"}
    return {k: v for k, v in os.environ.items() if k not in drop}


def _run(cmd: list[str | Path], cwd: Path, timeout: float = 300,
         env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([str(c) for c in cmd], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=env or _env())
    assert done.returncode == 0, f"{cmd}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


def _build_output_in_checkout() -> dict[str, int]:
    """What setuptools writes when it builds in place (the editable install's egg-info is there
    already): every such file and folder -> its mtime."""
    found = []
    for base in (ROOT, ROOT / "runtime"):
        for top in [base / "build", base / "dist", *base.glob("src/*.egg-info")]:
            found += [top, *top.rglob("*")] if top.exists() else []
    return {str(p): p.stat().st_mtime_ns for p in found}


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Both wheels, built side by side by ``python -m build`` (isolated: each in a fresh build
    environment with the ``setuptools`` its pyproject asks for) from copies of the sources."""
    work = tmp_path_factory.mktemp("build")
    toolchain = work / "edgegen"
    toolchain.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(ROOT / name, toolchain / name)
    shutil.copytree(ROOT / "src", toolchain / "src", ignore=COPY_IGNORE)
    shutil.copytree(ROOT / "runtime", work / "runtime", ignore=COPY_IGNORE)
    dist = work / "dist"
    before = _build_output_in_checkout()
    builds = [subprocess.Popen([sys.executable, "-m", "build", "--wheel", "--outdir", str(dist),
                                str(src)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, env=_env())
              for src in (toolchain, work / "runtime")]
    for proc in builds:
        out, _ = proc.communicate(timeout=600)
        assert proc.returncode == 0, out[-4000:]
    found = {p.name.split("-")[0]: p for p in dist.glob("*.whl")}
    assert set(found) == {"edgegen", "edgegen_runtime"}, found
    assert _build_output_in_checkout() == before  # nothing written into the checkout
    return found


@pytest.mark.slow
def test_runtime_wheel_alone_in_a_fresh_venv(wheels: dict[str, Path], tiny_bundle: Path,
                                             tmp_path: Path) -> None:
    from edgegen.export.golden import read_tensor
    from edgegen.runtime import Generator
    from edgegen.runtime.bundle import load_bundle

    wheel = wheels["edgegen_runtime"]
    assert wheel.stat().st_size <= MAX_RUNTIME_WHEEL, wheel.stat().st_size
    assert wheel.name == f"edgegen_runtime-{runtime_version}-py3-none-any.whl"
    # the golden sets' inputs as .npy (the venv has no onnx to read TensorProto files)
    bundle, golden = load_bundle(tiny_bundle), tmp_path / "golden"
    golden.mkdir()
    for k in range(len(bundle.golden_sets())):
        inputs, output = bundle.golden_files(k)
        np.save(golden / f"z_{k}.npy", read_tensor(tiny_bundle / inputs[0]))
        np.save(golden / f"label_{k}.npy", read_tensor(tiny_bundle / inputs[1]))
    want = Generator.load(tiny_bundle).generate([3], seed=99).tobytes()
    digest = hashlib.sha256(want).hexdigest()
    report = tmp_path / "report.json"
    done = _run(["bash", SCRIPT, tiny_bundle, "3", "99", digest], cwd=tmp_path, timeout=600,
                env={**_env(), "PYTHON": sys.executable, "WHEEL": str(wheel),
                     "GOLDEN": str(golden), "REPORT": str(report)})
    assert f"sha256 {digest}" in done.stdout
    got = json.loads(report.read_text())
    installed, closure = set(got["installed"]), set(got["closure"])
    # exactly the closure of edgegen-runtime's requirements: the three and what they pull in,
    # nothing of the toolchain (no torch, onnx or typer)
    assert installed == closure, installed ^ closure
    assert {"edgegen-runtime", "numpy", "onnxruntime", "jsonschema"} <= installed
    assert not installed & HEAVY and "edgegen" not in installed
    assert got["installed"]["edgegen-runtime"] == runtime_version
    assert not Path(got["module"]).is_relative_to(ROOT)  # the wheel's copy, not runtime/src
    # the bundle's golden outputs, from the wheel's runtime in that venv
    assert got["golden_sets"] == len(bundle.golden_sets()) > 0
    atol = bundle.manifest["golden"].get("suggested_atol", 1e-5)
    import onnxruntime  # noqa: I001 - the dev venv's, to compare versions

    for k in range(got["golden_sets"]):
        image = np.load(golden / f"image_{k}.npy")
        expected = read_tensor(tiny_bundle / bundle.golden_files(k)[1])
        np.testing.assert_allclose(image, expected, rtol=0, atol=atol)
        if got["installed"]["onnxruntime"] == onnxruntime.__version__:  # the same kernels
            ours = Generator.load(tiny_bundle).generate(np.load(golden / f"label_{k}.npy"),
                                                        z=np.load(golden / f"z_{k}.npy"),
                                                        output="float")
            assert image.tobytes() == ours.tobytes()


def _view_of_project_packages(target: Path) -> Path:
    """A folder of links to every third-party package installed in this (the project's) venv,
    without edgegen's own (editable) distributions or any ``.pth`` hook: put on a fresh venv's
    path, it supplies torch & co. read-only while edgegen itself must come from the wheels."""
    site = Path(sysconfig.get_paths()["purelib"])
    target.mkdir()
    for entry in site.iterdir():
        name = entry.name.lower()
        if name.startswith(("edgegen", "__editable__")) or name.endswith(".pth") \
                or name == "__pycache__":
            continue
        (target / entry.name).symlink_to(entry)
    return target


@pytest.mark.slow
def test_toolchain_wheel_trains_exports_and_verifies_from_outside_the_tree(
        wheels: dict[str, Path], idx_dir: Path, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True,
                   timeout=120)
    vpy = venv / "bin" / "python"
    vsite = Path(subprocess.run([str(vpy), "-c", "import sysconfig; print(sysconfig.get_paths()"
                                 "['purelib'])"], capture_output=True, text=True,
                                check=True).stdout.strip())
    (vsite / "project_packages.pth").write_text(
        str(_view_of_project_packages(tmp_path / "view")) + "\n")
    # --no-index: every requirement of both wheels (and of the extras named) must already be
    # met by the view; only the two wheels are installed
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    _run([sys.executable, "-m", "pip", "--python", vpy, "--disable-pip-version-check",
          "install", "--no-index", wheels["edgegen_runtime"],
          f"{wheels['edgegen']}[serve,sign,openvino]"], cwd=outside)
    edgegen = venv / "bin" / "edgegen"
    assert _run([edgegen, "--version"], cwd=outside).stdout.strip() == \
        f"edgegen {toolchain_version}"
    where = json.loads(_run([vpy, "-c", "import json, sys, edgegen.core, edgegen.runtime, "
                             "edgegen.cli.app as a; print(json.dumps([edgegen.core.__file__, "
                             "edgegen.runtime.__file__, a.__file__, sys.path]))"],
                            cwd=outside).stdout)
    for module in where[:3]:
        assert Path(module).is_relative_to(vsite), module  # installed from the wheels
    assert not [p for p in where[3] if p and Path(p).resolve().is_relative_to(ROOT)], where[3]

    run, bundle = outside / "run", outside / "bundle"
    _run([edgegen, "train", "--out", run, "--max-steps", "3", "--width", "8", "--data-dir",
          idx_dir, "--threads", "1"], cwd=outside)
    _run([edgegen, "export", run, "--out", bundle, "--precision", "fp32", "--golden-sets", "1"],
         cwd=outside, timeout=600)
    done = _run([edgegen, "verify", bundle, "--batch", "1,8", "--repeats", "2", "--json",
                 outside / "verify.json"], cwd=outside)
    assert re.search(r"PASS: [1-9]\d* passed, 0 failed", done.stdout), done.stdout
    assert json.loads((outside / "verify.json").read_text())["passed"] is True
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["provenance"]["edgegen"] == toolchain_version
    assert manifest["provenance"]["checkpoint"]["step"] == 3
