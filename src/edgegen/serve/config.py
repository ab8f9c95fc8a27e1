"""What ``edgegen serve`` takes: ``ServeConfig`` (every default of the command) and its checks.

Imports the standard library and the runtime's errors only, so the CLI can check a command line
(port, bundle, numbers) before a worker, ONNX Runtime or Ray is started.

Two engines run the same routes (``app.Endpoints``) and batching (``batching.run_batch``):

* ``local`` (the default): one machine, no proxy in the path. Worker processes share one
  listening socket (the kernel hands each new connection to one of them); each runs uvicorn
  (uvloop + httptools), its own ONNX Runtime session and its own dynamic batcher, and, with
  ``grpc_port``, the KServe v2 gRPC service on the same event loop (``local``, ``worker``).
* ``ray``: Ray Serve for clusters: replicas placed by Ray, behind Ray Serve's HTTP proxy or
  HAProxy with direct ingress (``ray_engine``, ``deployment``).
"""

from __future__ import annotations

import errno
import math
import os
import socket
from dataclasses import dataclass
from pathlib import Path

from edgegen.core.errors import ConfigError, require_positive

HOST = "127.0.0.1"  # edgegen binds to the loopback only; put a proxy in front to go further
INGRESSES = ("proxy", "haproxy")
ENGINES = ("local", "ray")
RAY_MAX_DELAY_MS = 2.0  # the Ray engine's default batch wait (see ServeConfig.delay_ms)


@dataclass(frozen=True)
class ServeConfig:
    """Every default of ``edgegen serve`` lives here; the CLI reuses them."""

    bundle: Path = Path("bundles/cdcgan")
    name: str | None = None  # the v2 model name; None: the bundle folder's name
    port: int = 8000
    engine: str = "local"  # local: worker processes on this machine | ray: Ray Serve
    workers: int = 0  # local: worker processes; 0: one per usable core, at most 4
    grpc_port: int | None = None  # local: KServe v2 gRPC on 127.0.0.1:grpc_port as well
    replicas: int = 1  # ray: replicas placed by Ray
    variant: str | None = None  # None: fp32 (the runtime's default variant)
    guard: bool = False  # redraw samples the bundle's evaluator rejects (seeded requests only)
    provider: str = "cpu"
    max_batch: int = 64  # requests per batch
    # the longest the first request of a batch waits for others to join; None: the engine's
    # default (local 0: a batch starts at once when the worker is idle and takes every request
    # that queued while the previous one ran, see batcher; ray 2 ms, @serve.batch's timeout)
    max_delay_ms: float | None = None
    max_ongoing_requests: int = 0  # per worker/replica; 0: 2 x max_batch (one running, one forming)
    # beyond ongoing, requests that may wait (ray: at the proxy; local: in the workers' queues,
    # split evenly), then 503 + Retry-After; 0: ongoing x replicas (ray) or x workers (local)
    max_queued_requests: int = 0
    max_request_rows: int = 256  # rows (images) one request may ask for
    threads: int = 0  # ONNX Runtime intra-op threads per replica; 0: usable cores / replicas
    address: str | None = None  # join a Ray cluster ("auto" or HOST:PORT); None: start one
    node_ip: str = HOST  # this machine's Ray node address (ray start --node-ip-address)
    num_cpus: float = 0.0  # Ray CPUs each replica reserves (0: none, so replicas always fit)
    max_replicas_per_node: int = 0  # 0: no limit; 1 spreads the replicas over the nodes
    drain_timeout_s: float = 30.0  # SIGTERM: the longest to wait for in-flight requests
    linger_s: float = 0.5  # SIGTERM: 503s (ready: 503) at least this long before closing
    # iterative bundles (cflow): the sampler settings a request may ask for (parameters steps,
    # guidance); (): the default set (protocol.sampler_choices: powers of two up to 32 steps
    # and the exported steps; guidance 1 and the exported guidance)
    steps: tuple[int, ...] = ()
    guidance: tuple[float, ...] = ()
    retry_after_s: int = 1  # the Retry-After header of a 503
    access_log: bool = False  # Ray Serve's line per request (proxy and replica): CPU per request
    ingress: str = "proxy"  # proxy: Ray Serve's HTTP proxy | haproxy: HAProxy to the replicas

    @property
    def model_name(self) -> str:
        return self.name or Path(self.bundle).resolve().name

    @property
    def ongoing(self) -> int:
        return self.max_ongoing_requests or 2 * self.max_batch

    @property
    def n_workers(self) -> int:
        """Local engine: worker processes (``workers``, or one per usable core up to 4). Why
        one per core: a worker's HTTP parsing, JSON and batching run on one Python thread (the
        GIL), so one worker cannot use a second core for them, while ONNX Runtime in each worker
        gets the cores divided by the workers; past 4 the sessions' memory grows faster than
        the work that needs cores. Indicative runs on the 2-core machine under a load average
        of 16-19 (benchmarks/results/serve-indicative-2026-12-02) could not tell 1, 2 and 3
        workers apart; ``serve_bench.py --serve-args "--workers 1"`` on a quiet machine does."""
        return self.workers or max(1, min(4, usable_cores()))

    @property
    def queued(self) -> int:
        return self.max_queued_requests or self.ongoing * (
            self.replicas if self.engine == "ray" else self.n_workers)

    @property
    def worker_capacity(self) -> int:
        """Local engine: requests one worker holds (running, batching, queued) before a 503."""
        return self.ongoing + -(-self.queued // self.n_workers)

    @property
    def delay_ms(self) -> float:
        if self.max_delay_ms is not None:
            return self.max_delay_ms
        return RAY_MAX_DELAY_MS if self.engine == "ray" else 0.0

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def grpc_target(self) -> str | None:
        return None if self.grpc_port is None else f"{HOST}:{self.grpc_port}"


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity), not the machine's count."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _check_port(value: object, option: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        raise ConfigError(f"{option} must be an integer in 1..65535, got {value!r}")


def validate(cfg: ServeConfig) -> None:
    """Refuse a bad command line before anything starts (a ``ConfigError``: exit 2)."""
    if cfg.engine not in ENGINES:
        raise ConfigError(f"--engine {cfg.engine!r}: expected one of {', '.join(ENGINES)}")
    _check_port(cfg.port, "--port")
    if cfg.grpc_port is not None:
        _check_port(cfg.grpc_port, "--grpc-port")
        if cfg.engine != "local":
            raise ConfigError("--grpc-port is served by the local engine; Ray Serve's gRPC "
                              "proxy needs a user-defined proto: leave out --grpc-port with "
                              "--engine ray")
        if cfg.grpc_port == cfg.port:
            raise ConfigError(f"--grpc-port {cfg.grpc_port} is also --port; give two ports")
    require_positive(cfg, "replicas", "max_batch", "max_request_rows", "drain_timeout_s")
    for name in ("max_delay_ms", "max_ongoing_requests", "max_queued_requests", "threads",
                 "num_cpus", "retry_after_s", "max_replicas_per_node", "workers", "linger_s"):
        if (getattr(cfg, name) or 0) < 0:
            raise ConfigError(f"--{name.replace('_', '-')} must be >= 0, got "
                              f"{getattr(cfg, name)}")
    if cfg.ingress not in INGRESSES:
        raise ConfigError(f"--ingress {cfg.ingress!r}: expected one of {', '.join(INGRESSES)}")
    if cfg.engine == "local" and (cfg.ingress != "proxy" or cfg.address is not None):
        raise ConfigError("--ingress and --address are options of --engine ray; the local "
                          "engine has no proxy and no cluster")
    _check_sampler_lists(cfg)
    name = cfg.model_name
    if not name or not all(c.isalnum() or c in "-_." for c in name):
        raise ConfigError(f"model name {name!r} must be letters, digits, '-', '_' or '.' "
                          "(it is a URL path segment); pass --name")
    if cfg.address is None:
        port_is_free(cfg.port)
    if cfg.grpc_port is not None:
        port_is_free(cfg.grpc_port, option="--grpc-port")


def _check_sampler_lists(cfg: ServeConfig) -> None:
    """``steps`` and ``guidance``: the runtime's own ranges (inputs.check_steps/guidance)."""
    from edgegen.runtime.inputs import MAX_GUIDANCE, MAX_STEPS

    bad = [s for s in cfg.steps if isinstance(s, bool) or not isinstance(s, int)
           or not 1 <= s <= MAX_STEPS]
    if bad:
        raise ConfigError(f"--steps {bad[0]!r}: each allowed step count must be an integer in "
                          f"1..{MAX_STEPS}")
    bad_w = [w for w in cfg.guidance if not (isinstance(w, (int, float)) and math.isfinite(w)
                                             and 0.0 <= w <= MAX_GUIDANCE)]
    if bad_w:
        raise ConfigError(f"--guidance {bad_w[0]!r}: each allowed guidance must be a number in "
                          f"[0, {MAX_GUIDANCE:g}]")


def free_port(host: str = HOST) -> int:
    """A TCP port that is free on ``host`` now."""
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def port_is_free(port: int, host: str = HOST, option: str = "--port") -> None:
    """A ConfigError when ``host:port`` cannot be bound (in use, or not allowed)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds it
        try:
            s.bind((host, port))
        except OSError as exc:
            why = "is already in use" if exc.errno == errno.EADDRINUSE else f"cannot be bound " \
                                                                           f"({exc.strerror})"
            raise ConfigError(f"port {port} on {host} {why}; pick another with {option}") \
                from None
