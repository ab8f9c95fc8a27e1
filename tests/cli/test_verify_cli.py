"""``edgegen verify`` through Typer's CliRunner: exit codes, table, JSON, tampered bundles."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from edgegen.cli.app import app
from edgegen.runtime.providers import available

runner = CliRunner()
QUICK = ["--batch", "1,32", "--repeats", "2"]


def test_fresh_bundle_passes_with_table_and_json(tmp_path: Path, tiny_bundle: Path) -> None:
    out = tmp_path / "reports" / "verify.json"
    res = runner.invoke(app, ["verify", str(tiny_bundle), "--json", str(out)])
    assert res.exit_code == 0, res.output
    for word in ("golden", "pytorch@1", "pytorch@256", "labels", "determinism", "placement",
                 "cpu/fp32", "cpu/fp16", "cpu/int8", "PASS", "tolerance rule"):
        assert word in res.output, word
    assert "FAIL" not in res.output
    doc = json.loads(out.read_text())
    assert doc["passed"] is True and doc["variants"] == ["fp32", "fp16", "int8"]
    assert "atol + rtol * |reference|" in doc["tolerance_rule"]
    assert doc["tolerances"]["cpu/fp32"] == {"atol": 1e-5, "rtol": 1e-5}
    golden = next(c for c in doc["checks"] if c["check"] == "golden")
    stats = golden["stats"]
    for key in ("max_abs", "mean_abs", "median_abs", "p99_abs", "max_rel", "p99_rel",
                "psnr_db", "cosine", "out_of_tolerance", "min_passing_atol"):
        assert isinstance(stats[key], (int, float)), key
    assert 0 <= stats["max_abs"] < 1e-5 and stats["out_of_tolerance"] == 0
    labels = next(c for c in doc["checks"] if c["check"] == "labels")
    assert labels["details"]["agreement"] == 1.0
    assert doc["sessions"][0]["session_providers"] == ["CPUExecutionProvider"]
    assert not list(out.parent.glob(".*.tmp"))  # written atomically, nothing left behind


def test_perturbed_model_fails_with_exit_1(tmp_path: Path, tiny_bundle: Path,
                                           tiny_run: Path,
                                           copy_bundle: Callable[..., Path],
                                           rehash: Callable[[Path, str], None],
                                           perturb_model: Callable[..., str]) -> None:
    b = copy_bundle(tiny_bundle, tmp_path / "b", tiny_run / "checkpoint.safetensors")
    perturb_model(b, 1.01)
    rehash(b, "model.onnx")
    out = tmp_path / "v.json"
    res = runner.invoke(app, ["verify", str(b), "--precision", "fp32", "--json", str(out),
                              *QUICK])
    assert res.exit_code == 1, res.output
    assert "FAIL cpu/fp32/golden" in res.output and "out of tolerance" in res.output
    assert "parity failed" in res.output and "cpu/fp32/pytorch@32" in res.output
    assert "Traceback" not in res.output
    doc = json.loads(out.read_text())  # the report is written even when it fails
    assert doc["passed"] is False
    assert {c["check"] for c in doc["checks"] if c["status"] == "fail"} >= {"golden",
                                                                            "pytorch@1"}


def test_edited_golden_exit_2_without_hash_exit_1_with(tmp_path: Path, tiny_bundle: Path,
                                                       tiny_run: Path,
                                                       copy_bundle: Callable[..., Path],
                                                       rehash: Callable[[Path, str], None],
                                                       edit_golden: Callable[..., str]) -> None:
    b = copy_bundle(tiny_bundle, tmp_path / "b", tiny_run / "checkpoint.safetensors")
    rel = edit_golden(b, set_index=2)
    res = runner.invoke(app, ["verify", str(b), *QUICK])
    assert res.exit_code == 2, res.output
    assert "test_data_set_2/output_0.pb" in res.output and "sha256" in res.output
    assert "Traceback" not in res.output
    rehash(b, rel)
    res = runner.invoke(app, ["verify", str(b), "--precision", "fp32", *QUICK])
    assert res.exit_code == 1, res.output
    assert "FAIL cpu/fp32/golden" in res.output


def test_unavailable_provider_exit_2(tiny_bundle: Path) -> None:
    if "CUDAExecutionProvider" in available():
        pytest.skip("this machine has the CUDA provider")
    res = runner.invoke(app, ["verify", str(tiny_bundle), "--provider", "cuda"])
    assert res.exit_code == 2, res.output
    assert "available: " in res.output and "CPUExecutionProvider" in res.output
    assert ".[gpu]" in res.output  # brackets survive the console's markup
    assert "Traceback" not in res.output and "PASS" not in res.output


@pytest.mark.parametrize("args,match", [
    (["--batch", "1,x"], "comma-separated integers"),
    (["--repeats", "1"], "at least 2"),
    (["--precision", "bf16"], "unknown precision 'bf16'"),
    (["--provider", "gpu"], "unknown provider 'gpu'"),
    (["--atol", "-1"], "--atol must be"),
])
def test_usage_errors_exit_2(tiny_bundle: Path, args: list[str], match: str) -> None:
    res = runner.invoke(app, ["verify", str(tiny_bundle), *args])
    assert res.exit_code == 2, res.output
    assert match in res.output, res.output


def test_missing_bundle_exit_2(tmp_path: Path) -> None:
    res = runner.invoke(app, ["verify", str(tmp_path / "nope")])
    assert res.exit_code == 2 and "does not exist" in res.output


def test_help_states_the_tolerance_rule() -> None:
    res = runner.invoke(app, ["verify", "--help"])
    assert res.exit_code == 0
    text = " ".join(res.output.split())
    assert "atol + rtol * |ref|" in text and "fp32-cpu 1e-05/1e-05" in text
