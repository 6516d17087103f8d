"""Typical mistakes for the autograded exercises of notebook 03, for the nbgrader round trip.

The format is ``mistakes_01_02.py``'s: ``MISTAKES[grade_id][name]`` is the whole source of that solution cell with
one mistake, ``MESSAGES[grade_id][name]`` a fragment of what the checker then says. Every exercise has one, and
every rule an exercise enforces has its own: the package helper an exercise names as forbidden
(``lora_rank_for_budget``, ``suggest_block_size``, ``project_block_circulant``) and the linear-nearest block size.
"""

LORA_B_RANDOM = """\
class MyLoRALinear(torch.nn.Module):
    def __init__(self, base_layer, r, alpha):
        super().__init__()
        self.base_layer = base_layer.requires_grad_(False)
        d_out, d_in = base_layer.weight.shape
        dtype = base_layer.weight.dtype
        self.lora_A = torch.nn.Parameter(torch.empty(r, d_in, dtype=dtype))
        self.lora_B = torch.nn.Parameter(torch.randn(d_out, r, dtype=dtype))  # B random: ΔW is not 0 at the start
        torch.nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))
        self.scale = alpha / r

    def forward(self, x):
        return self.base_layer(x) + self.scale * ((x @ self.lora_A.T) @ self.lora_B.T)

    def delta_weight(self):
        return self.scale * (self.lora_B @ self.lora_A)
"""

MISTAKES = {
    "nb03_ex1_solution": {"B random": LORA_B_RANDOM},
    "nb03_ex2_solution": {
        # C3A's error taken as monotone in the budget: from the most expensive b up, stop at the first that misses.
        "monotone": """\
def cheapest_block_size(target, error):
    best = None
    for b in (2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96):
        if explorer_state(target, b).c3a_error > error:
            return best
        best = b
    return best
""",
    },
    "nb03_ex3_solution": {
        # LoRA counted with one factor: A (r × d_in) only, forgetting B (d_out × r).
        "one factor": "def same_budget_rank(d_out, d_in, b):\n    return (d_out * d_in // b) // d_in\n",
        # The rule: the two parameter counts, not the package's answer.
        "lora_rank_for_budget": (
            "def same_budget_rank(d_out, d_in, b):\n    return lora_rank_for_budget(d_out, d_in, b)\n"
        ),
    },
    "nb03_ex4_solution": {
        # The rule: nearest on a log scale. Nearest on a linear scale passes every case but the separating one.
        "linear nearness": """\
def equal_budget_block_size(d_in, d_out, r):
    ideal = d_in * d_out / (r * (d_in + d_out))
    return min(valid_block_sizes(d_in, d_out), key=lambda b: (abs(b - ideal), -b))
""",
        # The rule: not the package's suggest_block_size.
        "suggest_block_size": """\
def equal_budget_block_size(d_in, d_out, r):
    return suggest_block_size(d_in, d_out, r)
""",
    },
    "nb03_ex5_solution": {
        # A block-circulant matrix, but not the nearest: each block's first column copied into the kernel.
        "first column": """\
def nearest_block_circulant(T, b):
    d_out, d_in = T.shape
    blocks = T.reshape(d_out // b, b, d_in // b, b).transpose(0, 2, 1, 3)
    return block_circulant(blocks[:, :, :, 0])
""",
        # The rule: derive the projection, do not call the package's.
        "project_block_circulant": """\
def nearest_block_circulant(T, b):
    return project_block_circulant(T, b)
""",
    },
    "nb03_ex6_solution": {
        # Frequency blocks filled in order without conjugate pairs, then .real: frequency b − f comes back with f.
        "no conjugate pairs": """\
def kernel_with_rank(m, n, b, rank):
    rng = np.random.default_rng(0)
    spectra = np.zeros((m, n, b), dtype=complex)
    left = rank
    for f in range(b):
        take = min(min(m, n), left)
        spectra[:, :, f] = rng.standard_normal((m, take)) @ rng.standard_normal((take, n))
        left -= take
    return np.fft.ifft(spectra, axis=-1).real
""",
    },
}

MESSAGES = {
    "nb03_ex1_solution": {"B random": "B does not start at zero"},
    "nb03_ex2_solution": {"monotone": "C3A's error is not monotone in the budget"},
    "nb03_ex3_solution": {
        "one factor": "counts only one LoRA factor",
        "lora_rank_for_budget": "lora_rank_for_budget() is not allowed here",
    },
    "nb03_ex4_solution": {
        "linear nearness": "on a linear scale (|b − ideal|), not on a log scale",
        "suggest_block_size": "suggest_block_size() is not allowed here",
    },
    "nb03_ex5_solution": {
        "first column": "first column into the kernel",
        "project_block_circulant": "project_block_circulant() is not allowed here",
    },
    "nb03_ex6_solution": {"no conjugate pairs": "pairs count twice"},
}
