"""Training throughput on one machine: P processes x T threads each (DDP through torchrun) against
one process, same global batch, same steps, interleaved rounds.

A script of the repository (not installed); it writes only under ``--out``:

    .venv/bin/python benchmarks/scripts/ddp_speed.py --out /tmp/ddp-speed          # 1x2 vs 2x1
    .venv/bin/python benchmarks/scripts/ddp_speed.py --out /tmp/ddp-speed-gpu --device cuda \
        --configs 1x1,2x1,4x1,8x1 --batch-size 512 --steps 300

Each configuration ``PxT`` is ``edgegen train --threads T`` (P = 1) or ``edgegen train
--nproc-per-node P --threads T``; the number is the run's own ``images_per_s`` (global images over
the training loop's wall time, start-up excluded) from ``result.json``. Rounds alternate the
configurations so a change of machine load hits all of them; the table gives the median and the
spread of the rounds, and the 1-minute load average before each run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any


def run_config(a: argparse.Namespace, procs: int, threads: int, out: Path) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "edgegen", "train", "--arch", a.arch, "--max-steps",
           str(a.steps), "--batch-size", str(a.batch_size), "--seed", "0", "--threads",
           str(threads), "--device", a.device, "--out", str(out), "--force"]
    if procs > 1:
        cmd += ["--nproc-per-node", str(procs)]
    if a.width:
        cmd += ["--width", str(a.width)]
    if a.data_dir:
        cmd += ["--data-dir", str(a.data_dir)]
    load = os.getloadavg()[0]
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr[-3000:]}")
    result = json.loads((out / "result.json").read_text())
    return {"images_per_s": result["images_per_s"], "train_s": result["elapsed_s"],
            "wall_s": round(time.perf_counter() - t, 1), "load1_before": round(load, 2),
            "command": " ".join(["edgegen", *cmd[3:]])}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--configs", default="1x2,2x1", help="PxT,... processes x threads each")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--steps", type=int, default=150)
    p.add_argument("--arch", default="cdcgan")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--width", type=int, default=None)
    p.add_argument("--device", default="cpu")
    p.add_argument("--data-dir", type=Path, default=os.environ.get("EDGEGEN_DATA_DIR"))
    a = p.parse_args(argv)
    configs = [tuple(int(v) for v in c.lower().split("x")) for c in a.configs.split(",")]
    a.out.mkdir(parents=True, exist_ok=True)
    rows: dict[str, list[dict[str, Any]]] = {f"{pr}x{th}": [] for pr, th in configs}
    for r in range(a.rounds):
        for pr, th in configs:
            run_dir = a.out / "runs" / f"{pr}x{th}"
            res = run_config(a, pr, th, run_dir)
            rows[f"{pr}x{th}"].append(res)
            print(f"round {r + 1}/{a.rounds} {pr}x{th}: {res['images_per_s']} img/s "
                  f"(load {res['load1_before']})", flush=True)
            shutil.rmtree(run_dir, ignore_errors=True)
    summary = {k: {"median_images_per_s": statistics.median(x["images_per_s"] for x in v),
                   "min": min(x["images_per_s"] for x in v),
                   "max": max(x["images_per_s"] for x in v), "rounds": v}
               for k, v in rows.items()}
    base = summary[next(iter(summary))]["median_images_per_s"]
    report = {"machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                          "processor": platform.processor()},
              "arch": a.arch, "batch_size": a.batch_size, "steps": a.steps,
              "device": a.device, "configs": summary}
    (a.out / "ddp-speed.json").write_text(json.dumps(report, indent=2) + "\n")
    lines = [f"{a.arch}, global batch {a.batch_size}, {a.steps} steps, {a.device}, "
             f"{os.cpu_count()} CPUs; median of {a.rounds} interleaved rounds", "",
             "| processes x threads | images/s (median) | min–max | vs first |",
             "|---|---|---|---|"]
    for k, v in summary.items():
        lines.append(f"| {k} | {v['median_images_per_s']:.0f} | {v['min']:.0f}–{v['max']:.0f} | "
                     f"{v['median_images_per_s'] / base:.2f}x |")
    (a.out / "ddp-speed.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
