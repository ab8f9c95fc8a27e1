"""MLPerf-style server scenario: Poisson arrivals served by a pool of workers.

Requests (one image each) arrive at exponentially distributed intervals with mean ``1 / qps``
(a Poisson process), whether or not the server keeps up, as MLPerf's LoadGen issues them.

Dynamic batching, as Triton's dynamic batcher does it: the next free worker (a model instance)
forms the next batch — the oldest waiting request, then every request that arrives until the
batch holds ``max_batch`` or ``max_delay_s`` has passed since that oldest request arrived (a
request that already waited longer does not wait more) — runs it as one inference and stamps its
requests done. One worker forms a batch at a time, so a batch is never split between two idle
workers. ``max_batch = 1`` is the plain MLPerf server: one request per inference.

A request's latency runs from its *scheduled* arrival to its completion, so time spent queueing
— including a late dispatcher — counts. Requests still waiting when the drain deadline passes are
reported as unfinished: the load was more than the server could take. ``infer`` may raise
``Rejected`` (a remote server's 503: counted apart, never as a latency) or fail (counted as
failed, with the first messages kept).
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from edgegen.benchmarks.stats import percentile


class Rejected(Exception):
    """The server refused the request on purpose (HTTP 503 with Retry-After: overload)."""


def poisson_arrivals(qps: float, duration_s: float, seed: int) -> np.ndarray:
    """Arrival times (seconds from 0, increasing, all < ``duration_s``) of a Poisson process."""
    if not qps > 0 or not duration_s > 0:
        raise ValueError(f"qps and duration must be positive, got {qps} and {duration_s}")
    rng = np.random.default_rng(seed)
    expected = qps * duration_s
    n = int(expected + 10 * np.sqrt(expected) + 10)  # enough draws with overwhelming odds
    while True:
        t = np.cumsum(rng.exponential(1.0 / qps, size=n))
        if t[-1] >= duration_s:
            return t[t < duration_s]
        n *= 2


@dataclass
class ServerResult:
    """One contender under Poisson load."""

    contender: str
    variant: str
    provider: str
    target_qps: float
    duration_s: float
    workers: int
    max_batch: int
    intra_op_threads: int
    issued: int
    completed: int
    unfinished: int
    achieved_qps: float
    mean_batch: float
    p50_ms: float | None
    p90_ms: float | None
    p99_ms: float | None
    mean_ms: float | None
    max_ms: float | None
    p99_bound_ms: float | None = None
    max_delay_ms: float = 0.0
    rejected: int = 0  # answered 503 (overload), not counted in the latencies
    failed: int = 0  # errors other than a 503 (a lost or refused request)
    errors: list[str] = field(default_factory=list)  # the first few failure messages
    # served endpoints: the load generator's own CPU time over the run, as a share of the
    # machine's usable cores (a Python client on the server's machine takes from the server)
    client_cpu_share: float | None = None

    @property
    def within_bound(self) -> bool | None:
        """p99 under the bound with every request answered (none unfinished, refused or lost)."""
        if self.p99_bound_ms is None:
            return None
        return self.unfinished == 0 and self.rejected == 0 and self.failed == 0 \
            and self.p99_ms is not None and self.p99_ms <= self.p99_bound_ms


@dataclass
class Served:
    latencies_ns: np.ndarray  # completed requests only
    issued: int
    completed: int
    batches: list[int] = field(default_factory=list)
    span_s: float = 0.0  # first scheduled arrival to last completion
    rejected: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)


def serve(infer: Callable[[int], object], arrivals_s: np.ndarray, *, workers: int,
          max_batch: int, drain_s: float, max_delay_s: float = 0.0) -> Served:
    """Issue requests at ``arrivals_s`` to ``workers`` threads calling ``infer(k)`` for a batch
    of ``k`` requests (formed as the module docstring says); stop waiting ``drain_s`` after the
    last arrival."""
    n = len(arrivals_s)
    q: queue.Queue[int] = queue.Queue()
    done = np.full(n, -1, dtype=np.int64)
    batches: list[int] = []
    outcome = {"rejected": 0, "failed": 0}
    errors: list[str] = []
    stop = threading.Event()
    start = time.perf_counter_ns() + 5_000_000  # 5 ms to let the workers reach q.get
    sched = start + (np.asarray(arrivals_s) * 1e9).astype(np.int64)
    deadline = (int(sched[-1]) if n else start) + int(drain_s * 1e9)
    delay_ns = int(max_delay_s * 1e9)
    lock = threading.Lock()
    forming = threading.Lock()  # one batch is formed at a time, by the next free worker

    def next_batch() -> list[int] | None:
        with forming:
            try:
                first = q.get(timeout=0.01)
            except queue.Empty:
                return None
            batch = [first]
            close_at = int(sched[first]) + delay_ns  # the oldest request waits no longer
            while len(batch) < max_batch:
                try:
                    batch.append(q.get_nowait())
                    continue
                except queue.Empty:
                    pass
                wait = (close_at - time.perf_counter_ns()) / 1e9
                if wait <= 0:
                    break
                try:
                    batch.append(q.get(timeout=wait))
                except queue.Empty:
                    break
            return batch

    def worker() -> None:
        while not stop.is_set():
            batch = next_batch()
            if batch is None:
                continue
            if time.perf_counter_ns() > deadline:
                continue  # too late: left unfinished
            try:
                infer(len(batch))
            except Rejected:
                with lock:
                    outcome["rejected"] += len(batch)
                continue
            except Exception as exc:  # noqa: BLE001 - a lost request is counted, not fatal
                with lock:
                    outcome["failed"] += len(batch)
                    if len(errors) < 5:
                        errors.append(f"{type(exc).__name__}: {exc}"[:200])
                continue
            t = time.perf_counter_ns()
            with lock:
                done[batch] = t
                batches.append(len(batch))

    pool = [threading.Thread(target=worker, daemon=True) for _ in range(workers)]
    for th in pool:
        th.start()
    for i in range(n):  # the dispatcher sleeps (never spins: it would take a core)
        delay = (int(sched[i]) - time.perf_counter_ns()) / 1e9
        if delay > 0:
            time.sleep(delay)
        q.put(i)
    while time.perf_counter_ns() < deadline:
        with lock:
            finished = int((done >= 0).sum()) + outcome["rejected"] + outcome["failed"]
        if finished == n:
            break
        time.sleep(0.005)
    stop.set()
    for th in pool:
        th.join()
    ok = done >= 0
    lat = done[ok] - sched[ok]
    span = ((int(done[ok].max()) - start) / 1e9) if ok.any() else 0.0
    return Served(latencies_ns=lat, issued=n, completed=int(ok.sum()), batches=batches,
                  span_s=span, rejected=outcome["rejected"], failed=outcome["failed"],
                  errors=errors)


def summarize_served(served: Served, *, contender: str, variant: str, provider: str,
                     target_qps: float, duration_s: float, workers: int, max_batch: int,
                     intra_op_threads: int, p99_bound_ms: float | None,
                     max_delay_ms: float = 0.0) -> ServerResult:
    ms = served.latencies_ns / 1e6
    have = ms.size > 0
    return ServerResult(
        contender=contender, variant=variant, provider=provider, target_qps=target_qps,
        duration_s=duration_s, workers=workers, max_batch=max_batch,
        intra_op_threads=intra_op_threads, issued=served.issued, completed=served.completed,
        unfinished=served.issued - served.completed - served.rejected - served.failed,
        achieved_qps=served.completed / served.span_s if served.span_s > 0 else 0.0,
        mean_batch=float(np.mean(served.batches)) if served.batches else 0.0,
        p50_ms=percentile(ms, 50) if have else None, p90_ms=percentile(ms, 90) if have else None,
        p99_ms=percentile(ms, 99) if have else None, mean_ms=float(ms.mean()) if have else None,
        max_ms=float(ms.max()) if have else None, p99_bound_ms=p99_bound_ms,
        max_delay_ms=max_delay_ms, rejected=served.rejected, failed=served.failed,
        errors=list(served.errors))


@dataclass
class Sweep:
    """The highest offered QPS whose p99 latency stayed within the bound."""

    p99_bound_ms: float
    best_qps: float | None
    trials: list[ServerResult]


def sweep_qps(run_at: Callable[[float], ServerResult], start_qps: float, p99_bound_ms: float,
              steps: int) -> Sweep:
    """Double the offered QPS from ``start_qps`` while the bound holds, then bisect between the
    last rate that held and the first that did not; ``steps`` runs in all."""
    trials: list[ServerResult] = []
    good: float | None = None
    bad: float | None = None
    qps = start_qps
    for _ in range(steps):
        res = run_at(qps)
        trials.append(res)
        if res.within_bound:
            good = qps if good is None else max(good, qps)
        else:
            bad = qps if bad is None else min(bad, qps)
        if bad is None:
            qps = qps * 2
        elif good is None:
            qps = qps / 2
        else:
            if bad / good < 1.05:  # within 5 %: more runs would only measure noise
                break
            qps = (good + bad) / 2
    return Sweep(p99_bound_ms=p99_bound_ms, best_qps=good, trials=trials)
