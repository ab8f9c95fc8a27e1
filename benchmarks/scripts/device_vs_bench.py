"""The on-device bench against ``edgegen bench``: medians over interleaved rounds.

A script of the repository (not installed). Given a folder of ``device-N.json``
(``python -m edgegen.runtime.bench BUNDLE --json``) and ``bench-N.json`` (``edgegen bench
BUNDLE --json``) written in alternating rounds on one machine, it prints, per variant and batch,
the p50 latency and images/s of edgegen's own contender in every round, the medians, and the
device ÷ bench ratio of the medians, beside each run's noise verdict::

    .venv/bin/python benchmarks/scripts/device_vs_bench.py \\
        benchmarks/results/device-vs-bench-DATE/run2
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path
from typing import Any


def rows(report: dict[str, Any]) -> dict[tuple[str, int], tuple[float, float]]:
    """(variant, batch) -> (p50 ms, images/s) of the edgegen contender."""
    return {(r["variant"], r["batch"]): (r["latency"]["p50_ms"], r["latency"]["images_per_s"])
            for r in report["results"] if r["contender"] == "edgegen"}


def verdict(report: dict[str, Any]) -> str:
    noise = report.get("noise") or {}
    return "noisy" if noise.get("noisy") else "quiet" if noise else "not recorded"


def table(folder: Path) -> str:
    device = [json.loads(p.read_text()) for p in sorted(folder.glob("device-*.json"))]
    bench = [json.loads(p.read_text()) for p in sorted(folder.glob("bench-*.json"))]
    if not device or not bench:
        raise SystemExit(f"{folder}: needs device-N.json and bench-N.json files")
    out = ["| variant | batch | device p50 ms (rounds) | bench p50 ms (rounds) | device ÷ bench "
           "p50 (medians) | device img/s | bench img/s |", "|---|---|---|---|---|---|---|"]
    for key in sorted(rows(device[0])):
        d = [rows(r)[key] for r in device]
        b = [rows(r)[key] for r in bench]
        dm, bm = statistics.median(x[0] for x in d), statistics.median(x[0] for x in b)
        out.append(f"| {key[0]} | {key[1]} | {', '.join(f'{x[0]:.3f}' for x in d)} | "
                   f"{', '.join(f'{x[0]:.3f}' for x in b)} | {dm / bm:.2f} | "
                   f"{statistics.median(x[1] for x in d):,.0f} | "
                   f"{statistics.median(x[1] for x in b):,.0f} |")
    loads = [round(r["machine"]["load_average"][0], 2) for r in device + bench]
    out.append("")
    out.append(f"noise verdicts: device {[verdict(r) for r in device]}, bench "
               f"{[verdict(r) for r in bench]}; 1-minute load at each start (device runs, "
               f"then bench runs): {loads}")
    return "\n".join(out) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("folder", type=Path)
    folder = p.parse_args().folder
    text = table(folder)
    print(text, end="")
    (folder / "summary.md").write_text(text)


if __name__ == "__main__":
    main()
