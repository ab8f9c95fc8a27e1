"""``serve_bundle(ServeConfig) -> ServeReport``: the bundle behind Ray Serve until SIGTERM.

Order of events:

1. **Checks before Ray** (``preflight``): the command line, the port (free on 127.0.0.1), the
   bundle (schema, every sha256), the variant, the guard's evaluator, the provider. A bad one is
   an ``EdgegenError`` (exit 2) and nothing has started.
2. **Ray**: ``--address auto`` or ``HOST:PORT`` joins a running cluster; otherwise a local one
   starts on 127.0.0.1 (no dashboard: it would take a core of this machine). Serve's HTTP proxy
   listens on 127.0.0.1:``port``; the application (``deployment.application``) is deployed with
   ``--replicas`` replicas, and ``start`` returns once every replica has loaded and warmed up.
3. **Serving** until SIGTERM or SIGINT.
4. **Drain**: the application is deleted, which is Ray Serve's graceful replica shutdown: the
   proxy stops routing to the replicas, and each replica finishes the requests it holds (up to
   ``drain_timeout_s``) before it exits; then Serve and, when this process started it, Ray
   are shut down. A cluster that was joined keeps running.
"""

from __future__ import annotations

import datetime as _dt
import os
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from edgegen.core.errors import ConfigError, EdgegenError
from edgegen.core.progress import ProgressFn, Reporter
from edgegen.core.report import Report
from edgegen.runtime.bundle import load_bundle
from edgegen.runtime.providers import require_providers
from edgegen.serve.config import HOST, ServeConfig, validate
from edgegen.serve.drain import create_gate, drain, placement


class ServeError(EdgegenError):
    """The server could not start (Ray would not start, a replica failed to load...)."""


@dataclass
class ServeReport(Report):
    url: str
    model: str
    replicas: int
    address: str  # the Ray cluster: "local" or what --address named
    placement: list[dict[str, Any]] = field(default_factory=list)  # replica -> node
    started: str = ""
    startup_s: float = 0.0
    served_s: float = 0.0
    drain_s: float = 0.0
    stopped_by: str = ""


def preflight(cfg: ServeConfig) -> str:
    """Every check that needs no Ray; returns the variant that will be served."""
    validate(cfg)
    bundle = load_bundle(cfg.bundle)
    variant = cfg.variant or ("fp32" if "fp32" in bundle.variants else next(iter(bundle.variants)))
    bundle.variant_path(variant)  # a BundleError naming the variants the bundle has
    if cfg.guard and bundle.evaluator_path is None:
        raise ConfigError(f"--guard needs the bundle's evaluator and {cfg.bundle} has none; "
                          "export with an evaluator run or serve without --guard")
    require_providers([cfg.provider])
    if cfg.address is not None and cfg.address != "auto" and ":" not in cfg.address:
        raise ConfigError(f"--address {cfg.address!r}: expected 'auto' or HOST:PORT of a Ray "
                          "head (e.g. 127.0.0.1:6379)")
    return variant


class RunningServer:
    """A started server: its URL, where its replicas run, and ``stop()`` (drains)."""

    def __init__(self, cfg: ServeConfig, owns_ray: bool, handle: Any, gate: Any) -> None:
        self.cfg = cfg
        self.owns_ray = owns_ray
        self.handle = handle
        self.gate = gate
        self.url = cfg.url
        self.stopped = False

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
    a replica's own HTTP server, instead of Ray Serve's Python proxy parsing it and calling the
    replica through Ray. Its files already live in a folder per Ray node; its metrics and stats
    listeners (fixed ports by default, 9101 and 8404) get free ports, so that two servers on one
    machine do not collide; and when it stops, after edgegen's own drain, it closes idle
    keep-alive connections within 5 s instead of Ray's 120."""
    from edgegen.serve.config import free_port

    return {"RAY_SERVE_ENABLE_HA_PROXY": "1", "RAY_SERVE_HAPROXY_HARD_STOP_AFTER_S": "5",
            "RAY_SERVE_HAPROXY_METRICS_PORT": str(free_port()),
            "RAY_SERVE_HAPROXY_STATS_PORT": str(free_port())}


def start(cfg: ServeConfig, on_progress: ProgressFn | None = None) -> RunningServer:
    """Check, start Ray and Serve, deploy, wait until every replica is ready."""
    say = Reporter("serve", on_progress).say
    preflight(cfg)
    if cfg.ingress == "haproxy":
        # read by Ray Serve when it is imported, here and in every Ray process started below
        os.environ.update(haproxy_environment())
    from ray import serve

    from edgegen.serve.deployment import application, logging_config

    owns = _init_ray(cfg)
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
    return RunningServer(cfg, owns, handle, gate)


def _cleanup(owns: bool) -> None:
    import ray
    from ray import serve

    try:
        if owns:
            serve.shutdown()
    finally:
        ray.shutdown()


@contextmanager
def running(cfg: ServeConfig, on_progress: ProgressFn | None = None
            ) -> Iterator[RunningServer]:
    """``with running(cfg) as server:`` — started on entry, drained and stopped on exit."""
    server = start(cfg, on_progress)
    try:
        yield server
    finally:
        server.stop()


def serve_bundle(cfg: ServeConfig, on_progress: ProgressFn | None = None,
                 stop: threading.Event | None = None) -> ServeReport:
    """Serve until SIGTERM or SIGINT (or ``stop`` is set), then drain; the report says what
    ran where and how long each phase took."""
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
        placement = server.placement()
        startup = time.perf_counter() - t0
        report = ServeReport(url=server.url, model=cfg.model_name, replicas=cfg.replicas,
                             address=cfg.address or "local", placement=placement,
                             started=started, startup_s=startup)
        say(f"serving {cfg.model_name} at {server.url} ({startup:.1f} s to start); "
            f"SIGTERM or Ctrl-C drains and stops")
        for p in placement:
            say(f"replica {p['replica']} on node {p['node']} (pid {p['pid']})")
        t1 = time.perf_counter()
        while not stop.wait(0.5):
            pass
        report.served_s = time.perf_counter() - t1
        report.stopped_by = stopped_by[0] if stopped_by else "stop event"
        say(f"{report.stopped_by}: draining in-flight requests, then stopping")
    finally:
        report_drain = server.stop()
        for s, h in previous.items():
            signal.signal(s, h)
    report.drain_s = report_drain
    return report
