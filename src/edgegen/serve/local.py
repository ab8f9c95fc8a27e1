"""The local engine (the default): worker processes on this machine, no proxy in the path.

``start`` checks everything (``preflight``), binds 127.0.0.1:``port`` once (SO_REUSEADDR,
backlog 2048) and starts ``n_workers`` processes (``python -m edgegen.serve.worker``) that all
accept on that one socket: the kernel gives each new connection to one of them, and a
connection stays with its worker (HTTP keep-alive). Each worker has its own ONNX Runtime session
and dynamic batcher (``worker``). ``start`` returns when every worker said it is ready; each
worker's loading and readiness are counted through ``Reporter("serve", on_progress)``.

**Who supervises**: this module, not uvicorn's multi-process manager. uvicorn's manager also
restarts a dead worker, but it joins its workers without a deadline at shutdown, stops them
with uvicorn's own SIGTERM (connections refused at once, no 503 phase) and tells its caller
nothing about start-up or restarts. Here ``supervise()`` (twice a second while serving) restarts
a worker that exited or was killed (kill -9) on the same socket, so the connections waiting in
the shared accept queue are taken by the others meanwhile and nothing queued is lost; requests
that were inside the killed process lose their connection (a client retries them: infer is
deterministic). A worker that fails at start-up (exit 3) is not restarted: ``start`` raises
``ServeError`` with its message, or, later, ``supervise()`` says so.

``stop()``: the supervisor closes its copy of the socket and sends SIGTERM to every worker;
each drains (503 + Retry-After for new requests while the held ones finish, at least
``linger_s``) and exits; one still running after ``drain_timeout_s`` + 10 s is killed.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from edgegen.core.progress import ProgressFn, Reporter
from edgegen.serve.config import HOST, ServeConfig
from edgegen.serve.preflight import preflight
from edgegen.serve.report import ServeError

STARTUP_FAILED = 3  # worker.STARTUP_FAILED (not imported: the worker module imports uvicorn)
RESTART_LIMIT = 5  # restarts of one worker within RESTART_WINDOW_S before it is left down
RESTART_WINDOW_S = 60.0


def listen(port: int, backlog: int = 2048) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((HOST, port))
    except OSError as exc:
        sock.close()
        raise ServeError(f"cannot bind {HOST}:{port} ({exc.strerror}); pick another --port") \
            from None
    sock.listen(backlog)
    sock.set_inheritable(True)
    return sock


class LocalServer:
    """The supervisor of the workers (see the module docstring)."""

    def __init__(self, cfg: ServeConfig, on_progress: ProgressFn | None = None) -> None:
        self.cfg = cfg
        self.reporter = Reporter("serve", on_progress)
        self.url = cfg.url
        self.grpc_target = cfg.grpc_target
        self.sock = listen(cfg.port)
        self._status_r, self._status_w = os.pipe()
        os.set_inheritable(self._status_w, True)
        self.events: queue.Queue[dict[str, Any]] = queue.Queue()
        self._reader = threading.Thread(target=self._read_status, daemon=True,
                                        name="edgegen-serve-status")
        self._reader.start()
        self.procs: dict[int, subprocess.Popen[bytes]] = {}
        self.info: dict[int, dict[str, Any]] = {}  # worker -> its last "ready" event
        self.restarts: list[dict[str, Any]] = []
        self._given_up: set[int] = set()
        self.stopped = False

    # -- workers ---------------------------------------------------------------------------
    def _spawn(self, index: int) -> subprocess.Popen[bytes]:
        config = {**asdict(self.cfg), "bundle": str(Path(self.cfg.bundle).resolve()),
                  "workers": self.cfg.n_workers}
        spec = json.dumps({"config": config, "index": index, "http_fd": self.sock.fileno(),
                           "status_fd": self._status_w})
        # its own session: a Ctrl-C at the terminal reaches the supervisor, which drains them
        proc = subprocess.Popen([sys.executable, "-m", "edgegen.serve.worker", spec],
                                pass_fds=(self.sock.fileno(), self._status_w),
                                start_new_session=True)
        self.procs[index] = proc
        return proc

    def _read_status(self) -> None:
        with os.fdopen(self._status_r, "rb", buffering=0) as fh:
            for line in fh:
                try:
                    self.events.put(json.loads(line))
                except ValueError:
                    continue

    def wait_ready(self, indexes: set[int], timeout_s: float = 300.0) -> None:
        """Until every worker in ``indexes`` said ready; a ``ServeError`` if one failed."""
        waiting = set(indexes)
        total = self.cfg.n_workers
        deadline = time.monotonic() + timeout_s
        while waiting:
            try:
                ev = self.events.get(timeout=0.2)
            except queue.Empty:
                self._check_startup(waiting, deadline)
                continue
            i = ev.get("worker")
            if i not in waiting or ev.get("pid") != self.procs[i].pid:
                continue
            if ev["event"] == "loading":
                self.reporter.say(f"worker {i} (pid {ev['pid']}): loading {self.cfg.bundle}")
            elif ev["event"] == "ready":
                waiting.discard(i)
                self.info[i] = ev
                self.reporter.count("workers ready", total - len(waiting), total, "workers",
                                    info=f"worker {i}: {ev['load_s']:.1f} s to load and warm up")
            elif ev["event"] == "failed":
                raise ServeError(f"worker {i} could not start: {ev.get('message')}")

    def _check_startup(self, waiting: set[int], deadline: float) -> None:
        for i in waiting:
            code = self.procs[i].poll()
            if code is not None:
                raise ServeError(f"worker {i} (pid {self.procs[i].pid}) exited {code} while "
                                 "starting; see its output above")
        if time.monotonic() > deadline:
            raise ServeError(f"workers {sorted(waiting)} not ready in time")

    def supervise(self) -> list[str]:
        """Restart every worker that exited; lines that say what happened."""
        lines = []
        for i, proc in list(self.procs.items()):
            code = proc.poll()
            if code is None or self.stopped or i in self._given_up:
                continue
            now = time.monotonic()
            recent = [r for r in self.restarts if r["worker"] == i
                      and now - r["at_monotonic"] < RESTART_WINDOW_S]
            if code == STARTUP_FAILED or len(recent) >= RESTART_LIMIT:
                self._given_up.add(i)
                why = "it failed to start" if code == STARTUP_FAILED else "too many restarts"
                lines.append(f"worker {i} (pid {proc.pid}) exited {code}; not restarted ({why})")
                continue
            new = self._spawn(i)
            self.restarts.append({"worker": i, "pid": proc.pid, "exit": code,
                                  "signal": signal.Signals(-code).name if code < 0 else None,
                                  "new_pid": new.pid, "at_monotonic": now})
            lines.append(f"worker {i} (pid {proc.pid}) exited {code}; restarted as pid "
                         f"{new.pid}")
        return lines

    def placement(self) -> list[dict[str, Any]]:
        return [{"worker": i, "pid": self.procs[i].pid, "threads": self.info[i].get("threads")}
                for i in sorted(self.procs) if i in self.info]

    def ingress_path(self) -> str:
        return (f"no proxy: {self.cfg.n_workers} uvicorn worker(s) accept on "
                f"{HOST}:{self.cfg.port} directly")

    # -- stop ------------------------------------------------------------------------------
    def stop(self) -> float:
        """Drain every worker, then stop; the seconds it took. Safe to call twice."""
        if self.stopped:
            return 0.0
        self.stopped = True
        t0 = time.perf_counter()
        self.sock.close()  # the workers hold their own copies until they finish draining
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.cfg.drain_timeout_s + self.cfg.linger_s + 10.0
        for proc in self.procs.values():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        os.close(self._status_w)
        return time.perf_counter() - t0


def start(cfg: ServeConfig, on_progress: ProgressFn | None = None) -> LocalServer:
    """Check, bind, start the workers, wait until every one is ready."""
    preflight(cfg)
    reporter = Reporter("serve", on_progress)
    n = cfg.n_workers
    reporter.say(f"local engine: {n} worker process(es) on {HOST}:{cfg.port}"
                 + (f", gRPC on {cfg.grpc_target}" if cfg.grpc_target else "")
                 + f"; batches of up to {cfg.max_batch}, {cfg.delay_ms:g} ms wait, "
                   f"{cfg.worker_capacity} requests held per worker before 503")
    server = LocalServer(cfg, on_progress)
    try:
        for i in range(n):
            server._spawn(i)
        server.wait_ready(set(range(n)))
    except BaseException:
        server.stop()
        raise
    return server
