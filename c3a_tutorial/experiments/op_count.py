"""Count the torch ops a forward + backward dispatches, without a GPU: run it on the ``meta`` device.

A ``meta`` tensor has a shape and a dtype but no data, and takes torch's non-CPU code paths, so the ops dispatched
on it are the ops a GPU would launch (``tests/c3a/test_op_count.py``). On a GPU at fine-tuning sizes each op costs
host time whatever its arithmetic (``data/results/gpu/README.md``): fewer ops, less time. Views (``t``, ``view``,
``expand``, ...: an output that aliases an input without writing it) are counted separately, as they cost host
time but launch no kernel.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch.utils._python_dispatch import TorchDispatchMode


class OpCount(NamedTuple):
    total: int  # every dispatched op
    not_views: int  # ops that compute (or write) something
    names: tuple  # every op, in order


def is_view(func) -> bool:
    """Whether an aten op returns an alias of an input without writing to it (``t``, ``view``, ``detach``, ...)."""
    return bool(func.is_view) and not func._schema.is_mutable


class _Recorder(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.ops = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops.append(func)
        return func(*args, **(kwargs or {}))


def count_ops(step) -> OpCount:
    """The ops ``step()`` dispatches (run it once before, so that one-off set-up such as cached indices is not
    counted)."""
    with _Recorder() as recorder:
        step()
    ops = recorder.ops
    return OpCount(len(ops), sum(not is_view(f) for f in ops), tuple(str(f) for f in ops))


def layer_step_ops(layer: torch.nn.Module, tokens: int, warm: bool = True) -> OpCount:
    """Ops of ``layer(x).sum().backward()`` for ``x`` of ``tokens`` rows on the layer's device, ``x`` requiring
    its gradient (as inside a network)."""
    weight = getattr(layer, "base_layer", layer).weight  # the input's dtype is the frozen layer's, not the adapter's
    d_in = layer.in_features

    def step():
        x = torch.randn(tokens, d_in, device=weight.device, dtype=weight.dtype, requires_grad=True)
        layer(x).sum().backward()

    if warm:
        step()
    x = torch.randn(tokens, d_in, device=weight.device, dtype=weight.dtype, requires_grad=True)
    return count_ops(lambda: layer(x).sum().backward())


def operator_step_ops(matmul, d_out: int, d_in: int, b: int, tokens: int, device="meta") -> OpCount:
    """Ops of one forward + backward (both gradients) of ``matmul(x, kernel)`` alone, with a given upstream gradient."""
    kernel = torch.randn(d_out // b, d_in // b, b, device=device, requires_grad=True)
    x = torch.randn(tokens, d_in, device=device, requires_grad=True)
    grad = torch.randn(tokens, d_out, device=device)

    def step():
        torch.autograd.grad(matmul(x, kernel), (x, kernel), grad)

    step()
    return count_ops(step)
