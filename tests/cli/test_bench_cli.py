"""``edgegen bench`` through Typer's CliRunner: table, JSON, plot, exit codes."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from edgegen.cli.app import app
from edgegen.runtime.providers import available

runner = CliRunner()
FAST = ["--iters", "3", "--warmup-iters", "1", "--warmup-s", "0", "--rounds", "1",
        "--noise-window", "0"]


def test_table_json_and_plot(tiny_bundle: Path, tmp_path: Path) -> None:
    out, png = tmp_path / "bench.json", tmp_path / "bench.png"
    res = runner.invoke(app, ["bench", str(tiny_bundle), "--batch", "1,2", "--peers",
                              "torch,ort-default", *FAST, "--no-matmul", "--json", str(out),
                              "--plot", str(png)])
    assert res.exit_code == 0, res.output
    for col in ("variant", "provider", "batch", "p50 ms", "p99 ms", "img/s", "× torch"):
        assert col in res.output
    assert "MFLOP per image" in res.output and "outside the timed region" in res.output
    data = json.loads(out.read_text())
    assert {r["contender"] for r in data["results"]} == {"edgegen", "torch", "ort-default"}
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _fails(args: list[str], match: str) -> None:
    res = runner.invoke(app, ["bench", *args])
    assert res.exit_code == 2, res.output
    assert match in res.output and "Traceback" not in res.output


def test_an_absent_provider_exits_2(tiny_bundle: Path) -> None:
    if "CUDAExecutionProvider" in available():
        pytest.skip("this machine has the CUDA provider: nothing to refuse")
    _fails([str(tiny_bundle), "--provider", "cuda", *FAST], "available: ")
    _fails([str(tiny_bundle), "--provider", "cuda", *FAST], "CPUExecutionProvider")


def test_bad_requests_exit_2(tiny_bundle: Path, tmp_path: Path) -> None:
    b = str(tiny_bundle)
    _fails([b, "--provider", "gpu9000"], "unknown provider")
    _fails([b, "--peers", "tensorflow"], "unknown peer")
    _fails([b, "--batch", "1,x"], "comma-separated integers")
    _fails([b, "--precision", "fp8"], "unknown precision")
    _fails([b, "--spinning", "maybe"], "--spinning takes on, off or default")
    _fails([str(tmp_path / "nowhere")], "does not exist")


def test_a_contender_that_fails_makes_bench_exit_1(tiny_bundle: Path, tmp_path: Path,
                                                   copy_bundle: Callable[..., Path],
                                                   rehash: Callable[[Path, str], None]) -> None:
    """A variant that runs at batch 1 but breaks at batch 2 (a Reshape to a fixed batch): the
    report records the failure, the other rows are still shown, and the exit code is 1."""
    import onnx
    from onnx import helper


    bundle = copy_bundle(tiny_bundle, tmp_path / "b", None)
    model = onnx.load(str(bundle / "model.fp16.onnx"))
    image = model.graph.output[0].name
    model.graph.output[0].name = "image_before"
    for node in model.graph.node:
        node.output[:] = ["image_before" if o == image else o for o in node.output]
    model.graph.initializer.append(onnx.numpy_helper.from_array(
        np.array([1, 1, 28, 28], np.int64), "one_image"))
    model.graph.node.append(helper.make_node("Reshape", ["image_before", "one_image"], [image]))
    model.graph.output[0].name = image
    onnx.save(model, str(bundle / "model.fp16.onnx"))
    rehash(bundle, "model.fp16.onnx")
    out = tmp_path / "bench.json"
    res = runner.invoke(app, ["bench", str(bundle), "--precision", "fp32,fp16", "--batch", "1,2",
                              "--peers", "none", *FAST, "--no-matmul", "--json", str(out)])
    assert res.exit_code == 1, res.output
    assert "bench failed" in res.output and "edgegen/fp16/cpu batch 2" in res.output
    data = json.loads(out.read_text())
    assert data["passed"] is False and "edgegen/fp16/cpu batch 2" in data["failures"]
    assert {(r["variant"], r["batch"]) for r in data["results"]} == {
        ("fp32", 1), ("fp32", 2), ("fp16", 1)}


def test_from_json_puts_a_device_report_beside_the_workstations(tiny_bundle: Path,
                                                                tmp_path: Path) -> None:
    """`--from-json` measures nothing: it reads `edgegen bench --json` and the on-device bench's
    JSON (edgegen.runtime.bench, the same shape) and shows their rows side by side."""
    from edgegen.runtime.bench import main as device_bench

    work, dev = tmp_path / "workstation.json", tmp_path / "device.json"
    res = runner.invoke(app, ["bench", str(tiny_bundle), "--batch", "1", "--peers", "none",
                              "--precision", "fp32", *FAST, "--no-matmul", "--json", str(work)])
    assert res.exit_code == 0, res.output
    assert device_bench([str(tiny_bundle), "--batch", "1,2", "--variant", "fp32", *FAST,
                         "--json", str(dev)]) == 0
    res = runner.invoke(app, ["bench", "--from-json", str(work), "--from-json", str(dev)])
    assert res.exit_code == 0, res.output
    assert "[1] " in res.output and "edgegen bench ·" in res.output
    assert "[2] " in res.output and "edgegen-runtime bench (python)" in res.output
    rows = [line for line in res.output.splitlines() if "│" in line]
    assert sum("[2]" in r for r in rows) == 2 and sum("[1]" in r for r in rows) == 2  # batch 2: —
    bad = tmp_path / "bad.json"
    bad.write_text('{"results": [{"variant": "fp32"}]}')
    res = runner.invoke(app, ["bench", "--from-json", str(bad)])
    assert res.exit_code == 2 and "is not a bench report" in res.output, res.output
