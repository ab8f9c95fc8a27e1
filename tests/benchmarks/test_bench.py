"""bench() on the tiny bundle: the report's structure, ratios and bookkeeping (never speed)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from edgegen.benchmarks import BenchConfig, BenchReport, bench
from edgegen.core.errors import BundleError, ConfigError, ProviderError
from edgegen.runtime.providers import available

FAST = dict(iters=3, warmup_iters=1, warmup_s=0.0, rounds=2, measure_matmul=False,
            noise_window_s=0.0)
# where OpenVINO is installed (make setup installs it) its peers must run; elsewhere bench says
# it is not installed, and nothing else
HAS_OPENVINO = importlib.util.find_spec("openvino") is not None


def _assert_openvino_ran(r: BenchReport, peer: str, key: str) -> None:
    """``peer`` ran and its ``key`` is in the results; where OpenVINO is not installed, bench
    said exactly that instead."""
    if HAS_OPENVINO:
        assert peer not in r.unavailable, r.unavailable[peer]
        assert key in {x.key for x in r.results}
    else:
        assert r.unavailable[peer].startswith("not installed"), r.unavailable


def test_offline_report(tiny_bundle: Path, tmp_path: Path) -> None:
    r = bench(BenchConfig(bundle=tiny_bundle, batches=(1, 4), tune=True,
                          peers=("torch", "ort-default", "openvino"), **FAST))
    assert r.passed and not r.failures
    _assert_openvino_ran(r, "openvino", "openvino/fp32/cpu")
    keys = {(x.key, x.batch) for x in r.results}
    for b in (1, 4):
        for v in ("fp32", "fp16", "int8"):
            assert (f"edgegen/{v}/cpu", b) in keys
        assert ("torch/fp32/cpu", b) in keys and ("ort-default/fp32/cpu", b) in keys
        assert (("openvino/fp32/cpu", b) in keys) == HAS_OPENVINO
        tuned = [x for x in r.results if x.contender == "tuned" and x.batch == b]
        assert len(tuned) == 4 and sum(x.best_tuned for x in tuned) == 1
    for x in r.results:
        assert x.latency.count == 3 and x.latency.batch == x.batch
        assert x.session_create_s > 0 and x.first_run_s > 0 and x.warmup_iters >= 1
        assert x.speedup_p50 is not None and x.speedup_throughput is not None
        assert x.fidelity is not None and x.fidelity_source.startswith("manifest")
        assert x.achieved_gflops > 0 and x.matmul_fraction is None  # no yardstick measured
    for t in r.find("torch"):
        assert t.speedup_p50 == pytest.approx(1.0) and t.speedup_throughput == 1.0
    edge = r.find("edgegen", "fp32", 4)[0]
    torch_ = r.find("torch", batch=4)[0]
    assert edge.speedup_throughput == pytest.approx(
        edge.latency.images_per_s / torch_.latency.images_per_s)
    assert edge.settings["intra_op_threads"] == r.threads["budget"]
    assert r.flops["per_image"] > 0 and r.machine["usable_cores"] >= 1
    assert r.versions["onnxruntime"]
    assert all(x.contender != "tuned" or x.best_tuned for x in r.table_rows())
    data = json.loads(r.to_json())
    assert data["results"][0]["latency"]["p50_ms"] > 0 and data["config"]["batches"] == [1, 4]


def test_matmul_yardstick_and_efficiency(tiny_bundle: Path) -> None:
    from edgegen.benchmarks.machine import matmul_rate

    mm = matmul_rate(threads=1, sizes=(64, 128), seconds=0.01)
    assert mm.gflops == max(mm.by_size.values()) and set(mm.by_size) == {64, 128}
    r = bench(BenchConfig(bundle=tiny_bundle, batches=(2,), precisions=("fp32",), peers=(),
                          **{**FAST, "measure_matmul": True}))
    x = r.results[0]
    assert r.matmul is not None and x.speedup_p50 is None  # no PyTorch peer, no ratio
    # at the start, after each of the 2 interleaved rounds and at the end; the best counts
    assert len(r.matmul.measurements) == 4
    assert r.matmul.gflops == max(r.matmul.measurements)
    assert x.matmul_fraction == pytest.approx(x.achieved_gflops / r.matmul.gflops)
    assert x.achieved_gflops == pytest.approx(
        r.flops["per_image"] * x.latency.images_per_s / 1e9)


def test_noise_is_recorded_before_during_and_after(tiny_bundle: Path) -> None:
    r = bench(BenchConfig(bundle=tiny_bundle, batches=(1, 2), precisions=("fp32",),
                          peers=("ort-default",), **{**FAST, "measure_matmul": True,
                                                     "noise_window_s": 0.05}))
    labels = [s.label for s in r.noise.samples]
    assert labels[0] == "before (idle)" and labels[-1] == "after (idle)"
    assert {"batch 1 round 1", "batch 1 round 2", "batch 2 round 1", "batch 2 round 2"} \
        <= set(labels)
    rounds = [s for s in r.noise.samples if s.label.startswith("batch")]
    assert all(s.matmul_gflops and s.matmul_gflops > 0 for s in rounds)  # interleaved
    for s in r.noise.samples:
        assert s.seconds > 0
        if s.others is not None:  # Linux: /proc/stat
            assert 0.0 <= s.others <= 1.0 and 0.0 <= s.steal <= 1.0
            assert len(s.load_average) == 3
    data = json.loads(r.to_json())["noise"]
    assert set(data) >= {"samples", "thresholds", "noisy", "reasons", "summary"}
    assert data["thresholds"]["others"] == 0.10 and isinstance(data["noisy"], bool)
    assert data["samples"][0]["label"] == "before (idle)"
    assert data["summary"]["yardstick_gflops"][0] <= data["summary"]["yardstick_gflops"][1]
    assert data["noisy"] == bool(data["reasons"])


def test_noise_verdict_follows_the_thresholds() -> None:
    from edgegen.benchmarks.noise import NoiseRecord, NoiseSample

    quiet = NoiseRecord([NoiseSample("before (idle)", 1.0, 0.01, 0.0, [0.1, 0.1, 0.1],
                                     {"min": 2400.0, "mean": 2400.0, "max": 2400.0}, None),
                         NoiseSample("batch 1 round 1", 1.0, 0.05, 0.01, None, None, 400.0),
                         NoiseSample("batch 1 round 2", 1.0, 0.02, 0.0, None, None, 420.0)])
    quiet.judge()
    assert not quiet.noisy and quiet.reasons == []
    busy = NoiseRecord([NoiseSample("before (idle)", 1.0, 0.45, 0.03, None, None, None),
                        NoiseSample("batch 1 round 1", 1.0, 0.0, 0.0, None, None, 200.0),
                        NoiseSample("batch 1 round 2", 1.0, 0.0, 0.0, None, None, 400.0)])
    busy.judge()
    assert busy.noisy and len(busy.reasons) == 3
    assert "45%" in busy.reasons[0] and "before (idle)" in busy.reasons[0]


def test_a_local_servers_cpu_is_not_noise_but_idle_windows_still_are() -> None:
    from edgegen.benchmarks.noise import NoiseRecord, NoiseSample
    from edgegen.benchmarks.remote import Endpoint

    def record(idle_others: float, server: bool) -> NoiseRecord:
        r = NoiseRecord([NoiseSample("before (idle)", 1.0, idle_others, 0.0, None, None, None,
                                     idle=True),
                         NoiseSample("served round 1", 1.0, 0.6, 0.0, None, None, None)],
                        server_on_this_machine=server)
        r.judge()
        return r

    # the server's 60% during the rounds counts as others for a remote or unknown server ...
    assert record(0.01, server=False).noisy
    # ... but is the measurement itself when the server runs here; the idle windows are judged
    local = record(0.01, server=True)
    assert not local.noisy and local.summary["others_max"] == 0.01
    assert "idle windows only" in local.summary["others_judged_on"]
    assert record(0.3, server=True).noisy  # someone else ran while the server was idle

    def endpoint(host: str) -> Endpoint:
        return Endpoint(host, 8000, "m", "z", "label", "image", 8, 1, {})

    assert [endpoint(h).on_this_machine for h in ("127.0.0.1", "localhost", "::1", "127.0.0.2",
                                                  "10.0.0.5", "gpu-box")] == \
        [True, True, True, True, False, False]


def test_plain_peers_run_the_unrewritten_export(tiny_bundle: Path, tmp_path: Path) -> None:
    import onnx

    from edgegen.benchmarks.runners import plain_export
    from edgegen.runtime.bundle import load_bundle

    plain = plain_export(load_bundle(tiny_bundle), tmp_path)
    ops = [n.op_type for n in onnx.load(str(plain)).graph.node]
    assert ops.count("ConvTranspose") == 2 and "DepthToSpace" not in ops
    shipped = [n.op_type for n in onnx.load(str(tiny_bundle / "model.onnx")).graph.node]
    assert shipped.count("Conv") == 4 and shipped.count("ConvTranspose") == 1
    r = bench(BenchConfig(bundle=tiny_bundle, batches=(2,), precisions=("fp32",),
                          peers=("ort-plain", "openvino-plain"), **FAST))
    assert not r.failures
    assert {x.contender for x in r.results} >= {"edgegen", "ort-plain"}
    _assert_openvino_ran(r, "openvino-plain", "openvino-plain/fp32/cpu")


def test_server_scenario(tiny_bundle: Path) -> None:
    r = bench(BenchConfig(bundle=tiny_bundle, scenario="server", precisions=("fp32",),
                          peers=("ort-default", "openvino"), qps=200.0,
                          server_duration_s=0.2, max_batch=4, **FAST))
    # edgegen batching up to 4, edgegen as the batch-1 server, ort-default batching up to 4
    assert not r.results and [(s.contender, s.max_batch) for s in r.server] == [
        ("edgegen", 4), ("edgegen", 1), ("ort-default", 4)]
    for s in r.server:
        assert s.issued > 0 and s.completed + s.unfinished == s.issued
        assert s.workers == r.threads["server_workers"]
    if HAS_OPENVINO:  # compiled per shape: the server scenario leaves it out and says so
        assert r.unavailable == {"openvino (server)": "measured in the offline scenario only"}
    else:
        assert set(r.unavailable) == {"openvino"}


def test_dynamic_batching_runs_beside_the_batch_1_server(tiny_bundle: Path) -> None:
    r = bench(BenchConfig(bundle=tiny_bundle, scenario="server", precisions=("fp32",),
                          peers=(), qps=400.0, server_duration_s=0.2, max_batch=8,
                          max_delay_ms=5.0, p99_bound_ms=1000.0, sweep_steps=1, **FAST))
    assert set(r.sweeps) == {"edgegen/fp32/cpu", "edgegen/fp32/cpu batch-1"}
    dynamic, single = r.server
    assert (dynamic.max_batch, dynamic.max_delay_ms) == (8, 5.0)
    assert (single.max_batch, single.max_delay_ms, single.mean_batch) == (1, 0.0, 1.0)
    assert r.threads["server_max_delay_ms"] == 5.0


def test_an_absent_provider_is_refused_naming_what_is_there(tiny_bundle: Path) -> None:
    if "CUDAExecutionProvider" in available():
        pytest.skip("this machine has the CUDA provider: nothing to refuse")
    with pytest.raises(ProviderError, match="available: .*CPUExecutionProvider"):
        bench(BenchConfig(bundle=tiny_bundle, provider="cuda", **FAST))


def test_errors_are_clear(tiny_bundle: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown peer"):
        bench(BenchConfig(bundle=tiny_bundle, peers=("tensorflow",), **FAST))
    with pytest.raises(ConfigError, match="positive batch"):
        bench(BenchConfig(bundle=tiny_bundle, batches=(0,), **FAST))
    with pytest.raises(ConfigError, match="for --provider cuda"):
        bench(BenchConfig(bundle=tiny_bundle, cuda_graph=True, **FAST))
    with pytest.raises(BundleError):
        bench(BenchConfig(bundle=tmp_path / "nowhere", **FAST))


def test_io_binding_call_matches_plain_run(tiny_bundle: Path) -> None:
    """The I/O-binding path (device buffers on CUDA) exercised on CPU: same image out."""
    import numpy as np

    from edgegen.benchmarks.runners import Inputs, ort_edgegen
    from edgegen.runtime.providers import ProviderSpec, make_session

    inputs = Inputs.make(5, 3, _z_dim(tiny_bundle), 10)
    path = tiny_bundle / "model.onnx"
    c = ort_edgegen(path, ProviderSpec(), inputs, variant="fp32", io_binding=True)
    bound = c.call()[-1].numpy()  # the output OrtValue bound by the call
    plain = make_session(path).run(None, {"z": inputs.z, "label": inputs.label})[0]
    assert bound.shape == (3, 1, 28, 28) and np.array_equal(bound, plain)
    assert c.settings["io_binding"] is True


def _z_dim(bundle: Path) -> int:
    return int(json.loads((bundle / "manifest.json").read_text())["generator"]["z_dim"])
