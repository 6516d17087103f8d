"""Each exercise checker accepts the right answer and names a typical wrong one in its message."""

import re
from pathlib import Path

import nbformat
import numpy as np
import pytest
import scipy.linalg

from c3a_tutorial.course import checks
from c3a_tutorial.course.checks import common, nb02_fft
from tests.tools.mistakes_01_02 import MESSAGES, MISTAKES

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"

# ------------------------------------------------------------------ notebook 01


def test_check_circulant_builder_accepts_a_right_answer(capsys):
    checks.check_circulant_builder(scipy.linalg.circulant)
    assert "Correct" in capsys.readouterr().out


def test_check_circulant_builder_names_the_transposed_answer():
    with pytest.raises(checks.ExerciseError, match="kernel in the first row; it belongs in the first column"):
        checks.check_circulant_builder(lambda c: scipy.linalg.circulant(c).T)


def test_check_circulant_builder_rejects_other_wrong_answers():
    with pytest.raises(checks.ExerciseError, match="shape"):
        checks.check_circulant_builder(lambda c: np.outer(c, c)[:-1])
    with pytest.raises(checks.ExerciseError, match="return"):
        checks.check_circulant_builder(lambda c: None)
    # Right first column, but the later columns shift the wrong way.
    with pytest.raises(checks.ExerciseError, match="shifted down by j"):
        checks.check_circulant_builder(lambda c: np.stack([np.roll(c, -j) for j in range(len(c))], axis=1))


def test_check_circulant_builder_hidden_cases_use_other_kernels(capsys):
    seen = []

    def spy(c):
        seen.append(len(c))
        return scipy.linalg.circulant(c)

    checks.check_circulant_builder(spy, n=7, seed=11)
    assert seen == [7, 7, 14]
    # An answer hard-coded for the visible case (n = 5, seed 0) fails a hidden one.
    visible = {tuple(c): scipy.linalg.circulant(c) for c in common.sample_kernels()}
    with pytest.raises(checks.ExerciseError):
        checks.check_circulant_builder(lambda c: visible.get(tuple(c), np.zeros((len(c), len(c)))), n=7, seed=11)
    checks.check_circulant_builder(lambda c: visible.get(tuple(c), np.zeros((len(c), len(c)))))


def _kernel_with_rank(n, rank):
    half = np.zeros(n // 2 + 1)
    half[0] = rank % 2
    half[1 : 1 + rank // 2] = 1.0
    if n % 2 == 0 and rank == n:
        half[0] = 1.0
    return np.fft.irfft(half, n=n)


@pytest.mark.parametrize("n", [1, 2, 7, 8, 9, 12])
def test_check_kernel_with_rank_accepts_every_n(n, capsys):
    checks.check_kernel_with_rank(_kernel_with_rank, n=n)
    checks.check_kernel_with_rank(_kernel_with_rank, n=n, ranks=[0, n])
    assert "Correct" in capsys.readouterr().out


def test_check_kernel_with_rank_names_the_mistakes():
    # irfft without n=: right for even n, one sample short for odd n.
    def no_length(n, rank):
        half = np.zeros(n // 2 + 1)
        half[0] = rank % 2
        half[1 : 1 + rank // 2] = 1.0
        return np.fft.irfft(half)

    with pytest.raises(checks.ExerciseError, match="irfft guessed the length.*n=n"):
        checks.check_kernel_with_rank(no_length, n=7)

    # Forgetting that k = n/2 is its own partner: full rank fails for even n only.
    def no_nyquist(n, rank):
        half = np.zeros(n // 2 + 1)
        half[0] = rank % 2
        half[1 : 1 + rank // 2] = 1.0
        return np.fft.irfft(half, n=n)

    checks.check_kernel_with_rank(no_nyquist, n=7)
    with pytest.raises(checks.ExerciseError, match="rank = 8: circulant.c. has rank 7.*k = n/2 = 4"):
        checks.check_kernel_with_rank(no_nyquist, n=8)

    # A spectrum zeroed without its conjugate partners gives a complex kernel.
    def one_sided(n, rank):
        spectrum = np.zeros(n, dtype=complex)
        spectrum[:rank] = 1
        return np.fft.ifft(spectrum)

    with pytest.raises(checks.ExerciseError, match="conjugate pairs"):
        checks.check_kernel_with_rank(one_sided, n=8)
    with pytest.raises(checks.ExerciseError, match="length n = 8"):
        checks.check_kernel_with_rank(lambda n, rank: np.ones((n, 1)), n=8)
    with pytest.raises(checks.ExerciseError, match="has rank 8, not|circulant.c. has rank 8"):
        checks.check_kernel_with_rank(lambda n, rank: np.random.default_rng(0).standard_normal(n), n=8, ranks=[4])


def _low_rank(c, tol):
    spectrum = np.fft.fft(c)
    spectrum[np.abs(spectrum) <= tol] = 0
    return np.fft.ifft(spectrum).real


@pytest.mark.parametrize(("n", "seed"), [(12, 0), (9, 5), (20, 6), (4, 1)])
def test_check_low_rank_approximation_accepts_the_threshold(n, seed, capsys):
    checks.check_low_rank_approximation(_low_rank, n=n, seed=seed)
    assert "Correct" in capsys.readouterr().out


def test_check_low_rank_approximation_accepts_any_right_answer():
    # Shrinking the kept coefficients a little keeps the rank and stays within tol: also right.
    def shrunk(c, tol):
        spectrum = np.fft.fft(c)
        keep = np.abs(spectrum) > tol
        spectrum = np.where(keep, spectrum * (1 - 1e-3 * tol / np.maximum(np.abs(spectrum), 1e-300)), 0)
        return np.fft.ifft(spectrum).real

    checks.check_low_rank_approximation(shrunk)


def test_check_low_rank_approximation_names_the_mistakes():
    with pytest.raises(checks.ExerciseError, match="you zeroed entries of the kernel c"):
        checks.check_low_rank_approximation(lambda c, tol: np.where(np.abs(c) > tol, c, 0))

    def ortho(c, tol):
        spectrum = np.fft.fft(c, norm="ortho")
        spectrum[np.abs(spectrum) <= tol] = 0
        return np.fft.ifft(spectrum, norm="ortho").real

    with pytest.raises(checks.ExerciseError, match="norm='ortho'.*cancel"):
        checks.check_low_rank_approximation(ortho)

    def keeps_too_much(c, tol):
        spectrum = np.fft.fft(c)
        spectrum[np.abs(spectrum) <= tol / 2] = 0
        return np.fft.ifft(spectrum).real

    with pytest.raises(checks.ExerciseError, match="rank .* is enough"):
        checks.check_low_rank_approximation(keeps_too_much)

    def drops_too_much(c, tol):
        spectrum = np.fft.fft(c)
        spectrum[np.abs(spectrum) <= 2 * tol] = 0
        return np.fft.ifft(spectrum).real

    with pytest.raises(checks.ExerciseError, match="> tol"):
        checks.check_low_rank_approximation(drops_too_much)


# ------------------------------------------------------------------ notebook 02


def _fft_matvec(c, x):
    return np.fft.irfft(np.fft.rfft(c) * np.fft.rfft(x), n=len(c))


def test_check_fft_matvec():
    checks.check_fft_matvec(_fft_matvec)
    checks.check_fft_matvec(_fft_matvec, lengths=(5, 9, 12), seed=21)
    with pytest.raises(checks.ExerciseError, match="pass the length: np.fft.irfft"):
        checks.check_fft_matvec(lambda c, x: np.fft.irfft(np.fft.rfft(c) * np.fft.rfft(x)))
    with pytest.raises(checks.ExerciseError, match="circular \\*correlation\\*"):
        checks.check_fft_matvec(lambda c, x: np.fft.irfft(np.conj(np.fft.rfft(c)) * np.fft.rfft(x), n=len(c)))
    with pytest.raises(checks.ExerciseError, match="imaginary part"):
        checks.check_fft_matvec(lambda c, x: np.fft.ifft(np.fft.fft(c) * np.fft.fft(x)) + 1j)
    # Even lengths only would let the missing n= through: the hidden case's odd lengths catch it.
    checks.check_fft_matvec(lambda c, x: np.fft.irfft(np.fft.rfft(c) * np.fft.rfft(x)), lengths=(6, 16))
    with pytest.raises(checks.ExerciseError, match="pass the length"):
        checks.check_fft_matvec(lambda c, x: np.fft.irfft(np.fft.rfft(c) * np.fft.rfft(x)), lengths=(9,), seed=21)


def _lstsq(c, y, rtol=1e-10):
    c_hat, y_hat = np.fft.rfft(c), np.fft.rfft(y)
    keep = np.abs(c_hat) > rtol * np.abs(c_hat).max()
    x_hat = np.zeros_like(y_hat)
    x_hat[keep] = y_hat[keep] / c_hat[keep]
    return np.fft.irfft(x_hat, n=len(c))


def test_spectrum_kernel_is_singular_exactly_where_asked():
    for n in (7, 8):
        for zeros in ((), (0,), (1,), (n // 2,)):
            c = nb02_fft.spectrum_kernel(n, zeros, seed=3)
            magnitudes = np.abs(np.fft.fft(c))
            zero_set = {k % n for z in zeros for k in (z, -z)}
            assert {k for k in range(n) if magnitudes[k] < 1e-12} == zero_set
            assert np.linalg.matrix_rank(scipy.linalg.circulant(c)) == n - len(zero_set)
            assert all(0.5 - 1e-12 <= magnitudes[k] <= 1.5 + 1e-12 for k in range(n) if k not in zero_set)


def test_check_circulant_lstsq(capsys):
    checks.check_circulant_lstsq(_lstsq)
    checks.check_circulant_lstsq(_lstsq, lengths=(5, 12), seed=22)
    checks.check_circulant_lstsq(lambda c, y: np.linalg.pinv(scipy.linalg.circulant(c)) @ y)
    assert "Correct" in capsys.readouterr().out


@pytest.mark.filterwarnings("ignore:divide by zero:RuntimeWarning", "ignore:invalid value:RuntimeWarning")
def test_check_circulant_lstsq_names_the_mistakes():
    with pytest.raises(checks.ExerciseError, match="divided by a DFT coefficient of c that is zero"):
        checks.check_circulant_lstsq(lambda c, y: np.fft.irfft(np.fft.rfft(y) / np.fft.rfft(c), n=len(c)))
    with pytest.raises(checks.ExerciseError, match="you solved Cᵀ x = y"):
        checks.check_circulant_lstsq(lambda c, y: _lstsq(c[-np.arange(len(c)) % len(c)], y))
    with pytest.raises(checks.ExerciseError, match="pass the length"):
        checks.check_circulant_lstsq(
            lambda c, y: np.fft.irfft(np.fft.rfft(_lstsq(c, y)))  # drops a sample for odd n
        )

    def not_shortest(c, y):  # a least-squares solution plus a null-space component
        x = _lstsq(c, y)
        return x + 1.0 if abs(np.sum(c)) < 1e-9 else x

    with pytest.raises(checks.ExerciseError, match="not the shortest"):
        checks.check_circulant_lstsq(not_shortest)


def _fit(X, Y):
    X_hat, Y_hat = np.fft.rfft(X, axis=1), np.fft.rfft(Y, axis=1)
    return np.fft.irfft((Y_hat * X_hat.conj()).sum(axis=0) / (np.abs(X_hat) ** 2).sum(axis=0), n=X.shape[1])


def test_check_kernel_fit(capsys):
    checks.check_kernel_fit(_fit)
    checks.check_kernel_fit(_fit, lengths=(5, 10), tokens=3, seed=31)
    checks.check_kernel_fit(lambda X, Y: nb02_fft.least_squares_kernel(X, Y))
    assert "Correct" in capsys.readouterr().out
    # The reference really is the least-squares kernel: its normal equations hold.
    X, Y = next(nb02_fft._fit_cases(3, (6,), 5))
    c = nb02_fft.least_squares_kernel(X, Y)
    A = np.concatenate([scipy.linalg.circulant(x) for x in X])
    np.testing.assert_allclose(A.T @ (A @ c - Y.reshape(-1)), 0, atol=1e-10)


def test_check_kernel_fit_names_the_mistakes():
    def ratios(X, Y):
        return np.fft.irfft((np.fft.rfft(Y, axis=1) / np.fft.rfft(X, axis=1)).mean(axis=0), n=X.shape[1])

    def no_conj(X, Y):
        X_hat, Y_hat = np.fft.rfft(X, axis=1), np.fft.rfft(Y, axis=1)
        return np.fft.irfft((Y_hat * X_hat).sum(axis=0) / (np.abs(X_hat) ** 2).sum(axis=0), n=X.shape[1])

    with pytest.raises(checks.ExerciseError, match="averaged the per-token ratios"):
        checks.check_kernel_fit(ratios)
    with pytest.raises(checks.ExerciseError, match="missing a conj"):
        checks.check_kernel_fit(no_conj)
    with pytest.raises(checks.ExerciseError, match="first token only"):
        checks.check_kernel_fit(lambda X, Y: np.fft.irfft(np.fft.rfft(Y[0]) / np.fft.rfft(X[0]), n=X.shape[1]))
    with pytest.raises(checks.ExerciseError, match="irfft guessed the length"):
        checks.check_kernel_fit(lambda X, Y: np.fft.irfft(np.fft.rfft(_fit(X, Y))))
    with pytest.raises(checks.ExerciseError, match="shape"):
        checks.check_kernel_fit(lambda X, Y: np.zeros_like(X))
    with pytest.raises(checks.ExerciseError, match="squared error"):
        checks.check_kernel_fit(lambda X, Y: _fit(X, Y) + 0.1)


# ------------------------------------------------------------------ notebooks 01 and 02: the exercise cells


def _grade_cells(name):
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    return {c.metadata["nbgrader"]["grade_id"]: c for c in nb.cells if "nbgrader" in c.metadata}


def _run(*sources):
    namespace = {"np": np, "checks": checks}
    for source in sources:
        exec(compile(source, "<cell>", "exec"), namespace)  # noqa: S102 - the course's own cells


@pytest.mark.parametrize("grade_id", sorted(MISTAKES))
def test_notebook_exercise_cells_pass_and_the_named_mistake_fails(grade_id):
    cells = _grade_cells("01_circulant_matrices.ipynb" if grade_id.startswith("nb01") else "02_fft_identity.ipynb")
    test_id = grade_id.replace("_solution", "_test")
    assert test_id in cells, f"{grade_id} has no test cell {test_id}"
    solution, test = cells[grade_id].source, cells[test_id].source
    assert "### BEGIN HIDDEN TESTS" in test and test.count("checks.check_") >= 2
    _run(solution, test)  # the stored solution passes its visible and hidden cases
    with pytest.raises(checks.ExerciseError, match=re.escape(MESSAGES[grade_id])):
        _run(MISTAKES[grade_id], test)


def test_hard_coding_the_visible_case_fails_a_hidden_test():
    cells = _grade_cells("01_circulant_matrices.ipynb")
    test = cells["nb01_ex2_test"].source
    visible, hidden = test.split("### BEGIN HIDDEN TESTS")
    answers = {}

    def record(n, rank):
        kernel = _kernel_with_rank(n, rank)
        answers[n, rank] = kernel
        return kernel

    namespace = {"np": np, "checks": checks, "kernel_with_rank": record}
    exec(visible, namespace)  # noqa: S102
    namespace["kernel_with_rank"] = lambda n, rank: answers.get((n, rank), np.zeros(n))
    exec(visible, namespace)  # noqa: S102 - the lookup table passes what it has seen ...
    with pytest.raises(checks.ExerciseError):
        exec(hidden, namespace)  # noqa: S102 - ... and fails what it has not


@pytest.mark.parametrize("name", ["01_circulant_matrices.ipynb", "02_fft_identity.ipynb"])
def test_notebook_grade_cells_follow_nbgrader(name):
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    prefix = name[:2]
    cells = nb.cells
    ids = []
    for index, cell in enumerate(cells):
        meta = cell.metadata.get("nbgrader")
        text = cell.source
        if meta is None:
            # Only grade cells may carry the markers, and markdown never quotes them verbatim.
            assert "BEGIN SOLUTION" not in text and "END SOLUTION" not in text, f"{name} cell {index}"
            assert "HIDDEN TESTS" not in text, f"{name} cell {index}"
            continue
        ids.append(meta["grade_id"])
        assert meta["grade_id"].startswith(f"nb{prefix}_") and meta["schema_version"] == 3
        if cell.cell_type == "code" and meta["solution"]:
            assert meta == {**meta, "grade": False, "locked": False, "task": False}
            assert "### BEGIN SOLUTION" in text and "### END SOLUTION" in text
            following = cells[index + 1].metadata.get("nbgrader", {})
            assert following.get("grade_id") == meta["grade_id"].replace("_solution", "_test"), (
                f"{name}: {meta['grade_id']} is not followed by its test cell"
            )
            assert following["grade"] and following["locked"] and not following["solution"]
            assert isinstance(following["points"], int) and following["points"] > 0
        elif cell.cell_type == "markdown":
            assert meta["grade"] and meta["solution"] and not meta["locked"] and meta["points"] > 0
            assert meta["grade_id"].endswith("_answer")
    assert len(ids) == len(set(ids))
    assert sum(i.endswith("_answer") for i in ids) >= 1, f"{name} has no written question"
    assert "NotImplementedError" in cells[0].source


# ------------------------------------------------------------------ notebook 03


def test_check_same_budget_rank():
    checks.check_same_budget_rank(4, d_out=3072, d_in=768, b=128)  # 18432 // 3840
    with pytest.raises(checks.ExerciseError, match="more than C3A's 18,432"):
        checks.check_same_budget_rank(5, d_out=3072, d_in=768, b=128)
    with pytest.raises(checks.ExerciseError, match="counts only one LoRA factor"):
        checks.check_same_budget_rank(24, d_out=3072, d_in=768, b=128)
    with pytest.raises(checks.ExerciseError, match="a larger rank does too"):
        checks.check_same_budget_rank(2, d_out=3072, d_in=768, b=128)
    with pytest.raises(checks.ExerciseError, match="round \\*down\\*"):
        checks.check_same_budget_rank(4.8, d_out=3072, d_in=768, b=128)


def test_check_block_size_choice_accepts_the_rule_asked_for():
    # 1024 -> 4096 at LoRA r = 16: equal budget 1024·4096 / (16·5120) = 51.2 -> b = 64; the sqrt rule 2048/16 -> 128.
    checks.check_block_size_choice(64, d_in=1024, d_out=4096, lora_rank=16)
    checks.check_block_size_choice(128, d_in=1024, d_out=4096, lora_rank=16, rule="sqrt")
    with pytest.raises(checks.ExerciseError, match="is the √\\(d_in·d_out\\)/r rule .*40% of LoRA's 81,920"):
        checks.check_block_size_choice(128, d_in=1024, d_out=4096, lora_rank=16)
    with pytest.raises(checks.ExerciseError, match="not the common divisor nearest 128.0"):
        checks.check_block_size_choice(64, d_in=1024, d_out=4096, lora_rank=16, rule="sqrt")
    with pytest.raises(checks.ExerciseError, match="does not divide both"):
        checks.check_block_size_choice(320, d_in=1024, d_out=4096, lora_rank=16)
    with pytest.raises(checks.ExerciseError, match="not the common divisor nearest 51.2"):
        checks.check_block_size_choice(16, d_in=1024, d_out=4096, lora_rank=16)
    with pytest.raises(ValueError, match="rule="):
        checks.check_block_size_choice(64, d_in=1024, d_out=4096, lora_rank=16, rule="nope")


def test_check_c3a_projection():
    from c3a_tutorial.course.fitting import project_block_circulant

    checks.check_c3a_projection(project_block_circulant, d_out=8, d_in=12, b=4)

    def first_column(t, b):
        from c3a_tutorial import block_circulant

        blocks = t.reshape(t.shape[0] // b, b, t.shape[1] // b, b).transpose(0, 2, 1, 3)
        return block_circulant(blocks[:, :, :, 0])

    def wrong_direction(t, b):  # kernel[k] = mean of T[p, (p + k) mod b]: the diagonals q − p ≡ k
        from c3a_tutorial import block_circulant
        from c3a_tutorial.course.fitting import best_c3a_kernel

        return block_circulant(best_c3a_kernel(t, b)[..., (-np.arange(b)) % b])

    with pytest.raises(checks.ExerciseError, match="first column into the kernel"):
        checks.check_c3a_projection(first_column, d_out=8, d_in=12, b=4)
    with pytest.raises(checks.ExerciseError, match="q − p"):
        checks.check_c3a_projection(wrong_direction, d_out=8, d_in=8, b=4)
    with pytest.raises(checks.ExerciseError, match="not block-circulant"):
        checks.check_c3a_projection(lambda t, b: t, d_out=8, d_in=12, b=4)
    with pytest.raises(checks.ExerciseError, match="shape"):
        checks.check_c3a_projection(lambda t, b: t[:4], d_out=8, d_in=12, b=4)
    with pytest.raises(checks.ExerciseError, match="not the nearest"):
        checks.check_c3a_projection(lambda t, b: 2 * project_block_circulant(t, b), d_out=8, d_in=12, b=4)


def test_check_block_kernel_with_rank():
    from c3a_tutorial.course.spectral import keep_frequencies

    kernel = keep_frequencies(np.random.default_rng(0).standard_normal((2, 3, 4)), [0, 1, 3])
    checks.check_block_kernel_with_rank(kernel, m=2, n=3, b=4, rank=6)
    with pytest.raises(checks.ExerciseError, match="rank 6, not 5.*pairs count twice"):
        checks.check_block_kernel_with_rank(kernel, m=2, n=3, b=4, rank=5)
    spectrum = np.zeros((2, 3, 4), dtype=complex)
    spectrum[..., 1] = 1
    with pytest.raises(checks.ExerciseError, match="complex"):
        checks.check_block_kernel_with_rank(np.fft.ifft(spectrum, axis=-1), m=2, n=3, b=4, rank=1)
    with pytest.raises(checks.ExerciseError, match="shape"):
        checks.check_block_kernel_with_rank(kernel[0], m=2, n=3, b=4, rank=6)


def _nb03_cells():
    import json
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "notebooks" / "03_block_circulant_layers.ipynb"
    cells = json.loads(path.read_text())["cells"]
    by_id = {c["metadata"]["nbgrader"]["grade_id"]: "".join(c["source"]) for c in cells if "nbgrader" in c["metadata"]}
    setup = (
        "import numpy as np\nfrom c3a_tutorial import block_circulant, valid_block_sizes\n"
        "from c3a_tutorial.course import checks\n"
    )
    return by_id, setup


@pytest.mark.parametrize("exercise", [1, 2, 3, 4])
def test_nb03_test_cells_pass_the_solution_and_fail_the_typical_mistake(exercise):
    import re

    from tests.tools.mistakes_03 import MESSAGES, MISTAKES

    by_id, setup = _nb03_cells()
    solution, test = by_id[f"nb03_ex{exercise}_solution"], by_id[f"nb03_ex{exercise}_test"]
    assert "### BEGIN HIDDEN TESTS" in test and "### BEGIN SOLUTION" in solution
    namespace = {}
    exec(setup + solution + "\n" + test, namespace)  # the stored solution passes, hidden cases included
    namespace = {}
    with pytest.raises(checks.ExerciseError, match=re.escape(MESSAGES[f"nb03_ex{exercise}_solution"])):
        exec(setup + MISTAKES[f"nb03_ex{exercise}_solution"] + "\n" + test, namespace)


def test_nb03_hidden_tests_catch_an_answer_hard_coded_for_the_visible_case():
    by_id, setup = _nb03_cells()
    visible, hidden = by_id["nb03_ex1_test"].split("### BEGIN HIDDEN TESTS")
    hard_coded = "def same_budget_rank(d_out, d_in, b):\n    return 4\n"
    exec(setup + hard_coded + visible, {})  # passes the visible case ...
    with pytest.raises(checks.ExerciseError):
        exec(setup + hard_coded + by_id["nb03_ex1_test"], {})  # ... not the hidden ones
