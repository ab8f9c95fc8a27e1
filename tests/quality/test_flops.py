"""FLOPs counted from a hand-built ONNX graph against a hand computation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from edgegen.quality.flops import count_flops


def _graph() -> onnx.ModelProto:
    """x[B,10] -Gemm(transB)-> [B,48] -Reshape-> [B,3,4,4] -Conv(6,3,3x3,pad1)-> [B,6,4,4]
    -ConvTranspose(6->2, 4x4, stride 2, pad 1)-> [B,2,8,8] -Reshape-> [B,2,8,8]
    -MatMul [8,5]-> [B,2,8,5]."""
    rng = np.random.default_rng(0)

    def init(name: str, *shape: int) -> onnx.TensorProto:
        return numpy_helper.from_array(rng.standard_normal(shape).astype(np.float32), name)

    inits = [init("gw", 48, 10), init("gb", 48), init("cw", 6, 3, 3, 3),
             init("tw", 6, 2, 4, 4), init("mw", 8, 5),
             numpy_helper.from_array(np.array([-1, 3, 4, 4], np.int64), "shape")]
    nodes = [
        helper.make_node("Gemm", ["x", "gw", "gb"], ["g"], transB=1, name="gemm"),
        helper.make_node("Reshape", ["g", "shape"], ["r"], name="reshape"),
        helper.make_node("Conv", ["r", "cw"], ["c"], pads=[1, 1, 1, 1], name="conv"),
        helper.make_node("ConvTranspose", ["c", "tw"], ["t"], strides=[2, 2],
                         pads=[1, 1, 1, 1], name="deconv"),
        helper.make_node("MatMul", ["t", "mw"], ["y"], name="matmul"),
        helper.make_node("Relu", ["y"], ["out"], name="relu"),
    ]
    graph = helper.make_graph(
        nodes, "hand", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 10])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["batch", 2, 8, 5])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


# by hand, per image (2 FLOPs per multiply-add):
GEMM = 2 * 48 * 10  # M=1, N=48, K=10
CONV = 2 * (6 * 4 * 4) * (3 * 3 * 3)  # every output element: Cin*kh*kw multiply-adds
DECONV = 2 * (6 * 4 * 4) * (2 * 4 * 4)  # every input element: Cout*kh*kw multiply-adds
MATMUL = 2 * (2 * 8 * 5) * 8  # every output element: K=8 multiply-adds


def test_hand_built_graph(tmp_path: Path) -> None:
    model = _graph()
    onnx.checker.check_model(model)
    for batch in (1, 3):
        c = count_flops(model, batch=batch)
        assert c.unknown == []
        assert c.by_op == {"Gemm": GEMM * batch, "Conv": CONV * batch,
                           "ConvTranspose": DECONV * batch, "MatMul": MATMUL * batch}
        assert c.per_image == GEMM + CONV + DECONV + MATMUL
    path = tmp_path / "hand.onnx"
    onnx.save(model, str(path))
    assert count_flops(path).per_image == GEMM + CONV + DECONV + MATMUL


def test_unknown_shapes_are_named_not_guessed() -> None:
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["a", "b"], ["y"], name="mm")], "unk",
        [helper.make_tensor_value_info("a", TensorProto.FLOAT, ["n", "k"]),
         helper.make_tensor_value_info("b", TensorProto.FLOAT, ["k", "m"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    c = count_flops(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]))
    assert c.unknown == ["mm"] and c.total == 0


def test_generator_bundle(tiny_bundle: Path) -> None:
    """The cdcgan's dense ops: Gemm(z+e -> 2c*49), ConvT(2c -> c, 4x4) on 7x7, ConvT(c -> 1) —
    the same useful FLOPs after the export's rewrites (phase Convs, a zero-padded ConvT)."""
    model = onnx.load(str(tiny_bundle / "model.onnx"))
    gemm = next(n for n in model.graph.node if n.op_type == "Gemm")
    shapes = {i.name: list(i.dims) for i in model.graph.initializer}
    trans_b = any(a.name == "transB" and a.i for a in gemm.attribute)
    # [2c*49, z + e] as exported; [z, 2c*49] after the embedding-into-gemm rewrite (the label's
    # share becomes a lookup: no FLOPs)
    out_f, in_f = shapes[gemm.input[1]] if trans_b else shapes[gemm.input[1]][::-1]
    c2 = out_f // 49
    c = c2 // 2
    expect = 2 * out_f * in_f + 2 * (c2 * 49) * (c * 16) + 2 * (c * 196) * (1 * 16)
    assert {n.op_type for n in model.graph.node} >= {"Conv", "ConvTranspose"}  # rewritten
    assert count_flops(tiny_bundle / "model.onnx").per_image == expect


def _sampler(steps: int) -> onnx.ModelProto:
    """A diffusion-style sampler unrolled into one graph: ``x <- x + h * net(x)`` ``steps``
    times, where ``net`` is Conv(1->4, 3x3, pad 1) -> ReLU -> Conv(4->1, 3x3, pad 1) whose two
    weights are stored once and used by every step; the second weight is a Constant node."""
    rng = np.random.default_rng(1)
    w1 = numpy_helper.from_array(rng.standard_normal((4, 1, 3, 3)).astype(np.float32), "w1")
    b1 = numpy_helper.from_array(np.zeros(4, np.float32), "b1")
    h = numpy_helper.from_array(np.array(1.0 / steps, np.float32), "h")
    w2 = rng.standard_normal((1, 4, 3, 3)).astype(np.float32)
    nodes = [helper.make_node("Constant", [], ["w2"], value=numpy_helper.from_array(w2, "w2"))]
    x = "x"
    for s in range(steps):
        nodes += [
            helper.make_node("Conv", [x, "w1", "b1"], [f"c{s}"], pads=[1, 1, 1, 1]),
            helper.make_node("Relu", [f"c{s}"], [f"r{s}"]),
            helper.make_node("Conv", [f"r{s}", "w2"], [f"v{s}"], pads=[1, 1, 1, 1]),
            helper.make_node("Mul", [f"v{s}", "h"], [f"d{s}"]),
            helper.make_node("Add", [x, f"d{s}"], [f"x{s}"]),
        ]
        x = f"x{s}"
    nodes.append(helper.make_node("Identity", [x], ["image"]))
    graph = helper.make_graph(
        nodes, "sampler", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                         ["batch", 1, 28, 28])],
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 1, 28, 28])],
        [w1, b1, h])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_an_unrolled_sampler_counts_every_step_and_its_weights_once() -> None:
    from edgegen.quality.flops import count_params

    per_call = 2 * (4 * 28 * 28) * (1 * 9) + 2 * (1 * 28 * 28) * (4 * 9)
    for steps in (1, 4):
        model = _sampler(steps)
        onnx.checker.check_model(model)
        c = count_flops(model, batch=2)
        assert c.unknown == [] and c.by_op == {"Conv": 2 * steps * per_call}
        assert c.per_image == steps * per_call
        # w1 (36) + b1 (4) + h (1) + the Constant w2 (36): stored once, whatever the steps
        assert count_params(model) == 36 + 4 + 1 + 36


def test_params_of_the_hand_built_graph_skip_integer_constants() -> None:
    from edgegen.quality.flops import count_params

    # gw, gb, cw, tw, mw; the int64 Reshape shape is not a parameter
    assert count_params(_graph()) == 48 * 10 + 48 + 6 * 27 + 6 * 2 * 16 + 8 * 5


def test_zero_taps_are_not_counted() -> None:
    """A kernel padded with zeros (a rewrite's) counts only its nonzero taps."""
    rng = np.random.default_rng(1)
    w = rng.standard_normal((4, 2, 3, 3)).astype(np.float32)
    padded = np.zeros((4, 2, 5, 5), np.float32)
    padded[:, :, 1:4, 1:4] = w
    for kernel, k in ((w, 3), (padded, 5)):
        graph = helper.make_graph(
            [helper.make_node("ConvTranspose", ["x", "w"], ["y"], strides=[2, 2],
                              kernel_shape=[k, k])], "z",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 4, 5, 5])],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
            [numpy_helper.from_array(kernel, "w")])
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        assert count_flops(model).per_image == 2 * (4 * 25) * (2 * 9)
