"""Notebook 03's checkers: LoRA for an embedding from scratch against PEFT's conventions; a whole model's budget and
the block-size exercise with their forbidden helpers; the projection; the rank construction; the explorer task. Each
typical wrong answer (section 2's init copied, one-hot vectors, ΔW in a Linear's layout, the scale α instead of α/r,
per-layer ranks, a ValueError that does not say which layer, the linear-nearest block size, an off-by-one rank...)
is rejected by name."""

import math

import numpy as np
import pytest
import torch

from c3a_tutorial import (
    block_circulant,
    c3a_parameter_count,
    lora_rank_for_budget,
    suggest_block_size,
    valid_block_sizes,
)
from c3a_tutorial.course import checks
from c3a_tutorial.course.explorer import explorer_state
from c3a_tutorial.course.fitting import best_c3a_kernel, project_block_circulant
from c3a_tutorial.course.spectral import keep_frequencies

from .rejecting import rejects

# ------------------------------------------------------------------ LoRA for an embedding, from scratch


class LoraEmbedding(torch.nn.Module):
    """The reference answer; the mistakes below change one thing each."""

    def __init__(self, base_layer, r, alpha):
        super().__init__()
        self.base_layer = base_layer.requires_grad_(False)
        num_embeddings, embedding_dim = base_layer.weight.shape
        dtype = base_layer.weight.dtype
        self.lora_A = torch.nn.Parameter(torch.zeros(r, num_embeddings, dtype=dtype))
        self.lora_B = torch.nn.Parameter(torch.randn(embedding_dim, r, dtype=dtype))
        self.scale = alpha / r

    def forward(self, ids):
        return self.base_layer(ids) + self.scale * (self.lora_A.T[ids] @ self.lora_B.T)

    def delta_weight(self):
        return self.scale * (self.lora_B @ self.lora_A).T


class ByFunctionalEmbedding(LoraEmbedding):  # the same lookup by F.embedding, PEFT's route
    def forward(self, ids):
        looked_up = torch.nn.functional.embedding(ids, self.lora_A.T)
        return self.base_layer(ids) + self.scale * (looked_up @ self.lora_B.T)


CASES = [
    {},
    {"num_embeddings": 40, "embedding_dim": 64, "r": 4, "alpha": 8.0, "seed": 1},
    {"num_embeddings": 30, "embedding_dim": 48, "r": 8, "alpha": 12.0, "seed": 2, "dtype": torch.float64},
]


@pytest.mark.parametrize("kwargs", CASES)
@pytest.mark.parametrize("cls", [LoraEmbedding, ByFunctionalEmbedding], ids=["index", "F.embedding"])
def test_lora_embedding_accepts_the_answer(cls, kwargs, capsys):
    checks.check_lora_embedding(cls, **kwargs)
    assert capsys.readouterr().out.startswith("Correct")


def test_the_embedding_checkers_conventions_are_peft_s():
    """PEFT's LoRA for an nn.Embedding: lora_embedding_A (r, num_embeddings) at zero, lora_embedding_B
    (embedding_dim, r) drawn N(0, 1), the scale lora_alpha / r; with the same factors the reference answer gives its
    output and its delta weight (the table's layout)."""
    peft = pytest.importorskip("peft")
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Embedding(50, 24))
    wrapped = peft.get_peft_model(model, peft.LoraConfig(r=8, lora_alpha=16, target_modules=["0"]))
    layer = wrapped.base_model.model[0]
    A, B = layer.lora_embedding_A["default"], layer.lora_embedding_B["default"]
    assert tuple(A.shape) == (8, 50) and tuple(B.shape) == (24, 8) and torch.count_nonzero(A) == 0
    assert 0.75 < float(B.detach().std()) < 1.25 and layer.scaling["default"] == 16 / 8
    ours = LoraEmbedding(torch.nn.Embedding(50, 24), 8, 16.0)
    with torch.no_grad():
        ours.base_layer.weight.copy_(layer.base_layer.weight)
        ours.lora_A.copy_(torch.randn(8, 50))
        ours.lora_B.copy_(B)
        A.copy_(ours.lora_A)
        ids = torch.tensor([[3, 7, 3], [11, 0, 49]])
        torch.testing.assert_close(ours(ids), wrapped(ids))
        torch.testing.assert_close(ours.delta_weight(), layer.get_delta_weight("default"))


class LinearInit(LoraEmbedding):  # section 2's init copied: A Kaiming-uniform, B zero
    def __init__(self, base_layer, r, alpha):
        super().__init__(base_layer, r, alpha)
        with torch.no_grad():
            torch.nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))
            self.lora_B.zero_()


class ANormalBZero(LinearInit):  # the other factor N(0, 1): B, shared by every row, still moves them all
    def __init__(self, *args):
        super().__init__(*args)
        torch.nn.init.normal_(self.lora_A)


class BothZero(LoraEmbedding):
    def __init__(self, *args):
        super().__init__(*args)
        torch.nn.init.zeros_(self.lora_B)


class BothRandom(LoraEmbedding):
    def __init__(self, *args):
        super().__init__(*args)
        torch.nn.init.normal_(self.lora_A)


class BKaiming(LoraEmbedding):  # B drawn as section 2 draws A: 1/√r, far smaller than N(0, 1)
    def __init__(self, *args):
        super().__init__(*args)
        torch.nn.init.kaiming_uniform_(self.lora_B, a=math.sqrt(5))


class BOnes(LoraEmbedding):
    def __init__(self, *args):
        super().__init__(*args)
        torch.nn.init.ones_(self.lora_B)


class ScaleAlpha(LoraEmbedding):
    def __init__(self, base_layer, r, alpha):
        super().__init__(base_layer, r, alpha)
        self.scale = alpha


class NoScale(LoraEmbedding):
    def __init__(self, base_layer, r, alpha):
        super().__init__(base_layer, r, alpha)
        self.scale = 1.0


class TransposedFactors(torch.nn.Module):
    def __init__(self, base_layer, r, alpha):
        super().__init__()
        self.base_layer = base_layer.requires_grad_(False)
        num_embeddings, embedding_dim = base_layer.weight.shape
        self.lora_A = torch.nn.Parameter(torch.zeros(num_embeddings, r))
        self.lora_B = torch.nn.Parameter(torch.randn(r, embedding_dim))
        self.scale = alpha / r

    def forward(self, ids):
        return self.base_layer(ids) + self.scale * (self.lora_A[ids] @ self.lora_B)


class NotFrozen(LoraEmbedding):
    def __init__(self, *args):
        super().__init__(*args)
        self.base_layer.requires_grad_(True)


class UpdateOnly(LoraEmbedding):
    def forward(self, ids):
        return self.scale * (self.lora_A.T[ids] @ self.lora_B.T)


class DeltaLinearLayout(LoraEmbedding):  # section 2's delta_weight: (embedding_dim, num_embeddings)
    def delta_weight(self):
        return self.scale * (self.lora_B @ self.lora_A)


class NoDelta(LoraEmbedding):
    delta_weight = None


class Float32Always(LoraEmbedding):
    def __init__(self, base_layer, r, alpha):
        super().__init__(base_layer, r, alpha)
        self.lora_A = torch.nn.Parameter(self.lora_A.detach().float())
        self.lora_B = torch.nn.Parameter(self.lora_B.detach().float())


class OneHot(LoraEmbedding):  # the right numbers through one-hot vectors: num_embeddings numbers per token
    def forward(self, ids):
        x = torch.nn.functional.one_hot(ids, self.lora_A.shape[1]).to(self.lora_A.dtype)
        return self.base_layer(ids) + self.scale * ((x @ self.lora_A.T) @ self.lora_B.T)


class IdentityRows(LoraEmbedding):  # the same through an identity table
    def forward(self, ids):
        x = torch.eye(self.lora_A.shape[1], dtype=self.lora_A.dtype)[ids]
        return self.base_layer(ids) + self.scale * ((x @ self.lora_A.T) @ self.lora_B.T)


class ColumnsTransposed(LoraEmbedding):  # A[:, ids].T: right for 1-D ids only (.T reverses every axis)
    def forward(self, ids):
        return self.base_layer(ids) + self.scale * (self.lora_A[:, ids].T @ self.lora_B.T)


class PackageInside(torch.nn.Module):  # the package's LoRALinear over the table read as a linear layer
    def __init__(self, base_layer, r, alpha):
        super().__init__()
        from c3a_tutorial import LoRALinear

        self.base_layer = base_layer.requires_grad_(False)
        linear = torch.nn.Linear(*base_layer.weight.shape, bias=False)
        self.inner = LoRALinear(linear, rank=r, alpha=alpha)
        self.lora_A, self.lora_B = self.inner.lora_A, self.inner.lora_B


LORA_MISTAKES = {
    "section 2's init (A random, B zero)": (LinearInit, {}, "changed the row of ΔW of token"),
    "A drawn N(0, 1), B zero": (ANormalBZero, {}, "which was not in the batch"),
    "both zero": (BothZero, {}, "A and B both start at zero"),
    "both random": (BothRandom, {}, "both non-zero at the start"),
    "B Kaiming-uniform": (BKaiming, {}, "B's entries have spread .* asks for N\\(0, 1\\)"),
    "B all ones": (BOnes, {}, "B's entries have spread 0"),
    "scale alpha instead of alpha / r": (ScaleAlpha, {}, "scaled by alpha = 16; LoRA scales ΔW by alpha / r = 2"),
    "a missing scale": (NoScale, {}, "scaled by no scale = 1"),
    "transposed factors": (TransposedFactors, {}, "lora_A has shape \\(50, 8\\), the transpose of \\(8, 50\\)"),
    "base not frozen": (NotFrozen, {}, "base embedding is still trainable"),
    "the update without the base": (UpdateOnly, {}, "at initialisation your layer's output"),
    "delta_weight in a Linear's layout": (DeltaLinearLayout, {}, "\\(24, 50\\), a Linear weight's layout"),
    "no delta_weight": (NoDelta, {}, "no delta_weight"),
    "float32 factors on a float64 table": (Float32Always, {"dtype": torch.float64}, "create them with the base"),
    "one-hot vectors": (OneHot, {}, "shape \\(2, 3, 50\\) \\(from one_hot\\): one-hot vectors"),
    "an identity table": (IdentityRows, {}, "num_embeddings × num_embeddings table"),
    "A[:, ids].T": (ColumnsTransposed, {}, "for ids of shape \\(2, 3\\) your forward failed with RuntimeError"),
    "the package's LoRALinear inside": (PackageInside, {}, "holds c3a_tutorial.c3a.layers.LoRALinear"),
}


@pytest.mark.parametrize("mistake", LORA_MISTAKES, ids=str)
def test_lora_embedding_rejects(mistake):
    cls, kwargs, message = LORA_MISTAKES[mistake]
    rejects(message, checks.check_lora_embedding, cls, **kwargs)


def test_lora_embedding_refuses_peft_s_layer():
    peft = pytest.importorskip("peft")
    from peft.tuners.lora.layer import Embedding

    class Wrapper(torch.nn.Module):
        def __init__(self, base_layer, r, alpha):
            super().__init__()
            self.inner = Embedding(base_layer, "default", peft.LoraConfig(r=r, lora_alpha=alpha), r=r, lora_alpha=alpha)
            self.base_layer = base_layer
            self.lora_A, self.lora_B = self.inner.lora_embedding_A["default"], self.inner.lora_embedding_B["default"]

        def forward(self, ids):
            return self.inner(ids)

        def delta_weight(self):
            return self.inner.get_delta_weight("default")

    rejects("holds peft.tuners.lora.layer.Embedding", checks.check_lora_embedding, Wrapper)

    class Subclass(Embedding):
        def __init__(self, base_layer, r, alpha):
            super().__init__(base_layer, "default", peft.LoraConfig(r=r, lora_alpha=alpha), r=r, lora_alpha=alpha)

    rejects("a subclass of peft.tuners.lora.layer.Embedding", checks.check_lora_embedding, Subclass)


# ------------------------------------------------------------------ counting and choosing b

BERT_LAYER = [(768, 768)] * 4 + [(3072, 768), (768, 3072)]
LLAMA_LAYER = [(4096, 4096)] * 4 + [(11008, 4096)] * 2 + [(4096, 11008)]


def _same_budget_rank(shapes, b):
    for d_out, d_in in shapes:
        if d_out % b or d_in % b:
            raise ValueError(f"b = {b} does not divide the layer ({d_out}, {d_in}).")
    return sum(o * i // b for o, i in shapes) // sum(o + i for o, i in shapes)


def _per_layer(shapes, b):
    return [o * i // b // (o + i) for o, i in shapes]


def test_same_budget_rank_accepts_the_answer(capsys):
    checks.check_same_budget_rank(_same_budget_rank, BERT_LAYER, b=64)
    checks.check_same_budget_rank(lambda *a: float(_same_budget_rank(*a)), BERT_LAYER, b=64)
    checks.check_same_budget_rank(_same_budget_rank, BERT_LAYER + [(2, 768)], b=64)
    checks.check_same_budget_rank(_same_budget_rank, LLAMA_LAYER, b=128)
    # The package's count raises a ValueError that names the layer: using it is fine.
    checks.check_same_budget_rank(
        lambda shapes, b: sum(c3a_parameter_count(o, i, b) for o, i in shapes) // sum(o + i for o, i in shapes),
        BERT_LAYER + [(2, 768)],
        b=64,
    )
    out = capsys.readouterr().out
    assert "LoRA r = 8 costs r·Σ(d_in + d_out) = 110,592" in out and "LoRA r = 20" in out


def test_the_visible_case_separates_the_total_from_per_layer_ranks():
    """At BERT's b = 64 every per-layer combination differs from the total: 8."""
    assert _same_budget_rank(BERT_LAYER, 64) == 8
    ranks = _per_layer(BERT_LAYER, 64)
    assert (sum(ranks), min(ranks), max(ranks), sum(ranks) // len(ranks)) == (42, 6, 9, 7)


def _rounded_per_layer(shapes, b):  # each layer's rank rounded down, then averaged
    ranks = _per_layer(shapes, b)
    return sum(ranks) // len(ranks)


SAME_BUDGET_MISTAKES = {
    "per-layer ranks added up": (lambda s, b: sum(_per_layer(s, b)), BERT_LAYER, "adds up one rank per layer"),
    "per-layer ranks rounded, then averaged": (_rounded_per_layer, BERT_LAYER, "did you round per layer"),
    "the smallest layer's rank": (lambda s, b: min(_per_layer(s, b)), BERT_LAYER, "did you round per layer"),
    "the largest layer's rank": (lambda s, b: max(_per_layer(s, b)), BERT_LAYER, "more than C3A's 110,592"),
    "one factor": (lambda s, b: 7_077_888 // 64 // 6912, BERT_LAYER, "counts only one LoRA factor"),
    "one rank too few": (lambda s, b: 5, [(768, 768)] * 6, "a larger rank does too"),
    "not an integer": (lambda s, b: 8.5, BERT_LAYER, "round \\*down\\*"),
    "no ValueError": (
        lambda s, b: sum(o * i // b for o, i in s) // sum(o + i for o, i in s),
        BERT_LAYER + [(2, 768)],
        "does not divide the layer \\(2, 768\\).*Raise a ValueError",
    ),
    "a ValueError that does not say which": (
        lambda s, b: (_ for _ in ()).throw(ValueError("b does not divide a layer")),
        BERT_LAYER + [(2, 768)],
        "say which layer b = 64 does not divide",
    ),
    "a ValueError that lists every layer": (
        lambda s, b: (_ for _ in ()).throw(ValueError(f"b = {b} does not fit {s}")),
        BERT_LAYER + [(2, 768)],
        "names 3072, a dimension of a layer that b = 64 divides",
    ),
    "a ValueError where b divides": (
        lambda s, b: (_ for _ in ()).throw(ValueError("(768, 768)")),
        BERT_LAYER,
        "but b = 64 divides every layer",
    ),
    "lora_rank_for_budget per layer": (
        lambda s, b: min(lora_rank_for_budget(o, i, b) for o, i in s),
        BERT_LAYER,
        "lora_rank_for_budget\\(\\) is not allowed here",
    ),
}


@pytest.mark.parametrize("mistake", SAME_BUDGET_MISTAKES, ids=str)
def test_same_budget_rank_rejects(mistake):
    answer, shapes, message = SAME_BUDGET_MISTAKES[mistake]
    rejects(message, checks.check_same_budget_rank, answer, shapes, b=64)


def _log_nearest(d_in, d_out, r):
    ideal = d_in * d_out / (r * (d_in + d_out))
    return min(valid_block_sizes(d_in, d_out), key=lambda b: (abs(np.log(b / ideal)), -b))


def _linear_nearest(d_in, d_out, r):
    ideal = d_in * d_out / (r * (d_in + d_out))
    return min(valid_block_sizes(d_in, d_out), key=lambda b: (abs(b - ideal), -b))


def test_block_size_choice_accepts_the_rule_asked_for():
    checks.check_block_size_choice(_log_nearest, d_in=1024, d_out=4096, lora_rank=16)
    checks.check_block_size_choice(_log_nearest, d_in=1024, d_out=2560, lora_rank=8)
    checks.check_block_size_choice(lambda *a: 128, d_in=1024, d_out=4096, lora_rank=16, rule="sqrt")
    with pytest.raises(ValueError, match="rule="):
        checks.check_block_size_choice(_log_nearest, d_in=1024, d_out=4096, lora_rank=16, rule="nope")


def test_the_visible_case_separates_log_from_linear_nearness():
    assert _log_nearest(1024, 2560, 8) == suggest_block_size(1024, 2560, 8) != _linear_nearest(1024, 2560, 8)
    assert _log_nearest(1024, 4096, 16) == _linear_nearest(1024, 4096, 16)  # the other visible case does not


BLOCK_SIZE_MISTAKES = {
    "the √ rule": (lambda *a: 128, (1024, 4096, 16), "is the √\\(d_in·d_out\\)/r rule .*40% of LoRA's 81,920"),
    "linear nearness": (_linear_nearest, (1024, 2560, 8), "nearest 91.43 on a linear scale"),
    "suggest_block_size itself": (
        lambda d_in, d_out, r: suggest_block_size(d_in, d_out, r),
        (1024, 2560, 8),
        "suggest_block_size\\(\\) is not allowed here",
    ),
    "not a divisor": (lambda *a: 320, (1024, 4096, 16), "does not divide both"),
    "off by one divisor": (lambda *a: 16, (1024, 4096, 16), "not the common divisor nearest 51.2"),
}


@pytest.mark.parametrize("mistake", BLOCK_SIZE_MISTAKES, ids=str)
def test_block_size_choice_rejects(mistake):
    answer, (d_in, d_out, r), message = BLOCK_SIZE_MISTAKES[mistake]
    rejects(message, checks.check_block_size_choice, answer, d_in=d_in, d_out=d_out, lora_rank=r)


# ------------------------------------------------------------------ the projection, the rank theorem


def _nearest(t, b, sign=1):  # sign=-1: the diagonals q - p = k, the wrong way round
    d_out, d_in = t.shape
    blocks = t.reshape(d_out // b, b, d_in // b, b).transpose(0, 2, 1, 3)
    kernel = np.zeros((d_out // b, d_in // b, b))
    p = np.arange(b)
    for k in range(b):
        kernel[:, :, k] = blocks[:, :, p, (p - sign * k) % b].mean(axis=-1)
    return block_circulant(kernel)


def _first_column(t, b):
    blocks = t.reshape(t.shape[0] // b, b, t.shape[1] // b, b).transpose(0, 2, 1, 3)
    return block_circulant(blocks[:, :, :, 0])


PROJECTION_MISTAKES = {
    "first column copied": (_first_column, "first column into the kernel"),
    "reversed diagonals": (lambda t, b: _nearest(t, b, sign=-1), "q − p"),
    "the package's projection": (lambda t, b: project_block_circulant(t, b), "project_block_circulant\\(\\) is not"),
    "the package's kernel": (
        lambda t, b: block_circulant(best_c3a_kernel(t, b)),
        "best_c3a_kernel\\(\\) is not allowed",
    ),
    "sum instead of mean": (lambda t, b: b * _nearest(t, b), "scaled by b or 1/b"),
    "not block-circulant": (lambda t, b: t, "not block-circulant"),
    "a wrong shape": (lambda t, b: _nearest(t, b)[:4], "should have shape"),
}


def test_c3a_projection_accepts_the_answer():
    for d_out, d_in, b, seed in [(8, 12, 4, 0), (12, 6, 3, 1), (6, 6, 1, 4)]:
        checks.check_c3a_projection(_nearest, d_out=d_out, d_in=d_in, b=b, seed=seed)


@pytest.mark.parametrize("mistake", PROJECTION_MISTAKES, ids=str)
def test_c3a_projection_rejects(mistake):
    answer, message = PROJECTION_MISTAKES[mistake]
    rejects(message, checks.check_c3a_projection, answer, d_out=8, d_in=12, b=4)


def test_block_kernel_with_rank():
    kernel = keep_frequencies(np.random.default_rng(0).standard_normal((2, 3, 4)), [0, 1, 3])
    checks.check_block_kernel_with_rank(kernel, m=2, n=3, b=4, rank=6)
    rejects("rank 6, not 5.*pairs count twice", checks.check_block_kernel_with_rank, kernel, m=2, n=3, b=4, rank=5)
    spectrum = np.zeros((2, 3, 4), dtype=complex)
    spectrum[..., 1] = 1
    rejects("complex", checks.check_block_kernel_with_rank, np.fft.ifft(spectrum, axis=-1), m=2, n=3, b=4, rank=1)
    rejects("should have shape", checks.check_block_kernel_with_rank, kernel[0], m=2, n=3, b=4, rank=6)


# ------------------------------------------------------------------ the explorer task

SLIDER = (96, 64, 48, 32, 24, 16, 12, 8, 6, 4, 3, 2)  # the budget slider's block sizes, cheapest first


def _cheapest_block_size(target, error):
    for b in SLIDER:
        if explorer_state(target, b).c3a_error <= error:
            return b
    return None


def _stops_at_the_first_miss(target, error):  # from the most expensive b up, as if the error grew with b
    best = None
    for b in SLIDER[::-1]:
        if explorer_state(target, b).c3a_error > error:
            return best
        best = b
    return best


def _most_expensive(target, error):  # the smallest b that gets there, not the largest
    return next((b for b in SLIDER[::-1] if explorer_state(target, b).c3a_error <= error), None)


def test_cheapest_block_size_reference_and_checker(capsys):
    assert [_cheapest_block_size("shift-structured", e) for e in (0.25, 0.235, 0.23)] == [64, 48, 2]
    assert _cheapest_block_size("low rank (8)", 0.5) is None  # C3A's error stays above 0.6 at every budget
    checks.check_cheapest_block_size(_cheapest_block_size, "shift-structured", error=0.25)
    checks.check_cheapest_block_size(_cheapest_block_size, "low rank (8)", error=0.5)
    out = capsys.readouterr().out
    assert "b = 64 (576 parameters)" in out and "no budget on the slider" in out


EXPLORER_MISTAKES = {
    "stops at the first budget that misses": (_stops_at_the_first_miss, "b = 3 does not: C3A's error is not monotone"),
    "the most expensive budget that gets there": (_most_expensive, "but a cheaper budget"),
    "a budget that misses": (lambda *a: 96, "above 0.25"),
    "b = 192, not on the slider": (lambda *a: 192, "is not on the budget slider"),
    "None where a budget gets there": (lambda *a: None, "you returned None"),
    "not a number": (lambda *a: "64", "as an integer"),
}


@pytest.mark.parametrize("mistake", EXPLORER_MISTAKES, ids=str)
def test_cheapest_block_size_rejects(mistake):
    answer, message = EXPLORER_MISTAKES[mistake]
    rejects(message, checks.check_cheapest_block_size, answer, "shift-structured", error=0.25)


def test_cheapest_block_size_refuses_a_number_where_none_gets_there():
    rejects("above 0.5", checks.check_cheapest_block_size, lambda *a: 2, "low rank (8)", error=0.5)


def _reshape_only(T, b):  # "blocks" by a reshape alone: each is pieces of rows of several blocks
    d_out, d_in = T.shape
    blocks = T.reshape(d_out // b, d_in // b, b, b)
    p = np.arange(b)[:, None]
    return block_circulant(blocks[:, :, p, (p - np.arange(b)) % b].mean(axis=2))


def _untransposed_index(T, b):  # the (m, b, n, b) reshape indexed as if the block axes came first: it crashes
    d_out, d_in = T.shape
    blocks = T.reshape(d_out // b, b, d_in // b, b)
    kernel = np.zeros((d_out // b, d_in // b, b))
    for k in range(b):
        p = np.arange(b)
        kernel[:, :, k] = blocks[:, p, :, (p - k) % b].mean(axis=1)
    return block_circulant(kernel)


def test_projection_names_blocks_cut_without_the_transpose():
    rejects("your blocks are not T's b × b blocks: T.reshape\\(2, 3, 4, 4\\) alone", checks.check_c3a_projection,
            _reshape_only, d_out=8, d_in=12, b=4)  # fmt: skip
    rejects("failed with ValueError: could not broadcast.*transpose\\(0, 2, 1, 3\\)", checks.check_c3a_projection,
            _untransposed_index, d_out=8, d_in=12, b=4)  # fmt: skip


def test_lora_embedding_refuses_the_package_layer_however_it_is_reached():
    from c3a_tutorial import LoRALinear

    class Subclass(LoRALinear):
        def __init__(self, base_layer, r, alpha):
            super().__init__(torch.nn.Linear(*base_layer.weight.shape), rank=r, alpha=alpha)

    rejects("c3a_tutorial.LoRALinear\\(\\) is not allowed here.*a base class of Subclass", checks.check_lora_embedding,
            Subclass)  # fmt: skip

    class Holder(torch.nn.Module):
        impl = LoRALinear  # held as a class attribute

        def __init__(self, base_layer, r, alpha):
            super().__init__()
            self.inner = Holder.impl(torch.nn.Linear(*base_layer.weight.shape), rank=r, alpha=alpha)

    rejects("LoRALinear\\(\\) is not allowed here.*It is Holder.impl", checks.check_lora_embedding, Holder)
