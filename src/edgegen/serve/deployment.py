"""The Ray Serve deployment: each replica holds one ``Generator`` and batches requests.

A replica loads the bundle (schema and every sha256 checked) on its provider
(``replica.load_generator``), warms the session up at the largest batch, and answers every route
of ``app.Endpoints``; each reply says how the request reached it (``x-edgegen-ingress``).
Inference goes through ``@serve.batch``: requests that arrive within ``max_delay_ms`` of the
first one waiting, up to ``max_batch`` of them, become one ``batching.run_batch`` call, run on a
worker thread so the replica's event loop keeps accepting requests while ONNX Runtime computes
(ONNX Runtime releases the GIL). Ray Serve bounds what a replica takes
(``max_ongoing_requests``) and what waits at the proxy (``max_queued_requests``); beyond that it
answers 503 with ``Retry-After`` at once.

Imported only where Ray runs (``server``, the replicas): it imports ray and starlette.
"""

from __future__ import annotations

import asyncio
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ray import serve
from starlette.requests import Request
from starlette.responses import Response

from edgegen.serve.app import Endpoints
from edgegen.serve.batching import run_batch
from edgegen.serve.config import ServeConfig
from edgegen.serve.drain import GateWatcher
from edgegen.serve.protocol import Done, Work
from edgegen.serve.replica import intra_op_threads, load_generator, model_info, warm_up


@serve.deployment
class EdgegenModel:
    """One replica. ``config`` is ``ServeConfig`` as a dict (it crosses process boundaries)."""

    def __init__(self, config: dict[str, Any]) -> None:
        cfg = ServeConfig(**{**config, "bundle": Path(config["bundle"])})
        self.cfg = cfg
        threads = intra_op_threads(cfg, cfg.replicas)
        self.generator = load_generator(cfg, threads)
        model = model_info(cfg, self.generator)
        self.variant = model.variant
        self.endpoints = Endpoints(model, self._infer, cfg.retry_after_s)
        ctx = serve.get_replica_context()
        import ray

        self.info = {"replica": ctx.replica_id.unique_id, "node": ray.get_runtime_context()
                     .get_node_id(), "pid": os.getpid(), "threads": threads}
        # every reply says which replica and node answered (scale-out is observable)
        self.reply_headers = {"x-edgegen-replica": self.info["replica"],
                              "x-edgegen-node": self.info["node"][:12],
                              "x-edgegen-pid": str(self.info["pid"])}
        self.watcher = GateWatcher(cfg.model_name, self.info, self.endpoints)
        self.pool = ThreadPoolExecutor(1, thread_name_prefix="edgegen-infer")
        self.batched.set_max_batch_size(cfg.max_batch)
        self.batched.set_batch_wait_timeout_s(cfg.delay_ms / 1000.0)
        warm_up(cfg, self.generator, self.variant)  # outside any request

    async def _infer(self, work: Work) -> Done:
        return await self.batched(work)

    @serve.batch(max_batch_size=64, batch_wait_timeout_s=0.002)
    async def batched(self, works: list[Work]) -> list[Done]:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.pool, lambda: run_batch(
            self.generator, works, variant=self.variant, guard=self.cfg.guard))

    async def __call__(self, request: Request) -> Response:
        body = await request.body()
        reply = await self.endpoints.handle(request.method, request.url.path,
                                            request.url.query, dict(request.headers), body)
        return Response(reply.body, status_code=reply.status, media_type=reply.content_type,
                        headers={**self.reply_headers, **reply.headers,
                                 "x-edgegen-ingress": self._path(request)})

    def _path(self, request: Request) -> str:
        """How this request reached the replica, from the port of the server that parsed it:
        the replica's own HTTP server (direct ingress: a port of Ray's direct-ingress range),
        or Ray Serve's proxy (the public port; behind HAProxy, the proxy actor's own port,
        which HAProxy falls back to until it knows the replica) handing it over through Ray."""
        from ray.serve._private import constants

        port = int((request.scope.get("server") or ("", 0))[1] or 0)
        if constants.RAY_SERVE_DIRECT_INGRESS_MIN_HTTP_PORT <= port <= \
                constants.RAY_SERVE_DIRECT_INGRESS_MAX_HTTP_PORT:
            return f"direct ingress: replica HTTP server on port {port}"
        if port == self.cfg.port:
            return "Ray Serve proxy -> replica"
        return f"Ray Serve proxy (port {port}, behind HAProxy) -> replica"

    def check_health(self) -> None:
        """Ray Serve's health check: a replica whose session broke is restarted."""
        if not self.generator.variants:
            raise RuntimeError("the replica lost its model")


def logging_config(cfg: ServeConfig) -> dict[str, Any]:
    """Ray Serve's logs: warnings, and an access log line per request only when asked (on a
    small machine writing it costs a visible share of each request's CPU)."""
    return {"enable_access_log": cfg.access_log, "log_level": "INFO" if cfg.access_log
            else "WARNING"}


def application(cfg: ServeConfig) -> Any:
    """The bound application: ``cfg.replicas`` replicas, Ray Serve's backpressure limits."""
    from ray.serve.config import BackpressureConfig

    config = {**asdict(cfg), "bundle": str(Path(cfg.bundle).resolve())}
    spread = {"max_replicas_per_node": cfg.max_replicas_per_node} \
        if cfg.max_replicas_per_node else {}
    return EdgegenModel.options(
        name=cfg.model_name, num_replicas=cfg.replicas,
        max_ongoing_requests=cfg.ongoing, max_queued_requests=cfg.queued,
        backpressure_config=BackpressureConfig(status_code=503,
                                               retry_after_s=cfg.retry_after_s),
        ray_actor_options={"num_cpus": cfg.num_cpus},
        logging_config=logging_config(cfg),
        graceful_shutdown_timeout_s=cfg.drain_timeout_s,
        graceful_shutdown_wait_loop_s=0.2, **spread,
    ).bind(config)
