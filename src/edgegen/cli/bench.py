"""``edgegen bench``: latency and throughput per variant, provider and batch, beside the peers;
``--target`` gates on the performance targets (``edgegen.benchmarks.targets``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from edgegen.benchmarks.results import BenchConfig, BenchReport
from edgegen.cli.common import console, csv_option, err_console, errors_to_exit, progress_display
from edgegen.core.errors import CheckFailed, ConfigError, OutputError
from edgegen.core.fileio import check_output_file, save_report
from edgegen.runtime.providers import EP_NAMES

B = BenchConfig()


def _names(text: str, option: str) -> tuple[str, ...]:
    """Comma-separated names; ``none`` (like an empty value) means no names at all."""
    return () if text.strip().lower() == "none" else csv_option(text, option)


def _spinning(text: str) -> bool | None:
    table = {"default": None, "on": True, "off": False}
    if text not in table:
        raise ConfigError(f"--spinning takes on, off or default, got {text!r}")
    return table[text]


def _opt(*names: str, help: str) -> Any:  # noqa: A002 - typer's own keyword
    return typer.Option(*names, help=help)


# The options, one line each (defaults come from BenchConfig in the signature below).
Provider = Annotated[str, _opt("--provider", "-p", help=f"{' | '.join(EP_NAMES)} (an "
                                "unavailable one is an error, never a fallback).")]
Precision = Annotated[str, _opt("--precision", help="Variants to time, comma-separated "
                                "(default: every variant in the bundle).")]
Batch = Annotated[str, _opt("--batch", "-b", help="Batch sizes, comma-separated.")]
IoBinding = Annotated[bool, _opt("--io-binding", help="GPU providers: inputs and output on the "
                                 "device.")]
CudaGraph = Annotated[bool, _opt("--cuda-graph", help="GPU providers: capture and replay a CUDA "
                                 "graph (implies --io-binding; one session per batch size).")]
Peers = Annotated[str, _opt("--peers", help="Peers in the same run: torch, torch-compile, "
                            "ort-default, openvino, ort-plain, openvino-plain (the *-plain ones "
                            "run the export without graph rewrites), or none.")]
Threads = Annotated[int, _opt("--threads", help="Thread budget of every contender (0: usable "
                              "cores).")]
Spinning = Annotated[str, _opt("--spinning", help="ORT intra-op spin-wait: on, off or default.")]
Tune = Annotated[bool, _opt("--tune", help="CPU: also time fp32 with threads {1, N} x spinning "
                            "{on, off}; the table shows the best.")]
WarmupIters = Annotated[int, _opt("--warmup-iters", help="Untimed calls before timing (at "
                                  "least).")]
WarmupS = Annotated[float, _opt("--warmup-s", help="Untimed seconds before timing (at least).")]
Iters = Annotated[int | None, _opt("--iters", help="Timed calls per contender and batch "
                                   "(instead of --duration).")]
Duration = Annotated[float | None, _opt("--duration", help=f"Timed seconds per contender and "
                                        f"batch (offline, default {B.duration_s:g}) or of "
                                        f"Poisson arrivals (server, default "
                                        f"{B.server_duration_s:g}).")]
Rounds = Annotated[int, _opt("--rounds", help="Interleaved blocks per contender.")]
Scenario = Annotated[str, _opt("--scenario", help="offline | server.")]
Qps = Annotated[float, _opt("--qps", help="Server: offered queries per second.")]
Workers = Annotated[int, _opt("--workers", help="Server: worker threads (0: one per thread).")]
MaxBatch = Annotated[int, _opt("--max-batch", help="Server: dynamic batching up to this many "
                               "requests (> 1: the batch-1 server runs too, for comparison).")]
MaxDelay = Annotated[float, _opt("--max-delay-ms", help="Server: how long a batch waits for "
                                 "more requests (Triton's max queue delay).")]
P99Bound = Annotated[float | None, _opt("--p99-bound-ms", help="Server: sweep for the highest "
                                        "QPS whose p99 stays under this bound.")]
SweepSteps = Annotated[int, _opt("--sweep-steps", help="Server with --p99-bound-ms: runs of the "
                                 "QPS sweep.")]
Matmul = Annotated[bool, _opt("--matmul/--no-matmul", help="Measure the machine's dense fp32 "
                              "matmul rate (the efficiency yardstick, about 2 s, then again "
                              "between rounds).")]
NoiseWindow = Annotated[float, _opt("--noise-window", help="Idle seconds before and after the "
                                    "run in which other processes' CPU use is read (0: skip).")]
EvalReport = Annotated[Path | None, _opt("--eval-report", help="JSON of `edgegen eval` for the "
                                         "fidelity column and the int8-fidelity target "
                                         "(default: the bundle's manifest).")]
Url = Annotated[list[str] | None, _opt("--url", help="Measure a KServe v2 endpoint (edgegen "
                                       "serve, Triton, KServe), e.g. http://127.0.0.1:8000; "
                                       "with BUNDLE, beside the in-process session. Repeat it "
                                       "to measure several in one run (server scenario).")]
Model = Annotated[str | None, _opt("--model", help="--url: the model name (default: the bundle "
                                   "folder's name, or the only model the server lists).")]
HttpTensors = Annotated[str, _opt("--http-tensors", help="--url: binary (the v2 binary tensor "
                                  "extension) or json.")]
Connections = Annotated[int, _opt("--connections", help="--url, server scenario: concurrent "
                                  "keep-alive connections.")]
Targets = Annotated[str, _opt("--target", help="Gate on performance targets, comma-separated "
                              "(e.g. torch-throughput,batch1-latency, or all): exit 1 when one "
                              "is not met or not measured; a noisy run leaves them not judged "
                              "(said, not failed).")]
JsonOut = Annotated[Path | None, _opt("--json", help="Write the full report as JSON.")]
Plot = Annotated[Path | None, _opt("--plot", help="Write latency/throughput plots (PNG).")]
FromJson = Annotated[list[Path] | None, _opt("--from-json", help="Measure nothing: show saved "
                                            "reports side by side (repeat it; `edgegen bench "
                                            "--json` or a device's `edgegen-runtime bench "
                                            "--json`).")]
BundleArg = Annotated[Path | None, typer.Argument(help="Bundle folder made by `edgegen export` "
                                                       "(optional with --url).")]


def bench_command(
    bundle: BundleArg = None, provider: Provider = B.provider,
    precision: Precision = ",".join(B.precisions),
    batch: Batch = ",".join(map(str, B.batches)), io_binding: IoBinding = B.io_binding,
    cuda_graph: CudaGraph = B.cuda_graph, peers: Peers = ",".join(B.peers),
    threads: Threads = B.threads, spinning: Spinning = "default", tune: Tune = B.tune,
    warmup_iters: WarmupIters = B.warmup_iters, warmup_s: WarmupS = B.warmup_s,
    iters: Iters = None, duration: Duration = None, rounds: Rounds = B.rounds,
    scenario: Scenario = B.scenario, qps: Qps = B.qps, workers: Workers = B.workers,
    max_batch: MaxBatch = B.max_batch, max_delay_ms: MaxDelay = B.max_delay_ms,
    p99_bound_ms: P99Bound = None, sweep_steps: SweepSteps = B.sweep_steps,
    matmul: Matmul = B.measure_matmul, noise_window: NoiseWindow = B.noise_window_s,
    eval_report: EvalReport = None, url: Url = None, model: Model = None,
    http_tensors: HttpTensors = B.http_tensors, connections: Connections = B.connections,
    target: Targets = "", json_out: JsonOut = None, plot: Plot = None,
    from_json: FromJson = None,
) -> None:
    """Time the bundle per variant, provider and batch size, with its peers in the same run;
    or, with --url, a served endpoint beside the in-process session."""
    if from_json:
        with errors_to_exit():
            from edgegen.benchmarks.results import load_report

            render_saved([load_report(p) for p in from_json], from_json)
        return
    with errors_to_exit():
        _check_paths(json_out, plot, eval_report)
        cfg = _config(locals())
        from edgegen.benchmarks.bench import bench

        with progress_display("bench") as shown:
            report = bench(cfg, shown)
        render(report)
        _write(report, json_out, plot)
        _gate(report)


def _check_paths(json_out: Path | None, plot: Path | None, eval_report: Path | None) -> None:
    """Outputs writable and the eval report present, before anything is timed."""
    for path, option in ((json_out, "--json"), (plot, "--plot")):
        if path is not None:
            check_output_file(path, option)
    if eval_report is not None and not eval_report.is_file():
        raise ConfigError(f"--eval-report {eval_report} is not a file; pass the --json "
                          "output of `edgegen eval`")


def _config(a: dict[str, Any]) -> BenchConfig:
    """The command's arguments (its ``locals()``) as a ``BenchConfig``."""
    duration = a["duration"]
    timed = {} if duration is None else \
        {"duration_s" if a["scenario"] == "offline" else "server_duration_s": duration}
    urls = a["url"] or []
    url = None if not urls else urls[0] if len(urls) == 1 else tuple(urls)
    if a["bundle"] is None and url is None:
        raise ConfigError("give a BUNDLE folder, a --url to measure, or both")
    return BenchConfig(
        bundle=a["bundle"], provider=a["provider"].lower(),
        precisions=_names(a["precision"], "--precision"),
        batches=csv_option(a["batch"], "--batch", int), io_binding=a["io_binding"],
        cuda_graph=a["cuda_graph"], peers=_names(a["peers"], "--peers"), threads=a["threads"],
        spinning=_spinning(a["spinning"]), tune=a["tune"], warmup_iters=a["warmup_iters"],
        warmup_s=a["warmup_s"], iters=a["iters"], rounds=a["rounds"], scenario=a["scenario"],
        qps=a["qps"], workers=a["workers"], max_batch=a["max_batch"],
        max_delay_ms=a["max_delay_ms"], p99_bound_ms=a["p99_bound_ms"],
        sweep_steps=a["sweep_steps"], eval_report=a["eval_report"],
        measure_matmul=a["matmul"], noise_window_s=a["noise_window"], url=url,
        model=a["model"], http_tensors=a["http_tensors"].lower(),
        connections=a["connections"], targets=_names(a["target"], "--target"), **timed)


def _write(report: BenchReport, json_out: Path | None, plot: Path | None) -> None:
    """The JSON report and the plot, where asked for."""
    if json_out is not None:
        save_report(json_out, report.to_json() + "\n")
        console.print(f"report: {json_out}")
    if plot is None or not report.results:
        return
    from edgegen.benchmarks.plot import plot_report

    try:
        console.print(f"plot: {plot_report(report, plot)}")
    except OSError as exc:
        raise OutputError(f"could not write the plot to {plot} ({exc.strerror or exc}); the "
                          "JSON report is printed below",
                          text=None if json_out else report.to_json()) from None


def _gate(report: BenchReport) -> None:
    """Exit 1 for a contender that failed (a failed benchmark, not a quiet row) or a target
    asked for that was missed; a target the noise left unjudged passes, and is said."""
    if report.failures or not (report.results or report.server):
        failed = ", ".join(report.failures) or "nothing was measured"
        err_console.print(f"[bold red]bench failed:[/] {escape(failed)}", highlight=False)
        raise typer.Exit(1)
    missed = [t for t in report.targets if t.misses]
    if missed:
        raise CheckFailed(f"{len(missed)} target(s) missed: " + "; ".join(
            f"{t.name} {t.verdict} ({t.detail})" for t in missed))


def render_saved(reports: list[BenchReport], paths: list[Path]) -> None:
    """Saved reports side by side (a device beside the workstation): p50, p99 and img/s per
    (contender, variant, batch), and each report's p50 against the first one's."""
    for i, (r, path) in enumerate(zip(reports, paths), 1):
        m = r.machine
        ort = r.versions.get("onnxruntime") or r.versions.get("onnxruntime-node")
        load = ", ".join(f"{x:.1f}" for x in m.get("load_average") or [])
        console.print(f"[{i}] {path}: {r.source} · {m.get('cpu')} · {m.get('usable_cores')} "
                      f"cores · onnxruntime {ort} · load {load}"
                      + (" · NOISY" if r.noise and r.noise.noisy else ""), highlight=False,
                      soft_wrap=True)
    rows = [{(x.contender, x.variant, x.batch): x.latency for x in r.results} for r in reports]
    table = Table(title="saved bench reports side by side")
    for col in ("contender", "variant", "batch", "report", "p50 ms", "p99 ms", "img/s",
                "p50 × [1]"):
        table.add_column(col, justify="left" if col in ("contender", "variant") else "right",
                         no_wrap=True)
    for key in dict.fromkeys(k for r in rows for k in r):
        first = rows[0].get(key)
        for i, r in enumerate(rows, 1):
            lat = r.get(key)
            ratio = first.p50_ms / lat.p50_ms if first and lat and i > 1 else None
            table.add_row(key[0] if i == 1 else "", key[1] if i == 1 else "",
                          str(key[2]) if i == 1 else "", f"[{i}]",
                          _f(lat and lat.p50_ms, ".3f"), _f(lat and lat.p99_ms, ".3f"),
                          _f(lat and lat.images_per_s, ",.0f"), _f(ratio, ".2f"))
    console.print(table)
    console.print("p50 × [1]: report 1's p50 ÷ this report's (above 1: faster than [1]). "
                  "Numbers from different machines or loads compare only as well as their "
                  "noise verdicts allow.", highlight=False)


def _f(x: float | None, fmt: str, empty: str = "—") -> str:
    return empty if x is None else format(x, fmt)


def render(report: BenchReport) -> None:
    """The terminal tables and the lines that say what the numbers mean."""
    m, t = report.machine, report.threads
    console.print(f"{m['cpu']} · {m['usable_cores']} usable cores · {t['budget']} threads · "
                  f"load {', '.join(f'{x:.1f}' for x in m.get('load_average') or [])}",
                  highlight=False)
    if report.results:
        table = Table(title=f"edgegen bench {report.bundle} ({report.provider})")
        for col in ("variant", "provider", "batch", "p50 ms", "p99 ms", "img/s", "× torch",
                    "label fidelity"):
            table.add_column(col, justify="left" if col in ("variant", "provider") else "right",
                             no_wrap=col in ("variant", "provider"))
        for r in report.table_rows():
            table.add_row(r.variant, r.label, str(r.batch), f"{r.latency.p50_ms:.3f}",
                          f"{r.latency.p99_ms:.3f}", f"{r.latency.images_per_s:,.0f}",
                          _f(r.speedup_p50, ".2f") + ("×" if r.speedup_p50 else ""),
                          _f(r.fidelity, ".1%"))
        console.print(table)
        console.print("× torch: PyTorch eager p50 ÷ this p50 at the same batch, measured in the "
                      "same interleaved run; fidelity is the variant's (bundle manifest or "
                      "eval report)." + (" * best of the --tune grid (threads x spinning) "
                                         "at that batch; all of them are in --json."
                                         if any(r.best_tuned for r in report.results) else ""),
                      highlight=False)
    _efficiency(report)
    if report.server:
        local = [s for s in report.server if s.contender != "served"]
        served = [s for s in report.server if s.contender == "served"]
        how = [f"{t.get('server_workers')} workers × {t.get('server_intra_op_threads')} "
               "threads in-process"] if local else []
        how += [f"{served[0].workers} HTTP connections to the endpoint"] if served else []
        table = Table(title=f"server scenario (Poisson arrivals; {'; '.join(how)})")
        for col in ("variant", "contender", "batch/delay", "offered QPS", "achieved QPS",
                    "p50 ms", "p99 ms", "unfinished", "503", "failed", "mean batch",
                    "client CPU"):
            table.add_column(col, justify="left" if col in ("variant", "contender") else "right")
        for s in report.server:
            table.add_row(s.variant, s.contender, f"{s.max_batch}/{s.max_delay_ms:g} ms",
                          f"{s.target_qps:,.0f}", f"{s.achieved_qps:,.0f}", _f(s.p50_ms, ".3f"),
                          _f(s.p99_ms, ".3f"), str(s.unfinished), str(s.rejected),
                          str(s.failed),
                          "—" if s.contender == "served" else f"{s.mean_batch:.2f}",
                          _f(s.client_cpu_share, ".0%"))
        console.print(table)
        for key, sw in report.sweeps.items():
            best = "none" if sw.best_qps is None else f"{sw.best_qps:,.0f} QPS"
            console.print(f"{key}: highest offered QPS with p99 ≤ {sw.p99_bound_ms:g} ms: "
                          f"{best} ({len(sw.trials)} runs)", highlight=False)
        for s in report.server:
            for e in s.errors[:2]:
                err_console.print(f"[yellow]{s.contender}:[/] {escape(e)}", highlight=False)
    _served(report)
    _noise(report)
    _targets(report)
    for name, why in report.unavailable.items():
        console.print(f"{name}: {why}", highlight=False)
    for key, msg in report.failures.items():
        err_console.print(f"[yellow]failed:[/] {key}: {msg}", highlight=False)
    for note in report.notes:
        console.print(f"note: {note}", highlight=False)


def _served(report: BenchReport) -> None:
    """The endpoint next to the in-process session: what HTTP and serialization cost."""
    info = report.served
    if not info:
        return
    for e in info.get("endpoints", [info]):
        console.print(f"endpoint: {e['url']} model {e['model']} ({e.get('platform')}, "
                      f"{e['tensors']} tensors)", highlight=False)
    if any(s.client_cpu_share is not None for s in report.server):
        console.print("client CPU: this process's own CPU (the Python load generator) over "
                      "the run, as a share of the usable cores; on the server's machine it is "
                      "taken from the server", highlight=False)
    for row in info.get("comparison", []):
        ratio = _f(row.get("ratio"), ".0%")
        if "batch" in row:
            console.print(f"  batch {row['batch']}: served {row['served_img_s']:,.0f} img/s "
                          f"(p50 {row['served_p50_ms']:.3f} ms) vs in-process "
                          f"{_f(row['in_process_img_s'], ',.0f')} img/s "
                          f"(p50 {_f(row['in_process_p50_ms'], '.3f')} ms): {ratio}",
                          highlight=False)
        else:
            console.print(f"  p99 ≤ {row['p99_bound_ms']:g} ms: served "
                          f"{_f(row['served_best_qps'], ',.0f')} QPS vs in-process "
                          f"{_f(row['in_process_best_qps'], ',.0f')} QPS (same batching): "
                          f"{ratio}", highlight=False)


def _efficiency(report: BenchReport) -> None:
    mm = report.matmul
    per_image = report.flops.get("per_image")
    if not report.results or not per_image:
        return
    line = f"generator: {per_image / 1e6:.2f} MFLOP per image (dense ops, from the graph)"
    if mm is not None:
        ours = [r for r in report.results if r.contender in ("edgegen", "tuned")]
        best = max(ours, key=lambda r: r.latency.images_per_s, default=None)
        line += (f"; machine: {mm.gflops:.0f} GFLOP/s dense fp32 matmul ({mm.library}, "
                 f"{mm.threads} threads)")
        if best is not None and best.matmul_fraction is not None:
            line += (f"; best edgegen: {best.achieved_gflops:.1f} GFLOP/s = "
                     f"{best.matmul_fraction:.0%} of it ({best.variant} {best.label}, "
                     f"batch {best.batch})")
    console.print(line, highlight=False, soft_wrap=True)
    created = [r for r in report.results if r.contender == "edgegen"]
    if created:
        worst_first = max(created, key=lambda r: r.first_run_s)
        console.print(f"outside the timed region: session creation "
                      f"{min(r.session_create_s for r in created) * 1e3:.0f}–"
                      f"{max(r.session_create_s for r in created) * 1e3:.0f} ms; first run "
                      f"(engine build / graph capture / lazy init) up to "
                      f"{worst_first.first_run_s * 1e3:.0f} ms ({worst_first.variant}, batch "
                      f"{worst_first.batch})", highlight=False, soft_wrap=True)


def _noise(report: BenchReport) -> None:
    """One line on how quiet the machine was; the verdict when it was not."""
    rec = report.noise
    if rec is None or not rec.samples:
        return
    s = rec.summary
    parts = []
    if s.get("others_max") is not None:
        parts.append(f"other processes ≤ {s['others_max']:.0%} of the CPU")
    if s.get("steal_max") is not None:
        parts.append(f"steal ≤ {s['steal_max']:.1%}")
    if s.get("yardstick_gflops"):
        lo, hi = s["yardstick_gflops"]
        parts.append(f"matmul yardstick {lo:.0f}–{hi:.0f} GFLOP/s")
    if s.get("load_average_first"):
        parts.append("load " + " → ".join(
            f"{x[0]:.1f}" for x in (s["load_average_first"], s["load_average_last"]) if x))
    verdict = ("[bold yellow]NOISY[/] — do not read targets off this run: "
               + escape("; ".join(rec.reasons))) if rec.noisy else "quiet enough to judge"
    console.print(f"machine noise: {', '.join(parts)}: {verdict}", highlight=False)


def _targets(report: BenchReport) -> None:
    """--target: each target asked for, its measured value and verdict."""
    if not report.targets:
        return
    table = Table(title="targets")
    for col in ("target", "measured", "verdict"):
        table.add_column(col, justify="left")
    colour = {"met": "green", "not met": "red", "not measured": "red",
              "not judged (noise)": "yellow"}
    for t in report.targets:
        table.add_row(f"{t.name}: {escape(t.title)}", escape(t.detail),
                      f"[{colour[t.verdict]}]{t.verdict.upper()}[/]")
    console.print(table)
    for t in report.targets:
        if t.reason:
            console.print(f"why {t.name} is not met (measured): {t.reason}", highlight=False,
                          markup=False, soft_wrap=True)
    if any(t.verdict == "not judged (noise)" for t in report.targets):
        console.print("not judged (noise): the machine was too busy to judge a speed target; "
                      "the gate does not fail on it — rerun on a quiet machine", highlight=False,
                      soft_wrap=True)


def register(app: typer.Typer) -> None:
    """Add the command to ``app``."""
    app.command("bench")(bench_command)
