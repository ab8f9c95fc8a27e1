"""Training on 2 processes (torchrun, gloo, CPU): the same weights as 1 process up to summation
order; a killed rank ends the run with the checkpoint intact; the checkpoint resumes on another
process count; torchrun's restart resumes it by itself, bitwise.

Every process these tests start is found through /proc and stopped by pid; none is left behind.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from edgegen.models.classifier import DigitClassifier
from edgegen.models.config import ClassifierConfig, model_config
from edgegen.models.registry import build_models
from edgegen.training.checkpoint import load_checkpoint, read_info
from edgegen.training.launch import free_port

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="finds the worker processes through /proc")

WORKER = Path(__file__).with_name("ddp_worker.py")
STEPS, LONG = 20, 60
# ||theta_2proc - theta_1proc|| / ||theta_1proc - theta_0|| after 20 steps (weights and BatchNorm
# statistics). Measured on this machine: 5e-7 (cdcgan), 6e-5 (cmlp), 5e-5 (cvae), 6e-3 (the
# evaluator's CNN at lr up to 2e-3); with BatchNorm left per-process instead: 2e-2 .. 1.3e-1.
# cflow is compared by what its network computes, not by its weights: a convolution bias right
# before GroupNorm has no gradient but rounding noise, which Adam's first steps turn into +-lr
# (measured: weights differ by 2e-3 of the distance trained, the velocities by 8e-6).
TOL = {"cdcgan": 1e-3, "cmlp": 1e-3, "cvae": 1e-3, "cflow": 1e-4, "evaluator": 3e-2}
STOP_BOUND_S = 60.0  # a killed rank ends the whole run within this (torchrun notices in 0.1 s)


# --------------------------------------------------------------------------- processes

def _environ(pid: int) -> list[bytes]:
    try:
        return (Path("/proc") / str(pid) / "environ").read_bytes().split(b"\0")
    except OSError:
        return []


def _run_processes(run_id_prefix: str) -> list[int]:
    """Pids of the workers whose torchrun run id starts with ``run_id_prefix``."""
    key = f"TORCHELASTIC_RUN_ID={run_id_prefix}".encode()
    return [int(d.name) for d in Path("/proc").iterdir() if d.name.isdigit()
            and any(e.startswith(key) for e in _environ(int(d.name)))]


def _children(pid: int) -> list[int]:
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if int((d / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    out.append(int(d.name))
            except (OSError, IndexError, ValueError):
                pass
    return out


def _tree(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        kids = _children(p)
        found += kids
        todo += kids
    return found


def _kill_all(pids: list[int]) -> None:
    for p in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(p, signal.SIGKILL)


class Launched:
    """``edgegen train --nproc-per-node 2 ...`` started in the background; everything it started
    is killed by pid when the test ends, whatever happened."""

    def __init__(self, args: list[str], log: Path) -> None:
        self.log = log
        self.fh = open(log, "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen([sys.executable, "-m", "edgegen", "train", *args],
                                     stdout=self.fh, stderr=subprocess.STDOUT)
        self.prefix = f"edgegen-{self.proc.pid}-"  # the launcher's torchrun run id

    def workers(self) -> list[int]:
        return _run_processes(self.prefix)

    def wait(self, timeout: float) -> int:
        return self.proc.wait(timeout=timeout)

    def output(self) -> str:
        self.fh.flush()
        return self.log.read_text()

    def stop(self) -> None:
        leftovers = _tree(self.proc.pid) + self.workers()
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        _kill_all(leftovers + self.workers())
        self.fh.close()


def _wait_for_step(run: Path, step: int, launched: Launched, timeout: float = 600) -> int:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            got = json.loads((run / "config.json").read_text())["step"]
            if got >= step:
                return got
        except (OSError, ValueError, KeyError):
            pass
        assert launched.proc.poll() is None, launched.output()
        time.sleep(0.02)
    raise AssertionError(f"no checkpoint at step {step} in {timeout} s:\n{launched.output()}")


def _kill_rank(launched: Launched, rank: int) -> float:
    for pid in launched.workers():
        if f"RANK={rank}".encode() in _environ(pid):
            os.kill(pid, signal.SIGKILL)
            return time.monotonic()
    raise AssertionError(f"no rank {rank} found:\n{launched.output()}")


@pytest.fixture
def launch(tmp_path: Path) -> Iterator:
    started: list[Launched] = []

    def start(args: list[str]) -> Launched:
        started.append(Launched(args, tmp_path / f"launch{len(started)}.log"))
        return started[-1]

    yield start
    for launched in started:
        launched.stop()
        assert not launched.workers() and not _tree(launched.proc.pid)


# --------------------------------------------------------------------------- reference runs

@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory, idx_dir: Path) -> Path:
    """The worker's runs on 1 process (``one/``) and, at the same time, on 2 (``two/``)."""
    root = tmp_path_factory.mktemp("ddp")
    tail = [str(idx_dir), str(STEPS), str(LONG)]
    one = subprocess.Popen([sys.executable, str(WORKER), str(root / "one"), *tail],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    two = subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--nnodes=1",
                            "--nproc-per-node=2", "--rdzv-backend=c10d",
                            f"--rdzv-endpoint=127.0.0.1:{free_port()}",
                            f"--rdzv-id=edgegen-test-{os.getpid()}", str(WORKER),
                            str(root / "two"), *tail],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        out_one, _ = one.communicate(timeout=1200)
        out_two, _ = two.communicate(timeout=1200)
    finally:
        for p in (one, two):
            if p.poll() is None:
                _kill_all(_tree(p.pid))
                p.kill()
                p.wait()
    assert one.returncode == 0, out_one[-3000:]
    assert two.returncode == 0, out_two[-3000:]
    return root


def _initial(arch: str) -> dict[str, torch.Tensor]:
    torch.manual_seed(3)  # the worker's seed: the weights every run starts from
    if arch == "evaluator":
        net = DigitClassifier(ClassifierConfig(width=8))
        return {f"classifier.{k}": v for k, v in net.state_dict().items()}
    return {f"{name}.{k}": v for name, net in build_models(model_config(arch, width=8)).items()
            for k, v in net.state_dict().items()}


def _relative_distance(a: dict, b: dict, start: dict) -> float:
    """||a - b|| / ||a - start|| over the networks' float tensors (weights, BatchNorm stats)."""
    keys = [k for k, v in start.items() if v.is_floating_point()]
    diff = math.sqrt(sum(float(((a[k] - b[k]).double() ** 2).sum()) for k in keys))
    moved = math.sqrt(sum(float(((a[k] - start[k]).double() ** 2).sum()) for k in keys))
    return diff / moved


def _velocity_distance(a: dict, b: dict) -> float:
    """||v_a - v_b|| / ||v_a - v_start||: cflow's predicted velocity on fixed noisy images,
    times and labels (the null class included) after training on 1 and on 2 processes."""
    from edgegen.training.checkpoint import load_module

    def velocity(weights: dict | None) -> torch.Tensor:
        torch.manual_seed(3)
        gen = build_models(model_config("cflow", width=8))["generator"]
        if weights is not None:
            load_module("generator", gen, weights, Path("checkpoint"))
        g = torch.Generator().manual_seed(0)
        x = torch.randn(64, 1, 28, 28, generator=g)
        t = torch.rand(64, generator=g)
        with torch.no_grad():
            return gen.eval().predict(x, t, torch.arange(64) % 11)

    va, vb, v0 = velocity(a), velocity(b), velocity(None)
    return float((va - vb).norm() / (va - v0).norm())


# --------------------------------------------------------------------------- tests

@pytest.mark.parametrize("arch", ["cdcgan", "cmlp", "cvae", "cflow", "evaluator"])
def test_two_processes_train_what_one_process_trains(runs: Path, arch: str) -> None:
    info1, w1 = load_checkpoint(runs / "one" / arch)
    info2, w2 = load_checkpoint(runs / "two" / arch)
    assert (info1["world_size"], info2["world_size"]) == (1, 2)
    assert w1.keys() == w2.keys()
    for k, v in w1.items():  # step counters, BatchNorm batch counts: exactly equal
        if not v.is_floating_point():
            assert torch.equal(v, w2[k]), k
    rel = (_velocity_distance(w1, w2) if arch == "cflow"
           else _relative_distance(w1, w2, _initial(arch)))
    assert 0 < rel <= TOL[arch], f"{arch}: 1 vs 2 processes differ by {rel:.2e} of the distance " \
                                 f"trained (tolerance {TOL[arch]:.0e})"
    if arch != "evaluator":  # the logged losses are the global batch's, on both
        rows1 = [json.loads(x) for x in (runs / "one" / arch / "metrics.jsonl").open()]
        rows2 = [json.loads(x) for x in (runs / "two" / arch / "metrics.jsonl").open()]
        assert [r["step"] for r in rows1] == [r["step"] for r in rows2] == [5, 10, 15, 20]
        for r1, r2 in zip(rows1, rows2):
            for k in r1:
                if k.startswith(("loss", "recon", "kl")):
                    assert r1[k] == pytest.approx(r2[k], rel=2e-3, abs=2e-4), (k, r1, r2)


def test_a_killed_rank_ends_the_run_and_another_process_count_resumes_it(
        runs: Path, idx_dir: Path, tmp_path: Path, launch) -> None:
    run = tmp_path / "run"
    launched = launch(["--nproc-per-node", "2", "--arch", "cdcgan", "--width", "8",
                       "--batch-size", "32", "--max-steps", str(LONG), "--checkpoint-every", "5",
                       "--seed", "3", "--threads", "1", "--out", str(run),
                       "--data-dir", str(idx_dir)])
    _wait_for_step(run, 5, launched)
    t_kill = _kill_rank(launched, 1)
    rc = launched.wait(timeout=300)
    stopped_after = time.monotonic() - t_kill
    text = launched.output()
    assert rc != 0 and stopped_after < STOP_BOUND_S, (rc, stopped_after, text)
    assert "error: the 2 training processes failed" in text and "is intact" in text, text
    assert "Signal 9 (SIGKILL)" in text  # torchrun's report names the killed rank's signal
    info = read_info(run)  # the last good checkpoint: readable, at a checkpoint step
    assert info["step"] % 5 == 0 and 5 <= info["step"] < LONG and not info["finished"]
    assert not list(run.glob("*.tmp")) and not list(run.glob(".*tmp"))

    # A checkpoint written by 2 processes resumes on 1.
    res = subprocess.run([sys.executable, "-m", "edgegen", "train", "--resume", str(run),
                          "--threads", "1"], capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "resuming" in res.stdout and "done: cdcgan" in res.stdout, res.stdout
    _, resumed = load_checkpoint(run)
    _, straight = load_checkpoint(runs / "one" / "long")
    assert 0 < _relative_distance(straight, resumed, _initial("cdcgan")) <= TOL["cdcgan"]


def test_torchrun_restarts_the_processes_and_the_run_resumes_by_itself(
        runs: Path, idx_dir: Path, tmp_path: Path, launch) -> None:
    run = tmp_path / "run"
    launched = launch(["--nproc-per-node", "2", "--max-restarts", "1", "--arch", "cdcgan",
                       "--width", "8", "--batch-size", "32", "--max-steps", str(LONG),
                       "--checkpoint-every", "5", "--seed", "3", "--threads", "1",
                       "--out", str(run), "--data-dir", str(idx_dir)])
    _wait_for_step(run, 5, launched)
    _kill_rank(launched, 1)
    assert launched.wait(timeout=900) == 0, launched.output()
    assert "(restart 1)" in launched.output()
    info, restarted = load_checkpoint(run)
    assert info["step"] == LONG and info["finished"]
    _, straight = load_checkpoint(runs / "two" / "long")
    assert restarted.keys() == straight.keys()
    assert all(torch.equal(restarted[k], straight[k]) for k in straight)  # bitwise: exact resume
    steps = [json.loads(x)["step"] for x in (run / "metrics.jsonl").open()]
    assert steps == sorted(set(steps))  # the lines after the checkpoint were not kept twice


def test_the_launcher_passes_sigterm_on_and_leaves_no_process(idx_dir: Path, tmp_path: Path,
                                                              launch) -> None:
    run = tmp_path / "run"
    launched = launch(["--nproc-per-node", "2", "--arch", "cmlp", "--width", "8",
                       "--batch-size", "32", "--max-steps", "100000", "--checkpoint-every", "5",
                       "--threads", "1", "--out", str(run), "--data-dir", str(idx_dir)])
    _wait_for_step(run, 5, launched)
    workers = launched.workers()
    assert len(workers) == 2
    launched.proc.send_signal(signal.SIGTERM)
    rc = launched.wait(timeout=STOP_BOUND_S)
    assert rc != 0 and "stopped by SIGTERM" in launched.output(), launched.output()
    assert not [p for p in workers if Path(f"/proc/{p}").exists()]
    assert read_info(run)["step"] >= 5


JOIN = ("from edgegen.training.distributed import joined\n"
        "with joined('cpu', 1, timeout_s=60) as world:\n"
        "    world.barrier()\n"
        "print('joined', world.launch.rank)\n")


def test_a_restarted_round_does_not_meet_the_dead_rounds_addresses(tmp_path: Path) -> None:
    """torchrun's c10d rendezvous serves every round from one store: after a restart the old
    round's gloo addresses are still in it. A rank that starts before its peer must wait for the
    new address instead of dialing the dead process ("Connection refused")."""
    store = torch.distributed.TCPStore("127.0.0.1", 0, world_size=1, is_master=True,
                                       wait_for_workers=False)

    def start(rank: int, restart: int) -> subprocess.Popen:
        env = {**os.environ, "RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": "2",
               "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(store.port),
               "TORCHELASTIC_USE_AGENT_STORE": "True",  # what torchrun's agent tells workers
               "TORCHELASTIC_RESTART_COUNT": str(restart)}
        return subprocess.Popen([sys.executable, "-c", JOIN], env=env, cwd=tmp_path,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    procs: list[subprocess.Popen] = []
    try:
        procs = [start(0, 0), start(1, 0)]  # round 0 leaves its addresses in the store
        outs = [p.communicate(timeout=120)[0] for p in procs]
        assert [p.returncode for p in procs] == [0, 0], outs
        procs = [start(1, 1)]  # round 1: rank 1 first, rank 0 a few seconds later
        time.sleep(5.0)
        procs.append(start(0, 1))
        outs = [p.communicate(timeout=120)[0] for p in procs]
        assert [p.returncode for p in procs] == [0, 0], outs
        assert "joined 1" in outs[0] and "joined 0" in outs[1], outs
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
