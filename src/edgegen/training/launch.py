"""``edgegen train --nproc-per-node N``: torchrun on this machine, started for the user.

``run_torchrun(args, nproc)`` runs ``python -m torch.distributed.run --nproc-per-node N
--rdzv-backend c10d --rdzv-endpoint 127.0.0.1:PORT -m edgegen <args>`` as a child process (PORT
a free port of the loopback interface) and returns its exit code; SIGINT, SIGTERM and SIGHUP
sent to this process are passed on to torchrun, which stops its workers. The c10d rendezvous
(rather than a fixed MASTER_ADDR/MASTER_PORT) is what lets ``--max-restarts K`` work: after a
failure torchrun restarts every worker in a fresh rendezvous round, and the training loop
resumes from the run's checkpoint by itself (``TORCHELASTIC_RESTART_COUNT > 0``).

torch-free: only the standard library (torch is imported by the workers).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from edgegen.core.errors import ConfigError

LOOPBACK = "127.0.0.1"
FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def free_port(host: str = LOOPBACK) -> int:
    """A TCP port of ``host`` that nothing listens on now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def torchrun_command(args: Sequence[str], nproc: int, max_restarts: int = 0,
                     port: int | None = None, module: str = "edgegen") -> list[str]:
    """The torchrun command line that runs ``python -m <module> <args>`` on ``nproc`` local
    processes."""
    port = free_port() if port is None else port
    return [sys.executable, "-m", "torch.distributed.run", "--nnodes=1",
            f"--nproc-per-node={nproc}", f"--max-restarts={max_restarts}",
            "--rdzv-backend=c10d", f"--rdzv-endpoint={LOOPBACK}:{port}",
            f"--rdzv-id=edgegen-{os.getpid()}-{port}", "-m", module, *args]


def check_launch(nproc: int, max_restarts: int) -> None:
    if nproc < 1:
        raise ConfigError(f"--nproc-per-node must be positive, got {nproc}")
    if max_restarts < 0:
        raise ConfigError(f"--max-restarts must be 0 or more, got {max_restarts}")
    if int(os.environ.get("WORLD_SIZE", "1") or 1) > 1:
        raise ConfigError("--nproc-per-node starts torchrun, but this process was itself "
                          f"started by torchrun (WORLD_SIZE={os.environ['WORLD_SIZE']}); drop "
                          "--nproc-per-node")


@dataclass(frozen=True)
class LaunchResult:
    returncode: int  # torchrun's exit code; 128 + n when signal n ended it
    signal: int | None = None  # the signal we passed on to torchrun, if any


def run_torchrun(args: Sequence[str], nproc: int, max_restarts: int = 0,
                 env: Mapping[str, str] | None = None) -> LaunchResult:
    """Run ``edgegen <args>`` on ``nproc`` processes of this machine through torchrun and wait
    for it; signals sent to this process meanwhile are passed on."""
    check_launch(nproc, max_restarts)
    cmd = torchrun_command(args, nproc, max_restarts)
    # A session of its own: a Ctrl-C in the terminal reaches torchrun once, through us.
    proc = subprocess.Popen(cmd, env=dict(os.environ if env is None else env),
                            start_new_session=True)
    previous = {}
    received: list[int] = []

    def forward(signum: int, frame: object) -> None:
        received.append(signum)
        if proc.poll() is None:
            proc.send_signal(signum)

    try:
        for sig in FORWARDED:
            previous[sig] = signal.signal(sig, forward)
    except ValueError:  # not the main thread: signals cannot be forwarded, the run still works
        previous.clear()
    try:
        while True:
            try:
                rc = proc.wait()
                break
            except KeyboardInterrupt:  # a handler that raised; keep waiting for torchrun
                forward(signal.SIGINT, None)
    finally:
        if proc.poll() is None:  # we are leaving because of an exception: do not orphan it
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return LaunchResult(rc if rc >= 0 else 128 - rc, received[0] if received else None)
