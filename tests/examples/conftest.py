"""Fixtures for the embedding examples: Node.js and Chromium, found or the test is skipped.

The examples' npm dependencies are installed here with ``npm ci --ignore-scripts`` when a
checkout lacks them (the same command CI and a developer run; onnxruntime-node's install script
would download GPU binaries, and its CPU binaries ship in the package).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


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
    pytest.skip("chromium is not installed (Debian: apt-get install -y chromium)")
