"""The Ray engine (``--engine ray``): the bundle behind Ray Serve, for clusters.

Order of events:

1. **Checks before Ray** (``preflight``): a bad one is an ``EdgegenError`` (exit 2) and
   nothing has started.
2. **Ray**: ``--address auto`` or ``HOST:PORT`` joins a running cluster; otherwise a local one
   starts on 127.0.0.1 (no dashboard: it would take a core of this machine). The application
   (``deployment.application``) is deployed with ``--replicas`` replicas, and ``start`` returns
   once every replica has loaded and warmed up.
3. **Ingress**: ``--ingress proxy`` is Ray Serve's HTTP proxy (a Python process that parses
   each request and calls a replica through Ray). ``--ingress haproxy`` sets
   ``RAY_SERVE_ENABLE_HA_PROXY=1`` and ``RAY_SERVE_THROUGHPUT_OPTIMIZED=1``: in the installed
   Ray (2.60, ``ray/serve/_private/constants.py``) HAProxy forces direct ingress on (each
   replica runs its own HTTP server, on 127.0.0.1 and a port in 30000-31000, and HAProxy, a C
   process, forwards each request straight to one), and throughput-optimized mode runs the
   replica's code on its own event loop and freezes the GC after start-up. Every reply says
   which path it took (``x-edgegen-ingress``, read by the replica off the request it was
   given), and the serve report records it for a probe request.
4. **Drain** on stop: the drain gate (``drain``) makes every replica answer 503 to new
   requests while the held ones finish; then Serve and, when this process started it, Ray are
   shut down. A cluster that was joined keeps running.
"""

from __future__ import annotations

import http.client
import os
import signal
import threading
import time
from typing import Any

from edgegen.core.errors import EdgegenError
from edgegen.core.progress import ProgressFn, Reporter
from edgegen.serve.config import HOST, ServeConfig
from edgegen.serve.drain import create_gate, drain, placement
from edgegen.serve.preflight import preflight
from edgegen.serve.report import ServeError


class RayServer:
    """A started Ray Serve application: its URL, where its replicas run, ``stop()`` (drains)."""

    def __init__(self, cfg: ServeConfig, owns_ray: bool, handle: Any, gate: Any) -> None:
        self.cfg = cfg
        self.owns_ray = owns_ray
        self.handle = handle
        self.gate = gate
        self.url = cfg.url
        self.grpc_target: str | None = None
        self.stopped = False

    def supervise(self) -> list[str]:
        """Ray's controller restarts a replica that died; nothing to do here."""
        return []

    @property
    def restarts(self) -> list[dict[str, Any]]:
        return []

    def ingress_path(self, tries: int = 40) -> str:
        """The path a probe request took, as the replica that answered saw it. With HAProxy,
        requests go through Ray Serve's proxy actor until HAProxy has the replica's own
        server among its targets (a second or so after start-up): the probe is repeated
        until it arrives by direct ingress, and says so when it never did."""
        path = ""
        for _ in range(tries if self.cfg.ingress == "haproxy" else 1):
            path = _probe(self.cfg.port)
            if path.startswith("direct ingress"):
                return f"HAProxy -> {path}"
            time.sleep(0.25)
        return path
    def placement(self) -> list[dict[str, Any]]:
        """Which node and process each replica runs in, as the replicas report it to the drain
        gate (a deployment handle routes to one replica, so asking through it cannot see them
        all)."""
        return placement(self.gate, self.cfg.replicas, timeout_s=30.0)

    def stop(self, linger_s: float = 0.5) -> float:
        """Drain, then shut down; returns the seconds it took. Safe to call twice.

        Every replica stops taking requests (503 + Retry-After, ready -> 503) and answers the
        ones it holds; ``linger_s`` more of 503s lets load balancers notice; then Serve goes:
        on a cluster this process started, ``serve.shutdown()`` removes the application and the
        HTTP proxy together (connections are refused from then on), and Ray stops; on a joined
        cluster only this application is deleted."""
        if self.stopped:
            return 0.0
        self.stopped = True
        import ray
        from ray import serve

        t0 = time.perf_counter()
        try:
            replicas = {p["replica"] for p in self.placement()}
            drain(self.gate, replicas, self.cfg.drain_timeout_s)
            time.sleep(linger_s)
            if self.owns_ray and self.cfg.ingress == "haproxy":
                # with the HAProxy ingress a replica's own HTTP server waits for its idle
                # keep-alive connections (serve.delete / serve.shutdown take the whole
                # graceful_shutdown_timeout_s); the replicas hold nothing now: ray.shutdown()
                # below stops every process of this cluster at once
                pass
            elif self.owns_ray:
                serve.shutdown()
            else:
                serve.delete(self.cfg.model_name)
                ray.kill(self.gate)
        finally:
            ray.shutdown()
        return time.perf_counter() - t0


def _probe(port: int) -> str:
    conn = http.client.HTTPConnection(HOST, port, timeout=30)
    try:
        conn.request("GET", "/v2/health/ready")
        resp = conn.getresponse()
        resp.read()
        return resp.getheader("x-edgegen-ingress") or f"unknown (HTTP {resp.status})"
    except OSError as exc:
        return f"unknown ({exc})"
    finally:
        conn.close()


def _init_ray(cfg: ServeConfig) -> bool:
    """Join ``cfg.address`` or start a local cluster on 127.0.0.1; True when this process
    started it (and must stop it)."""
    import ray

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # an offline machine: no telemetry
    common = {"logging_level": "WARNING", "log_to_driver": False}
    if cfg.address is not None:
        try:
            # the driver's own node: on this machine, where edgegen's Ray nodes run on
            # 127.0.0.1 (ray start --node-ip-address=127.0.0.1)
            ray.init(address=cfg.address, _node_ip_address=cfg.node_ip, **common)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise ServeError(f"cannot join the Ray cluster at {cfg.address!r} ({exc}); start "
                             "one with `ray start --head --node-ip-address=127.0.0.1` or leave "
                             "out --address") from None
        return False
    # address="local": always a new instance; without it ray.init joins whatever cluster the
    # last `ray start` on this machine recorded in /tmp/ray, possibly someone else's
    ray.init(address="local", _node_ip_address=cfg.node_ip, include_dashboard=False, **common)
    return True


def haproxy_environment() -> dict[str, str]:
    """The environment of Ray Serve's HAProxy ingress (``--ingress haproxy``): HAProxy, a C
    process, takes the HTTP connections on 127.0.0.1:port and forwards each request straight to
    a replica's own HTTP server (direct ingress, which HAProxy turns on), instead of Ray Serve's
    Python proxy parsing it and calling the replica through Ray; throughput-optimized mode on
    top. Its files already live in a folder per Ray node; its metrics and stats listeners (fixed
    ports by default, 9101 and 8404) get free ports, so that two servers on one machine do not
    collide; and when it stops, after edgegen's own drain, it closes idle keep-alive
    connections within 5 s instead of Ray's 120."""
    from edgegen.serve.config import free_port

    return {"RAY_SERVE_ENABLE_HA_PROXY": "1", "RAY_SERVE_THROUGHPUT_OPTIMIZED": "1",
            "RAY_SERVE_ENABLE_DIRECT_INGRESS": "1", "RAY_SERVE_HAPROXY_HARD_STOP_AFTER_S": "5",
            "RAY_SERVE_HAPROXY_METRICS_PORT": str(free_port()),
            "RAY_SERVE_HAPROXY_STATS_PORT": str(free_port())}


def start(cfg: ServeConfig, on_progress: ProgressFn | None = None) -> RayServer:
    """Check, start Ray and Serve, deploy, wait until every replica is ready."""
    say = Reporter("serve", on_progress).say
    preflight(cfg)
    if cfg.ingress == "haproxy":
        # read by Ray Serve when it is imported, here and in every Ray process started below
        os.environ.update(haproxy_environment())
    from ray import serve

    from edgegen.serve.deployment import application, logging_config

    owns = _keeping_signal_handlers(_init_ray, cfg)
    try:
        say(f"ray: {'local cluster on ' + HOST if owns else 'joined ' + str(cfg.address)}; "
            f"deploying {cfg.replicas} replica(s) of {cfg.model_name} behind "
            f"{'HAProxy' if cfg.ingress == 'haproxy' else 'the Ray Serve proxy'}")
        # one HTTP proxy, on the head node: every node of a cluster on one machine shares
        # 127.0.0.1, where a proxy per node could not bind the same port
        serve.start(proxy_location="HeadOnly", http_options={"host": HOST, "port": cfg.port},
                    logging_config=logging_config(cfg))
        gate = create_gate(cfg.model_name)
        handle = serve.run(application(cfg), name=cfg.model_name, route_prefix="/",
                           blocking=False)
    except Exception as exc:
        _cleanup(owns)
        if isinstance(exc, EdgegenError):
            raise
        msg = str(exc).strip().splitlines()
        raise ServeError(f"the server did not start: {msg[-1][:500] if msg else exc!r}") \
            from exc
    return RayServer(cfg, owns, handle, gate)


def _keeping_signal_handlers(fn: Any, *args: Any) -> Any:
    """``fn(*args)`` with this process's SIGTERM/SIGINT handlers put back afterwards:
    ``ray.init`` installs its own (exit at once), which would stop a server that got SIGTERM
    while it was still deploying without a drain or a report."""
    if threading.current_thread() is not threading.main_thread():
        return fn(*args)
    saved = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        return fn(*args)
    finally:
        for s, handler in saved.items():
            if handler is not None:
                signal.signal(s, handler)


def _cleanup(owns: bool) -> None:
    import ray
    from ray import serve

    try:
        if owns:
            serve.shutdown()
    finally:
        ray.shutdown()
