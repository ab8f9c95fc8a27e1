"""Fixtures for the embedding tests: the npm package (packed, installed in a fresh folder), the
examples that use it, Chromium, tiny bundles of every family and the "same bytes" cases.

npm dependencies are installed with ``npm ci --ignore-scripts`` when a checkout lacks them (the
command ``make setup`` and CI run; onnxruntime-node's install script would download GPU
binaries, and its CPU binaries ship in the package). Without node/npm or Chromium a test skips.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import json
import os
import queue
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
JS = ROOT / "js"
SERVE = EXAMPLES / "web" / "serve.py"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run",
                  "--no-default-browser-check", "--disable-extensions",
                  "--remote-debugging-port=0"]  # keeps the headless browser open until stopped
PAIRS = 1000  # (label, seed) pairs per family in the "same bytes" cases (CI's bounded run)


def run(cmd: list[str | Path], cwd: Path, timeout: float = 600, **kw: Any
        ) -> subprocess.CompletedProcess[str]:
    """A command's result; ``pytest.fail`` with its output when it exits non-zero."""
    done = subprocess.run([str(c) for c in cmd], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, **kw)
    if done.returncode != 0:
        pytest.fail(f"`{' '.join(map(str, cmd))}` in {cwd} exited {done.returncode}:\n"
                    f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return done


def _npm() -> str:
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        pytest.skip("node/npm are not installed (Debian: apt-get install -y nodejs npm)")
    return npm


def _npm_ci(folder: Path, *packages: str) -> Path:
    """``npm ci`` when one of ``packages`` is missing (a checkout older than its lockfile)."""
    if not all((folder / "node_modules" / p / "package.json").is_file() for p in packages):
        run([_npm(), "ci", "--ignore-scripts", "--no-audit", "--no-fund"], folder)
    return folder


@pytest.fixture(scope="session")
def js_dev() -> Path:
    """js/ with its dev dependencies (ajv for `npm pack`, typescript, onnxruntime-*)."""
    return _npm_ci(JS, "ajv", "typescript", "onnxruntime-node", "onnxruntime-web")


@pytest.fixture(scope="session")
def node_example(js_dev: Path) -> Path:
    """examples/node with its dependencies (edgegen-runtime: a link to js/)."""
    return _npm_ci(EXAMPLES / "node", "onnxruntime-node", "edgegen-runtime")


@pytest.fixture(scope="session")
def web_example(js_dev: Path) -> Path:
    """examples/web with onnxruntime-web, ajv-dist and the package (the page needs no node)."""
    return _npm_ci(EXAMPLES / "web", "onnxruntime-web", "ajv-dist", "edgegen-runtime")


@pytest.fixture(scope="session")
def chromium() -> str:
    for name in ("/usr/bin/chromium", "chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    message = "chromium is not installed (Debian: apt-get install -y chromium)"
    if os.environ.get("CI") == "true":  # .ci/run installs it: CI never skips browser parity
        pytest.fail(message)
    pytest.skip(message)


# --------------------------------------------------------------------------- the npm package


@pytest.fixture(scope="session")
def js_pack(js_dev: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """``npm pack`` of js/ (its prepack copies the schema in): npm's --json record, plus
    ``path`` (the tarball) and ``tgz_bytes``."""
    out = tmp_path_factory.mktemp("npm-pack")
    done = run([_npm(), "pack", "--json", "--pack-destination", out], js_dev)
    info = json.loads(done.stdout)[0]
    info["path"] = out / info["filename"]
    info["tgz_bytes"] = info["path"].stat().st_size
    return info


@pytest.fixture(scope="session")
def js_install(js_pack: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh folder holding the packed tarball, onnxruntime-node and onnxruntime-web (at the
    versions js/ tests with) and a copy of js/test: where the package's tests run."""
    folder = tmp_path_factory.mktemp("npm-consumer")
    (folder / "package.json").write_text(json.dumps(
        {"name": "edgegen-runtime-consumer", "private": True, "type": "module"}))
    dev = json.loads((JS / "package.json").read_text())["devDependencies"]
    run([_npm(), "install", "--prefer-offline", "--ignore-scripts", "--no-audit", "--no-fund",
         js_pack["path"], f"onnxruntime-node@{dev['onnxruntime-node']}",
         f"onnxruntime-web@{dev['onnxruntime-web']}"], folder, timeout=900)
    shutil.copytree(JS / "test", folder / "test")
    return folder


@pytest.fixture(scope="session")
def run_cmd() -> Callable[..., subprocess.CompletedProcess[str]]:
    """``run_cmd(cmd, cwd, timeout=600, **kw)``: see ``run``."""
    return run


@pytest.fixture(scope="session")
def web_serve() -> Any:
    """examples/web/serve.py as a module (``make_server``, ``serve_in_thread``)."""
    return serve_module()


def serve_module() -> Any:
    """examples/web/serve.py as a module (it is a script, not part of a package)."""
    spec = importlib.util.spec_from_file_location("edgegen_web_serve", SERVE)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _chromium_report(chromium: str, url: str, reports: queue.Queue, tmp_path: Path,
                     timeout: float) -> dict[str, Any]:
    log = tmp_path / "chromium.log"
    profile = tmp_path / f"profile-{len(list(tmp_path.glob('profile-*')))}"
    with log.open("wb") as out:
        browser = subprocess.Popen([chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}",
                                    url], stdout=out, stderr=subprocess.STDOUT)
        try:
            return reports.get(timeout=timeout)
        except queue.Empty:
            tail = log.read_text(errors="replace")[-3000:]
            pytest.fail(f"the page reported nothing within {timeout:.0f} s ({url}); "
                        f"chromium said:\n{tail}")
        finally:
            browser.terminate()
            try:
                browser.wait(timeout=20)
            except subprocess.TimeoutExpired:
                browser.kill()
                browser.wait()


@pytest.fixture
def open_page(chromium: str, tmp_path: Path) -> Callable[..., dict[str, Any]]:
    """``open_page(bundle, key_file=None, timeout=180, **query)``: examples/web's page on
    ``bundle`` in headless Chromium; returns what it POSTs to /report."""
    serve = serve_module()

    def open_(bundle: Path, key_file: Path | None = None, timeout: float = 180,
              **query: str) -> dict[str, Any]:
        reports: queue.Queue[dict[str, Any]] = queue.Queue()
        server = serve.make_server(bundle, 0, reports.put, public_key=key_file)
        serve.serve_in_thread(server)
        url = (f"http://127.0.0.1:{server.server_address[1]}/web/?"
               + urlencode({**query, "report": "/report"}))
        try:
            return _chromium_report(chromium, url, reports, tmp_path, timeout)
        finally:
            server.shutdown()
            server.server_close()

    return open_


@pytest.fixture
def open_package_page(chromium: str, tmp_path: Path) -> Callable[..., dict[str, Any]]:
    """``open_package_page(folder, page, bundles, files)``: a page of a fresh npm install
    (``folder``) with ``bundles`` under /bundles/NAME/ and ``files`` at their URL paths."""
    serve = serve_module()

    def open_(folder: Path, page: str, bundles: dict[str, Path], files: dict[str, Path],
              timeout: float = 600) -> dict[str, Any]:
        reports: queue.Queue[dict[str, Any]] = queue.Queue()
        server = serve.make_server(None, 0, reports.put, root=folder, bundles=bundles,
                                   files=files)
        serve.serve_in_thread(server)
        try:
            return _chromium_report(chromium, f"http://127.0.0.1:{server.server_address[1]}/"
                                    f"{page}", reports, tmp_path, timeout)
        finally:
            server.shutdown()
            server.server_close()

    return open_


# --------------------------------------------------------------------------- tiny bundles


def _tiny_bundle(tmp_path_factory: pytest.TempPathFactory, idx_dir: Path, evaluator: Path,
                 arch: str) -> Path:
    """A run of ``arch`` trained for 12 steps of 64 digits, exported (fp32, fp16, int8)."""
    from edgegen.export.bundler import ExportConfig, export_bundle
    from edgegen.training.train import TrainConfig, train

    run_dir = evaluator.parent / f"{arch}-for-examples"
    train(TrainConfig(out=run_dir, arch=arch, max_steps=12, width=8, data_dir=idx_dir,
                      fidelity_samples=50))
    out = tmp_path_factory.mktemp("bundles") / arch
    export_bundle(ExportConfig(checkpoint=run_dir, out=out, golden_sets=2,
                               calibration_samples=40, deviation_samples=60))
    return out


@pytest.fixture(scope="session")
def tiny_cmlp_bundle(tmp_path_factory: pytest.TempPathFactory, idx_dir: Path,
                     tiny_evaluator: Path) -> Path:
    return _tiny_bundle(tmp_path_factory, idx_dir, tiny_evaluator, "cmlp")


@pytest.fixture(scope="session")
def tiny_cvae_bundle(tmp_path_factory: pytest.TempPathFactory, idx_dir: Path,
                     tiny_evaluator: Path) -> Path:
    return _tiny_bundle(tmp_path_factory, idx_dir, tiny_evaluator, "cvae")


def add_ort_format(root: Path) -> None:
    """Add ORT-format copies of every model to the bundle at ``root`` as `edgegen export
    --ort-format` does (onnxruntime's own converter, Runtime optimization style, type
    reduction), with the manifest's ``ort_format`` section and their sha256 under ``files``."""
    import tempfile

    import onnxruntime

    from edgegen.runtime.bundle import file_entry

    manifest = json.loads((root / "manifest.json").read_text())
    onnx_files = sorted(r for r in manifest["files"] if r.endswith(".onnx"))
    with tempfile.TemporaryDirectory() as tmp:
        src, out = Path(tmp) / "in", Path(tmp) / "out"
        for rel in onnx_files:
            (src / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(root / rel, src / rel)
        run([sys.executable, "-m", "onnxruntime.tools.convert_onnx_models_to_ort",
             "--optimization_style", "Runtime", "--enable_type_reduction", "--output_dir", out,
             src], root)
        models = {rel: rel[:-len(".onnx")] + ".ort" for rel in onnx_files}
        for rel, ort_rel in models.items():
            shutil.copy(out / (rel[:-len(".onnx")] + ".with_runtime_opt.ort"), root / ort_rel)
        shutil.copy(next(out.glob("*.config")), root / "required_operators.config")
    for rel in [*models.values(), "required_operators.config"]:
        manifest["files"][rel] = file_entry(root / rel)
    manifest["ort_format"] = {"onnxruntime": onnxruntime.__version__,
                              "optimization_style": "Runtime",
                              "required_operators": "required_operators.config",
                              "type_reduction": True, "models": models}
    (root / "manifest.json").write_text(json.dumps(manifest, indent=2))


@pytest.fixture(scope="session")
def ort_bundle(tmp_path_factory: pytest.TempPathFactory, tiny_bundle: Path) -> Path:
    """A copy of ``tiny_bundle`` with ORT-format models. Never modify it in place."""
    root = Path(shutil.copytree(tiny_bundle, tmp_path_factory.mktemp("ort") / "cdcgan-ort"))
    add_ort_format(root)
    return root


# --------------------------------------------------------------------------- same bytes


def pairs(n: int) -> tuple[list[int], list[str]]:
    """``n`` (label, seed) pairs: labels cycling, seeds spread over [0, 2**64) with the edges
    (0, 2**53 + 1, 2**64 - 1) first."""
    seeds = [0, 2**53 + 1, 2**64 - 1]
    seeds += [(i * 0x9E3779B97F4A7C15 + 12345) % 2**64 for i in range(n - len(seeds))]
    return [i % 10 for i in range(n)], [str(s) for s in seeds[:n]]


def _b64(images: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(images).tobytes()).decode("ascii")


def _jobs(g: Any, n_pairs: int) -> list[dict[str, Any]]:
    """The jobs of one bundle, each with Python's bytes (``expected``): goldens' own latents,
    ``n_pairs`` pairs on fp32, fewer on the other variants, truncation, the guard, and for an
    iterative family its sampler at other settings (the denoiser loop)."""
    from edgegen.runtime.latent import latent

    jobs: list[dict[str, Any]] = []
    for k, s in enumerate(g.bundle.manifest["golden"]["sets"]):
        z = latent(int(s["seed"]), s["batch"], g.z_dim, s.get("start", 0))
        jobs.append({"name": f"golden set {k}", "labels": s["labels"], "variant": "fp32",
                     "latent": {"seed": s["seed"], "start": s.get("start", 0)},
                     "expected": _b64(g.generate(s["labels"], z=z))})
    specs = [("fp32", n_pairs, {}), ("fp16", 200, {}), ("int8", 200, {}),
             ("fp32", 100, {"truncation": 0.7}), ("int8", 50, {"guard": True})]
    if g.sampler is not None:
        specs += [("fp32", 100, {"steps": 5, "guidance": 1.5}),
                  ("fp32", 100, {"steps": 2, "guidance": 1.0})]
    for variant, n, extra in specs:
        if variant not in g.variants:
            continue
        labels, seeds = pairs(n)
        res = g.run(labels, seeds=[int(s) for s in seeds], variant=variant, **extra)
        name = f"{variant} {n} pairs" + "".join(f" {k}={v}" for k, v in extra.items())
        job = {"name": name, "labels": labels, "seeds": seeds, "variant": variant, **extra,
               "expected": _b64(res.images)}
        if extra.get("guard"):
            job["attempts"] = res.attempts.tolist()
        jobs.append(job)
    return jobs


def _ort_jobs(root: Path, n_pairs: int) -> list[dict[str, Any]]:
    """Python's bytes from the .ort files (sessions made from their checked bytes)."""
    from edgegen.runtime.bundle import load_bundle
    from edgegen.runtime.latent import latent_for_seeds
    from edgegen.runtime.postprocess import to_pixels
    from edgegen.runtime.providers import make_session
    from edgegen.runtime.sessions import run_generator

    bundle = load_bundle(root)
    models = bundle.manifest["ort_format"]["models"]
    jobs = []
    for variant, n in (("fp32", n_pairs), ("int8", 200)):
        session = make_session(bundle.read(models[bundle.variant_file(variant)]))
        labels, seeds = pairs(n)
        z = latent_for_seeds([int(s) for s in seeds], bundle.z_dim)
        images = run_generator(session, z, np.array(labels, np.int64), batch=64)
        jobs.append({"name": f"{variant} {n} pairs (.ort)", "labels": labels, "seeds": seeds,
                     "variant": variant, "expected": _b64(to_pixels(images))})
    return jobs


@pytest.fixture(scope="session")
def same_bytes_cases(tmp_path_factory: pytest.TempPathFactory, tiny_bundle: Path,
                     tiny_cmlp_bundle: Path, tiny_cvae_bundle: Path, tiny_cflow_bundle: Path,
                     ort_bundle: Path) -> dict[str, Any]:
    """cases.json for js/test/cases.js: a bundle of each family and the ORT-format copy, under
    ``bundles/NAME``, with Python's bytes of every job. Returns {"file", "bundles", "cases"}."""
    from edgegen.runtime import Generator

    folder = tmp_path_factory.mktemp("same-bytes")
    sources = {"cdcgan": tiny_bundle, "cmlp": tiny_cmlp_bundle, "cvae": tiny_cvae_bundle,
               "cflow": tiny_cflow_bundle, "cdcgan-ort": ort_bundle}
    bundles = {name: Path(shutil.copytree(src, folder / "bundles" / name))
               for name, src in sources.items()}
    cases = {"pairs": PAIRS, "bundles": []}
    for name, root in bundles.items():
        if name.endswith("-ort"):
            cases["bundles"].append({"name": name, "format": "ort",
                                     "jobs": _ort_jobs(root, PAIRS)})
        else:
            cases["bundles"].append({"name": name, "format": "onnx",
                                     "jobs": _jobs(Generator.load(root), PAIRS)})
    file = folder / "cases.json"
    file.write_text(json.dumps(cases))
    return {"file": file, "bundles": bundles, "cases": cases,
            "sha256": hashlib.sha256(file.read_bytes()).hexdigest()}
