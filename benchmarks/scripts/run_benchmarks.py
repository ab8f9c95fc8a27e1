"""Record real ``edgegen bench`` runs and regenerate a BENCHMARKS.md from them. It is a script of
the repository, not part of the installed package, and it writes only where it is told:

    .venv/bin/python benchmarks/scripts/run_benchmarks.py --bundle bundles/cdcgan \
        --results benchmarks/results --doc benchmarks/BENCHMARKS.md          # about 4 minutes
    .venv/bin/python benchmarks/scripts/run_benchmarks.py --render-only \
        --results benchmarks/results --doc benchmarks/BENCHMARKS.md          # markdown only

Each run is the ``edgegen bench`` command printed in BENCHMARKS.md, executed as written, so any
number there can be reproduced by pasting its command. Results land in
``<results>/<machine>-<date>/`` (JSON, PNG and the terminal output); the markdown is written from
the newest CPU folder and from every ``bench-cuda.json`` found under ``<results>`` (the GPU runs
of ``benchmarks/scripts/gpu_check.sh``). Only measured numbers appear; a target without a
measurement says so.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path.cwd()  # commands are recorded relative to where the script runs
DOC_DEFAULT = Path("benchmarks/BENCHMARKS.md")  # only quoted in the regenerate command

# The issue's targets on 2 CPU cores (issue 6, "Targets").
T_BATCH1_SPEEDUP = 8.0
T_THROUGHPUT_SPEEDUP = 2.0
T_MATMUL_FRACTION = 0.75


# --------------------------------------------------------------------------- running
def _rel(p: Path) -> str:
    try:
        return str(p.resolve().relative_to(ROOT))
    except ValueError:
        return str(p)


def bench_runs(bundle: str, out: Path, a: argparse.Namespace) -> list[tuple[str, list[str]]]:
    """(name, edgegen arguments) of every recorded run."""
    o = _rel(out)
    runs = [
        ("offline-cpu", ["bench", bundle, "--batch", a.batches, "--peers",
                         "torch,ort-default,openvino", "--tune", "--warmup-s", "0.5",
                         "--duration", str(a.duration), "--rounds", "6",
                         "--json", f"{o}/offline-cpu.json", "--plot", f"{o}/offline-cpu.png"]),
        ("server-cpu", ["bench", bundle, "--scenario", "server", "--precision", "fp32",
                        "--peers", "torch,ort-default", "--qps", str(a.qps), "--duration",
                        str(a.server_duration), "--json", f"{o}/server-cpu.json"]),
        ("server-sweep-cpu", ["bench", bundle, "--scenario", "server", "--precision", "fp32",
                              "--peers", "none", "--qps", str(a.qps / 2), "--p99-bound-ms",
                              str(a.p99_bound_ms), "--duration", "3",
                              "--json", f"{o}/server-sweep-cpu.json"]),
    ]
    if a.with_compile:
        runs.append(("offline-compile-cpu",
                     ["bench", bundle, "--precision", "fp32", "--batch", "1,64", "--peers",
                      "torch,torch-compile", "--duration", str(a.duration),
                      "--json", f"{o}/offline-compile-cpu.json"]))
    return runs


def run_all(a: argparse.Namespace) -> Path:
    from edgegen.benchmarks.machine import machine_info, machine_slug

    info = machine_info()
    folder = a.results / f"{machine_slug(info)}-{_dt.date.today().isoformat()}"
    folder.mkdir(parents=True, exist_ok=True)
    record: dict[str, Any] = {"started": _dt.datetime.now(_dt.timezone.utc)
                              .isoformat(timespec="seconds"), "machine": info, "runs": []}
    for name, args in bench_runs(a.bundle, folder, a):
        command = shlex.join(["edgegen", *args])
        print(f"$ {command}", flush=True)
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "edgegen", *args], cwd=ROOT,
                              capture_output=True, text=True, env=_env())
        (folder / f"{name}.txt").write_text(f"$ {command}\n{proc.stdout}{proc.stderr}")
        print(proc.stdout[-3000:], proc.stderr[-2000:], sep="\n", flush=True)
        record["runs"].append({"name": name, "command": command, "exit_code": proc.returncode,
                               "wall_s": round(time.perf_counter() - t0, 1)})
    record["op_profile"] = profile_variants(Path(a.bundle))
    (folder / "run.json").write_text(json.dumps(record, indent=2) + "\n")
    return folder


def _env() -> dict[str, str]:
    import os

    env = dict(os.environ)
    env["COLUMNS"] = "140"  # wide terminal tables in the recorded .txt files
    return env


def profile_variants(bundle: Path, batch: int = 64) -> dict[str, Any]:
    """ONNX Runtime's own per-op profile of each variant on CPU, and its CPU kernel types."""
    from edgegen.benchmarks.opprofile import kernel_types, op_profile
    from edgegen.benchmarks.runners import Inputs
    from edgegen.runtime.bundle import load_bundle
    from edgegen.runtime.providers import ProviderSpec

    b = load_bundle(bundle)
    inputs = Inputs.make(2024, batch, b.z_dim, b.n_classes)
    feeds = {"z": inputs.z, "label": inputs.label}
    out: dict[str, Any] = {"batch": batch, "variants": {}, "cpu_kernel_types": {
        op: kernel_types(op) for op in ("Gemm", "ConvTranspose", "Conv", "QLinearConv",
                                        "QLinearConvTranspose")}}
    for v in b.variants:
        if v in ("fp32", "fp16", "int8"):
            out["variants"][v] = op_profile(b.model_bytes(v), ProviderSpec(), feeds)
    return out


# --------------------------------------------------------------------------- reading
def load(folder: Path, name: str) -> dict[str, Any] | None:
    p = folder / f"{name}.json"
    return json.loads(p.read_text()) if p.is_file() else None


def rows(report: dict[str, Any], contender: str | None = None,
         variant: str | None = None) -> list[dict[str, Any]]:
    return [r for r in report["results"] if (contender is None or r["contender"] == contender)
            and (variant is None or r["variant"] == variant)]


def best_tp(rs: list[dict[str, Any]]) -> dict[str, Any] | None:
    return max(rs, key=lambda r: r["latency"]["images_per_s"], default=None)


def label(r: dict[str, Any]) -> str:
    s = r["settings"]
    if r["contender"] == "edgegen":
        return r["provider"] + ("+graph" if s.get("cuda_graph") else
                                "+iobind" if s.get("io_binding") else "")
    if r["contender"] == "tuned":
        return f"cpu {s['intra_op_threads']}t spin-{s['spinning']}"
    return r["contender"]


# --------------------------------------------------------------------------- targets
def targets(off: dict[str, Any], run: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The issue's CPU targets, each with the measured figure and MET / NOT MET."""
    out: list[dict[str, Any]] = []
    ours = rows(off, "edgegen", "fp32") + rows(off, "tuned", "fp32")
    b1 = [r for r in ours if r["batch"] == 1 and r["speedup_p50"] is not None]
    if b1:
        best = max(b1, key=lambda r: r["speedup_p50"])
        default = next((r for r in b1 if r["contender"] == "edgegen"), best)
        torch1 = next(r for r in rows(off, "torch") if r["batch"] == 1)
        out.append({
            "target": f"ORT fp32 batch-1 p50 ≥ {T_BATCH1_SPEEDUP:g}× faster than PyTorch eager",
            "measured": f"{best['speedup_p50']:.2f}× ({label(best)}: "
                        f"{best['latency']['p50_ms']:.3f} ms vs torch "
                        f"{torch1['latency']['p50_ms']:.3f} ms); edgegen default "
                        f"{default['speedup_p50']:.2f}×",
            "met": best["speedup_p50"] >= T_BATCH1_SPEEDUP})
    ort_best, torch_best = best_tp(ours), best_tp(rows(off, "torch"))
    ov_best = best_tp(rows(off, "openvino"))
    if ort_best and torch_best:
        ratio = ort_best["latency"]["images_per_s"] / torch_best["latency"]["images_per_s"]
        out.append({
            "target": f"best-batch throughput ≥ {T_THROUGHPUT_SPEEDUP:g}× PyTorch eager",
            "measured": f"{ratio:.2f}× (ORT {_tp(ort_best)} vs torch {_tp(torch_best)})",
            "met": ratio >= T_THROUGHPUT_SPEEDUP})
    if ort_best and ov_best:
        ratio = ort_best["latency"]["images_per_s"] / ov_best["latency"]["images_per_s"]
        out.append({"target": "best-batch throughput no worse than OpenVINO (CPU, f32)",
                    "measured": f"{ratio:.2f}× OpenVINO (ORT {_tp(ort_best)} vs OpenVINO "
                                f"{_tp(ov_best)})", "met": ratio >= 1.0})
    elif ort_best:
        out.append({"target": "best-batch throughput no worse than OpenVINO",
                    "measured": "OpenVINO " + off["unavailable"].get("openvino", "not measured"),
                    "met": None})
    eff = [r for r in ours if r.get("matmul_fraction") is not None]
    if eff and off.get("matmul"):
        e = max(eff, key=lambda r: r["matmul_fraction"])
        out.append({"target": f"≥ {T_MATMUL_FRACTION:.0%} of the measured dense fp32 matmul "
                              "rate",
                    "measured": f"{e['matmul_fraction']:.1%} ({e['achieved_gflops']:.1f} of "
                                f"{off['matmul']['gflops']:.0f} GFLOP/s; {label(e)}, batch "
                                f"{e['batch']})",
                    "met": e["matmul_fraction"] >= T_MATMUL_FRACTION})
    for v in ("fp16", "int8"):
        rs = rows(off, "edgegen", v)
        base = rows(off, "edgegen", "fp32")
        if not rs or not base:
            continue
        per_batch = []
        for r in rs:
            f = next(x for x in base if x["batch"] == r["batch"])
            per_batch.append((r["batch"], f["latency"]["p50_ms"] / r["latency"]["p50_ms"]))
        wins = [b for b, s in per_batch if s > 1.0]
        answer = ("**YES**" if len(wins) == len(per_batch) else "**NO**" if not wins
                  else f"**MIXED** (faster at batch {', '.join(map(str, wins))} only)")
        out.append({"target": f"is {v} faster than fp32 on CPU?",
                    "measured": ", ".join(f"batch {b}: {s:.2f}×" for b, s in per_batch)
                                + " (fp32 p50 ÷ " + v + " p50)", "met": None,
                    "answer": answer,
                    "why": why_not(v, run) if len(wins) < len(per_batch) else None})
    return out


def _tp(r: dict[str, Any]) -> str:
    return f"{r['latency']['images_per_s']:,.0f} img/s at batch {r['batch']}"


def why_not(variant: str, run: dict[str, Any] | None) -> str:
    """The measured reason, from ONNX Runtime's kernel registry and per-op profile."""
    prof = (run or {}).get("op_profile")
    if not prof:
        return "no op profile recorded"
    kt = {op: " / ".join(types) if types else "no kernel"
          for op, types in prof["cpu_kernel_types"].items()}
    p = prof["variants"].get(variant, {})
    ops = p.get("ops", {})
    top = next(iter(ops.items()), None)
    top_s = f"{top[0]} takes {top[1]['share']:.0%} of the kernel time" if top else ""
    if variant == "fp16":
        return (f"ONNX Runtime's CPU provider registers ConvTranspose for {kt['ConvTranspose']} "
                f"and Gemm for {kt['Gemm']} only (no float16), so the fp16 graph runs in fp32 "
                f"after casts "
                f"(ORT inserted {p.get('inserted_casts', 0)} cast node(s); the model has its "
                f"own input/output casts); {top_s} at batch {prof['batch']}. Half-size "
                "weights save memory traffic at small batches, not arithmetic.")
    int8_ops = ", ".join(p.get("int8_ops", [])) or "none"
    qct = kt.get("QLinearConvTranspose", "unknown")
    return (f"int8 kernels ran for {int8_ops} only; ORT's CPU provider registers "
            + ("no QLinearConvTranspose kernel" if qct == "no kernel"
               else f"QLinearConvTranspose for {qct}")
            + ", so ConvTranspose — the bulk of the work — runs in float between "
            "DequantizeLinear/QuantizeLinear nodes that add work "
            f"(DequantizeLinear + QuantizeLinear: "
            f"{_share(ops, 'DequantizeLinear') + _share(ops, 'QuantizeLinear'):.0%}); "
            f"{top_s} at batch {prof['batch']}.")


def _share(ops: dict[str, Any], op: str) -> float:
    return float(ops.get(op, {}).get("share", 0.0))


# --------------------------------------------------------------------------- markdown
def _status(met: bool | None) -> str:
    return "—" if met is None else "**MET**" if met else "**NOT MET**"


def _f(x: float | None, fmt: str) -> str:
    return "—" if x is None else format(x, fmt)


def offline_table(report: dict[str, Any], all_tuned: bool = False) -> str:
    head = ("| variant | provider | batch | p50 ms | p99 ms | img/s | × torch | label fidelity "
            "| % matmul | session ms | first run ms |\n|---|---|---:|---:|---:|---:|---:|---:|"
            "---:|---:|---:|")
    lines = [head]
    for r in report["results"]:
        if r["contender"] == "tuned" and not (all_tuned or r["best_tuned"]):
            continue
        lat = r["latency"]
        lines.append(
            f"| {r['variant']} | {label(r)}{' (best tuned)' if r['best_tuned'] else ''} | "
            f"{r['batch']} | {lat['p50_ms']:.3f} | {lat['p99_ms']:.3f} | "
            f"{lat['images_per_s']:,.0f} | {_f(r['speedup_p50'], '.2f')} | "
            f"{_f(r['fidelity'], '.1%')} | {_f(r.get('matmul_fraction'), '.1%')} | "
            f"{r['session_create_s'] * 1e3:.0f} | {r['first_run_s'] * 1e3:.1f} |")
    return "\n".join(lines)


def server_table(report: dict[str, Any]) -> str:
    lines = ["| variant | contender | offered QPS | achieved QPS | p50 ms | p99 ms | unfinished "
             "| mean batch |", "|---|---|---:|---:|---:|---:|---:|---:|"]
    for s in report["server"]:
        lines.append(f"| {s['variant']} | {s['contender']} | {s['target_qps']:,.0f} | "
                     f"{s['achieved_qps']:,.0f} | {_f(s['p50_ms'], '.3f')} | "
                     f"{_f(s['p99_ms'], '.3f')} | {s['unfinished']} | {s['mean_batch']:.2f} |")
    return "\n".join(lines)


def machine_block(r: dict[str, Any]) -> str:
    m, v = r["machine"], r["versions"]
    load = ", ".join(f"{x:.2f}" for x in m.get("load_average") or [])
    after = ", ".join(f"{x:.2f}" for x in m.get("load_average_after") or [])
    gpu = f"; GPU {m['gpu']['name']} ({m['gpu']['memory_gib']:.0f} GiB, CUDA " \
          f"{m['gpu']['cuda']})" if m.get("gpu") else ""
    vs = ", ".join(f"{k} {val}" for k, val in v.items() if val)
    mm = r.get("matmul")
    mm_s = (f"{mm['gflops']:.0f} GFLOP/s ({mm['library']}, {mm['threads']} threads, "
            f"n={mm['size']})") if mm else "not measured"
    noisy = max((m.get("load_average") or [0])[0], (m.get("load_average_after") or [0])[0])
    warn = (f"\n- **noisy machine**: a 1-minute load average of {noisy:.1f} on "
            f"{m['usable_cores']} cores means other processes competed for the CPU during "
            "these runs. Under oversubscription OpenMP runtimes (PyTorch's, OpenVINO's) "
            "stall at their barriers far more than ONNX Runtime's pool, so the ratios lean "
            "towards ORT and the verdicts below are provisional until rerun on a quiet "
            "machine") if noisy > 0.5 * m["usable_cores"] else ""
    return (f"- machine: {m['cpu']}, {m['usable_cores']} usable cores of "
            f"{m['logical_cores']}, {_f(m.get('ram_gib'), '.0f')} GiB RAM, {m['os']}{gpu}; "
            f"CPU flags {', '.join(m.get('cpu_flags', []))}\n"
            f"- load average (1, 5, 15 min) before: {load}; after: {after}\n"
            f"- versions: {vs}\n"
            f"- threads: {r['threads']['budget']} for every contender (ORT intra-op, "
            f"torch.set_num_threads, OpenVINO INFERENCE_NUM_THREADS); ORT spinning "
            f"{r['threads']['ort_spinning']}\n"
            f"- dense fp32 matmul yardstick: {mm_s}; generator "
            f"{r['flops']['per_image'] / 1e6:.2f} MFLOP per image (from the graph)\n"
            f"- started {r['started']}, {r['wall_s']:.0f} s{warn}")


def render(folder: Path, results: Path) -> str:
    run = load(folder, "run")
    off = load(folder, "offline-cpu")
    cmd = {x["name"]: x["command"] for x in (run or {}).get("runs", [])}
    out = ["# edgegen benchmarks", "",
           "Written by `benchmarks/scripts/run_benchmarks.py` from the runs recorded in "
           f"`{_rel(folder)}/`; regenerate with one command:", "",
           "```", f".venv/bin/python benchmarks/scripts/run_benchmarks.py --results "
           f"{_rel(results)} --doc {_rel(DOC_DEFAULT)}", "```", "",
           "Every number below was measured by the command printed above its table. Ratios "
           "(× torch) come from contenders timed in the same run, in interleaved blocks, so "
           "that load from other processes falls on all of them; absolute times on a shared "
           "machine are noisy (see the load averages).", ""]
    if off:
        out += ["## CPU: targets of issue 6", "", machine_block(off), "",
                "| target | measured | status |", "|---|---|---|"]
        ts = targets(off, run)
        for t in ts:
            out.append(f"| {t['target']} | {t['measured']} | "
                       f"{t.get('answer') or _status(t['met'])} |")
        whys = [t for t in ts if t.get("why")]
        if whys:
            out += ["", "Why not:"]
            out += [f"- {t['target'].split(' ')[1]}: {t['why']}" for t in whys]
        out += ["", "## CPU: offline (batch sweep)", "",
                f"`{cmd.get('offline-cpu', off['command'])}`", "", offline_table(off), "",
                "× torch = PyTorch eager p50 ÷ this p50 at the same batch. Label fidelity is the "
                "variant's, from the bundle manifest. Session and first-run times are outside "
                "the timed region.", "", "![latency and throughput](" +
                f"{_rel(folder / 'offline-cpu.png').replace('benchmarks/', '', 1)})", "",
                "### ORT CPU settings tried (fp32)", "", offline_table(
                    {"results": [r for r in off["results"] if r["contender"] in
                                 ("tuned", "ort-default") or (r["contender"] == "edgegen"
                                                              and r["variant"] == "fp32")]},
                    all_tuned=True), ""]
        for k, why in off.get("unavailable", {}).items():
            out.append(f"- {k}: {why}")
    for name, title in (("server-cpu", "CPU: server scenario (Poisson arrivals)"),
                        ("server-sweep-cpu", "CPU: server QPS sweep")):
        srv = load(folder, name)
        if not srv:
            continue
        out += ["", f"## {title}", "", f"`{cmd.get(name, srv['command'])}`", "",
                f"{srv['threads'].get('server_workers')} workers × "
                f"{srv['threads'].get('server_intra_op_threads')} intra-op thread(s), max batch "
                f"{srv['threads'].get('server_max_batch')}; latency counts queueing from the "
                "scheduled arrival.", "", server_table(srv)]
        for key, sw in srv.get("sweeps", {}).items():
            best = "none held" if sw["best_qps"] is None else f"{sw['best_qps']:,.0f} QPS"
            tried = ", ".join(f"{t['target_qps']:,.0f} (p99 {_f(t['p99_ms'], '.2f')} ms"
                              f"{', unfinished ' + str(t['unfinished']) if t['unfinished'] else ''}"
                              ")" for t in sw["trials"])
            out += ["", f"- {key}: highest offered QPS with p99 ≤ {sw['p99_bound_ms']:g} ms: "
                        f"**{best}**; tried {tried}"]
    comp = load(folder, "offline-compile-cpu")
    if comp:
        out += ["", "## CPU: torch.compile", "", f"`{cmd.get('offline-compile-cpu')}`", "",
                offline_table(comp)]
    out += ["", "## GPU", ""] + gpu_sections(results)
    return "\n".join(out) + "\n"


def gpu_sections(results: Path) -> list[str]:
    found = sorted(results.glob("*/bench-cuda.json"))
    if not found:
        return ["Not recorded yet. On a machine with an NVIDIA GPU and onnxruntime-gpu, run "
                "`bash benchmarks/scripts/gpu_check.sh` and copy `bench-cuda.json` (and `.png`) "
                "into `<results>/<machine>-<date>/`, then `run_benchmarks.py --render-only`."]
    out: list[str] = []
    for p in found:
        r = json.loads(p.read_text())
        out += [f"### {p.parent.name}", "", machine_block(r), "", f"`{r['command']}`", "",
                offline_table(r), ""]
        for key, msg in r.get("failures", {}).items():
            out.append(f"- failed: {key}: {msg}")
    return out


def latest_cpu_folder(results: Path) -> Path | None:
    folders = [p.parent for p in results.glob("*/offline-cpu.json")]
    return max(folders, key=lambda p: (p / "offline-cpu.json").stat().st_mtime, default=None)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--results", type=Path, required=True,
                    help="folder that receives (or holds) the recorded runs")
    ap.add_argument("--doc", type=Path, required=True, help="the markdown file to write")
    ap.add_argument("--bundle", default="bundles/cdcgan")
    ap.add_argument("--batches", default="1,8,64,256")
    ap.add_argument("--duration", type=float, default=3.0,
                    help="timed seconds per contender and batch size (offline)")
    ap.add_argument("--qps", type=float, default=500.0)
    ap.add_argument("--server-duration", type=float, default=10.0)
    ap.add_argument("--p99-bound-ms", type=float, default=10.0)
    ap.add_argument("--with-compile", action="store_true",
                    help="also time torch.compile (slow to compile on a small CPU)")
    ap.add_argument("--render-only", action="store_true",
                    help="regenerate BENCHMARKS.md from the newest recorded CPU run")
    a = ap.parse_args(argv)
    folder = latest_cpu_folder(a.results) if a.render_only else run_all(a)
    if folder is None:
        print(f"no recorded run under {a.results}; run without --render-only first")
        return 1
    a.doc.write_text(render(folder, a.results))
    print(f"wrote {_rel(a.doc)} from {_rel(folder)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
