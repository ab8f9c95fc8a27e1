"""Every graph rewrite is exact on random weights and shapes, and leaves what it does not support
alone (export.rewrite). Graphs are built with onnx.helper and run on ONNX Runtime with its own
optimizations off (the rewrite alone is under test) and on (the deployment path)."""

from __future__ import annotations

import itertools

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgegen.export.rewrite import (
    activation_up,
    convtranspose_axis,
    d2s_into_convtranspose,
    embedding_into_gemm,
    phase_conv,
    upsample_conv_axis,
)

ATOL = 2e-5  # float32 sums of up to a few hundred products in another order


def _model(nodes: list, cin: int, cout: int, inits: dict[str, np.ndarray]) -> onnx.ModelProto:
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", cin, "h", "w"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", cout, "oh", "ow"])],
        [numpy_helper.from_array(v, k) for k, v in inits.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model, full_check=True)
    return model


def _run(model: onnx.ModelProto, x: np.ndarray, optimize: bool = False) -> np.ndarray:
    so = ort.SessionOptions()
    so.graph_optimization_level = (ort.GraphOptimizationLevel.ORT_ENABLE_ALL if optimize
                                   else ort.GraphOptimizationLevel.ORT_DISABLE_ALL)
    return ort.InferenceSession(model.SerializeToString(), so,
                                providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]


def _copy(model: onnx.ModelProto) -> onnx.ModelProto:
    out = onnx.ModelProto()
    out.CopyFrom(model)
    return out


def _exact(model: onnx.ModelProto, rewritten: onnx.ModelProto, cin: int,
           batches: tuple[int, ...] = (1, 3), hw: tuple[int, int] = (5, 6)) -> None:
    onnx.checker.check_model(rewritten, full_check=True)
    rng = np.random.default_rng(7)
    for b in batches:
        x = rng.standard_normal((b, cin, *hw)).astype(np.float32)
        ref = _run(model, x)
        for optimize in (False, True):
            got = _run(rewritten, x, optimize)
            assert got.shape == ref.shape
            np.testing.assert_allclose(got, ref, atol=ATOL, rtol=1e-5)


def _convtranspose(cin: int, cout: int, k: int, s: int, pads: list[int], out_pad: int,
                   bias: bool = True, **extra) -> onnx.ModelProto:
    rng = np.random.default_rng(cin * 100 + cout * 10 + k)
    inits = {"w": rng.standard_normal((cin, cout, k, k)).astype(np.float32)}
    inputs = ["x", "w"]
    if bias:
        inits["b"] = rng.standard_normal(cout).astype(np.float32)
        inputs.append("b")
    node = helper.make_node("ConvTranspose", inputs, ["y"], strides=[s, s], pads=pads,
                            output_padding=[out_pad, out_pad], kernel_shape=[k, k], **extra)
    return _model([node], cin, cout, inits)


# kernel, stride, pads (top, left, bottom, right), output_padding: every combination the
# rewrite claims (square stride, dilation 1, groups 1, kernel >= stride), asymmetric and
# "negative" (cropping) phase pads included.
CT_CASES = [(4, 2, [1, 1, 1, 1], 0), (4, 2, [0, 0, 0, 0], 1), (4, 2, [2, 2, 2, 2], 0),
            (3, 2, [1, 1, 1, 1], 1), (3, 2, [1, 0, 0, 1], 0), (5, 2, [2, 2, 2, 2], 1),
            (2, 2, [0, 0, 0, 0], 0), (3, 1, [1, 1, 1, 1], 0), (5, 3, [1, 2, 2, 1], 2),
            (6, 3, [0, 0, 0, 0], 0), (4, 4, [0, 1, 1, 0], 3), (2, 2, [1, 1, 0, 0], 1)]


@pytest.mark.parametrize("form", ["phases", "fused"])
@pytest.mark.parametrize("k,s,pads,op", CT_CASES)
@pytest.mark.parametrize("cin,cout", [(3, 2), (8, 16)])
def test_convtranspose_to_phase_convolutions_is_exact(cin: int, cout: int, k: int, s: int,
                                                       pads: list[int], op: int,
                                                       form: str) -> None:
    model = _convtranspose(cin, cout, k, s, pads, op)
    rewritten = _copy(model)
    sites = phase_conv(rewritten, form)
    assert len(sites) == 1 and sites[0].pattern == "ConvTranspose"
    ops = {n.op_type for n in rewritten.graph.node}
    assert "ConvTranspose" not in ops and "Conv" in ops
    _exact(model, rewritten, cin)


def test_auto_rewrites_block_sized_outputs_and_leaves_thin_ones() -> None:
    wide, thin = _convtranspose(4, 16, 4, 2, [1, 1, 1, 1], 0), _convtranspose(4, 1, 4, 2,
                                                                              [1, 1, 1, 1], 0)
    sites = phase_conv(wide, "auto")
    assert [s.form for s in sites] == ["phases"]
    assert [n.op_type for n in wide.graph.node].count("Conv") == 4  # one per phase
    assert phase_conv(thin, "auto") == []
    assert [n.op_type for n in thin.graph.node] == ["ConvTranspose"]


def test_no_bias_and_dynamic_spatial_sizes() -> None:
    model = _convtranspose(5, 8, 4, 2, [1, 1, 1, 1], 0, bias=False)
    rewritten = _copy(model)
    assert phase_conv(rewritten, "phases")
    for hw in ((1, 1), (7, 7), (4, 9)):
        _exact(model, rewritten, 5, hw=hw)


@pytest.mark.parametrize("why,extra,k,s", [
    ("groups", {"group": 2}, 4, 2),
    ("dilation", {"dilations": [2, 2]}, 4, 2),
    ("kernel smaller than stride", {}, 1, 2),
])
def test_unsupported_convtranspose_is_left_alone(why: str, extra: dict, k: int, s: int) -> None:
    cin, cout = 4, 8
    rng = np.random.default_rng(0)
    g = extra.get("group", 1)
    inits = {"w": rng.standard_normal((cin, cout // g, k, k)).astype(np.float32)}
    node = helper.make_node("ConvTranspose", ["x", "w"], ["y"], strides=[s, s],
                            kernel_shape=[k, k], **extra)
    model = _model([node], cin, cout, inits)
    before = model.SerializeToString()
    assert phase_conv(model, "phases") == [], why
    assert model.SerializeToString() == before


def test_non_square_stride_output_shape_and_runtime_weights_are_left_alone() -> None:
    rng = np.random.default_rng(0)
    w = rng.standard_normal((4, 8, 4, 4)).astype(np.float32)
    for node, inits in (
        (helper.make_node("ConvTranspose", ["x", "w"], ["y"], strides=[2, 1]), {"w": w}),
        (helper.make_node("ConvTranspose", ["x", "w"], ["y"], strides=[2, 2],
                          output_shape=[10, 10]), {"w": w}),
    ):
        model = _model([node], 4, 8, inits)
        assert phase_conv(model, "phases") == []
    # weights that are a graph input, not a constant: nothing to rearrange at export time
    graph = helper.make_graph(
        [helper.make_node("ConvTranspose", ["x", "w"], ["y"], strides=[2, 2])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 5, 5]),
         helper.make_tensor_value_info("w", TensorProto.FLOAT, [4, 8, 4, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    assert phase_conv(helper.make_model(graph), "phases") == []


def _upsample_conv(cin: int, cout: int, k: int, s: int, pads: list[int], ct: str, nm: str,
                   conv_stride: int = 1) -> onnx.ModelProto:
    rng = np.random.default_rng(k * 10 + s)
    inits = {"w": rng.standard_normal((cout, cin, k, k)).astype(np.float32),
             "b": rng.standard_normal(cout).astype(np.float32),
             "scales": np.array([1, 1, s, s], np.float32)}
    nodes = [helper.make_node("Resize", ["x", "", "scales"], ["u"], mode="nearest",
                              coordinate_transformation_mode=ct, nearest_mode=nm),
             helper.make_node("Conv", ["u", "w", "b"], ["y"], pads=pads, kernel_shape=[k, k],
                              strides=[conv_stride, conv_stride])]
    return _model(nodes, cin, cout, inits)


@pytest.mark.parametrize("ct,nm", [("asymmetric", "floor"), ("half_pixel", "round_prefer_floor"),
                                   ("pytorch_half_pixel", "round_prefer_ceil")])
@pytest.mark.parametrize("k,s,pads", [(3, 2, [1, 1, 1, 1]), (1, 2, [0, 0, 0, 0]),
                                      (5, 2, [2, 2, 2, 2]), (3, 3, [1, 0, 0, 1]),
                                      (2, 2, [0, 0, 1, 1])])
def test_nearest_upsample_then_conv_is_exact(k: int, s: int, pads: list[int], ct: str,
                                             nm: str) -> None:
    model = _upsample_conv(4, 8, k, s, pads, ct, nm)
    rewritten = _copy(model)
    sites = phase_conv(rewritten, "auto")
    assert [x.pattern for x in sites] == ["Resize+Conv"]
    assert "Resize" not in {n.op_type for n in rewritten.graph.node}
    _exact(model, rewritten, 4)


def test_unsupported_resize_patterns_are_left_alone() -> None:
    for model in (_upsample_conv(4, 8, 3, 2, [1, 1, 1, 1], "asymmetric", "round_prefer_ceil"),
                  _upsample_conv(4, 8, 3, 3, [1, 1, 1, 1], "asymmetric", "round_prefer_floor"),
                  _upsample_conv(4, 8, 3, 2, [1, 1, 1, 1], "half_pixel", "floor"),
                  _upsample_conv(4, 8, 3, 2, [1, 1, 1, 1], "asymmetric", "floor",
                                 conv_stride=2)):
        assert phase_conv(model, "auto") == []


def test_phase_algebra_matches_a_direct_scatter() -> None:
    """convtranspose_axis / upsample_conv_axis against a 1-D numpy reference."""
    rng = np.random.default_rng(3)
    for k, s, pb, pe, op in itertools.product((2, 3, 4, 5), (1, 2, 3), (0, 1, 2), (0, 1, 2),
                                              (0, 1)):
        if op >= s or k < s:
            continue
        x, w, h = rng.standard_normal(6), rng.standard_normal(k), 6
        full = np.zeros((h - 1) * s + k)
        for i in range(h):
            full[i * s:i * s + k] += x[i] * w
        ref = np.concatenate([full, np.zeros(op)])[pb:len(full) + op - pe]
        axis = convtranspose_axis(k, s, pb, pe, op)
        assert len(ref) == s * h + axis.extra_len
        got = np.zeros(s * (h + axis.grow))
        for ph in axis.phases:
            for q in range(h + axis.grow):
                acc = 0.0
                for j, src in enumerate(ph.sources):
                    i = q + ph.offset + j
                    if 0 <= i < h:
                        acc += x[i] * sum(w[t] for t in src)
                got[s * q + ph.r] = acc
        np.testing.assert_allclose(got[:len(ref)], ref, atol=1e-12)
    up = upsample_conv_axis(3, 2, 1, 1)
    assert [p.taps for p in up.phases] == [2, 2]  # 2.25x fewer products than 3x3 on 4x pixels


def _d2s_convtranspose(bs: int, mode: str, k: int, s: int, pads: list[int], op: int,
                       cin: int = 3, cout: int = 2) -> onnx.ModelProto:
    rng = np.random.default_rng(bs + k + s)
    inits = {"w": rng.standard_normal((cin, cout, k, k)).astype(np.float32),
             "b": rng.standard_normal(cout).astype(np.float32)}
    nodes = [helper.make_node("DepthToSpace", ["x"], ["d"], blocksize=bs, mode=mode),
             helper.make_node("ConvTranspose", ["d", "w", "b"], ["y"], strides=[s, s],
                              pads=pads, output_padding=[op, op], kernel_shape=[k, k])]
    return _model(nodes, cin * bs * bs, cout, inits)


@pytest.mark.parametrize("mode", ["DCR", "CRD"])
@pytest.mark.parametrize("bs", [2, 3])
@pytest.mark.parametrize("k,s,pads,op", [(4, 2, [1, 1, 1, 1], 0), (3, 1, [0, 0, 0, 0], 0),
                                         (3, 2, [1, 0, 0, 1], 1), (2, 2, [0, 0, 0, 0], 0)])
def test_depth_to_space_folds_into_convtranspose_exactly(bs: int, mode: str, k: int, s: int,
                                                         pads: list[int], op: int) -> None:
    model = _d2s_convtranspose(bs, mode, k, s, pads, op)
    rewritten = _copy(model)
    sites = d2s_into_convtranspose(rewritten)
    assert len(sites) == 1
    assert [n.op_type for n in rewritten.graph.node] == ["ConvTranspose"]
    _exact(model, rewritten, 3 * bs * bs, hw=(3, 4))


def test_depth_to_space_stays_before_a_wide_convtranspose() -> None:
    model = _d2s_convtranspose(2, "DCR", 4, 2, [1, 1, 1, 1], 0, cout=16)
    assert d2s_into_convtranspose(model) == []  # 2.25x the products of a 16-channel layer


def test_activation_moves_onto_the_convolutions_bitwise() -> None:
    """phases -> Concat -> DepthToSpace -> Relu becomes Conv -> Relu per phase (fusable)."""
    model = _convtranspose(4, 8, 4, 2, [1, 1, 1, 1], 0)
    model.graph.node[0].output[0] = "t"
    model.graph.node.append(helper.make_node("Relu", ["t"], ["y"], name="relu"))
    phase_conv(model, "phases")
    before = _copy(model)
    sites = activation_up(model)
    assert {s.detail["above"] for s in sites} == {"DepthToSpace", "Concat"}
    ops = [n.op_type for n in model.graph.node]
    assert ops.count("Relu") == 4 and ops[-1] == "DepthToSpace"
    for n in model.graph.node:
        if n.op_type == "Relu":
            producer = next(p for p in model.graph.node if n.input[0] in p.output)
            assert producer.op_type == "Conv"
    x = np.random.default_rng(0).standard_normal((2, 4, 5, 5)).astype(np.float32)
    assert np.array_equal(_run(model, x), _run(before, x))


def test_activation_stays_when_the_data_has_other_readers() -> None:
    rng = np.random.default_rng(0)
    inits = {"w": rng.standard_normal((8, 4, 1, 1)).astype(np.float32)}
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"]),
             helper.make_node("DepthToSpace", ["c"], ["d"], blocksize=2),
             helper.make_node("Relu", ["d"], ["r"]),
             helper.make_node("SpaceToDepth", ["r"], ["s"], blocksize=2),
             helper.make_node("Add", ["s", "c"], ["y"])]  # c is read twice
    model = _model(nodes, 4, 8, inits)
    before = model.SerializeToString()
    assert activation_up(model) == []
    assert model.SerializeToString() == before


def _embedding_gemm(trans_b: int, alpha: float, beta: float, bias: bool,
                    order: str = "zy", table_const: bool = True, axis: int = 1
                    ) -> onnx.ModelProto:
    """z[N, 6] ++ E[label][N, 4] -> Gemm -> y[N, 5] (the conditional generator's first layer)."""
    rng = np.random.default_rng(trans_b * 4 + bias)
    w = rng.standard_normal((10, 5)).astype(np.float32)
    inits = {"E": rng.standard_normal((3, 4)).astype(np.float32),
             "W": w.T.copy() if trans_b else w}
    inputs = ["cat", "W"]
    if bias:
        inits["b"] = rng.standard_normal(5).astype(np.float32)
        inputs.append("b")
    parts = ["z", "e"] if order == "zy" else ["e", "z"]
    nodes = [helper.make_node("Gather", ["E", "label"], ["e"], axis=0),
             helper.make_node("Concat", parts, ["cat"], axis=axis),
             helper.make_node("Gemm", inputs, ["y"], transB=trans_b, alpha=alpha, beta=beta)]
    graph_inputs = [helper.make_tensor_value_info("z", TensorProto.FLOAT, ["n", 6]),
                    helper.make_tensor_value_info("label", TensorProto.INT64, ["n"])]
    if not table_const:
        graph_inputs.append(helper.make_tensor_value_info("E", TensorProto.FLOAT, [3, 4]))
        del inits["E"]
    graph = helper.make_graph(
        nodes, "g", graph_inputs,
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 5])],
        [numpy_helper.from_array(v, k) for k, v in inits.items()])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@pytest.mark.parametrize("trans_b,alpha,beta,bias,order", [
    (0, 1.0, 1.0, True, "zy"), (1, 1.0, 1.0, True, "zy"), (1, 0.5, 2.0, True, "yz"),
    (0, 1.0, 1.0, False, "yz")])
def test_embedding_folds_into_a_table_exactly(trans_b: int, alpha: float, beta: float,
                                              bias: bool, order: str) -> None:
    model = _embedding_gemm(trans_b, alpha, beta, bias, order)
    rewritten = _copy(model)
    sites = embedding_into_gemm(rewritten)
    assert len(sites) == 1 and sites[0].detail == {"table_rows": 3, "k_before": 10,
                                                   "k_after": 6}
    onnx.checker.check_model(rewritten, full_check=True)
    assert [n.op_type for n in rewritten.graph.node] == ["Gather", "Gemm"]
    rng = np.random.default_rng(1)
    for n in (1, 4):
        feeds = {"z": rng.standard_normal((n, 6)).astype(np.float32),
                 "label": rng.integers(0, 3, n).astype(np.int64)}
        for optimize in (False, True):
            so = ort.SessionOptions()
            if not optimize:
                so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
            ref, got = (ort.InferenceSession(m.SerializeToString(), so,
                                             providers=["CPUExecutionProvider"]).run(
                None, feeds)[0] for m in (model, rewritten))
            np.testing.assert_allclose(got, ref, atol=ATOL, rtol=1e-5)


def test_embedding_fold_leaves_run_time_tables_and_other_axes_alone() -> None:
    for model in (_embedding_gemm(0, 1.0, 1.0, True, table_const=False),
                  _embedding_gemm(0, 1.0, 1.0, True, axis=0)):
        before = model.SerializeToString()
        assert embedding_into_gemm(model) == []
        assert model.SerializeToString() == before
