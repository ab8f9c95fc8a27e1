"""``serve_bundle(ServeConfig) -> ServeReport``: the bundle behind an engine until SIGTERM.

``start`` picks the engine (``config``: ``local``, the default, or ``ray``); both give a running
server with the same small surface: ``url``, ``grpc_target``, ``placement()`` (which process
answers), ``ingress_path()`` (how a request reaches it), ``supervise()`` (called twice a second
while serving: the local engine restarts a worker that died and says so), ``restarts`` and
``stop()`` (drain, then shut down; returns the seconds it took).

Start-up progress goes through the one progress protocol (``Reporter("serve", on_progress)``):
each worker's loading and readiness as a count, Ray's steps as lines.
"""

from __future__ import annotations

import datetime as _dt
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from edgegen.core.progress import ProgressFn, Reporter
from edgegen.serve.config import ServeConfig
from edgegen.serve.report import ServeError, ServeReport

__all__ = ["ServeError", "ServeReport", "running", "serve_bundle", "start"]


def start(cfg: ServeConfig, on_progress: ProgressFn | None = None) -> Any:
    """A started server of ``cfg.engine`` (``local.LocalServer`` or ``ray_engine.RayServer``)."""
    if cfg.engine == "ray":
        from edgegen.serve import ray_engine

        return ray_engine.start(cfg, on_progress)
    from edgegen.serve import local

    return local.start(cfg, on_progress)


@contextmanager
def running(cfg: ServeConfig, on_progress: ProgressFn | None = None) -> Iterator[Any]:
    """``with running(cfg) as server:`` — started on entry, drained and stopped on exit."""
    server = start(cfg, on_progress)
    try:
        yield server
    finally:
        server.stop()


def serve_bundle(cfg: ServeConfig, on_progress: ProgressFn | None = None,
                 stop: threading.Event | None = None) -> ServeReport:
    """Serve until SIGTERM or SIGINT (or ``stop`` is set), then drain; the report says what
    ran where, how requests reach it, what was restarted and how long each phase took."""
    say = Reporter("serve", on_progress).say
    stop = stop or threading.Event()
    stopped_by: list[str] = []

    def on_signal(signum: int, frame: Any) -> None:
        stopped_by.append(signal.Signals(signum).name)
        stop.set()

    main = threading.current_thread() is threading.main_thread()

    def install() -> dict[int, Any]:
        return {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)} \
            if main else {}

    started = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
    t0 = time.perf_counter()
    previous = install()  # a SIGTERM during the start-up stops the server once it is up
    try:
        server = start(cfg, on_progress)
    except BaseException:
        for s, h in previous.items():
            signal.signal(s, h)
        raise
    install()  # again: Ray may have put its own handlers in place while starting
    try:
        report = _report(cfg, server, started, time.perf_counter() - t0)
        say(f"serving {cfg.model_name} at {server.url}"
            + (f" and gRPC {server.grpc_target}" if server.grpc_target else "")
            + f" ({report.startup_s:.1f} s to start; {report.ingress_path}); SIGTERM or "
              "Ctrl-C drains and stops")
        for p in report.placement:
            who = f"replica {p['replica']}" if "replica" in p else f"worker {p['worker']}"
            where = f"node {p['node']}" if "node" in p else f"{p.get('threads')} ORT thread(s)"
            say(f"{who} (pid {p['pid']}, {where})")
        t1 = time.perf_counter()
        while not stop.wait(0.5):
            for line in server.supervise():
                say(line)
        report.served_s = time.perf_counter() - t1
        report.stopped_by = stopped_by[0] if stopped_by else "stop event"
        say(f"{report.stopped_by}: draining in-flight requests, then stopping")
    finally:
        drain_s = server.stop()
        for s, h in previous.items():
            signal.signal(s, h)
    report.drain_s = drain_s
    report.restarts = list(server.restarts)
    return report


def _report(cfg: ServeConfig, server: Any, started: str, startup_s: float) -> ServeReport:
    placement = server.placement()
    return ServeReport(url=server.url, model=cfg.model_name, replicas=len(placement),
                       address=cfg.address or "local", engine=cfg.engine,
                       grpc=server.grpc_target,
                       ingress=cfg.ingress if cfg.engine == "ray" else "none",
                       ingress_path=server.ingress_path(), placement=placement,
                       started=started, startup_s=startup_s)
