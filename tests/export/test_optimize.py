"""The export's graph rewrites end to end: applied by default and recorded in the manifest,
skipped by --no-optimize, a rewrite that is not exact dropped (export.optimize)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from typer.testing import CliRunner

from edgegen.cli.app import app
from edgegen.export.golden import load_golden_set
from edgegen.export.optimize import Case, OptimizeConfig, optimize_model
from edgegen.export.rewrite import REWRITES, Rewrite, Site


def _ops(path: Path) -> list[str]:
    return [n.op_type for n in onnx.load(str(path)).graph.node]


def test_bundle_records_the_rewrites_it_applied(tiny_bundle: Path) -> None:
    manifest = json.loads((tiny_bundle / "manifest.json").read_text())
    opt = manifest["generator"]["optimization"]
    assert opt["enabled"] is True and opt["tolerance"]["atol"] == 1e-5
    assert [r["name"] for r in opt["applied"]] == ["phase-conv", "activation-up",
                                                    "d2s-into-convtranspose",
                                                    "embedding-into-gemm"]
    for r in opt["applied"]:
        assert r["sites"] and r["out_of_tolerance"] == 0 and r["max_abs"] <= 1e-5
    phase = opt["applied"][0]["sites"]
    # the tiny cdcgan (width 8): 16 -> 8 channels is rewritten, 8 -> 1 left as ConvTranspose
    assert len(phase) == 1 and phase[0]["pattern"] == "ConvTranspose" and \
        phase[0]["channels"] == [16, 8] and phase[0]["phase_kernels"] == [[2, 2], [2, 2]]
    assert opt["vs_unrewritten"]["out_of_tolerance"] == 0
    assert opt["vs_golden"]["cases"] == 3 and opt["vs_golden"]["rewritten_misses"] == 0
    for b in ("1", "64"):
        e = opt["effect"]["per_batch"][b]
        assert e["rewritten_p50_ms"] > 0 and e["speedup"] == pytest.approx(
            e["unrewritten_p50_ms"] / e["rewritten_p50_ms"])
    ops = _ops(tiny_bundle / "model.onnx")
    assert ops.count("Conv") == 4 and ops.count("ConvTranspose") == 1
    assert "DepthToSpace" not in ops  # folded into the thin ConvTranspose
    meta = {p.key: p.value for p in onnx.load(str(tiny_bundle / "model.onnx")).metadata_props}
    assert meta["graph_rewrites"] == ("phase-conv,activation-up,d2s-into-convtranspose,"
                                      "embedding-into-gemm")
    assert "`phase-conv`" in (tiny_bundle / "README.md").read_text()
    # int8 is made from the rewritten graph: its convolutions are QDQ Convs (QLinearConv)
    int8 = onnx.load(str(tiny_bundle / "model.int8.onnx"))
    conv_inputs = [n.input[0] for n in int8.graph.node if n.op_type == "Conv"]
    producers = {o: n.op_type for n in int8.graph.node for o in n.output}
    assert len(conv_inputs) == 4 and {producers[i] for i in conv_inputs} == {"DequantizeLinear"}
    assert manifest["variants"]["int8"]["quantization"]["left_in_float"] == [
        "ConvTranspose", "Gemm with a run-time C"]


def test_no_optimize_ships_the_exporters_graph(tmp_path: Path, tiny_run: Path,
                                               tiny_bundle: Path) -> None:
    out = tmp_path / "plain"
    res = CliRunner().invoke(app, ["export", str(tiny_run), "--out", str(out), "--precision",
                                   "fp32", "--golden-sets", "2", "--no-optimize"])
    assert res.exit_code == 0, res.output
    assert "graph rewrites: off (--no-optimize)" in res.output
    opt = json.loads((out / "manifest.json").read_text())["generator"]["optimization"]
    assert opt["enabled"] is False and opt["applied"] == []
    ops = _ops(out / "model.onnx")
    assert ops.count("ConvTranspose") == 2 and "Conv" not in ops
    # same numbers as the rewritten bundle on the same golden inputs, within the tolerance
    (z, label), expected = load_golden_set(tiny_bundle / "golden" / "test_data_set_0")
    plain = ort.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
    rewritten = ort.InferenceSession(str(tiny_bundle / "model.onnx"),
                                     providers=["CPUExecutionProvider"])
    a = plain.run(None, {"z": z, "label": label})[0]
    b = rewritten.run(None, {"z": z, "label": label})[0]
    np.testing.assert_allclose(b, a, atol=1e-5, rtol=1e-5)
    np.testing.assert_allclose(a, expected, atol=1e-5, rtol=1e-5)


def _inexact(model: onnx.ModelProto, form: str) -> list[Site]:
    """A 'rewrite' that changes the numbers: scales the first weight matrix by 1.01."""
    from onnx import numpy_helper

    t = next(t for t in model.graph.initializer if len(t.dims) >= 2)
    t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(t) * np.float32(1.01), t.name))
    return [Site([t.name], "weights", "scaled")]


def test_a_rewrite_that_is_not_exact_is_dropped(tmp_path: Path, tiny_bundle: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from edgegen.benchmarks.runners import plain_export
    from edgegen.runtime.bundle import load_bundle

    src = plain_export(load_bundle(tiny_bundle), tmp_path)
    monkeypatch.setattr("edgegen.export.optimize.REWRITES",
                        (*REWRITES[:1], Rewrite("scale", "not exact", _inexact), *REWRITES[1:]))
    (z, label), expected = load_golden_set(tiny_bundle / "golden" / "test_data_set_0")
    cases = [Case("golden", {"z": z, "label": label}, expected),
             Case("fresh", {"z": z[:1], "label": label[:1]})]
    dst = tmp_path / "out.onnx"
    opt = optimize_model(src, dst, cases, OptimizeConfig(timing_s=0.0))
    assert [r["name"] for r in opt["applied"]] == ["phase-conv", "activation-up",
                                                    "d2s-into-convtranspose",
                                                    "embedding-into-gemm"]
    assert [d["name"] for d in opt["dropped"]] == ["scale"]
    assert opt["dropped"][0]["out_of_tolerance"] > 0 and opt["dropped"][0]["max_abs"] > 1e-4
    assert "effect" not in opt  # timing off
    got = ort.InferenceSession(str(dst), providers=["CPUExecutionProvider"]).run(
        None, {"z": z, "label": label})[0]
    np.testing.assert_allclose(got, expected, atol=1e-5, rtol=1e-5)


def test_a_graph_without_patterns_is_shipped_as_it_is(tmp_path: Path) -> None:
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 3])])
    src = tmp_path / "relu.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(src))
    opt = optimize_model(src, tmp_path / "out.onnx",
                         [Case("x", {"x": np.ones((2, 3), np.float32)})], OptimizeConfig())
    assert opt["applied"] == [] and {n["name"] for n in opt["not_applied"]} == {
        r.name for r in REWRITES}
    assert _ops(tmp_path / "out.onnx") == ["Relu"]
