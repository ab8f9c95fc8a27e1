"""Real ``edgegen serve`` processes for the server tests, one per engine for the whole session.

``server`` is parametrized over the engines: ``local`` (2 worker processes and gRPC; starts in
a few seconds) and ``ray`` (one Ray Serve replica; Ray's cold start is the cost, ~20 s on a
quiet 2-core machine). pytest runs every test of one engine before it starts the next, and
``test_server.py``'s last test stops each with SIGTERM while requests are in flight. Whatever
happens, teardown stops the server and checks by process id that nothing it started (workers;
Ray's GCS, raylet, replicas) is left; survivors are killed and the test fails. ``start_server``
starts one more (a cflow bundle, say) for a single test, the same way.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from edgegen.serve.config import free_port
from edgegen.serve.processes import alive, descendants

SETTINGS = {"max_batch": 4, "max_delay_ms": 2.0, "max_ongoing": 4, "max_queued": 2}
WORKERS = 2  # local engine


@dataclass
class Server:
    proc: subprocess.Popen[str]
    port: int
    bundle: Path
    name: str
    log: Path
    engine: str = "local"
    grpc_port: int | None = None
    pids: set[int] = field(default_factory=set)  # every process seen below it while serving

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
        finally:
            conn.close()

    def stop(self, timeout_s: float = 120.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout_s)


def _wait_ready(server: Server, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise RuntimeError(f"edgegen serve exited {server.proc.returncode}:\n"
                               f"{server.log.read_text()[-3000:]}")
        server.pids |= descendants(server.proc.pid)
        try:
            if server.request("GET", "/v2/health/ready")[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"edgegen serve not ready after {timeout_s} s:\n"
                       f"{server.log.read_text()[-3000:]}")


@contextlib.contextmanager
def start_server(bundle: Path, folder: Path, engine: str = "local", args: tuple[str, ...] = (),
                 grpc: bool = False) -> Iterator[Server]:
    """``edgegen serve`` as a subprocess; stopped, and every process below it checked gone."""
    port = free_port()
    grpc_port = free_port() if grpc else None
    log = folder / "serve.log"
    cmd = [sys.executable, "-m", "edgegen", "serve", str(bundle), "--port", str(port),
           "--engine", engine, "--json", str(log.with_suffix(".json")), *args]
    if grpc_port is not None:
        cmd += ["--grpc-port", str(grpc_port)]
    with open(log, "w") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, text=True,
                                env={**os.environ, "RAY_USAGE_STATS_ENABLED": "0"})
    srv = Server(proc=proc, port=port, bundle=bundle, name=bundle.name, log=log, engine=engine,
                 grpc_port=grpc_port)
    try:
        _wait_ready(srv, timeout_s=240 if engine == "ray" else 120)
        srv.pids |= descendants(proc.pid)
        yield srv
    finally:
        srv.pids |= descendants(proc.pid) if proc.poll() is None else set()
        try:
            srv.stop()
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and any(alive(p) for p in srv.pids):
            time.sleep(0.3)
        left = sorted(p for p in srv.pids if alive(p))
        for p in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(p, signal.SIGKILL)
        assert not left, f"processes left behind by edgegen serve: {left}"


def server_args() -> tuple[str, ...]:
    return ("--max-batch", str(SETTINGS["max_batch"]), "--max-delay-ms",
            str(SETTINGS["max_delay_ms"]), "--max-ongoing-requests", str(SETTINGS["max_ongoing"]),
            "--max-queued-requests", str(SETTINGS["max_queued"]), "--threads", "1",
            "--max-request-rows", "64")


# every Ray test is marked slow (its cluster's start and the replica restart after kill -9
# take tens of seconds): `pytest -m "not slow" tests/serve` runs the local engine's only
@pytest.fixture(scope="session", params=["local", pytest.param("ray", marks=pytest.mark.slow)])
def server(request: pytest.FixtureRequest, tiny_bundle: Path,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    engine = request.param
    if engine == "ray":
        pytest.importorskip("ray.serve")
    extra = ("--workers", str(WORKERS)) if engine == "local" else ()
    with start_server(tiny_bundle, tmp_path_factory.mktemp(f"serve-{engine}"), engine,
                      server_args() + extra, grpc=engine == "local") as srv:
        yield srv
