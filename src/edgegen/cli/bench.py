"""``edgegen bench``: latency and throughput per variant, provider and batch, beside the peers."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from edgegen.benchmarks.results import BenchConfig, BenchReport, SavedReport
from edgegen.cli.common import console, csv_option, err_console, errors_to_exit, progress_display
from edgegen.core.errors import ConfigError, OutputError
from edgegen.core.fileio import check_output_file, save_report

B = BenchConfig()


def _names(text: str, option: str) -> tuple[str, ...]:
    """Comma-separated names; ``none`` (like an empty value) means no names at all."""
    return () if text.strip().lower() == "none" else csv_option(text, option)


def _spinning(text: str) -> bool | None:
    table = {"default": None, "on": True, "off": False}
    if text not in table:
        raise ConfigError(f"--spinning takes on, off or default, got {text!r}")
    return table[text]


def bench_command(
    bundle: Path = typer.Argument(None, help="Bundle folder made by `edgegen export` "
                                             "(optional with --url)."),
    provider: str = typer.Option(B.provider, "--provider", "-p",
                                 help="cpu | cuda | tensorrt | openvino (an unavailable one is an "
                                      "error, never a fallback)."),
    precision: str = typer.Option(",".join(B.precisions), "--precision",
                                  help="Variants to time, comma-separated (default: every "
                                       "variant in the bundle)."),
    batch: str = typer.Option(",".join(map(str, B.batches)), "--batch", "-b",
                              help="Batch sizes, comma-separated."),
    io_binding: bool = typer.Option(B.io_binding, "--io-binding",
                                    help="CUDA/TensorRT: inputs and output on the device."),
    cuda_graph: bool = typer.Option(B.cuda_graph, "--cuda-graph",
                                    help="CUDA: capture and replay a CUDA graph (implies "
                                         "--io-binding; one session per batch size)."),
    peers: str = typer.Option(",".join(B.peers), "--peers",
                              help="Peers in the same run: torch, torch-compile, ort-default, "
                                   "openvino, ort-plain, openvino-plain (the *-plain ones run "
                                   "the export without graph rewrites), or none."),
    threads: int = typer.Option(B.threads, "--threads",
                                help="Thread budget of every contender (0: usable cores)."),
    spinning: str = typer.Option("default", "--spinning",
                                 help="ORT intra-op spin-wait: on, off or default."),
    tune: bool = typer.Option(B.tune, "--tune",
                              help="CPU: also time fp32 with threads {1, N} x spinning "
                                   "{on, off}; the table shows the best."),
    warmup_iters: int = typer.Option(B.warmup_iters, "--warmup-iters",
                                     help="Untimed calls before timing (at least)."),
    warmup_s: float = typer.Option(B.warmup_s, "--warmup-s",
                                   help="Untimed seconds before timing (at least)."),
    iters: int = typer.Option(None, "--iters",
                              help="Timed calls per contender and batch (instead of "
                                   "--duration)."),
    duration: float = typer.Option(None, "--duration",
                                   help=f"Timed seconds per contender and batch (offline, "
                                        f"default {B.duration_s:g}) or of Poisson arrivals "
                                        f"(server, default {B.server_duration_s:g})."),
    rounds: int = typer.Option(B.rounds, "--rounds",
                               help="Interleaved blocks per contender."),
    scenario: str = typer.Option(B.scenario, "--scenario", help="offline | server."),
    qps: float = typer.Option(B.qps, "--qps", help="Server: offered queries per second."),
    workers: int = typer.Option(B.workers, "--workers",
                                help="Server: worker threads (0: one per thread)."),
    max_batch: int = typer.Option(B.max_batch, "--max-batch",
                                  help="Server: dynamic batching up to this many requests "
                                       "(> 1: the batch-1 server runs too, for comparison)."),
    max_delay_ms: float = typer.Option(B.max_delay_ms, "--max-delay-ms",
                                       help="Server: how long a batch waits for more "
                                            "requests (Triton's max queue delay)."),
    p99_bound_ms: float = typer.Option(None, "--p99-bound-ms",
                                       help="Server: sweep for the highest QPS whose p99 "
                                            "stays under this bound."),
    sweep_steps: int = typer.Option(B.sweep_steps, "--sweep-steps",
                                    help="Server with --p99-bound-ms: runs of the QPS sweep."),
    matmul: bool = typer.Option(B.measure_matmul, "--matmul/--no-matmul",
                                help="Measure the machine's dense fp32 matmul rate (the "
                                     "efficiency yardstick, about 2 s, then again between "
                                     "rounds)."),
    noise_window: float = typer.Option(B.noise_window_s, "--noise-window",
                                       help="Idle seconds before and after the run in which "
                                            "other processes' CPU use is read (0: skip)."),
    eval_report: Path = typer.Option(None, "--eval-report",
                                     help="JSON of `edgegen eval` for the fidelity column "
                                          "(default: the bundle's manifest)."),
    url: str = typer.Option(None, "--url",
                            help="Measure a KServe v2 endpoint (edgegen serve, Triton, "
                                 "KServe), e.g. http://127.0.0.1:8000; with BUNDLE, beside the "
                                 "in-process session."),
    model: str = typer.Option(None, "--model",
                              help="--url: the model name (default: the bundle folder's name, "
                                   "or the only model the server lists)."),
    http_tensors: str = typer.Option(B.http_tensors, "--http-tensors",
                                     help="--url: binary (the v2 binary tensor extension) or "
                                          "json."),
    connections: int = typer.Option(B.connections, "--connections",
                                    help="--url, server scenario: concurrent keep-alive "
                                         "connections."),
    json_out: Path = typer.Option(None, "--json", help="Write the full report as JSON."),
    from_json: list[Path] = typer.Option(None, "--from-json",
                                         help="Measure nothing: show saved reports side by side "
                                              "(repeat it; `edgegen bench --json` or a device's "
                                              "`edgegen-runtime bench --json`)."),
    plot: Path = typer.Option(None, "--plot", help="Write latency/throughput plots (PNG)."),
) -> None:
    """Time the bundle per variant, provider and batch size, with its peers in the same run;
    or, with --url, a served endpoint beside the in-process session."""
    if from_json:
        with errors_to_exit():
            from edgegen.benchmarks.results import read_report

            render_saved([read_report(p) for p in from_json])
        return
    with errors_to_exit():
        for path, option in ((json_out, "--json"), (plot, "--plot")):
            if path is not None:  # before anything is timed
                check_output_file(path, option)
        if eval_report is not None and not eval_report.is_file():
            raise ConfigError(f"--eval-report {eval_report} is not a file; pass the --json "
                              "output of `edgegen eval`")
        timed = {"duration_s": duration} if scenario == "offline" and duration is not None \
            else {"server_duration_s": duration} if duration is not None else {}
        if bundle is None and url is None:
            raise ConfigError("give a BUNDLE folder, a --url to measure, or both")
        cfg = BenchConfig(
            bundle=bundle, provider=provider.lower(),
            precisions=_names(precision, "--precision"),
            batches=csv_option(batch, "--batch", int), io_binding=io_binding,
            cuda_graph=cuda_graph, peers=_names(peers, "--peers"), threads=threads,
            spinning=_spinning(spinning), tune=tune,
            warmup_iters=warmup_iters, warmup_s=warmup_s, iters=iters, rounds=rounds,
            scenario=scenario, qps=qps, workers=workers, max_batch=max_batch,
            max_delay_ms=max_delay_ms, p99_bound_ms=p99_bound_ms, sweep_steps=sweep_steps,
            eval_report=eval_report,
            measure_matmul=matmul, noise_window_s=noise_window, url=url, model=model,
            http_tensors=http_tensors.lower(), connections=connections, **timed)
        from edgegen.benchmarks.bench import bench

        with progress_display("bench") as shown:
            report = bench(cfg, shown)
        render(report)
        if json_out is not None:
            save_report(json_out, report.to_json() + "\n")
            console.print(f"report: {json_out}")
        if plot is not None and report.results:
            from edgegen.benchmarks.plot import plot_report

            try:
                console.print(f"plot: {plot_report(report, plot)}")
            except OSError as exc:
                raise OutputError(f"could not write the plot to {plot} "
                                  f"({exc.strerror or exc}); the JSON report is printed below",
                                  text=None if json_out else report.to_json()) from None
    if not report.passed:  # a contender that failed is a failed benchmark, not a quiet row
        failed = ", ".join(report.failures) or "nothing was measured"
        err_console.print(f"[bold red]bench failed:[/] {escape(failed)}", highlight=False)
        raise typer.Exit(1)


def render_saved(reports: list[SavedReport]) -> None:
    """Saved reports side by side (a device beside the workstation): p50, p99 and img/s per
    (contender, variant, batch), and each report's p50 against the first one's."""
    for i, r in enumerate(reports, 1):
        m = r.machine
        ort = r.versions.get("onnxruntime") or r.versions.get("onnxruntime-node")
        load = ", ".join(f"{x:.1f}" for x in m.get("load_average") or [])
        console.print(f"[{i}] {r.path}: {r.source} · {m.get('cpu')} · {m.get('usable_cores')} "
                      f"cores · onnxruntime {ort} · load {load}"
                      + (" · NOISY" if r.noisy else ""), highlight=False, soft_wrap=True)
    table = Table(title="saved bench reports side by side")
    for col in ("contender", "variant", "batch", "report", "p50 ms", "p99 ms", "img/s",
                "p50 × [1]"):
        table.add_column(col, justify="left" if col in ("contender", "variant") else "right",
                         no_wrap=True)
    for key in dict.fromkeys(k for r in reports for k in r.rows):
        first = reports[0].rows.get(key)
        for i, r in enumerate(reports, 1):
            lat = r.rows.get(key)
            ratio = first["p50_ms"] / lat["p50_ms"] if first and lat and i > 1 else None
            table.add_row(key[0] if i == 1 else "", key[1] if i == 1 else "",
                          str(key[2]) if i == 1 else "", f"[{i}]",
                          _f(lat and lat["p50_ms"], ".3f"), _f(lat and lat["p99_ms"], ".3f"),
                          _f(lat and lat["images_per_s"], ",.0f"), _f(ratio, ".2f"))
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
                    "p50 ms", "p99 ms", "unfinished", "503", "failed", "mean batch"):
            table.add_column(col, justify="left" if col in ("variant", "contender") else "right")
        for s in report.server:
            table.add_row(s.variant, s.contender, f"{s.max_batch}/{s.max_delay_ms:g} ms",
                          f"{s.target_qps:,.0f}", f"{s.achieved_qps:,.0f}", _f(s.p50_ms, ".3f"),
                          _f(s.p99_ms, ".3f"), str(s.unfinished), str(s.rejected),
                          str(s.failed),
                          "—" if s.contender == "served" else f"{s.mean_batch:.2f}")
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
    console.print(f"endpoint: {info['url']} model {info['model']} ({info.get('platform')}, "
                  f"{info['tensors']} tensors)", highlight=False)
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


def register(app: typer.Typer) -> None:
    """Add the command to ``app``."""
    app.command("bench")(bench_command)
