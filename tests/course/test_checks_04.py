"""Notebook 04's exercise checkers: accept the right answer, name the typical wrong ones."""

import contextlib
import re

import numpy as np
import pytest
import torch

import c3a_tutorial
from c3a_tutorial import block_circulant
from c3a_tutorial.course import checks
from c3a_tutorial.course.checks import nb04_layer as checks_04


@contextlib.contextmanager
def names(pattern):
    """The checker fails, and its message (wrapped for nbgrader validate: compared with its lines joined) says
    ``pattern`` (a regular expression)."""
    with pytest.raises(checks.ExerciseError) as err:
        yield
    flat = " ".join(str(err.value).split())
    assert re.search(pattern, flat), flat


# ---- the central exercise: an autograd.Function and a layer around it ----


def _make_function(
    conj=True,
    correlate=True,
    peft_reversal=False,
    forward_transposed=False,
    forward_offset=0.0,
    irfft_n=True,
    grad_x_factor=1.0,
    grad_w_roll=0,
    float32=False,
):
    """A C3A autograd.Function, with one of the typical mistakes switched on (each differs from the right
    answer in one way)."""

    class Fn(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, w):
            ctx.save_for_backward(x, w)
            m, n, b = w.shape
            dtype = x.dtype
            X = torch.fft.rfft((x.float() if float32 else x).reshape(-1, n, b), dim=-1)
            W = torch.fft.rfft(w.float() if float32 else w, dim=-1)
            W = W.conj() if forward_transposed else W
            Y = torch.einsum("tjf,ijf->tif", X, W)
            y = torch.fft.irfft(Y, n=b, dim=-1) if irfft_n else torch.fft.irfft(Y, dim=-1)
            return y.reshape(x.shape[0], -1).to(dtype) + forward_offset

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
            return grad_x_factor * gx.reshape(-1, n * b), gw.roll(grad_w_roll, dims=-1)

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
    with names(message):
        checks_04.check_c3a_function(_make_function(**mistake))


@pytest.mark.parametrize(
    ("mistake", "message"),
    [
        # one test example of each kind of near miss: if the checker's tolerance were loosened past ~1e-7, or
        # its forward shape check dropped, one of these would be accepted or named wrongly
        (dict(forward_offset=1e-7), "but not equal to it in float64"),
        (dict(float32=True), "computes in single precision"),
        (dict(irfft_n=False), "Did you pass n=b to irfft"),  # odd b: irfft without n gives 2F − 2 samples
        (dict(grad_x_factor=3.0), "grad_x differs from grad_y @ ΔW"),  # a stray factor b (b = 3)
        (dict(grad_w_roll=1), "grad_w differs from autograd's"),  # off by one sample
    ],
)
def test_function_checker_rejects_answers_one_step_from_right(mistake, message):
    with names(message):
        checks_04.check_c3a_function(_make_function(**mistake))


def test_a_near_miss_is_caught_by_the_tolerance_alone(monkeypatch):
    """The forward offset of 1e-7 passes gradcheck (finite differences do not see a constant): only ATOL stops it."""
    from c3a_tutorial.course.checks import guard

    monkeypatch.setattr(guard, "_originals", {})  # the guard off: this test mutates the checker on purpose
    monkeypatch.setattr(checks_04, "ATOL", 1e-6)
    checks_04.check_c3a_function(_make_function(forward_offset=1e-7))


# ---- the method, not only the numbers: no dense ΔW, only x and w kept (issue #21)


def _dense_kernel_grad(grad_dense, m, n, b):
    """∂L/∂w from ∂L/∂ΔW: entry k of kernel (i, j) sits at (r, c) of block (i, j) with r − c ≡ k (mod b)."""
    blocks = grad_dense.reshape(m, b, n, b).permute(0, 2, 1, 3)
    r = torch.arange(b)
    return torch.stack([blocks[..., r, (r - k) % b].sum(-1) for k in range(b)], dim=-1)


def _by_hand(w):
    m, n, b = w.shape
    r = torch.arange(b)
    return w[..., (r[:, None] - r[None, :]) % b].permute(0, 2, 1, 3).reshape(m * b, n * b)


def _make_dense(build=block_circulant, save_dense=True, stash=False):
    """Right numbers, wrong method: the dense ΔW, built by ``build``, then GEMMs."""

    class Dense(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, w):
            dense = build(w)
            if stash:
                ctx.dense = dense
                ctx.save_for_backward(x, w)
            elif save_dense:
                ctx.save_for_backward(x, w, dense)
            else:
                ctx.save_for_backward(x, w)
            return x @ dense.T

        @staticmethod
        def backward(ctx, grad_y):
            x, w = ctx.saved_tensors[:2]
            dense = ctx.dense if stash else ctx.saved_tensors[2] if save_dense else build(w)
            m, n, b = w.shape
            return grad_y @ dense, _dense_kernel_grad(grad_y.T @ x, m, n, b)

    return Dense


def test_a_dense_function_is_correct_but_refused():
    dense = _make_dense(_by_hand, save_dense=False)
    x = torch.randn(5, 12, dtype=torch.float64, requires_grad=True)
    w = torch.randn(2, 3, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(dense.apply, (x, w))  # the numbers are right: only the method is wrong
    with names("your forward builds a tensor of shape"):
        checks_04.check_c3a_function(dense)


@pytest.mark.parametrize(
    ("function", "message"),
    [
        (_make_dense(lambda w: block_circulant(w)), r"called block_circulant\(…\), which builds the dense"),
        (_make_dense(lambda w: c3a_tutorial.block_circulant(w)), "called block_circulant"),
        (_make_dense(lambda w: c3a_tutorial.circulant(w).permute(0, 2, 1, 3).flatten(2)), "called circulant"),
        (_make_dense(_by_hand), r"keeps a tensor of shape \(6, 9\) for backward"),
        (_make_dense(_by_hand, stash=True), r"keeps a tensor of shape \(6, 9\)"),
        (
            _make_dense(_by_hand, save_dense=False),
            r"forward builds a tensor of shape \(64, 64\)",
        ),
    ],
)
def test_dense_functions_are_refused_with_the_rule(function, message):
    with names(message):
        checks_04.check_c3a_function(function)


def test_scipy_and_the_package_operator_are_refused_too():
    import scipy.linalg

    class Scipy(_make_function()):
        @staticmethod
        def forward(ctx, x, w):
            ctx.save_for_backward(x, w)
            scipy.linalg.circulant(w[0, 0].detach().numpy())
            return _make_function().forward(ctx, x, w)

    with names("called circulant"):
        checks_04.check_c3a_function(Scipy)

    class Package(_make_function()):
        @staticmethod
        def forward(ctx, x, w):
            ctx.save_for_backward(x, w)
            return c3a_tutorial.block_circulant_matmul(x, w)

    with names("the package's own C3A operator"):
        checks_04.check_c3a_function(Package)
    # and every stand-in is gone afterwards
    assert c3a_tutorial.block_circulant is block_circulant
    assert scipy.linalg.circulant(np.arange(3.0))[1, 0] == 1.0


def test_a_dense_backward_after_an_fft_forward_is_refused():
    right = _make_function()

    class DenseBackward(right):
        @staticmethod
        def backward(ctx, grad_y):
            x, w = ctx.saved_tensors
            return grad_y @ _by_hand(w), right.backward(ctx, grad_y)[1]

    with names("your backward builds a tensor"):
        checks_04.check_c3a_function(DenseBackward)


class _FirstTwo:
    """A ctx whose saved_tensors are the first two of another's."""

    def __init__(self, ctx):
        self.saved_tensors = ctx.saved_tensors[:2]


def test_saving_more_than_x_and_w_is_refused():
    right = _make_function()

    class SavesSpectra(right):
        @staticmethod
        def forward(ctx, x, w):
            m, n, b = w.shape
            X = torch.fft.rfft(x.reshape(-1, n, b), dim=-1)
            W = torch.fft.rfft(w, dim=-1)
            ctx.save_for_backward(x, w, X)
            return torch.fft.irfft(torch.einsum("tjf,ijf->tif", X, W), n=b, dim=-1).reshape(-1, m * b)

        @staticmethod
        def backward(ctx, grad_y):
            ctx.saved_tensors  # noqa: B018 - unpacked here as the learner would; right's backward reads x, w
            return right.backward(_FirstTwo(ctx), grad_y)

    with names("saves more than x and w"):
        checks_04.check_c3a_function(SavesSpectra)

    class SavesViews(right):  # x reshaped and w: still only x and w
        @staticmethod
        def forward(ctx, x, w):
            y = right.forward(ctx, x, w)
            ctx.save_for_backward(x.reshape(x.shape), w)
            return y

    checks_04.check_c3a_function(SavesViews)


def test_function_checker_misses_nothing_at_b_le_2_only_because_they_are_symmetric():
    # With b ≤ 2 only, a missing conj is invisible: that is why the visible cases use b = 3, 4, 5.
    checks_04.check_c3a_function(_make_function(conj=False), shapes=((4, 6, 2), (3, 3, 1)))
    with pytest.raises(checks.ExerciseError):
        checks_04.check_c3a_function(_make_function(conj=False), shapes=((6, 9, 3),))


def test_function_checker_rejects_non_functions_and_stubs():
    with names("subclass of torch.autograd.Function"):
        checks_04.check_c3a_function(lambda x, w: x)

    class Stub(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, w):
            raise NotImplementedError

        @staticmethod
        def backward(ctx, g):
            raise NotImplementedError

    with names("not written yet"):
        checks_04.check_c3a_function(Stub)

    class NoBackward(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, w):
            return x

    with names("no backward"):
        checks_04.check_c3a_function(NoBackward)


def _make_layer(
    scale_forward=True,
    scale_delta=True,
    merged_adds=False,
    zero_init=True,
    freeze=True,
    grid_transposed=False,
    scale_by_d_out=False,
    flatten_output=False,
    float32_kernel=False,
    delta_transposed=False,
    forward_offset=0.0,
    float32_adapter=False,
    dims_from_axes=False,
    merge_linear_layout=False,
    unmerge_restores=True,
    check_divisible="both",
    error_names_dims=True,
):
    """A C3A layer with one typical mistake switched on (each differs from the right layer in one way). The right
    layer tells the two layouts apart by kind: nn.Linear stores (d_out, d_in), any other base (d_in, d_out)."""

    class Layer(torch.nn.Module):
        def __init__(self, base_layer, block_size, matmul):
            super().__init__()
            self.base_layer = base_layer
            if freeze:
                base_layer.requires_grad_(False)
            self.transposed = not isinstance(base_layer, torch.nn.Linear)
            rows, cols = base_layer.weight.shape
            d_out, d_in = (cols, rows) if self.transposed and not dims_from_axes else (rows, cols)
            b = block_size
            if (check_divisible == "both" and (d_out % b or d_in % b)) or (check_divisible == "d_out" and d_out % b):
                raise ValueError(f"block_size {b} must divide d_out = {d_out} and d_in = {d_in}" if error_names_dims
                                 else "block_size must divide the layer's dimensions")  # fmt: skip
            grid = (d_in // b, d_out // b) if grid_transposed else (d_out // b, d_in // b)
            kernel = torch.zeros(*grid, b, dtype=torch.float32 if float32_kernel else base_layer.weight.dtype)
            if not zero_init:
                kernel.normal_()
            self.kernel = torch.nn.Parameter(kernel)
            self.scale = 1.0 / (d_out if scale_by_d_out else d_in)
            self.matmul = matmul
            self.merged = False

        def forward(self, x):
            y = self.base_layer(x)
            if self.merged and not merged_adds:
                return y
            if flatten_output:
                y = y.reshape(-1, y.shape[-1])
                x = x.reshape(-1, x.shape[-1])
            if float32_adapter:  # exact at a zero kernel, off by ~1e-7 once the kernel is not zero
                return y + self.scale * self.matmul(x.float(), self.kernel.float()).to(x.dtype)
            return y + (self.scale if scale_forward else 1.0) * self.matmul(x, self.kernel) + forward_offset

        def delta_weight(self):
            delta = (self.scale if scale_delta else 1.0) * block_circulant(self.kernel)
            return delta.T if self.transposed != delta_transposed else delta

        @torch.no_grad()
        def merge(self):
            delta = self.scale * block_circulant(self.kernel) if merge_linear_layout else self.delta_weight()
            self.base_layer.weight += delta
            self.merged = True

        @torch.no_grad()
        def unmerge(self):
            if unmerge_restores:
                self.base_layer.weight -= self.delta_weight()
            self.merged = False

    return Layer


def test_module_checker(capsys):
    checks_04.check_c3a_module(_make_layer())
    assert "on nn.Linear and on a transposed-weight layer" in capsys.readouterr().out
    checks_04.check_c3a_module(_make_layer(), shapes=((10, 15, 5), (16, 8, 8), (6, 6, 2)), seed=2)


@pytest.mark.parametrize(
    ("mistake", "message"),
    [
        (dict(scale_forward=False), "forgets the scale"),
        (dict(scale_delta=False), r"delta_weight\(\) forgets the scale"),
        (dict(merged_adds=True), "counted twice"),
        (dict(zero_init=False), "start at zero"),
        (dict(freeze=False), "freeze the base layer"),
        (dict(grid_transposed=True), r"the kernel has shape \(3, 2, 4\)"),
        (dict(scale_by_d_out=True), "it should be 1/d_in"),
        (dict(flatten_output=True), r"your layer returns \(6, 8\)"),
        (dict(float32_kernel=True), "create it with the weight's dtype"),
        (dict(forward_offset=1e-8), "at zero kernel the output must equal"),
        (dict(float32_adapter=True), "computes in single precision"),  # a tolerance of 1e-7 would pass it
        # The transfer: a layer that stores its weight (d_in, d_out).
        (dict(dims_from_axes=True), r"on a transposed-weight layer .*the kernel has shape \(3, 2, 4\).*Which axis"),
        (dict(merge_linear_layout=True), r"on a transposed-weight layer .*merge\(\) failed with RuntimeError"),
        (dict(delta_transposed=True), r"on nn.Linear .*delta_weight\(\) is laid out \(d_in, d_out\)"),
        (dict(unmerge_restores=False), r"unmerge\(\) must take ΔW out again"),
        (dict(check_divisible="none"), "accepted a block size that does not divide d_in"),
        (dict(check_divisible="d_out"), "accepted a block size that does not divide d_in"),
        (dict(error_names_dims=False), "name both dimensions"),
    ],
)
def test_module_checker_rejects_layers_one_step_from_right(mistake, message):
    with names(message):
        checks_04.check_c3a_module(_make_layer(**mistake))


@pytest.mark.parametrize(
    ("mistake", "message"),
    [
        (dict(delta_transposed=True), r"on nn.Linear .*delta_weight\(\) is laid out \(d_in, d_out\)"),
        (dict(merge_linear_layout=True), r"on a transposed-weight layer .*merge\(\) added ΔW laid out \(d_out, d_in\)"),
    ],
)
def test_a_layout_mistake_is_named_on_a_square_layer(mistake, message):
    """A square weight has the same shape either way: only the values show which layout was used."""
    with names(message):
        checks_04.check_c3a_module(_make_layer(**mistake), shapes=((6, 6, 2),))


def test_the_checkers_transposed_layer_behaves_as_gpt2s_conv1d():
    conv1d = pytest.importorskip("transformers.pytorch_utils").Conv1D
    ours, theirs = checks_04.TransposedLinear(6, 9).double(), conv1d(9, 6).double()
    theirs.load_state_dict(ours.state_dict())
    x = torch.randn(2, 3, 6, dtype=torch.float64)
    assert ours.weight.shape == theirs.weight.shape == (6, 9) and (ours.nf, ours.nx) == (theirs.nf, theirs.nx)
    assert torch.equal(ours(x), theirs(x))


def test_the_solution_shape_works_on_gpt2s_conv1d():
    conv1d = pytest.importorskip("transformers.pytorch_utils").Conv1D
    Layer = _make_layer()
    layer = Layer(conv1d(8, 12).double(), 4, c3a_tutorial.block_circulant_matmul)
    assert tuple(layer.kernel.shape) == (2, 3, 4) and layer.delta_weight().shape == (12, 8)


# ------------------------------------------------------------------ issue #25: the method, not only the numbers


def _fft_forward(x, w):
    m, n, b = w.shape
    X = torch.fft.rfft(x.reshape(-1, n, b), dim=-1)
    return torch.fft.irfft(torch.einsum("tjf,ijf->tif", X, torch.fft.rfft(w, dim=-1)), n=b, dim=-1).reshape(-1, m * b)


def test_irfft_without_n_at_odd_b_gets_the_hint_not_a_raw_error():
    right = _make_function()

    class NoLength(right):
        @staticmethod
        def forward(ctx, x, w):
            m, n, b = w.shape
            ctx.save_for_backward(x, w)
            Y = torch.einsum("tjf,ijf->tif", torch.fft.rfft(x.reshape(-1, n, b), dim=-1), torch.fft.rfft(w, dim=-1))
            return torch.fft.irfft(Y, dim=-1).reshape(-1, m * b)

    with names(r"your forward (failed with RuntimeError|returns shape).* Yours has no n=.*b = 3"):
        checks_04.check_c3a_function(NoLength)


def test_a_backward_left_to_autograd_is_refused():
    class Replaced(torch.autograd.Function):  # apply replaced: autograd differentiates the FFTs, backward never runs
        apply = staticmethod(_fft_forward)

        @staticmethod
        def forward(ctx, x, w):
            return _fft_forward(x, w)

        @staticmethod
        def backward(ctx, grad_y):
            return None, None

    with names("your backward never ran"):
        checks_04.check_c3a_function(Replaced)

    class Recomputed(torch.autograd.Function):  # backward hands the recomputed forward to autograd
        @staticmethod
        def forward(ctx, x, w):
            ctx.save_for_backward(x, w)
            return _fft_forward(x, w)

        @staticmethod
        def backward(ctx, grad_y):
            x, w = ctx.saved_tensors
            with torch.enable_grad():
                x, w = x.detach().requires_grad_(), w.detach().requires_grad_()
                return torch.autograd.grad(_fft_forward(x, w), (x, w), grad_y)

    with names("torch.autograd.grad\\(\\) is not allowed here: it lets autograd derive the gradient"):
        checks_04.check_c3a_function(Recomputed)


def test_the_package_operator_held_as_a_class_attribute_is_refused():
    from c3a_tutorial.c3a.block_circulant import BlockCirculantMatmul

    right = _make_function()

    class Held(right):
        operator = BlockCirculantMatmul

    with names("BlockCirculantMatmul\\(\\) is not allowed here.*It is Held.operator"):
        checks_04.check_c3a_function(Held)


def test_a_dummy_fft_beside_dense_numpy_is_refused():
    right = _make_function()

    class NumpyDense(right):
        @staticmethod
        def forward(ctx, x, w):
            ctx.save_for_backward(x, w)
            k = w.detach().numpy()
            m, n, b = k.shape
            dense = np.block([[np.stack([np.roll(k[i, j], s) for s in range(b)], axis=1) for j in range(n)]
                              for i in range(m)])  # fmt: skip
            torch.fft.rfft(x)
            return torch.from_numpy(x.detach().numpy() @ dense.T)

    with names("your forward took .* MiB of NumPy memory"):
        checks_04.check_c3a_function(NumpyDense)


def test_the_success_message_claims_only_what_the_watches_see(capsys):
    checks_04.check_c3a_function(_make_function())
    out = capsys.readouterr().out
    assert "no torch call returned a tensor as large as ΔW" in out and "no d_out × d_in matrix is ever built" not in out


def test_the_layer_may_not_be_the_package_layer():
    from c3a_tutorial import C3ALinear

    class Subclass(C3ALinear):
        def __init__(self, base_layer, block_size, matmul=None):
            super().__init__(base_layer, block_size=block_size)

    with names("C3ALinear\\(\\) is not allowed here.*a base class of Subclass"):
        checks_04.check_c3a_module(Subclass)
