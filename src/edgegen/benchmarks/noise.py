"""How quiet the machine was while a benchmark ran, measured rather than assumed.

A snapshot reads the kernel's CPU accounting (``/proc/stat``: busy and stolen jiffies of the
whole machine), this process's own CPU time (``getrusage``, every thread), the load average and,
where readable, the cores' clock (``scaling_cur_freq``, else ``cpu MHz`` in ``/proc/cpuinfo``).
Between two snapshots:

* ``others`` — the share of the machine's CPU capacity that *other* processes used:
  ``(busy - own) / (cores * seconds)``. This is the noise that matters: a load average counts the
  benchmark's own threads too (2 on a 2-core machine running a 2-thread benchmark), so it is
  recorded but never judged;
* ``steal`` — the share the hypervisor gave to other virtual machines;
* the clock's spread (throttling shows there);
* and, between contender blocks, the dense-matmul yardstick measured again (``matmul_gflops``):
  if the machine is steady, it reads the same every time.

``NoiseRecord.judge`` applies the thresholds below; a noisy record makes ``edgegen bench`` say so
and ``benchmarks/scripts/run_benchmarks.py`` refuse to mark a target met or not met.
"""

from __future__ import annotations

import datetime as _dt
import os
import resource
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# The thresholds of "too noisy to judge" (documented in README and BENCHMARKS.md).
MAX_OTHERS = 0.10  # other processes used more than 10% of the machine's CPU capacity
MAX_STEAL = 0.02  # the hypervisor took more than 2% of the CPU time
MAX_YARDSTICK_SPREAD = 0.15  # the interleaved matmul yardstick varied by more than 15%
MAX_FREQ_SPREAD = 0.10  # the cores' clock varied by more than 10%
THRESHOLDS = {"others": MAX_OTHERS, "steal": MAX_STEAL, "yardstick_spread": MAX_YARDSTICK_SPREAD,
              "freq_spread": MAX_FREQ_SPREAD}


@dataclass(frozen=True)
class Snapshot:
    t: float  # time.perf_counter()
    busy: int | None  # jiffies of every CPU: user + nice + system + irq + softirq
    steal: int | None
    total: int | None  # busy + idle + iowait + steal
    cpus: int
    own_s: float  # this process's user + system CPU seconds, all threads
    load: list[float] | None
    freq_mhz: list[float] | None


def _proc_stat() -> tuple[int, int, int, int] | None:
    try:
        lines = Path("/proc/stat").read_text().splitlines()
    except OSError:
        return None
    cpus = sum(1 for ln in lines if ln.startswith("cpu") and ln[3:4].isdigit())
    v = [int(x) for x in lines[0].split()[1:]]  # user nice system idle iowait irq softirq steal
    v += [0] * (8 - len(v))
    busy = v[0] + v[1] + v[2] + v[5] + v[6]
    return busy, v[7], busy + v[3] + v[4] + v[7], cpus


def clock_mhz() -> list[float] | None:
    """Current clock of each core in MHz, where the kernel exposes it."""
    freqs = sorted(Path("/sys/devices/system/cpu").glob("cpu[0-9]*/cpufreq/scaling_cur_freq"))
    try:
        if freqs:
            return [int(p.read_text()) / 1000 for p in freqs]
        text = Path("/proc/cpuinfo").read_text()
    except (OSError, ValueError):
        return None
    mhz = [float(ln.split(":")[1]) for ln in text.splitlines() if ln.startswith("cpu MHz")]
    return mhz or None


def snapshot() -> Snapshot:
    stat = _proc_stat()
    use = resource.getrusage(resource.RUSAGE_SELF)
    return Snapshot(
        t=time.perf_counter(), busy=stat[0] if stat else None, steal=stat[1] if stat else None,
        total=stat[2] if stat else None, cpus=stat[3] if stat else (os.cpu_count() or 1),
        own_s=use.ru_utime + use.ru_stime,
        load=list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        freq_mhz=clock_mhz())


@dataclass
class NoiseSample:
    """The machine between two snapshots (``label`` says when: before, batch 64 round 2...)."""

    label: str
    seconds: float
    others: float | None  # share of the machine's CPU capacity used by other processes
    steal: float | None
    load_average: list[float] | None  # at the end of the interval (1, 5, 15 minutes)
    freq_mhz: dict[str, float] | None  # min / mean / max over the cores, at the end
    matmul_gflops: float | None = None  # the yardstick measured right after the interval
    idle: bool = False  # a window where this run did nothing (``NoiseProbe.idle``)


def interval(label: str, a: Snapshot, b: Snapshot) -> NoiseSample:
    seconds = max(b.t - a.t, 1e-9)
    hz = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    others = steal = None
    if a.busy is not None and b.busy is not None and b.total is not None and a.total is not None:
        capacity = (b.total - a.total) / hz or seconds * b.cpus
        others = max(0.0, ((b.busy - a.busy) / hz - (b.own_s - a.own_s)) / capacity)
        steal = (b.steal - a.steal) / hz / capacity if b.steal is not None and a.steal is not None \
            else None
    f = b.freq_mhz
    return NoiseSample(label, seconds, others, steal, b.load,
                       {"min": min(f), "mean": sum(f) / len(f), "max": max(f)} if f else None)


@dataclass
class NoiseRecord:
    """Every interval of one benchmark run and the verdict."""

    samples: list[NoiseSample] = field(default_factory=list)
    thresholds: dict[str, float] = field(default_factory=lambda: dict(THRESHOLDS))
    started: str = field(default_factory=lambda: _dt.datetime.now(_dt.UTC)
                         .isoformat(timespec="seconds"))
    # The endpoint under test runs on this machine (``bench --url`` on a loopback address): its
    # CPU time is the measurement, not noise, yet it counts as other processes' time. Then
    # ``others`` is judged only in the idle windows, when the server has nothing to do.
    server_on_this_machine: bool = False
    noisy: bool = False
    reasons: list[str] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)

    def judge(self) -> None:
        """Set ``noisy`` and ``reasons`` from the samples and the thresholds."""
        reasons: list[str] = []
        others = [(s.others, s.label) for s in self.samples if s.others is not None
                  and (s.idle or not self.server_on_this_machine)]
        steal = [(s.steal, s.label) for s in self.samples if s.steal is not None]
        mm = [s.matmul_gflops for s in self.samples if s.matmul_gflops]
        clocks = [v for s in self.samples if s.freq_mhz for v in (s.freq_mhz["min"],
                                                                   s.freq_mhz["max"])]
        if others and max(others)[0] > self.thresholds["others"]:
            worst = max(others)
            reasons.append(f"other processes used {worst[0]:.0%} of the CPU capacity "
                           f"({worst[1]}; threshold {self.thresholds['others']:.0%})")
        if steal and max(steal)[0] > self.thresholds["steal"]:
            worst = max(steal)
            reasons.append(f"the hypervisor stole {worst[0]:.1%} of the CPU time ({worst[1]}; "
                           f"threshold {self.thresholds['steal']:.0%})")
        spread = max(mm) / min(mm) - 1 if len(mm) >= 2 else None
        if spread is not None and spread > self.thresholds["yardstick_spread"]:
            reasons.append(f"the interleaved matmul yardstick varied by {spread:.0%} ({min(mm):.0f}"
                           f"–{max(mm):.0f} GFLOP/s; threshold "
                           f"{self.thresholds['yardstick_spread']:.0%})")
        fspread = max(clocks) / min(clocks) - 1 if clocks and min(clocks) > 0 else None
        if fspread is not None and fspread > self.thresholds["freq_spread"]:
            reasons.append(f"the cores' clock varied by {fspread:.0%} ({min(clocks):.0f}–"
                           f"{max(clocks):.0f} MHz; threshold "
                           f"{self.thresholds['freq_spread']:.0%})")
        self.noisy, self.reasons = bool(reasons), reasons
        self.summary = {
            "others_max": max(others)[0] if others else None,
            "others_judged_on": "idle windows only (the server under test runs on this "
                                "machine)" if self.server_on_this_machine else "every interval",
            "steal_max": max(steal)[0] if steal else None,
            "yardstick_gflops": [min(mm), max(mm)] if mm else None,
            "yardstick_spread": spread, "freq_spread": fspread,
            "load_average_first": next((s.load_average for s in self.samples
                                        if s.load_average), None),
            "load_average_last": next((s.load_average for s in reversed(self.samples)
                                       if s.load_average), None),
        }


class NoiseProbe:
    """Takes the snapshots of one run: ``mark(label)`` closes the interval since the last
    mark; ``idle(label, s)`` sleeps ``s`` seconds first (a window where only others run)."""

    def __init__(self) -> None:
        self.record = NoiseRecord()
        self._last = snapshot()

    def mark(self, label: str, matmul_gflops: float | None = None) -> NoiseSample:
        now = snapshot()
        sample = interval(label, self._last, now)
        sample.matmul_gflops = matmul_gflops
        self.record.samples.append(sample)
        self._last = now
        return sample

    def idle(self, label: str, seconds: float) -> NoiseSample:
        self._last = snapshot()
        time.sleep(seconds)
        sample = self.mark(label)
        sample.idle = True
        return sample

    def restart(self) -> None:
        """Start the next interval now (work since the last mark is not counted)."""
        self._last = snapshot()
