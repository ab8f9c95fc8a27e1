"""Serve the browser example: ``python examples/web/serve.py BUNDLE [--port 8000]``.

Serves ``examples/`` (the page under ``/web/``, the shared JavaScript under ``/js/``,
onnxruntime-web from ``/web/node_modules/``) and the bundle under ``/bundle/``, on 127.0.0.1 only.
A test passes ``on_report``: the page then POSTs its results to ``/report`` (see app.mjs).
Standard library only, so it runs wherever Python does.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import posixpath
import threading
from collections.abc import Callable
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

EXAMPLES = Path(__file__).resolve().parent.parent
TYPES = {".mjs": "text/javascript", ".js": "text/javascript", ".wasm": "application/wasm",
         ".json": "application/json", ".onnx": "application/octet-stream",
         ".pb": "application/octet-stream"}
MAX_REPORT = 16 << 20


class Handler(SimpleHTTPRequestHandler):
    """Static files from ``examples/``, and the bundle under ``/bundle/``."""

    extensions_map = {**SimpleHTTPRequestHandler.extensions_map, **TYPES}

    def __init__(self, *args: Any, bundle: Path, on_report: Callable[[Any], None] | None,
                 **kwargs: Any) -> None:
        self.bundle = bundle
        self.on_report = on_report
        super().__init__(*args, directory=str(EXAMPLES), **kwargs)

    def translate_path(self, path: str) -> str:
        """``/bundle/x`` -> ``BUNDLE/x``; everything else under ``examples/``.

        ``normpath`` has already collapsed every ``..``, so neither root can be left."""
        parts = [p for p in posixpath.normpath(unquote(urlsplit(path).path)).split("/") if p]
        if parts[:1] == ["bundle"]:
            return str(self.bundle.joinpath(*parts[1:]))
        return super().translate_path(path)

    def end_headers(self) -> None:
        self.send_header("Cache-Control", "no-store")  # a re-exported bundle is never stale
        super().end_headers()

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        if self.path != "/report" or self.on_report is None:
            self.send_error(404, "no report endpoint (only tests start one)")
            return
        length = int(self.headers.get("Content-Length", 0))
        if not 0 < length <= MAX_REPORT:
            self.send_error(413, "report too large")
            return
        self.on_report(json.loads(self.rfile.read(length)))
        self.send_response(204)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - base signature
        if self.on_report is None:  # quiet under tests
            super().log_message(format, *args)


def make_server(bundle: str | Path, port: int = 0,
                on_report: Callable[[Any], None] | None = None) -> ThreadingHTTPServer:
    """A server on 127.0.0.1 (``port=0``: any free port), not yet serving."""
    bundle = Path(bundle).resolve()
    if not (bundle / "manifest.json").is_file():
        raise SystemExit(f"{bundle} has no manifest.json: expected a bundle made by edgegen export")
    handler = partial(Handler, bundle=bundle, on_report=on_report)
    return ThreadingHTTPServer(("127.0.0.1", port), handler)


def serve_in_thread(server: ThreadingHTTPServer) -> threading.Thread:
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return thread


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bundle", type=Path)
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    server = make_server(args.bundle, args.port)
    print(f"open http://127.0.0.1:{server.server_address[1]}/web/ (Ctrl-C stops)")
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()


if __name__ == "__main__":
    main()
