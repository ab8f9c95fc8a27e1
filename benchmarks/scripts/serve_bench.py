"""The serving table: every ``edgegen serve`` engine x concurrency, measured with ``wrk``.

For each engine (``local`` — worker processes, no proxy; ``ray-proxy`` — Ray Serve's HTTP proxy;
``ray-haproxy`` — HAProxy with direct ingress, throughput-optimized Ray Serve) it starts
``edgegen serve BUNDLE`` on a free 127.0.0.1 port, waits until it is ready, and drives it with
``wrk`` (a compiled load generator: ``apt-get install -y wrk``) at each concurrency (open
keep-alive connections, each sending its next request when the last is answered), with 1-row
KServe v2 infer bodies made here (``serve_infer.lua`` sends them):

* ``json``: ``z`` (FP32 [1, z_dim], the portable latent of seed 2024) and ``label`` as JSON
  numbers, the FP32 image back as JSON;
* ``binary``: the same tensors with the binary tensor extension (``binary_data_size``,
  ``Inference-Header-Content-Length``), the image back as raw bytes;
* ``grpc`` (local engine, ``--grpc-port``): ModelInfer with raw tensors, driven by a Python
  ``grpc.aio`` client in this process (no compiled gRPC load generator is installed): its own
  CPU share is recorded beside the numbers, since on a small machine it takes the server's
  cores.

Each row: requests/s, p50/p99 (ms), errors (non-2xx answers and socket errors), the 1-minute
load average after the run, and which path the requests took (the server's report). The
in-process dynamic-batching server scenario (``edgegen bench --scenario server --p99-bound-ms
10``, same bundle) runs in the same invocation, and the summary gives the targets of issue 22
(local engine p99 <= 2 ms at concurrency 1; >= 2,500 req/s under a 10 ms p99; binary/gRPC >=
3,500 req/s; >= 60% of the in-process highest QPS; Ray + HAProxy p99 <= 10 ms at >= 1,000 req/s).
It writes ``serve_bench.json`` and ``serve_bench.md`` under ``--out``. Read the numbers only
from a quiet machine (the load average column says how quiet it was):

    .venv/bin/python benchmarks/scripts/serve_bench.py bundles/cdcgan \\
        --out benchmarks/results/serve-$(date +%F)             # ~10 minutes with defaults
    .venv/bin/python benchmarks/scripts/serve_bench.py bundles/cdcgan --duration 1 \\
        --concurrency 1,8 --engines local --out /tmp/serve-smoke   # a smoke run

Everything it starts binds 127.0.0.1 and is stopped by process id (SIGTERM, then a check that
every process below the server is gone).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as _dt
import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from edgegen.runtime.latent import latent
from edgegen.serve.config import free_port
from edgegen.serve.processes import alive, descendants

HERE = Path(__file__).resolve().parent
LUA = HERE / "serve_infer.lua"
ENGINES = {"local": ("--engine", "local"),
           "ray-proxy": ("--engine", "ray", "--ingress", "proxy"),
           "ray-haproxy": ("--engine", "ray", "--ingress", "haproxy")}
BOUND_MS = 10.0


def args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("bundle", type=Path)
    p.add_argument("--engines", default="local,ray-proxy,ray-haproxy")
    p.add_argument("--concurrency", default="1,8,32")
    p.add_argument("--bodies", default="json,binary,grpc")
    p.add_argument("--duration", type=float, default=10.0, help="seconds per wrk run")
    p.add_argument("--wrk-threads", type=int, default=2, help="wrk threads (<= concurrency)")
    p.add_argument("--workers", type=int, default=0, help="local engine: 0 = its default")
    p.add_argument("--replicas", type=int, default=1, help="ray engines")
    p.add_argument("--serve-args", default="", help="more `edgegen serve` options, quoted")
    p.add_argument("--in-process-duration", type=float, default=5.0,
                   help="seconds per QPS step of the in-process server scenario (0: skip)")
    p.add_argument("--out", type=Path, required=True)
    return p.parse_args()


# --------------------------------------------------------------------------- bodies
def bodies(folder: Path, z_dim: int, model: str) -> dict[str, dict[str, str]]:
    """The request files wrk sends: name -> {file, header_length, path}."""
    z = latent(2024, 1, z_dim)
    label = np.array([7], "<i8")
    inputs: list[dict[str, Any]] = [
        {"name": "z", "shape": [1, z_dim], "datatype": "FP32", "data": z.reshape(-1).tolist()},
        {"name": "label", "shape": [1], "datatype": "INT64", "data": label.tolist()}]
    path = f"/v2/models/{model}/infer"
    (folder / "body.json").write_bytes(json.dumps({"inputs": inputs}).encode())
    for t, raw in zip(inputs, (z.tobytes(), label.tobytes())):
        del t["data"]
        t["parameters"] = {"binary_data_size": len(raw)}
    header = json.dumps({"inputs": inputs, "outputs": [
        {"name": "image", "parameters": {"binary_data": True}}]}).encode()
    (folder / "body.bin").write_bytes(header + z.tobytes() + label.tobytes())
    return {"json": {"file": str(folder / "body.json"), "header_length": "", "path": path},
            "binary": {"file": str(folder / "body.bin"), "header_length": str(len(header)),
                       "path": path}}


# --------------------------------------------------------------------------- the server
class Server:
    def __init__(self, bundle: Path, engine: str, a: argparse.Namespace, folder: Path) -> None:
        self.port, self.grpc_port = free_port(), free_port() if engine == "local" else None
        self.report_path = folder / f"{engine}-serve.json"
        cmd = [sys.executable, "-m", "edgegen", "serve", str(bundle), "--port", str(self.port),
               *ENGINES[engine], "--json", str(self.report_path), *a.serve_args.split()]
        if engine == "local":
            cmd += ["--grpc-port", str(self.grpc_port)]
            if a.workers:
                cmd += ["--workers", str(a.workers)]
        else:
            cmd += ["--replicas", str(a.replicas)]
        self.cmd = cmd
        self.log = open(folder / f"{engine}-serve.log", "w")  # noqa: SIM115 - closed in stop
        print("$", " ".join(cmd), flush=True)
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT,
                                     env={**os.environ, "RAY_USAGE_STATS_ENABLED": "0"})
        self.pids: set[int] = set()

    def wait_ready(self, timeout_s: float = 300.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"edgegen serve exited {self.proc.returncode}; see "
                                   f"{self.log.name}")
            self.pids |= descendants(self.proc.pid)
            with contextlib.suppress(OSError):
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                conn.request("GET", "/v2/health/ready")
                if conn.getresponse().status == 200:
                    return
            time.sleep(0.5)
        raise RuntimeError(f"not ready after {timeout_s} s; see {self.log.name}")

    def stop(self) -> dict[str, Any]:
        self.pids |= descendants(self.proc.pid) if self.proc.poll() is None else set()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=180)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and any(alive(p) for p in self.pids):
            time.sleep(0.3)
        for p in self.pids:
            if alive(p):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(p, signal.SIGKILL)
        self.log.close()
        try:
            return json.loads(self.report_path.read_text())
        except (OSError, ValueError):
            return {}


# --------------------------------------------------------------------------- load
def run_wrk(url: str, body: dict[str, str], conc: int, a: argparse.Namespace) -> dict[str, Any]:
    env = {**os.environ, "EDGEGEN_BODY": body["file"], "EDGEGEN_PATH": body["path"],
           "EDGEGEN_HEADER_LENGTH": body["header_length"]}
    threads = max(1, min(a.wrk_threads, conc))
    cmd = ["wrk", f"-t{threads}", f"-c{conc}", f"-d{max(1, round(a.duration))}s", "--latency",
           "--timeout", "10s", "-s", str(LUA), url]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=a.duration + 60)
    line = next((x for x in out.stdout.splitlines() if x.startswith("EDGEGEN_RESULT ")), None)
    if line is None:
        raise RuntimeError(f"wrk gave no result: {out.stdout[-500:]} {out.stderr[-500:]}")
    r = json.loads(line.split(" ", 1)[1])
    secs = r["duration_us"] / 1e6
    errors = r["non_2xx"] + r["connect_errors"] + r["read_errors"] + r["write_errors"] + \
        r["timeouts"]
    return {"client": f"wrk -t{threads}", "requests": r["requests"],
            "req_s": r["status_200"] / secs, "p50_ms": r["p50_us"] / 1e3,
            "p99_ms": r["p99_us"] / 1e3, "max_ms": r["max_us"] / 1e3, "errors": errors,
            "status_503": r["status_503"], "raw": r}


async def _grpc_load(target: str, model: str, z_dim: int, conc: int, duration: float
                     ) -> tuple[list[float], int]:
    import grpc
    from tritonclient.grpc import service_pb2 as pb
    from tritonclient.grpc import service_pb2_grpc

    req = pb.ModelInferRequest(model_name=model)
    req.inputs.add(name="z", datatype="FP32", shape=[1, z_dim])
    req.inputs.add(name="label", datatype="INT64", shape=[1])
    req.raw_input_contents.extend([latent(2024, 1, z_dim).tobytes(),
                                   np.array([7], "<i8").tobytes()])
    lat: list[float] = []
    errors = 0
    stop_at = time.perf_counter() + duration
    async with grpc.aio.insecure_channel(target) as channel:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        await stub.ModelInfer(req, timeout=10)  # connected and warm

        async def one() -> None:
            nonlocal errors
            while time.perf_counter() < stop_at:
                t0 = time.perf_counter()
                try:
                    await stub.ModelInfer(req, timeout=10)
                    lat.append(time.perf_counter() - t0)
                except grpc.aio.AioRpcError:
                    errors += 1

        await asyncio.gather(*(one() for _ in range(conc)))
    return lat, errors


def run_grpc(target: str, model: str, z_dim: int, conc: int, duration: float
             ) -> dict[str, Any]:
    cpu0, t0 = time.process_time(), time.perf_counter()
    lat, errors = asyncio.run(_grpc_load(target, model, z_dim, conc, duration))
    wall = time.perf_counter() - t0
    ms = np.array(lat) * 1e3
    return {"client": "python grpc.aio (this process)", "requests": len(lat) + errors,
            "req_s": len(lat) / duration, "p50_ms": float(np.percentile(ms, 50)) if lat else None,
            "p99_ms": float(np.percentile(ms, 99)) if lat else None,
            "max_ms": float(ms.max()) if lat else None, "errors": errors,
            "client_cpu_share": (time.process_time() - cpu0) / (wall * (os.cpu_count() or 1))}


# --------------------------------------------------------------------------- in-process
def in_process(bundle: Path, folder: Path, duration: float) -> dict[str, Any]:
    """The in-process dynamic-batching server scenario: its highest QPS under the bound."""
    out = folder / "in-process-bench.json"
    cmd = [sys.executable, "-m", "edgegen", "bench", str(bundle), "--scenario", "server",
           "--precision", "fp32", "--peers", "none", "--max-batch", "64", "--qps", "2000",
           "--p99-bound-ms", str(BOUND_MS), "--duration", str(duration), "--json", str(out)]
    print("$", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=False, stdout=subprocess.DEVNULL, timeout=3600)
    report = json.loads(out.read_text())
    best = {k: v.get("best_qps") for k, v in report.get("sweeps", {}).items()}
    batched = [q for k, q in best.items() if not k.endswith("batch-1") and q]
    return {"best_qps": max(batched) if batched else None, "sweeps": best,
            "load_average": report.get("machine", {}).get("load_average_after")}


# --------------------------------------------------------------------------- the run
def measure_engine(engine: str, a: argparse.Namespace, folder: Path, z_dim: int
                   ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    server = Server(a.bundle, engine, a, folder)
    rows: list[dict[str, Any]] = []
    try:
        server.wait_ready()
        url = f"http://127.0.0.1:{server.port}"
        files = bodies(folder, z_dim, a.bundle.resolve().name)
        for kind in [b for b in a.bodies.split(",") if b]:
            if kind == "grpc" and server.grpc_port is None:
                continue
            for conc in [int(c) for c in a.concurrency.split(",")]:
                if kind == "grpc":
                    row = run_grpc(f"127.0.0.1:{server.grpc_port}", a.bundle.resolve().name,
                                   z_dim, conc, a.duration)
                else:
                    row = run_wrk(url, files[kind], conc, a)
                row.update(engine=engine, body=kind, concurrency=conc,
                           load_average=os.getloadavg()[0])
                print(f"{engine:12s} {kind:7s} c={conc:<3d} {row['req_s']:8.0f} req/s  "
                      f"p50 {_ms(row['p50_ms'])}  p99 {_ms(row['p99_ms'])}  errors "
                      f"{row['errors']}  load {row['load_average']:.2f}", flush=True)
                rows.append(row)
    finally:
        report = server.stop()
    return rows, report


def _ms(x: float | None) -> str:
    return "—" if x is None else f"{x:.2f} ms"


def targets(rows: list[dict[str, Any]], in_proc: dict[str, Any]) -> list[dict[str, Any]]:
    def best(engine: str, kinds: tuple[str, ...]) -> dict[str, Any] | None:
        ok = [r for r in rows if r["engine"] == engine and r["body"] in kinds
              and r["p99_ms"] is not None and r["p99_ms"] <= BOUND_MS and r["errors"] == 0]
        return max(ok, key=lambda r: r["req_s"], default=None)

    c1 = next((r for r in rows if r["engine"] == "local" and r["body"] == "json"
               and r["concurrency"] == 1), None)
    js, fast, ha = best("local", ("json",)), best("local", ("binary", "grpc")), \
        best("ray-haproxy", ("json", "binary"))
    ref = in_proc.get("best_qps")
    return [
        {"target": "local, JSON, concurrency 1: p99 <= 2 ms",
         "measured": c1 and f"p99 {c1['p99_ms']:.2f} ms", "met": bool(c1 and c1["p99_ms"] <= 2)},
        {"target": "local, JSON: >= 2,500 req/s with p99 <= 10 ms",
         "measured": js and f"{js['req_s']:,.0f} req/s at c={js['concurrency']}",
         "met": bool(js and js["req_s"] >= 2500)},
        {"target": "local, binary or gRPC: >= 3,500 req/s with p99 <= 10 ms",
         "measured": fast and f"{fast['req_s']:,.0f} req/s ({fast['body']}, "
                             f"c={fast['concurrency']})",
         "met": bool(fast and fast["req_s"] >= 3500)},
        {"target": ">= 60% of the in-process dynamic-batching server scenario's highest QPS "
                   "under a 10 ms p99",
         "measured": (js and ref) and f"{max(js['req_s'], (fast or js)['req_s']):,.0f} / "
                                      f"{ref:,.0f} = "
                                      f"{max(js['req_s'], (fast or js)['req_s']) / ref:.0%}",
         "met": bool(js and ref and max(js["req_s"], (fast or js)["req_s"]) >= 0.6 * ref)},
        {"target": "ray + HAProxy: p99 <= 10 ms at >= 1,000 req/s",
         "measured": ha and f"{ha['req_s']:,.0f} req/s at c={ha['concurrency']}",
         "met": bool(ha and ha["req_s"] >= 1000)},
    ]


def markdown(result: dict[str, Any]) -> str:
    lines = [f"# edgegen serve: engines x concurrency ({result['started']})", "",
             f"bundle `{result['bundle']}` · {result['machine']} · {result['duration_s']:g} s "
             f"per run · clients: wrk ({result['wrk']}) for HTTP, Python grpc.aio for gRPC",
             "", "| engine | body | client | concurrency | req/s | p50 ms | p99 ms | errors | "
             "load avg | path |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        path = result["servers"].get(r["engine"], {}).get("ingress_path", "")
        client = r["client"] + (f" ({r['client_cpu_share']:.0%} CPU)"
                                if r.get("client_cpu_share") is not None else "")
        lines.append(f"| {r['engine']} | {r['body']} | {client} | {r['concurrency']} | "
                     f"{r['req_s']:,.0f} | {_ms(r['p50_ms'])[:-3]} | {_ms(r['p99_ms'])[:-3]} | "
                     f"{r['errors']} | {r['load_average']:.2f} | {path} |")
    ip = result["in_process"]
    if ip:
        lines += ["", f"In-process dynamic-batching server scenario (`edgegen bench --scenario "
                      f"server --p99-bound-ms 10`): highest QPS {ip.get('best_qps')} (load "
                      f"{ip.get('load_average')})."]
    lines += ["", "| target | measured | met |", "|---|---|---|"]
    lines += [f"| {t['target']} | {t['measured'] or '—'} | {'yes' if t['met'] else 'no'} |"
              for t in result["targets"]]
    return "\n".join(lines) + "\n"


def main() -> int:
    a = args()
    if shutil.which("wrk") is None:
        print("wrk is not installed: apt-get install -y wrk", file=sys.stderr)
        return 2
    from edgegen.runtime.bundle import load_bundle

    z_dim = load_bundle(a.bundle).z_dim
    a.out.mkdir(parents=True, exist_ok=True)
    started = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
    rows: list[dict[str, Any]] = []
    servers: dict[str, Any] = {}
    for engine in [e for e in a.engines.split(",") if e]:
        if engine not in ENGINES:
            print(f"unknown engine {engine!r}; expected {', '.join(ENGINES)}", file=sys.stderr)
            return 2
        got, servers[engine] = measure_engine(engine, a, a.out, z_dim)
        rows += got
    in_proc = in_process(a.bundle, a.out, a.in_process_duration) \
        if a.in_process_duration > 0 else {}
    wrk_version = subprocess.run(["wrk", "--version"], capture_output=True, text=True)
    result = {"started": started, "bundle": str(a.bundle), "duration_s": a.duration,
              "machine": f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.2f} at the end",
              "wrk": (wrk_version.stdout or wrk_version.stderr).split("\n")[0].strip(),
              "rows": rows, "servers": servers, "in_process": in_proc,
              "targets": targets(rows, in_proc)}
    (a.out / "serve_bench.json").write_text(json.dumps(result, indent=2) + "\n")
    (a.out / "serve_bench.md").write_text(markdown(result))
    print(markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
