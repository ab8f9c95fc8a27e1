"""Record real ``edgegen`` runs for every bundle given and regenerate BENCHMARKS.md with the CPU
targets of issue 12, each marked met, not met, or not judged (the machine was too noisy), and,
for each one not met, the measured reason (ONNX Runtime's and OpenVINO's own profiles). It is a
script of the repository, not part of the installed package, and it writes only where it is told:

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
``<results>`` (the GPU runs of ``benchmarks/scripts/gpu_check.sh``). Only measured numbers
appear.
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

# The targets of issue 12 (CPU).
T_TP_TORCH = 1.5  # ORT fp32 best-batch img/s ÷ PyTorch eager's best
T_TP_OPENVINO = 1.25  # ... ÷ OpenVINO's best
T_EFFICIENCY = 0.60  # achieved FLOP/s ÷ the dense fp32 matmul yardstick
T_BATCH1 = 5.0  # PyTorch eager batch-1 p50 ÷ ORT fp32 batch-1 p50
T_INT8 = 1.5  # int8 best img/s ÷ fp32 best img/s ...
T_INT8_PP = 0.5  # ... at no more than this fidelity loss (percentage points, eval vs PyTorch)
T_CFLOW_PLAIN = 1.5  # cflow sampler img/s ÷ its plain ORT export's
T_CFLOW_OPENVINO = 1.25  # ... ÷ OpenVINO's best
PEERS = "torch,ort-default,openvino,ort-plain,openvino-plain"
PROFILE_BATCHES = (1, 64)
OURS = ("edgegen", "tuned")  # edgegen's ORT contenders (default settings, the tuned grid)


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
    from edgegen.benchmarks.machine import machine_info, machine_slug

    info = machine_info()
    folder = a.results / f"{machine_slug(info)}-{_dt.date.today().isoformat()}"
    folder.mkdir(parents=True, exist_ok=True)
    import os

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
                                 "runs": []}
        for name, args in bench_runs(bundle, sub, a, server):
            command = shlex.join(["edgegen", *args])
            print(f"$ {command}", flush=True)
            t0 = time.perf_counter()
            proc = subprocess.run([sys.executable, "-m", "edgegen", *args], cwd=ROOT,
                                  capture_output=True, text=True, env=_env())
            (sub / f"{name}.txt").write_text(f"$ {command}\n{proc.stdout}{proc.stderr}")
            print(proc.stdout[-3000:], proc.stderr[-2000:], sep="\n", flush=True)
            entry["runs"].append({"name": name, "command": command,
                                  "exit_code": proc.returncode,
                                  "wall_s": round(time.perf_counter() - t0, 1)})
        print(f"profiling {bundle} (ONNX Runtime and OpenVINO profilers)", flush=True)
        entry["profile"] = profile_bundle(Path(bundle), sub)
        record["bundles"].append(entry)
        (folder / "run.json").write_text(json.dumps(record, indent=2) + "\n")
    return folder


def _env() -> dict[str, str]:
    import os

    env = dict(os.environ)
    env["COLUMNS"] = "140"  # wide terminal tables in the recorded .txt files
    return env


def profile_bundle(bundle: Path, folder: Path) -> dict[str, Any]:
    """Per-op kernel time (and the dense ops' GFLOP/s) of every graph that a target compares:
    the bundle's variants on ONNX Runtime, the export without rewrites on ONNX Runtime, both
    fp32 graphs on OpenVINO — at batch 1 and 64, with the session settings of ``edgegen
    bench``'s default contender."""
    from edgegen.benchmarks.harness import usable_cores
    from edgegen.benchmarks.opprofile import kernel_types, op_profile
    from edgegen.benchmarks.runners import Inputs, PeerUnavailable, openvino_available
    from edgegen.benchmarks.runners import plain_export as export_plain
    from edgegen.quality.flops import count_flops
    from edgegen.runtime.bundle import load_bundle
    from edgegen.runtime.providers import ProviderSpec

    b = load_bundle(bundle)
    threads = usable_cores()
    graphs: dict[str, tuple[Path, str]] = {v: (b.variant_path(v), "cpu") for v in b.variants
                                           if v in ("fp32", "fp16", "int8")}
    out: dict[str, Any] = {"threads": threads, "batches": {}, "notes": [], "cpu_kernel_types": {
        op: kernel_types(op) for op in ("Gemm", "ConvTranspose", "Conv", "QLinearConv",
                                        "QLinearConvTranspose", "DepthToSpace")}}
    try:
        graphs["plain"] = (export_plain(b, folder), "cpu")
    except PeerUnavailable as exc:
        out["notes"].append(str(exc))
    if openvino_available() is None:
        graphs["openvino"] = (b.variant_path("fp32"), "openvino")
        if "plain" in graphs:
            graphs["openvino-plain"] = (graphs["plain"][0], "openvino")
    for batch in PROFILE_BATCHES:
        inputs = Inputs.make(2024, batch, b.z_dim, b.n_classes)
        feeds = {"z": inputs.z, "label": inputs.label}
        per: dict[str, Any] = {}
        for name, (path, provider) in graphs.items():
            flops = count_flops(path if "int8" not in name and "fp16" not in name
                                else b.variant_path("fp32"), batch=batch).by_op
            spec = ProviderSpec(provider, intra_op_threads=threads,
                                static_batches=(batch,) if provider == "openvino" else ())
            try:
                per[name] = op_profile(path, spec, feeds, runs=20 if batch > 1 else 200,
                                       flops_by_op=flops)
            except Exception as exc:  # noqa: BLE001 - a profile that fails is reported
                per[name] = {"error": f"{type(exc).__name__}: {str(exc)[:200]}"}
        out["batches"][str(batch)] = per
    return out


# --------------------------------------------------------------------------- reading
def load(folder: Path, name: str) -> dict[str, Any] | None:
    p = folder / f"{name}.json"
    return json.loads(p.read_text()) if p.is_file() else None


def rows(report: dict[str, Any], contenders: tuple[str, ...] | str | None = None,
         variant: str | None = None, batch: int | None = None) -> list[dict[str, Any]]:
    if isinstance(contenders, str):
        contenders = (contenders,)
    return [r for r in report["results"]
            if (contenders is None or r["contender"] in contenders)
            and (variant is None or r["variant"] == variant)
            and (batch is None or r["batch"] == batch)]


def best_tp(rs: list[dict[str, Any]]) -> dict[str, Any] | None:
    return max(rs, key=lambda r: r["latency"]["images_per_s"], default=None)


def tp(r: dict[str, Any]) -> float:
    return float(r["latency"]["images_per_s"])


def label(r: dict[str, Any]) -> str:
    s = r["settings"]
    if r["contender"] == "edgegen":
        return r["provider"] + ("+graph" if s.get("cuda_graph") else
                                "+iobind" if s.get("io_binding") else "")
    if r["contender"] == "tuned":
        return f"cpu {s['intra_op_threads']}t spin-{s['spinning']}"
    return r["contender"]


def _at(r: dict[str, Any]) -> str:
    return f"{label(r)}, {tp(r):,.0f} img/s at batch {r['batch']}"


# --------------------------------------------------------------------------- targets
def _target(name: str, measured: str, met: bool | None, noisy: bool,
            reason: str | None = None) -> dict[str, Any]:
    status = "not judged (noise)" if noisy and met is not None else \
        "not measured" if met is None else "met" if met else "not met"
    return {"target": name, "measured": measured, "status": status,
            "reason": reason if status == "not met" else None}


def gan_targets(off: dict[str, Any], ev: dict[str, Any] | None,
                prof: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The issue's CPU targets for a GAN bundle, from its offline run, eval and profiles."""
    noisy = bool((off.get("noise") or {}).get("noisy"))
    out: list[dict[str, Any]] = []
    ours = rows(off, OURS, "fp32")
    torch_best, ort_best = best_tp(rows(off, "torch")), best_tp(ours)
    ov_best = best_tp(rows(off, ("openvino", "openvino-plain")))
    if ort_best and torch_best:
        x = tp(ort_best) / tp(torch_best)
        out.append(_target(f"ORT fp32 best-batch img/s ≥ {T_TP_TORCH:g}× PyTorch eager's best",
                           f"{x:.2f}× ({_at(ort_best)} vs torch {tp(torch_best):,.0f} at batch "
                           f"{torch_best['batch']})", x >= T_TP_TORCH, noisy,
                           throughput_reason(off, prof, ort_best)))
    else:
        out.append(_target(f"ORT fp32 best-batch img/s ≥ {T_TP_TORCH:g}× PyTorch eager's best",
                           "PyTorch " + off.get("unavailable", {}).get("torch", "not measured"),
                           None, noisy))
    if ort_best and ov_best:
        x = tp(ort_best) / tp(ov_best)
        out.append(_target(f"… ≥ {T_TP_OPENVINO:g}× OpenVINO's best (either graph)",
                           f"{x:.2f}× (OpenVINO best: {_at(ov_best)})", x >= T_TP_OPENVINO,
                           noisy, throughput_reason(off, prof, ort_best, "openvino")))
    else:
        out.append(_target(f"… ≥ {T_TP_OPENVINO:g}× OpenVINO's best",
                           "OpenVINO " + off.get("unavailable", {}).get("openvino",
                                                                       "not measured"),
                           None, noisy))
    eff = [r for r in ours if r.get("matmul_fraction") is not None]
    if eff and off.get("matmul"):
        e = max(eff, key=lambda r: r["matmul_fraction"])
        out.append(_target(f"achieved FLOP/s ÷ matmul yardstick ≥ {T_EFFICIENCY:.0%}",
                           f"{e['matmul_fraction']:.1%} ({e['achieved_gflops']:.1f} of "
                           f"{off['matmul']['gflops']:.0f} GFLOP/s; {label(e)}, batch "
                           f"{e['batch']})", e["matmul_fraction"] >= T_EFFICIENCY, noisy,
                           throughput_reason(off, prof, e)))
    b1 = [r for r in ours if r["batch"] == 1 and r["speedup_p50"] is not None]
    if b1:
        best = max(b1, key=lambda r: r["speedup_p50"])
        t1 = rows(off, "torch", batch=1)[0]
        out.append(_target(f"batch-1 p50 ≥ {T_BATCH1:g}× faster than PyTorch eager",
                           f"{best['speedup_p50']:.2f}× ({label(best)} "
                           f"{best['latency']['p50_ms']:.3f} ms vs torch "
                           f"{t1['latency']['p50_ms']:.3f} ms)", best["speedup_p50"] >= T_BATCH1,
                           noisy, batch1_reason(best, prof)))
    int8, fp32 = best_tp(rows(off, "edgegen", "int8")), best_tp(rows(off, "edgegen", "fp32"))
    if int8 and fp32:
        x = tp(int8) / tp(fp32)
        loss = _int8_loss(ev)
        fid = (f"; fidelity {loss[0]:+.2f} pp vs PyTorch (McNemar p={loss[1]:.2g})" if loss
               else "; fidelity not measured (no eval report)")
        met = None if loss is None else (x >= T_INT8 and -loss[0] <= T_INT8_PP)
        out.append(_target(f"int8 img/s ÷ fp32 ≥ {T_INT8:g}× at ≤ {T_INT8_PP:g} pp fidelity "
                           "loss", f"{x:.2f}× (int8 {tp(int8):,.0f} at batch {int8['batch']} "
                                   f"vs fp32 {tp(fp32):,.0f} at batch {fp32['batch']}){fid}",
                           met if loss else None, noisy, int8_reason(prof, off)))
    return out


def cflow_targets(off: dict[str, Any], prof: dict[str, Any] | None) -> list[dict[str, Any]]:
    noisy = bool((off.get("noise") or {}).get("noisy"))
    ours, plain = best_tp(rows(off, OURS, "fp32")), best_tp(rows(off, "ort-plain"))
    ov = best_tp(rows(off, ("openvino", "openvino-plain")))
    out = []
    for name, peer, need, why in (
            (f"cflow sampler ≥ {T_CFLOW_PLAIN:g}× its plain ORT export", plain, T_CFLOW_PLAIN,
             "ort-plain"),
            (f"cflow sampler ≥ {T_CFLOW_OPENVINO:g}× OpenVINO's best", ov, T_CFLOW_OPENVINO,
             "openvino")):
        if ours and peer:
            x = tp(ours) / tp(peer)
            out.append(_target(name, f"{x:.2f}× ({_at(ours)} vs {_at(peer)})", x >= need,
                               noisy, throughput_reason(off, prof, ours, why)))
        else:
            out.append(_target(name, "not measured: " + "; ".join(
                f"{k}: {v}" for k, v in off.get("unavailable", {}).items()), None, noisy))
    return out


def _int8_loss(ev: dict[str, Any] | None) -> tuple[float, float] | None:
    for v in (ev or {}).get("variants", []):
        if v.get("name") == "int8" and v.get("vs_reference"):
            return float(v["vs_reference"]["delta_pp"]), float(v["vs_reference"]["p_value"])
    return None


def _ops(p: dict[str, Any], n: int = 4) -> str:
    """'Conv 78% (212 GFLOP/s), FusedGemm 15%, ...' from one op profile."""
    if not p or "error" in p:
        return (p or {}).get("error", "no profile")
    parts = []
    fams = p.get("families", {})
    for op, o in list(p["ops"].items())[:n]:
        fam = next((f for f, v in fams.items() if op in _members(f)), None)
        rate = fams.get(fam, {}).get("gflops") if fam else None
        parts.append(f"{op} {o['share']:.0%}" + (f" ({rate:.0f} GFLOP/s for all {fam})"
                                                   if rate else ""))
    return ", ".join(parts)


def _members(family: str) -> set[str]:
    from edgegen.benchmarks.opprofile import FAMILY

    return {k for k, v in FAMILY.items() if v == family}


def throughput_reason(off: dict[str, Any], prof: dict[str, Any] | None, ours: dict[str, Any],
                      vs: str = "torch") -> str:
    """Where the time goes at batch 64 on each engine compared (their own profilers)."""
    if not prof:
        return "no profile recorded"
    p = prof["batches"].get("64", {})
    mm = (off.get("matmul") or {}).get("gflops")
    s = (f"ONNX Runtime, fp32, batch 64 (kernel time): {_ops(p.get('fp32', {}))}"
         + (f"; yardstick {mm:.0f} GFLOP/s" if mm else ""))
    if vs in ("openvino", "torch") and "openvino" in p:
        s += (f". OpenVINO on the same graph: {_ops(p['openvino'])}"
              + (f"; on the unrewritten export: {_ops(p['openvino-plain'])}"
                 if "openvino-plain" in p else ""))
    if "plain" in p:
        s += f". ONNX Runtime on the unrewritten export: {_ops(p['plain'])}"
    return s


def batch1_reason(ours: dict[str, Any], prof: dict[str, Any] | None) -> str:
    if not prof or "fp32" not in prof["batches"].get("1", {}):
        return "no profile recorded"
    p = prof["batches"]["1"]["fp32"]
    kernels_ms = p["total_us"] / 1e3
    p50 = ours["latency"]["p50_ms"]
    return (f"at batch 1 ONNX Runtime's kernels take {kernels_ms:.3f} ms of the "
            f"{p50:.3f} ms p50 ({max(0.0, 1 - kernels_ms / p50):.0%} is per-call overhead "
            f"outside the kernels); kernels: {_ops(p)}")


def int8_reason(prof: dict[str, Any] | None, off: dict[str, Any]) -> str:
    if not prof or "int8" not in prof["batches"].get("64", {}):
        return "no profile recorded"
    p = prof["batches"]["64"]["int8"]
    if "error" in p:
        return p["error"]
    f32 = prof["batches"]["64"].get("fp32", {}).get("families", {}).get("Conv", {})
    q = p.get("families", {}).get("Conv", {})
    flags = ", ".join(off["machine"].get("cpu_flags", [])) or "unknown"
    qdq = sum(o["share"] for op, o in p["ops"].items()
              if op in ("QuantizeLinear", "DequantizeLinear"))
    rate = (f"; int8 convolutions reach {q['gflops']:.0f} GOP/s vs fp32's "
            f"{f32.get('gflops', float('nan')):.0f} GFLOP/s" if q.get("gflops") else "")
    return (f"int8 kernels that ran: {', '.join(p['int8_ops']) or 'none'}; float dense ops left "
            f"between Q/DQ: {', '.join(p['float_ops_between_qdq']) or 'none'}; "
            f"QuantizeLinear + DequantizeLinear {qdq:.0%} of kernel time{rate}; "
            f"kernels: {_ops(p)}; CPU flags: {flags} (without VNNI, u8×s8 products go through "
            "vpmaddubsw/vpmaddwd)")


# --------------------------------------------------------------------------- markdown
def _f(x: float | None, fmt: str) -> str:
    return "—" if x is None else format(x, fmt)


def offline_table(report: dict[str, Any], all_tuned: bool = False) -> str:
    head = ("| variant | contender | batch | p50 ms | p99 ms | img/s | × torch | label fidelity "
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


def noise_block(r: dict[str, Any]) -> str:
    n = r.get("noise")
    if not n:
        return "- machine noise: not recorded (a run older than the noise probe)"
    s, th = n["summary"], n["thresholds"]
    mm = s.get("yardstick_gflops")
    first, last = s.get("load_average_first"), s.get("load_average_last")
    line = (f"- machine noise (before, between rounds, after): other processes used up to "
            f"{_f(s.get('others_max'), '.1%')} of the CPU, steal up to "
            f"{_f(s.get('steal_max'), '.1%')}, matmul yardstick "
            + (f"{mm[0]:.0f}–{mm[1]:.0f} GFLOP/s over {len(r['matmul']['measurements'])} "
               "measurements" if mm and r.get("matmul") else "not measured")
            + (f", clock spread {s['freq_spread']:.0%}" if s.get("freq_spread") is not None
               else "")
            + (f"; load average {first[0]:.2f} → {last[0]:.2f} (recorded, not judged: it "
               "counts the benchmark's own threads)" if first and last else ""))
    limits = (f"thresholds: others ≤ {th['others']:.0%}, steal ≤ {th['steal']:.0%}, yardstick "
              f"spread ≤ {th['yardstick_spread']:.0%}, clock spread ≤ {th['freq_spread']:.0%}")
    verdict = ("**NOISY — no target is judged from this run**: " + "; ".join(n["reasons"])
               if n["noisy"] else "quiet enough to judge")
    return f"{line}\n- {limits}: {verdict}"


def machine_block(r: dict[str, Any]) -> str:
    m, v = r["machine"], r["versions"]
    gpu = f"; GPU {m['gpu']['name']} ({m['gpu']['memory_gib']:.0f} GiB, CUDA " \
          f"{m['gpu']['cuda']})" if m.get("gpu") else ""
    vs = ", ".join(f"{k} {val}" for k, val in v.items() if val)
    mm = r.get("matmul")
    mm_s = (f"{mm['gflops']:.0f} GFLOP/s ({mm['library']}, {mm['threads']} threads, "
            f"n={mm['size']}; best of {len(mm.get('measurements') or [1])})") if mm \
        else "not measured"
    return (f"- machine: {m['cpu']}, {m['usable_cores']} usable cores of "
            f"{m['logical_cores']}, {_f(m.get('ram_gib'), '.0f')} GiB RAM, {m['os']}{gpu}; "
            f"CPU flags {', '.join(m.get('cpu_flags', []))}\n"
            f"- versions: {vs}\n"
            f"- threads: {r['threads']['budget']} for every contender (ORT intra-op, "
            f"torch.set_num_threads, OpenVINO INFERENCE_NUM_THREADS); ORT spinning "
            f"{r['threads']['ort_spinning']}\n"
            f"- dense fp32 matmul yardstick: {mm_s}; generator "
            f"{r['flops']['per_image'] / 1e6:.2f} MFLOP per image (useful FLOPs, from the "
            "graph)\n"
            f"- started {r['started']}, {r['wall_s']:.0f} s\n" + noise_block(r))


def target_table(ts: list[dict[str, Any]]) -> list[str]:
    out = ["| target | measured | status |", "|---|---|---|"]
    out += [f"| {t['target']} | {t['measured']} | **{t['status'].upper()}** |" for t in ts]
    whys = [t for t in ts if t.get("reason")]
    if whys:
        out += ["", "Why not (measured):"]
        out += [f"- {t['target']}: {t['reason']}" for t in whys]
    return out


def render(folder: Path, results: Path) -> str:
    run = load(folder, "run") or {"bundles": []}
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
           "target is judged from that run (`not judged (noise)`). "
           + (f"`EDGEGEN_DATA_DIR` was `{run['data_dir']}` (eval's real digits)."
              if run.get("data_dir") else ""), ""]
    targets: list[str] = []
    sections: list[str] = []
    have_cflow = False
    for entry in run["bundles"]:
        sub = folder / entry["dir"]
        off, ev = load(sub, "offline-cpu"), load(sub, "eval")
        cmd = {x["name"]: x["command"] for x in entry["runs"]}
        if off is None:
            sections += [f"## {entry['architecture']}: no offline run recorded", ""]
            continue
        cflow = entry["architecture"] == "cflow"
        have_cflow |= cflow
        ts = cflow_targets(off, entry.get("profile")) if cflow else \
            gan_targets(off, ev, entry.get("profile"))
        targets += [f"### {entry['architecture']} (`{entry['bundle']}`)", "",
                    machine_block(off), "", *target_table(ts), ""]
        sections += bundle_sections(entry, sub, off, ev, cmd)
    if not have_cflow:
        targets += ["### cflow", "", f"- cflow sampler ≥ {T_CFLOW_PLAIN:g}× its plain ORT "
                    f"export and ≥ {T_CFLOW_OPENVINO:g}× OpenVINO: **NOT MEASURED** (no cflow "
                    "bundle was given: pass `--bundle bundles/cflow`)", ""]
    out += ["## CPU: targets of issue 12", "", *targets, *sections, "## GPU", "",
            *gpu_sections(results)]
    return "\n".join(out) + "\n"


def bundle_sections(entry: dict[str, Any], sub: Path, off: dict[str, Any],
                    ev: dict[str, Any] | None, cmd: dict[str, str]) -> list[str]:
    arch = entry["architecture"]
    out = [f"## {arch}: offline (batch sweep)", "",
           f"`{cmd.get('offline-cpu', off['command'])}`", "", offline_table(off), "",
           "× torch = PyTorch eager p50 ÷ this p50 at the same batch. `ort-plain` / "
           "`openvino-plain` run the export without edgegen's graph rewrites. Label fidelity: "
           "the eval report's when given, else the bundle manifest's. Session and first-run "
           "times are outside the timed region.", "",
           f"![latency and throughput]({_rel(sub / 'offline-cpu.png')})".replace(
               "benchmarks/", "", 1), ""]
    for k, why in off.get("unavailable", {}).items():
        out.append(f"- {k}: {why}")
    if ev:
        out += ["", f"### {arch}: label fidelity (`{cmd.get('eval', '')}`)", "",
                "| variant | fidelity | Δ vs PyTorch | McNemar p |", "|---|---:|---:|---:|"]
        for v in ev.get("variants", []):
            d = v.get("vs_reference") or {}
            out.append(f"| {v['name']} | {v['fidelity']:.2%} | "
                       f"{_f(d.get('delta_pp'), '+.2f')} pp | {_f(d.get('p_value'), '.3g')} |")
    prof = entry.get("profile")
    if prof:
        out += ["", f"### {arch}: where the time goes (ONNX Runtime's and OpenVINO's "
                "profilers, median kernel time)", "",
                "| graph | batch | kernel ms | top kernels |", "|---|---:|---:|---|"]
        for b, per in prof["batches"].items():
            for name, p in per.items():
                out.append(f"| {name} | {b} | {_f(p.get('total_us', 0) / 1e3, '.3f')} | "
                           f"{_ops(p, 5)} |")
        out += [f"- {n}" for n in prof.get("notes", [])]
    for name, title in (("server-cpu", "server scenario (Poisson arrivals)"),
                        ("server-sweep-cpu", "server QPS sweep")):
        srv = load(sub, name)
        if not srv:
            continue
        out += ["", f"## {arch}: {title}", "", f"`{cmd.get(name, srv['command'])}`", "",
                f"{srv['threads'].get('server_workers')} workers × "
                f"{srv['threads'].get('server_intra_op_threads')} intra-op thread(s), max batch "
                f"{srv['threads'].get('server_max_batch')}; latency counts queueing from the "
                "scheduled arrival.", "", server_table(srv)]
        for key, sw in srv.get("sweeps", {}).items():
            best = "none held" if sw["best_qps"] is None else f"{sw['best_qps']:,.0f} QPS"
            out += ["", f"- {key}: highest offered QPS with p99 ≤ {sw['p99_bound_ms']:g} ms: "
                        f"**{best}**"]
    comp = load(sub, "offline-compile-cpu")
    if comp:
        out += ["", f"## {arch}: torch.compile", "", f"`{cmd.get('offline-compile-cpu')}`",
                "", offline_table(comp)]
    return [*out, ""]


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


def latest_folder(results: Path) -> Path | None:
    folders = [p.parent for p in results.glob("*/run.json")
               if "bundles" in json.loads(p.read_text())]
    return max(folders, key=lambda p: (p / "run.json").stat().st_mtime, default=None)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
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
                    help="samples per variant for `edgegen eval` (0: no eval; the int8 target "
                         "then stays unjudged)")
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
