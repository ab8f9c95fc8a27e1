"""Record real ``edgegen`` runs for every bundle given and regenerate BENCHMARKS.md with the CPU
targets of issue 12, each marked met, not met, or not judged (the machine was too noisy), and,
for each one not met, the measured reason (ONNX Runtime's and OpenVINO's own profiles). The
targets and their reasons are the package's (``edgegen.benchmarks.targets``, ``.reasons``: the
same ones ``edgegen bench --target`` gates on); this script only records the runs and writes the
markdown. It is a script of the repository, not part of the installed package, and it writes
only where it is told:

    EDGEGEN_DATA_DIR=../shared/data/mnist .venv/bin/python benchmarks/scripts/run_benchmarks.py \\
        --bundle bundles/cdcgan --bundle bundles/cflow \\
        --results benchmarks/results --doc benchmarks/BENCHMARKS.md
    .venv/bin/python benchmarks/scripts/run_benchmarks.py --render-only \\
        --results benchmarks/results --doc benchmarks/BENCHMARKS.md          # markdown only

Per bundle it runs, as written in BENCHMARKS.md (so any number there can be reproduced by pasting
its command): ``edgegen eval`` (label fidelity of every variant against PyTorch, McNemar's test:
the int8 target's fidelity half), ``edgegen bench`` offline (every variant, batches 1..256, the
peers PyTorch eager, ORT defaults, OpenVINO, and ORT / OpenVINO on the export *without* graph
rewrites, interleaved, with the machine's noise and the matmul yardstick between rounds), and for
the first GAN bundle the server scenario. Then ONNX Runtime's profiler (and OpenVINO's) on each
graph at batch 1 and 64. Results land in ``<results>/<machine>-<date>/<architecture>/``; the
markdown is written from the newest such folder and from every ``bench-cuda.json`` under
``<results>`` and every non-CPU ``bench-*.json`` that ``benchmarks/scripts/gpu_check.sh``
wrote there (the GPU runs). Only measured numbers appear.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from edgegen.benchmarks.reasons import PROFILE_BATCHES, ops_summary, profile_bundle
from edgegen.benchmarks.results import BenchReport, BenchResult, Target, load_report
from edgegen.benchmarks.targets import cflow_targets, compute, fidelity_deltas, gan_targets

ROOT = Path.cwd()  # commands are recorded relative to where the script runs
DOC_DEFAULT = Path("benchmarks/BENCHMARKS.md")  # only quoted in the regenerate command
PEERS = "torch,ort-default,openvino,ort-plain,openvino-plain"
GPU_PROVIDERS = ("cuda", "tensorrt", "tensorrt-rtx")


# --------------------------------------------------------------------------- running
def _rel(p: Path) -> str:
    try:
        return str(p.resolve().relative_to(ROOT))
    except ValueError:
        return str(p)


def bundle_arch(bundle: str | Path) -> str:
    manifest = json.loads((Path(bundle) / "manifest.json").read_text())
    return str(manifest["generator"]["architecture"])


def bench_runs(bundle: str, out: Path, a: argparse.Namespace, server: bool
               ) -> list[tuple[str, list[str]]]:
    """(name, edgegen arguments) of every recorded run of one bundle."""
    o = _rel(out)
    runs: list[tuple[str, list[str]]] = []
    offline = ["bench", bundle, "--batch", a.batches, "--peers", PEERS, "--tune",
               "--warmup-s", "0.5", "--duration", str(a.duration), "--rounds", "6",
               "--json", f"{o}/offline-cpu.json", "--plot", f"{o}/offline-cpu.png"]
    if a.eval_samples:
        runs.append(("eval", ["eval", bundle, "--samples", str(a.eval_samples),
                              "--truncation", "1.0", "--out", f"{o}/eval",
                              "--json", f"{o}/eval.json"]))
        offline += ["--eval-report", f"{o}/eval.json"]
    runs.append(("offline-cpu", offline))
    if server:
        runs += [
            ("server-cpu", ["bench", bundle, "--scenario", "server", "--precision", "fp32",
                            "--peers", "torch,ort-default", "--qps", str(a.qps), "--duration",
                            str(a.server_duration), "--json", f"{o}/server-cpu.json"]),
            ("server-sweep-cpu", ["bench", bundle, "--scenario", "server", "--precision",
                                  "fp32", "--peers", "none", "--qps", str(a.qps / 2),
                                  "--p99-bound-ms", str(a.p99_bound_ms), "--duration", "3",
                                  "--json", f"{o}/server-sweep-cpu.json"]),
        ]
    if a.with_compile:
        runs.append(("offline-compile-cpu",
                     ["bench", bundle, "--precision", "fp32", "--batch", "1,64", "--peers",
                      "torch,torch-compile", "--duration", str(a.duration),
                      "--json", f"{o}/offline-compile-cpu.json"]))
    return runs


def run_all(a: argparse.Namespace) -> Path:
    """Every run of every bundle, its output kept beside its JSON; ``run.json`` says what ran."""
    from edgegen.benchmarks.machine import machine_info, machine_slug

    info = machine_info()
    folder = a.results / f"{machine_slug(info)}-{_dt.date.today().isoformat()}"
    folder.mkdir(parents=True, exist_ok=True)
    record: dict[str, Any] = {"started": _dt.datetime.now(_dt.UTC)
                              .isoformat(timespec="seconds"), "machine": info, "bundles": [],
                              "data_dir": os.environ.get("EDGEGEN_DATA_DIR")}
    server_done = False
    for bundle in a.bundle:
        arch = bundle_arch(bundle)
        sub = folder / arch
        sub.mkdir(exist_ok=True)
        server = a.server and not server_done and arch != "cflow"
        server_done |= server
        entry: dict[str, Any] = {"bundle": bundle, "architecture": arch, "dir": arch,
                                 "runs": [record_run(name, args, sub)
                                          for name, args in bench_runs(bundle, sub, a, server)]}
        print(f"profiling {bundle} (ONNX Runtime and OpenVINO profilers)", flush=True)
        entry["profile"] = profile_bundle(Path(bundle), sub, PROFILE_BATCHES)
        record["bundles"].append(entry)
        (folder / "run.json").write_text(json.dumps(record, indent=2) + "\n")
    return folder


def record_run(name: str, args: list[str], sub: Path) -> dict[str, Any]:
    """One ``edgegen`` run as a subprocess; its output lands in ``<sub>/<name>.txt``."""
    command = shlex.join(["edgegen", *args])
    print(f"$ {command}", flush=True)
    t0 = time.perf_counter()
    env = {**os.environ, "COLUMNS": "140"}  # wide terminal tables in the recorded .txt files
    proc = subprocess.run([sys.executable, "-m", "edgegen", *args], cwd=ROOT,
                          capture_output=True, text=True, env=env)
    (sub / f"{name}.txt").write_text(f"$ {command}\n{proc.stdout}{proc.stderr}")
    print(proc.stdout[-3000:], proc.stderr[-2000:], sep="\n", flush=True)
    return {"name": name, "command": command, "exit_code": proc.returncode,
            "wall_s": round(time.perf_counter() - t0, 1)}


# --------------------------------------------------------------------------- reading
def load(folder: Path, name: str) -> BenchReport | None:
    p = folder / f"{name}.json"
    return load_report(p) if p.is_file() else None


def label(r: BenchResult) -> str:
    return r.label.rstrip("*")


# --------------------------------------------------------------------------- markdown
def _f(x: float | None, fmt: str) -> str:
    return "—" if x is None else format(x, fmt)


def offline_table(report: BenchReport, all_tuned: bool = False) -> str:
    head = ("| variant | contender | batch | p50 ms | p99 ms | img/s | × torch | label fidelity "
            "| % matmul | session ms | first run ms |\n|---|---|---:|---:|---:|---:|---:|---:|"
            "---:|---:|---:|")
    lines = [head]
    for r in report.results:
        if r.contender == "tuned" and not (all_tuned or r.best_tuned):
            continue
        lat = r.latency
        lines.append(
            f"| {r.variant} | {label(r)}{' (best tuned)' if r.best_tuned else ''} | "
            f"{r.batch} | {lat.p50_ms:.3f} | {lat.p99_ms:.3f} | {lat.images_per_s:,.0f} | "
            f"{_f(r.speedup_p50, '.2f')} | {_f(r.fidelity, '.1%')} | "
            f"{_f(r.matmul_fraction, '.1%')} | {r.session_create_s * 1e3:.0f} | "
            f"{r.first_run_s * 1e3:.1f} |")
    return "\n".join(lines)


def server_table(report: BenchReport) -> str:
    lines = ["| variant | contender | offered QPS | achieved QPS | p50 ms | p99 ms | unfinished "
             "| mean batch |", "|---|---|---:|---:|---:|---:|---:|---:|"]
    for s in report.server:
        lines.append(f"| {s.variant} | {s.contender} | {s.target_qps:,.0f} | "
                     f"{s.achieved_qps:,.0f} | {_f(s.p50_ms, '.3f')} | {_f(s.p99_ms, '.3f')} | "
                     f"{s.unfinished} | {s.mean_batch:.2f} |")
    return "\n".join(lines)


def noise_block(r: BenchReport) -> str:
    n = r.noise
    if not n:
        return "- machine noise: not recorded (a run older than the noise probe)"
    s, th = n.summary, n.thresholds
    mm = s.get("yardstick_gflops")
    first, last = s.get("load_average_first"), s.get("load_average_last")
    line = (f"- machine noise (before, between rounds, after): other processes used up to "
            f"{_f(s.get('others_max'), '.1%')} of the CPU, steal up to "
            f"{_f(s.get('steal_max'), '.1%')}, matmul yardstick "
            + (f"{mm[0]:.0f}–{mm[1]:.0f} GFLOP/s over {len(r.matmul.measurements)} "
               "measurements" if mm and r.matmul else "not measured")
            + (f", clock spread {s['freq_spread']:.0%}" if s.get("freq_spread") is not None
               else "")
            + (f"; load average {first[0]:.2f} → {last[0]:.2f} (recorded, not judged: it "
               "counts the benchmark's own threads)" if first and last else ""))
    limits = (f"thresholds: others ≤ {th['others']:.0%}, steal ≤ {th['steal']:.0%}, yardstick "
              f"spread ≤ {th['yardstick_spread']:.0%}, clock spread ≤ {th['freq_spread']:.0%}")
    verdict = ("**NOISY — no speed target is judged from this run**: " + "; ".join(n.reasons)
               if n.noisy else "quiet enough to judge")
    return f"{line}\n- {limits}: {verdict}"


def machine_block(r: BenchReport) -> str:
    m, v = r.machine, r.versions
    gpu = f"; GPU {m['gpu']['name']} ({m['gpu']['memory_gib']:.0f} GiB, CUDA " \
          f"{m['gpu']['cuda']})" if m.get("gpu") else ""
    vs = ", ".join(f"{k} {val}" for k, val in v.items() if val)
    mm = r.matmul
    mm_s = (f"{mm.gflops:.0f} GFLOP/s ({mm.library}, {mm.threads} threads, n={mm.size}; best "
            f"of {len(mm.measurements) or 1})") if mm else "not measured"
    per_image = r.flops.get("per_image")
    return (f"- machine: {m['cpu']}, {m['usable_cores']} usable cores of "
            f"{m['logical_cores']}, {_f(m.get('ram_gib'), '.0f')} GiB RAM, {m['os']}{gpu}; "
            f"CPU flags {', '.join(m.get('cpu_flags', []))}\n"
            f"- versions: {vs}\n"
            f"- threads: {r.threads['budget']} for every contender (ORT intra-op, "
            f"torch.set_num_threads, OpenVINO INFERENCE_NUM_THREADS); ORT spinning "
            f"{r.threads['ort_spinning']}\n"
            f"- dense fp32 matmul yardstick: {mm_s}; generator "
            + (f"{per_image / 1e6:.2f} MFLOP per image" if per_image else "FLOPs not counted")
            + " (useful FLOPs, from the graph)\n"
            f"- started {r.started}, {r.wall_s:.0f} s\n" + noise_block(r))


def target_table(ts: list[Target]) -> list[str]:
    out = ["| target | measured | status |", "|---|---|---|"]
    out += [f"| {t.title} | {t.detail} | **{t.verdict.upper()}** |" for t in ts]
    whys = [t for t in ts if t.reason]
    if whys:
        out += ["", "Why not (measured):"]
        out += [f"- {t.title}: {t.reason}" for t in whys]
    return out


def render(folder: Path, results: Path) -> str:
    run = json.loads((folder / "run.json").read_text()) if (folder / "run.json").is_file() \
        else {"bundles": []}
    out = ["# edgegen benchmarks", "",
           "Written by `benchmarks/scripts/run_benchmarks.py` from the runs recorded in "
           f"`{_rel(folder)}/`; regenerate the markdown with:", "",
           "```", f".venv/bin/python benchmarks/scripts/run_benchmarks.py --render-only "
           f"--results {_rel(results)} --doc {_rel(DOC_DEFAULT)}", "```", "",
           "Every number below was measured by the command printed above its table. Ratios "
           "come from contenders timed in the same run, in interleaved blocks, so that load "
           "from other processes falls on all of them. Each run also records the machine's "
           "noise before, between rounds and after (other processes' CPU use, steal, clock, the "
           "matmul yardstick measured again between rounds); when it is over a threshold, no "
           "speed target is judged from that run (`not judged (noise)`); fidelity is. The "
           "targets are `edgegen.benchmarks.targets`: `edgegen bench --target NAME` gates on "
           "the same ones. "
           + (f"`EDGEGEN_DATA_DIR` was `{run['data_dir']}` (eval's real digits)."
              if run.get("data_dir") else ""), ""]
    targets: list[str] = []
    sections: list[str] = []
    have_cflow = False
    for entry in run["bundles"]:
        sub = folder / entry["dir"]
        off = load(sub, "offline-cpu")
        if off is None:
            sections += [f"## {entry['architecture']}: no offline run recorded", ""]
            continue
        cflow = entry["architecture"] == "cflow"
        have_cflow |= cflow
        ev = sub / "eval.json"
        ts = cflow_targets(off, entry.get("profile")) if cflow else \
            gan_targets(off, fidelity_deltas(ev) if ev.is_file() else None, entry.get("profile"))
        targets += [f"### {entry['architecture']} (`{entry['bundle']}`)", "",
                    machine_block(off), "", *target_table(ts), ""]
        sections += bundle_sections(entry, sub, off)
    if not have_cflow:
        targets += ["### cflow", "", "- cflow sampler ≥ 1.5× its plain ORT export and ≥ 1.25× "
                    "OpenVINO: **NOT MEASURED** (no cflow bundle was given: pass "
                    "`--bundle bundles/cflow`)", ""]
    out += ["## CPU: targets of issue 12", "", *targets, *sections, "## GPU", "",
            *gpu_sections(results)]
    return "\n".join(out) + "\n"


def bundle_sections(entry: dict[str, Any], sub: Path, off: BenchReport) -> list[str]:
    arch = entry["architecture"]
    cmd = {x["name"]: x["command"] for x in entry["runs"]}
    out = [f"## {arch}: offline (batch sweep)", "",
           f"`{cmd.get('offline-cpu', off.command)}`", "", offline_table(off), "",
           "× torch = PyTorch eager p50 ÷ this p50 at the same batch. `ort-plain` / "
           "`openvino-plain` run the export without edgegen's graph rewrites. Label fidelity: "
           "the eval report's when given, else the bundle manifest's. Session and first-run "
           "times are outside the timed region.", "",
           f"![latency and throughput]({_rel(sub / 'offline-cpu.png')})".replace(
               "benchmarks/", "", 1), ""]
    out += [f"- {k}: {why}" for k, why in off.unavailable.items()]
    out += eval_section(arch, sub, cmd) + profile_section(arch, entry.get("profile"))
    for name, title in (("server-cpu", "server scenario (Poisson arrivals)"),
                        ("server-sweep-cpu", "server QPS sweep")):
        srv = load(sub, name)
        if srv:
            out += server_section(arch, title, srv, cmd.get(name, srv.command))
    comp = load(sub, "offline-compile-cpu")
    if comp:
        out += ["", f"## {arch}: torch.compile", "", f"`{cmd.get('offline-compile-cpu')}`",
                "", offline_table(comp)]
    return [*out, ""]


def eval_section(arch: str, sub: Path, cmd: dict[str, str]) -> list[str]:
    p = sub / "eval.json"
    if not p.is_file():
        return []
    ev = json.loads(p.read_text())
    out = ["", f"### {arch}: label fidelity (`{cmd.get('eval', '')}`)", "",
           "| variant | fidelity | Δ vs PyTorch | McNemar p |", "|---|---:|---:|---:|"]
    for v in ev.get("variants", []):
        d = v.get("vs_reference") or {}
        out.append(f"| {v['name']} | {v['fidelity']:.2%} | "
                   f"{_f(d.get('delta_pp'), '+.2f')} pp | {_f(d.get('p_value'), '.3g')} |")
    return out


def profile_section(arch: str, prof: dict[str, Any] | None) -> list[str]:
    if not prof:
        return []
    out = ["", f"### {arch}: where the time goes (ONNX Runtime's and OpenVINO's "
           "profilers, median kernel time)", "",
           "| graph | batch | kernel ms | top kernels |", "|---|---:|---:|---|"]
    for b, per in prof["batches"].items():
        for name, p in per.items():
            out.append(f"| {name} | {b} | {_f(p.get('total_us', 0) / 1e3, '.3f')} | "
                       f"{ops_summary(p, 5)} |")
    return out + [f"- {n}" for n in prof.get("notes", [])]


def server_section(arch: str, title: str, srv: BenchReport, command: str) -> list[str]:
    t = srv.threads
    out = ["", f"## {arch}: {title}", "", f"`{command}`", "",
           f"{t.get('server_workers')} workers × {t.get('server_intra_op_threads')} intra-op "
           f"thread(s), max batch {t.get('server_max_batch')}; latency counts queueing from "
           "the scheduled arrival.", "", server_table(srv)]
    for key, sw in srv.sweeps.items():
        best = "none held" if sw.best_qps is None else f"{sw.best_qps:,.0f} QPS"
        out += ["", f"- {key}: highest offered QPS with p99 ≤ {sw.p99_bound_ms:g} ms: "
                    f"**{best}**"]
    return out


def gpu_sections(results: Path) -> list[str]:
    """Every bench report under ``results`` made on a GPU provider (``gpu_check.sh``)."""
    found = [(p, r) for p in sorted(results.glob("**/bench-*.json"))
             if (r := load_report(p)).provider in GPU_PROVIDERS]
    if not found:
        return ["Not recorded yet. On a machine with an NVIDIA GPU, run "
                "`bash benchmarks/scripts/gpu_check.sh --results <results> BUNDLE...` (see its "
                "header), then `run_benchmarks.py --render-only`."]
    out: list[str] = []
    for p, r in found:
        out += [f"### {_rel(p.parent)} · {r.provider} · {r.bundle}", "", machine_block(r), "",
                f"`{r.command}`", "", offline_table(r), ""]
        out += [f"- failed: {key}: {msg}" for key, msg in r.failures.items()]
        # the run's --target verdicts, else issue 24's GPU target judged on it
        ts = r.targets or [compute(r)["fp16-throughput"]]
        out += [f"- target {t.name} ({t.title}): {t.detail}: **{t.verdict.upper()}**"
                for t in ts]
    return out


def latest_folder(results: Path) -> Path | None:
    folders = [p.parent for p in results.glob("*/run.json")
               if "bundles" in json.loads(p.read_text())]
    return max(folders, key=lambda p: (p / "run.json").stat().st_mtime, default=None)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--results", type=Path, required=True,
                    help="folder that receives (or holds) the recorded runs")
    ap.add_argument("--doc", type=Path, required=True, help="the markdown file to write")
    ap.add_argument("--bundle", action="append", default=[],
                    help="a bundle to measure (repeat it: the GAN and the cflow bundle)")
    ap.add_argument("--bundles", default="",
                    help="comma-separated bundles (added to --bundle)")
    ap.add_argument("--batches", default="1,8,64,256")
    ap.add_argument("--duration", type=float, default=3.0,
                    help="timed seconds per contender and batch size (offline)")
    ap.add_argument("--eval-samples", type=int, default=10_000,
                    help="samples per variant for `edgegen eval` (0: no eval; the int8 "
                         "fidelity target then stays not measured)")
    ap.add_argument("--qps", type=float, default=500.0)
    ap.add_argument("--server-duration", type=float, default=10.0)
    ap.add_argument("--p99-bound-ms", type=float, default=10.0)
    ap.add_argument("--no-server", dest="server", action="store_false",
                    help="skip the server scenario runs")
    ap.add_argument("--with-compile", action="store_true",
                    help="also time torch.compile (slow to compile on a small CPU)")
    ap.add_argument("--render-only", action="store_true",
                    help="regenerate BENCHMARKS.md from the newest recorded run")
    a = ap.parse_args(argv)
    a.bundle = [*a.bundle, *[b for b in a.bundles.split(",") if b.strip()]] or \
        ["bundles/cdcgan"]
    folder = latest_folder(a.results) if a.render_only else run_all(a)
    if folder is None:
        print(f"no recorded run under {a.results}; run without --render-only first")
        return 1
    a.doc.write_text(render(folder, a.results))
    print(f"wrote {_rel(a.doc)} from {_rel(folder)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
