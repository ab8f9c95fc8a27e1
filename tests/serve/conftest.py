"""One real ``edgegen serve`` for the whole session: a subprocess on the tiny bundle.

It starts once (Ray's cold start is the cost: ~20 s on a quiet 2-core machine), every server
test shares it, and ``test_server.py``'s last test stops it with SIGTERM while requests are in
flight. Whatever happens, teardown stops it and checks by process id that nothing it started
(Ray's GCS, raylet, workers, the replicas) is left; survivors are killed and the test fails.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from edgegen.serve.config import free_port
from edgegen.serve.processes import alive, descendants

SETTINGS = {"max_batch": 4, "max_delay_ms": 2.0, "max_ongoing": 4, "max_queued": 2}


@dataclass
class Server:
    proc: subprocess.Popen[str]
    port: int
    bundle: Path
    name: str
    log: Path
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
        time.sleep(0.5)
    raise RuntimeError(f"edgegen serve not ready after {timeout_s} s:\n"
                       f"{server.log.read_text()[-3000:]}")


@pytest.fixture(scope="session")
def server(tiny_bundle: Path, tmp_path_factory: pytest.TempPathFactory):
    pytest.importorskip("ray.serve")
    port = free_port()
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    cmd = [sys.executable, "-m", "edgegen", "serve", str(tiny_bundle), "--port", str(port),
           "--max-batch", str(SETTINGS["max_batch"]), "--max-delay-ms",
           str(SETTINGS["max_delay_ms"]), "--max-ongoing-requests", str(SETTINGS["max_ongoing"]),
           "--max-queued-requests", str(SETTINGS["max_queued"]), "--threads", "1",
           "--max-request-rows", "64", "--json", str(log.with_suffix(".json"))]
    with open(log, "w") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, text=True,
                                env={**os.environ, "RAY_USAGE_STATS_ENABLED": "0"})
    srv = Server(proc=proc, port=port, bundle=tiny_bundle, name=tiny_bundle.name, log=log)
    try:
        _wait_ready(srv, timeout_s=240)
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
            time.sleep(0.5)
        left = sorted(p for p in srv.pids if alive(p))
        for p in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(p, signal.SIGKILL)
        assert not left, f"processes left behind by edgegen serve: {left}"
