"""The performance targets as typed code (``edgegen.benchmarks.targets``): judged on reports
recorded by real runs (committed under benchmarks/results), and ``edgegen bench --target`` as a
gate with its exit codes on the tiny bundle."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from typer.testing import CliRunner

from edgegen.benchmarks.results import BenchReport, load_report
from edgegen.benchmarks.targets import (
    SPECS,
    cflow_targets,
    compute,
    fidelity_deltas,
    gan_targets,
    select,
)
from edgegen.cli.app import app
from edgegen.core.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
RUN = ROOT / "benchmarks" / "results" / "amd-epyc-2c-2026-11-29"  # both bundles, one run
H200 = ROOT / "benchmarks" / "results" / "h200-2026-11-28" / "bench-cuda.json"
runner = CliRunner()
FAST = ["--iters", "3", "--warmup-iters", "1", "--warmup-s", "0", "--rounds", "1",
        "--noise-window", "0", "--no-matmul"]


def _quiet(report: BenchReport) -> BenchReport:
    """The same measurements with the noise verdict 'quiet' (the judging rule under test)."""
    assert report.noise is not None
    return replace(report, noise=replace(report.noise, noisy=False, reasons=[]))


@pytest.fixture(scope="module")
def gan() -> BenchReport:
    return load_report(RUN / "cdcgan" / "offline-cpu.json")


@pytest.fixture(scope="module")
def profiles() -> dict[str, dict]:
    run = json.loads((RUN / "run.json").read_text())
    return {e["architecture"]: e["profile"] for e in run["bundles"]}


def test_the_report_reads_back_typed_and_whole(gan: BenchReport) -> None:
    raw = json.loads((RUN / "cdcgan" / "offline-cpu.json").read_text())
    again = gan.to_dict()
    assert {k: again[k] for k in raw} == raw  # every field, nested dataclasses included
    assert gan.results[0].latency.images_per_s > 0 and gan.noise is not None
    assert gan.matmul is not None and gan.matmul.gflops == raw["matmul"]["gflops"]


def test_targets_met_and_not_met_on_a_quiet_record(gan: BenchReport, profiles: dict) -> None:
    """The values of the committed run (BENCHMARKS.md shows them), judged as if quiet."""
    ts = {t.name: t for t in gan_targets(_quiet(gan), fidelity_deltas(RUN / "cdcgan" /
                                                                        "eval.json"),
                                         profiles["cdcgan"])}
    assert list(ts) == ["torch-throughput", "openvino-throughput", "efficiency",
                        "batch1-latency", "int8-throughput", "int8-fidelity"]
    assert ts["torch-throughput"].value == pytest.approx(9395 / 5684, rel=1e-3)
    assert ts["torch-throughput"].verdict == "met" and ts["torch-throughput"].reason is None
    assert ts["efficiency"].verdict == "met" and ts["efficiency"].value == pytest.approx(
        0.7456, abs=1e-3)
    b1 = ts["batch1-latency"]
    assert b1.verdict == "not met" and b1.value == pytest.approx(4.53, abs=0.01)
    assert b1.reason is not None and "per-call overhead" in b1.reason  # from the profile
    i8 = ts["int8-throughput"]
    assert i8.verdict == "not met" and "QuantizeLinear" in (i8.reason or "")
    fid = ts["int8-fidelity"]
    assert fid.verdict == "met" and fid.value == pytest.approx(-0.2) and fid.unit == "pp"
    assert all(not t.noise for t in ts.values())


def test_a_noisy_record_judges_no_speed_target(gan: BenchReport, profiles: dict) -> None:
    assert gan.noise is not None and gan.noise.noisy  # as recorded
    ts = {t.name: t for t in gan_targets(gan, fidelity_deltas(RUN / "cdcgan" / "eval.json"),
                                         profiles["cdcgan"])}
    for name in ("torch-throughput", "efficiency", "batch1-latency", "int8-throughput"):
        t = ts[name]
        assert t.verdict == "not judged (noise)" and t.reason is None and not t.misses
        assert t.value is not None and t.noise == tuple(gan.noise.reasons)
    assert ts["int8-fidelity"].verdict == "met"  # fidelity does not depend on load
    report = replace(gan, targets=list(ts.values()))
    assert report.passed  # nothing missed: the gate passes on noise


def test_not_measured_says_what_to_add(gan: BenchReport) -> None:
    no_peers = replace(_quiet(gan), results=[r for r in gan.results
                                             if r.contender in ("edgegen", "tuned")])
    ts = {t.name: t for t in gan_targets(no_peers)}
    assert ts["torch-throughput"].verdict == "not measured"
    assert "--peers torch" in ts["torch-throughput"].detail
    assert ts["int8-fidelity"].verdict == "not measured" and "--eval-report" in \
        ts["int8-fidelity"].detail
    assert not replace(no_peers, targets=[ts["torch-throughput"]]).passed


def test_cflow_and_gpu_targets(profiles: dict) -> None:
    cflow = _quiet(load_report(RUN / "cflow" / "offline-cpu.json"))
    ts = {t.name: t for t in cflow_targets(cflow, profiles["cflow"])}
    assert ts["cflow-vs-plain"].verdict == "not met"
    assert ts["cflow-vs-plain"].value == pytest.approx(0.99, abs=0.01)
    assert "ONNX Runtime on the unrewritten export" in (ts["cflow-vs-plain"].reason or "")
    # issue 24's fp16 target on the H200 run: fp16 at 0.59x of fp32 with CUDA graphs
    fp16 = compute(load_report(H200))["fp16-throughput"]
    assert fp16.verdict == "not met" and fp16.value == pytest.approx(662414 / 1119157,
                                                                     rel=1e-3)


def test_select_checks_names_against_the_family() -> None:
    assert select(["all"], "cdcgan") == ("torch-throughput", "openvino-throughput",
                                         "efficiency", "batch1-latency", "int8-throughput",
                                         "int8-fidelity")
    assert select(["all"], "cdcgan", "cuda") == ("fp16-throughput",)
    assert select(["all"], "cflow") == ("cflow-vs-plain", "cflow-vs-openvino")
    with pytest.raises(ConfigError, match="unknown target speed"):
        select(["speed"], "cdcgan")
    with pytest.raises(ConfigError, match="not one of the gan family"):
        select(["cflow-vs-plain"], "cvae")
    assert all(s.comparison in (">=", "<=") and s.needs for s in SPECS.values())


# --------------------------------------------------------------------------- the CLI gate
def _gate(bundle: Path, tmp_path: Path, *args: str) -> tuple[int, str, dict | None]:
    out = tmp_path / "bench.json"
    res = runner.invoke(app, ["bench", str(bundle), "--batch", "1,2", *FAST, *args,
                              "--json", str(out)])
    return res.exit_code, res.output, json.loads(out.read_text()) if out.is_file() else None


def test_the_gate_on_fidelity_exits_0_when_met_and_1_when_not(tiny_bundle: Path,
                                                              tmp_path: Path) -> None:
    """int8-fidelity comes from the eval report (the committed one: +0.20 pp), so its verdict
    does not depend on this machine; the same report with int8 1.5 pp below PyTorch fails."""
    met = RUN / "cdcgan" / "eval.json"
    code, output, data = _gate(tiny_bundle, tmp_path, "--precision", "fp32", "--peers", "none",
                               "--target", "int8-fidelity", "--eval-report", str(met))
    assert code == 0, output
    assert data is not None and data["passed"] and data["targets"][0]["verdict"] == "met"
    assert "targets" in output and "MET" in output
    worse = json.loads(met.read_text())
    for v in worse["variants"]:
        if v["name"] == "int8":
            v["vs_reference"]["delta_pp"] = -1.5
    missed = tmp_path / "eval-worse.json"
    missed.write_text(json.dumps(worse))
    code, output, data = _gate(tiny_bundle, tmp_path, "--precision", "fp32", "--peers", "none",
                               "--target", "int8-fidelity", "--eval-report", str(missed))
    assert code == 1, output
    assert "1 target(s) missed: int8-fidelity not met" in output and "Traceback" not in output
    assert data is not None and not data["passed"]


def test_the_gate_fails_on_what_it_cannot_measure(tiny_bundle: Path, tmp_path: Path) -> None:
    code, output, data = _gate(tiny_bundle, tmp_path, "--precision", "fp32", "--peers", "none",
                               "--target", "torch-throughput")
    assert code == 1 and "torch-throughput not measured" in output and "--peers torch" in output
    assert data is not None and data["targets"][0]["verdict"] == "not measured"


def test_a_speed_gate_exits_by_its_verdict(tiny_bundle: Path, tmp_path: Path) -> None:
    """Timed for real: whatever the verdict on this machine (met, not met, or not judged
    because it is busy), the exit code is the gate's — 1 only for a miss."""
    code, output, data = _gate(tiny_bundle, tmp_path, "--precision", "fp32", "--peers", "torch",
                               "--noise-window", "0.2", "--target",
                               "torch-throughput,batch1-latency")
    assert data is not None, output
    verdicts = [t["verdict"] for t in data["targets"]]
    assert [t["name"] for t in data["targets"]] == ["torch-throughput", "batch1-latency"]
    assert all(v in ("met", "not met", "not judged (noise)") for v in verdicts), verdicts
    assert code == (1 if "not met" in verdicts else 0), output
    if "not judged (noise)" in verdicts:
        assert "the gate does not fail on it" in output


def test_bad_target_names_exit_2_before_timing(tiny_bundle: Path, tmp_path: Path) -> None:
    for name, match in (("fastest", "unknown target fastest"),
                        ("cflow-vs-plain", "not one of the gan family")):
        code, output, data = _gate(tiny_bundle, tmp_path, "--target", name)
        assert code == 2 and match in output and data is None, output
