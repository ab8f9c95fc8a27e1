"""Fixtures for the embedding examples: Node.js and Chromium, found or the test is skipped.

The examples' npm dependencies are installed here with ``npm ci --ignore-scripts`` when a
checkout lacks them (the same command CI and a developer run; onnxruntime-node's install script
would download GPU binaries, and its CPU binaries ship in the package).
"""

from __future__ import annotations

import importlib.util
import os
import queue
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SERVE = EXAMPLES / "web" / "serve.py"  # the page's server (also the tests')


def _npm_ci(folder: Path, *packages: str) -> Path:
    """``npm ci`` when one of ``packages`` is missing (a checkout older than its lockfile)."""
    if not all((folder / "node_modules" / p / "package.json").is_file() for p in packages):
        npm = shutil.which("npm")
        if npm is None:
            pytest.skip(f"{folder}/node_modules is missing and npm is not installed "
                        "(Debian: apt-get install -y npm)")
        done = subprocess.run([npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund"],
                              cwd=folder, capture_output=True, text=True, timeout=600)
        if done.returncode != 0:
            pytest.fail(f"`npm ci --ignore-scripts` failed in {folder}:\n{done.stderr[-2000:]}")
    return folder


@pytest.fixture(scope="session")
def node_example() -> Path:
    """examples/node with its dependencies; skipped only when there is no ``node``."""
    if shutil.which("node") is None:
        pytest.skip("node is not installed (Debian: apt-get install -y nodejs npm)")
    return _npm_ci(EXAMPLES / "node", "onnxruntime-node", "ajv")


@pytest.fixture(scope="session")
def web_example() -> Path:
    """examples/web with onnxruntime-web installed (the page needs no node, only its files)."""
    return _npm_ci(EXAMPLES / "web", "onnxruntime-web", "ajv-dist")


@pytest.fixture(scope="session")
def chromium() -> str:
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    message = "chromium is not installed (Debian: apt-get install -y chromium)"
    if os.environ.get("CI") == "true":  # .ci/run installs it: CI never skips browser parity
        pytest.fail(message)
    pytest.skip(message)


# --------------------------------------------------------------------------- the web page

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--no-first-run", "--no-default-browser-check", "--disable-extensions",
         "--remote-debugging-port=0"]  # keeps the headless browser open until it is stopped


def _serve_module() -> Any:
    spec = importlib.util.spec_from_file_location("edgegen_web_serve", SERVE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run_page(chromium: str, bundle: Path, tmp_path: Path, timeout: float = 180,
             key_file: Path | None = None, **query: str) -> dict[str, Any]:
    """Open the page on ``bundle`` with ``query`` and return what it reports (``key_file``: a
    PEM served at /public_key.pem; ``public_key="/public_key.pem"`` in the query uses it)."""
    serve = _serve_module()
    reports: queue.Queue[dict[str, Any]] = queue.Queue()
    server = serve.make_server(bundle, 0, reports.put, public_key=key_file)
    serve.serve_in_thread(server)
    url = (f"http://127.0.0.1:{server.server_address[1]}/web/?"
           + urlencode({**query, "report": "/report"}))
    log = tmp_path / "chromium.log"
    profile = tmp_path / "profile"
    with log.open("wb") as out:
        browser = subprocess.Popen([chromium, *FLAGS, f"--user-data-dir={profile}", url],
                                   stdout=out, stderr=subprocess.STDOUT)
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
            server.shutdown()
            server.server_close()


@pytest.fixture(scope="session")
def web_serve() -> Any:
    """examples/web/serve.py as a module (``make_server``, ``serve_in_thread``)."""
    return _serve_module()


@pytest.fixture(scope="session")
def run_page() -> Callable[..., dict[str, Any]]:
    """``run_page(chromium, bundle, tmp_path, timeout=180, key_file=None, **query)``: see
    ``_run_page``."""
    return _run_page
