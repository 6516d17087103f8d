"""The dense path's own promises: it saves only the input and the kernel, its indices are built once per shape and
device and live there, and ΔW by the gather is block_circulant(kernel)."""

import torch

from c3a_tutorial import block_circulant, block_circulant_matmul
from c3a_tutorial.c3a import dense_gather


def test_the_gather_builds_block_circulant_and_the_fold_is_its_adjoint():
    kernel = torch.randn(3, 2, 5, dtype=torch.float64)
    gather, fold = dense_gather._indices(3, 2, 5, kernel.device)
    torch.testing.assert_close(torch.take(kernel, gather), block_circulant(kernel), rtol=0, atol=0)
    # <take(k), M> == <k, fold(M)> for every M: the fold is the gather's adjoint (what the kernel gradient needs).
    m = torch.randn(15, 10, dtype=torch.float64)
    folded = torch.take(m, fold).sum(-1)
    torch.testing.assert_close((torch.take(kernel, gather) * m).sum(), (kernel * folded).sum())


def test_indices_are_cached_per_shape_and_device():
    first = dense_gather._indices(2, 3, 4, torch.device("cpu"))
    assert dense_gather._indices(2, 3, 4, torch.device("cpu")) is first
    on_meta = dense_gather._indices(2, 3, 4, torch.device("meta"))
    assert on_meta[0].device.type == "meta" and on_meta[0].shape == (8, 12) and on_meta[1].shape == (2, 3, 4, 4)


def test_only_the_input_and_the_kernel_are_saved_for_backward():
    kernel = torch.randn(4, 4, 16, requires_grad=True)
    x = torch.randn(32, 64, requires_grad=True)
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
        out = block_circulant_matmul(x, kernel, path="dense", scale=0.5)
    assert len(saved) == 2
    assert {(t.shape, t.data_ptr()) for t in saved} == {(x.shape, x.data_ptr()), (kernel.shape, kernel.data_ptr())}
    out.sum().backward()
    assert x.grad is not None and kernel.grad is not None
