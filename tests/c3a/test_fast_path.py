"""The fast operator (FFT path and dense path) against the readable reference, in float64."""

import pytest
import torch

from c3a_tutorial import C3ALinear, block_circulant, block_circulant_matmul, block_circulant_matmul_reference
from c3a_tutorial.c3a import block_circulant as bc_module

# (d_out // b, d_in // b, b) per shape class.
SHAPE_CLASSES = {
    "square even b": (3, 3, 8),
    "odd b": (2, 2, 7),
    "b = 1": (5, 4, 1),
    "b = d": (1, 1, 16),
    "b = d, odd": (1, 1, 9),
    "wide": (2, 5, 4),
    "tall": (6, 2, 3),
}
BATCHES = [(), (4,), (2, 3), (2, 1, 3)]


@pytest.mark.parametrize("path", ["fft", "dense", "auto"])
@pytest.mark.parametrize("batch", BATCHES, ids=str)
@pytest.mark.parametrize("name", SHAPE_CLASSES)
def test_fast_equals_reference_values_and_gradients(name, batch, path):
    m, n, b = SHAPE_CLASSES[name]
    kernel = torch.randn(m, n, b, dtype=torch.float64, requires_grad=True)
    x = torch.randn(*batch, n * b, dtype=torch.float64, requires_grad=True)
    g = torch.randn(*batch, m * b, dtype=torch.float64)
    out = block_circulant_matmul(x, kernel, path=path)
    ref = block_circulant_matmul_reference(x, kernel)
    assert out.shape == ref.shape == (*batch, m * b)
    torch.testing.assert_close(out, ref, atol=1e-11, rtol=0)
    gx, gk = torch.autograd.grad(out, (x, kernel), g)
    rx, rk = torch.autograd.grad(ref, (x, kernel), g)
    torch.testing.assert_close(gx, rx, atol=1e-11, rtol=0)
    torch.testing.assert_close(gk, rk, atol=1e-11, rtol=0)


# (d_out // b, d_in // b, b): the GEMM over frequencies takes its transposed form when the output has fewer
# than bc_module._NARROW blocks; these shapes put each side, forward and backward, on each form.
CHUNK_SHAPES = [(9, 2, 4), (2, 9, 3), (8, 8, 2), (3, 3, 5)]


@pytest.mark.parametrize("shape", CHUNK_SHAPES, ids=str)
def test_token_chunks_and_both_gemm_forms_match_dense(shape, monkeypatch):
    """Tokens in chunks of 8 (the last one partial), both layouts of the frequency GEMM, float64, both gradients."""
    monkeypatch.setattr(bc_module, "_CHUNK_BYTES", 1)
    assert bc_module._chunk_rows(16, 16, torch.float64) == 8
    m, n, b = shape
    assert bc_module._NARROW == 8 and (min(m, n) < 8 or max(m, n) >= 8)
    kernel = torch.randn(shape, dtype=torch.float64, requires_grad=True)
    x = torch.randn(21, n * b, dtype=torch.float64, requires_grad=True)
    g = torch.randn(21, m * b, dtype=torch.float64)
    out = block_circulant_matmul(x, kernel, scale=0.3)
    dense = 0.3 * (x @ block_circulant(kernel).T)
    torch.testing.assert_close(out, dense, atol=1e-11, rtol=0)
    grads = torch.autograd.grad(out, (x, kernel), g)
    for got, want in zip(grads, torch.autograd.grad(dense, (x, kernel), g), strict=True):
        torch.testing.assert_close(got, want, atol=1e-11, rtol=0)


def test_chunk_rows_follow_the_byte_budget():
    assert bc_module._chunk_rows(768, 768, torch.float32) == bc_module._CHUNK_BYTES // (1536 * 4)
    assert bc_module._chunk_rows(768, 768, torch.float64) == bc_module._CHUNK_BYTES // (1536 * 8)
    assert bc_module._chunk_rows(10**9, 10**9, torch.float32) == 8
    assert bc_module._chunk_rows(768, 768, torch.float32, torch.device("cpu")) == 2 * 2**20 // (1536 * 4)
    assert bc_module._chunk_rows(768, 768, torch.float32, torch.device("meta")) >= 2**40  # one chunk off the CPU


# The FFT path is gradchecked for the same shape classes in test_block_circulant.py; here the dense one.
@pytest.mark.parametrize("path", ["dense"])
@pytest.mark.parametrize("name", SHAPE_CLASSES)
def test_gradcheck_each_path(name, path):
    m, n, b = SHAPE_CLASSES[name]
    kernel = torch.randn(m, n, b, dtype=torch.float64, requires_grad=True)
    x = torch.randn(2, 1, n * b, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, k: block_circulant_matmul(x, k, path=path), (x, kernel))


def test_only_one_gradient_when_only_one_is_needed():
    """needs_input_grad is honoured: a frozen kernel gets no gradient, a constant input neither."""
    kernel = torch.randn(2, 2, 4, dtype=torch.float64)
    x = torch.randn(3, 8, dtype=torch.float64, requires_grad=True)
    (gx,) = torch.autograd.grad(block_circulant_matmul(x, kernel).sum(), (x,))
    torch.testing.assert_close(gx, torch.ones(3, 8, dtype=torch.float64) @ block_circulant(kernel))
    kernel.requires_grad_(True)
    x2 = x.detach()
    (gk,) = torch.autograd.grad(block_circulant_matmul(x2, kernel).sum(), (kernel,))
    (rk,) = torch.autograd.grad(block_circulant_matmul_reference(x2, kernel).sum(), (kernel,))
    torch.testing.assert_close(gk, rk)


def test_autocast_is_switched_off_inside():
    """Under CPU bfloat16 autocast, the operator still computes in float32 (a bf16 GEMM would not)."""
    kernel = torch.randn(4, 4, 16)
    x = torch.randn(10, 64)
    expected = (x.double() @ block_circulant(kernel.double()).T).float()
    for path in ("fft", "dense"):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = block_circulant_matmul(x, kernel, path=path)
            assert torch.is_autocast_enabled("cpu")  # restored afterwards
        assert out.dtype == torch.float32
        torch.testing.assert_close(out, expected, atol=1e-4, rtol=1e-5)
    # A whole layer under autocast: the update is exact in float32, only the base GEMM is bf16.
    layer = C3ALinear(torch.nn.Linear(64, 64), block_size=16, init_weights="gaussian")
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = layer(x)
    y.float().sum().backward()
    assert layer.kernel.grad is not None and layer.kernel.grad.dtype == torch.float32


def test_auto_path_is_the_path_explain_path_names_and_bad_paths_are_refused():
    from c3a_tutorial.c3a.path_choice import explain_path

    for shape, tokens in (((2, 2, 4), 3), ((8, 8, 128), 16)):  # a tiny layer (dense) and a README cell (fft)
        kernel = torch.randn(shape, dtype=torch.float64)
        x = torch.randn(tokens, shape[1] * shape[2], dtype=torch.float64)
        chosen = explain_path(x, kernel).path
        assert torch.equal(
            block_circulant_matmul(x, kernel, path="auto"), block_circulant_matmul(x, kernel, path=chosen)
        )
    assert explain_path(torch.randn(3, 8), torch.randn(2, 2, 4)).path == "dense"
    assert explain_path(torch.randn(16, 1024), torch.randn(8, 8, 128)).path == "fft"
    with pytest.raises(ValueError, match="path='fast' is not one of"):
        block_circulant_matmul(torch.randn(3, 8), torch.randn(2, 2, 4), path="fast")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_cuda_half_and_autocast(dtype):  # pragma: no cover - runs only where there is a GPU
    kernel = torch.randn(3, 3, 24, device="cuda", requires_grad=True)  # 24: not a power of two
    x = torch.randn(8, 72, device="cuda")
    expected = x @ block_circulant(kernel.detach()).T
    out = block_circulant_matmul(x.to(dtype), kernel)
    assert out.dtype == dtype
    torch.testing.assert_close(out.float(), expected, atol=0.05 * expected.abs().max().item(), rtol=0.02)
    with torch.autocast("cuda", dtype=dtype):
        out = block_circulant_matmul(x, kernel)
    torch.testing.assert_close(out, expected, atol=1e-4, rtol=1e-4)
    out.sum().backward()
    assert kernel.grad.dtype == torch.float32
