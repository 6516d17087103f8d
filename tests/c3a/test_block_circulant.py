import numpy as np
import pytest
import scipy.linalg
import torch

from c3a_tutorial import block_circulant, block_circulant_matmul, block_circulant_matmul_reference

# (d_out // b, d_in // b, b): square, rectangular both ways, b = 1, b = d, odd and even b.
SHAPES = [(2, 2, 4), (3, 2, 5), (2, 3, 3), (4, 4, 1), (1, 1, 8), (1, 1, 7), (2, 6, 2), (3, 1, 6)]


@pytest.mark.parametrize("shape", SHAPES)
def test_block_circulant_blocks_are_scipy_circulants(shape):
    m, n, b = shape
    kernel = np.random.default_rng(0).standard_normal(shape)
    dense = block_circulant(kernel)
    assert dense.shape == (m * b, n * b)
    for i in range(m):
        for j in range(n):
            np.testing.assert_array_equal(
                dense[i * b : (i + 1) * b, j * b : (j + 1) * b], scipy.linalg.circulant(kernel[i, j])
            )
    np.testing.assert_array_equal(block_circulant(torch.tensor(kernel)).numpy(), dense)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("batch", [(), (5,), (2, 3)])
def test_matmul_matches_dense_float64(shape, batch):
    m, n, b = shape
    kernel = torch.randn(shape, dtype=torch.float64)
    x = torch.randn(*batch, n * b, dtype=torch.float64)
    expected = x @ block_circulant(kernel).T
    out = block_circulant_matmul(x, kernel)
    assert out.shape == (*batch, m * b)
    torch.testing.assert_close(out, expected, atol=1e-10, rtol=0)
    torch.testing.assert_close(block_circulant_matmul_reference(x, kernel), expected, atol=1e-10, rtol=0)


@pytest.mark.parametrize("shape", SHAPES)
def test_gradcheck_both_inputs(shape):
    m, n, b = shape
    kernel = torch.randn(shape, dtype=torch.float64, requires_grad=True)
    x = torch.randn(2, 3, n * b, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(block_circulant_matmul, (x, kernel))


@pytest.mark.parametrize("shape", SHAPES)
def test_gradients_match_dense_reference(shape):
    """The custom backward against autograd through the dense matrix (catches a transposed kernel)."""
    m, n, b = shape
    kernel = torch.randn(shape, dtype=torch.float64, requires_grad=True)
    x = torch.randn(4, n * b, dtype=torch.float64, requires_grad=True)
    g = torch.randn(4, m * b, dtype=torch.float64)
    gx, gk = torch.autograd.grad(block_circulant_matmul(x, kernel), (x, kernel), g)
    rx, rk = torch.autograd.grad(x @ block_circulant(kernel).T, (x, kernel), g)
    torch.testing.assert_close(gx, rx, atol=1e-10, rtol=0)
    torch.testing.assert_close(gk, rk, atol=1e-10, rtol=0)


def test_only_input_and_kernel_are_saved_for_backward():
    kernel = torch.randn(3, 4, 8, requires_grad=True)
    x = torch.randn(16, 32, requires_grad=True)
    saved = []

    def pack(t):
        saved.append(t)
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        block_circulant_matmul(x, kernel)
    assert len(saved) == 2
    assert {tuple(t.shape) for t in saved} == {(16, 32), (3, 4, 8)}
    assert not any(t.is_complex() for t in saved)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_inputs_computed_in_float32(dtype):
    kernel = torch.randn(2, 3, 8)
    x = torch.randn(5, 24).to(dtype)
    out = block_circulant_matmul(x, kernel)
    assert out.dtype == dtype
    expected = x.float() @ block_circulant(kernel).T
    torch.testing.assert_close(out.float(), expected, atol=0.05 * expected.abs().max().item(), rtol=0.02)
    xg = x.clone().requires_grad_()
    block_circulant_matmul(xg, kernel.requires_grad_()).sum().backward()
    assert xg.grad.dtype == dtype and kernel.grad.dtype == torch.float32


def test_shape_errors_are_clear():
    with pytest.raises(ValueError, match="expects d_in .* = 2 \\* 4 = 8"):
        block_circulant_matmul(torch.randn(3, 9), torch.randn(2, 2, 4))
    with pytest.raises(ValueError, match="2 dimensions instead of 3"):
        block_circulant_matmul(torch.randn(3, 8), torch.randn(2, 8))


def test_empty_batch_and_mixed_dtypes():
    kernel = torch.randn(2, 3, 4, requires_grad=True)
    out = block_circulant_matmul(torch.randn(0, 12), kernel)
    assert out.shape == (0, 8)
    out.sum().backward()
    torch.testing.assert_close(kernel.grad, torch.zeros_like(kernel))
    x64 = torch.randn(3, 12, dtype=torch.float64)
    expected = x64 @ block_circulant(kernel.detach().double()).T
    torch.testing.assert_close(block_circulant_matmul_reference(x64, kernel.detach()), expected)
    torch.testing.assert_close(block_circulant_matmul(x64, kernel.detach()), expected)


@pytest.mark.parametrize("path", ["fft", "dense"])
def test_scale_argument_values_and_gradients(path):
    kernel = torch.randn(2, 3, 5, dtype=torch.float64, requires_grad=True)
    x = torch.randn(4, 15, dtype=torch.float64, requires_grad=True)
    torch.testing.assert_close(
        block_circulant_matmul(x, kernel, path=path, scale=0.37), 0.37 * (x @ block_circulant(kernel).T)
    )
    assert torch.autograd.gradcheck(lambda a, w: block_circulant_matmul(a, w, path=path, scale=0.37), (x, kernel))


def test_float16_output_does_not_overflow_before_scaling():
    # Unscaled, every output is 64 * 2000 = 128,000 > float16's 65,504; scaled by 1/64 it is 2,000.
    kernel = torch.full((1, 8, 8), 2000.0)
    x = torch.ones(3, 64, dtype=torch.float16, requires_grad=True)
    out = block_circulant_matmul(x, kernel, scale=1 / 64)
    assert out.dtype == torch.float16 and torch.isfinite(out).all()
    torch.testing.assert_close(out.float(), torch.full((3, 8), 2000.0))
    out.float().sum().backward()
    assert torch.isfinite(x.grad).all()
