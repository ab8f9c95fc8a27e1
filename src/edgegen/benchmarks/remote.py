"""``edgegen bench --url``: the load generator against any KServe v2 endpoint.

The same scenarios as in-process — offline (one request of ``batch`` images at a time, timed in
interleaved blocks) and server (Poisson arrivals, one image a request, a QPS sweep under a p99
bound) — sent over HTTP to ``edgegen serve``, Triton or KServe alike: only the v2 protocol is
assumed. The model is found with ``GET /v2/models/{name}`` (``--model``; without it, Triton's
``POST /v2/repository/index`` when it lists exactly one model), whose metadata gives the input
names, the latent size and whether ``label`` is ``[n]`` or Triton's ``[n, 1]``.

Requests carry the generator's own inputs, ``z`` (the portable latent) and ``label``, as binary
tensor data (the extension Triton's and KServe's clients use) or, with ``--http-tensors json``,
as JSON numbers; the reply's ``image`` comes back the same way. Each worker thread keeps one
HTTP/1.1 keep-alive connection (``http.client``), so connection set-up is paid once per worker,
never per request. A 503 is counted as rejected (overload shed by the server), any other error
as failed; a request never waits more than ``timeout_s``, and a run never issues more than its
Poisson arrivals, so the load generator stops by itself.

With the bundle given too, the in-process edgegen contender runs the same scenario with the same
batching settings, and the report puts both side by side: the difference is what HTTP, the
serialization and the server's hops cost. Several ``--url`` (the server scenario) measure
several endpoints in one run, e.g. ``edgegen serve``'s local and Ray engines.

The load generator is this Python process: on a 2-core machine serving on the same machine, its
own CPU time is part of what is measured (it takes cores from the server), so each served run
reports ``client_cpu_share`` (the process's CPU time over the run's wall time and the usable
cores). ``benchmarks/scripts/serve_bench.py`` measures with ``wrk``, a compiled client.
"""

from __future__ import annotations

import http.client
import ipaddress
import json
import threading
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from edgegen.benchmarks.results import split_url
from edgegen.benchmarks.runners import Contender, Inputs
from edgegen.benchmarks.scenarios import Rejected
from edgegen.core.errors import ConfigError, EdgegenError

HEADER_LENGTH = "Inference-Header-Content-Length"
NP_TYPES = {"FP32": np.dtype("<f4"), "INT64": np.dtype("<i8"), "UINT8": np.dtype("u1")}


class RemoteError(EdgegenError):
    """The endpoint cannot be measured: unreachable, not ready, or not a generator model."""


@dataclass(frozen=True)
class Endpoint:
    """A v2 model that takes a latent and a label and answers an image."""

    host: str
    port: int
    model: str
    z_name: str
    label_name: str
    image_name: str
    z_dim: int
    label_rank: int  # 1: label [n] (the bundle's graph); 2: Triton's [n, 1]
    metadata: dict[str, Any]

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def on_this_machine(self) -> bool:
        """Whether the server answers on a loopback address (its CPU time is this machine's)."""
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host.strip("[]")).is_loopback
        except ValueError:
            return False


def served_key(ep: Endpoint) -> str:
    """The contender key of an endpoint: its model and where it answers (two engines may
    serve the same model in one run)."""
    return f"served/{ep.model}@{ep.host}:{ep.port}"


def _request(host: str, port: int, method: str, path: str, body: bytes | None = None,
             timeout_s: float = 10.0) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection(host, port, timeout=timeout_s)
    try:
        conn.request(method, path, body=body,
                     headers={"Content-Type": "application/json"} if body else {})
        resp = conn.getresponse()
        return resp.status, resp.read()
    except OSError as exc:
        raise RemoteError(f"cannot reach http://{host}:{port}{path} ({exc}); is the server "
                          "running (`edgegen serve BUNDLE`)?") from None
    finally:
        conn.close()


def discover(url: str, model: str | None = None, timeout_s: float = 10.0) -> Endpoint:
    """Check that the server is ready and find the generator model's tensors."""
    host, port = split_url(url)
    status, _ = _request(host, port, "GET", "/v2/health/ready", timeout_s=timeout_s)
    if status != 200:
        raise RemoteError(f"{url}/v2/health/ready answered {status}: the server is not ready")
    if model is None:
        status, body = _request(host, port, "POST", "/v2/repository/index", b"{}", timeout_s)
        names = [m.get("name") for m in json.loads(body)] if status == 200 else []
        if len(names) != 1:
            found = f"it lists {', '.join(map(str, names))}" if names else \
                "it has no repository index"
            raise ConfigError(f"which model of {url}? {found}: pass --model NAME")
        model = str(names[0])
    status, body = _request(host, port, "GET", f"/v2/models/{model}", timeout_s=timeout_s)
    if status != 200:
        raise RemoteError(f"{url}/v2/models/{model} answered {status}: {body[:200]!r}")
    meta = json.loads(body)
    ins = {t["name"]: t for t in meta.get("inputs", [])}
    z = next((t for t in ins.values() if t.get("datatype") == "FP32"), None)
    label = next((t for t in ins.values() if t.get("datatype") == "INT64"), None)
    outs = meta.get("outputs", [])
    if z is None or label is None or len(ins) != 2 or not outs:
        raise RemoteError(f"model {model!r} at {url} has inputs "
                          f"{[(t['name'], t.get('datatype')) for t in ins.values()]}; bench "
                          "--url needs a generator that takes FP32 z and INT64 label")
    return Endpoint(host=host, port=port, model=model, z_name=z["name"],
                    label_name=label["name"], image_name=outs[0]["name"],
                    z_dim=int(z["shape"][-1]), label_rank=len(label["shape"]), metadata=meta)


def infer_body(ep: Endpoint, z: np.ndarray, labels: np.ndarray, binary: bool
               ) -> tuple[bytes, dict[str, str]]:
    """A v2 infer request for ``z [n, z_dim]`` and ``labels [n]`` and its headers."""
    n = int(labels.shape[0])
    label_shape = [n] if ep.label_rank == 1 else [n, 1]
    inputs: list[dict[str, Any]] = [
        {"name": ep.z_name, "shape": [n, ep.z_dim], "datatype": "FP32"},
        {"name": ep.label_name, "shape": label_shape, "datatype": "INT64"}]
    out: dict[str, Any] = {"name": ep.image_name}
    headers = {"Content-Type": "application/json"}
    if not binary:
        inputs[0]["data"] = z.reshape(-1).tolist()
        inputs[1]["data"] = labels.tolist()
        return json.dumps({"inputs": inputs, "outputs": [out]}).encode(), headers
    raw = [np.ascontiguousarray(z, "<f4").tobytes(), np.ascontiguousarray(labels, "<i8").tobytes()]
    for t, r in zip(inputs, raw):
        t["parameters"] = {"binary_data_size": len(r)}
    out["parameters"] = {"binary_data": True}
    header = json.dumps({"inputs": inputs, "outputs": [out]}).encode()
    headers = {"Content-Type": "application/octet-stream", HEADER_LENGTH: str(len(header))}
    return header + b"".join(raw), headers


def parse_reply(ep: Endpoint, status: int, headers: dict[str, str], body: bytes
                ) -> np.ndarray:
    """The image tensor of a v2 infer reply; ``Rejected`` for 503, ``RemoteError`` otherwise."""
    if status == 503:
        raise Rejected(headers.get("retry-after", ""))
    if status != 200:
        raise RemoteError(f"HTTP {status}: {body[:300]!r}")
    length = headers.get(HEADER_LENGTH.lower())
    header = json.loads(body[:int(length)] if length else body)
    out = next(o for o in header["outputs"] if o["name"] == ep.image_name)
    dtype = NP_TYPES[out["datatype"]]
    if length:
        size = int(out["parameters"]["binary_data_size"])
        return np.frombuffer(body, dtype, size // dtype.itemsize, int(length)) \
            .reshape(out["shape"])
    return np.asarray(out["data"], dtype=dtype).reshape(out["shape"])


class V2Client:
    """One keep-alive connection; not shared between threads (each worker makes its own)."""

    def __init__(self, ep: Endpoint, timeout_s: float = 10.0) -> None:
        self.ep = ep
        self.timeout_s = timeout_s
        self.conn: http.client.HTTPConnection | None = None

    def post(self, body: bytes, headers: dict[str, str]) -> np.ndarray:
        path = f"/v2/models/{self.ep.model}/infer"
        for attempt in (0, 1):  # a keep-alive connection the server closed: reconnect once
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.ep.host, self.ep.port,
                                                       timeout=self.timeout_s)
            try:
                self.conn.request("POST", path, body=body, headers=headers)
                resp = self.conn.getresponse()
                data = resp.read()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self.close()
                if attempt:
                    raise
                continue
            reply_headers = {k.lower(): v for k, v in resp.getheaders()}
            if reply_headers.get("connection", "").lower() == "close":
                self.close()
            return parse_reply(self.ep, resp.status, reply_headers, data)
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def served_contender(ep: Endpoint, inputs: Inputs, *, binary: bool, timeout_s: float,
                     check: np.ndarray | None = None) -> Contender:
    """The endpoint as a contender: ``infer(k)`` posts the first ``k`` rows of ``inputs`` from
    the calling thread's own connection. ``check``: the image the first call must return (the
    in-process fp32 output), so a server answering something else is caught, not timed."""
    bodies: dict[int, tuple[bytes, dict[str, str]]] = {}
    local = threading.local()
    clients: list[V2Client] = []
    lock = threading.Lock()

    def body(k: int) -> tuple[bytes, dict[str, str]]:
        if k not in bodies:
            bodies[k] = infer_body(ep, inputs.z[:k], inputs.label[:k], binary)
        return bodies[k]

    def infer(k: int) -> object:
        client = getattr(local, "client", None)
        if client is None:
            client = local.client = V2Client(ep, timeout_s)
            with lock:
                clients.append(client)
        return client.post(*body(k))

    t0 = time.perf_counter_ns()
    first = infer(inputs.batch)
    create_s = (time.perf_counter_ns() - t0) / 1e9
    if check is not None:
        got = np.asarray(first, np.float32).reshape(check.shape)
        worst = float(np.abs(got - check).max())
        if worst > 0.05:  # another provider's arithmetic passes; another model does not
            raise RemoteError(f"{ep.url} model {ep.model} answers images that differ from the "
                              f"bundle's by up to {worst:.3g}: is it serving this bundle?")
    return Contender(key=served_key(ep), kind="served", variant=f"{ep.host}:{ep.port}",
                     provider="http", batch=inputs.batch, infer=infer,
                     session_create_s=create_s,
                     settings={"url": ep.url, "model": ep.model,
                               "tensors": "binary" if binary else "json",
                               "keep_alive": True, "timeout_s": timeout_s,
                               "server": ep.metadata.get("platform"),
                               "served_variant": ep.metadata.get("edgegen", {}).get("variant")})


def reference_images(inputs: Inputs, bundle: Any, variant: str) -> np.ndarray:
    """The in-process image of ``inputs`` (what a server of the same bundle must answer)."""
    from edgegen.runtime.providers import make_session
    from edgegen.runtime.sessions import run_generator

    session = make_session(bundle.model_bytes(variant), name=str(bundle.variant_path(variant)))
    return run_generator(session, inputs.z, inputs.label)
