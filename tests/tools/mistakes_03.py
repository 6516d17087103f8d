"""One typical mistake per autograded exercise of notebook 03, for the autograde tests.

``MISTAKES[grade_id]`` is the whole source of that solution cell with the mistake in it. A submission whose
solution cell is replaced by it must lose exactly the points of the test cell that follows (``..._test``)
and keep every other cell's. ``MESSAGES[grade_id]`` is a fragment of what the checker then says, naming the
mistake. ``tests/course/test_checks_01_03.py`` runs each against its test cell of the stored notebook.
"""

MISTAKES = {
    # LoRA counted with one factor: A (r × d_in) only, forgetting B (d_out × r).
    "nb03_ex1_solution": """\
def same_budget_rank(d_out, d_in, b):
    return (d_out * d_in // b) // d_in
""",
    # The √(d_in·d_out)/r rule (at most half LoRA's budget) where the question asks for the same budget.
    "nb03_ex2_solution": """\
def equal_budget_block_size(d_in, d_out, r):
    ideal = np.sqrt(d_in * d_out) / r
    return min(valid_block_sizes(d_in, d_out), key=lambda b: (abs(np.log(b / ideal)), -b))
""",
    # A block-circulant matrix, but not the nearest: each block's first column copied into the kernel.
    "nb03_ex3_solution": """\
def nearest_block_circulant(T, b):
    d_out, d_in = T.shape
    blocks = T.reshape(d_out // b, b, d_in // b, b).transpose(0, 2, 1, 3)
    return block_circulant(blocks[:, :, :, 0])
""",
    # Frequency blocks filled in order without conjugate pairs, then .real: frequency b − f comes back with f.
    "nb03_ex4_solution": """\
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
}

MESSAGES = {
    "nb03_ex1_solution": "counts only one LoRA factor",
    "nb03_ex2_solution": "is the √(d_in·d_out)/r rule",
    "nb03_ex3_solution": "first column into the kernel",
    "nb03_ex4_solution": "pairs count twice",
}
