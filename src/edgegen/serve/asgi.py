"""``app.Endpoints`` as a plain ASGI 3 application, for the local engine's uvicorn workers.

No framework in between: uvicorn (httptools) parses the request, this reads the body, hands
method, path, query, headers and body to ``Endpoints.handle`` and writes its ``Reply`` with a
``Content-Length``. A framework's router, request and response objects would cost CPU on
every request and add nothing here: ``Endpoints`` already routes and answers every error as
JSON. A body larger than ``protocol.MAX_BODY`` is refused (413) from its ``Content-Length``,
before it is read.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from edgegen.serve.app import Endpoints
from edgegen.serve.protocol import JSON_TYPE, MAX_BODY

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


class App:
    """The ASGI callable; ``headers`` go on every reply (which worker answered)."""

    def __init__(self, endpoints: Endpoints, headers: dict[str, str] | None = None) -> None:
        self.endpoints = endpoints
        self._headers = [(k.encode("latin-1"), v.encode("latin-1"))
                         for k, v in (headers or {}).items()]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # uvicorn runs with lifespan off; no websockets here
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        length = headers.get("content-length", "0")
        if length.isdigit() and int(length) > MAX_BODY:
            await self._send(send, 413, json.dumps({"error": (
                f"request body is {int(length):,} bytes; at most {MAX_BODY:,}")}).encode(),
                JSON_TYPE, {})
            return
        body = await _read_body(receive)
        reply = await self.endpoints.handle(scope["method"], scope["path"],
                                            scope["query_string"].decode("latin-1"), headers,
                                            body)
        await self._send(send, reply.status, reply.body, reply.content_type, reply.headers)

    async def _send(self, send: Send, status: int, body: bytes, content_type: str,
                    headers: dict[str, str]) -> None:
        raw = [(b"content-type", content_type.encode("latin-1")),
               (b"content-length", str(len(body)).encode("latin-1")), *self._headers]
        raw += [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
        await send({"type": "http.response.start", "status": status, "headers": raw})
        await send({"type": "http.response.body", "body": body})


async def _read_body(receive: Receive) -> bytes:
    message = await receive()
    body = message.get("body", b"")
    if not message.get("more_body", False):
        return body  # the common case: the whole body in one message
    parts = [body]
    while message.get("more_body", False):
        message = await receive()
        parts.append(message.get("body", b""))
    return b"".join(parts)
