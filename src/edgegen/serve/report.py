"""What ``serve_bundle`` gives back (``ServeReport``) and its start-up error (``ServeError``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from edgegen.core.errors import EdgegenError
from edgegen.core.report import Report


class ServeError(EdgegenError):
    """The server could not start (a worker or replica failed to load, Ray would not start)."""


@dataclass
class ServeReport(Report):
    url: str
    model: str
    replicas: int  # processes that answered: local workers or Ray replicas
    address: str  # local engine: "local"; Ray: "local" (a cluster it started) or --address
    engine: str = "local"
    grpc: str | None = None  # HOST:PORT of the KServe v2 gRPC service, when served
    ingress: str = "none"  # local: none (no proxy); ray: proxy | haproxy
    # how a probe request reached its worker or replica: "worker <i> (pid ...)" for the local
    # engine; for Ray "direct ingress: replica HTTP server on port P (HAProxy in front)" or
    # "Ray Serve proxy -> replica" (the replica reads it off the request it was given)
    ingress_path: str = ""
    placement: list[dict[str, Any]] = field(default_factory=list)  # worker/replica -> process
    restarts: list[dict[str, Any]] = field(default_factory=list)  # local: workers restarted
    started: str = ""
    startup_s: float = 0.0
    served_s: float = 0.0
    drain_s: float = 0.0
    stopped_by: str = ""
