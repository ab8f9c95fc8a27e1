"""Latency and throughput against batch size, one line per contender (matplotlib, Agg)."""

from __future__ import annotations

from pathlib import Path

from edgegen.benchmarks.results import BenchReport
from edgegen.runtime.fileio import atomic_file


def plot_report(report: BenchReport, path: str | Path) -> Path:
    """Write a two-panel PNG (p50 latency with p99 whiskers; throughput) and return its path."""
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lines: dict[str, list] = {}
    for r in report.table_rows():  # the best tuned config may differ per batch: one line
        name = f"{r.variant} cpu best tuned" if r.contender == "tuned" \
            else f"{r.variant} {r.label}"
        lines.setdefault(name, []).append(r)
    fig, (ax_lat, ax_tp) = plt.subplots(1, 2, figsize=(12, 4.8))
    for name, rows in lines.items():
        rows.sort(key=lambda r: r.batch)
        b = [r.batch for r in rows]
        p50 = [r.latency.p50_ms for r in rows]
        p99 = [r.latency.p99_ms for r in rows]
        style = "--" if not r_is_ours(rows[0].contender) else "-"
        line, = ax_lat.plot(b, p50, style, marker="o", label=name)
        ax_lat.vlines(b, p50, p99, colors=line.get_color(), alpha=0.4)
        ax_tp.plot(b, [r.latency.images_per_s for r in rows], style, marker="o", label=name,
                   color=line.get_color())
    batches = sorted({r.batch for r in report.table_rows()})
    for ax, title, unit in ((ax_lat, "latency per call (p50, line to p99)", "ms"),
                            (ax_tp, "throughput", "images / s")):
        ax.set_xscale("log", base=2)
        ax.set_xticks(batches, [str(b) for b in batches])
        ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
        ax.set_yscale("log")
        ax.set_xlabel("batch size")
        ax.set_ylabel(unit)
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
    ax_tp.legend(fontsize=7, loc="best")
    m = report.machine
    fig.suptitle(f"edgegen bench {report.bundle} — {report.provider} — {m.get('cpu')} "
                 f"({m.get('usable_cores')} cores, {report.threads.get('budget')} threads)",
                 fontsize=9)
    fig.tight_layout()
    path = Path(path)
    with atomic_file(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return path


def r_is_ours(contender: str) -> bool:
    """edgegen's own configurations are solid lines; peers are dashed."""
    return contender in ("edgegen", "tuned")
