"""Every path takes any input layout (as nn.Linear does), any upstream-gradient layout, and a double backward;
every path equals the dense reference in float64, float32 and under bfloat16 autocast."""

import pytest
import torch

from c3a_tutorial import C3ALinear, block_circulant, block_circulant_matmul

PATHS = ["fft", "dense", "auto"]
SHAPE = (3, 2, 8)  # (d_out // b, d_in // b, b)


def _reference(x, kernel, scale):
    return scale * (x @ block_circulant(kernel).T)


def _inputs():
    """Layouts of a (5, 16) or (2, 5, 16) input that are not plain contiguous rows."""
    m, n, b = SHAPE
    d_in = n * b
    return {
        "transposed": torch.randn(d_in, 5, dtype=torch.float64).t(),
        "expanded": torch.randn(1, d_in, dtype=torch.float64).expand(5, d_in),
        "strided columns": torch.randn(5, 2 * d_in, dtype=torch.float64)[:, ::2],
        "token mixing (permuted 3-D)": torch.randn(2, d_in, 5, dtype=torch.float64).transpose(1, 2),
    }


@pytest.mark.parametrize("layout", list(_inputs()))
@pytest.mark.parametrize("path", PATHS)
def test_non_contiguous_inputs_and_gradients(path, layout):
    kernel = torch.randn(SHAPE, dtype=torch.float64, requires_grad=True)
    x = _inputs()[layout].detach().requires_grad_(True)
    assert not x.is_contiguous()
    out = block_circulant_matmul(x, kernel, path=path, scale=0.3)
    ref = _reference(x, kernel, 0.3)
    torch.testing.assert_close(out, ref, atol=1e-11, rtol=0)
    # Upstream gradients in odd layouts too: an expanded one (what sum() gives) and a transposed one.
    expanded = torch.ones(1, 1, dtype=torch.float64).expand_as(out)
    transposed = torch.randn(out.shape[::-1], dtype=torch.float64).permute(*range(out.ndim - 1, -1, -1))
    for g in (expanded, transposed):
        got = torch.autograd.grad(out, (x, kernel), g, retain_graph=True)
        want = torch.autograd.grad(ref, (x, kernel), g, retain_graph=True)
        for a, b in zip(got, want, strict=True):
            torch.testing.assert_close(a, b, atol=1e-11, rtol=0)


@pytest.mark.parametrize("path", PATHS)
def test_layer_on_a_transposed_token_mixing_input(path):
    """An MLP-Mixer's token mixing at batch 1: the layer reads a transposed view, as nn.Linear does."""
    layer = C3ALinear(torch.nn.Linear(16, 24, dtype=torch.float64), 8, init_weights="gaussian")
    layer.path = path
    x = torch.randn(1, 16, 7, dtype=torch.float64).transpose(1, 2)
    y = layer(x)
    torch.testing.assert_close(y, layer.base_layer(x) + x @ layer.delta_weight().T, atol=1e-11, rtol=0)
    y.sum().backward()
    assert layer.kernel.grad is not None


@pytest.mark.parametrize("path", PATHS)
def test_gradcheck_and_gradgradcheck_on_both_inputs(path):
    kernel = torch.randn(2, 3, 5, dtype=torch.float64, requires_grad=True)
    x = torch.randn(4, 15, dtype=torch.float64, requires_grad=True)

    def f(x, k):
        return block_circulant_matmul(x, k, path=path, scale=0.5)

    assert torch.autograd.gradcheck(f, (x, kernel))
    assert torch.autograd.gradgradcheck(f, (x, kernel))


@pytest.mark.parametrize("path", PATHS)
def test_double_backward_matches_the_reference(path):
    """A gradient penalty: ∂/∂w of |∂L/∂x|², through create_graph=True, against the dense reference's."""
    kernel = torch.randn(SHAPE, dtype=torch.float64, requires_grad=True)
    x = torch.randn(6, 16, dtype=torch.float64, requires_grad=True)
    results = []
    for fn in (lambda: block_circulant_matmul(x, kernel, path=path, scale=0.3), lambda: _reference(x, kernel, 0.3)):
        (gx,) = torch.autograd.grad(fn().square().sum(), (x,), create_graph=True)
        results.append(torch.autograd.grad(gx.square().sum(), (x, kernel)))
    for a, b in zip(*results, strict=True):
        torch.testing.assert_close(a, b, atol=1e-10, rtol=0)


@pytest.mark.parametrize("path", PATHS)
def test_float32_and_bf16_autocast_equal_the_reference(path):
    kernel = torch.randn(4, 4, 16, requires_grad=True)
    x = torch.randn(10, 64, requires_grad=True)
    g = torch.randn(10, 64)
    ref = _reference(x.double(), kernel.double(), 0.25)
    ref_grads = torch.autograd.grad(ref, (x, kernel), g.double())
    out = block_circulant_matmul(x, kernel, path=path, scale=0.25)
    torch.testing.assert_close(out.double(), ref, atol=1e-5, rtol=1e-5)
    for a, b in zip(torch.autograd.grad(out, (x, kernel), g), ref_grads, strict=True):
        torch.testing.assert_close(a.double(), b.double(), atol=1e-4, rtol=1e-5)
    # Under bf16 autocast a float32 input stays float32 inside (autocast is switched off in the operator) ...
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = block_circulant_matmul(x, kernel, path=path, scale=0.25)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out.double(), ref, atol=1e-5, rtol=1e-5)
    # ... and a bf16 input (what an autocast network hands over) is right to bf16's precision, both gradients too.
    xb = x.detach().bfloat16().requires_grad_(True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = block_circulant_matmul(xb, kernel, path=path, scale=0.25)
    assert out.dtype == torch.bfloat16
    tol = 0.02 * ref.abs().max().item()
    torch.testing.assert_close(out.double(), ref, atol=tol, rtol=0.02)
    gx, gk = torch.autograd.grad(out, (xb, kernel), g.bfloat16())
    assert gx.dtype == torch.bfloat16 and gk.dtype == torch.float32
    for a, b in zip((gx, gk), ref_grads, strict=True):
        torch.testing.assert_close(a.double(), b.double(), atol=0.02 * b.abs().max().item(), rtol=0.02)
