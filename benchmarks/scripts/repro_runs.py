"""Is training reproducible run to run? Repeat the same short ``edgegen train`` in fresh processes
and count the distinct results (sha256 of every tensor of the checkpoint, in name order).

A script of the repository (not installed); it writes only under ``--out``:

    .venv/bin/python benchmarks/scripts/repro_runs.py --out /tmp/repro --runs 20 --load 0,2
    .venv/bin/python benchmarks/scripts/repro_runs.py --out /tmp/repro-ddp --runs 20 --nproc 2

Each load level ``L`` starts ``L`` busy processes (pure-Python spin loops, stopped by pid at the
end) before its runs, so the runs compete for the CPU as they do on a shared machine. The default
run is the issue's: ``edgegen train --arch cdcgan --max-steps 30 --seed 7`` (width 64, batch 64).
``--control`` alternates ``--threads 1`` and ``--threads 2`` between runs: a harness that sees one
result there could not see a difference at all (it must report two). Exit code 1 when a level (not
the control) saw more than one result.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any


def weights_hash(run: Path) -> str:
    from safetensors.numpy import load_file

    tensors = load_file(str(run / "checkpoint.safetensors"))
    h = hashlib.sha256()
    for name in sorted(tensors):
        h.update(name.encode())
        h.update(tensors[name].tobytes())
    return h.hexdigest()[:16]


def start_load(n: int) -> list[subprocess.Popen]:
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]


def stop(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        p.kill()
    for p in procs:
        p.wait()


def one_run(a: argparse.Namespace, out: Path, threads: int | None) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "edgegen", "train", "--arch", a.arch, "--max-steps",
           str(a.steps), "--seed", str(a.seed), "--batch-size", str(a.batch_size),
           "--out", str(out), "--force"]  # no evaluator beside the runs: no fidelity step
    if a.width:
        cmd += ["--width", str(a.width)]
    if a.data_dir:
        cmd += ["--data-dir", str(a.data_dir)]
    if threads:
        cmd += ["--threads", str(threads)]
    if a.nproc:
        cmd += ["--nproc-per-node", str(a.nproc)]
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"run failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stdout[-2000:]}"
                         f"\n{proc.stderr[-2000:]}")
    return {"hash": weights_hash(out), "seconds": round(time.perf_counter() - t, 1),
            "load1": round(os.getloadavg()[0], 2), "threads": threads}


def level(a: argparse.Namespace, load: int, control: bool) -> dict[str, Any]:
    busy = start_load(load)
    rows = []
    try:
        for i in range(a.runs):
            threads = (1 + i % 2) if control else a.threads
            run_dir = a.out / "runs" / f"{'control' if control else f'load{load}'}-{i:02d}"
            rows.append(one_run(a, run_dir, threads))
            print(f"load {load}{' control' if control else ''} run {i + 1}/{a.runs}: "
                  f"{rows[-1]}", flush=True)
            if not a.keep:
                shutil.rmtree(run_dir, ignore_errors=True)
    finally:
        stop(busy)
    hashes = [r["hash"] for r in rows]
    return {"load_processes": load, "control": control, "runs": len(rows),
            "distinct": len(set(hashes)), "counts": {h: hashes.count(h) for h in set(hashes)},
            "seconds_per_run": round(sum(r["seconds"] for r in rows) / len(rows), 1),
            "load1_range": [min(r["load1"] for r in rows), max(r["load1"] for r in rows)],
            "rows": rows}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, required=True, help="folder for runs and the report")
    p.add_argument("--runs", type=int, default=20)
    p.add_argument("--load", default="0,2", help="busy processes per level, comma-separated")
    p.add_argument("--arch", default="cdcgan")
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--width", type=int, default=None)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--nproc", type=int, default=None, help="--nproc-per-node of each run")
    p.add_argument("--data-dir", type=Path, default=os.environ.get("EDGEGEN_DATA_DIR"))
    p.add_argument("--control", action="store_true", help="also run the threads 1/2 control")
    p.add_argument("--keep", action="store_true", help="keep the run folders")
    a = p.parse_args(argv)
    a.out.mkdir(parents=True, exist_ok=True)
    levels = [level(a, int(x), False) for x in a.load.split(",") if x.strip()]
    if a.control:
        levels.append(level(a, 0, True))
    report = {"command": " ".join([os.path.basename(sys.executable), *sys.argv]),
              "cpus": os.cpu_count(), "levels": levels}
    (a.out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    lines = ["| load processes | runs | distinct results | s / run | 1-min load |",
             "|---|---|---|---|---|"]
    for lv in levels:
        name = f"{lv['load_processes']}" + (" (control: threads 1/2)" if lv["control"] else "")
        lines.append(f"| {name} | {lv['runs']} | {lv['distinct']} | {lv['seconds_per_run']} | "
                     f"{lv['load1_range'][0]}–{lv['load1_range'][1]} |")
    (a.out / "report.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 1 if any(lv["distinct"] > 1 for lv in levels if not lv["control"]) else 0


if __name__ == "__main__":
    sys.exit(main())
