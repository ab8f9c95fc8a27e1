"""Floating-point work per image, and parameters, counted from the ONNX graph — the project's
one FLOP counter (eval's MFLOP per image of a sampler setting, compare's table, bench's achieved
GFLOP/s; it lives in the quality layer so that all of them can import it).

Only the dense ops count (Gemm, MatMul, Conv, ConvTranspose): one multiply-add is 2 FLOPs, bias
adds and activations are left out (they are a rounding error next to the products and are not
what the machine's matmul rate measures). Shapes come from ONNX shape inference after the
dynamic batch axis is pinned to a known size; the per-image figure divides by that size.

* Gemm ``Y[M, N] = A[M, K] @ B[K, N]`` (after transA/transB): ``2 M N K``
* MatMul ``[..., M, K] @ [..., K, N]``: ``2 * prod(Y.shape) * K``
* Conv ``W[Cout, Cin/g, k...]``: ``2 * prod(Y.shape) * prod(W.shape[1:])``
* ConvTranspose ``W[Cin, Cout/g, k...]``: ``2 * prod(X.shape) * prod(W.shape[1:])`` — every
  input pixel is scattered through its Cout/g x k... taps.

Any family's graph works: a multi-step sampler unrolled into one graph (its network called once
per step, weights stored once) counts every call, because every call is its own node. Dense nodes
inside subgraphs (If, Loop, Scan bodies) are counted once each, as they appear. Parameters
(``count_params``) are the elements of the floating-point initializers (and Constant nodes): a
weight shared by many nodes is stored, and counted, once.

Useful work only: when a Conv or ConvTranspose kernel is a constant, its taps that are exactly
zero are not counted (``prod(W.shape)`` becomes the number of nonzero weights). A rewrite that
pads a kernel with zeros (``export.rewrite``'s DepthToSpace fold) therefore counts the same
FLOPs as the graph it came from, and the efficiency column does not reward multiplying by zero.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

DENSE_OPS = ("Gemm", "MatMul", "Conv", "ConvTranspose")


@dataclass(frozen=True)
class NodeFlops:
    name: str
    op: str
    flops: int  # for the whole pinned batch


@dataclass
class FlopCount:
    batch: int  # the batch size the graph was pinned to
    total: int  # FLOPs for that batch
    nodes: list[NodeFlops] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)  # dense nodes whose shapes were not inferred

    @property
    def per_image(self) -> float:
        return self.total / self.batch

    @property
    def by_op(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for n in self.nodes:
            out[n.op] = out.get(n.op, 0) + n.flops
        return out


def _pin_batch(model: Any, batch: int) -> Any:
    """A copy of ``model`` whose graph inputs have every symbolic/unknown dim 0 set to ``batch``."""
    import onnx

    m = onnx.ModelProto()
    m.CopyFrom(model)
    inits = {i.name for i in m.graph.initializer}
    for inp in m.graph.input:
        if inp.name in inits or not inp.type.HasField("tensor_type"):
            continue
        dims = inp.type.tensor_type.shape.dim
        if len(dims) and not dims[0].HasField("dim_value"):
            dims[0].Clear()
            dims[0].dim_value = batch
    del m.graph.value_info[:]  # stale symbolic shapes would win over the pinned ones
    return m


def _shapes(model: Any, symbolic: bool = False) -> dict[str, list[int] | None]:
    """Static shapes of every tensor: onnx's shape inference, or ONNX Runtime's symbolic one,
    which also follows shapes computed in the graph (``Expand`` to ``2 * Shape(x)[0]``, as an
    unrolled sampler's doubled batch makes) where onnx's data propagation stops."""
    import onnx

    if symbolic:
        from onnxruntime.tools.symbolic_shape_infer import SymbolicShapeInference

        inferred = SymbolicShapeInference.infer_shapes(model, auto_merge=True)
    else:
        inferred = onnx.shape_inference.infer_shapes(model, data_prop=True)
    graphs = _graphs(inferred.graph)
    out: dict[str, list[int] | None] = {i.name: list(i.dims) for g in graphs
                                        for i in g.initializer}
    for node in _nodes(inferred.graph):  # weights stored as Constant nodes
        for a in node.attribute:
            if node.op_type == "Constant" and a.name == "value" and a.HasField("t"):
                out[node.output[0]] = list(a.t.dims)
    for vi in [x for g in graphs for x in (*g.input, *g.value_info, *g.output)]:
        if out.get(vi.name) is not None:  # an initializer or Constant: its own dims are exact
            continue
        t = vi.type.tensor_type
        if not t.HasField("shape"):
            out.setdefault(vi.name, None)
            continue
        dims = [d.dim_value if d.HasField("dim_value") else None for d in t.shape.dim]
        out[vi.name] = None if any(d is None for d in dims) else [int(d) for d in dims]
    return out


def _attr(node: Any, name: str, default: int) -> int:
    for a in node.attribute:
        if a.name == name:
            return int(a.i)
    return default


def node_flops(node: Any, shapes: dict[str, list[int] | None],
               nonzero: dict[str, int] | None = None) -> int | None:
    """FLOPs of one dense node, or None when a needed shape is unknown. ``nonzero``: the number
    of nonzero elements of constant kernels, by name (see the module docstring)."""
    nonzero = nonzero or {}
    def shape(i: int) -> list[int] | None:
        return shapes.get(node.input[i]) if len(node.input) > i else None

    a, b = shape(0), shape(1)
    y = shapes.get(node.output[0]) if node.output else None
    if node.op_type == "Gemm":
        if a is None or b is None:
            return None
        m, k = (a[1], a[0]) if _attr(node, "transA", 0) else (a[0], a[1])
        n = b[0] if _attr(node, "transB", 0) else b[1]
        return 2 * m * n * k
    if node.op_type == "MatMul":
        if a is None or y is None:
            return None
        return 2 * math.prod(y) * a[-1]
    if node.op_type == "Conv":
        if b is None or y is None:
            return None
        taps = nonzero.get(node.input[1], math.prod(b))
        return 2 * math.prod(y) // b[0] * taps  # each output pixel: nonzero taps / Cout
    if node.op_type == "ConvTranspose":
        if a is None or b is None:
            return None
        taps = nonzero.get(node.input[1], math.prod(b))
        return 2 * math.prod(a) // b[0] * taps  # each input pixel: nonzero taps / Cin
    return 0


def _graphs(graph: Any) -> list[Any]:
    """``graph`` and every subgraph held in its nodes' attributes (If/Loop/Scan), depth first."""
    out = [graph]
    for node in graph.node:
        for a in node.attribute:
            for sub in ([a.g] if a.HasField("g") else []) + list(a.graphs):
                out.extend(_graphs(sub))
    return out


def _nodes(graph: Any) -> list[Any]:
    return [n for g in _graphs(graph) for n in g.node]


def count_params(model: str | Path | Any) -> int:
    """Elements of the floating-point initializers and Constant tensors of an ONNX model."""
    import onnx
    from onnx import TensorProto

    proto = onnx.load(str(model), load_external_data=False) \
        if isinstance(model, (str, Path)) else model
    floats = {TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.DOUBLE, TensorProto.BFLOAT16}
    tensors = list(proto.graph.initializer)
    for node in _nodes(proto.graph):
        if node.op_type == "Constant":
            tensors += [a.t for a in node.attribute if a.name == "value" and a.HasField("t")]
    return sum(math.prod(t.dims) for t in tensors if t.data_type in floats)


def count_flops(model: str | Path | bytes | Any, batch: int = 1) -> FlopCount:
    """Dense FLOPs of an ONNX model (path, serialized bytes or ModelProto) at ``batch``; see the
    module doc."""
    import onnx
    from onnx import numpy_helper

    if isinstance(model, bytes):
        proto = onnx.load_model_from_string(model)
    else:
        proto = onnx.load(str(model)) if isinstance(model, (str, Path)) else model
    pinned = _pin_batch(proto, batch)
    shapes = _shapes(pinned)
    nonzero = {t.name: int(np.count_nonzero(numpy_helper.to_array(t)))
               for g in _graphs(pinned.graph) for t in g.initializer if len(t.dims) >= 3}
    dense = [n for n in _nodes(pinned.graph) if n.op_type in DENSE_OPS]
    if any(node_flops(n, shapes, nonzero) is None for n in dense):
        # on failure keep onnx's shapes: the nodes still unknown are reported in ``unknown``
        with contextlib.suppress(Exception):
            shapes = {**shapes, **{k: v for k, v in _shapes(pinned, symbolic=True).items()
                                   if v is not None}}
    count = FlopCount(batch=batch, total=0)
    for node in _nodes(pinned.graph):
        if node.op_type not in DENSE_OPS:
            continue
        f = node_flops(node, shapes, nonzero)
        if f is None:
            count.unknown.append(node.name or node.op_type)
            continue
        count.nodes.append(NodeFlops(node.name, node.op_type, int(f)))
        count.total += int(f)
    return count
