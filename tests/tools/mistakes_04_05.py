"""Typical wrong answers for the autograded exercises of notebooks 04 and 05 (issues #12 and #21).

``MISTAKES[grade_id]`` is the source of a solution cell as a student might submit it, with that exercise's typical
mistake. The nbgrader autograde test puts it in place of the solution and expects exactly that exercise's test
cell to lose its points and keep every other cell's. Each mistake breaks a rule its checker enforces and names;
``MESSAGES[grade_id]`` is a fragment of that message. ``tests/course/test_checks_05.py`` runs each one against
its checker; ``tests/course/test_checks_04.py`` and ``test_checks_05.py`` hold the other typical mistakes.
"""

# 04, Exercise 1: right numbers, wrong method. The question asks for the FFT route that never builds ΔW and keeps
# only x and w; this Function builds the dense d_out × d_in matrix with block_circulant, keeps it for backward and
# reads the kernel gradient off the dense gradient. It passes gradcheck: only the method rule rejects it.
NB04_EX1_DENSE = """
class MyC3AFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, w):
        dense = block_circulant(w)
        ctx.save_for_backward(x, w, dense)
        return x @ dense.T

    @staticmethod
    def backward(ctx, grad_y):
        x, w, dense = ctx.saved_tensors
        m, n, b = w.shape
        blocks = (grad_y.T @ x).reshape(m, b, n, b).permute(0, 2, 1, 3)
        r = torch.arange(b)
        grad_w = torch.stack([blocks[..., r, (r - k) % b].sum(-1) for k in range(b)], dim=-1)
        return grad_y @ dense, grad_w
"""

# 04, Exercise 2: the transfer missed. The layer finds d_in and d_out from the layer's kind and builds delta_weight()
# in the weight's layout, but merge() adds block_circulant(kernel) as nn.Linear stores it: on a transposed-weight
# layer (GPT-2's Conv1D) that is ΔW where ΔWᵀ belongs, so merging fails there (or, on a square weight, adds the
# wrong matrix). Everything on nn.Linear is right.
NB04_EX2_MERGE_IN_LINEAR_LAYOUT = """
class MyC3ALinear(torch.nn.Module):
    def __init__(self, base_layer, block_size, matmul=MyC3AFunction.apply):
        super().__init__()
        self.base_layer = base_layer.requires_grad_(False)
        self.transposed = not isinstance(base_layer, torch.nn.Linear)
        d_in, d_out = base_layer.weight.shape if self.transposed else base_layer.weight.shape[::-1]
        b = block_size
        if d_out % b or d_in % b:
            raise ValueError(f"block_size {b} must divide d_out = {d_out} and d_in = {d_in}")
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
        delta = self.scale * block_circulant(self.kernel)
        return delta.T if self.transposed else delta

    @torch.no_grad()
    def merge(self):
        self.base_layer.weight += self.scale * block_circulant(self.kernel)
        self.merged = True

    @torch.no_grad()
    def unmerge(self):
        self.base_layer.weight -= self.delta_weight()
        self.merged = False
"""

# 05, Exercise 1: one AdamW group for every trainable parameter, the freshly initialised head included, so the head
# trains at the adapter's learning rate (3.0 for C3A: a thousand times its own).
NB05_EX1_ONE_GROUP = '''
def optimizer_groups(model, lr, head_lr):
    """AdamW's parameter groups: [everything that trains but the head, the head]."""
    scales = {layer.scale for layer in adapter_layers(model).values()}
    s = scales.pop() if scales else 1.0
    return [{"params": [p for p in model.parameters() if p.requires_grad], "lr": lr, "eps": 1e-8 * s}]
'''

# 05, Exercise 2: the energy rank of block_circulant(kernel) from the kernel's spectra. Two typical mistakes:
# rfft's half of the spectrum, so each conjugate pair {f, b − f} counts once where ΔW has it twice; and a strict
# inequality where the question asks for "at least" the fraction. (Self-contained: they do not lean on the
# notebook's energy_rank, so that test_checks_05 can run them on their own.)
NB05_EX2_HALF_SPECTRUM = """
def c3a_energy_rank(kernel, fraction=0.9):
    blocks = np.fft.rfft(kernel, axis=-1).transpose(2, 0, 1)  # f = 0 .. b // 2 only
    energy = np.sort(np.linalg.svd(blocks, compute_uv=False).ravel())[::-1] ** 2
    return int(np.searchsorted(np.cumsum(energy) / energy.sum(), fraction - 1e-9) + 1)
"""

NB05_EX2_STRICT = """
def c3a_energy_rank(kernel, fraction=0.9):
    blocks = np.fft.fft(kernel, axis=-1).transpose(2, 0, 1)
    energy = np.sort(np.linalg.svd(blocks, compute_uv=False).ravel())[::-1] ** 2
    share = np.cumsum(energy) / energy.sum()
    return int(np.argmax(share > fraction + 1e-9) + 1)
"""

MISTAKES = {
    "nb04_ex1_solution": NB04_EX1_DENSE.lstrip("\n"),
    "nb04_ex2_solution": NB04_EX2_MERGE_IN_LINEAR_LAYOUT.lstrip("\n"),
    "nb05_ex1_solution": NB05_EX1_ONE_GROUP.lstrip("\n"),
    "nb05_ex2_solution": {
        "half spectrum": NB05_EX2_HALF_SPECTRUM.lstrip("\n"),
        "strict": NB05_EX2_STRICT.lstrip("\n"),
    },
}
# A fragment of what the checker says about each mistake (feedback must contain it): the rule that was broken.
MESSAGES = {
    "nb04_ex1_solution": "which builds the dense",
    "nb04_ex2_solution": "on a transposed-weight layer",
    "nb05_ex1_solution": "share a group with the adapter's",
    "nb05_ex2_solution": {"half spectrum": "one frequency of each conjugate pair", "strict": "A strict comparison (>)"},
}
