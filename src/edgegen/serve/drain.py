"""Draining every replica on SIGTERM, wherever it runs: a small Ray actor as the gate.

Ray Serve has no call that reaches every replica of a deployment (a handle routes to one), and
redeploying with a new ``user_config`` restarts the replicas of an imperatively deployed
application. So the driver creates a named ``DrainGate`` actor before it deploys; each replica
reports to it every ``PERIOD_S`` (its id, the requests it holds, whether it is draining) and
learns from the answer when to drain. ``drain()`` (driver side) closes the gate and waits until
every replica has reported that it is draining and holds no request: from then on a new request
gets 503 with ``Retry-After`` and ``/v2/health/ready`` says 503, and nothing is left in flight.
Only then does the server delete the application.

A replica that cannot find its gate (an application deployed by other means) serves normally
and simply never drains this way; Ray Serve's own graceful shutdown still applies.
"""

from __future__ import annotations

import contextlib
import threading
import time
from typing import Any

NAMESPACE = "edgegen"
PERIOD_S = 0.2  # a replica's report interval: 5 tiny actor calls a second


def gate_name(app: str) -> str:
    return f"edgegen-drain-{app}"


class DrainGate:
    """The gate's state (a Ray actor: ``create_gate`` makes it remote)."""

    def __init__(self) -> None:
        self.draining = False
        self.replicas: dict[str, dict[str, Any]] = {}

    def close(self) -> None:
        self.draining = True

    def report(self, replica: str, inflight: int, draining: bool, served: int,
               where: dict[str, Any] | None = None) -> bool:
        """A replica's state (and, in its first report, where it runs); the answer says whether
        it must drain."""
        entry = self.replicas.setdefault(replica, {})
        entry.update(inflight=inflight, draining=draining, served=served, at=time.time())
        if where:
            entry["where"] = where
        return self.draining

    def status(self) -> dict[str, dict[str, Any]]:
        return dict(self.replicas)


def create_gate(app: str) -> Any:
    """The named gate actor of application ``app`` (replaced if a stale one exists)."""
    import ray

    name = gate_name(app)
    with contextlib.suppress(ValueError):
        ray.kill(ray.get_actor(name, namespace=NAMESPACE))
    return ray.remote(num_cpus=0)(DrainGate).options(name=name, namespace=NAMESPACE).remote()


def placement(gate: Any, count: int, timeout_s: float) -> list[dict[str, Any]]:
    """Where each replica runs (replica id, node id, pid, threads), from the replicas' own
    reports, once ``count`` of them have reported (or ``timeout_s`` passed)."""
    import ray

    deadline = time.monotonic() + timeout_s
    while True:
        status = ray.get(gate.status.remote())
        found = [r["where"] for r in status.values() if "where" in r]
        if len(found) >= count or time.monotonic() > deadline:
            return sorted(found, key=lambda w: w["replica"])
        time.sleep(PERIOD_S)


def drain(gate: Any, replicas: set[str], timeout_s: float) -> dict[str, dict[str, Any]]:
    """Close the gate and wait until every replica in ``replicas`` drains with nothing in
    flight (or ``timeout_s`` passes); returns the last reports."""
    import ray

    ray.get(gate.close.remote())
    deadline = time.monotonic() + timeout_s
    while True:
        status = ray.get(gate.status.remote())
        done = all(r in status and status[r]["draining"] and status[r]["inflight"] == 0
                   for r in replicas)
        if done or time.monotonic() > deadline:
            return status
        time.sleep(PERIOD_S / 2)


class GateWatcher:
    """The replica's side: a daemon thread that reports to the gate and flips ``target``'s
    ``draining`` flag when the gate closes (``target`` has ``inflight``, ``served`` and
    ``draining`` attributes: ``app.Endpoints``)."""

    def __init__(self, app: str, where: dict[str, Any], target: Any) -> None:
        self.app, self.where, self.target = app, where, target
        self.replica = where["replica"]
        self.found = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="edgegen-drain", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        import ray

        try:
            gate = ray.get_actor(gate_name(self.app), namespace=NAMESPACE)
        except ValueError:
            return  # deployed without a gate: no coordinated drain
        self.found = True
        where: dict[str, Any] | None = self.where  # sent once
        while not self._stop.wait(PERIOD_S):
            t = self.target
            try:
                close = ray.get(gate.report.remote(self.replica, t.inflight, t.draining,
                                                   t.served, where), timeout=10)
                where = None
            except Exception:  # noqa: BLE001 - the driver is gone: keep serving
                return
            if close:
                t.draining = True

    def stop(self) -> None:
        self._stop.set()
