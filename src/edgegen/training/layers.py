"""The layers the training loop swaps into the networks so that a run does not depend on how many
processes compute it: dropout masks drawn per sample, and BatchNorm statistics over the global
batch.

``convert_dropout`` and ``convert_batchnorm`` replace layers in place and keep every parameter
and buffer (same names, same tensors), so checkpoints, the exponential moving average and the
export see the networks they always did. In eval mode both layers are exactly their torch
originals.

Why our own synchronised BatchNorm: ``torch.nn.SyncBatchNorm`` refuses CPU tensors ("SyncBatchNorm
expected input tensor to be on GPU", torch 2.14), so it cannot run on gloo. This one computes the
global batch mean and (biased) variance with two all-reduces of per-channel sums — two passes
(sum, then the sum of squared deviations from the global mean), numerically as stable as
BatchNorm's own — and gets its gradient through them from an all-reduce with autograd.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from edgegen.training.draws import DrawSource


class SampleDropout(nn.Module):
    """``nn.Dropout`` whose mask for sample ``i`` comes from the sample's global position
    (``Draws.uniform`` on stream ``dropout:<path>#<call>``): the same masks on any number of
    processes."""

    def __init__(self, p: float, source: DrawSource, path: str) -> None:
        super().__init__()
        self.p, self.source, self.path = p, source, path

    def extra_repr(self) -> str:
        return f"p={self.p}, stream=dropout:{self.path}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        rnd = self.source.current
        if rnd is None:
            raise RuntimeError(f"SampleDropout {self.path} ran in training mode outside a "
                               "training step (no Draws set); call .eval() first")
        keep = rnd.uniform(rnd.call_name(f"dropout:{self.path}"), *x.shape[1:]) >= self.p
        return x * keep.to(x.dtype) * (1.0 / (1.0 - self.p))  # [B, ...] like x


def convert_dropout(module: nn.Module, source: DrawSource, prefix: str = "") -> nn.Module:
    """Replace every ``nn.Dropout`` inside ``module`` by a ``SampleDropout`` drawing from
    ``source``; returns ``module``."""
    for name, child in list(module.named_children()):
        path = f"{prefix}.{name}" if prefix else name
        if type(child) is nn.Dropout:
            setattr(module, name, SampleDropout(child.p, source, path))
        else:
            convert_dropout(child, source, path)
    return module


class _Group:
    """A process group held by a module: shared, never copied (``copy.deepcopy`` of a module
    must not try to copy a live connection)."""

    def __init__(self, group: Any) -> None:
        self.group = group

    def __deepcopy__(self, memo: dict) -> _Group:
        return self


class _AllReduceSum(torch.autograd.Function):
    """``y = sum over ranks of x`` (the same ``y`` on every rank). Backward: the gradient of the
    sum of every rank's loss with respect to this rank's ``x`` is the sum over ranks of their
    gradients with respect to ``y`` — another all-reduce."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, group: Any) -> torch.Tensor:
        ctx.group = group
        y = x.clone()
        dist.all_reduce(y, group=group)
        return y

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        g = grad.clone()
        dist.all_reduce(g, group=ctx.group)
        return g, None


class GlobalSum:
    """``t -> the sum of t over every rank`` (differentiable): what a network's statistic over
    the batch (``batch_sum``, e.g. cmlp's label-grouped minibatch std) uses on several
    processes so that it is the global batch's."""

    def __init__(self, group: Any) -> None:
        self._group = _Group(group)

    def __call__(self, t: torch.Tensor) -> torch.Tensor:
        return _AllReduceSum.apply(t, self._group.group)


class SyncBatchNorm(_BatchNorm):
    """BatchNorm whose training-mode statistics are those of the global batch (all ranks).

    With every rank's loss a mean over its slice and DDP averaging the gradients, the gradient
    equals the single-process one (up to floating-point summation order)."""

    def __init__(self, bn: _BatchNorm, group: Any, world_size: int) -> None:
        super().__init__(bn.num_features, bn.eps, bn.momentum, bn.affine,
                         bn.track_running_stats)
        # Keep the very same parameters and buffers (names and tensors) as the layer replaced.
        for name, p in bn.named_parameters(recurse=False):
            setattr(self, name, p)
        for name, b in bn.named_buffers(recurse=False):
            setattr(self, name, b)
        self.train(bn.training)
        self._group, self.world_size = _Group(group), world_size

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"expected at least 2D input (got {input.dim()}D input)")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check_input_dim(x)
        if not self.training:
            return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                                False, 0.0, self.eps)
        c = x.shape[1]
        dims = [0, *range(2, x.dim())]  # every axis but the channel
        shape = [1, c] + [1] * (x.dim() - 2)
        count = x.numel() // c * self.world_size  # equal slices: global batch / world size
        group = self._group.group
        mean = _AllReduceSum.apply(x.sum(dims), group) / count  # [C]
        xc = x - mean.view(shape)
        var = _AllReduceSum.apply((xc * xc).sum(dims), group) / count  # [C], biased
        y = xc * torch.rsqrt(var + self.eps).view(shape)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        if self.track_running_stats and self.num_batches_tracked is not None:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                m = (self.momentum if self.momentum is not None
                     else 1.0 / float(self.num_batches_tracked))
                self.running_mean.mul_(1 - m).add_(mean.detach(), alpha=m)
                unbiased = var.detach() * (count / max(count - 1, 1))
                self.running_var.mul_(1 - m).add_(unbiased, alpha=m)
        return y


def global_batch_sums(module: nn.Module, group: Any) -> None:
    """Give every submodule that takes statistics over the batch (a ``batch_sum`` attribute)
    the sum over ``group``'s ranks."""
    for m in module.modules():
        if hasattr(m, "batch_sum"):
            m.batch_sum = GlobalSum(group)


def convert_batchnorm(module: nn.Module, group: Any, world_size: int) -> nn.Module:
    """Replace every BatchNorm layer inside ``module`` by a ``SyncBatchNorm`` over ``group``;
    returns ``module`` (or the new layer when ``module`` itself is a BatchNorm)."""
    if isinstance(module, _BatchNorm) and not isinstance(module, SyncBatchNorm):
        return SyncBatchNorm(module, group, world_size)
    for name, child in list(module.named_children()):
        setattr(module, name, convert_batchnorm(child, group, world_size))
    return module
