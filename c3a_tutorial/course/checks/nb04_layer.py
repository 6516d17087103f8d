"""Checkers for notebook 04 (the C3A layer in PyTorch)."""

from __future__ import annotations

import torch

from ...c3a.block_circulant import block_circulant, block_circulant_matmul
from ...c3a.peft_io import reverse_kernel
from .common import fail, ok


def _as_tensor(value, name: str) -> torch.Tensor:
    if value is None:
        fail(f"{name} is None: did your function `return` its result?")
    if not isinstance(value, torch.Tensor):
        fail(f"{name} is a {type(value).__name__}; return a torch tensor.")
    if value.is_complex():
        fail(f"{name} is complex: go back from the frequency domain with torch.fft.irfft(..., n=b).")
    return value.detach().to(torch.float64)


# ---------------------------------------------------------------------------------------------------------------
# The central exercise: C3A's operator as a torch.autograd.Function, then a layer around it.

VISIBLE_SHAPES = ((6, 9, 3), (8, 12, 4), (10, 5, 5))  # (d_out, d_in, b): odd and even b, rectangular grids


def _dense_grads(x, w, grad_y):
    x = x.clone().requires_grad_(True)
    w = w.clone().requires_grad_(True)
    y = x @ block_circulant(w).T
    gx, gw = torch.autograd.grad(y, (x, w), grad_y)
    return y.detach(), gx, gw


def _run_function(fn_class, x, w, grad_y):
    x = x.clone().requires_grad_(True)
    w = w.clone().requires_grad_(True)
    try:
        y = fn_class.apply(x, w)
    except NotImplementedError:
        fail("your forward is not written yet (it raises NotImplementedError).")
    y_t = _as_tensor(y, "your forward's output")
    if tuple(y_t.shape) != (x.shape[0], w.shape[0] * w.shape[-1]):
        fail(
            f"your forward returns shape {tuple(y_t.shape)} for x {tuple(x.shape)} and w {tuple(w.shape)}; it should "
            f"be (N, d_out) = {(x.shape[0], w.shape[0] * w.shape[-1])}. Did you pass n=b to irfft?"
        )
    if not y.requires_grad:
        fail("your forward's output does not require grad: return a tensor computed from x and w inside forward.")
    try:
        gx, gw = torch.autograd.grad(y, (x, w), grad_y, allow_unused=True)
    except NotImplementedError:
        fail("your backward is not written yet (it raises NotImplementedError).")
    except RuntimeError as err:
        fail(f"your backward failed: {err}. It must return one gradient per input of forward: (grad_x, grad_w).")
    return y_t, gx, gw


def check_c3a_function(fn_class, shapes=VISIBLE_SHAPES, seed: int = 0, tokens: int = 7) -> None:
    """Exercise 04.1: ``fn_class`` is a ``torch.autograd.Function`` with ``apply(x, w) = x @ block_circulant(w).T``
    for ``x`` of shape ``(N, d_in)``, with its own backward. Checked against dense float64 autograd and with
    ``torch.autograd.gradcheck`` on both inputs, for every ``(d_out, d_in, b)`` in ``shapes``."""
    if not (isinstance(fn_class, type) and issubclass(fn_class, torch.autograd.Function)):
        fail("pass the class itself (a subclass of torch.autograd.Function), not an instance or a function.")
    if fn_class.backward is torch.autograd.Function.backward:
        fail("your Function has no backward: write the static method backward(ctx, grad_y).")
    g = torch.Generator().manual_seed(seed)
    for d_out, d_in, b in shapes:
        x = torch.randn(tokens, d_in, dtype=torch.float64, generator=g)
        w = torch.randn(d_out // b, d_in // b, b, dtype=torch.float64, generator=g)
        grad_y = torch.randn(tokens, d_out, dtype=torch.float64, generator=g)
        want_y, want_x, want_w = _dense_grads(x, w, grad_y)
        got_y, got_x, got_w = _run_function(fn_class, x, w, grad_y)
        where = f"at d_out, d_in, b = {d_out}, {d_in}, {b}"
        if not torch.allclose(got_y, want_y, atol=1e-9):
            if torch.allclose(got_y, x @ block_circulant(reverse_kernel(w)).T, atol=1e-9):
                fail(
                    f"{where} your forward applies circulant(w[i, j])ᵀ (the kernel as first *row*, PEFT's convention); "
                    "ours has the kernel as first column: Y_i[f] = Σ_j W_ij[f] X_j[f], no conjugate."
                )
            fail(f"{where} your forward differs from x @ block_circulant(w).T: Y_i[f] = Σ_j W_ij[f] X_j[f].")
        if got_x is None or got_w is None:
            fail("your backward returned None for x or w: return (grad_x, grad_w), both computed.")
        got_x = _as_tensor(got_x, "your grad_x")
        got_w = _as_tensor(got_w, "your grad_w")
        if tuple(got_w.shape) != tuple(w.shape):
            hint = " Sum over the tokens too." if got_w.ndim == 4 else ""
            fail(
                f"{where} your grad_w has shape {tuple(got_w.shape)}; it must be the kernel's, {tuple(w.shape)}." + hint
            )
        if tuple(got_x.shape) != tuple(x.shape):
            fail(f"{where} your grad_x has shape {tuple(got_x.shape)}; it must be x's, {tuple(x.shape)}.")
        if not torch.allclose(got_x, want_x, atol=1e-9):
            if torch.allclose(got_x, grad_y @ block_circulant(reverse_kernel(w)), atol=1e-9):
                fail(
                    f"{where} grad_x applies C(w) where the adjoint C(w)ᵀ belongs: multiply by the *conjugate* "
                    "kernel spectrum, conj(W). (b ≤ 2 would not show it: there C(w)ᵀ = C(w).)"
                )
            reversed_g = grad_y.reshape(tokens, -1, b)[..., (-torch.arange(b)) % b].reshape(tokens, -1)
            if torch.allclose(got_x, reversed_g @ block_circulant(w), atol=1e-9):
                fail(
                    f"{where} grad_x is the right operator applied to each block of grad_y index-reversed — PEFT's "
                    "mistake: a forward FFT where the inverse belongs. Transform grad_y with rfft and go back "
                    "with irfft."
                )
            fail(f"{where} grad_x differs from grad_y @ ΔW: ∂L/∂x_j = irfft(Σ_i conj(W_ij) G_i, n=b).")
        if not torch.allclose(got_w, want_w, atol=1e-9):
            m, n = w.shape[:2]
            convolution = torch.fft.irfft(
                torch.einsum(
                    "tif,tjf->ijf",
                    torch.fft.rfft(grad_y.reshape(-1, m, b), dim=-1),
                    torch.fft.rfft(x.reshape(-1, n, b), dim=-1),
                ),
                n=b,
                dim=-1,
            )
            if torch.allclose(got_w, convolution, atol=1e-9):
                fail(
                    f"{where} grad_w convolves grad_y with x; the kernel gradient is their *correlation*: "
                    "irfft(Σ_tokens G_i · conj(X_j), n=b)."
                )
            if torch.allclose(got_w, want_w.flip(-1).roll(1, dims=-1), atol=1e-9):
                fail(f"{where} grad_w comes out index-reversed: conjugate X (the input), not G (the output gradient).")
            fail(f"{where} grad_w differs from autograd's: ∂L/∂w_ij = irfft(Σ_tokens G_i · conj(X_j), n=b).")
        xs = x[:3].clone().requires_grad_(True)
        ws = w.clone().requires_grad_(True)
        if not torch.autograd.gradcheck(fn_class.apply, (xs, ws), raise_exception=False):
            fail(f"{where} torch.autograd.gradcheck fails on your Function (float64, both inputs).")
    bs = sorted({b for _, _, b in shapes})
    ok(f"forward and backward match dense autograd and pass gradcheck on x and w at b ∈ {bs}.")


def check_c3a_module(module_class, shapes=((8, 12, 4), (9, 6, 3)), seed: int = 0) -> None:
    """Exercise 04.2: ``module_class(base_layer, block_size, matmul)`` is a C3A layer: frozen ``base_layer``, a
    zero-initialised kernel ``(d_out/b, d_in/b, b)``, ``scale = 1/d_in``, ``forward = base(x) + scale ·
    matmul(x, kernel)`` for any leading dimensions, ``delta_weight()``, ``merge()`` and ``unmerge()``.

    ``matmul`` is given the package's operator here, so this exercise is checked independently of 04.1."""
    g = torch.Generator().manual_seed(seed)
    for d_out, d_in, b in shapes:
        where = f"at d_out, d_in, b = {d_out}, {d_in}, {b}"
        torch.manual_seed(seed)
        base = torch.nn.Linear(d_in, d_out).double()
        weight = base.weight.detach().clone()
        try:
            layer = module_class(base, b, matmul=block_circulant_matmul)
        except NotImplementedError:
            fail("your layer is not written yet (it raises NotImplementedError).")
        if not isinstance(layer, torch.nn.Module):
            fail("your class must subclass torch.nn.Module.")
        kernel = getattr(layer, "kernel", None)
        if not isinstance(kernel, torch.nn.Parameter):
            fail("store the kernel as an nn.Parameter named `kernel`, so the optimizer sees it.")
        if tuple(kernel.shape) != (d_out // b, d_in // b, b):
            fail(f"{where} the kernel has shape {tuple(kernel.shape)}; it should be (d_out/b, d_in/b, b).")
        if kernel.dtype != base.weight.dtype:
            fail(
                f"the kernel is {kernel.dtype}, the base weight {base.weight.dtype}: create it with the weight's dtype."
            )
        if not bool((kernel == 0).all()):
            fail("the kernel must start at zero, so that the adapted layer starts as the base layer.")
        if any(p.requires_grad for p in base.parameters()):
            fail("freeze the base layer: requires_grad_(False) on its parameters.")
        if [p for p in layer.parameters() if p.requires_grad] != [kernel]:
            fail("the kernel must be the layer's only trainable parameter.")
        scale = getattr(layer, "scale", None)
        if scale is None or abs(float(scale) - 1.0 / d_in) > 1e-15:
            fail(f"{where} layer.scale is {scale}; it should be 1/d_in = {1.0 / d_in:.6g}.")
        x = torch.randn(2, 3, d_in, dtype=torch.float64, generator=g)
        out0 = layer(x)
        if tuple(out0.shape) != (2, 3, d_out):
            fail(f"{where} for x of shape (2, 3, {d_in}) your layer returns {tuple(out0.shape)}; want (2, 3, {d_out}).")
        if not torch.allclose(out0, base(x), atol=1e-12):
            fail("at zero kernel the output must equal the base layer's.")
        with torch.no_grad():
            kernel.copy_(torch.randn(kernel.shape, dtype=torch.float64, generator=g))
        delta = block_circulant(kernel.detach())
        want = base(x) + x @ (delta / d_in).T
        got = layer(x)
        if not torch.allclose(got, want, atol=1e-10):
            if torch.allclose(got, base(x) + x @ delta.T, atol=1e-10):
                fail(f"{where} your forward forgets the scale: base(x) + scale · matmul(x, kernel), scale = 1/d_in.")
            if d_in == d_out and torch.allclose(got, base(x) + x @ (delta / d_in), atol=1e-10):
                fail(f"{where} your forward applies ΔWᵀ instead of ΔW: use matmul(x, kernel), which gives x @ ΔWᵀ.")
            fail(f"{where} your forward differs from base(x) + scale · x @ block_circulant(kernel).T.")
        got.sum().backward()
        if kernel.grad is None:
            fail("no gradient reached the kernel: compute the forward from self.kernel with matmul.")
        delta_fn = getattr(layer, "delta_weight", None)
        if delta_fn is None:
            fail("your layer needs a delta_weight() method returning scale · block_circulant(kernel).")
        dw = _as_tensor(delta_fn(), "delta_weight()")
        if not torch.allclose(dw, delta / d_in, atol=1e-12):
            if torch.allclose(dw, delta, atol=1e-12):
                fail(f"{where} delta_weight() forgets the scale: ΔW = scale · block_circulant(kernel).")
            if dw.shape == delta.T.shape and torch.allclose(dw, delta.T / d_in, atol=1e-12):
                fail(f"{where} delta_weight() is transposed: it has the base weight's shape (d_out, d_in).")
            fail(f"{where} delta_weight() differs from scale · block_circulant(kernel).")
        with torch.no_grad():
            before = layer(x).clone()
            layer.merge()
            merged_weight = base.weight.detach().clone()
            after = layer(x)
        if not torch.allclose(merged_weight, weight + delta / d_in, atol=1e-12):
            if torch.allclose(merged_weight, weight + delta, atol=1e-12):
                fail(f"{where} merge() adds block_circulant(kernel) without the scale.")
            if torch.allclose(merged_weight, weight, atol=1e-12):
                fail("merge() did not change the base weight: add delta_weight() into base_layer.weight.")
            fail(f"{where} after merge() the base weight should be W + scale · block_circulant(kernel).")
        if not torch.allclose(after, before, atol=1e-10):
            if torch.allclose(after, before + x @ (delta / d_in).T, atol=1e-10):
                fail(
                    "after merge() your forward still adds the adapter: ΔW is counted twice. Once merged, "
                    "forward must return base(x) alone."
                )
            fail("after merge() the layer's output changed; it must stay the same.")
        with torch.no_grad():
            layer.unmerge()
            restored = base.weight.detach().clone()
            again = layer(x)
        if not torch.allclose(restored, weight, atol=1e-12):
            fail("unmerge() must subtract delta_weight() again and restore the base weight.")
        if not torch.allclose(again, before, atol=1e-10):
            fail("after unmerge() the forward must add the adapter again (base(x) + scale · matmul(x, kernel)).")
    ok("a frozen base, a zero-initialised kernel, scale 1/d_in, merge and unmerge: a C3A layer.")
