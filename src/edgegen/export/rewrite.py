"""Exact graph rewrites that suit ONNX Runtime's CPU kernels, applied by ``edgegen export``.

Every rewrite reads and writes ONNX protos only: it knows nothing of the generator family, so the
same passes serve the GAN's ConvTranspose stack and a diffusion UNet's upsampling convolutions.
Each is exact in real arithmetic — only the order in which float products are summed changes —
and ``export.optimize`` checks every one against the graph before it at export time.

* ``phase-conv`` — a 2-D ``ConvTranspose`` with stride ``s`` (``groups=1``, no dilation) is
  ``s*s`` ordinary convolutions on the *input* grid, one per output phase ``(oh mod s, ow mod
  s)``, interleaved by ``DepthToSpace`` (sub-pixel convolution). ONNX Runtime's CPU provider
  runs ConvTranspose as a GEMM followed by a col2im scatter, and has no int8 ConvTranspose;
  convolutions run on its blocked NCHWc kernels (and as QLinearConv once quantized). The same
  pass rewrites nearest-neighbour ``Resize`` by an integer factor followed by a stride-1
  ``Conv`` (a UNet's upsampling block): each phase then needs a smaller kernel, so the
  arithmetic drops (2.25x for a 3x3 kernel and factor 2).
  Two layouts: ``phases`` (one Conv per phase, then Concat) and ``fused`` (one Conv whose
  output channels hold every phase, on a grid one pixel larger, then DepthToSpace and a
  Slice). ``auto`` (the default) takes ``phases``, and leaves a ConvTranspose whose output
  channels do not fill NCHWc blocks alone, where measurement found it slower (``choose_form``).
* ``activation-up`` — an element-wise activation (Relu, LeakyRelu, Sigmoid, Tanh, ...) that
  follows pure data movement (DepthToSpace, Concat, Slice, Reshape, Transpose) moves above it, so
  that it lands directly on the producing convolution, which ONNX Runtime then fuses
  (``FusedConv``/``NchwcConv`` with an activation, or QLinearConv's output range once
  quantized). Bitwise exact: the activation sees the same numbers, only in another order.

Shapes: the 1-D index algebra is in ``Phase``; a phase ``r`` reads input rows ``q + offset + j``
(``j < taps``) to produce output row ``s*q + r``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

FORMS = ("auto", "phases", "fused")
NCHWC_MIN_BLOCK = 8  # the smallest NCHWc block (AVX2: 8 floats; AVX-512: 16)
INT64_MAX = np.iinfo(np.int64).max

# Element-wise, single-data-input activations that commute with any rearrangement of elements.
ACTIVATIONS = ("Relu", "LeakyRelu", "Sigmoid", "Tanh", "HardSigmoid", "Elu", "Selu", "Softplus",
               "Softsign", "Clip", "Celu", "HardSwish", "Neg", "Abs")
MOVEMENT = ("DepthToSpace", "SpaceToDepth", "Concat", "Slice", "Reshape", "Transpose",
            "Flatten", "Squeeze", "Unsqueeze", "Identity")


# --------------------------------------------------------------------------- 1-D phase algebra

@dataclass(frozen=True)
class Phase:
    """Output phase ``r`` along one axis: ``y[s*q + r] = sum_j x[q + offset + j] * k[j]``, where
    phase tap ``j`` is the sum of the original kernel taps ``sources[j]``."""

    r: int
    offset: int
    sources: tuple[tuple[int, ...], ...]

    @property
    def taps(self) -> int:
        return len(self.sources)


@dataclass(frozen=True)
class Axis:
    """One spatial axis of a rewrite: the phases and how long the output is.

    The output length is ``s*H + extra_len`` for input length ``H`` (independent of ``H``, so
    dynamic spatial sizes work); each phase computes ``ceil(out / s) = H + grow`` rows.
    """

    stride: int
    phases: tuple[Phase, ...]
    extra_len: int

    @property
    def grow(self) -> int:
        return -((-self.extra_len) // self.stride)

    @property
    def trim(self) -> int:
        """Rows computed past the true output end after interleaving (0 <= trim < s)."""
        return self.stride * self.grow - self.extra_len

    def pads(self, phase: Phase) -> tuple[int, int]:
        """(begin, end) padding of the phase's convolution; may be negative (cropping)."""
        return -phase.offset, self.grow + phase.offset + phase.taps - 1


def convtranspose_axis(k: int, s: int, pad_begin: int, pad_end: int, out_pad: int) -> Axis:
    """ConvTranspose (dilation 1): ``y[o] = sum x[i] w[t]`` over ``o + pad_begin = s*i + t``."""
    phases = []
    for r in range(s):
        c, d = (r + pad_begin) % s, (r + pad_begin) // s
        m = (k - c + s - 1) // s if k > c else 0  # taps t = s*m' + c < k
        # tap j of the phase reads x[q + d - (m - 1 - j)] with kernel index s*(m - 1 - j) + c
        phases.append(Phase(r, d - m + 1, tuple((s * (m - 1 - j) + c,) for j in range(m))))
    return Axis(s, tuple(phases), k - s - pad_begin - pad_end + out_pad)


def upsample_conv_axis(k: int, s: int, pad_begin: int, pad_end: int) -> Axis:
    """Nearest upsampling by ``s`` (``u[i] = x[floor(i / s)]``) then a stride-1 Conv:
    ``y[o] = sum_t u[o + t - pad_begin] w[t]``; taps that read the same input row merge."""
    phases = []
    for r in range(s):
        lo = (r - pad_begin) // s
        hi = (r + k - 1 - pad_begin) // s
        groups: list[list[int]] = [[] for _ in range(hi - lo + 1)]
        for t in range(k):
            groups[(r + t - pad_begin) // s - lo].append(t)
        phases.append(Phase(r, lo, tuple(tuple(g) for g in groups)))
    return Axis(s, tuple(phases), pad_begin + pad_end - k + 1)


@dataclass(frozen=True)
class Aligned:
    """The ``fused`` layout of one axis: every phase on one grid ``p = q + delta_r`` so that a
    single convolution computes them all; after DepthToSpace, phase ``r`` sits at slot
    ``slot[r]`` and the true output starts ``start`` rows in."""

    offset: int  # common offset: the grid reads x[p + offset + j]
    taps: int
    length_grow: int  # grid length = H + length_grow
    slot: tuple[int, ...]
    start: int


def align(axis: Axis) -> Aligned | None:
    """The fused layout, or None when the phases cannot share one grid (unequal tap counts)."""
    taps = {p.taps for p in axis.phases}
    if len(taps) != 1:
        return None
    s = axis.stride
    base = min(p.offset for p in axis.phases)
    delta = [p.offset - base for p in axis.phases]
    f = [s * d - p.r for d, p in zip(delta, axis.phases)]
    c = max(f)
    slot = tuple(c - x for x in f)
    if sorted(slot) != list(range(s)):
        return None
    return Aligned(base, taps.pop(), axis.grow + max(delta), slot, c)


def phase_kernel(w: np.ndarray, rows: Phase, cols: Phase) -> np.ndarray:
    """The phase's Conv kernel ``[Cout, Cin, taps_h, taps_w]`` from a Conv-layout kernel
    ``w[Cout, Cin, kh, kw]``: tap ``(a, b)`` sums the original taps it merges (float64 sum)."""
    out = np.zeros((w.shape[0], w.shape[1], rows.taps, cols.taps), np.float64)
    w64 = w.astype(np.float64)
    for a, src_h in enumerate(rows.sources):
        for b, src_w in enumerate(cols.sources):
            out[:, :, a, b] = w64[:, :, list(src_h)][:, :, :, list(src_w)].sum(axis=(2, 3))
    return out.astype(w.dtype)


# --------------------------------------------------------------------------- graph helpers

class GraphEdit:
    """A graph being edited: its nodes as a list (written back by ``commit``), constants by
    name, producers and consumers, fresh names."""

    def __init__(self, model: Any) -> None:
        import onnx
        from onnx import numpy_helper

        self.model = model
        self.graph = model.graph
        self.nodes: list[Any] = []
        for n in self.graph.node:
            copy = onnx.NodeProto()
            copy.CopyFrom(n)
            self.nodes.append(copy)
        self.consts: dict[str, np.ndarray] = {
            t.name: numpy_helper.to_array(t) for t in self.graph.initializer}
        for n in self.nodes:
            if n.op_type == "Constant" and len(n.output) == 1:
                for a in n.attribute:
                    if a.name == "value":
                        self.consts[n.output[0]] = numpy_helper.to_array(a.t)
        self.outputs = {o.name for o in self.graph.output}
        self._names = {n.name for n in self.nodes} | set(self.consts) | {
            o for n in self.nodes for o in n.output} | {i.name for i in self.graph.input}
        self._maps: tuple[dict[str, Any], dict[str, list[Any]]] | None = None

    def _index(self) -> tuple[dict[str, Any], dict[str, list[Any]]]:
        if self._maps is None:
            prod: dict[str, Any] = {}
            cons: dict[str, list[Any]] = {}
            for n in self.nodes:
                for o in n.output:
                    prod[o] = n
                for i in n.input:
                    cons.setdefault(i, []).append(n)
            self._maps = (prod, cons)
        return self._maps

    def producer(self, name: str) -> Any | None:
        return self._index()[0].get(name)

    def consumers(self, name: str) -> list[Any]:
        return self._index()[1].get(name, [])

    def fresh(self, base: str) -> str:
        name, i = base, 0
        while name in self._names:
            i += 1
            name = f"{base}_{i}"
        self._names.add(name)
        return name

    def const(self, base: str, value: np.ndarray) -> str:
        from onnx import numpy_helper

        name = self.fresh(base)
        self.graph.initializer.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        self.consts[name] = value
        return name

    def node(self, op: str, inputs: list[str], outputs: list[str], base: str,
             **attrs: Any) -> Any:
        from onnx import helper

        return helper.make_node(op, inputs, outputs, name=self.fresh(base), **attrs)

    def slice(self, src: str, dst: str, base: str, axes: list[int], starts: list[int],
              ends: list[int]) -> Any:
        return self.node("Slice", [src, self.const(f"{base}_starts", np.array(starts, np.int64)),
                                   self.const(f"{base}_ends", np.array(ends, np.int64)),
                                   self.const(f"{base}_axes", np.array(axes, np.int64))],
                         [dst], base)

    def alive(self, node: Any) -> bool:
        return any(node is n for n in self.nodes)

    def replace(self, old: list[Any], new: list[Any]) -> None:
        """Put ``new`` where the first of ``old`` was and drop ``old``."""
        at = min(i for i, n in enumerate(self.nodes) if any(n is o for o in old))
        kept = [n for n in self.nodes if all(n is not o for o in old)]
        kept[at:at] = new
        self.nodes = kept
        self._maps = None

    def commit(self) -> None:
        """Write the nodes back (topologically sorted) and drop constants nothing reads."""
        from edgegen.export.variants import topological_sort

        used = {i for n in self.nodes for i in n.input} | self.outputs
        nodes = [n for n in self.nodes
                 if n.op_type != "Constant" or any(o in used for o in n.output)]
        del self.graph.node[:]
        self.graph.node.extend(nodes)
        keep = [t for t in self.graph.initializer if t.name in used]
        del self.graph.initializer[:]
        self.graph.initializer.extend(keep)
        topological_sort(self.graph)


def _attrs(node: Any) -> dict[str, Any]:
    from onnx import helper

    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


# --------------------------------------------------------------------------- phase-conv

@dataclass
class Site:
    """One rewritten pattern, for the manifest."""

    nodes: list[str]
    pattern: str
    form: str
    detail: dict[str, Any] = field(default_factory=dict)


def _conv_pattern(edit: GraphEdit, node: Any) -> tuple[list[Any], str, np.ndarray,
                                                       np.ndarray | None, list[Axis]] | None:
    """(nodes replaced, input name, Conv-layout kernel, bias, [row axis, column axis]) when
    ``node`` starts a supported pattern, else None (the graph is left alone)."""
    a = _attrs(node)
    if node.op_type == "ConvTranspose":
        w = edit.consts.get(node.input[1])
        b = edit.consts.get(node.input[2]) if len(node.input) > 2 and node.input[2] else None
        if w is None or w.ndim != 4 or (len(node.input) > 2 and node.input[2] and b is None):
            return None
        if a.get("group", 1) != 1 or any(d != 1 for d in a.get("dilations", [1, 1])) \
                or "output_shape" in a or a.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
            return None
        strides = list(a.get("strides", [1, 1]))
        if len(set(strides)) != 1:
            return None  # DepthToSpace interleaves square blocks only
        s = strides[0]
        kh, kw = w.shape[2:]
        pads = list(a.get("pads", [0, 0, 0, 0]))
        out_pad = list(a.get("output_padding", [0, 0]))
        if (kernel := a.get("kernel_shape")) and list(kernel) != [kh, kw]:
            return None
        axes = [convtranspose_axis(kh, s, pads[0], pads[2], out_pad[0]),
                convtranspose_axis(kw, s, pads[1], pads[3], out_pad[1])]
        return [node], node.input[0], np.transpose(w, (1, 0, 2, 3)), b, axes
    if node.op_type == "Resize":
        up = _nearest_factor(edit, node)
        users = edit.consumers(node.output[0])
        if up is None or len(users) != 1 or users[0].op_type != "Conv" \
                or node.output[0] in edit.outputs or users[0].input[0] != node.output[0]:
            return None
        conv = users[0]
        ca = _attrs(conv)
        w = edit.consts.get(conv.input[1])
        b = edit.consts.get(conv.input[2]) if len(conv.input) > 2 and conv.input[2] else None
        if w is None or w.ndim != 4 or (len(conv.input) > 2 and conv.input[2] and b is None):
            return None
        if ca.get("group", 1) != 1 or any(d != 1 for d in ca.get("dilations", [1, 1])) \
                or any(s != 1 for s in ca.get("strides", [1, 1])) \
                or ca.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
            return None
        kh, kw = w.shape[2:]
        pads = list(ca.get("pads", [0, 0, 0, 0]))
        axes = [upsample_conv_axis(kh, up, pads[0], pads[2]),
                upsample_conv_axis(kw, up, pads[1], pads[3])]
        return [node, conv], node.input[0], w, b, axes
    return None


def _nearest_factor(edit: GraphEdit, node: Any) -> int | None:
    """The integer factor of a nearest-neighbour Resize that maps output row ``i`` to input row
    ``floor(i / s)`` on both spatial axes (and leaves batch and channels alone), else None."""
    a = _attrs(node)
    mode = a.get("mode", b"nearest")
    mode = mode.decode() if isinstance(mode, bytes) else mode
    if mode != "nearest" or len(node.input) < 3 or (len(node.input) > 3 and node.input[3]):
        return None  # sizes given instead of scales: not a static factor
    scales = edit.consts.get(node.input[2])
    if scales is None or scales.shape != (4,) or list(scales[:2]) != [1, 1] \
            or scales[2] != scales[3] or scales[2] != int(scales[2]) or scales[2] < 2:
        return None
    s = int(scales[2])
    ct = a.get("coordinate_transformation_mode", b"half_pixel")
    nm = a.get("nearest_mode", b"round_prefer_floor")
    ct = ct.decode() if isinstance(ct, bytes) else ct
    nm = nm.decode() if isinstance(nm, bytes) else nm
    if a.get("antialias", 0) or a.get("axes"):
        return None
    # x_in = x_out / s (asymmetric): floor gives floor(i/s); rounding does for s = 2 only
    # when ties go down. half_pixel: (i + 0.5) / s - 0.5 lies strictly within 0.5 of floor(i/s)
    # for i >= 0, so either rounding gives it (pytorch_half_pixel equals it for outputs > 1).
    ok = (ct == "asymmetric" and (nm == "floor" or (nm == "round_prefer_floor" and s == 2))) or \
         (ct in ("half_pixel", "pytorch_half_pixel")
          and nm in ("round_prefer_floor", "round_prefer_ceil"))
    return s if ok else None


def choose_form(form: str, pattern: str, cout: int, rows: Axis, cols: Axis) -> str | None:
    """The layout a site gets, or None to leave it alone (``auto``; see the module docstring).

    Measured with ONNX Runtime 1.32 on AVX2 (2 cores, one thread per session, interleaved):
    a 128->64 ConvTranspose (k4 s2, 7x7 -> 14x14) ran 1.10-1.17x faster as four phase Convs at
    batch 1-256, 0.90-0.95x as one fused Conv; a 64->1 one ran 3-30x *slower* either way (a Conv
    with one output channel fills 1/8 of an NCHWc block; ConvTranspose's GEMM has
    ``Cout*k*k`` rows), so ``auto`` leaves ConvTranspose with fewer output channels than a block
    alone. Nearest-Resize + Conv always pays: the phases do 2.25x less arithmetic (3x3, s=2).
    """
    ar, ac = align(rows), align(cols)
    fusable = ar is not None and ac is not None and min(fused_pads(ar, ac)) >= 0
    if form == "fused":
        return "fused" if fusable else "phases"
    if form == "auto" and pattern == "ConvTranspose" and cout % NCHWC_MIN_BLOCK:
        return None
    return "phases"


def phase_conv(model: Any, form: str = "auto") -> list[Site]:
    """Rewrite every supported ConvTranspose and nearest-Resize + Conv in place; returns the
    sites (an empty list leaves the model untouched)."""
    if form not in FORMS:
        raise ValueError(f"unknown form {form!r}; expected one of {', '.join(FORMS)}")
    edit = GraphEdit(model)
    sites: list[Site] = []
    for node in list(edit.nodes):
        if not edit.alive(node):
            continue  # consumed by an earlier site
        found = _conv_pattern(edit, node)
        if found is None:
            continue
        old, x, w, b, (rows, cols) = found
        if any(p.taps == 0 for p in rows.phases + cols.phases):
            continue  # a phase with no taps (kernel smaller than stride): left alone
        out = old[-1].output[0]
        chosen = choose_form(form, node.op_type, w.shape[0], rows, cols)
        if chosen is None:
            continue
        base = old[-1].name or old[-1].op_type
        new = (_emit_fused if chosen == "fused" else _emit_phases)(edit, x, out, w, b, rows,
                                                                  cols, base)
        edit.replace(old, new)
        sites.append(Site([n.name for n in old], "+".join(n.op_type for n in old), chosen,
                          {"stride": rows.stride, "kernel": list(w.shape[2:]),
                           "channels": [int(w.shape[1]), int(w.shape[0])],
                           "phase_kernels": [[p.taps for p in rows.phases],
                                             [p.taps for p in cols.phases]]}))
    if sites:
        edit.commit()
    return sites


def _conv_inputs(edit: GraphEdit, base: str, kernel: np.ndarray,
                 bias: np.ndarray | None) -> list[str]:
    names = [edit.const(f"{base}_w", kernel)]
    if bias is not None:
        names.append(edit.const(f"{base}_b", bias))
    return names


def _crop(edit: GraphEdit, src: str, base: str, pads: tuple[tuple[int, int], ...]
          ) -> tuple[list[Any], str, list[int]]:
    """Non-negative Conv pads for ``pads`` per axis, and the Slice that crops what a negative
    pad would have removed."""
    conv_pads = [max(0, p[0]) for p in pads] + [max(0, p[1]) for p in pads]
    starts = [max(0, -p[0]) for p in pads]
    ends = [-max(0, -p[1]) or INT64_MAX for p in pads]
    if not any(starts) and all(e == INT64_MAX for e in ends):
        return [], src, conv_pads
    cropped = edit.fresh(f"{base}_crop")
    return [edit.slice(src, cropped, f"{base}_crop", [2, 3], starts, ends)], cropped, conv_pads


def _emit_phases(edit: GraphEdit, x: str, out: str, w: np.ndarray, b: np.ndarray | None,
                 rows: Axis, cols: Axis, base: str) -> list[Any]:
    """One Conv per phase ``(rh, rw)`` (row-major = DepthToSpace's DCR channel order), Concat,
    DepthToSpace, and a final Slice when the interleaved grid is longer than the output."""
    s = rows.stride
    nodes: list[Any] = []
    parts: list[str] = []
    for ph in rows.phases:
        for pw in cols.phases:
            name = f"{base}_phase{ph.r}{pw.r}"
            raw = edit.fresh(f"{name}_raw")
            pads = (rows.pads(ph), cols.pads(pw))
            conv_pads = [max(0, pads[0][0]), max(0, pads[1][0]), max(0, pads[0][1]),
                         max(0, pads[1][1])]
            crop, y, _ = _crop(edit, raw, name, pads)
            nodes.append(edit.node("Conv", [x, *_conv_inputs(edit, name, phase_kernel(w, ph, pw),
                                                            b)],
                                   [raw], name, kernel_shape=[ph.taps, pw.taps],
                                   pads=conv_pads, strides=[1, 1]))
            nodes += crop
            parts.append(y)
    trims = [rows.trim, cols.trim]
    if s == 1:  # one phase: crop its output into place
        return nodes + _finish(edit, parts[0], out, base, trims, [0, 0])
    cat = edit.fresh(f"{base}_phases")
    nodes.append(edit.node("Concat", parts, [cat], f"{base}_concat", axis=1))
    grid = out if not any(trims) else edit.fresh(f"{base}_grid")
    nodes.append(edit.node("DepthToSpace", [cat], [grid], f"{base}_d2s", blocksize=s,
                           mode="DCR"))
    return nodes + ([] if grid == out else _finish(edit, grid, out, base, trims, [0, 0]))


def _finish(edit: GraphEdit, grid: str, out: str, base: str, trims: list[int],
            starts: list[int]) -> list[Any]:
    """Rename ``grid`` to ``out``, cropping ``starts`` rows in front and ``trims`` behind."""
    if not any(trims) and not any(starts):
        return [edit.node("Identity", [grid], [out], f"{base}_out")]
    return [edit.slice(grid, out, f"{base}_trim", [2, 3], starts,
                       [-t if t else INT64_MAX for t in trims])]


def fused_pads(ar: Aligned, ac: Aligned) -> list[int]:
    """Conv pads [top, left, bottom, right] of the fused layout's common grid."""
    return [-ar.offset, -ac.offset, ar.length_grow + ar.offset + ar.taps - 1,
            ac.length_grow + ac.offset + ac.taps - 1]


def _emit_fused(edit: GraphEdit, x: str, out: str, w: np.ndarray, b: np.ndarray | None,
                rows: Axis, cols: Axis, base: str) -> list[Any]:
    """One Conv of ``s*s*Cout`` channels on the common grid, DepthToSpace, one Slice."""
    s = rows.stride
    ar, ac = align(rows), align(cols)
    assert ar is not None and ac is not None
    cout = w.shape[0]
    kernel = np.zeros((s * s * cout, w.shape[1], ar.taps, ac.taps), w.dtype)
    bias = None if b is None else np.zeros(s * s * cout, b.dtype)
    for ph in rows.phases:
        for pw in cols.phases:
            slot = ar.slot[ph.r] * s + ac.slot[pw.r]  # DCR: channel = slot * Cout + c
            kernel[slot * cout:(slot + 1) * cout] = phase_kernel(w, ph, pw)
            if bias is not None and b is not None:
                bias[slot * cout:(slot + 1) * cout] = b
    pads = fused_pads(ar, ac)
    raw, grid = edit.fresh(f"{base}_fused"), edit.fresh(f"{base}_grid")
    nodes = [edit.node("Conv", [x, *_conv_inputs(edit, f"{base}_fused", kernel, bias)], [raw],
                       f"{base}_fused", kernel_shape=[ar.taps, ac.taps], pads=pads,
                       strides=[1, 1]),
             edit.node("DepthToSpace", [raw], [grid], f"{base}_d2s", blocksize=s, mode="DCR")]
    # the true output is rows [start, start + s*H + extra_len) of the s*(H + length_grow) grid
    trims = [s * a.length_grow - a.start - ax.extra_len for a, ax in ((ar, rows), (ac, cols))]
    return nodes + _finish(edit, grid, out, base, trims, [ar.start, ac.start])


# --------------------------------------------------------------------------- activation-up

def activation_up(model: Any) -> list[Site]:
    """Move element-wise activations above data movement until they meet their producer.

    An activation moves when the movement op's output feeds only it and each data input of the
    movement op feeds only the movement op (so the moved activation becomes the sole consumer
    of the producing node, which ONNX Runtime can then fuse)."""
    edit = GraphEdit(model)
    sites: list[Site] = []
    moved = True
    while moved:  # one pass per level of movement ops; each pass is linear in the graph
        moved = False
        touched: set[int] = set()
        for act in list(edit.nodes):
            if id(act) in touched or act.op_type not in ACTIVATIONS \
                    or any(i and i not in edit.consts for i in act.input[1:]):
                continue
            mover = edit.producer(act.input[0])
            if mover is None or id(mover) in touched or mover.op_type not in MOVEMENT \
                    or mover.domain not in ("", "ai.onnx") or len(mover.output) != 1 \
                    or mover.output[0] in edit.outputs \
                    or len(edit.consumers(mover.output[0])) != 1:
                continue
            data = list(dict.fromkeys(mover.input)) if mover.op_type == "Concat" \
                else [mover.input[0]]
            if any(not d or d in edit.consts or d in edit.outputs or edit.producer(d) is None
                   or len(edit.consumers(d)) != 1 for d in data):
                continue
            renamed: dict[str, str] = {}
            new_acts = []
            for d in data:
                y = edit.fresh(f"{d}_{act.op_type.lower()}")
                n = edit.node(act.op_type, [d, *act.input[1:]], [y], f"{act.name}_up")
                n.attribute.extend(act.attribute)
                n.domain = act.domain
                new_acts.append(n)
                renamed[d] = y
            moved_node = edit.node(mover.op_type, [renamed.get(i, i) for i in mover.input],
                                   [act.output[0]], mover.name or mover.op_type)
            moved_node.attribute.extend(mover.attribute)
            touched.update({id(moved_node), *map(id, new_acts)})
            sites.append(Site([act.name, mover.name], f"{mover.op_type}+{act.op_type}",
                              "moved", {"activation": act.op_type, "above": mover.op_type}))
            edit.replace([mover, act], [*new_acts, moved_node])
            moved = True
    if sites:
        edit.commit()
    return sites


# --------------------------------------------------------------------------- d2s-into-convtranspose

def d2s_into_convtranspose(model: Any, max_growth: float = 4.0) -> list[Site]:
    """Fold ``DepthToSpace(b) -> ConvTranspose(s, k)`` into one ``ConvTranspose(b*s, k')`` on
    the un-interleaved tensor, ``k' = s*(b - 1) + k``.

    Input pixel ``b*i + r`` of the interleaved grid is pixel ``i`` of block channel ``r``, so
    its scatter lands at ``s*b*i + (s*r + t) - pad``: stride ``s*b`` with the kernel shifted by
    ``s*r`` for that channel block (zeros elsewhere). Pads and output padding stay. The
    arithmetic grows by ``(k'/k)^2`` (zeros in the kernel) while the DepthToSpace shuffle of
    ``b*b*C`` channels disappears: worth it for thin layers only, hence ``max_growth`` bounds
    ``(k'/k)^2 * Cout / 8`` — a ConvTranspose that ``auto`` leaves alone has Cout < 8."""
    edit = GraphEdit(model)
    sites: list[Site] = []
    for conv in list(edit.nodes):
        if conv.op_type != "ConvTranspose" or not edit.alive(conv):
            continue
        d2s = edit.producer(conv.input[0])
        if d2s is None or d2s.op_type != "DepthToSpace" or d2s.output[0] in edit.outputs \
                or len(edit.consumers(d2s.output[0])) != 1:
            continue
        a, da = _attrs(conv), _attrs(d2s)
        w = edit.consts.get(conv.input[1])
        has_b = len(conv.input) > 2 and bool(conv.input[2])
        if w is None or w.ndim != 4 or (has_b and conv.input[2] not in edit.consts):
            continue
        if a.get("group", 1) != 1 or any(d != 1 for d in a.get("dilations", [1, 1])) \
                or "output_shape" in a or a.get("auto_pad", b"NOTSET") not in (b"NOTSET",
                                                                              "NOTSET"):
            continue
        strides = list(a.get("strides", [1, 1]))
        bs = int(da["blocksize"])
        mode = da.get("mode", b"DCR")
        mode = mode.decode() if isinstance(mode, bytes) else mode
        cin, cout, kh, kw = w.shape
        k2 = [strides[0] * (bs - 1) + kh, strides[1] * (bs - 1) + kw]
        growth = k2[0] * k2[1] / (kh * kw) * cout / NCHWC_MIN_BLOCK
        if growth > max_growth:
            continue
        big = np.zeros((bs * bs * cin, cout, *k2), w.dtype)
        for rh in range(bs):
            for rw in range(bs):
                for c in range(cin):
                    ch = (rh * bs + rw) * cin + c if mode == "DCR" else c * bs * bs + rh * bs + rw
                    oh, ow = strides[0] * rh, strides[1] * rw
                    big[ch, :, oh:oh + kh, ow:ow + kw] = w[c]
        attrs = {k: v for k, v in a.items() if k not in ("strides", "kernel_shape")}
        name = conv.name or "ConvTranspose"
        new = edit.node("ConvTranspose", [d2s.input[0], edit.const(f"{name}_w", big),
                                          *conv.input[2:]], [conv.output[0]], name,
                        strides=[strides[0] * bs, strides[1] * bs], kernel_shape=k2, **attrs)
        edit.replace([d2s, conv], [new])
        sites.append(Site([d2s.name, conv.name], "DepthToSpace+ConvTranspose", "folded",
                          {"blocksize": bs, "stride": [strides[0] * bs, strides[1] * bs],
                           "kernel": k2, "arithmetic_growth": k2[0] * k2[1] / (kh * kw)}))
    if sites:
        edit.commit()
    return sites


# --------------------------------------------------------------------------- embedding-into-gemm

def embedding_into_gemm(model: Any) -> list[Site]:
    """``Gemm(Concat([x, Gather(E, label)]), W, b)`` -> ``Gemm(x, W_x, C=Gather(T, label))``
    with the table ``T = alpha * E @ W_e + beta * b`` computed once at export.

    A conditional generator concatenates a label embedding to its latent and multiplies: the
    embedding's share of the product depends on the label only, so it is a lookup. The GEMM
    loses the embedding's columns (K: z_dim + embed_dim -> z_dim), the table has one row per
    label. Exact in real arithmetic (the table is summed in float64, then rounded)."""
    edit = GraphEdit(model)
    sites: list[Site] = []
    for gemm in list(edit.nodes):
        if gemm.op_type != "Gemm" or not edit.alive(gemm):
            continue
        a = _attrs(gemm)
        cat = edit.producer(gemm.input[0])
        w = edit.consts.get(gemm.input[1])
        bias = edit.consts.get(gemm.input[2]) if len(gemm.input) > 2 and gemm.input[2] \
            else None
        if cat is None or cat.op_type != "Concat" or w is None or w.ndim != 2 \
                or a.get("transA", 0) or (len(gemm.input) > 2 and gemm.input[2]
                                           and bias is None) \
                or len(edit.consumers(cat.output[0])) != 1 \
                or _attrs(cat).get("axis") not in (1, -1):
            continue
        wt = w.T if a.get("transB", 0) else w  # [K, N]
        gathers = [(i, edit.producer(x)) for i, x in enumerate(cat.input)]
        found = [(i, g) for i, g in gathers if g is not None and g.op_type == "Gather"
                 and g.input[0] in edit.consts and edit.consts[g.input[0]].ndim == 2
                 and _attrs(g).get("axis", 0) == 0 and len(edit.consumers(g.output[0])) == 1]
        if len(found) != 1 or len(cat.input) < 2:
            continue
        idx, gather = found[0]
        widths = []
        for x in cat.input:  # every segment's width must be known to split W's rows
            prod = edit.producer(x)
            width = _static_width(edit, x, prod)
            if width is None:
                break
            widths.append(width)
        if len(widths) != len(cat.input) or sum(widths) != wt.shape[0]:
            continue
        start = sum(widths[:idx])
        table_e = edit.consts[gather.input[0]].astype(np.float64)  # [n, e]
        alpha, beta = float(a.get("alpha", 1.0)), float(a.get("beta", 1.0))
        table = alpha * table_e @ wt[start:start + widths[idx]].astype(np.float64)
        if bias is not None:
            table = table + beta * np.broadcast_to(bias.astype(np.float64), table.shape[1:])
        keep = np.concatenate([wt[:start], wt[start + widths[idx]:]])  # [K - e, N]
        rest = [x for i, x in enumerate(cat.input) if i != idx]
        name = gemm.name or "Gemm"
        new: list[Any] = []
        if len(rest) == 1:
            x = rest[0]
        else:
            x = edit.fresh(f"{name}_inputs")
            new.append(edit.node("Concat", rest, [x], f"{name}_concat", axis=1))
        looked = edit.fresh(f"{name}_label_rows")
        new.append(edit.node("Gather", [edit.const(f"{name}_label_table",
                                                   table.astype(w.dtype)), gather.input[1]],
                             [looked], f"{name}_lookup", axis=0))
        new.append(edit.node("Gemm", [x, edit.const(f"{name}_w", keep.astype(w.dtype)), looked],
                             [gemm.output[0]], name, alpha=alpha, beta=1.0))
        edit.replace([gather, cat, gemm], new)
        sites.append(Site([gather.name, cat.name, gemm.name], "Gather+Concat+Gemm", "table",
                          {"table_rows": int(table.shape[0]), "k_before": int(wt.shape[0]),
                           "k_after": int(keep.shape[0])}))
    if sites:
        edit.commit()
    return sites


def _static_width(edit: GraphEdit, name: str, producer: Any) -> int | None:
    """The last dimension of a 2-D tensor when the graph states it (graph input, Gather of a
    constant table, or a value_info), else None."""
    if producer is not None and producer.op_type == "Gather" and producer.input[0] in edit.consts:
        return int(edit.consts[producer.input[0]].shape[-1])
    for vi in [*edit.graph.input, *edit.graph.value_info]:
        if vi.name == name:
            dims = vi.type.tensor_type.shape.dim
            if len(dims) == 2 and dims[1].HasField("dim_value"):
                return int(dims[1].dim_value)
    return None


# --------------------------------------------------------------------------- registry

@dataclass(frozen=True)
class Rewrite:
    name: str
    what: str
    apply: Callable[[Any, str], list[Site]]  # (model, phase-conv form) -> sites; in place


REWRITES = (  # in this order: each pass sets up the patterns of the next
    Rewrite("phase-conv", "ConvTranspose (and nearest Resize + Conv) -> per-phase Conv + "
                          "DepthToSpace (sub-pixel convolution)", phase_conv),
    Rewrite("activation-up", "element-wise activations moved above DepthToSpace/Concat/Slice "
                             "onto the convolution that produces their input (fusable)",
            lambda model, form: activation_up(model)),
    Rewrite("d2s-into-convtranspose", "DepthToSpace followed by a thin ConvTranspose -> one "
                                      "ConvTranspose of a larger stride (no shuffle)",
            lambda model, form: d2s_into_convtranspose(model)),
    Rewrite("embedding-into-gemm", "a label embedding concatenated before a Gemm -> a "
                                   "per-label table added by the Gemm (smaller K)",
            lambda model, form: embedding_into_gemm(model)),
)
