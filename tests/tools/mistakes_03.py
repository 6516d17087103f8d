"""Typical mistakes for the autograded exercises of notebook 03, for the nbgrader round trip.

The format is ``mistakes_01_02.py``'s: ``MISTAKES[grade_id][name]`` is the whole source of that solution cell with
one mistake, ``MESSAGES[grade_id][name]`` a fragment of what the checker then says. Every exercise has one, and
every rule an exercise enforces has its own: the package helper an exercise names as forbidden
(``lora_rank_for_budget``, ``suggest_block_size``, ``project_block_circulant``), the embedding's lookup (no one-hot
vectors), the ValueError that names the layer, and the linear-nearest block size.
"""


def _lora_embedding(init: str, forward: str, delta: str) -> str:
    """The solution cell of 03 Ex 1 with its initialisation, forward and delta_weight as given."""
    return f"""\
class MyLoRAEmbedding(torch.nn.Module):
    def __init__(self, base_layer, r, alpha):
        super().__init__()
        self.base_layer = base_layer.requires_grad_(False)
        num_embeddings, embedding_dim = base_layer.weight.shape
        dtype = base_layer.weight.dtype
{init}
        self.scale = alpha / r

    def forward(self, ids):
        return {forward}

    def delta_weight(self):
        return {delta}
"""


_INIT = """\
        self.lora_A = torch.nn.Parameter(torch.zeros(r, num_embeddings, dtype=dtype))
        self.lora_B = torch.nn.Parameter(torch.randn(embedding_dim, r, dtype=dtype))"""
_LOOKUP = "self.base_layer(ids) + self.scale * (self.lora_A.T[ids] @ self.lora_B.T)"
_DELTA = "self.scale * (self.lora_B @ self.lora_A).T"

# Section 2's initialisation copied: B = 0 and A Kaiming-uniform. ΔW = 0 and B learns, but the first step moves B,
# which every token's row shares: tokens that were not in the batch change too.
LINEAR_INIT = _lora_embedding(
    """\
        self.lora_A = torch.nn.Parameter(torch.empty(r, num_embeddings, dtype=dtype))
        self.lora_B = torch.nn.Parameter(torch.zeros(embedding_dim, r, dtype=dtype))
        torch.nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))""",
    _LOOKUP,
    _DELTA,
)
# Section 2's delta_weight: B A is (embedding_dim, num_embeddings), a Linear weight's layout, not the table's.
LINEAR_LAYOUT = _lora_embedding(_INIT, _LOOKUP, "self.scale * (self.lora_B @ self.lora_A)")
# The rule: the right numbers through one-hot vectors, num_embeddings numbers per token instead of a lookup.
ONE_HOT = _lora_embedding(
    _INIT,
    "self.base_layer(ids) + self.scale * ((torch.nn.functional.one_hot(ids, self.lora_A.shape[1]).to("
    "self.lora_A.dtype) @ self.lora_A.T) @ self.lora_B.T)",
    _DELTA,
)

MISTAKES = {
    "nb03_ex1_solution": {
        "section 2's init": LINEAR_INIT,
        "a Linear's layout": LINEAR_LAYOUT,
        "one-hot vectors": ONE_HOT,
    },
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
        # Each layer's rank rounded down, then averaged: BERT's layers allow 6 and 9, their totals 8.
        "rounded per layer": """\
def same_budget_rank(shapes, b):
    for d_out, d_in in shapes:
        if d_out % b or d_in % b:
            raise ValueError(f"b = {b} does not divide the layer ({d_out}, {d_in}).")
    ranks = [(d_out * d_in // b) // (d_in + d_out) for d_out, d_in in shapes]
    return sum(ranks) // len(ranks)
""",
        # The totals, but no check of b: // floors a layer b does not divide, and a number comes back.
        "no ValueError": """\
def same_budget_rank(shapes, b):
    return sum(d_out * d_in // b for d_out, d_in in shapes) // sum(d_in + d_out for d_out, d_in in shapes)
""",
        # The rule: the two totals, not the package's one-layer answer.
        "lora_rank_for_budget": """\
def same_budget_rank(shapes, b):
    return min(lora_rank_for_budget(d_out, d_in, b) for d_out, d_in in shapes)
""",
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
    "nb03_ex1_solution": {
        "section 2's init": "which was not in the batch",
        "a Linear's layout": "a Linear weight's layout",
        "one-hot vectors": "one-hot vectors of the ids",
    },
    "nb03_ex2_solution": {"monotone": "C3A's error is not monotone in the budget"},
    "nb03_ex3_solution": {
        "rounded per layer": "did you round per layer and then combine?",
        "no ValueError": "Raise a ValueError that says which layer.",
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
