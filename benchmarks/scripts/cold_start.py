"""Cold start of each reader: import + load (every check) + the first image, in fresh processes.

    python benchmarks/scripts/cold_start.py bundles/cdcgan [--runs 10]
        [--readers python,node,browser] [--install DIR] [--json OUT]

Each run is a new process (Python: ``python -c``; Node: ``node -e`` in a folder where the packed
npm package is installed; browser: a new headless Chromium with a fresh profile), so nothing is
warm but the operating system's file cache (the first run warms that too: it is reported, and
the median is over every run). Per reader it reports the median and p90 of

* ``total_ms`` — import + ``load`` + ``generate([7], seed=42)``: Python from the first line of
  the child's code (the interpreter's own start is in ``wall_ms``), Node from the process start
  (``performance.now()``: its bootstrap included), the browser from the navigation's start;
* the phases ``import_ms``, ``load_ms`` (manifest, schema, file rules, every sha256, the first
  session), ``first_ms`` (latent, ONNX Runtime, uint8 rule);
* ``wall_ms`` — the parent's clock from spawn to exit (to the page's report for the browser).

Targets (issue 23): Node ≤ 300 ms and the Python runtime ≤ 500 ms for cdcgan. The machine's
load average before and after is recorded: judge the numbers only on a quiet machine
(``uptime``). ``--install DIR`` reuses a folder holding edgegen-runtime (the packed tarball),
onnxruntime-node and onnxruntime-web; without it the script packs js/ and installs it into a
temporary folder first (npm, from its cache when it can).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import queue
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
JS = ROOT / "js"
READERS = ("python", "node", "browser")
TARGETS_MS = {"python": 500.0, "node": 300.0}
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run",
                  "--no-default-browser-check", "--disable-extensions", "--remote-debugging-port=0"]

PYTHON_CHILD = """
import json, sys, time
t0 = time.perf_counter()
from edgegen.runtime import Generator
t1 = time.perf_counter()
g = Generator.load(sys.argv[1])
t2 = time.perf_counter()
image = g.generate([7], seed=42)
t3 = time.perf_counter()
print(json.dumps({"import_ms": (t1 - t0) * 1e3, "load_ms": (t2 - t1) * 1e3,
                  "first_ms": (t3 - t2) * 1e3, "total_ms": (t3 - t0) * 1e3,
                  "pixels": int(image.size)}))
"""

NODE_CHILD = """
const t0 = performance.now();
const { loadBundle } = await import("edgegen-runtime");
const t1 = performance.now();
const g = await loadBundle(process.argv[1]);
const t2 = performance.now();
const image = await g.generate([7], { seed: 42 });
const t3 = performance.now();
console.log(JSON.stringify({ boot_ms: t0, import_ms: t1 - t0, load_ms: t2 - t1, first_ms: t3 - t2,
                             total_ms: t3, pixels: image.length }));
"""


def _child(cmd: list[str], cwd: Path) -> dict[str, Any]:
    t0 = time.perf_counter()
    done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=300)
    wall = (time.perf_counter() - t0) * 1e3
    if done.returncode != 0:
        raise SystemExit(f"`{' '.join(cmd[:2])} …` failed ({done.returncode}):\n"
                         f"{done.stderr[-2000:]}")
    return {**json.loads(done.stdout.strip().splitlines()[-1]), "wall_ms": wall}


def python_run(bundle: Path, python: str, _install: Path | None) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as cwd:  # not the checkout: the installed package runs
        return _child([python, "-c", PYTHON_CHILD, str(bundle)], Path(cwd))


def node_run(bundle: Path, _python: str, install: Path | None) -> dict[str, Any]:
    assert install is not None
    return _child(["node", "--input-type=module", "-e", NODE_CHILD, str(bundle)], install)


def _serve_module() -> Any:
    spec = importlib.util.spec_from_file_location("edgegen_web_serve",
                                                  ROOT / "examples" / "web" / "serve.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def browser_run(bundle: Path, _python: str, install: Path | None) -> dict[str, Any]:
    """One fresh Chromium (new profile) on js/test/browser/cold.html, served from ``install``."""
    assert install is not None
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise SystemExit("chromium is not installed (Debian: apt-get install -y chromium)")
    serve = _serve_module()
    reports: queue.Queue[dict[str, Any]] = queue.Queue()
    server = serve.make_server(None, 0, reports.put, root=install, bundles={"b": bundle})
    serve.serve_in_thread(server)
    url = f"http://127.0.0.1:{server.server_address[1]}/test/browser/cold.html?bundle=/bundles/b/"
    with tempfile.TemporaryDirectory() as profile:
        t0 = time.perf_counter()
        browser = subprocess.Popen([chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", url],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            report = reports.get(timeout=120)
            report["wall_ms"] = (time.perf_counter() - t0) * 1e3
        finally:
            browser.terminate()
            try:
                browser.wait(timeout=20)
            except subprocess.TimeoutExpired:
                browser.kill()
                browser.wait()
            server.shutdown()
            server.server_close()
    if "error" in report:
        raise SystemExit(f"the cold-start page failed: {report['error']}")
    return report


def install_package(folder: Path) -> Path:
    """npm pack js/ and install the tarball with onnxruntime-node/-web into ``folder``."""
    npm = shutil.which("npm")
    if npm is None:
        raise SystemExit("npm is not installed: the Node and browser readers need it")
    if not (JS / "node_modules" / "ajv").is_dir():
        subprocess.run([npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund"], cwd=JS,
                       check=True)
    packed = json.loads(subprocess.run([npm, "pack", "--json", "--pack-destination", str(folder)],
                                       cwd=JS, check=True, capture_output=True,
                                       text=True).stdout)[0]
    dev = json.loads((JS / "package.json").read_text())["devDependencies"]
    (folder / "package.json").write_text('{"name": "cold-start", "private": true}')
    subprocess.run([npm, "install", "--prefer-offline", "--ignore-scripts", "--no-audit",
                    "--no-fund", str(folder / packed["filename"]),
                    f"onnxruntime-node@{dev['onnxruntime-node']}",
                    f"onnxruntime-web@{dev['onnxruntime-web']}"], cwd=folder, check=True,
                   capture_output=True)
    shutil.copytree(JS / "test", folder / "test", dirs_exist_ok=True)
    print(f"installed {packed['filename']} ({packed['size']:,} bytes) in {folder}",
          file=sys.stderr)
    return folder


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Median and p90 (nearest rank) of every timed field over the runs."""
    out: dict[str, Any] = {"runs": len(runs)}
    for key in ("total_ms", "import_ms", "load_ms", "first_ms", "wall_ms", "boot_ms"):
        values = sorted(r[key] for r in runs if key in r)
        if values:
            p90 = values[min(len(values) - 1, max(0, -(-9 * len(values) // 10) - 1))]
            out[key] = {"median": statistics.median(values), "p90": p90, "first_run": runs[0][key]}
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("bundle", type=Path)
    p.add_argument("--runs", type=int, default=10)
    p.add_argument("--readers", default=",".join(READERS))
    p.add_argument("--install", type=Path, default=None,
                   help="a folder with edgegen-runtime, onnxruntime-node/-web installed")
    p.add_argument("--python", default=sys.executable,
                   help="the interpreter whose edgegen.runtime is measured")
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    readers = [r for r in args.readers.split(",") if r]
    if unknown := set(readers) - set(READERS):
        raise SystemExit(f"unknown reader {', '.join(sorted(unknown))}; expected {READERS}")
    bundle = args.bundle.resolve()
    runners = {"python": python_run, "node": node_run, "browser": browser_run}
    with tempfile.TemporaryDirectory(prefix="edgegen-cold-") as tmp:
        install = args.install
        if install is None and set(readers) & {"node", "browser"}:
            install = install_package(Path(tmp))
        report: dict[str, Any] = {"bundle": str(bundle), "load_average_before": os.getloadavg(),
                                  "cpu_count": os.cpu_count(), "readers": {}}
        for reader in readers:
            runs = [runners[reader](bundle, args.python, install) for _ in range(args.runs)]
            report["readers"][reader] = {**summarize(runs), "target_ms": TARGETS_MS.get(reader),
                                         "every_run": runs}
        report["load_average_after"] = os.getloadavg()
    print(render(report))
    if args.json is not None:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


def render(report: dict[str, Any]) -> str:
    lines = [f"cold start of {report['bundle']} (import + load + first image), load average "
             f"{', '.join(f'{x:.2f}' for x in report['load_average_before'])} before, "
             f"{', '.join(f'{x:.2f}' for x in report['load_average_after'])} after "
             f"({report['cpu_count']} CPUs)",
             f"{'reader':8} {'runs':>4} {'total p50':>10} {'p90':>8} {'import':>8} {'load':>8} "
             f"{'first':>8} {'wall p50':>9} {'target':>7}"]
    for name, r in report["readers"].items():
        target = f"{r['target_ms']:.0f}" if r["target_ms"] else "—"
        lines.append(f"{name:8} {r['runs']:>4} {r['total_ms']['median']:>10.1f} "
                     f"{r['total_ms']['p90']:>8.1f} {r['import_ms']['median']:>8.1f} "
                     f"{r['load_ms']['median']:>8.1f} {r['first_ms']['median']:>8.1f} "
                     f"{r['wall_ms']['median']:>9.1f} {target:>7}")
    lines.append("milliseconds, medians of fresh processes (p90: nearest rank). Python's total "
                 "starts at its first line (interpreter start: wall); Node's and the browser's "
                 "at the process / navigation start. Judge targets on a quiet machine only.")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
