"""edgegen.serve: the bundle behind a production inference server (``edgegen serve``).

Ray Serve runs the replicas (each one ``edgegen.runtime.Generator``, dynamic batching with
``@serve.batch``) and speaks HTTP; the routes follow the KServe v2 ("open inference") protocol,
plus ``GET /generate`` for one image. Modules: ``config`` (``ServeConfig``, checks), ``protocol``
(v2 requests and replies, no Ray), ``app`` (the routes, no Ray), ``batching`` (one dynamic batch
through the Generator, no Ray), ``drain`` (SIGTERM across replicas), ``deployment`` (the Ray Serve
deployment), ``server`` (``serve_bundle``: start, serve, drain, stop) and ``processes`` (what a
pid started, so that tests and scripts stop it by pid).

This package needs only ``edgegen.runtime`` below it, and Ray only in ``deployment``, ``drain``
and ``server``, which import it inside their functions or are imported by them alone: importing
``edgegen.serve`` stays cheap. Install with ``pip install -e ".[cpu,serve]"``.
"""

from __future__ import annotations

from edgegen.serve.config import ServeConfig

__all__ = ["ServeConfig"]
