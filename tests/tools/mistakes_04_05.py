"""Typical wrong answers for the autograded exercises of notebooks 04 and 05 (issue #12).

``MISTAKES[grade_id]`` is the source of a solution cell as a student might submit it, with that exercise's typical
mistake. The nbgrader autograde test puts it in place of the solution and expects exactly that exercise's test
cell to lose its points and keep every other cell's. Each mistake is one the checker names; ``MESSAGES[grade_id]``
is a fragment of its message. ``tests/course/test_checks_05.py`` runs each one against its checker.
"""

# 04, Exercise 1: the backward applies C(w) instead of C(w)ᵀ — no conj on the kernel spectrum (PEFT-like: invisible
# for b ≤ 2, caught at b = 3, 4, 5).
NB04_EX1_MISSING_CONJ = """
class MyC3AFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, w):
        m, n, b = w.shape
        ctx.save_for_backward(x, w)
        X = torch.fft.rfft(x.reshape(-1, n, b), dim=-1)
        W = torch.fft.rfft(w, dim=-1)
        return torch.fft.irfft(torch.einsum("tjf,ijf->tif", X, W), n=b, dim=-1).reshape(-1, m * b)

    @staticmethod
    def backward(ctx, grad_y):
        x, w = ctx.saved_tensors
        m, n, b = w.shape
        G = torch.fft.rfft(grad_y.reshape(-1, m, b), dim=-1)
        X = torch.fft.rfft(x.reshape(-1, n, b), dim=-1)
        W = torch.fft.rfft(w, dim=-1)
        grad_x = torch.fft.irfft(torch.einsum("tif,ijf->tjf", G, W), n=b, dim=-1).reshape(-1, n * b)
        grad_w = torch.fft.irfft(torch.einsum("tif,tjf->ijf", G, X.conj()), n=b, dim=-1)
        return grad_x, grad_w
"""

# 04, Exercise 2: the scale is forgotten in delta_weight (so merge adds d_in times too much).
NB04_EX2_FORGOTTEN_SCALE = """
class MyC3ALinear(torch.nn.Module):
    def __init__(self, base_layer, block_size, matmul=MyC3AFunction.apply):
        super().__init__()
        self.base_layer = base_layer.requires_grad_(False)
        d_out, d_in = base_layer.weight.shape
        b = block_size
        self.kernel = torch.nn.Parameter(torch.zeros(d_out // b, d_in // b, b, dtype=base_layer.weight.dtype))
        self.scale = 1.0 / d_in
        self.matmul = matmul
        self.merged = False

    def forward(self, x):
        y = self.base_layer(x)
        if self.merged:
            return y
        flat = x.reshape(-1, x.shape[-1])
        return y + self.scale * self.matmul(flat, self.kernel).reshape(*x.shape[:-1], -1)

    def delta_weight(self):
        return block_circulant(self.kernel)

    @torch.no_grad()
    def merge(self):
        self.base_layer.weight += self.delta_weight()
        self.merged = True

    @torch.no_grad()
    def unmerge(self):
        self.base_layer.weight -= self.delta_weight()
        self.merged = False
"""

# 05, Exercise 1: the energy is taken as Σ sᵢ instead of Σ sᵢ² (the squared Frobenius norm).
NB05_EX1_NOT_SQUARED = '''
def energy_rank(s, fraction=0.9):
    """The smallest k such that the k largest singular values hold `fraction` of sum(s**2)."""
    values = np.sort(np.abs(np.asarray(s, dtype=float)))[::-1]
    cumulative = np.cumsum(values) / values.sum()
    return int(np.searchsorted(cumulative, fraction - 1e-12) + 1)
'''

MISTAKES = {
    "nb04_ex1_solution": NB04_EX1_MISSING_CONJ.lstrip("\n"),
    "nb04_ex2_solution": NB04_EX2_FORGOTTEN_SCALE.lstrip("\n"),
    "nb05_ex1_solution": NB05_EX1_NOT_SQUARED.lstrip("\n"),
}
# A fragment of what the checker says about each mistake (feedback must contain it).
MESSAGES = {
    "nb04_ex1_solution": "multiply by the *conjugate* kernel spectrum",
    "nb04_ex2_solution": "delta_weight() forgets the scale",
    "nb05_ex1_solution": "counting the singular values themselves",
}
