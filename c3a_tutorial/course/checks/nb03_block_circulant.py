"""Checkers for notebook 03 (block-circulant layers, and LoRA built from scratch).

Each checker takes the learner's function (or class) and tries it on the visible case; the notebook's autograder
cells call it again, hidden, on other shapes and seeds, so an answer that hard-codes the visible case fails.
Where an exercise says which package helper not to use (it would answer the exercise in one call), that helper
raises an error while the learner's function runs (``rules.by_the_method``).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ...c3a.block_circulant import block_circulant
from ...c3a.counting import block_circulant_rank, c3a_parameter_count, lora_parameter_count, valid_block_sizes
from ..explorer import SIZE, budget_block_sizes, explorer_state
from .common import as_numpy, check_shape, close, ok
from .common import fail_wrapped as fail
from .guard import call, guarded, import_object
from .rules import by_the_method, check_untampered, refuse_held, watched

# The package's layers: a subclass, an instance inside the learner's layer or a call of their code does the work.
PACKAGE_LAYERS = {
    path: "it is the package's LoRA layer (or its base); the exercise is to write LoRA yourself."
    for path in ("c3a_tutorial.LoRALinear", "c3a_tutorial.C3ALinear", "c3a_tutorial.c3a.layers.AdapterLinear")
}

# ------------------------------------------------------------------ LoRA from scratch


def _lora_case(d_out: int, d_in: int, dtype, seed: int) -> torch.nn.Linear:
    torch.manual_seed(seed)
    return torch.nn.Linear(d_in, d_out).to(dtype)


def _parameter(layer, name: str, shape: tuple, wrong_way: tuple, what: str) -> torch.Tensor:
    value = getattr(layer, name, None)
    if not isinstance(value, torch.nn.Parameter):
        fail(
            f"your layer has no parameter `{name}`: store {what} as self.{name} = torch.nn.Parameter(...) "
            "(PEFT's and LoRALinear's name), so that the optimiser sees it."
        )
    if tuple(value.shape) == wrong_way and wrong_way != shape:
        fail(
            f"{name} has shape {tuple(value.shape)}, the transpose of PEFT's convention {shape}: {what}. "
            "With x of shape (..., d_in), the adapter computes (x @ A.T) @ B.T."
        )
    if tuple(value.shape) != shape:
        fail(f"{name} has shape {tuple(value.shape)}; it should be {shape}: {what}.")
    return value


@guarded
def check_lora_layer(cls, d_out: int = 6, d_in: int = 64, r: int = 4, alpha: float = 12.0, seed: int = 0,
                     dtype=torch.float32) -> None:  # fmt: skip
    """Exercise 03.1: ``cls(base_layer, r, alpha)`` must be LoRA as PEFT and the package build it.

    Checked: the base layer is frozen and kept; ``lora_A`` is a parameter of shape ``(r, d_in)`` drawn
    Kaiming-uniform as PEFT does (``kaiming_uniform_(A, a=√5)``: uniform on ``±1/√d_in``), ``lora_B`` one of shape
    ``(d_out, r)`` set to zero, so the adapted layer starts equal to the base; ``forward(x)`` is
    ``base(x) + (alpha / r) · (x @ Aᵀ) @ Bᵀ`` for any leading shape of ``x``, equal to the package's
    ``LoRALinear`` with the same factors; ``delta_weight()`` is ``(alpha / r) · B A``; gradients reach ``A`` and
    ``B`` and not the base. ``d_out ≠ d_in`` so that transposes show.
    """
    refuse_held(cls, PACKAGE_LAYERS)
    with watched(cls, PACKAGE_LAYERS) as record:
        _check_lora_layer(cls, d_out, d_in, r, alpha, seed, dtype)
    check_untampered(record)
    if record.calls:
        fail(f"{record.calls[0]} ran inside your layer: {PACKAGE_LAYERS[record.calls[0]]}")
    ok(
        f"r = {r}, alpha = {alpha:g}: B = 0, A ~ U(±1/√d_in), y = base(x) + {alpha / r:g}·(x Aᵀ) Bᵀ, as PEFT's "
        "LoRA computes it."
    )


def _check_lora_layer(cls, d_out, d_in, r, alpha, seed, dtype) -> None:
    base = _lora_case(d_out, d_in, dtype, seed)
    weight = base.weight.detach().clone()
    layer = cls(base, r, alpha)
    package_layers = tuple(c for c in map(import_object, PACKAGE_LAYERS) if isinstance(c, type))
    held = [type(m).__name__ for m in layer.modules() if isinstance(m, package_layers)]
    if held:
        fail(f"your layer holds the package's {held[0]}: write LoRA's factors and forward yourself.")
    if getattr(layer, "base_layer", None) is not base:
        fail("keep the layer you were given as self.base_layer (PEFT's name), not a copy.")
    if base.weight.requires_grad or (base.bias is not None and base.bias.requires_grad):
        fail("the base layer is still trainable: freeze it (base_layer.requires_grad_(False)); only A and B train.")
    A = _parameter(layer, "lora_A", (r, d_in), (d_in, r), "A maps d_in features to r (PEFT: lora_A.weight)")
    B = _parameter(layer, "lora_B", (d_out, r), (r, d_out), "B maps r back to d_out (PEFT: lora_B.weight)")
    if A.dtype != dtype or B.dtype != dtype:
        fail(f"A and B are {A.dtype}/{B.dtype}, the base layer {dtype}: create them with the base weight's dtype.")
    trainable = {id(p) for p in layer.parameters() if p.requires_grad}
    if trainable != {id(A), id(B)}:
        fail("exactly two tensors should train, lora_A and lora_B; check which parameters have requires_grad.")
    if not torch.equal(base.weight, weight):
        fail("your layer changed the base weight; LoRA leaves W as it is and adds (alpha / r) · B A beside it.")
    bound = 1 / math.sqrt(d_in)
    if torch.count_nonzero(A) == 0:
        fail(
            "A starts at zero. Then ∂L/∂B = (alpha/r)·g·(xAᵀ)ᵀ is zero too: with B = 0 as well, neither factor ever "
            "moves. LoRA starts B at zero (so ΔW = 0) and draws A at random: kaiming_uniform_(A, a=math.sqrt(5))."
        )
    if torch.count_nonzero(B) != 0:
        fail(
            "B does not start at zero, so the adapted layer does not start as the base layer: fine-tuning would "
            "begin from a randomly perturbed model. LoRA sets B = 0 (ΔW = B A = 0) and draws only A at random."
        )
    spread = float(A.detach().double().std())
    if float(A.detach().abs().max()) > bound * (1 + 1e-6) or not 0.8 < spread / (bound / math.sqrt(3)) < 1.2:
        fail(
            f"A's entries have spread {spread:.3g} (largest {float(A.detach().abs().max()):.3g}); PEFT's init "
            f"kaiming_uniform_(A, a=math.sqrt(5)) draws them uniformly on ±1/√d_in = ±{bound:.3g}, spread "
            f"{bound / math.sqrt(3):.3g}. Use that call: the LoRA paper's and PEFT's choice."
        )
    x = torch.randn(2, 3, d_in, dtype=dtype, generator=torch.Generator().manual_seed(seed + 1))
    with torch.no_grad():
        y0 = layer(x)
        if tuple(y0.shape) != (2, 3, d_out):
            fail(f"for x of shape {tuple(x.shape)} your layer returns {tuple(y0.shape)}, not (2, 3, {d_out}).")
        if not torch.allclose(y0, base(x), rtol=1e-5, atol=1e-6):
            fail("at initialisation your layer's output differs from the base layer's, though ΔW = B A = 0.")
        # Give B a value, so that the update shows.
        generator = torch.Generator().manual_seed(seed + 2)
        B.copy_(torch.randn(d_out, r, generator=generator, dtype=dtype))
        y = layer(x)
    s = alpha / r
    with torch.no_grad():  # PEFT's LoRA forward (the package's LoRALinear matches PEFT: tests/c3a/test_peft_io.py)
        want = base(x) + s * ((x @ A.T) @ B.T)
        unscaled = base(x) + (x @ A.T) @ B.T
    if not torch.allclose(y, want, rtol=1e-5, atol=1e-6):
        for factor, name in ((1.0, "no scale"), (alpha, "alpha"), (r / alpha, "r / alpha"), (1 / r, "1 / r"),
                             (alpha / math.sqrt(r), "alpha / √r (rsLoRA)")):  # fmt: skip
            if factor != s and torch.allclose(y, base(x) + factor * (x @ A.T) @ B.T, rtol=1e-5, atol=1e-6):
                fail(
                    f"your update is scaled by {name} = {factor:g}; LoRA scales ΔW = B A by alpha / r = {s:g} "
                    "(PEFT's lora_alpha / r), so that changing r does not change how large the update starts out."
                )
        if torch.allclose(y - base(x), torch.zeros_like(y), atol=1e-7):
            fail("your forward returns the base layer's output only: add the adapter's (alpha / r) · (x @ A.T) @ B.T.")
        if torch.allclose(y, (unscaled - base(x)) * s, rtol=1e-5, atol=1e-6):
            fail("your forward returns only the update: add the base layer's output, base_layer(x).")
        fail(
            f"with B ≠ 0 your output differs from base(x) + (alpha / r)·(x @ A.T) @ B.T "
            f"(max error {float((y - want).abs().max()):.3g})."
        )
    delta = getattr(layer, "delta_weight", None)
    if delta is None:
        fail("your layer has no delta_weight() method: it returns the dense ΔW = (alpha / r) · B A, (d_out, d_in).")
    with torch.no_grad():
        got = delta()
    if tuple(got.shape) != (d_out, d_in):
        fail(f"delta_weight() has shape {tuple(got.shape)}; ΔW is (d_out, d_in) = ({d_out}, {d_in}).")
    if not torch.allclose(got, s * (B.detach() @ A.detach()), rtol=1e-5, atol=1e-6):
        fail("delta_weight() is not (alpha / r) · B A: merging it into W would not reproduce your forward.")
    y = layer(x)
    y.square().sum().backward()
    if A.grad is None or B.grad is None or not (A.grad.abs().sum() > 0 and B.grad.abs().sum() > 0):
        fail("no gradient reached lora_A and lora_B: compute the update from the parameters themselves.")


# ------------------------------------------------------------------ counting and choosing b


def _forbid(*paths: str, why: str) -> dict[str, str]:
    """Each package helper under the names a notebook reaches it by."""
    out = {}
    for path in paths:
        out[f"c3a_tutorial.{path}"] = why
    return out


@guarded
def check_same_budget_rank(fn, d_out: int, d_in: int, b: int) -> None:
    """Exercise: ``fn(d_out, d_in, b)`` = the largest LoRA rank ``r`` with no more parameters than C3A at ``b``,
    from the formulas (``lora_rank_for_budget`` raises while ``fn`` runs)."""
    rules = _forbid(
        "lora_rank_for_budget", why="it is this exercise's answer; compute r from the two parameter counts."
    )
    r = by_the_method(fn, (d_out, d_in, b), forbidden=rules)
    if isinstance(r, float) and r.is_integer():
        r = int(r)
    if isinstance(r, bool) or not isinstance(r, (int, np.integer)):
        fail(f"r = {r!r} is not a whole number: a rank is an integer; round *down* (int(...) or //).")
    budget = c3a_parameter_count(d_out, d_in, b)
    want = budget // (d_in + d_out)
    if r == want:
        ok(f"C3A costs d_out·d_in/b = {budget:,}; LoRA r = {r} costs r·(d_in + d_out) = {r * (d_in + d_out):,}.")
        return
    if r in (budget // d_in, budget // d_out):
        fail(
            f"r = {r} counts only one LoRA factor. LoRA stores B (d_out × r) and A (r × d_in): how many numbers "
            "is that for a given r?"
        )
    if r > want:
        fail(
            f"r = {r} costs {lora_parameter_count(d_out, d_in, r):,} parameters, more than C3A's {budget:,} "
            "(d_out·d_in/b). Round down, not to the nearest."
        )
    fail(
        f"r = {r} fits the budget of {budget:,} but a larger rank does too: take the largest r with "
        "r·(d_in + d_out) ≤ d_out·d_in/b."
    )


@guarded
def check_block_size_choice(fn, d_in: int, d_out: int, lora_rank: int, rule: str = "equal_budget") -> None:
    """Exercise: ``fn(d_in, d_out, r)`` = the valid block size nearest the named rule, on a log scale
    (``suggest_block_size``'s two rules; ``suggest_block_size`` raises while ``fn`` runs).

    ``rule="equal_budget"``: C3A costs about what LoRA ``r`` costs, ``b ≈ d_in·d_out / (r·(d_in + d_out))``;
    ``rule="sqrt"``: the course's ``√(d_in·d_out)/r`` heuristic (at most half LoRA's budget).
    """
    ideal = {
        "equal_budget": d_in * d_out / (lora_rank * (d_in + d_out)),
        "sqrt": math.sqrt(d_in * d_out) / lora_rank,
    }
    if rule not in ideal:
        raise ValueError(f"rule={rule!r} is not one of {list(ideal)}.")
    rules = _forbid(
        "suggest_block_size", "c3a.counting.nearest_block_size",
        why="it is this exercise's answer; find the nearest valid b yourself.",
    )  # fmt: skip
    b = by_the_method(fn, (d_in, d_out, lora_rank), forbidden=rules)
    valid = valid_block_sizes(d_in, d_out)
    if isinstance(b, float) and b.is_integer():
        b = int(b)
    if b not in valid:
        fail(
            f"b = {b!r} does not divide both d_in = {d_in} and d_out = {d_out}. C3A cuts ΔW into b × b blocks; "
            f"the valid block sizes are the common divisors: {valid}."
        )

    def nearest(ideal_b: float) -> int:  # on a log scale, ties to the larger block (fewer parameters)
        return min(valid, key=lambda v: (abs(math.log(v / ideal_b)), -v))

    want = nearest(ideal[rule])
    c3a, lora = c3a_parameter_count(d_out, d_in, b), lora_parameter_count(d_out, d_in, lora_rank)
    if b == want:
        ok(f"b = {b}: C3A {c3a:,} parameters vs LoRA r = {lora_rank}'s {lora:,} ({c3a / lora:.0%}).")
        return
    other = "sqrt" if rule == "equal_budget" else "equal_budget"
    if b == nearest(ideal[other]) and rule == "equal_budget":
        fail(
            f"b = {b} is the √(d_in·d_out)/r rule ({ideal['sqrt']:.1f}): C3A then costs {c3a:,} parameters, "
            f"{c3a / lora:.0%} of LoRA's {lora:,}, not about the same. Equal budget means d_in·d_out/b = "
            "r·(d_in + d_out): solve it for b."
        )
    linear = min(valid, key=lambda v: (abs(v - ideal[rule]), -v))
    if b == linear:
        fail(
            f"b = {b} is the valid block size nearest {ideal[rule]:.2f} on a linear scale (|b − ideal|), not on a "
            f"log scale: here the two differ. C3A's budget is d_in·d_out/b, so b 20% too small costs as much as b 20% "
            f"too large saves: compare ratios b / ideal, e.g. |log(b / ideal)|. (C3A would cost {c3a:,} parameters "
            f"vs LoRA's {lora:,}.)"
        )
    fail(
        f"b = {b} is valid but not the common divisor nearest {ideal[rule]:.1f} on a log scale "
        f"(C3A would cost {c3a:,} parameters vs LoRA's {lora:,}). Which valid b is closest?"
    )


# ------------------------------------------------------------------ the projection and the rank theorem


def _target(d_out: int, d_in: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((d_out, d_in))


@guarded
def check_c3a_projection(fn, d_out: int, d_in: int, b: int, seed: int = 0) -> None:
    """Exercise: ``fn(T, b)`` must return the block-circulant matrix nearest ``T``, a dense ``(d_out, d_in)``
    (``best_c3a_kernel``, ``project_block_circulant`` and ``best_c3a_fit`` raise while ``fn`` runs)."""
    why = "it computes the nearest block-circulant matrix for you; derive it from section 6's wrapped diagonals."
    rules = {
        "c3a_tutorial.course.fitting.best_c3a_kernel": why,
        "c3a_tutorial.course.fitting.project_block_circulant": why,
        "c3a_tutorial.course.fitting.best_c3a_fit": why,
        "c3a_tutorial.fit_update": "it fits by gradient descent; the exercise asks for the exact closed form.",
    }
    t = _target(d_out, d_in, seed)
    m, n = d_out // b, d_in // b
    p = np.arange(b)[:, None]
    diagonal = (p - np.arange(b)[None, :]) % b  # diagonal[p, k] = (p - k) mod b: the k-th wrapped diagonal

    def diagonal_means(blocks: np.ndarray) -> np.ndarray:  # (m, n, b, b) blocks -> the kernel of their means
        return blocks[:, :, p, diagonal].mean(axis=2)

    blocks = t.reshape(m, b, n, b).transpose(0, 2, 1, 3)  # blocks[i, j] = T_ij
    kernel = diagonal_means(blocks)
    want = block_circulant(kernel)
    first_column = block_circulant(blocks[:, :, :, 0])
    reversed_kernel = block_circulant(kernel[..., (-np.arange(b)) % b])
    untransposed = block_circulant(diagonal_means(t.reshape(m, n, b, b)))  # "blocks" cut by a reshape alone
    try:
        got = as_numpy(by_the_method(fn, (t.copy(), b), forbidden=rules), "your ΔW")
    except (IndexError, ValueError) as err:  # most often from blocks cut without moving the block axes
        line = str(err).splitlines()[0] if str(err) else ""
        fail(
            f"for T of shape {t.shape} and b = {b} your function failed with {type(err).__name__}: {line}. If it "
            f"comes from cutting T into blocks: T.reshape({m}, {b}, {n}, {b}) has axes (row block, row, column "
            "block, column), so index it as [i, p, j, q], or move the block axes to the front first "
            "(.transpose(0, 2, 1, 3)) to index [i, j, p, q]."
        )
    check_shape(got, t.shape, "your ΔW")
    if close(got, want):
        ok(f"‖ΔW − T‖ / ‖T‖ = {np.linalg.norm(want - t) / np.linalg.norm(t):.3f} at b = {b}, the smallest possible.")
        return
    if close(got, first_column):
        fail(
            "you copied each block's first column into the kernel. That builds *a* block-circulant matrix, not the "
            "nearest one: every kernel entry k appears b times in its block, on one wrapped diagonal. What value "
            "minimises the squared error against T's b entries there?"
        )
    if close(got, reversed_kernel):
        fail(
            "you averaged along the wrapped diagonals q − p ≡ k; circulant(c) has c[k] where p − q ≡ k (mod b), "
            "with the kernel as the first *column*."
        )
    if close(got, want * b) or close(got, want / b):
        fail("your ΔW is the nearest one scaled by b or 1/b: a mean over b entries divides their sum by b, once.")
    if b > 1 and close(got, untransposed):
        fail(
            f"your blocks are not T's b × b blocks: T.reshape({m}, {n}, {b}, {b}) alone cuts each row of T into "
            f"pieces and stacks them, so your 'block' (i, j) mixes rows of several blocks. Block (i, j) is "
            f"T[i*b:(i+1)*b, j*b:(j+1)*b]: reshape to ({m}, {b}, {n}, {b}) (row block, row, column block, column) "
            "and move the two block indices to the front."
        )
    got_blocks = got.reshape(m, b, n, b).transpose(0, 2, 1, 3)
    if not close(block_circulant(diagonal_means(got_blocks)), got):
        fail("your ΔW is not block-circulant: in every b × b block, each wrapped diagonal must hold one value.")
    fail(
        "your ΔW is block-circulant but not the nearest one to T: each kernel entry should minimise the squared "
        "error against the entries of T it stands for."
    )


@guarded
def check_block_kernel_with_rank(kernel, m: int, n: int, b: int, rank: int) -> None:
    """Exercise: a *real* kernel of shape ``(m, n, b)`` whose ``block_circulant`` has exactly ``rank``."""
    got = as_numpy(kernel, "your kernel")
    if np.iscomplexobj(got):
        if np.abs(got.imag).max() > 1e-9:
            fail("your kernel is complex. Keep frequency blocks in conjugate pairs {f, b − f}: ifft is then real.")
        got = got.real
    check_shape(got, (m, n, b), "your kernel")
    have = block_circulant_rank(got)
    if have == rank:
        ok(f"rank ΔW = Σ_f rank Ŵ_f = {rank} (of at most {b * min(m, n)}).")
        return
    spectra = np.fft.fft(got, axis=-1)
    nonzero = [f for f in range(b) if np.abs(spectra[..., f]).max() > 1e-9 * max(1.0, np.abs(spectra).max())]
    fail(
        f"block_circulant(kernel) has rank {have}, not {rank}. Its non-zero frequency blocks are f = {nonzero}; "
        "rank ΔW = Σ_f rank Ŵ_f. Remember that a real kernel has Ŵ_(b−f) = conj(Ŵ_f): taking .real of an ifft "
        "brings frequency b − f back with f, so pairs count twice."
    )


# ------------------------------------------------------------------ the explorer


@guarded
def check_cheapest_block_size(fn, target: str = "shift-structured", error: float = 0.25) -> None:
    """Exercise (with the explorer): ``fn(target, error)`` = the largest block size on the explorer's budget slider
    (the cheapest C3A) whose best fit to ``target``, all frequencies kept, has relative error at most ``error``;
    ``None`` if no offered budget gets there. Checked by its properties: the answer meets the bound, and no cheaper
    offered ``b`` does."""
    sizes = budget_block_sizes(SIZE, SIZE)  # the budget slider's block sizes, most expensive first
    errors = dict(zip(sizes, explorer_state(target, sizes[0]).curve_c3a, strict=True))  # C3A's best error per b
    meeting = [b for b in sizes if errors[b] <= error]
    got = call(fn, target, error)
    if isinstance(got, float) and got.is_integer():
        got = int(got)
    if got is None:
        if meeting:
            fail(
                f"you returned None for {target!r} and error {error}, but the budget slider has a b whose best C3A "
                f"fit gets there: move the budget slider and read the C3A error for each b."
            )
        ok(f"{target!r}: no budget on the slider brings C3A's error to {error} (its best: {min(errors.values()):.3f}).")
        return
    if isinstance(got, bool) or not isinstance(got, (int, np.integer)):
        fail(f"your function returned {got!r}; return the block size b as an integer (or None if no b gets there).")
    if got not in sizes:
        fail(
            f"b = {got} is not on the budget slider (its block sizes: {sizes}): the slider offers the valid b ≥ 2 "
            "at which LoRA still gets r ≥ 1 at the same budget."
        )
    if errors[got] > error:
        fail(
            f"at b = {got} C3A's best error on {target!r} is {errors[got]:.3f}, above {error}: this budget does not "
            "get there."
        )
    cheaper = [b for b in meeting if b > got]
    if cheaper:
        between = [b for b in sizes if got < b < max(cheaper) and errors[b] > error]
        fail(
            f"b = {got} gets {target!r} to {errors[got]:.3f} ≤ {error}, but a cheaper budget (a larger b) does too."
            + (
                f" Between them, b = {between[0]} does not: C3A's error is not monotone in the budget (section 7), "
                "so do not stop at the first b that misses the bound."
                if between
                else ""
            )
        )
    ok(
        f"{target!r}: b = {got} ({SIZE * SIZE // got:,} parameters) is the cheapest budget on the slider where C3A's "
        f"best error, {errors[got]:.3f}, is at most {error}."
    )
