"""edgegen.serve: the bundle behind a production inference server (``edgegen serve``).

Two engines answer the same routes (the KServe v2 "open inference" protocol over HTTP, with the
binary tensor extension, plus ``GET /generate`` for one image) with the same dynamic batching:

* ``local`` (the default): worker processes on one machine, no proxy in the path: each runs
  uvicorn (uvloop + httptools) on a shared listening socket, its own ``Generator`` and
  ``batcher.Batcher``, and, with ``--grpc-port``, KServe v2 gRPC (``grpc_service``);
  ``local`` supervises them (restarts, drain), ``worker`` is one of them, ``asgi`` the glue;
* ``ray``: Ray Serve for clusters (``ray_engine``, ``deployment``, ``drain``), behind Ray
  Serve's proxy or HAProxy with direct ingress.

Ray-free modules: ``config`` (``ServeConfig``, checks), ``protocol`` (v2 requests and replies),
``app`` (the routes), ``batching`` (one batch through the Generator), ``batcher``,
``replica`` (what each process loads), ``preflight``, ``report``, ``server`` (``serve_bundle``:
start, serve, drain, stop) and ``processes`` (what a pid started, so that tests and scripts stop
it by pid). Ray is imported only in ``ray_engine``, ``deployment`` and ``drain``, inside their
functions or by them alone: importing ``edgegen.serve`` stays cheap. Install with
``pip install -e ".[cpu,serve]"`` (and ``[ray]`` for ``--engine ray``).
"""

from __future__ import annotations

from edgegen.serve.config import ServeConfig

__all__ = ["ServeConfig"]
