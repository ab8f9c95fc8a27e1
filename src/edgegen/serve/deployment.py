"""The Ray Serve deployment: each replica holds one ``Generator`` and batches requests.

A replica loads the bundle (schema and every sha256 checked) on its provider, warms the session
up at the largest batch, and answers every route of ``app.Endpoints``. Inference goes through
``@serve.batch``: requests that arrive within ``max_delay_ms`` of the first one waiting, up to
``max_batch`` of them, become one ``batching.run_batch`` call, run on a worker thread so the
replica's event loop keeps accepting requests while ONNX Runtime computes (ONNX Runtime releases
the GIL). Ray Serve bounds what a replica takes (``max_ongoing_requests``) and what waits at the
proxy (``max_queued_requests``); beyond that it answers 503 with ``Retry-After`` at once.

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

from edgegen.runtime.generator import Generator
from edgegen.runtime.providers import spec_for
from edgegen.serve.app import Endpoints
from edgegen.serve.batching import run_batch
from edgegen.serve.config import ServeConfig
from edgegen.serve.drain import GateWatcher
from edgegen.serve.protocol import Done, ModelInfo, Work


def load_generator(cfg: ServeConfig, threads: int) -> Generator:
    """The replica's ``Generator``: bitwise repeatable sessions (the bytes contract), ONNX
    Runtime's spin-waiting off (a server idles between batches and the proxy needs the cores),
    TensorRT profiles up to the largest batch a replica may run."""
    from edgegen.runtime.bundle import load_bundle

    bundle = load_bundle(cfg.bundle)
    variant = cfg.variant or ("fp32" if "fp32" in bundle.variants else next(iter(bundle.variants)))
    precision = bundle.variants[variant].get("precision", variant) if variant in bundle.variants \
        else variant
    largest = cfg.max_batch * cfg.max_request_rows
    spec = spec_for(cfg.provider, precision, batch_range=(1, cfg.max_batch, largest),
                    trt_cache_dir=cfg.bundle / "trt_cache", intra_op_threads=threads,
                    spinning=False, deterministic=True)
    return Generator.load(cfg.bundle, spec, batch_size=max(cfg.max_batch, cfg.max_request_rows))


@serve.deployment
class EdgegenModel:
    """One replica. ``config`` is ``ServeConfig`` as a dict (it crosses process boundaries)."""

    def __init__(self, config: dict[str, Any]) -> None:
        cfg = ServeConfig(**{**config, "bundle": Path(config["bundle"])})
        self.cfg = cfg
        threads = cfg.threads or max(1, (os.cpu_count() or 1) // cfg.replicas)
        self.generator = load_generator(cfg, threads)
        self.variant = cfg.variant or self.generator.default_variant
        model = ModelInfo.from_bundle(self.generator.bundle, name=cfg.model_name,
                                      variant=self.variant, guard=cfg.guard,
                                      max_batch=cfg.max_batch,
                                      max_request_rows=cfg.max_request_rows,
                                      max_delay_ms=cfg.max_delay_ms)
        self.endpoints = Endpoints(model, self._infer, cfg.retry_after_s)
        ctx = serve.get_replica_context()
        import ray

        self.info = {"replica": ctx.replica_id.unique_id, "node": ray.get_runtime_context()
                     .get_node_id(), "pid": os.getpid(), "threads": threads}
        # every reply says which replica and node answered (scale-out is observable)
        self.reply_headers = {"x-edgegen-replica": self.info["replica"],
                              "x-edgegen-node": self.info["node"][:12]}
        self.watcher = GateWatcher(cfg.model_name, self.info, self.endpoints)
        self.pool = ThreadPoolExecutor(1, thread_name_prefix="edgegen-infer")
        self.batched.set_max_batch_size(cfg.max_batch)
        self.batched.set_batch_wait_timeout_s(cfg.max_delay_ms / 1000.0)
        # warm-up outside any request: ORT's first runs at a new batch size allocate
        for n in sorted({1, cfg.max_batch}):
            self.generator.run([0] * n, seed=0, variant=self.variant, guard=False)

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
                        headers={**self.reply_headers, **reply.headers})

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
