"""What ``edgegen serve`` takes: ``ServeConfig`` (every default of the command) and its checks.

Imports the standard library and the runtime's errors only, so the CLI can check a command line
(port, bundle, numbers) before Ray is imported or started.
"""

from __future__ import annotations

import errno
import socket
from dataclasses import dataclass
from pathlib import Path

from edgegen.core.errors import ConfigError, require_positive

HOST = "127.0.0.1"  # edgegen binds to the loopback only; put a proxy in front to go further
INGRESSES = ("proxy", "haproxy")


@dataclass(frozen=True)
class ServeConfig:
    """Every default of ``edgegen serve`` lives here; the CLI reuses them."""

    bundle: Path = Path("bundles/cdcgan")
    name: str | None = None  # the v2 model name; None: the bundle folder's name
    port: int = 8000
    replicas: int = 1
    variant: str | None = None  # None: fp32 (the runtime's default variant)
    guard: bool = False  # redraw samples the bundle's evaluator rejects (seeded requests only)
    provider: str = "cpu"
    max_batch: int = 64  # @serve.batch: requests per batch
    max_delay_ms: float = 2.0  # @serve.batch: the longest a request waits for others to join
    max_ongoing_requests: int = 0  # per replica; 0: 2 x max_batch (a batch running, one forming)
    max_queued_requests: int = 0  # at the proxy, beyond that a 503; 0: ongoing x replicas
    max_request_rows: int = 256  # rows (images) one request may ask for
    threads: int = 0  # ONNX Runtime intra-op threads per replica; 0: usable cores / replicas
    address: str | None = None  # join a Ray cluster ("auto" or HOST:PORT); None: start one
    node_ip: str = HOST  # this machine's Ray node address (ray start --node-ip-address)
    num_cpus: float = 0.0  # Ray CPUs each replica reserves (0: none, so replicas always fit)
    max_replicas_per_node: int = 0  # 0: no limit; 1 spreads the replicas over the nodes
    drain_timeout_s: float = 30.0  # SIGTERM: the longest to wait for in-flight requests
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
    def queued(self) -> int:
        return self.max_queued_requests or self.ongoing * self.replicas

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"


def validate(cfg: ServeConfig) -> None:
    """Refuse a bad command line before anything starts (a ``ConfigError``: exit 2)."""
    if isinstance(cfg.port, bool) or not isinstance(cfg.port, int) \
            or not 1 <= cfg.port <= 65535:
        raise ConfigError(f"--port must be an integer in 1..65535, got {cfg.port!r}")
    require_positive(cfg, "replicas", "max_batch", "max_request_rows", "drain_timeout_s")
    for name in ("max_delay_ms", "max_ongoing_requests", "max_queued_requests", "threads",
                 "num_cpus", "retry_after_s", "max_replicas_per_node"):
        if getattr(cfg, name) < 0:
            raise ConfigError(f"--{name.replace('_', '-')} must be >= 0, got "
                              f"{getattr(cfg, name)}")
    if cfg.ingress not in INGRESSES:
        raise ConfigError(f"--ingress {cfg.ingress!r}: expected one of {', '.join(INGRESSES)}")
    name = cfg.model_name
    if not name or not all(c.isalnum() or c in "-_." for c in name):
        raise ConfigError(f"model name {name!r} must be letters, digits, '-', '_' or '.' "
                          "(it is a URL path segment); pass --name")
    if cfg.address is None:
        port_is_free(cfg.port)


def free_port(host: str = HOST) -> int:
    """A TCP port that is free on ``host`` now."""
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def port_is_free(port: int, host: str = HOST) -> None:
    """A ConfigError when ``host:port`` cannot be bound (in use, or not allowed)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds it
        try:
            s.bind((host, port))
        except OSError as exc:
            why = "is already in use" if exc.errno == errno.EADDRINUSE else f"cannot be bound " \
                                                                           f"({exc.strerror})"
            raise ConfigError(f"port {port} on {host} {why}; pick another with --port") \
                from None
