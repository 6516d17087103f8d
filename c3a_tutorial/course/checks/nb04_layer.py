"""Checkers for notebook 04 (the C3A layer in PyTorch)."""

from __future__ import annotations

import torch

from ...c3a.block_circulant import block_circulant
from ...c3a.layers import C3ALinear
from ...c3a.peft_io import reverse_kernel
from .common import fail, ok


def _c3a_cases(seed: int = 4):
    # Odd and even b, rectangular grids, random kernels: with b <= 2 or a symmetric kernel, C(w) = C(w)ᵀ and
    # a missing transpose (conj) would go unnoticed.
    g = torch.Generator().manual_seed(seed)
    cases = []
    for d_out, d_in, b in ((6, 9, 3), (8, 12, 4), (10, 5, 5)):
        x = torch.randn(7, d_in, dtype=torch.float64, generator=g)
        w = torch.randn(d_out // b, d_in // b, b, dtype=torch.float64, generator=g)
        grad_y = torch.randn(7, d_out, dtype=torch.float64, generator=g)
        cases.append((x, w, grad_y))
    return cases


def _as_tensor(value, name: str) -> torch.Tensor:
    if value is None:
        fail(f"{name} is None: did your function `return` its result?")
    if not isinstance(value, torch.Tensor):
        fail(f"{name} is a {type(value).__name__}; return a torch tensor.")
    if value.is_complex():
        fail(f"{name} is complex: go back from the frequency domain with torch.fft.irfft(..., n=b).")
    return value.detach().to(torch.float64)


def check_c3a_input_grad(fn) -> None:
    """Exercise 04.1: ``fn(grad_y, w)`` = ∂L/∂x = ``grad_y @ block_circulant(w)`` through FFTs."""
    for _, w, grad_y in _c3a_cases():
        m, n, b = w.shape
        got = _as_tensor(fn(grad_y.clone(), w.clone()), "your input gradient")
        if tuple(got.shape) != (grad_y.shape[0], n * b):
            fail(
                f"your input gradient has shape {tuple(got.shape)}; "
                f"it should be (N, d_in) = {(grad_y.shape[0], n * b)}."
            )
        want = grad_y @ block_circulant(w)
        if torch.allclose(got, want, atol=1e-9):
            continue
        if torch.allclose(got, grad_y @ block_circulant(reverse_kernel(w)), atol=1e-9):
            fail(
                f"at b = {b} every block acts as C(w) where the backward needs C(w)ᵀ (the adjoint is a correlation, "
                "not a convolution): multiply by the *conjugate* kernel spectrum, W.conj(). This is the mistake "
                "PEFT's C3A backward makes; for b ≤ 2 it is invisible."
            )
        fail(
            f"at d_out, d_in, b = {m * b}, {n * b}, {b} your gradient differs from grad_y @ block_circulant(w): sum "
            "over the output blocks i, keep the input blocks j, and use the conjugated kernel spectrum."
        )
    ok("∂L/∂x = grad_y @ ΔW, each block applied as C(w)ᵀ, i.e. with conj(fft(w)).")


def check_c3a_kernel_grad(fn) -> None:
    """Exercise 04.2: ``fn(x, grad_y, b)`` = ∂L/∂w, shape ``(d_out // b, d_in // b, b)``."""
    for x, w, grad_y in _c3a_cases():
        m, n, b = w.shape
        kernel = w.clone().requires_grad_(True)
        want = torch.autograd.grad(x @ block_circulant(kernel).T, kernel, grad_y)[0]
        got = _as_tensor(fn(x.clone(), grad_y.clone(), b), "your kernel gradient")
        if tuple(got.shape) != (m, n, b):
            hint = " Sum over the tokens (the first dimension) too." if got.ndim == 4 else ""
            fail(f"your kernel gradient has shape {tuple(got.shape)}; it should be the kernel's, {(m, n, b)}.{hint}")
        if torch.allclose(got, want, atol=1e-9):
            continue
        convolution = torch.fft.irfft(
            torch.einsum(
                "tif,tjf->ijf",
                torch.fft.rfft(grad_y.reshape(-1, m, b), dim=-1),
                torch.fft.rfft(x.reshape(-1, n, b), dim=-1),
            ),
            n=b,
            dim=-1,
        )
        if torch.allclose(got, convolution, atol=1e-9):
            fail(
                "you convolved grad_y with x; the kernel gradient is their *correlation*: conjugate the input's "
                "spectrum, G · conj(X), before summing over tokens."
            )
        if torch.allclose(got, want.flip(-1).roll(1, dims=-1), atol=1e-9):
            fail("your kernel gradient comes out index-reversed: conjugate X (the input), not G (the output gradient).")
        fail(
            f"at b = {b} your kernel gradient differs from autograd's: "
            "∂L/∂w[i, j] = irfft(Σ_tokens G_i · conj(X_j), n=b)."
        )
    ok("∂L/∂w[i, j] is the correlation of the output gradient block i with input block j, summed over tokens.")


def check_merged_weight(fn) -> None:
    """Exercise 04.3: ``fn(layer)`` returns ``W + scale · block_circulant(kernel)`` for a ``C3ALinear``,
    without changing the layer."""

    torch.manual_seed(4)
    base = torch.nn.Linear(12, 8).double()
    layer = C3ALinear(base, block_size=4, init_weights="gaussian")
    weight_before = layer.base_layer.weight.detach().clone()
    got = _as_tensor(fn(layer), "your merged weight")
    if not torch.equal(layer.base_layer.weight.detach(), weight_before) or layer.merged:
        fail("your function changed the layer's weight: build a new tensor (W + ...), do not add in place.")
    if tuple(got.shape) != (8, 12):
        fail(
            f"your merged weight has shape {tuple(got.shape)}; it should be the base weight's, (d_out, d_in) = (8, 12)."
        )
    delta = block_circulant(layer.kernel.detach())
    want = weight_before + layer.scale * delta
    if torch.allclose(got, want, atol=1e-12):
        ok("W + scale · block_circulant(kernel): the merged layer costs exactly what the base layer costs.")
        return
    if torch.allclose(got, weight_before + delta, atol=1e-12):
        fail(
            "you forgot the scale: ΔW = layer.scale · block_circulant(kernel), "
            f"with layer.scale = 1/d_in = {layer.scale:.4g}."
        )
    if torch.allclose(got, weight_before, atol=1e-12):
        fail("that is the base weight alone: add scale · block_circulant(layer.kernel).")
    fail("your merged weight differs from W + scale · block_circulant(kernel); compare with layer.delta_weight().")
