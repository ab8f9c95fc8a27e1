"""``edgegen serve``: the bundle behind a KServe v2 server (HTTP, gRPC), dynamic batching: the
local engine (worker processes, no proxy; the default) or Ray Serve (``--engine ray``)."""

from __future__ import annotations

from pathlib import Path

import typer

from edgegen.cli.common import console, csv_option, errors_to_exit, progress_lines
from edgegen.serve.config import ServeConfig

S = ServeConfig()


def serve_command(
    bundle: Path = typer.Argument(..., help="Bundle folder made by `edgegen export`."),
    port: int = typer.Option(S.port, "--port", help="HTTP port on 127.0.0.1."),
    engine: str = typer.Option(S.engine, "--engine",
                               help="local: worker processes on this machine, no proxy in the "
                                    "path; ray: Ray Serve (clusters)."),
    workers: int = typer.Option(S.workers, "--workers",
                                help="Local engine: worker processes, each with its own ONNX "
                                     "Runtime session and batcher (0: one per usable core, at "
                                     "most 4)."),
    grpc_port: int = typer.Option(None, "--grpc-port",
                                  help="Local engine: also serve KServe v2 gRPC on 127.0.0.1 "
                                       "at this port."),
    replicas: int = typer.Option(S.replicas, "--replicas",
                                 help="Ray engine: replicas (processes), each with its own ONNX "
                                      "Runtime session; Ray places them on the cluster's "
                                      "nodes."),
    variant: str = typer.Option(None, "--variant",
                                help="fp32, fp16 or int8 (default: fp32)."),
    guard: bool = typer.Option(S.guard, "--guard",
                               help="Redraw samples the bundle's evaluator rejects (requests "
                                    "with seeds only)."),
    provider: str = typer.Option(S.provider, "--provider", "-p",
                                 help="cpu | cuda | tensorrt | tensorrt-rtx (never a silent "
                                      "fallback)."),
    max_batch: int = typer.Option(S.max_batch, "--max-batch",
                                  help="Dynamic batching: requests per batch."),
    max_delay_ms: float = typer.Option(None, "--max-delay-ms",
                                       help="Dynamic batching: the longest the first request "
                                            "of a batch waits for others (default: local 0, a "
                                            "batch takes what queued while the last one ran; "
                                            "ray 2)."),
    max_ongoing: int = typer.Option(S.max_ongoing_requests, "--max-ongoing-requests",
                                    help="Requests one worker or replica holds at once (0: 2 x "
                                         "--max-batch)."),
    max_queued: int = typer.Option(S.max_queued_requests, "--max-queued-requests",
                                   help="Requests that may wait beyond that (ray: at the "
                                        "proxy; local: in the workers' queues); then a 503 "
                                        "with Retry-After (0: ongoing x replicas or workers)."),
    steps: str = typer.Option("", "--steps",
                              help="Iterative bundles (cflow): the step counts a request may "
                                   "ask for, comma-separated (default: 1,2,4,8,16,32 and the "
                                   "exported steps)."),
    guidance: str = typer.Option("", "--guidance",
                                 help="Iterative bundles: the guidance values a request may ask "
                                      "for (default: 1 and the exported guidance)."),
    max_request_rows: int = typer.Option(S.max_request_rows, "--max-request-rows",
                                         help="Images one infer request may ask for."),
    threads: int = typer.Option(S.threads, "--threads",
                                help="ONNX Runtime threads per replica (0: cores / "
                                     "replicas)."),
    address: str = typer.Option(None, "--address",
                                help="Join a running Ray cluster: auto or HOST:PORT (default: "
                                     "start a local one on 127.0.0.1)."),
    node_ip: str = typer.Option(S.node_ip, "--node-ip-address",
                                help="With --address: the IP this machine's Ray node was "
                                     "started with (`ray start --node-ip-address`)."),
    max_replicas_per_node: int = typer.Option(S.max_replicas_per_node,
                                              "--max-replicas-per-node",
                                              help="Spread the replicas: at most this many on "
                                                   "one node (0: no limit)."),
    name: str = typer.Option(None, "--name",
                             help="Model name in the URLs (default: the bundle folder's "
                                  "name)."),
    drain_timeout: float = typer.Option(S.drain_timeout_s, "--drain-timeout",
                                        help="SIGTERM: the longest to wait for in-flight "
                                             "requests."),
    linger: float = typer.Option(S.linger_s, "--linger",
                                 help="SIGTERM: seconds of 503s (ready: 503) before the "
                                      "listener closes, so a load balancer notices."),
    ingress: str = typer.Option(S.ingress, "--ingress",
                                help="Ray engine: proxy (Ray Serve's HTTP proxy) or haproxy "
                                     "(HAProxy with direct ingress to the replicas' own HTTP "
                                     "servers, throughput-optimized Ray Serve)."),
    access_log: bool = typer.Option(S.access_log, "--access-log",
                                    help="Ray Serve's log line per request (costs CPU per "
                                         "request)."),
    json_path: Path = typer.Option(None, "--json",
                                   help="Write the run's report (placement, timings) here "
                                        "when the server stops."),
) -> None:
    """Serve a bundle over HTTP (KServe v2 protocol and GET /generate) and, with --grpc-port,
    KServe v2 gRPC, until SIGTERM or Ctrl-C, which drain the requests in flight. Exit 2: bad
    bundle, port or option (nothing started)."""
    with errors_to_exit():
        allowed = {"steps": csv_option(steps, "--steps", int),
                   "guidance": csv_option(guidance, "--guidance", float)}
    cfg = ServeConfig(bundle=bundle, name=name, port=port, engine=engine.lower(),
                      workers=workers, grpc_port=grpc_port, replicas=replicas, variant=variant,
                      guard=guard, provider=provider.lower(), max_batch=max_batch,
                      max_delay_ms=max_delay_ms, max_ongoing_requests=max_ongoing,
                      max_queued_requests=max_queued, max_request_rows=max_request_rows,
                      threads=threads, address=address, drain_timeout_s=drain_timeout,
                      max_replicas_per_node=max_replicas_per_node, node_ip=node_ip,
                      access_log=access_log, ingress=ingress.lower(), linger_s=linger,
                      **allowed)
    with errors_to_exit():
        from edgegen.serve.server import serve_bundle

        # a server runs until stopped: its progress (start-up, drain) prints as lines, no bars
        report = serve_bundle(cfg, progress_lines)
    console.print(f"stopped ({report.stopped_by}): served {report.served_s:.0f} s, drained and "
                  f"shut down in {report.drain_s:.1f} s", highlight=False)
    if json_path is not None:
        from edgegen.runtime.fileio import atomic_write_text

        atomic_write_text(json_path, report.to_json() + "\n")


def register(app: typer.Typer) -> None:
    app.command("serve")(serve_command)
