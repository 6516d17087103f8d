"""Checkers for notebook 04 (the C3A layer in PyTorch)."""

from __future__ import annotations

import contextlib
import importlib
import re

import torch
from torch.overrides import TorchFunctionMode

from ...c3a import block_circulant as _operator_module
from ...c3a import circulant as _circulant_module
from ...c3a.block_circulant import block_circulant, block_circulant_matmul
from .common import ExerciseError, fail_wrapped, ok
from .guard import guarded, import_object
from .rules import carried_by_fft, check_untampered, peak_numpy_bytes, refuse_held, watched


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
# products, even a broadcast (tokens, m, n, F) product: 6,336 numbers) is far below the 393,216 numbers of the
# dense ΔW, so any tensor of d_out·d_in numbers in your forward or backward is the dense matrix. b = 64 is none of
# the other sizes (tokens, m = 8, n = 12, F = 33), so a tensor with two axes of length b is a dense b × b block.
METHOD_CASE = (512, 768, 64)
METHOD_TOKENS = 2
# NumPy memory the forward or the backward may take at its peak there: a quarter of one dense float64 ΔW (3 MiB),
# some 15x what the FFT route takes in NumPy (a kernel spectrum of 50 KiB and smaller arrays).
NUMPY_BUDGET = METHOD_CASE[0] * METHOD_CASE[1] * 8 // 4


def _package_code(*modules, why: str) -> dict[str, str]:
    """Every function and class defined in ``modules`` (their private helpers too), each with ``why``."""
    out = {}
    for module in modules:
        for name, obj in vars(module).items():
            if callable(obj) and getattr(obj, "__module__", None) == module.__name__:
                out[f"{module.__name__}.{name}"] = why
    return out


# The package's operators, builders and helpers, by code: refused whatever name or attribute reaches them.
OPERATOR_RULES = _package_code(_operator_module, _circulant_module, why="it is the package's own C3A code") | {
    "scipy.linalg.circulant": "it builds a dense circulant matrix",
    "c3a_tutorial.c3a.peft_formats.reverse_kernel": "it is the package's own C3A code",
}
for _name in ("c3a_tutorial.c3a.block_circulant.block_circulant", "c3a_tutorial.c3a.circulant.circulant"):
    OPERATOR_RULES[_name] = (
        "it is the package's builder, which builds the dense d_out × d_in matrix ΔW (or its blocks). The exercise is "
        "the route that never builds it: rfft of the input's pieces and of the kernel, one small product per "
        "frequency, irfft(…, n=b) — section 3's equations"
    )
# What a hand-written backward may not hand to autograd: the exercise is to derive the gradients.
AUTOGRAD_RULES = {
    path: "it lets autograd derive the gradient; the exercise is the backward you derive (section 3)."
    for path in (
        "torch.autograd.grad",
        "torch.autograd.backward",
        "torch.Tensor.backward",
        "torch.autograd.functional.vjp",
        "torch.autograd.functional.jacobian",
        "torch.func.vjp",
        "torch.func.grad",
    )
}

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


def _run_function(fn_class, x, w, grad_y, where: str):
    """Forward and backward of the learner's Function, with the dense helpers refused and what it keeps for
    backward recorded; returns ``(y, grad_x, grad_w)``."""
    x = x.clone().requires_grad_(True)
    w = w.clone().requires_grad_(True)
    saved = []

    def pack(t):
        saved.append(t)
        return t

    b = w.shape[-1]
    with _dense_helpers_refused(fn_class), _backward_counted(fn_class) as backward_calls:
        with watched(fn_class, OPERATOR_RULES, patch=False) as record:
            try:
                with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
                    y = fn_class.apply(x, w)
            except NotImplementedError:
                fail_wrapped("your forward is not written yet (it raises NotImplementedError).")
            except ExerciseError:
                raise
            except Exception as err:  # noqa: BLE001 - the learner's code: the crash points to a hint
                line = str(err).splitlines()[0] if str(err) else ""
                fail_wrapped(
                    f"{where} your forward failed with {type(err).__name__}: {line}. "
                    + (_IRFFT_HINT.format(b=b) if _irfft_without_n(record.torch.calls, b) else "")
                )
        _refuse_recorded(record)
        y_t = _as_tensor(y, "your forward's output")
        if tuple(y_t.shape) != (x.shape[0], w.shape[0] * w.shape[-1]):
            fail_wrapped(
                f"your forward returns shape {tuple(y_t.shape)} for x {tuple(x.shape)} and w {tuple(w.shape)}; it "
                f"should be (N, d_out) = {(x.shape[0], w.shape[0] * w.shape[-1])}. "
                + (_IRFFT_HINT.format(b=b) if _irfft_without_n(record.torch.calls, b) else "Did you pass n=b to irfft?")
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
        if not backward_calls:
            fail_wrapped(
                f"{where} your backward never ran: autograd differentiated your forward's torch operations by itself "
                f"(the output's grad_fn is {type(ctx).__name__}, not your Function's). The exercise is the backward "
                "you derive: compute y inside forward(ctx, x, w), call the Function as MyC3AFunction.apply(x, w), "
                "and return the gradients from backward."
            )
    _check_kept(saved, ctx, x, w, where)
    return y_t, gx, gw


_IRFFT_HINT = (
    "Did you pass n=b to irfft? Yours has no n=: from b // 2 + 1 coefficients it returns 2·(b // 2) samples, "
    "which is b - 1 for an odd b = {b}. Pass the length: torch.fft.irfft(..., n=b, dim=-1)."
)


def _irfft_without_n(calls, b: int) -> bool:
    """Did an irfft run without ``n`` (so it guessed the length), where the block size ``b`` is odd?"""
    return b % 2 == 1 and any(  # torch.fft.irfft reaches the torch mode as fft_irfft
        name.endswith("irfft") and "n" not in kwargs and len(args) < 2 for name, args, kwargs in calls
    )


def _refuse_recorded(record) -> None:
    check_untampered(record)
    if record.calls:
        path = record.calls[0]
        why = OPERATOR_RULES.get(path) or AUTOGRAD_RULES.get(path, "")
        fail_wrapped(f"your Function ran {path}: {why}. Write the FFTs yourself (section 3's equations).")


@contextlib.contextmanager
def _backward_counted(fn_class):
    """While active, the learner's backward is wrapped: ``calls`` (the yielded list) records each time it ran, and
    it runs under a watch that refuses autograd's own differentiation (``AUTOGRAD_RULES``)."""
    name = "vjp" if fn_class.vjp is not torch.autograd.Function.vjp else "backward"
    original = vars(fn_class).get(name)
    if not isinstance(original, staticmethod):
        yield [1]  # not a static method: the checks below say what is wrong with it
        return
    calls = []

    def counted(ctx, *grads):
        calls.append(1)
        with watched(original.__func__, AUTOGRAD_RULES, patch=False) as record:
            out = original.__func__(ctx, *grads)
        _refuse_recorded(record)
        return out

    setattr(fn_class, name, staticmethod(counted))
    try:
        yield calls
    finally:
        setattr(fn_class, name, original)


def _numel(shape) -> int:
    out = 1
    for size in shape:
        out *= size
    return out


def _check_method(fn_class) -> None:
    """At ``METHOD_CASE``: no torch call in the learner's forward or backward returns a tensor of d_out·d_in
    numbers (the dense ΔW) or one with two axes of length b (a dense block), NumPy's memory stays under a quarter
    of ΔW's, the FFTs transform x, w and grad_y and their outputs are the results."""
    d_out, d_in, b = METHOD_CASE
    g = torch.Generator().manual_seed(123)
    x = torch.randn(METHOD_TOKENS, d_in, dtype=torch.float64, generator=g).requires_grad_(True)
    w = torch.randn(d_out // b, d_in // b, b, dtype=torch.float64, generator=g).requires_grad_(True)
    grad_y = torch.randn(METHOD_TOKENS, d_out, dtype=torch.float64, generator=g)
    where = f"at d_out, d_in, b = {d_out}, {d_in}, {b} with {METHOD_TOKENS} tokens"

    def dense(shape) -> bool:
        return _numel(shape) >= d_out * d_in or sum(size == b for size in shape) >= 2

    y = None
    for phase in ("forward", "backward"):
        rules = OPERATOR_RULES if phase == "forward" else OPERATOR_RULES | AUTOGRAD_RULES
        with _dense_helpers_refused(fn_class):
            with watched(fn_class, rules, count_fft=True, shape_rule=dense, patch=False) as record:
                if phase == "forward":
                    y, peak = peak_numpy_bytes(lambda: fn_class.apply(x, w))
                    results = (y,)
                else:  # called directly: torch's autograd engine would run it outside this watch
                    results, peak = peak_numpy_bytes(lambda: fn_class.backward(y.grad_fn, grad_y))  # noqa: B023
        _refuse_recorded(record)
        if record.torch.flagged is not None:
            shape, call = record.torch.flagged
            fail_wrapped(
                f"{where} your {phase} builds a tensor of shape {shape} ({_numel(shape):,} numbers, from {call}): "
                + (
                    f"as many as the dense ΔW (d_out·d_in = {d_out * d_in:,})"
                    if _numel(shape) >= d_out * d_in
                    else f"it has two axes of length b = {b}, a dense b × b block"
                )
                + ", while the FFT route never holds more than about six thousand numbers here. Work per frequency "
                "on the spectra — Y_i[f] = Σ_j W_ij[f] X_j[f] — and never form ΔW or its blocks."
            )
        if peak > NUMPY_BUDGET:
            fail_wrapped(
                f"{where} your {phase} took {peak / 2**20:.1f} MiB of NumPy memory (the budget is "
                f"{NUMPY_BUDGET / 2**20:.2f} MiB, a quarter of one dense ΔW): it built ΔW, or its blocks, in NumPy. "
                "Work per frequency on the spectra, in torch."
            )
        inputs = {_numel(shape) for _, shape, _, _ in record.fft_calls}
        needed = {"x": x.numel(), "w": w.numel()} if phase == "forward" else {"grad_y": grad_y.numel()}
        missing = [name for name, size in needed.items() if size not in inputs]
        carried = all(carried_by_fft(r, record) for r in results if isinstance(r, torch.Tensor))
        if missing or not carried:
            fail_wrapped(
                f"{where} the FFTs do not carry your {phase}: "
                + (
                    f"no FFT transformed {' or '.join(missing)}. "
                    if missing
                    else "its result is not an inverse FFT's output. "
                )
                + "The exercise is the FFT route: rfft of the pieces of the input and of the kernel, a product per "
                "frequency, irfft(…, n=b) back (section 3's equations)."
            )


@guarded
def check_c3a_function(fn_class, shapes=VISIBLE_SHAPES, seed: int = 0, tokens: int = 7) -> None:
    """Exercise 04.1: ``fn_class`` is a ``torch.autograd.Function`` with ``apply(x, w) = x @ block_circulant(w).T``
    for ``x`` of shape ``(N, d_in)``, with its own backward. Checked against dense float64 autograd and with
    ``torch.autograd.gradcheck`` on both inputs, for every ``(d_out, d_in, b)`` in ``shapes``."""
    if not (isinstance(fn_class, type) and issubclass(fn_class, torch.autograd.Function)):
        fail_wrapped("pass the class itself (a subclass of torch.autograd.Function), not an instance or a function.")
    refuse_held(fn_class, OPERATOR_RULES)
    if fn_class.backward is torch.autograd.Function.backward:
        fail_wrapped("your Function has no backward: write the static method backward(ctx, grad_y).")
    g = torch.Generator().manual_seed(seed)
    for d_out, d_in, b in shapes:
        x = torch.randn(tokens, d_in, dtype=torch.float64, generator=g)
        w = torch.randn(d_out // b, d_in // b, b, dtype=torch.float64, generator=g)
        grad_y = torch.randn(tokens, d_out, dtype=torch.float64, generator=g)
        # The reference, by dense autograd (computed here, not by a helper a learner could call).
        x_ref, w_ref = x.clone().requires_grad_(True), w.clone().requires_grad_(True)
        y_ref = x_ref @ block_circulant(w_ref).T
        want_x, want_w = torch.autograd.grad(y_ref, (x_ref, w_ref), grad_y)
        want_y = y_ref.detach()
        where = f"at d_out, d_in, b = {d_out}, {d_in}, {b}"
        got_y, got_x, got_w = _run_function(fn_class, x, w, grad_y, where)
        if not _close(got_y, want_y):
            if _close(got_y, x @ block_circulant(w[..., (-torch.arange(b)) % b]).T):
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
            if _close(got_x, grad_y @ block_circulant(w[..., (-torch.arange(b)) % b])):
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
    d_out, d_in, b = METHOD_CASE
    ok(
        f"forward and backward match dense autograd and pass gradcheck on x and w at b ∈ {bs}; your backward ran and "
        f"only x and w are kept for it. At {d_out} × {d_in}, b = {b}: FFTs carry both passes, no torch call returned "
        "a tensor as large as ΔW or a b × b block, and NumPy's memory stayed under a quarter of ΔW's."
    )


class TransposedLinear(torch.nn.Module):
    """A linear layer that stores its weight transposed, as GPT-2's ``Conv1D`` (``transformers.pytorch_utils``)
    does: ``weight`` of shape ``(d_in, d_out)``, ``forward(x) = x @ weight + bias``. Written here so that the
    check does not need transformers; it keeps Conv1D's attribute names (``nf`` = d_out, ``nx`` = d_in)."""

    def __init__(self, d_in: int, d_out: int):
        super().__init__()
        self.nf, self.nx = d_out, d_in
        self.weight = torch.nn.Parameter(torch.randn(d_in, d_out) * 0.02)
        self.bias = torch.nn.Parameter(torch.zeros(d_out))

    def forward(self, x):
        return (x.reshape(-1, self.nx) @ self.weight + self.bias).reshape(*x.shape[:-1], self.nf)


@guarded
def check_c3a_module(module_class, shapes=((8, 12, 4), (9, 6, 3)), seed: int = 0) -> None:
    """Exercise 04.2: ``module_class(base_layer, block_size, matmul)`` is a C3A layer on an ``nn.Linear`` *and* on
    a layer that stores its weight transposed (``TransposedLinear``, as GPT-2's Conv1D): frozen base, a
    zero-initialised kernel ``(d_out/b, d_in/b, b)``, ``scale = 1/d_in``, ``forward = base(x) + scale ·
    matmul(x, kernel)`` for any leading dimensions, ``delta_weight()`` in the base weight's own layout, ``merge()``
    and ``unmerge()``, and a ValueError naming d_out and d_in when ``block_size`` does not divide both.

    ``matmul`` is given the package's operator here, so this exercise is checked independently of 04.1. The
    package's layers may not do the work: no subclass, no instance inside, no call of their code."""
    refuse_held(module_class, PACKAGE_LAYERS)
    with watched(module_class, PACKAGE_LAYERS, patch=False) as record:
        for transposed in (False, True):
            _check_c3a_module(module_class, shapes, seed, transposed)
            _check_indivisible(module_class, transposed)
    check_untampered(record)
    if record.calls:
        fail_wrapped(f"{record.calls[0]} ran inside your layer: {PACKAGE_LAYERS[record.calls[0]]}")
    ok(
        "on nn.Linear and on a transposed-weight layer: a frozen base, a zero-initialised kernel, scale 1/d_in, "
        "ΔW in the base weight's layout, merge and unmerge, and a clear error for a block size that does not divide."
    )


PACKAGE_LAYERS = {
    path: "it is the package's C3A layer (or its base); the exercise is to write the layer yourself."
    for path in ("c3a_tutorial.C3ALinear", "c3a_tutorial.LoRALinear", "c3a_tutorial.c3a.layers.AdapterLinear")
}


def _base(d_out: int, d_in: int, transposed: bool) -> torch.nn.Module:
    return (TransposedLinear(d_in, d_out) if transposed else torch.nn.Linear(d_in, d_out)).double()


def _kind(d_out: int, d_in: int, transposed: bool) -> str:
    if transposed:
        return f"on a transposed-weight layer (Conv1D-like: weight ({d_in}, {d_out}) = (d_in, d_out), y = x W + b)"
    return f"on nn.Linear (weight ({d_out}, {d_in}) = (d_out, d_in))"


def _learner_call(where: str, what: str, call, *args, **kwargs):
    """Run a method of the learner's layer; a crash becomes a message that says where."""
    try:
        return call(*args, **kwargs)
    except NotImplementedError:
        fail_wrapped(f"{what} is not written yet (it raises NotImplementedError).")
    except ExerciseError:
        raise
    except Exception as err:  # noqa: BLE001 - the learner's code: say where it broke, not a traceback
        line = str(err).splitlines()[0] if str(err) else ""
        fail_wrapped(
            f"{where} {what} failed with {type(err).__name__}: {line}. Which layout does this base layer store its "
            "weight in, and does what you add (or build) have that shape?"
        )


def _check_indivisible(module_class, transposed: bool) -> None:
    d_out, d_in, b = 8, 6, 4  # b divides d_out but not d_in: a check of only one dimension misses it
    where = f"{_kind(d_out, d_in, transposed)}, block_size {b}:"
    try:
        module_class(_base(d_out, d_in, transposed), b, matmul=block_circulant_matmul)
    except ValueError as err:
        said = set(re.findall(r"\d+", str(err)))
        if not {str(d_out), str(d_in)} <= said:
            fail_wrapped(
                f"{where} your ValueError says {str(err)!r}; name both dimensions (d_out = {d_out}, d_in = {d_in}) "
                "and the block size, so that the reader sees which one it does not divide."
            )
        return
    except ExerciseError:
        raise
    except Exception as err:  # noqa: BLE001 - the learner's code
        fail_wrapped(
            f"{where} your layer raised {type(err).__name__}: {err}. Check the sizes first and raise a ValueError "
            "that names d_out, d_in and the block size."
        )
    fail_wrapped(
        f"{where} your layer accepted a block size that does not divide d_in; the kernel grid would silently drop "
        "columns. Raise a ValueError that names d_out, d_in and the block size."
    )


def _check_c3a_module(module_class, shapes, seed: int, transposed: bool) -> None:
    g = torch.Generator().manual_seed(seed)
    for d_out, d_in, b in shapes:
        where = f"{_kind(d_out, d_in, transposed)}, b = {b}:"
        torch.manual_seed(seed)
        base = _base(d_out, d_in, transposed)
        weight = base.weight.detach().clone()
        layer = _learner_call(where, "your layer's __init__", module_class, base, b, matmul=block_circulant_matmul)
        if not isinstance(layer, torch.nn.Module):
            fail_wrapped("your class must subclass torch.nn.Module.")
        package_layers = tuple(c for c in map(import_object, PACKAGE_LAYERS) if isinstance(c, type))
        held = [type(m).__name__ for m in layer.modules() if isinstance(m, package_layers)]
        if held:
            fail_wrapped(f"your layer holds the package's {held[0]}: write the C3A layer yourself.")
        kernel = getattr(layer, "kernel", None)
        if not isinstance(kernel, torch.nn.Parameter):
            fail_wrapped("store the kernel as an nn.Parameter named `kernel`, so the optimizer sees it.")
        if tuple(kernel.shape) != (d_out // b, d_in // b, b):
            hint = (
                " Which axis of this weight is d_in?"
                if transposed and tuple(kernel.shape) == (d_in // b, d_out // b, b)
                else ""
            )
            fail_wrapped(
                f"{where} the kernel has shape {tuple(kernel.shape)}; it should be (d_out/b, d_in/b, b).{hint}"
            )
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
        out0 = _learner_call(where, "your forward", layer, x)
        if tuple(out0.shape) != (2, 3, d_out):
            fail_wrapped(
                f"{where} for x of shape (2, 3, {d_in}) your layer returns {tuple(out0.shape)}; want (2, 3, {d_out})."
            )
        if not torch.allclose(out0, base(x), rtol=1e-9, atol=1e-12):
            fail_wrapped(f"{where} at zero kernel the output must equal the base layer's.")
        with torch.no_grad():
            kernel.copy_(torch.randn(kernel.shape, dtype=torch.float64, generator=g))
        delta = block_circulant(kernel.detach())  # (d_out, d_in): the map's ΔW, whatever the storage
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
        _check_delta_and_merge(layer, base, weight, delta, x, where, transposed)


def _check_delta_and_merge(layer, base, weight, delta, x, where: str, transposed: bool) -> None:
    d_out, d_in = delta.shape
    stored = delta.T / d_in if transposed else delta / d_in  # ΔW in the base weight's own layout
    other = "(d_out, d_in), as nn.Linear stores it" if transposed else "(d_in, d_out), transposed"
    layout = "(d_in, d_out)" if transposed else "(d_out, d_in)"
    delta_fn = getattr(layer, "delta_weight", None)
    if delta_fn is None:
        fail_wrapped(
            "your layer needs a delta_weight() method: scale · block_circulant(kernel), in the weight's layout."
        )
    dw = _as_tensor(_learner_call(where, "delta_weight()", delta_fn), "delta_weight()")
    flipped = delta / d_in if transposed else delta.T / d_in
    if dw.shape != stored.shape:
        if dw.shape != flipped.shape:
            fail_wrapped(
                f"{where} delta_weight() has shape {tuple(dw.shape)}; the base weight has {tuple(stored.shape)}."
            )
        fail_wrapped(
            f"{where} delta_weight() is laid out {other}; it must have the base weight's own layout {layout}, "
            "so that it can be added to base_layer.weight."
        )
    if not torch.allclose(dw, stored, rtol=1e-9, atol=1e-12):
        if torch.allclose(dw, stored * d_in, rtol=1e-9, atol=1e-12):
            fail_wrapped(f"{where} delta_weight() forgets the scale: ΔW = scale · block_circulant(kernel).")
        if torch.allclose(dw, flipped, rtol=1e-9, atol=1e-12):
            fail_wrapped(
                f"{where} delta_weight() is laid out {other}; it must have the base weight's own layout {layout}, "
                "so that it can be added to base_layer.weight."
            )
        fail_wrapped(f"{where} delta_weight() differs from scale · block_circulant(kernel) in the layout {layout}.")
    with torch.no_grad():
        before = layer(x).clone()
        _learner_call(where, "merge()", layer.merge)
        merged_weight = base.weight.detach().clone()
        after = layer(x)
    if not torch.allclose(merged_weight, weight + stored, rtol=1e-9, atol=1e-12):
        if torch.allclose(merged_weight, weight + stored * d_in, rtol=1e-9, atol=1e-12):
            fail_wrapped(f"{where} merge() adds block_circulant(kernel) without the scale.")
        if torch.allclose(merged_weight, weight, rtol=1e-9, atol=1e-12):
            fail_wrapped(f"{where} merge() did not change the base weight: add ΔW into base_layer.weight.")
        if d_in == d_out and torch.allclose(merged_weight, weight + flipped, rtol=1e-9, atol=1e-12):
            fail_wrapped(
                f"{where} merge() added ΔW laid out {other}; this weight is stored {layout}: add it in that layout."
            )
        fail_wrapped(f"{where} after merge() the base weight should be W + ΔW, ΔW in the weight's layout {layout}.")
    if not torch.allclose(after, before, rtol=1e-9, atol=1e-10):
        if torch.allclose(after, before + x @ (delta / d_in).T, rtol=1e-9, atol=1e-10):
            fail_wrapped(
                f"{where} after merge() your forward still adds the adapter: ΔW is counted twice. Once merged, "
                "forward must return base(x) alone."
            )
        fail_wrapped(f"{where} after merge() the layer's output changed; it must stay the same.")
    with torch.no_grad():
        _learner_call(where, "unmerge()", layer.unmerge)
        restored = base.weight.detach().clone()
        again = layer(x)
    if not torch.allclose(restored, weight, rtol=1e-9, atol=1e-12):
        fail_wrapped(f"{where} unmerge() must take ΔW out again and restore the base weight.")
    if not torch.allclose(again, before, rtol=1e-9, atol=1e-10):
        fail_wrapped(
            f"{where} after unmerge() the forward must add the adapter again (base(x) + scale · matmul(x, kernel))."
        )
