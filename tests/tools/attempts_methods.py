"""Attempts of a student who wants the points without the work (issue #25): each replaces one solution cell and must
score 0 for that exercise under the real nbgrader (tests/tools/test_nbgrader_roundtrip.py runs them);
tests/course/test_attempts_methods.py runs each against its checker in-process.

Three kinds, per exercise where they apply:
* **package answers**: a one-line answer the checker modules used to ship (``thresholded``, ``reference_lstsq``,
  ...): gone, so the cell fails to import it;
* **package API**: the package's own version of the exercise (``LoRALinear``, PEFT's LoRA ``Embedding``, ``C3ALinear``,
  ``adapter_parameter_groups``, ``nearest_block_size``, ``reverse_kernel``, ``BlockCirculantMatmul``), subclassed,
  held as an attribute, a default argument or a closure, or imported inside;
* **method rules**: the right numbers by the forbidden method, under another library's name (torch), a private
  module, a convolution under another name, a default argument bound before the check, a watch switched off, a
  dummy FFT beside dense work, autograd doing the hand-derived backward.

``message`` is a fragment of the checker's message (compared with line breaks read as spaces); ``None`` where the
cell fails before a checker runs (an import of something that no longer exists).
"""

from tests.tools.nbgrader_course import Mistake

_REMOVED = "from c3a_tutorial.course.checks.{module} import {name}\n"

ATTEMPTS = [
    # ------------------------------------------------------------------ notebook 01
    Mistake(
        "nb01_ex1_solution",
        "package answer singular_for_every_n",
        _REMOVED.format(module="nb01_circulant", name="singular_for_every_n")
        + "from c3a_tutorial.course.viz import PRESET_KERNELS\n"
        "singular_presets = {p for p in PRESET_KERNELS if singular_for_every_n(p)[0]}\n",
    ),
    Mistake(
        "nb01_ex2_solution",
        "package API reverse_kernel",
        """\
def kernel_from_first_row(row):
    from c3a_tutorial.c3a.peft_io import reverse_kernel

    return reverse_kernel(torch.as_tensor(np.asarray(row, dtype=float))).numpy()
""",
        "reverse_kernel() is not allowed here",
    ),
    Mistake(
        "nb01_ex2_solution",
        "reverse_kernel as a default argument",
        """\
def kernel_from_first_row(row, _rev=c3a_tutorial.c3a.peft_io.reverse_kernel):
    return _rev(torch.as_tensor(np.asarray(row, dtype=float))).numpy()
""",
        "reverse_kernel() is not allowed here",
    ),
    Mistake(
        "nb01_ex4_solution",
        "package answer thresholded",
        _REMOVED.format(module="nb01_circulant", name="thresholded")
        + "def low_rank_approximation(c, tol):\n    return thresholded(c, tol)\n",
    ),
    # ------------------------------------------------------------------ notebook 02, exercise 1
    Mistake(
        "nb02_ex1_solution",
        "np.polymul",
        "def fft_convolve(a, b):\n    np.fft.rfft(a)\n    return np.polymul(a, b)\n",
        "numpy.polymul() is not allowed here",
    ),
    Mistake(
        "nb02_ex1_solution",
        "scipy.signal.lfilter",
        """\
def fft_convolve(a, b):
    import scipy.signal

    np.fft.rfft(a)
    return scipy.signal.lfilter(b, [1.0], np.concatenate([a, np.zeros(len(b) - 1)]))
""",
        "scipy.signal.lfilter() is not allowed here",
    ),
    Mistake(
        "nb02_ex1_solution",
        "scipy.signal.fftconvolve",
        "def fft_convolve(a, b):\n    import scipy.signal\n\n    return scipy.signal.fftconvolve(a, b)\n",
        "scipy.signal.fftconvolve() is not allowed here",
    ),
    Mistake(
        "nb02_ex1_solution",
        "torch conv1d",
        """\
def fft_convolve(a, b):
    np.fft.rfft(a)
    signal = torch.as_tensor(a, dtype=torch.float64).reshape(1, 1, -1)
    kernel = torch.as_tensor(b[::-1].copy(), dtype=torch.float64).reshape(1, 1, -1)
    return torch.nn.functional.conv1d(signal, kernel, padding=len(b) - 1).reshape(-1).numpy()
""",
        "conv1d() is not allowed here",
    ),
    Mistake(
        "nb02_ex1_solution",
        "np.convolve as a default argument",
        "def fft_convolve(a, b, _conv=np.convolve):\n    np.fft.rfft(a)\n    return _conv(a, b)\n",
        "numpy.convolve() is not allowed here",
    ),
    Mistake(
        "nb02_ex1_solution",
        "a dummy FFT beside sums by hand",
        """\
def fft_convolve(a, b):
    n = len(a) + len(b) - 1
    np.fft.rfft(a, n)  # the FFT the checker counts; the answer comes from the sums below
    padded = np.concatenate([np.zeros(len(b) - 1), a, np.zeros(len(b) - 1)])
    return np.array([padded[i : i + len(b)] @ b[::-1] for i in range(n)])
""",
        "the FFT does not carry your answer",
    ),
    # ------------------------------------------------------------------ notebook 02, exercise 2
    Mistake(
        "nb02_ex2_solution",
        "package answer reference_lstsq",
        _REMOVED.format(module="nb02_fft", name="reference_lstsq")
        + "def circulant_lstsq(c, y, rtol=1e-10):\n    return reference_lstsq(c, y, rtol)\n",
    ),
    Mistake(
        "nb02_ex2_solution",
        "torch.linalg.pinv",
        """\
def circulant_lstsq(c, y, rtol=1e-10):
    np.fft.rfft(c)
    t = torch.as_tensor(c)
    C = torch.stack([torch.roll(t, j) for j in range(len(c))], dim=1)
    return (torch.linalg.pinv(C, rtol=rtol) @ torch.as_tensor(y)).numpy()
""",
        "torch.linalg.pinv() is not allowed here",
    ),
    Mistake(
        "nb02_ex2_solution",
        "numpy's private pinv",
        """\
def circulant_lstsq(c, y, rtol=1e-10):
    np.fft.rfft(c)
    C = np.stack([np.roll(c, j) for j in range(len(c))], axis=1)
    return np.linalg._linalg.pinv(C, rtol=rtol) @ y
""",
        "numpy.linalg.pinv() is not allowed here",
    ),
    Mistake(
        "nb02_ex2_solution",
        "scipy's private solve_circulant",
        """\
def circulant_lstsq(c, y, rtol=1e-10):
    import scipy.linalg._basic

    np.fft.rfft(c)
    return scipy.linalg._basic.solve_circulant(c, y, singular="lstsq", tol=rtol * np.abs(np.fft.fft(c)).max())
""",
        "scipy.linalg.solve_circulant() is not allowed here",
    ),
    Mistake(
        "nb02_ex2_solution",
        "pinv bound as a default argument",
        """\
def circulant_lstsq(c, y, rtol=1e-10, _pinv=np.linalg.pinv):
    np.fft.rfft(c)
    C = np.stack([np.roll(c, j) for j in range(len(c))], axis=1)
    return _pinv(C, rtol=rtol) @ y
""",
        "numpy.linalg.pinv() is not allowed here",
    ),
    Mistake(
        "nb02_ex2_solution",
        "tracemalloc stopped",
        """\
def circulant_lstsq(c, y, rtol=1e-10):
    import tracemalloc

    tracemalloc.stop()
    c_hat, y_hat = np.fft.rfft(c), np.fft.rfft(y)
    keep = np.abs(c_hat) > rtol * np.abs(c_hat).max()
    x_hat = np.zeros_like(y_hat)
    x_hat[keep] = y_hat[keep] / c_hat[keep]
    return np.fft.irfft(x_hat, n=len(c))
""",
        "tracemalloc.stop()",
    ),
    Mistake(
        "nb02_ex2_solution",
        "a dense torch matrix",
        """\
def circulant_lstsq(c, y, rtol=1e-10):
    C = torch.stack([torch.roll(torch.as_tensor(c), j) for j in range(len(c))], dim=1)  # the dense matrix ...
    c_hat, y_hat = np.fft.rfft(C[:, 0].numpy()), np.fft.rfft(y)  # ... which torch's allocator hides
    keep = np.abs(c_hat) > rtol * np.abs(c_hat).max()
    x_hat = np.zeros_like(y_hat)
    x_hat[keep] = y_hat[keep] / c_hat[keep]
    return np.fft.irfft(x_hat, n=len(c))
""",
        "in one torch tensor of shape (4097, 4097)",
    ),
    # ------------------------------------------------------------------ notebook 02, exercise 3
    Mistake(
        "nb02_ex3_solution",
        "package answer fft_kernel_fit",
        _REMOVED.format(module="nb02_fft", name="fft_kernel_fit")
        + "def fit_kernel(X, Y):\n    return fft_kernel_fit(X, Y)\n",
    ),
    Mistake(
        "nb02_ex3_solution",
        "torch.linalg.lstsq",
        """\
def fit_kernel(X, Y):
    np.fft.rfft(X, axis=1)
    A = torch.cat([torch.stack([torch.roll(torch.as_tensor(x), j) for j in range(len(x))], dim=1) for x in X])
    return torch.linalg.lstsq(A, torch.as_tensor(Y).reshape(-1, 1)).solution.reshape(-1).numpy()
""",
        "torch.linalg.lstsq() is not allowed here",
    ),
    Mistake(
        "nb02_ex3_solution",
        "numpy's private lstsq",
        """\
def fit_kernel(X, Y):
    np.fft.rfft(X, axis=1)
    A = np.concatenate([np.stack([np.roll(x, j) for j in range(len(x))], axis=1) for x in X])
    return np.linalg._linalg.lstsq(A, Y.reshape(-1), rcond=None)[0]
""",
        "numpy.linalg.lstsq() is not allowed here",
    ),
    # ------------------------------------------------------------------ notebook 03
    Mistake(
        "nb03_ex1_solution",
        "a subclass of LoRALinear",
        """\
class MyLoRAEmbedding(LoRALinear):  # the table read as a Linear's weight, the package's LoRA around it
    def __init__(self, base_layer, r, alpha):
        linear = torch.nn.Linear(*base_layer.weight.shape, bias=False)
        super().__init__(linear, rank=r, alpha=alpha)
        self.base_layer = base_layer.requires_grad_(False)
""",
        "c3a_tutorial.LoRALinear() is not allowed here",
    ),
    Mistake(
        "nb03_ex1_solution",
        "a LoRALinear inside",
        """\
class MyLoRAEmbedding(torch.nn.Module):
    def __init__(self, base_layer, r, alpha):
        super().__init__()
        linear = torch.nn.Linear(*base_layer.weight.shape, bias=False)
        self.inner = c3a_tutorial.c3a.layers.LoRALinear(linear, rank=r, alpha=alpha)
        self.base_layer, self.lora_A, self.lora_B = base_layer, self.inner.lora_A, self.inner.lora_B

    def forward(self, ids):
        return self.base_layer(ids) + self.inner(torch.nn.functional.one_hot(ids, self.lora_A.shape[0]).float())

    def delta_weight(self):
        return self.inner.delta_weight()
""",
        "LoRALinear",
    ),
    Mistake(
        "nb03_ex1_solution",
        "PEFT's embedding LoRA inside",
        """\
class MyLoRAEmbedding(torch.nn.Module):
    def __init__(self, base_layer, r, alpha):
        super().__init__()
        from peft import LoraConfig
        from peft.tuners.lora.layer import Embedding

        self.inner = Embedding(base_layer, "default", LoraConfig(r=r, lora_alpha=alpha), r=r, lora_alpha=alpha)
        self.base_layer = base_layer
        self.lora_A = self.inner.lora_embedding_A["default"]
        self.lora_B = self.inner.lora_embedding_B["default"]

    def forward(self, ids):
        return self.inner(ids)

    def delta_weight(self):
        return self.inner.get_delta_weight("default")
""",
        "holds peft.tuners.lora.layer.Embedding",
    ),
    Mistake(
        "nb03_ex2_solution",
        "package answer smallest_good_rank",
        _REMOVED.format(module="nb03_block_circulant", name="smallest_good_rank")
        + "def cheapest_block_size(target, error):\n    return smallest_good_rank(target, 96, error)\n",
    ),
    Mistake(
        "nb03_ex2_solution",
        "the visible answer hard-coded",
        "def cheapest_block_size(target, error):\n    return 64\n",
        "this budget does not get there",
    ),
    Mistake(
        "nb03_ex3_solution",
        "lora_rank_for_budget as a default argument",
        """\
def same_budget_rank(shapes, b, _rank=lora_rank_for_budget):
    return min(_rank(d_out, d_in, b) for d_out, d_in in shapes)
""",
        "lora_rank_for_budget() is not allowed here",
    ),
    Mistake(
        "nb03_ex4_solution",
        "package API nearest_block_size",
        """\
def equal_budget_block_size(d_in, d_out, r):
    from c3a_tutorial.c3a.counting import nearest_block_size

    return nearest_block_size(d_in, d_out, d_in * d_out / (r * (d_in + d_out)))
""",
        "nearest_block_size() is not allowed here",
    ),
    Mistake(
        "nb03_ex4_solution",
        "package answer suggest_block_size from the checker",
        _REMOVED.format(module="nb03_block_circulant", name="suggest_block_size")
        + "def equal_budget_block_size(d_in, d_out, r):\n    return suggest_block_size(d_in, d_out, r)\n",
    ),
    Mistake(
        "nb03_ex5_solution",
        "project_block_circulant as a default argument",
        "def nearest_block_circulant(T, b, _project=project_block_circulant):\n    return _project(T, b)\n",
        "project_block_circulant() is not allowed here",
    ),
    # ------------------------------------------------------------------ notebook 04
    Mistake(
        "nb04_ex1_solution",
        "the package's BlockCirculantMatmul as a class attribute",
        """\
class MyC3AFunction(torch.autograd.Function):
    operator = c3a_tutorial.c3a.block_circulant.BlockCirculantMatmul

    @staticmethod
    def forward(ctx, x, w):
        ctx.save_for_backward(x, w)
        return MyC3AFunction.operator.apply(x, w)

    @staticmethod
    def backward(ctx, grad_y):
        x, w = ctx.saved_tensors
        with torch.enable_grad():
            x, w = x.detach().requires_grad_(), w.detach().requires_grad_()
            y = MyC3AFunction.operator.apply(x, w)
        return torch.autograd.grad(y, (x, w), grad_y)
""",
        "BlockCirculantMatmul() is not allowed here",
    ),
    Mistake(
        "nb04_ex1_solution",
        "dense blocks in NumPy",
        """\
class MyC3AFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, w):
        ctx.save_for_backward(x, w)
        k = w.detach().numpy()
        m, n, b = k.shape
        dense = np.block([[np.stack([np.roll(k[i, j], s) for s in range(b)], axis=1) for j in range(n)]
                          for i in range(m)])
        torch.fft.rfft(x)
        return torch.from_numpy(x.detach().numpy() @ dense.T)  # NumPy's memory: tracemalloc sees it

    @staticmethod
    def backward(ctx, grad_y):
        x, w = ctx.saved_tensors
        k = w.detach().numpy()
        m, n, b = k.shape
        dense = torch.from_numpy(np.block([[np.stack([np.roll(k[i, j], s) for s in range(b)], axis=1)
                                            for j in range(n)] for i in range(m)]))
        blocks = (grad_y.T @ x).reshape(m, b, n, b).permute(0, 2, 1, 3)
        r = torch.arange(b)
        grad_w = torch.stack([blocks[..., r, (r - s) % b].sum(-1) for s in range(b)], dim=-1)
        return grad_y @ dense, grad_w
""",
        "NumPy memory",
    ),
    Mistake(
        "nb04_ex1_solution",
        "dense torch.roll blocks, no FFT",
        """\
def _dense(w):
    m, n, b = w.shape
    rows = [torch.cat([torch.stack([torch.roll(w[i, j], s) for s in range(b)], dim=1) for j in range(n)], dim=1)
            for i in range(m)]
    return torch.cat(rows, dim=0)


class MyC3AFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, w):
        ctx.save_for_backward(x, w)
        return x @ _dense(w).T

    @staticmethod
    def backward(ctx, grad_y):
        x, w = ctx.saved_tensors
        m, n, b = w.shape
        blocks = (grad_y.T @ x).reshape(m, b, n, b).permute(0, 2, 1, 3)
        r = torch.arange(b)
        grad_w = torch.stack([blocks[..., r, (r - s) % b].sum(-1) for s in range(b)], dim=-1)
        return grad_y @ _dense(w), grad_w
""",
        "a dense b × b block",
    ),
    Mistake(
        "nb04_ex1_solution",
        "an FFT forward, the backward left to autograd",
        """\
def _fft_forward(x, w):
    m, n, b = w.shape
    X = torch.fft.rfft(x.reshape(-1, n, b), dim=-1)
    Y = torch.einsum("tjf,ijf->tif", X, torch.fft.rfft(w, dim=-1))
    return torch.fft.irfft(Y, n=b, dim=-1).reshape(-1, m * b)


class MyC3AFunction(torch.autograd.Function):
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
""",
        "it lets autograd derive the gradient",
    ),
    Mistake(
        "nb04_ex1_solution",
        "apply replaced, the backward never runs",
        """\
def _fft_forward(x, w):
    m, n, b = w.shape
    X = torch.fft.rfft(x.reshape(-1, n, b), dim=-1)
    Y = torch.einsum("tjf,ijf->tif", X, torch.fft.rfft(w, dim=-1))
    return torch.fft.irfft(Y, n=b, dim=-1).reshape(-1, m * b)


class MyC3AFunction(torch.autograd.Function):
    apply = staticmethod(_fft_forward)

    @staticmethod
    def forward(ctx, x, w):
        return _fft_forward(x, w)

    @staticmethod
    def backward(ctx, grad_y):
        return None, None
""",
        "your backward never ran",
    ),
    # 04 Ex 2 asks for both weight layouts: each attempt hands the package's layer an nn.Linear view of the base,
    # so that C3ALinear does the work for the transposed (Conv1D-like) layer as well.
    Mistake(
        "nb04_ex2_solution",
        "a subclass of C3ALinear on an nn.Linear view",
        """\
class MyC3ALinear(C3ALinear):
    def __init__(self, base_layer, block_size, matmul=None):
        if not isinstance(base_layer, torch.nn.Linear):
            view = torch.nn.Linear(*base_layer.weight.shape, dtype=base_layer.weight.dtype)
            view.weight = torch.nn.Parameter(base_layer.weight.T)
            view.bias = base_layer.bias
            base_layer = view
        super().__init__(base_layer, block_size=block_size)
""",
        "c3a_tutorial.C3ALinear() is not allowed here",
    ),
    Mistake(
        "nb04_ex2_solution",
        "a C3ALinear inside, transposing for a transposed weight",
        """\
class MyC3ALinear(torch.nn.Module):
    def __init__(self, base_layer, block_size, matmul=None):
        super().__init__()
        self.transposed = not isinstance(base_layer, torch.nn.Linear)
        linear = base_layer
        if self.transposed:
            linear = torch.nn.Linear(*base_layer.weight.shape, dtype=base_layer.weight.dtype)
            linear.weight = torch.nn.Parameter(base_layer.weight.T)
            linear.bias = base_layer.bias
        self.inner = c3a_tutorial.c3a.layers.C3ALinear(linear, block_size=block_size)
        self.base_layer, self.kernel, self.scale = base_layer, self.inner.kernel, self.inner.scale

    def forward(self, x):
        return self.inner(x)

    def delta_weight(self):
        delta = self.inner.delta_weight()
        return delta.T if self.transposed else delta

    def merge(self):
        self.inner.merge()

    def unmerge(self):
        self.inner.unmerge()
""",
        "C3ALinear",
    ),
    # ------------------------------------------------------------------ notebook 05
    Mistake(
        "nb05_ex1_solution",
        "package API adapter_parameter_groups",
        """\
def optimizer_groups(model, lr, head_lr):
    return c3a_tutorial.adapter_parameter_groups(model, lr, head_lr=head_lr)
""",
        "adapter_parameter_groups() is not allowed here",
    ),
    Mistake(
        "nb05_ex2_solution",
        "package answer _energy_rank",
        _REMOVED.format(module="nb05_finetuning", name="_energy_rank") + "def c3a_energy_rank(kernel, fraction=0.9):\n"
        "    return _energy_rank(c3a_tutorial.course.spectral.c3a_singular_values(kernel), fraction)\n",
    ),
    Mistake(
        "nb05_ex2_solution",
        "package API c3a_singular_values as a default argument",
        """\
def c3a_energy_rank(kernel, fraction=0.9, _values=c3a_tutorial.course.spectral.c3a_singular_values):
    energy = _values(kernel) ** 2
    return int(np.argmax(np.cumsum(energy) / energy.sum() >= fraction - 1e-9) + 1)
""",
        "c3a_singular_values() is not allowed here",
    ),
    Mistake(
        "nb05_ex2_solution",
        "dense ΔW by block_circulant, in torch",
        """\
def c3a_energy_rank(kernel, fraction=0.9):
    energy = torch.linalg.svdvals(block_circulant(torch.as_tensor(kernel))).numpy() ** 2
    return int(np.argmax(np.cumsum(energy) / energy.sum() >= fraction - 1e-9) + 1)
""",
        "block_circulant() is not allowed here",
    ),
    Mistake(
        "nb05_ex2_solution",
        "dense ΔW built by hand, in torch",
        """\
def c3a_energy_rank(kernel, fraction=0.9):
    w = torch.as_tensor(kernel)
    m, n, b = w.shape
    k = torch.arange(b)
    dense = w[:, :, (k[:, None] - k[None, :]) % b].permute(0, 2, 1, 3).reshape(m * b, n * b)
    energy = torch.linalg.svdvals(dense).numpy() ** 2
    return int(np.argmax(np.cumsum(energy) / energy.sum() >= fraction - 1e-9) + 1)
""",
        "the budget is 3.0 MiB",
    ),
    Mistake(
        "nb05_ex2_solution",
        "the memory watch switched off",
        """\
def c3a_energy_rank(kernel, fraction=0.9):
    import tracemalloc

    tracemalloc.stop()
    m, n, b = kernel.shape
    k = np.arange(b)
    dense = kernel[:, :, (k[:, None] - k[None, :]) % b].transpose(0, 2, 1, 3).reshape(m * b, n * b)
    energy = np.linalg.svd(dense, compute_uv=False) ** 2
    return int(np.argmax(np.cumsum(energy) / energy.sum() >= fraction - 1e-9) + 1)
""",
        "tracemalloc",
    ),
]
