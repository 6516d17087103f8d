"""Checkers for notebook 03 (block-circulant layers, and LoRA built from scratch).

Each checker takes the learner's function (or class) and tries it on the visible case; the notebook's autograder
cells call it again, hidden, on other shapes and seeds, so an answer that hard-codes the visible case fails.
Where an exercise says which package helper not to use (it would answer the exercise in one call), that helper
raises an error while the learner's function runs (``rules.by_the_method``).
"""

from __future__ import annotations

import math
import re

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

# ------------------------------------------------------------------ LoRA for an embedding, from scratch


def _embedding_case(num_embeddings: int, embedding_dim: int, dtype, seed: int) -> torch.nn.Embedding:
    torch.manual_seed(seed)
    return torch.nn.Embedding(num_embeddings, embedding_dim).to(dtype)


def _parameter(layer, name: str, shape: tuple, wrong_way: tuple, what: str) -> torch.Tensor:
    value = getattr(layer, name, None)
    if not isinstance(value, torch.nn.Parameter):
        fail(
            f"your layer has no parameter `{name}`: store {what} as self.{name} = torch.nn.Parameter(...), so that "
            "the optimiser sees it."
        )
    if tuple(value.shape) == wrong_way and wrong_way != shape:
        fail(
            f"{name} has shape {tuple(value.shape)}, the transpose of {shape}: {what}. Read a token id as a one-hot "
            "x of length num_embeddings: the layer maps x to embedding_dim numbers, so section 2's shapes hold with "
            "d_in = num_embeddings and d_out = embedding_dim."
        )
    if tuple(value.shape) != shape:
        fail(f"{name} has shape {tuple(value.shape)}; it should be {shape}: {what}.")
    return value


def _own_class(cls, layer) -> None:
    """Neither the package's layers nor PEFT's (its LoRA ``Embedding`` is this exercise's answer) as a base or
    inside: found by the module a class comes from, so that no PEFT import is needed to look."""
    foreign = ("c3a_tutorial", "peft")
    based = [k for k in cls.__mro__[1:] if k.__module__.startswith(foreign)]
    if based:
        fail(f"your layer is a subclass of {based[0].__module__}.{based[0].__name__}: write LoRA's factors and "
             "forward yourself, in a torch.nn.Module of your own.")  # fmt: skip
    held = [m for m in layer.modules() if m is not layer and type(m).__module__.startswith(foreign)]
    if held:
        fail(f"your layer holds {type(held[0]).__module__}.{type(held[0]).__name__}: write LoRA's factors and "
             "forward yourself.")  # fmt: skip


@guarded
def check_lora_embedding(cls, num_embeddings: int = 50, embedding_dim: int = 24, r: int = 8, alpha: float = 16.0,
                         seed: int = 0, dtype=torch.float32) -> None:  # fmt: skip
    """Exercise 03.1: ``cls(base_layer, r, alpha)`` must be LoRA for an ``nn.Embedding``, as PEFT builds it.

    Read an id as a one-hot ``x`` of length ``V = num_embeddings``: the embedding is a linear map to
    ``E = embedding_dim`` whose weight is stored transposed, ``(V, E)``. Checked: the base layer is kept and frozen;
    ``lora_A`` is ``(r, V)`` and ``lora_B`` ``(E, r)`` (PEFT's ``lora_embedding_A``/``_B``), in the base weight's
    dtype; ``ΔW = 0`` at the start; one SGD step changes only the rows of ``ΔW`` of the ids in its batch (as
    fine-tuning the table itself would), which holds when ``A`` starts at zero, and a second step moves both factors;
    the random factor is drawn from N(0, 1) (PEFT: ``zeros_(A)``, ``normal_(B)``); ``forward(ids)`` is
    ``base(ids) + (alpha / r)·(Aᵀ[ids]) Bᵀ`` for ids of any leading shape, computed by looking rows up (no one-hot
    tensor); ``delta_weight()`` is ``(alpha / r)·(B A)ᵀ``, in the table's layout ``(V, E)``. ``V``, ``E`` and ``r``
    differ, so that transposes show. (PEFT's own layer agrees: tests/course/test_checks_03.py.)
    """
    refuse_held(cls, PACKAGE_LAYERS)
    ids = torch.tensor([[3, 7, 3], [11, 0, 7]])  # tokens {0, 3, 7, 11} of the V: the others are not in the batch
    one_hot = {(*ids.shape, num_embeddings), (ids.numel(), num_embeddings), (num_embeddings, num_embeddings)}
    one_hot.discard((r, num_embeddings))  # lora_A itself
    with watched(cls, PACKAGE_LAYERS, shape_rule=lambda shape: shape in one_hot) as record:
        _check_lora_embedding(cls, record, ids, num_embeddings, embedding_dim, r, alpha, seed, dtype)
    check_untampered(record)
    if record.calls:
        fail(f"{record.calls[0]} ran inside your layer: {PACKAGE_LAYERS[record.calls[0]]}")
    ok(
        f"r = {r}, alpha = {alpha:g}: ΔW = 0 at the start, a step moves only the rows of the ids it saw, "
        f"y = base(ids) + {alpha / r:g}·Aᵀ[ids] Bᵀ, as PEFT's embedding LoRA computes it."
    )


def _no_one_hot(record) -> None:
    if record.torch.flagged is not None:
        shape, name = record.torch.flagged
        fail(
            f"your layer made a tensor of shape {shape} (from {name}): one-hot vectors of the ids, or a "
            "num_embeddings × num_embeddings table. x Aᵀ for a one-hot x is one column of A: look it up by the id "
            "instead of multiplying, so that a token costs r numbers, not num_embeddings."
        )


def _check_lora_embedding(cls, record, ids, V, E, r, alpha, seed, dtype) -> None:
    base = _embedding_case(V, E, dtype, seed)
    table = base.weight.detach().clone()
    layer = cls(base, r, alpha)
    _own_class(cls, layer)
    package_layers = tuple(c for c in map(import_object, PACKAGE_LAYERS) if isinstance(c, type))
    held = [type(m).__name__ for m in layer.modules() if isinstance(m, package_layers)]
    if held:
        fail(f"your layer holds the package's {held[0]}: write LoRA's factors and forward yourself.")
    if getattr(layer, "base_layer", None) is not base:
        fail("keep the embedding you were given as self.base_layer (PEFT's name), not a copy.")
    if base.weight.requires_grad:
        fail("the base embedding is still trainable: freeze it (base_layer.requires_grad_(False)); only A and B train.")
    A = _parameter(layer, "lora_A", (r, V), (V, r), "A maps a one-hot id (num_embeddings) to r numbers")
    B = _parameter(layer, "lora_B", (E, r), (r, E), "B maps r numbers to embedding_dim")
    if A.dtype != dtype or B.dtype != dtype:
        fail(f"A and B are {A.dtype}/{B.dtype}, the base table {dtype}: create them with the base weight's dtype.")
    trainable = {id(p) for p in layer.parameters() if p.requires_grad}
    if trainable != {id(A), id(B)}:
        fail("exactly two tensors should train, lora_A and lora_B; check which parameters have requires_grad.")
    if not torch.equal(base.weight, table):
        fail("your layer changed the base table; LoRA leaves it as it is and adds ΔW beside it.")
    _no_one_hot(record)
    with torch.no_grad():
        try:
            y0 = layer(ids)
        except (RuntimeError, IndexError, TypeError) as err:  # most often from a transpose meant for 1-D ids only
            line = str(err).splitlines()[0] if str(err) else ""
            fail(
                f"for ids of shape {tuple(ids.shape)} your forward failed with {type(err).__name__}: {line}. The ids "
                f"may have any leading shape; the result has shape (*ids.shape, embedding_dim). (On a tensor of more "
                "than 2 axes, .T reverses them all.)"
            )
        if tuple(y0.shape) != (*ids.shape, E):
            fail(f"for ids of shape {tuple(ids.shape)} your layer returns {tuple(y0.shape)}, not (2, 3, {E}): one "
                 "embedding per id, whatever the leading shape.")  # fmt: skip
        delta0 = layer.delta_weight() if callable(getattr(layer, "delta_weight", None)) else None
    if delta0 is None:
        fail(f"your layer has no delta_weight() method: it returns the dense ΔW in the table's layout, ({V}, {E}).")
    if tuple(delta0.shape) == (E, V):
        fail(
            f"delta_weight() has shape {tuple(delta0.shape)}, a Linear weight's layout (d_out, d_in). An embedding "
            f"stores one row per token, ({V}, {E}): base_layer.weight + delta_weight() must be the merged table."
        )
    if tuple(delta0.shape) != (V, E):
        fail(f"delta_weight() has shape {tuple(delta0.shape)}; ΔW has the table's shape ({V}, {E}).")
    a_zero, b_zero = torch.count_nonzero(A) == 0, torch.count_nonzero(B) == 0
    if a_zero and b_zero:
        fail(
            "A and B both start at zero: then ∂L/∂A ∝ Bᵀ·g and ∂L/∂B ∝ g·(the id's column of A)ᵀ are zero too, and "
            "neither factor ever moves. Keep ΔW = 0 with one factor at zero and draw the other at random."
        )
    if not a_zero and not b_zero:
        fail("A and B are both non-zero at the start, so ΔW = (B A)ᵀ ≠ 0: the adapted model would not begin as the "
             "pretrained one. Start one factor at zero.")  # fmt: skip
    if not torch.allclose(y0, base(ids), rtol=1e-5, atol=1e-6) or torch.count_nonzero(delta0) != 0:
        fail("at initialisation your layer's output (or delta_weight()) differs from the base table's, though one "
             "factor is zero: ΔW must be 0 at the start.")  # fmt: skip
    random_factor = (B if a_zero else A).detach().double().clone()
    _one_step_moves_only_seen_rows(layer, A, B, ids, V, seed)
    rms, spread = float(random_factor.square().mean().sqrt()), float(random_factor.std())
    if not (0.75 < rms < 1.25 and 0.75 < spread < 1.25):
        fail(
            f"B's entries have spread {spread:.3g} (root mean square {rms:.3g}); the exercise asks for N(0, 1), "
            "PEFT's draw for an embedding's B. Unlike section 2's dense x, a one-hot id has norm 1: no 1/√d_in "
            "shrinks what reaches A through B."
        )
    _check_embedding_formula(layer, A, B, base, ids, V, E, r, alpha, seed, dtype)
    _no_one_hot(record)


def _one_step_moves_only_seen_rows(layer, A, B, ids, V, seed) -> None:
    """Two SGD steps on a loss of ``layer(ids)``: the first may change only the rows of ΔW of the ids in the batch
    (fine-tuning the table itself changes only the rows it looked up); over both, gradients reach A and B."""
    target = torch.randn(*ids.shape, B.shape[0], generator=torch.Generator().manual_seed(seed + 3), dtype=A.dtype)
    moved = {}
    for step in (1, 2):
        A.grad = B.grad = None
        (layer(ids) * target).sum().backward()
        for name, p in (("lora_A", A), ("lora_B", B)):
            if p.grad is None:
                fail(f"no gradient reached {name}: compute the update from the parameters themselves.")
            moved[name] = moved.get(name, False) or bool(p.grad.abs().sum() > 0)
        with torch.no_grad():
            A -= 0.1 * A.grad
            B -= 0.1 * B.grad
        if step == 1:
            with torch.no_grad():
                delta = layer.delta_weight()
            seen = torch.zeros(V, dtype=torch.bool)
            seen[ids.reshape(-1)] = True
            changed = delta.abs().sum(dim=1) > 0
            if bool(changed[~seen].any()):
                token = int(torch.nonzero(changed & ~seen)[0])
                fail(
                    f"one SGD step on ids {sorted(set(ids.reshape(-1).tolist()))} changed the row of ΔW of token "
                    f"{token}, which was not in the batch: fine-tuning the table itself changes only the rows it "
                    "looked up. Which factor of ΔW = (B A)ᵀ does every row share, and which has a part per token? "
                    "Start that one at zero."
                )
            if not bool(changed[seen].all()):
                fail("one SGD step left the rows of ΔW of the ids in the batch unchanged: no gradient reached the "
                     "factor that starts at zero. Compute the update from the parameters themselves.")  # fmt: skip
    if not (moved["lora_A"] and moved["lora_B"]):
        fail("over two SGD steps no gradient reached lora_A or lora_B: both factors must learn.")


def _check_embedding_formula(layer, A, B, base, ids, V, E, r, alpha, seed, dtype) -> None:
    generator = torch.Generator().manual_seed(seed + 2)
    s = alpha / r
    with torch.no_grad():  # values for both factors, so that the update and any transpose show
        A.copy_(torch.randn(r, V, generator=generator, dtype=dtype))
        B.copy_(torch.randn(E, r, generator=generator, dtype=dtype))
        looked_up = A.T[ids]  # Aᵀ[ids] = one_hot(ids) Aᵀ
        for case in (ids, ids.reshape(-1)[:5]):
            y = layer(case)
            looked = A.T[case]
            if tuple(y.shape) != (*case.shape, E):
                fail(f"for ids of shape {tuple(case.shape)} your layer returns {tuple(y.shape)}, not "
                     f"{(*case.shape, E)}: one embedding per id, whatever the leading shape.")  # fmt: skip
            want = base(case) + s * (looked @ B.T)
            if torch.allclose(y, want, rtol=1e-5, atol=1e-6):
                continue
            for factor, name in ((1.0, "no scale"), (alpha, "alpha"), (r / alpha, "r / alpha"), (1 / r, "1 / r"),
                                 (alpha / math.sqrt(r), "alpha / √r (rsLoRA)")):  # fmt: skip
                if factor != s and torch.allclose(y, base(case) + factor * (looked @ B.T), rtol=1e-5, atol=1e-6):
                    fail(f"your update is scaled by {name} = {factor:g}; LoRA scales ΔW by alpha / r = {s:g}, as in "
                         "section 2.")  # fmt: skip
            if torch.allclose(y, base(case), rtol=1e-5, atol=1e-6):
                fail("your forward returns the base embedding only: add the adapter's update.")
            if torch.allclose(y, s * (looked @ B.T), rtol=1e-5, atol=1e-6):
                fail("your forward returns only the update: add the base layer's output, base_layer(ids).")
            fail(
                f"with A and B ≠ 0 your output differs from base(ids) + (alpha / r)·(x Aᵀ) Bᵀ for one-hot x "
                f"(max error {float((y - want).abs().max()):.3g})."
            )
        got = layer.delta_weight()
        merged = torch.nn.functional.embedding(ids, base.weight + got)
    if not torch.allclose(got, s * (B @ A).T, rtol=1e-5, atol=1e-6):
        fail("delta_weight() is not the ΔW of your forward: base_layer.weight + delta_weight(), used as the table, "
             "must give what your layer computes.")  # fmt: skip
    if not torch.allclose(merged, base(ids) + s * (looked_up @ B.T), rtol=1e-5, atol=1e-6):
        fail("the merged table base_layer.weight + delta_weight() does not reproduce your forward.")


# ------------------------------------------------------------------ counting and choosing b


def _forbid(*paths: str, why: str) -> dict[str, str]:
    """Each package helper under the names a notebook reaches it by."""
    out = {}
    for path in paths:
        out[f"c3a_tutorial.{path}"] = why
    return out


def _numbers_in(text: str) -> set[int]:
    return {int(n) for n in re.findall(r"\d+", text.replace(",", ""))}


def _layer_named(err: Exception, shapes: list, b: int) -> None:
    """The ValueError must say which layer ``b`` does not divide: that layer's d_out and d_in, and no dimension
    that only the layers ``b`` divides have (a message listing every layer does not say which)."""
    bad = [(o, i) for o, i in shapes if o % b or i % b]
    said = _numbers_in(str(err))
    good_only = {d for o, i in shapes if not (o % b or i % b) for d in (o, i)} - {d for o, i in bad for d in (o, i)}
    if not any({o, i} <= said for o, i in bad):
        fail(
            f"your ValueError says {str(err)!r}: say which layer b = {b} does not divide, with its shape "
            f"(here {bad[0]}), so that the user knows what to change."
        )
    if said & good_only:
        fail(
            f"your ValueError says {str(err)!r}, which names {sorted(said & good_only)[0]}, a dimension of a layer "
            f"that b = {b} divides: name only the layer that b does not divide."
        )


@guarded
def check_same_budget_rank(fn, shapes, b: int) -> None:
    """Exercise 03.3: ``fn(shapes, b)`` = the largest single LoRA rank ``r`` whose total parameter count over the
    layers ``shapes`` (``(d_out, d_in)`` each) is not larger than C3A's total at block size ``b``; a ``ValueError``
    naming the layer when ``b`` does not divide one (``lora_rank_for_budget`` raises while ``fn`` runs)."""
    shapes = [tuple(int(d) for d in shape) for shape in shapes]
    rules = _forbid(
        "lora_rank_for_budget",
        why="it answers for one layer; the budget here is the model's: compute r from the two totals.",
    )
    bad = [(o, i) for o, i in shapes if o % b or i % b]
    try:
        r = by_the_method(fn, (list(shapes), b), forbidden=rules)
    except ValueError as err:
        if not bad:
            fail(f"your function raised ValueError({str(err)!r}), but b = {b} divides every layer of {shapes}.")
        _layer_named(err, shapes, b)
        ok(f"b = {b} does not divide {bad[0]}, and your ValueError says so: {err}")
        return
    if bad:
        fail(
            f"your function returned {r!r}, but b = {b} does not divide the layer {bad[0]}: C3A cannot cut it into "
            "b × b blocks, so there is no budget to match. Raise a ValueError that says which layer."
        )
    if isinstance(r, float) and r.is_integer():
        r = int(r)
    if isinstance(r, bool) or not isinstance(r, (int, np.integer)):
        fail(f"r = {r!r} is not a whole number: a rank is an integer; round *down* (int(...) or //).")
    budget = sum(c3a_parameter_count(o, i, b) for o, i in shapes)
    per_rank = sum(o + i for o, i in shapes)  # LoRA's cost of one unit of rank, over every layer
    want = budget // per_rank
    if r == want:
        ok(f"C3A costs Σ d_out·d_in/b = {budget:,}; LoRA r = {r} costs r·Σ(d_in + d_out) = {r * per_rank:,}.")
        return
    per_layer = [c3a_parameter_count(o, i, b) // (o + i) for o, i in shapes]
    if r == sum(per_layer) and len(shapes) > 1:
        fail(
            f"r = {r} adds up one rank per layer ({per_layer}). LoRA uses one rank r in every layer, so it costs "
            "r·(d_in + d_out) in each: compare the total over the layers with C3A's total."
        )
    if r in (budget // sum(i for _, i in shapes), budget // sum(o for o, _ in shapes)):
        fail(
            f"r = {r} counts only one LoRA factor. LoRA stores B (d_out × r) and A (r × d_in) in each layer: how "
            "many numbers is that for a given r?"
        )
    if r > want:
        fail(
            f"r = {r} costs {r * per_rank:,} parameters over the layers, more than C3A's {budget:,} "
            "(Σ d_out·d_in/b). Round down, not to the nearest."
        )
    if len(shapes) > 1 and len(set(per_layer)) > 1 and min(per_layer) <= r:
        fail(
            f"r = {r} fits the budget, but a larger rank does too ({want} costs {want * per_rank:,} of C3A's "
            f"{budget:,}). Each layer alone would allow {sorted(set(per_layer))}: did you round per layer and then "
            "combine? Round once, after adding up the totals."
        )
    fail(
        f"r = {r} fits the budget of {budget:,} but a larger rank does too: take the largest r with "
        "r·Σ(d_in + d_out) ≤ Σ d_out·d_in/b."
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
