"""Serve the browser example: ``python examples/web/serve.py BUNDLE [--port N] [--public-key K]``.

Serves ``examples/`` (the page under ``/web/``; the edgegen-runtime package, onnxruntime-web and
ajv from ``/web/node_modules/``), the bundle under ``/bundle/``, the one JSON
Schema of the manifest under ``/schema/bundle.schema.json`` (the file edgegen's Python package
ships — never a copy) and, with ``--public-key``, that PEM under ``/public_key.pem`` (open the
page with ``?public_key=/public_key.pem`` to check the bundle's signature), on 127.0.0.1 only.

A browser cannot list a folder or see a link, so the server enforces the file rules it can:
under ``/bundle/`` it serves regular files only — never a symbolic link (at any level), a
special file, a folder listing, or a path that leaves the bundle — and the page fetches only
what the manifest lists, checking each file's sha256.
A test passes ``on_report``: the page then POSTs its results to ``/report`` (see app.mjs).
``make_server(root=..., bundles={name: path}, files={url: path})`` serves another folder (the
package's own browser test: a fresh install of the packed npm package), several bundles under
``/bundles/NAME/`` and single files, by the same rules.
Standard library only, so it runs wherever Python does.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import posixpath
import stat
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
         ".pb": "application/octet-stream", ".ort": "application/octet-stream"}
MAX_REPORT = 16 << 20
SCHEMA_NAME = "bundle.schema.json"


def schema_file() -> Path:
    """edgegen/runtime/bundle.schema.json of this checkout, else of the installed package
    (found without importing it)."""
    here = EXAMPLES.parent / "runtime" / "src" / "edgegen" / "runtime" / SCHEMA_NAME
    if here.is_file():
        return here
    spec = importlib.util.find_spec("edgegen.runtime")
    if spec is not None and spec.origin:
        installed = Path(spec.origin).parent / SCHEMA_NAME
        if installed.is_file():
            return installed
    raise SystemExit(f"cannot find edgegen/runtime/{SCHEMA_NAME}: run from an edgegen checkout "
                     "or install edgegen")


class Handler(SimpleHTTPRequestHandler):
    """Static files from ``examples/``, and the bundle under ``/bundle/``."""

    extensions_map = {**SimpleHTTPRequestHandler.extensions_map, **TYPES}

    def __init__(self, *args: Any, bundle: Path | None, on_report: Callable[[Any], None] | None,
                 public_key: Path | None = None, root: Path = EXAMPLES,
                 bundles: dict[str, Path] | None = None, files: dict[str, Path] | None = None,
                 **kwargs: Any) -> None:
        self.bundle = bundle
        self.on_report = on_report
        self.public_key = public_key
        self.bundles = bundles or {}
        self.files = files or {}
        super().__init__(*args, directory=str(root), **kwargs)

    def send_head(self) -> Any:
        """The bundle's files, the schema and the public key by the rules in the module doc;
        everything else as a static file server."""
        parts = [p for p in posixpath.normpath(unquote(urlsplit(self.path).path)).split("/") if p]
        if parts[:1] == ["bundle"] and self.bundle is not None:
            return self._send_regular(self.bundle, parts[1:])
        if parts[:1] == ["bundles"] and len(parts) > 2 and parts[1] in self.bundles:
            return self._send_regular(self.bundles[parts[1]], parts[2:])
        if "/".join(parts) in self.files:
            file = self.files["/".join(parts)]
            return self._send_regular(file.parent, [file.name])
        if parts == ["schema", SCHEMA_NAME]:
            return self._send_regular(schema_file().parent, [SCHEMA_NAME])
        if parts == ["public_key.pem"] and self.public_key is not None:
            return self._send_regular(self.public_key.parent, [self.public_key.name])
        return super().send_head()

    def _send_regular(self, root: Path, parts: list[str]) -> Any:
        """``root/parts`` when it is a regular file reached through no symbolic link; else an
        error status (403 for a link or a folder, 404 for anything missing or special)."""
        if not parts or any(p in ("..", ".") or "\x00" in p or "\\" in p for p in parts):
            self.send_error(403, "only files inside the bundle are served")
            return None
        here = root
        for part in parts:
            here = here / part
            try:
                mode = os.lstat(here).st_mode
            except OSError:
                self.send_error(404, "not found")
                return None
            if stat.S_ISLNK(mode):
                self.send_error(403, "a symbolic link is never served (it can point outside "
                                     "the bundle)")
                return None
        if not stat.S_ISREG(mode):
            self.send_error(403 if stat.S_ISDIR(mode) else 404, "only regular files are served")
            return None
        try:
            fd = os.open(here, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0)
                         | getattr(os, "O_NONBLOCK", 0))
        except OSError:
            self.send_error(403, "refused")
            return None
        fh = os.fdopen(fd, "rb")
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            fh.close()
            self.send_error(404, "only regular files are served")
            return None
        self.send_response(200)
        self.send_header("Content-Type", self.guess_type(str(here)))
        self.send_header("Content-Length", str(st.st_size))
        self.end_headers()
        return fh

    def translate_path(self, path: str) -> str:
        """``/bundle/x`` -> ``BUNDLE/x``; everything else under ``examples/``.

        ``normpath`` has already collapsed every ``..``, so neither root can be left."""
        parts = [p for p in posixpath.normpath(unquote(urlsplit(path).path)).split("/") if p]
        if parts[:1] == ["bundle"] and self.bundle is not None:
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


def _bundle_dir(path: str | Path) -> Path:
    bundle = Path(path).resolve()
    if not (bundle / "manifest.json").is_file():
        raise SystemExit(f"{bundle} has no manifest.json: expected a bundle made by edgegen export")
    return bundle


def make_server(bundle: str | Path | None, port: int = 0,
                on_report: Callable[[Any], None] | None = None,
                public_key: str | Path | None = None, *, root: str | Path = EXAMPLES,
                bundles: dict[str, str | Path] | None = None,
                files: dict[str, str | Path] | None = None) -> ThreadingHTTPServer:
    """A server on 127.0.0.1 (``port=0``: any free port), not yet serving: ``root`` at ``/``,
    ``bundle`` at ``/bundle/``, each of ``bundles`` at ``/bundles/NAME/``, each of ``files`` at
    its URL path (``{"cases.json": path}``)."""
    one = _bundle_dir(bundle) if bundle is not None else None
    many = {name: _bundle_dir(p) for name, p in (bundles or {}).items()}
    schema_file()  # fail now, not on the page's first request
    key = Path(public_key).resolve() if public_key is not None else None
    handler = partial(Handler, bundle=one, on_report=on_report, public_key=key,
                      root=Path(root).resolve(), bundles=many,
                      files={k.strip("/"): Path(v).resolve() for k, v in (files or {}).items()})
    return ThreadingHTTPServer(("127.0.0.1", port), handler)


def serve_in_thread(server: ThreadingHTTPServer) -> threading.Thread:
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return thread


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bundle", type=Path)
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--public-key", type=Path, default=None,
                        help="PEM public key served at /public_key.pem for the page's "
                             "signature check")
    args = parser.parse_args()
    server = make_server(args.bundle, args.port, public_key=args.public_key)
    query = "?public_key=/public_key.pem" if args.public_key else ""
    print(f"open http://127.0.0.1:{server.server_address[1]}/web/{query} (Ctrl-C stops)")
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()


if __name__ == "__main__":
    main()
