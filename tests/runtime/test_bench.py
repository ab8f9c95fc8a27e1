"""edgegen.runtime.bench (the on-device benchmark) and edgegen.runtime.cli (the console script):
real sessions on the tiny bundle, the JSON shape `edgegen bench` writes and reads back, the same
defaults and noise thresholds as the toolchain's bench, clear errors before any work."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from edgegen.runtime import bench as device
from edgegen.runtime.cli import main as cli_main
from edgegen.runtime.errors import BundleError, ConfigError

QUICK = ["--iters", "6", "--rounds", "2", "--warmup-iters", "3", "--warmup-s", "0",
         "--noise-window", "0"]


def test_bench_times_every_variant_and_batch_in_bench_reports_shape(tiny_bundle: Path,
                                                                    tmp_path: Path) -> None:
    from edgegen.benchmarks.results import BenchReport, BenchResult, load_report
    from edgegen.benchmarks.stats import LatencyStats

    out = tmp_path / "device.json"
    assert device.main([str(tiny_bundle), "--batch", "1,3", *QUICK, "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    assert set(data) == {"passed"} | {f.name for f in dataclasses.fields(BenchReport)}
    assert data["passed"] and data["source"] == "edgegen-runtime bench (python)"
    assert [(r["variant"], r["batch"]) for r in data["results"]] \
        == [(v, b) for b in (1, 3) for v in ("fp32", "fp16", "int8")]
    for r in data["results"]:
        assert set(r) == {f.name for f in dataclasses.fields(BenchResult)}
        assert set(r["latency"]) == {f.name for f in dataclasses.fields(LatencyStats)}
        lat = r["latency"]
        assert lat["count"] == 6
        assert lat["min_ms"] <= lat["p50_ms"] <= lat["p99_ms"] <= lat["max_ms"]
        assert r["session_create_s"] > 0 and r["first_run_s"] > 0 and r["warmup_iters"] >= 3
        assert r["contender"] == "edgegen" and r["settings"]["format"] == "onnx"
    m = data["machine"]
    assert m["cpu"] and m["usable_cores"] >= 1 and "CPUExecutionProvider" in m["providers"]
    assert set(m["isa"]) == {"avx2", "avx512", "neon", "sve"} and len(m["load_average"]) == 3
    assert data["versions"]["onnxruntime_module"] and data["noise"]["thresholds"]
    back = load_report(out)  # the toolchain's reader (edgegen bench --from-json)
    assert {(r.contender, r.variant, r.batch) for r in back.results} == \
        {("edgegen", v, b) for b in (1, 3) for v in ("fp32", "fp16", "int8")}
    assert back.source == data["source"] != "edgegen bench"


def test_defaults_and_noise_thresholds_are_the_toolchains(tiny_bundle: Path) -> None:
    from edgegen.benchmarks.noise import THRESHOLDS
    from edgegen.benchmarks.results import BenchConfig

    d, t = device.DeviceBenchConfig(bundle=tiny_bundle), BenchConfig()
    for name in ("warmup_iters", "warmup_s", "iters", "duration_s", "rounds", "seed",
                 "noise_window_s", "spinning"):
        assert getattr(d, name) == getattr(t, name), name
    assert device.NOISE_THRESHOLDS == THRESHOLDS


def test_latency_stats_are_the_toolchains() -> None:
    from edgegen.benchmarks.stats import summarize

    samples = np.random.default_rng(0).integers(10_000, 2_000_000, 137).tolist()
    assert device.latency_stats(samples, 8) == dataclasses.asdict(summarize(samples, 8))


def test_rotation_interleaves_like_the_harness() -> None:
    from edgegen.benchmarks.harness import rotation

    names = ["fp32", "fp16", "int8"]
    assert [device.rotation(names, r) for r in range(6)] == [rotation(names, r) for r in range(6)]


@pytest.mark.parametrize("args,message", [
    (["--batch", "0"], "positive batch sizes"),
    (["--batch", "a"], "comma-separated integers"),
    (["--format", "ort"], "no ORT-format models"),
    (["--variant", "bf16"], "no 'bf16' variant"),
    (["--rounds", "0"], "at least 1"),
    (["--provider", "tpu"], "unknown provider"),
])
def test_bad_options_are_refused_before_any_timing(tiny_bundle: Path, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str],
                                                   args: list[str], message: str) -> None:
    out = tmp_path / "r.json"
    assert device.main([str(tiny_bundle), *QUICK, *args, "--json", str(out)]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_json_into_a_missing_folder_is_refused_first(tiny_bundle: Path, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    assert device.main([str(tiny_bundle), *QUICK, "--json", str(tmp_path / "no" / "r.json")]) == 2
    assert "existing folder" in capsys.readouterr().err


def test_a_changed_model_is_refused(tiny_bundle: Path, tmp_path: Path) -> None:
    root = Path(shutil.copytree(tiny_bundle, tmp_path / "b"))
    data = bytearray((root / "model.int8.onnx").read_bytes())
    data[len(data) // 2] ^= 1
    (root / "model.int8.onnx").write_bytes(bytes(data))
    with pytest.raises(BundleError, match="model.int8.onnx has sha256"):
        device.bench(device.DeviceBenchConfig(bundle=root, iters=2, noise_window_s=0))


def test_config_is_validated() -> None:
    with pytest.raises(ConfigError, match="--duration"):
        device.validate(device.DeviceBenchConfig(bundle=Path("."), duration_s=0))


def test_console_script_generates_pythons_png_and_benches(tiny_bundle: Path, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]
                                                          ) -> None:
    from edgegen.runtime import Generator
    from edgegen.runtime.postprocess import encode_png

    out = tmp_path / "seven.png"
    assert cli_main(["generate", str(tiny_bundle), "7", "42", str(out)]) == 0
    assert out.read_bytes() == encode_png(Generator.load(tiny_bundle).generate([7], seed=42)[0])
    assert cli_main(["generate", str(tiny_bundle), "12", "42", str(tmp_path / "x.png")]) == 2
    assert "out of range" in capsys.readouterr().err and not (tmp_path / "x.png").exists()
    assert cli_main(["bench", str(tiny_bundle), "--batch", "2", "--variant", "fp32", *QUICK]) == 0
    assert "fp32" in capsys.readouterr().out
    assert cli_main(["frobnicate"]) == 2
