"""Notebook 04's exercise checkers: accept the right answer, name the typical wrong ones."""

import pytest
import torch

from c3a_tutorial import block_circulant
from c3a_tutorial.course import checks
from c3a_tutorial.course.checks import nb04_layer as checks_04

# ---- the central exercise: an autograd.Function and a layer around it ----


def _make_function(conj=True, correlate=True, peft_reversal=False, forward_transposed=False):
    """A C3A autograd.Function, with one of the typical mistakes switched on."""

    class Fn(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, w):
            ctx.save_for_backward(x, w)
            m, n, b = w.shape
            X = torch.fft.rfft(x.reshape(-1, n, b), dim=-1)
            W = torch.fft.rfft(w, dim=-1)
            W = W.conj() if forward_transposed else W
            return torch.fft.irfft(torch.einsum("tjf,ijf->tif", X, W), n=b, dim=-1).reshape(-1, m * b)

        @staticmethod
        def backward(ctx, grad_y):
            x, w = ctx.saved_tensors
            m, n, b = w.shape
            G = torch.fft.rfft(grad_y.reshape(-1, m, b), dim=-1)
            X = torch.fft.rfft(x.reshape(-1, n, b), dim=-1)
            W = torch.fft.rfft(w, dim=-1)
            # PEFT's mistake: grad_y's blocks index-reversed before the (right) adjoint; its kernel gradient is right
            G_x = torch.fft.rfft(grad_y.reshape(-1, m, b)[..., (-torch.arange(b)) % b], dim=-1) if peft_reversal else G
            gx = torch.fft.irfft(torch.einsum("tif,ijf->tjf", G_x, W.conj() if conj else W), n=b, dim=-1)
            X = X.conj() if correlate else X
            gw = torch.fft.irfft(torch.einsum("tif,tjf->ijf", G, X), n=b, dim=-1)
            return gx.reshape(-1, n * b), gw

    return Fn


def test_function_checker_accepts_a_right_function(capsys):
    checks_04.check_c3a_function(_make_function())
    assert "gradcheck" in capsys.readouterr().out
    checks_04.check_c3a_function(_make_function(), shapes=((14, 21, 7), (4, 8, 1), (12, 6, 6)), seed=3, tokens=4)


@pytest.mark.parametrize(
    ("mistake", "message"),
    [
        (dict(conj=False), "conjugate"),
        (dict(correlate=False), "correlation"),
        (dict(peft_reversal=True), "PEFT's"),
        (dict(forward_transposed=True), "first \\*row\\*"),
    ],
)
def test_function_checker_names_the_mistake(mistake, message):
    with pytest.raises(checks.ExerciseError, match=message):
        checks_04.check_c3a_function(_make_function(**mistake))


def test_function_checker_misses_nothing_at_b_le_2_only_because_they_are_symmetric():
    # With b ≤ 2 only, a missing conj is invisible: that is why the visible cases use b = 3, 4, 5.
    checks_04.check_c3a_function(_make_function(conj=False), shapes=((4, 6, 2), (3, 3, 1)))
    with pytest.raises(checks.ExerciseError):
        checks_04.check_c3a_function(_make_function(conj=False), shapes=((6, 9, 3),))


def test_function_checker_rejects_non_functions_and_stubs():
    with pytest.raises(checks.ExerciseError, match="subclass of torch.autograd.Function"):
        checks_04.check_c3a_function(lambda x, w: x)

    class Stub(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, w):
            raise NotImplementedError

        @staticmethod
        def backward(ctx, g):
            raise NotImplementedError

    with pytest.raises(checks.ExerciseError, match="not written yet"):
        checks_04.check_c3a_function(Stub)

    class NoBackward(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, w):
            return x

    with pytest.raises(checks.ExerciseError, match="no backward"):
        checks_04.check_c3a_function(NoBackward)


def _make_layer(scale_forward=True, scale_delta=True, merged_adds=False, zero_init=True, freeze=True):
    class Layer(torch.nn.Module):
        def __init__(self, base_layer, block_size, matmul):
            super().__init__()
            self.base_layer = base_layer
            if freeze:
                base_layer.requires_grad_(False)
            d_out, d_in = base_layer.weight.shape
            b = block_size
            kernel = torch.zeros(d_out // b, d_in // b, b, dtype=base_layer.weight.dtype)
            if not zero_init:
                kernel.normal_()
            self.kernel = torch.nn.Parameter(kernel)
            self.scale = 1.0 / d_in
            self.matmul = matmul
            self.merged = False

        def forward(self, x):
            y = self.base_layer(x)
            if self.merged and not merged_adds:
                return y
            return y + (self.scale if scale_forward else 1.0) * self.matmul(x, self.kernel)

        def delta_weight(self):
            return (self.scale if scale_delta else 1.0) * block_circulant(self.kernel)

        @torch.no_grad()
        def merge(self):
            self.base_layer.weight += self.delta_weight()
            self.merged = True

        @torch.no_grad()
        def unmerge(self):
            self.base_layer.weight -= self.delta_weight()
            self.merged = False

    return Layer


def test_module_checker(capsys):
    checks_04.check_c3a_module(_make_layer())
    assert "merge and unmerge" in capsys.readouterr().out
    checks_04.check_c3a_module(_make_layer(), shapes=((10, 15, 5), (16, 8, 8)), seed=2)
    for kwargs, message in [
        (dict(scale_forward=False), "forgets the scale"),
        (dict(scale_delta=False), "delta_weight\\(\\) forgets the scale"),
        (dict(merged_adds=True), "counted twice"),
        (dict(zero_init=False), "start at zero"),
        (dict(freeze=False), "freeze the base layer"),
    ]:
        with pytest.raises(checks.ExerciseError, match=message):
            checks_04.check_c3a_module(_make_layer(**kwargs))
