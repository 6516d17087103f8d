"""Checkers for notebook 04 (the C3A layer in PyTorch)."""

from __future__ import annotations

import contextlib
import importlib

import torch
from torch.overrides import TorchFunctionMode

from ...c3a import block_circulant as _operator_module
from ...c3a import circulant as _circulant_module
from ...c3a.block_circulant import block_circulant, block_circulant_matmul
from ...c3a.peft_io import reverse_kernel
from .common import ExerciseError, fail_wrapped, ok


def _as_tensor(value, name: str) -> torch.Tensor:
    if value is None:
        fail_wrapped(f"{name} is None: did your function `return` its result?")
    if not isinstance(value, torch.Tensor):
        fail_wrapped(f"{name} is a {type(value).__name__}; return a torch tensor.")
    if value.is_complex():
        fail_wrapped(f"{name} is complex: go back from the frequency domain with torch.fft.irfft(..., n=b).")
    return value.detach().to(torch.float64)


# ---------------------------------------------------------------------------------------------------------------
# The central exercise: C3A's operator as a torch.autograd.Function, then a layer around it.

VISIBLE_SHAPES = ((6, 9, 3), (8, 12, 4), (10, 5, 5))  # (d_out, d_in, b): odd and even b, rectangular grids
# float64 answers agree with dense autograd to ~1e-14; an answer computed in float32 misses by ~1e-7.
ATOL = RTOL = 1e-9


def _close(a: torch.Tensor, b: torch.Tensor) -> bool:
    return torch.allclose(a, b, rtol=RTOL, atol=ATOL)


# The case that checks the *method*: with 2 tokens, everything the FFT route holds (spectra, per-frequency
# products, even a broadcast (tokens, m, n, F) product: 960 numbers) is far below the 6,144 numbers of the
# dense ΔW, so any tensor of d_out·d_in numbers in your forward or backward is the dense matrix.
METHOD_CASE = (64, 96, 8)
METHOD_TOKENS = 2

# What the exercise must not call while your Function runs: the package's dense builders and its operators.
_DENSE = "builds the dense d_out × d_in matrix ΔW"
_OPERATOR = "is the package's own C3A operator"
_FORBIDDEN = (
    (_operator_module, "block_circulant", _DENSE),
    (_circulant_module, "circulant", _DENSE),
    (_operator_module, "block_circulant_matmul", _OPERATOR),
    (_operator_module, "block_circulant_matmul_reference", _OPERATOR),
    (_operator_module, "BlockCirculantMatmul", _OPERATOR),
)


def _stand_in(name: str, why: str):
    def refuse(*args, **kwargs):
        if why == _DENSE:
            fail_wrapped(
                f"your Function called {name}(…), which {why}. The exercise is the route that never builds it: "
                "rfft of the input's pieces and of the kernel, one small product per frequency, irfft(…, n=b) — "
                "section 3's equations. Keep block_circulant for checking, not for computing."
            )
        fail_wrapped(f"your Function called {name}(…), which {why}: write the FFTs yourself (section 3's equations).")

    return refuse


@contextlib.contextmanager
def _dense_helpers_refused(fn_class):
    """While the learner's Function runs: the package's dense builders and operators (as the notebook, the
    package and ``scipy.linalg`` name them) are stand-ins that fail with a message naming the rule."""
    originals = [(module, attr, getattr(module, attr), why) for module, attr, why in _FORBIDDEN]
    scipy_linalg = importlib.import_module("scipy.linalg")
    originals.append((scipy_linalg, "circulant", scipy_linalg.circulant, _DENSE))
    package = importlib.import_module("c3a_tutorial")
    for module, attr, _, why in list(originals[: len(_FORBIDDEN)]):
        if getattr(package, attr, None) is getattr(module, attr):
            originals.append((package, attr, getattr(package, attr), why))
    namespaces = []  # the learner's globals (a notebook's namespace): names bound to a forbidden object
    for method in ("forward", "backward"):
        function = getattr(fn_class, method, None)
        space = getattr(function, "__globals__", None)
        if space is not None and all(space is not s for s in namespaces):
            namespaces.append(space)
    by_id = {id(obj): (attr, why) for _, attr, obj, why in originals}
    bound = [(space, key, value) for space in namespaces for key, value in space.items() if id(value) in by_id]
    try:
        for module, attr, _, why in originals:
            setattr(module, attr, _stand_in(attr, why))
        for space, key, value in bound:
            space[key] = _stand_in(by_id[id(value)][0], by_id[id(value)][1])
        yield
    finally:
        for module, attr, obj, _ in originals:
            setattr(module, attr, obj)
        for space, key, value in bound:
            space[key] = value


class _LargestTensor(TorchFunctionMode):
    """Records the largest tensor (by number of elements) that any torch call returns while active."""

    def __init__(self):
        super().__init__()
        self.numel, self.shape, self.call = 0, (), ""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(t, torch.Tensor) and t.numel() > self.numel:
                self.numel, self.shape, self.call = t.numel(), tuple(t.shape), getattr(func, "__name__", str(func))
        return out


def _is_one_of(t: torch.Tensor, allowed) -> bool:
    """``t`` is (a view or a copy of) one of ``allowed``."""
    for a in allowed:
        if t.untyped_storage().data_ptr() == a.untyped_storage().data_ptr():
            return True
        if t.numel() == a.numel() and not t.is_complex() and torch.equal(t.detach().reshape(a.shape), a.detach()):
            return True
    return False


def _check_kept(saved, ctx, x, w, where: str) -> None:
    """What the Function keeps for backward: ``x`` and ``w`` only (the question's rule)."""
    dense = w.shape[0] * w.shape[-1] * w.shape[1] * w.shape[-1]
    extra = [t for t in saved if not _is_one_of(t, (x, w))]
    stashed = {
        name: value
        for name, value in vars(ctx).items()
        if isinstance(value, torch.Tensor) and not _is_one_of(value, (x, w))
    }
    for t in extra + list(stashed.values()):
        if t.numel() >= dense:
            fail_wrapped(
                f"{where} your Function keeps a tensor of shape {tuple(t.shape)} for backward ({t.numel():,} numbers "
                f"≥ d_out·d_in = {dense:,}): the dense ΔW, or something as large. Save only x and w "
                "(ctx.save_for_backward(x, w)) and recompute the spectra in backward — that is what keeps C3A's "
                "memory at the size of its input and kernel (section 6 measures it)."
            )
    if stashed:
        fail_wrapped(
            f"{where} your forward stores tensor(s) on ctx as attributes ({', '.join(sorted(stashed))}): autograd "
            "does not track those. Keep tensors with ctx.save_for_backward(x, w), and only x and w."
        )
    if extra:
        shapes = ", ".join(str(tuple(t.shape)) for t in extra)
        fail_wrapped(
            f"{where} your forward saves more than x and w for backward (also {shapes}). The question asks for x "
            "and w only: backward recomputes their spectra with rfft, which costs O(d log b) per token."
        )


def _dense_grads(x, w, grad_y):
    x = x.clone().requires_grad_(True)
    w = w.clone().requires_grad_(True)
    y = x @ block_circulant(w).T
    gx, gw = torch.autograd.grad(y, (x, w), grad_y)
    return y.detach(), gx, gw


def _run_function(fn_class, x, w, grad_y, where: str):
    """Forward and backward of the learner's Function, with the dense helpers refused and what it keeps for
    backward recorded; returns ``(y, grad_x, grad_w)``."""
    x = x.clone().requires_grad_(True)
    w = w.clone().requires_grad_(True)
    saved = []

    def pack(t):
        saved.append(t)
        return t

    with _dense_helpers_refused(fn_class):
        try:
            with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
                y = fn_class.apply(x, w)
        except NotImplementedError:
            fail_wrapped("your forward is not written yet (it raises NotImplementedError).")
        except ExerciseError:
            raise
        except Exception as err:  # noqa: BLE001
            fail_wrapped(f"{where} your forward failed with {type(err).__name__}: {err}.")
        y_t = _as_tensor(y, "your forward's output")
        if tuple(y_t.shape) != (x.shape[0], w.shape[0] * w.shape[-1]):
            fail_wrapped(
                f"your forward returns shape {tuple(y_t.shape)} for x {tuple(x.shape)} and w {tuple(w.shape)}; it "
                f"should be (N, d_out) = {(x.shape[0], w.shape[0] * w.shape[-1])}. Did you pass n=b to irfft?"
            )
        if not y.requires_grad:
            fail_wrapped(
                "your forward's output does not require grad: return a tensor computed from x and w inside forward."
            )
        ctx = y.grad_fn
        try:
            gx, gw = torch.autograd.grad(y, (x, w), grad_y, allow_unused=True)
        except NotImplementedError:
            fail_wrapped("your backward is not written yet (it raises NotImplementedError).")
        except ExerciseError:
            raise
        except Exception as err:  # noqa: BLE001 - the learner's code: say where it broke, not a traceback
            fail_wrapped(
                f"{where} your backward failed with {type(err).__name__}: {err}. It must return one gradient per "
                "input of forward: (grad_x, grad_w)."
            )
    _check_kept(saved, ctx, x, w, where)
    return y_t, gx, gw


def _check_method(fn_class) -> None:
    """At ``METHOD_CASE``: no torch call in the learner's forward or backward returns a tensor of d_out·d_in
    numbers (the dense ΔW), whichever way it was built."""
    d_out, d_in, b = METHOD_CASE
    g = torch.Generator().manual_seed(123)
    x = torch.randn(METHOD_TOKENS, d_in, dtype=torch.float64, generator=g).requires_grad_(True)
    w = torch.randn(d_out // b, d_in // b, b, dtype=torch.float64, generator=g).requires_grad_(True)
    grad_y = torch.randn(METHOD_TOKENS, d_out, dtype=torch.float64, generator=g)
    where = f"at d_out, d_in, b = {d_out}, {d_in}, {b} with {METHOD_TOKENS} tokens"
    for phase in ("forward", "backward"):
        watch = _LargestTensor()
        with _dense_helpers_refused(fn_class):
            if phase == "forward":
                with watch:
                    y = fn_class.apply(x, w)
            else:
                with watch:  # called directly: torch's autograd engine would run it outside this watch
                    fn_class.backward(y.grad_fn, grad_y)
        if watch.numel >= d_out * d_in:
            fail_wrapped(
                f"{where} your {phase} builds a tensor of shape {watch.shape} ({watch.numel:,} numbers, from "
                f"{watch.call}): as many as the dense ΔW (d_out·d_in = {d_out * d_in:,}), while the FFT route "
                f"never holds more than about a thousand here. Work per frequency on the spectra — "
                "Y_i[f] = Σ_j W_ij[f] X_j[f] — and never form the d_out × d_in matrix."
            )


def check_c3a_function(fn_class, shapes=VISIBLE_SHAPES, seed: int = 0, tokens: int = 7) -> None:
    """Exercise 04.1: ``fn_class`` is a ``torch.autograd.Function`` with ``apply(x, w) = x @ block_circulant(w).T``
    for ``x`` of shape ``(N, d_in)``, with its own backward. Checked against dense float64 autograd and with
    ``torch.autograd.gradcheck`` on both inputs, for every ``(d_out, d_in, b)`` in ``shapes``."""
    if not (isinstance(fn_class, type) and issubclass(fn_class, torch.autograd.Function)):
        fail_wrapped("pass the class itself (a subclass of torch.autograd.Function), not an instance or a function.")
    if fn_class.backward is torch.autograd.Function.backward:
        fail_wrapped("your Function has no backward: write the static method backward(ctx, grad_y).")
    g = torch.Generator().manual_seed(seed)
    for d_out, d_in, b in shapes:
        x = torch.randn(tokens, d_in, dtype=torch.float64, generator=g)
        w = torch.randn(d_out // b, d_in // b, b, dtype=torch.float64, generator=g)
        grad_y = torch.randn(tokens, d_out, dtype=torch.float64, generator=g)
        want_y, want_x, want_w = _dense_grads(x, w, grad_y)
        where = f"at d_out, d_in, b = {d_out}, {d_in}, {b}"
        got_y, got_x, got_w = _run_function(fn_class, x, w, grad_y, where)
        if not _close(got_y, want_y):
            if _close(got_y, x @ block_circulant(reverse_kernel(w)).T):
                fail_wrapped(
                    f"{where} your forward applies circulant(w[i, j])ᵀ (the kernel as first *row*, PEFT's convention); "
                    "ours has it as the first column, whose spectrum enters unconjugated (section 2)."
                )
            if torch.allclose(got_y, want_y, rtol=1e-4, atol=1e-5):
                fail_wrapped(
                    f"{where} your forward is close to x @ block_circulant(w).T (within 1e-5) but not equal to it "
                    f"in float64 (tolerance {ATOL:g}): most often something computes in single precision (a "
                    ".float(), a float32 constant). Compute in x's own dtype."
                )
            fail_wrapped(
                f"{where} your forward differs from x @ block_circulant(w).T. Compare it with section 2's product per "
                "frequency: which block index is summed, which one is kept, and irfft back with n=b."
            )
        if got_x is None or got_w is None:
            fail_wrapped("your backward returned None for x or w: return (grad_x, grad_w), both computed.")
        got_x = _as_tensor(got_x, "your grad_x")
        got_w = _as_tensor(got_w, "your grad_w")
        # No shape checks needed here: autograd itself refuses a gradient whose shape is not its input's (and
        # sums one that broadcasts to it), so a wrong shape ends above as 'your backward failed'.
        if not _close(got_x, want_x):
            if _close(got_x, grad_y @ block_circulant(reverse_kernel(w))):
                fail_wrapped(
                    f"{where} grad_x applies C(w) where the adjoint C(w)ᵀ belongs: multiply by the *conjugate* "
                    "kernel spectrum, conj(W). (b ≤ 2 would not show it: there C(w)ᵀ = C(w).)"
                )
            reversed_g = grad_y.reshape(tokens, -1, b)[..., (-torch.arange(b)) % b].reshape(tokens, -1)
            if _close(got_x, reversed_g @ block_circulant(w)):
                fail_wrapped(
                    f"{where} grad_x is the right operator applied to each block of grad_y index-reversed — PEFT's "
                    "mistake: a forward FFT where the inverse belongs. Transform grad_y with rfft and go back "
                    "with irfft."
                )
            fail_wrapped(
                f"{where} grad_x differs from grad_y @ ΔW. Compare it with section 3's first equation: the sum runs "
                "over the other block index than in the forward (the transposed grid), with which spectrum conjugated?"
            )
        if not _close(got_w, want_w):
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
            if _close(got_w, convolution):
                fail_wrapped(
                    f"{where} grad_w convolves grad_y with x; the kernel gradient is their *correlation* (section 3): "
                    "one of the two spectra enters conjugated."
                )
            if _close(got_w, want_w.flip(-1).roll(1, dims=-1)):
                fail_wrapped(
                    f"{where} grad_w comes out index-reversed: conjugate X (the input), not G (the output gradient)."
                )
            fail_wrapped(
                f"{where} grad_w differs from autograd's. Compare it with section 3's second equation: a product of "
                "the output-gradient and input spectra per block pair (i, j), summed over the tokens."
            )
        xs = x[:3].clone().requires_grad_(True)
        ws = w.clone().requires_grad_(True)
        with _dense_helpers_refused(fn_class):
            passed = torch.autograd.gradcheck(fn_class.apply, (xs, ws), raise_exception=False)
        if not passed:
            fail_wrapped(f"{where} torch.autograd.gradcheck fails on your Function (float64, both inputs).")
    _check_method(fn_class)
    bs = sorted({b for _, _, b in shapes})
    ok(
        f"forward and backward match dense autograd and pass gradcheck on x and w at b ∈ {bs}; only x and w are "
        "kept for backward, and no d_out × d_in matrix is ever built."
    )


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
            fail_wrapped("your layer is not written yet (it raises NotImplementedError).")
        if not isinstance(layer, torch.nn.Module):
            fail_wrapped("your class must subclass torch.nn.Module.")
        kernel = getattr(layer, "kernel", None)
        if not isinstance(kernel, torch.nn.Parameter):
            fail_wrapped("store the kernel as an nn.Parameter named `kernel`, so the optimizer sees it.")
        if tuple(kernel.shape) != (d_out // b, d_in // b, b):
            fail_wrapped(f"{where} the kernel has shape {tuple(kernel.shape)}; it should be (d_out/b, d_in/b, b).")
        if kernel.dtype != base.weight.dtype:
            fail_wrapped(
                f"the kernel is {kernel.dtype}, the base weight {base.weight.dtype}: create it with the weight's dtype."
            )
        if not bool((kernel == 0).all()):
            fail_wrapped("the kernel must start at zero, so that the adapted layer starts as the base layer.")
        if any(p.requires_grad for p in base.parameters()):
            fail_wrapped("freeze the base layer: requires_grad_(False) on its parameters.")
        if [p for p in layer.parameters() if p.requires_grad] != [kernel]:
            fail_wrapped("the kernel must be the layer's only trainable parameter.")
        scale = getattr(layer, "scale", None)
        if scale is None or abs(float(scale) - 1.0 / d_in) > 1e-15:
            fail_wrapped(f"{where} layer.scale is {scale}; it should be 1/d_in = {1.0 / d_in:.6g}.")
        x = torch.randn(2, 3, d_in, dtype=torch.float64, generator=g)
        out0 = layer(x)
        if tuple(out0.shape) != (2, 3, d_out):
            fail_wrapped(
                f"{where} for x of shape (2, 3, {d_in}) your layer returns {tuple(out0.shape)}; want (2, 3, {d_out})."
            )
        if not torch.allclose(out0, base(x), rtol=1e-9, atol=1e-12):
            fail_wrapped("at zero kernel the output must equal the base layer's.")
        with torch.no_grad():
            kernel.copy_(torch.randn(kernel.shape, dtype=torch.float64, generator=g))
        delta = block_circulant(kernel.detach())
        want = base(x) + x @ (delta / d_in).T
        got = layer(x)
        if not torch.allclose(got, want, rtol=1e-9, atol=1e-10):
            if torch.allclose(got, base(x) + x @ delta.T, rtol=1e-9, atol=1e-10):
                fail_wrapped(
                    f"{where} your forward forgets the scale: base(x) + scale · matmul(x, kernel), scale = 1/d_in."
                )
            if d_in == d_out and torch.allclose(got, base(x) + x @ (delta / d_in), rtol=1e-9, atol=1e-10):
                fail_wrapped(
                    f"{where} your forward applies ΔWᵀ instead of ΔW: use matmul(x, kernel), which gives x @ ΔWᵀ."
                )
            if torch.allclose(got, want, rtol=1e-4, atol=1e-5):
                fail_wrapped(
                    f"{where} your forward is close to base(x) + scale · x @ block_circulant(kernel).T but not equal "
                    "to it in float64: something computes in single precision (a .float()). Stay in x's dtype."
                )
            fail_wrapped(f"{where} your forward differs from base(x) + scale · x @ block_circulant(kernel).T.")
        got.sum().backward()
        if kernel.grad is None:
            fail_wrapped("no gradient reached the kernel: compute the forward from self.kernel with matmul.")
        delta_fn = getattr(layer, "delta_weight", None)
        if delta_fn is None:
            fail_wrapped("your layer needs a delta_weight() method returning scale · block_circulant(kernel).")
        dw = _as_tensor(delta_fn(), "delta_weight()")
        if not torch.allclose(dw, delta / d_in, rtol=1e-9, atol=1e-12):
            if torch.allclose(dw, delta, rtol=1e-9, atol=1e-12):
                fail_wrapped(f"{where} delta_weight() forgets the scale: ΔW = scale · block_circulant(kernel).")
            if dw.shape == delta.T.shape and torch.allclose(dw, delta.T / d_in, rtol=1e-9, atol=1e-12):
                fail_wrapped(f"{where} delta_weight() is transposed: it has the base weight's shape (d_out, d_in).")
            fail_wrapped(f"{where} delta_weight() differs from scale · block_circulant(kernel).")
        with torch.no_grad():
            before = layer(x).clone()
            layer.merge()
            merged_weight = base.weight.detach().clone()
            after = layer(x)
        if not torch.allclose(merged_weight, weight + delta / d_in, rtol=1e-9, atol=1e-12):
            if torch.allclose(merged_weight, weight + delta, rtol=1e-9, atol=1e-12):
                fail_wrapped(f"{where} merge() adds block_circulant(kernel) without the scale.")
            if torch.allclose(merged_weight, weight, rtol=1e-9, atol=1e-12):
                fail_wrapped("merge() did not change the base weight: add delta_weight() into base_layer.weight.")
            fail_wrapped(f"{where} after merge() the base weight should be W + scale · block_circulant(kernel).")
        if not torch.allclose(after, before, rtol=1e-9, atol=1e-10):
            if torch.allclose(after, before + x @ (delta / d_in).T, rtol=1e-9, atol=1e-10):
                fail_wrapped(
                    "after merge() your forward still adds the adapter: ΔW is counted twice. Once merged, "
                    "forward must return base(x) alone."
                )
            fail_wrapped("after merge() the layer's output changed; it must stay the same.")
        with torch.no_grad():
            layer.unmerge()
            restored = base.weight.detach().clone()
            again = layer(x)
        if not torch.allclose(restored, weight, rtol=1e-9, atol=1e-12):
            fail_wrapped("unmerge() must subtract delta_weight() again and restore the base weight.")
        if not torch.allclose(again, before, rtol=1e-9, atol=1e-10):
            fail_wrapped(
                "after unmerge() the forward must add the adapter again (base(x) + scale · matmul(x, kernel))."
            )
    ok("a frozen base, a zero-initialised kernel, scale 1/d_in, merge and unmerge: a C3A layer.")
