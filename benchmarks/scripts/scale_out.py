"""Scale-out, measured: ``edgegen serve`` with 1 and 2 replicas on one Ray node, then 2 replicas
spread over a two-node Ray cluster started on this machine (two ``ray start`` processes on
127.0.0.1). For each setup it records the highest QPS whose p99 stays under the bound (``edgegen
bench --url --scenario server``, the served figures beside the in-process dynamic-batching
scenario on the first setup), which node and process each replica ran on (the server's report),
and how requests spread over the replicas (the ``x-edgegen-replica`` / ``x-edgegen-node``
headers of a burst of requests). A script of the repository, not of the package; it writes only
under ``--results``:

    .venv/bin/python benchmarks/scripts/scale_out.py --bundle bundles/cdcgan \\
        --results benchmarks/results/scale-out                      # about 10 minutes

Everything it starts (servers, Ray nodes) binds to 127.0.0.1 and is stopped by process id when
it is done or interrupted; nothing is stopped by name (``ray stop`` would also stop other
people's Ray). ``ray.init(address="auto")`` is never used: the cluster's address is explicit.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import http.client
import json
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

from edgegen.serve.config import free_port
from edgegen.serve.processes import alive, descendants

PY = sys.executable
# Ray 2.6x starts clusters with token authentication: this run's own token, given to every
# process it starts (the nodes, edgegen serve, the checks), never written to ~/.ray
# Serve's proxy prefers replicas on its own node, which across machines saves a network hop;
# with every node on this one machine it would only leave the second node idle
ENV = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "COLUMNS": "160",
       "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32),
       "RAY_SERVE_PROXY_PREFER_LOCAL_NODE_ROUTING": "0"}


# --------------------------------------------------------------------------- processes
class Proc:
    """A process this script started, and every process seen below it."""

    def __init__(self, cmd: list[str], log: Path) -> None:
        self.cmd = cmd
        self.log = log
        self.fh = open(log, "w")  # noqa: SIM115 - closed in stop()
        self.popen = subprocess.Popen(cmd, stdout=self.fh, stderr=subprocess.STDOUT, env=ENV,
                                      text=True)
        self.pids: set[int] = set()

    def watch(self) -> None:
        if self.popen.poll() is None:
            self.pids |= descendants(self.popen.pid)

    def stop(self, timeout_s: float = 120.0) -> int | None:
        """SIGTERM (a server drains; ``ray start --block`` stops its node), then SIGKILL what
        is left of it, by pid."""
        self.watch()
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and any(alive(p) for p in self.pids):
            time.sleep(0.5)
        for p in self.pids:
            if alive(p):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(p, signal.SIGKILL)
        self.fh.close()
        return self.popen.returncode


def request(port: int, method: str, path: str, body: bytes | None = None,
            timeout_s: float = 30.0) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout_s)
    try:
        conn.request(method, path, body=body)
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def wait_ready(server: Proc, port: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.popen.poll() is not None:
            raise SystemExit(f"the server exited: see {server.log}")
        server.watch()
        with contextlib.suppress(OSError):
            if request(port, "GET", "/v2/health/ready")[0] == 200:
                return
        time.sleep(0.5)
    raise SystemExit(f"the server was not ready after {timeout_s:.0f} s: see {server.log}")


def spread(port: int, n: int = 400, threads: int = 16) -> dict[str, Any]:
    """Which replica (and node) answered each of ``n`` concurrent /generate requests."""
    answers: Counter[tuple[str, str]] = Counter()
    codes: Counter[int] = Counter()
    lock = threading.Lock()
    todo = iter(range(n))

    def worker() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        for i in todo:
            conn.request("GET", f"/generate?label={i % 10}&seed={i}&format=npy")
            resp = conn.getresponse()
            resp.read()
            with lock:
                codes[resp.status] += 1
                answers[(resp.getheader("x-edgegen-replica", "?"),
                         resp.getheader("x-edgegen-node", "?"))] += 1
        conn.close()

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return {"requests": n, "status": dict(codes),
            "by_replica": [{"replica": r, "node": nd, "requests": c}
                           for (r, nd), c in sorted(answers.items())]}


# --------------------------------------------------------------------------- one setup
def run_setup(name: str, a: argparse.Namespace, out: Path, *, replicas: int,
              address: str | None, compare: bool) -> dict[str, Any]:
    port = free_port()
    serve_cmd = [PY, "-m", "edgegen", "serve", a.bundle, "--engine", "ray", "--port", str(port),
                 "--replicas", str(replicas), "--max-batch", str(a.max_batch),
                 "--max-delay-ms", str(a.max_delay_ms), "--threads", str(a.threads),
                 "--ingress", a.ingress, "--json", str(out / f"{name}-serve.json")]
    if address:
        serve_cmd += ["--address", address, "--max-replicas-per-node", "1"]
    print(f"[{name}] $ {' '.join(serve_cmd)}", flush=True)
    server = Proc(serve_cmd, out / f"{name}-serve.log")
    try:
        t0 = time.monotonic()
        wait_ready(server, port, a.start_timeout)
        startup = time.monotonic() - t0
        load_before = os.getloadavg()
        dist = spread(port)
        print(f"[{name}] requests per replica: {dist['by_replica']}", flush=True)
        bench_cmd = [PY, "-m", "edgegen", "bench", *([a.bundle] if compare else []),
                     "--url", f"http://127.0.0.1:{port}", "--model", Path(a.bundle).name,
                     "--scenario", "server", "--qps", str(a.qps), "--duration",
                     str(a.duration), "--p99-bound-ms", str(a.p99_bound_ms), "--sweep-steps",
                     str(a.sweep_steps), "--max-batch", str(a.max_batch), "--max-delay-ms",
                     str(a.max_delay_ms), "--connections", str(a.connections), "--no-matmul",
                     "--json", str(out / f"{name}-bench.json")]
        print(f"[{name}] $ {' '.join(bench_cmd)}", flush=True)
        with open(out / f"{name}-bench.txt", "w") as fh:
            subprocess.run(bench_cmd, stdout=fh, stderr=subprocess.STDOUT, env=ENV,
                           check=False, timeout=a.bench_timeout)
        server.watch()
    finally:
        code = server.stop()
    report = _read(out / f"{name}-serve.json")
    bench = _read(out / f"{name}-bench.json")
    sweeps = bench.get("sweeps", {})
    served = next((v for k, v in sweeps.items() if k.startswith("served/")), {})
    local = next((v for k, v in sweeps.items()
                  if k.startswith("edgegen/") and not k.endswith("batch-1")), {})
    batch1 = next((v for k, v in sweeps.items() if k.endswith("batch-1")), {})
    best = _best(served)
    return {"setup": name, "replicas": replicas, "cluster": address or "local (one node)",
            "placement": report.get("placement", []),
            "nodes": sorted({p["node"] for p in report.get("placement", [])}),
            "startup_s": round(startup, 1), "drain_s": report.get("drain_s"),
            "exit_code": code, "spread": dist, "load_before": load_before,
            "load_after": os.getloadavg(), "served_best_qps": served.get("best_qps"),
            "served_p99_ms_at_best": best.get("p99_ms"),
            "in_process_best_qps": local.get("best_qps") if compare else None,
            "in_process_batch1_best_qps": batch1.get("best_qps") if compare else None,
            "p99_bound_ms": a.p99_bound_ms}


def _read(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return {}


def _best(sweep: dict[str, Any]) -> dict[str, Any]:
    ok = [t for t in sweep.get("trials", []) if t.get("target_qps") == sweep.get("best_qps")]
    return ok[0] if ok else {}


# --------------------------------------------------------------------------- the cluster
def start_cluster(out: Path, a: argparse.Namespace) -> tuple[list[Proc], str]:
    """A head and a worker node, each a ``ray start --block`` process on 127.0.0.1 with its
    own ports and ``--num-cpus``; returns them and the head's address."""
    gcs = free_port()
    address = f"127.0.0.1:{gcs}"
    ray = [PY, "-m", "ray.scripts.scripts", "start", "--block", "--node-ip-address=127.0.0.1",
           f"--num-cpus={a.node_cpus}", "--disable-usage-stats"]

    def own_ports() -> list[str]:
        return [f"--node-manager-port={free_port()}", f"--object-manager-port={free_port()}",
                f"--dashboard-agent-listen-port={free_port()}",
                f"--dashboard-agent-grpc-port={free_port()}",
                f"--runtime-env-agent-port={free_port()}",
                f"--metrics-export-port={free_port()}"]

    head = Proc([*ray, "--head", f"--port={gcs}", "--include-dashboard=false",
                 f"--ray-client-server-port={free_port()}", *own_ports()], out / "ray-head.log")
    nodes = [head]
    try:
        _wait_nodes(address, 1, a.start_timeout, head)
        worker = Proc([*ray, f"--address={address}", *own_ports()], out / "ray-worker.log")
        nodes.append(worker)
        _wait_nodes(address, 2, a.start_timeout, worker)
    except BaseException:
        for n in reversed(nodes):
            n.stop()
        raise
    for n in nodes:
        n.watch()
    return nodes, address


def _wait_nodes(address: str, count: int, timeout_s: float, proc: Proc) -> None:
    code = ("import ray, sys; ray.init(address=sys.argv[1], _node_ip_address='127.0.0.1', "
            "logging_level='ERROR'); "
            "print(sum(1 for n in ray.nodes() if n['Alive']))")
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.popen.poll() is not None:
            raise SystemExit(f"ray start exited: see {proc.log}")
        res = subprocess.run([PY, "-c", code, address], capture_output=True, text=True,
                             env=ENV, timeout=120, check=False)
        proc.watch()
        if res.returncode == 0 and res.stdout.strip().isdigit() \
                and int(res.stdout.strip()) >= count:
            return
        time.sleep(2)
    raise SystemExit(f"the Ray cluster at {address} did not reach {count} nodes")


# --------------------------------------------------------------------------- report
def markdown(rows: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    lines = [f"# edgegen serve: scale-out ({meta['started']})", "",
             f"Bundle `{meta['bundle']}`; dynamic batching {meta['max_batch']} requests / "
             f"{meta['max_delay_ms']} ms; {meta['ingress']} ingress; "
             f"{meta['threads']} ONNX Runtime thread(s) per replica; "
             f"p99 bound {meta['p99_bound_ms']} ms; machine load (1/5/15 min) at start "
             f"{', '.join(f'{x:.1f}' for x in meta['load_start'])}.", "",
             "| setup | replicas | nodes used | best QPS, p99 ≤ bound | p99 at best (ms) | "
             "in-process (batching / batch-1) | requests per replica (node) |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        local = "—" if r["in_process_best_qps"] is None else \
            f"{r['in_process_best_qps'] or 0:,.0f} / {r['in_process_batch1_best_qps'] or 0:,.0f}"
        per = ", ".join(f"{x['replica'][:8]} ({x['node']}): {x['requests']}"
                        for x in r["spread"]["by_replica"])
        qps = r["served_best_qps"]
        p99 = r["served_p99_ms_at_best"]
        lines.append(f"| {r['setup']} | {r['replicas']} | {len(r['nodes'])} | "
                     f"{'none' if qps is None else f'{qps:,.0f}'} | "
                     f"{'—' if p99 is None else f'{p99:.2f}'} | {local} | {per} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bundle", default="bundles/cdcgan")
    p.add_argument("--results", type=Path, required=True, help="folder to write into")
    p.add_argument("--setups", default="1-replica,2-replicas,2-nodes")
    p.add_argument("--qps", type=float, default=200.0, help="first offered QPS of each sweep")
    p.add_argument("--duration", type=float, default=5.0, help="seconds per sweep step")
    p.add_argument("--p99-bound-ms", type=float, default=10.0)
    p.add_argument("--sweep-steps", type=int, default=6)
    p.add_argument("--max-batch", type=int, default=64)
    p.add_argument("--max-delay-ms", type=float, default=2.0)
    p.add_argument("--threads", type=int, default=1, help="ONNX Runtime threads per replica")
    p.add_argument("--connections", type=int, default=32)
    p.add_argument("--ingress", default="proxy", choices=("proxy", "haproxy"))
    p.add_argument("--node-cpus", type=int, default=1, help="--num-cpus of each Ray node")
    p.add_argument("--start-timeout", type=float, default=300.0)
    p.add_argument("--bench-timeout", type=float, default=1800.0)
    a = p.parse_args()
    if not (Path(a.bundle) / "manifest.json").is_file():
        print(f"{a.bundle} is not a bundle (no manifest.json)", file=sys.stderr)
        return 2
    out = a.results
    out.mkdir(parents=True, exist_ok=True)
    if a.ingress == "haproxy":  # read by Serve's controller, which runs on the cluster's nodes
        ENV["RAY_SERVE_ENABLE_HA_PROXY"] = "1"
    meta = {"started": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
            "bundle": a.bundle, "max_batch": a.max_batch, "max_delay_ms": a.max_delay_ms,
            "threads": a.threads, "p99_bound_ms": a.p99_bound_ms, "ingress": a.ingress,
            "load_start": os.getloadavg(), "cpus": os.cpu_count(),
            "command": " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]])}
    rows = []
    for i, setup in enumerate(s.strip() for s in a.setups.split(",")):
        if setup == "2-nodes":
            nodes, address = start_cluster(out, a)
            try:
                rows.append(run_setup(setup, a, out, replicas=2, address=address,
                                      compare=i == 0))
            finally:
                for n in reversed(nodes):
                    n.stop()
        elif setup in ("1-replica", "2-replicas"):
            rows.append(run_setup(setup, a, out, replicas=1 if setup == "1-replica" else 2,
                                  address=None, compare=i == 0))
        else:
            print(f"unknown setup {setup!r}", file=sys.stderr)
            return 2
        (out / "scale-out.json").write_text(json.dumps({**meta, "setups": rows}, indent=2))
    (out / "scale-out.md").write_text(markdown(rows, meta))
    print(markdown(rows, meta))
    return 0


if __name__ == "__main__":
    sys.exit(main())
