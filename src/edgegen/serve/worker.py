"""One worker process of the local engine: ``python -m edgegen.serve.worker`` (started by
``local.LocalServer``, never by hand).

It inherits the listening HTTP socket (fd ``http_fd``; the kernel gives each new connection to
one of the workers that accept on it) and a status pipe (``status_fd``), loads the bundle into
its own ``Generator`` (one ONNX Runtime session, ``replica.intra_op_threads`` threads), warms it
up, and serves ``app.Endpoints`` through uvicorn (uvloop + httptools, ``asgi.App``) with its own
``batcher.Batcher``. With a gRPC port it also serves ``grpc_service`` on the same event loop,
binding the port with SO_REUSEPORT beside the other workers.

It tells the supervisor, one JSON line per event on the status pipe: ``loading``, ``ready``
(listening), ``failed`` (a start-up error, then exit 3: not restarted), ``draining``,
``stopped``.

SIGTERM (or SIGINT) drains: new requests get 503 + Retry-After and ``/v2/health/ready`` 503,
the requests held finish, and after at least ``linger_s`` of that (so a load balancer sees it)
uvicorn closes the listener and the idle connections and the process exits 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import sys
import time
from pathlib import Path
from types import FrameType
from typing import Any

STARTUP_FAILED = 3  # exit status of a worker that could not start (the supervisor gives up)


class Status:
    """The status pipe: one line per event (a write under PIPE_BUF bytes is atomic, so the
    workers share one pipe)."""

    def __init__(self, fd: int, index: int) -> None:
        self.fd, self.index = fd, index

    def tell(self, event: str, **info: Any) -> None:
        line = json.dumps({"event": event, "worker": self.index, "pid": os.getpid(), **info})
        with contextlib.suppress(OSError):  # the supervisor is gone: nothing to tell
            os.write(self.fd, (line[:3900] + "\n").encode())


def _server_class() -> type:
    import uvicorn

    class WorkerServer(uvicorn.Server):
        """uvicorn's server, with edgegen's drain on SIGTERM (uvicorn's own stops accepting at
        once) and the gRPC service started and stopped beside it."""

        def __init__(self, config: Any, worker: Worker) -> None:
            super().__init__(config)
            self.worker = worker

        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets)
            if not self.should_exit:
                await self.worker.started()

        async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
            await self.worker.stop_grpc()
            await super().shutdown(sockets)

        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            # not uvicorn's (stop accepting at once, re-raise the signal at exit): drain, then
            # exit 0; a repeated signal changes nothing (the supervisor's deadline is the bound)
            if not self.worker.draining:
                self.worker.begin_drain()

    return WorkerServer


class Worker:
    """The worker's state: its config, endpoints, batcher, servers."""

    def __init__(self, cfg: Any, index: int, status: Status) -> None:
        self.cfg, self.index, self.status = cfg, index, status
        self.draining = False
        self.grpc_server: Any = None
        self.server: Any = None

    def load(self) -> None:
        from edgegen.serve.app import Endpoints
        from edgegen.serve.batcher import Batcher
        from edgegen.serve.batching import run_batch
        from edgegen.serve.replica import intra_op_threads, load_generator, model_info, warm_up

        cfg = self.cfg
        self.threads = intra_op_threads(cfg, cfg.n_workers)
        t0 = time.perf_counter()
        generator = load_generator(cfg, self.threads)
        model = model_info(cfg, generator)
        warm_up(cfg, generator, model.variant)
        self.load_s = time.perf_counter() - t0
        self.batcher = Batcher(lambda works: run_batch(generator, works, variant=model.variant,
                                                       guard=cfg.guard),
                               max_batch=cfg.max_batch, max_delay_ms=cfg.delay_ms,
                               capacity=cfg.worker_capacity)
        self.endpoints = Endpoints(model, self.batcher, cfg.retry_after_s)

    async def started(self) -> None:
        """uvicorn is accepting: start gRPC (if asked), then say ready."""
        if self.cfg.grpc_port is not None:
            import grpc

            from edgegen.serve.grpc_service import add_service

            self.grpc_server = grpc.aio.server(options=[("grpc.so_reuseport", 1)])
            add_service(self.grpc_server, self.endpoints)
            self.grpc_server.add_insecure_port(self.cfg.grpc_target)
            await self.grpc_server.start()
        self.status.tell("ready", threads=self.threads, load_s=round(self.load_s, 3))

    def begin_drain(self) -> None:
        """From the signal handler (the loop's thread): start draining on the loop."""
        self.draining = True
        self.endpoints.draining = True
        asyncio.get_event_loop().call_soon_threadsafe(
            lambda: asyncio.ensure_future(self._drain()))

    async def _drain(self) -> None:
        t0 = time.monotonic()
        self.status.tell("draining", held=self.endpoints.inflight)
        deadline = t0 + self.cfg.drain_timeout_s
        while (self.endpoints.inflight or self.batcher.held) and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        await asyncio.sleep(max(0.0, t0 + self.cfg.linger_s - time.monotonic()))
        self.status.tell("stopped", drain_s=round(time.monotonic() - t0, 3),
                         served=self.endpoints.served, batches=self.batcher.batches,
                         left=self.endpoints.inflight)
        self.server.should_exit = True

    async def stop_grpc(self) -> None:
        if self.grpc_server is not None:
            await self.grpc_server.stop(grace=1.0)


def run(cfg: Any, index: int, http_fd: int, status_fd: int) -> int:
    import uvicorn

    from edgegen.serve.asgi import App

    status = Status(status_fd, index)
    worker = Worker(cfg, index, status)
    status.tell("loading")
    try:
        worker.load()
    except Exception as exc:  # noqa: BLE001 - told to the supervisor, which reports it
        status.tell("failed", message=f"{type(exc).__name__}: {exc}")
        return STARTUP_FAILED
    sock = socket.socket(fileno=http_fd)
    app = App(worker.endpoints, {"x-edgegen-worker": str(index),
                                 "x-edgegen-pid": str(os.getpid())})
    config = uvicorn.Config(app, loop="uvloop", http="httptools", lifespan="off",
                            access_log=cfg.access_log, log_level="warning",
                            timeout_graceful_shutdown=int(cfg.drain_timeout_s),
                            server_header=False, date_header=False)
    worker.server = _server_class()(config, worker)
    worker.server.run(sockets=[sock])
    worker.batcher.close()
    return 0


def _die_with_supervisor() -> None:
    """Linux: SIGTERM (a drain) when the supervisor dies, even by kill -9, so that no worker
    outlives it holding the port."""
    import ctypes
    import signal

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, int(signal.SIGTERM))  # PR_SET_PDEATHSIG
    if os.getppid() == 1:  # the supervisor died before prctl took effect
        os.kill(os.getpid(), signal.SIGTERM)


def main(argv: list[str]) -> int:
    from edgegen.serve.config import ServeConfig

    _die_with_supervisor()
    spec = json.loads(argv[0])
    cfg = ServeConfig(**{**spec["config"], "bundle": Path(spec["config"]["bundle"]),
                         "steps": tuple(spec["config"]["steps"]),
                         "guidance": tuple(spec["config"]["guidance"])})
    return run(cfg, int(spec["index"]), int(spec["http_fd"]), int(spec["status_fd"]))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
