"""Notebook 03's checkers: LoRA from scratch against the package's LoRALinear and PEFT's conventions; the budget and
block-size exercises with their forbidden helpers; the projection; the rank construction; the explorer task. Each
typical wrong answer (A zero, B random, the scale α instead of α/r, transposed factors, the linear-nearest block
size, a one-factor count, an off-by-one rank...) is rejected by name."""

import math

import numpy as np
import pytest
import torch

from c3a_tutorial import block_circulant, lora_rank_for_budget, suggest_block_size, valid_block_sizes
from c3a_tutorial.course import checks
from c3a_tutorial.course.explorer import explorer_state
from c3a_tutorial.course.fitting import best_c3a_kernel, project_block_circulant
from c3a_tutorial.course.spectral import keep_frequencies

from .rejecting import rejects

# ------------------------------------------------------------------ LoRA from scratch


class Lora(torch.nn.Module):
    """The reference answer; the mistakes below change one thing each."""

    def __init__(self, base_layer, r, alpha):
        super().__init__()
        self.base_layer = base_layer.requires_grad_(False)
        d_out, d_in = base_layer.weight.shape
        dtype = base_layer.weight.dtype
        self.lora_A = torch.nn.Parameter(torch.empty(r, d_in, dtype=dtype))
        self.lora_B = torch.nn.Parameter(torch.zeros(d_out, r, dtype=dtype))
        torch.nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))
        self.scale = alpha / r

    def forward(self, x):
        return self.base_layer(x) + self.scale * ((x @ self.lora_A.T) @ self.lora_B.T)

    def delta_weight(self):
        return self.scale * (self.lora_B @ self.lora_A)


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"d_out": 10, "d_in": 48, "r": 3, "alpha": 8.0, "seed": 1},
     {"d_out": 32, "d_in": 16, "r": 8, "alpha": 16.0, "seed": 2, "dtype": torch.float64}],
)  # fmt: skip
def test_lora_layer_accepts_the_answer(kwargs, capsys):
    checks.check_lora_layer(Lora, **kwargs)
    assert capsys.readouterr().out.startswith("Correct")


def test_the_lora_checkers_conventions_are_peft_s():
    """The checker's reference is LoRALinear; here PEFT itself: its lora_A/lora_B shapes, B = 0, A within ±1/√d_in,
    the scale lora_alpha / r, and the same output as the reference answer given the same factors."""
    peft = pytest.importorskip("peft")
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(48, 10))
    wrapped = peft.get_peft_model(model, peft.LoraConfig(r=4, lora_alpha=12, target_modules=["0"]))
    layer = wrapped.base_model.model[0]
    A, B = layer.lora_A["default"].weight, layer.lora_B["default"].weight
    assert tuple(A.shape) == (4, 48) and tuple(B.shape) == (10, 4) and torch.count_nonzero(B) == 0
    assert float(A.detach().abs().max()) <= 1 / math.sqrt(48) and layer.scaling["default"] == 12 / 4
    ours = Lora(torch.nn.Linear(48, 10), 4, 12.0)
    with torch.no_grad():
        ours.base_layer.weight.copy_(layer.base_layer.weight)
        ours.base_layer.bias.copy_(layer.base_layer.bias)
        ours.lora_A.copy_(A)
        ours.lora_B.copy_(torch.randn(10, 4))
        B.copy_(ours.lora_B)
        x = torch.randn(5, 48)
        torch.testing.assert_close(ours(x), wrapped(x))


class AZero(Lora):
    def __init__(self, *args):
        super().__init__(*args)
        torch.nn.init.zeros_(self.lora_A)


class BRandom(Lora):
    def __init__(self, *args):
        super().__init__(*args)
        torch.nn.init.normal_(self.lora_B)


class ScaleAlpha(Lora):
    def __init__(self, base_layer, r, alpha):
        super().__init__(base_layer, r, alpha)
        self.scale = alpha


class NoScale(Lora):
    def __init__(self, base_layer, r, alpha):
        super().__init__(base_layer, r, alpha)
        self.scale = 1.0


class Transposed(torch.nn.Module):
    def __init__(self, base_layer, r, alpha):
        super().__init__()
        self.base_layer = base_layer.requires_grad_(False)
        d_out, d_in = base_layer.weight.shape
        self.lora_A = torch.nn.Parameter(torch.empty(d_in, r))
        self.lora_B = torch.nn.Parameter(torch.zeros(r, d_out))
        torch.nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))
        self.scale = alpha / r

    def forward(self, x):
        return self.base_layer(x) + self.scale * ((x @ self.lora_A) @ self.lora_B)


class DefaultKaiming(Lora):  # kaiming_uniform_ with a = 0: uniform on ±√6/√d_in, √6 times too wide
    def __init__(self, *args):
        super().__init__(*args)
        torch.nn.init.kaiming_uniform_(self.lora_A)


class Gaussian(Lora):
    def __init__(self, *args):
        super().__init__(*args)
        torch.nn.init.normal_(self.lora_A)


class NotFrozen(Lora):
    def __init__(self, *args):
        super().__init__(*args)
        self.base_layer.requires_grad_(True)


class UpdateOnly(Lora):
    def forward(self, x):
        return self.scale * ((x @ self.lora_A.T) @ self.lora_B.T)


class DeltaTransposed(Lora):
    def delta_weight(self):
        return self.scale * (self.lora_A.T @ self.lora_B.T)


class NoDelta(Lora):
    delta_weight = None


class Float32Always(Lora):
    def __init__(self, base_layer, r, alpha):
        super().__init__(base_layer, r, alpha)
        self.lora_A = torch.nn.Parameter(self.lora_A.detach().float())
        self.lora_B = torch.nn.Parameter(self.lora_B.detach().float())


LORA_MISTAKES = {
    "A zero": (AZero, {}, "A starts at zero"),
    "B random": (BRandom, {}, "B does not start at zero"),
    "scale alpha instead of alpha / r": (ScaleAlpha, {}, "scaled by alpha = 12; LoRA scales ΔW = B A by alpha / r = 3"),
    "a missing scale": (NoScale, {}, "scaled by no scale = 1"),
    "transposed factors": (Transposed, {}, "lora_A has shape \\(64, 4\\), the transpose of PEFT's convention"),
    "kaiming with a = 0": (DefaultKaiming, {}, "kaiming_uniform_\\(A, a=math.sqrt\\(5\\)\\)"),
    "gaussian A": (Gaussian, {}, "uniformly on ±1/√d_in"),
    "base not frozen": (NotFrozen, {}, "base layer is still trainable"),
    "the update without the base": (UpdateOnly, {}, "at initialisation your layer's output differs"),
    "delta_weight transposed": (DeltaTransposed, {}, "delta_weight\\(\\) has shape \\(64, 6\\)"),
    "no delta_weight": (NoDelta, {}, "not callable|no delta_weight"),
    "float32 factors on a float64 layer": (Float32Always, {"dtype": torch.float64}, "create them with the base"),
}


@pytest.mark.parametrize("mistake", LORA_MISTAKES, ids=str)
def test_lora_layer_rejects(mistake):
    cls, kwargs, message = LORA_MISTAKES[mistake]
    if cls is NoDelta:
        with pytest.raises((checks.ExerciseError, TypeError)):
            checks.check_lora_layer(cls, **kwargs)
        return
    rejects(message, checks.check_lora_layer, cls, **kwargs)


# ------------------------------------------------------------------ counting and choosing b


def _same_budget_rank(d_out, d_in, b):
    return (d_out * d_in // b) // (d_in + d_out)


def test_same_budget_rank():
    checks.check_same_budget_rank(_same_budget_rank, d_out=3072, d_in=768, b=128)
    checks.check_same_budget_rank(lambda *a: float(_same_budget_rank(*a)), d_out=3072, d_in=768, b=128)
    rejects("more than C3A's 18,432", checks.check_same_budget_rank, lambda *a: 5, d_out=3072, d_in=768, b=128)
    rejects("counts only one LoRA factor", checks.check_same_budget_rank, lambda *a: 24, d_out=3072, d_in=768, b=128)
    rejects("a larger rank does too", checks.check_same_budget_rank, lambda *a: 2, d_out=3072, d_in=768, b=128)
    rejects("round \\*down\\*", checks.check_same_budget_rank, lambda *a: 4.8, d_out=3072, d_in=768, b=128)
    rejects(
        "lora_rank_for_budget\\(\\) is not allowed here",
        checks.check_same_budget_rank,
        lambda d_out, d_in, b: lora_rank_for_budget(d_out, d_in, b),
        d_out=3072,
        d_in=768,
        b=128,
    )


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


def test_lora_layer_refuses_the_package_layer_however_it_is_reached():
    from c3a_tutorial import LoRALinear

    class Subclass(LoRALinear):
        def __init__(self, base_layer, r, alpha):
            super().__init__(base_layer, rank=r, alpha=alpha)

    rejects("c3a_tutorial.LoRALinear\\(\\) is not allowed here.*a base class of Subclass", checks.check_lora_layer,
            Subclass)  # fmt: skip

    class Holder(torch.nn.Module):
        impl = LoRALinear  # held as a class attribute

        def __init__(self, base_layer, r, alpha):
            super().__init__()
            self.inner = Holder.impl(base_layer, rank=r, alpha=alpha)

    rejects("LoRALinear\\(\\) is not allowed here.*It is Holder.impl", checks.check_lora_layer, Holder)
