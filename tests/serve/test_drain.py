"""The drain gate's bookkeeping (the Ray actor's class, used here as a plain object)."""

from __future__ import annotations

from edgegen.serve.drain import DrainGate, gate_name


def test_the_gate_closes_and_keeps_where_each_replica_runs() -> None:
    gate = DrainGate()
    where = {"replica": "r1", "node": "n1", "pid": 1, "threads": 1}
    assert gate.report("r1", 3, False, 10, where) is False  # open: keep serving
    assert gate.report("r2", 0, False, 0, None) is False
    gate.close()
    assert gate.report("r1", 1, True, 12, None) is True  # closed: drain
    status = gate.status()
    assert status["r1"]["inflight"] == 1 and status["r1"]["draining"] is True
    assert status["r1"]["where"] == where and "where" not in status["r2"]
    assert gate_name("cdcgan") == "edgegen-drain-cdcgan"
