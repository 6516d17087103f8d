"""The FFT path's transposing copies take torch's general copy (shared among threads), and the operator gives the same
result at 1 and 2 threads (issue #28: a plain 2-D ``copy_`` of a transposed view runs on one thread)."""

import pytest
import torch

import c3a_tutorial.c3a.block_circulant as bc


def test_copy_transposed_matches_a_plain_copy_and_never_hands_torch_a_2d_transpose(monkeypatch):
    src = torch.randn(12 * 41, 33, dtype=torch.complex64)
    out = torch.empty(33, 12 * 41, dtype=torch.complex64)
    seen = []
    real_copy = torch.Tensor.copy_

    def spy(self, other, *args, **kwargs):
        seen.append(other.dim())
        return real_copy(self, other, *args, **kwargs)

    monkeypatch.setattr(torch.Tensor, "copy_", spy)
    bc._copy_transposed(out, src.t())
    monkeypatch.undo()
    assert torch.equal(out, src.t())
    assert seen and all(dim != 2 for dim in seen), f"a 2-D transposed copy (torch's one-thread case) was used: {seen}"


def test_the_operator_calls_the_threaded_copy_in_forward_and_backward(monkeypatch):
    calls = []
    real = bc._copy_transposed
    monkeypatch.setattr(bc, "_copy_transposed", lambda out, src: calls.append(out.shape) or real(out, src))
    kernel = torch.randn(2, 3, 16, requires_grad=True)  # m = 2 < _NARROW: forward's GEMM is the transposed form
    x = torch.randn(40, 48, requires_grad=True)
    with bc.use_choices("cpu", bc.INTRA_OP_CHOICES):
        y = bc.block_circulant_matmul(x, kernel, path="fft")
        y.sum().backward()
    assert len(calls) >= 3  # forward's rfft of x, backward's rfft of g and of x


@pytest.mark.parametrize("shape", [(768, 768, 64, 300), (1024, 512, 128, 70)])
def test_one_and_two_threads_give_the_same_result(shape):
    d_out, d_in, b, n = shape
    gen = torch.Generator().manual_seed(0)
    kernel = torch.randn(d_out // b, d_in // b, b, generator=gen, dtype=torch.float64, requires_grad=True)
    x = torch.randn(n, d_in, generator=gen, dtype=torch.float64, requires_grad=True)
    g = torch.randn(n, d_out, generator=gen, dtype=torch.float64)
    saved = torch.get_num_threads()
    results = []
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            with bc.use_choices("cpu", bc.INTRA_OP_CHOICES):
                y = bc.block_circulant_matmul(x, kernel, path="fft")
                results.append((y, *torch.autograd.grad(y, (x, kernel), g)))
    finally:
        torch.set_num_threads(saved)
    reference = bc.block_circulant_matmul_reference(x, kernel)
    for one, two in zip(*results, strict=True):
        torch.testing.assert_close(one, two, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(results[0][0], reference, rtol=1e-10, atol=1e-10)
