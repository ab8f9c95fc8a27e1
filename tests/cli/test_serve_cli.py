"""``edgegen serve`` refuses a bad command line with exit 2 before a worker or Ray starts (no
process is created); serving itself is tested in tests/serve."""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from edgegen.cli.app import app
from edgegen.runtime.providers import available
from edgegen.serve.processes import descendants

runner = CliRunner()


def _refused(args: list[str], match: str) -> None:
    before = descendants(os.getpid())
    res = runner.invoke(app, ["serve", *args])
    assert res.exit_code == 2, res.output
    assert match in res.output and "Traceback" not in res.output
    assert descendants(os.getpid()) <= before  # nothing was started
    ray = sys.modules.get("ray")
    assert ray is None or not ray.is_initialized()


def test_bad_bundle_exits_2(tmp_path: Path) -> None:
    _refused([str(tmp_path / "nowhere")], "does not exist")
    (tmp_path / "empty").mkdir()
    _refused([str(tmp_path / "empty")], "has no manifest.json")


@pytest.mark.parametrize("port", ["0", "70000", "-1"])
def test_bad_port_exits_2(tiny_bundle: Path, port: str) -> None:
    _refused([str(tiny_bundle), "--port", port], "--port must be an integer in 1..65535")


def test_busy_port_exits_2(tiny_bundle: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        _refused([str(tiny_bundle), "--port", str(s.getsockname()[1])], "already in use")


def test_an_absent_provider_exits_2(tiny_bundle: Path) -> None:
    if "CUDAExecutionProvider" in available():
        pytest.skip("this machine has the CUDA provider: nothing to refuse")
    _refused([str(tiny_bundle), "--provider", "cuda"], "CPUExecutionProvider")


def test_bad_options_exit_2(tiny_bundle: Path) -> None:
    b = str(tiny_bundle)
    _refused([b, "--variant", "fp64", "--port", "1"], "no 'fp64' variant")
    _refused([b, "--replicas", "0"], "--replicas must be positive")
    _refused([b, "--engine", "ray", "--address", "nowhere"], "expected 'auto' or HOST:PORT")
    _refused([b, "--address", "auto"], "options of --engine ray")
    _refused([b, "--ingress", "nginx"], "expected one of proxy, haproxy")
    _refused([b, "--engine", "k8s"], "expected one of local, ray")
    _refused([b, "--workers", "-1"], "--workers must be >= 0")
    _refused([b, "--port", "8123", "--grpc-port", "8123"], "is also --port")
    _refused([b, "--engine", "ray", "--grpc-port", "8124"], "served by the local engine")
    _refused([b, "--steps", "4,8"], "has none; leave them out")
    _refused([b, "--steps", "4,x"], "--steps takes comma-separated integers")
    _refused([b, "--guidance", "50"], "--guidance 50.0")
    _refused([b, "--max-delay-ms", "-1"], "--max-delay-ms must be >= 0")
    _refused([b, "--name", "a/b"], "URL path segment")
