"""The server's routes over ``protocol``: one ``Endpoints`` object per replica, no Ray inside.

=========================================  ==============================================
``GET  /v2/health/live``                   200 while the process runs
``GET  /v2/health/ready``                  200 when the model is loaded, 503 while draining
``GET  /v2``                               server metadata (name, version, extensions)
``GET  /v2/models/{name}[/versions/1]``    model metadata from the bundle's manifest
``GET  /v2/models/{name}[/versions/1]/ready``
``POST /v2/models/{name}[/versions/1]/infer``  the v2 infer request (``protocol``)
``POST /v2/repository/index``              Triton's repository index: the one model
``GET  /generate?label=&seed=&format=``    one digit as PNG, PGM or .npy
=========================================  ==============================================

Every error is JSON ``{"error": "..."}`` with its status: 400 for a bad request, 404 for an
unknown path or model, 405 for a wrong method, 503 (with ``Retry-After``) while draining or when
the worker's queue is full, 500 when the model itself failed.
``infer`` is the replica's batched inference (``Work`` -> ``Done``), so the routes can be tested
without Ray by giving them ``batching.run_batch`` directly.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from urllib.parse import parse_qs

from edgegen.core.errors import RuntimeInputError
from edgegen.runtime.postprocess import to_pixels
from edgegen.serve.protocol import (
    VERSION,
    Done,
    ModelInfo,
    ProtocolError,
    Reply,
    Work,
    error_reply,
    image_reply,
    infer_reply,
    json_reply,
    model_metadata,
    parse_generate,
    parse_infer,
    repository_index,
    server_metadata,
)

Infer = Callable[[Work], Awaitable[Done]]


class Endpoints:
    """Route a request (method, path, query, lower-case headers, body) to its ``Reply``."""

    def __init__(self, model: ModelInfo, infer: Infer, retry_after_s: int = 1) -> None:
        self.model = model
        self.infer = infer
        self.retry_after_s = retry_after_s
        self.draining = False
        self.inflight = 0  # requests inside ``handle`` now
        self.served = 0  # replies given, any status

    async def handle(self, method: str, path: str, query: str, headers: dict[str, str],
                     body: bytes) -> Reply:
        self.inflight += 1
        try:
            return await self._route(method, path.rstrip("/") or "/", query, headers, body)
        except ProtocolError as exc:
            retry = {"retry-after": str(self.retry_after_s)} if exc.status == 503 else None
            return error_reply(str(exc), exc.status, retry)
        except RuntimeInputError as exc:  # a check the runtime made that the protocol did not
            return error_reply(str(exc), 400)
        except Exception as exc:  # noqa: BLE001 - the model or the provider failed: a JSON 500
            return error_reply(f"the server failed answering this request: "
                               f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}"
                               if str(exc) else type(exc).__name__, 500)
        finally:
            self.inflight -= 1
            self.served += 1

    def _unavailable(self) -> Reply:
        return error_reply("the server is shutting down (draining in-flight requests); retry "
                           "on another replica", 503, {"retry-after": str(self.retry_after_s)})

    async def _route(self, method: str, path: str, query: str, headers: dict[str, str],
                     body: bytes) -> Reply:
        parts = path.strip("/").split("/")
        if parts[:2] == ["v2", "health"] and len(parts) == 3 and parts[2] in ("live", "ready"):
            _method(method, "GET")
            if parts[2] == "ready" and self.draining:
                return self._unavailable()
            return json_reply({parts[2]: True})
        if parts == ["v2"]:
            _method(method, "GET")
            return json_reply(server_metadata())
        if parts == ["v2", "repository", "index"]:
            _method(method, "POST")
            return json_reply(repository_index(self.model))
        if parts[:2] == ["v2", "models"] and len(parts) >= 3:
            return await self._model_route(method, parts[2:], headers, body)
        if parts == ["generate"]:
            _method(method, "GET")
            if self.draining:
                return self._unavailable()
            work, fmt = parse_generate(parse_qs(query, keep_blank_values=True), self.model)
            done = await self.infer(work)
            headers_out = {}
            if done.accepted is not None and done.attempts is not None:
                headers_out = {"x-edgegen-accepted": str(bool(done.accepted[0])).lower(),
                               "x-edgegen-redraws": str(int(done.attempts[0]))}
            return image_reply(to_pixels(done.images[:1])[0], fmt, headers_out)
        raise ProtocolError(f"no route {method} {path}; see GET /v2/models/{self.model.name} "
                            "and GET /generate?label=7&seed=42", 404)

    async def _model_route(self, method: str, rest: list[str], headers: dict[str, str],
                           body: bytes) -> Reply:
        name, rest = rest[0], rest[1:]
        if name != self.model.name:
            raise ProtocolError(f"unknown model {name!r}; this server serves "
                                f"{self.model.name!r}", 404)
        if rest[:1] == ["versions"]:
            if len(rest) < 2 or rest[1] != VERSION:
                raise ProtocolError(f"model {name!r} has version {VERSION} only", 404)
            rest = rest[2:]
        if not rest:
            _method(method, "GET")
            return json_reply(model_metadata(self.model))
        if rest == ["ready"]:
            _method(method, "GET")
            return self._unavailable() if self.draining else json_reply({"ready": True})
        if rest == ["infer"]:
            _method(method, "POST")
            if self.draining:
                return self._unavailable()
            req = parse_infer(body, headers, self.model)
            done = await self.infer(req.work)
            return infer_reply(self.model, req, done)
        raise ProtocolError(f"no route under /v2/models/{name}: {'/'.join(rest)}", 404)


def _method(method: str, allowed: str) -> None:
    if method != allowed:
        raise ProtocolError(f"method {method} is not allowed here; use {allowed}", 405)
