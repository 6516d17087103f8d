"""The exercise cells of notebooks 01–03 as stored: each test cell (visible and hidden cases) passes with the stored
solution, fails with each typical mistake of ``tests/tools/mistakes_*.py`` and names it, and fails an answer
hard-coded for the visible case. Run in-process, after the notebook's own import cell, in seconds; the nbgrader
round trip (tests/tools/) runs the same submissions through the real nbgrader."""

import re
from pathlib import Path

import nbformat
import pytest

from c3a_tutorial.course import checks
from c3a_tutorial.tools import assignments
from tests.tools.nbgrader_course import flat, load_mistakes

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
NAMES = {"01": "01_circulant_matrices.ipynb", "02": "02_fft_identity.ipynb", "03": "03_block_circulant_layers.ipynb"}
MISTAKES = [m for m in load_mistakes() if m.grade_id[2:4] in NAMES]


def _notebook(prefix: str):
    return nbformat.read(NOTEBOOKS / NAMES[prefix], as_version=4)


def _cells(prefix: str) -> dict[str, str]:
    return {c.metadata["nbgrader"]["grade_id"]: c.source for c in _notebook(prefix).cells if "nbgrader" in c.metadata}


def _namespace(prefix: str) -> dict:
    """A fresh namespace after the notebook's import cell (its IPython magics dropped)."""
    imports = next(
        c.source for c in _notebook(prefix).cells if c.cell_type == "code" and "import c3a_tutorial" in c.source
    )
    namespace: dict = {}
    exec("\n".join(line for line in imports.splitlines() if not line.startswith("%")), namespace)  # noqa: S102
    return namespace


def _run(prefix: str, *sources: str) -> dict:
    namespace = _namespace(prefix)
    for source in sources:
        exec(compile(source, "<cell>", "exec"), namespace)  # noqa: S102 - the course's own cells
    return namespace


EXERCISES = [(p, gid) for p in NAMES for _, gid in assignments.exercises(_notebook(p))]


@pytest.mark.parametrize(("prefix", "grade_id"), EXERCISES, ids=[g for _, g in EXERCISES])
def test_the_stored_solution_passes_its_visible_and_hidden_cases(prefix, grade_id, capsys):
    cells = _cells(prefix)
    test = cells[grade_id.replace("_solution", "_test")]
    assert "### BEGIN HIDDEN TESTS" in test and test.count("checks.check_") >= 2
    _run(prefix, cells[grade_id], test)
    assert "Correct" in capsys.readouterr().out


@pytest.mark.parametrize("mistake", MISTAKES, ids=lambda m: m.id)
def test_each_typical_mistake_fails_its_test_cell_and_is_named(mistake):
    prefix = mistake.grade_id[2:4]
    test = _cells(prefix)[mistake.grade_id.replace("_solution", "_test")]
    with pytest.raises(checks.ExerciseError) as raised:
        _run(prefix, mistake.source, test)
    assert mistake.message is not None, f"{mistake.id}: give MESSAGES a fragment of what the checker says"
    assert flat(mistake.message) in flat(raised.value), flat(raised.value)


@pytest.mark.parametrize("mistake", MISTAKES, ids=lambda m: m.id)
def test_each_typical_mistake_fails_the_visible_part_too(mistake):
    """``nbgrader validate`` runs the student version, whose test cells have no hidden cases: for validate to fail
    with the checker's message, the visible case must catch the mistake."""
    prefix = mistake.grade_id[2:4]
    test = _cells(prefix)[mistake.grade_id.replace("_solution", "_test")]
    with pytest.raises(checks.ExerciseError) as raised:
        _run(prefix, mistake.source, test.split("### BEGIN HIDDEN TESTS")[0])
    assert flat(mistake.message) in flat(raised.value), flat(raised.value)


def test_every_exercise_of_01_to_03_has_a_mistake_for_each_rule_it_states():
    """The rules the exercises state ("no matrix", "not suggest_block_size", a real kernel, a relative threshold,
    log-scale nearness, a lookup and no one-hot vectors, a ValueError naming the layer, ...) each have a
    typical-mistake submission in the nbgrader round trip."""
    names = {(m.grade_id, m.name) for m in MISTAKES}
    for rule in [
        ("nb01_ex4_solution", "complex kernel"),
        ("nb02_ex1_solution", "np.convolve"),
        ("nb02_ex2_solution", "dense pinv"),
        ("nb02_ex2_solution", "absolute threshold"),
        ("nb02_ex3_solution", "dense lstsq"),
        ("nb03_ex1_solution", "one-hot vectors"),
        ("nb03_ex3_solution", "no ValueError"),
        ("nb03_ex3_solution", "lora_rank_for_budget"),
        ("nb03_ex4_solution", "linear nearness"),
        ("nb03_ex4_solution", "suggest_block_size"),
        ("nb03_ex5_solution", "project_block_circulant"),
    ]:
        assert rule in names, rule
    assert {m.grade_id for m in MISTAKES} == {gid for _, gid in EXERCISES}


@pytest.mark.parametrize(
    ("prefix", "grade_id", "hard_coded"),
    [
        ("01", "nb01_ex3_solution", "def kernel_with_rank(n, rank):\n    return ANSWERS.get((n, rank), np.zeros(n))\n"),
        (
            "02",
            "nb02_ex1_solution",
            # FFTs of the inputs and a round trip of the table: the FFT "carries" the result; only the hidden case
            # catches it
            "def fft_convolve(a, b):\n    x = ANSWERS.get((len(a), len(b)), np.zeros(1))\n"
            "    np.fft.rfft(a), np.fft.rfft(b)\n    return np.fft.irfft(np.fft.rfft(x), n=len(x))\n",
        ),
        (
            "03",
            "nb03_ex3_solution",
            # The visible ValueError case by the rule, the visible rank from a table
            "def same_budget_rank(shapes, b):\n    bad = [s for s in shapes if s[0] % b or s[1] % b]\n"
            "    if bad:\n        raise ValueError(f'b = {b} does not divide {bad[0]}')\n    return 8\n",
        ),
    ],
)
def test_an_answer_hard_coded_for_the_visible_case_fails_a_hidden_one(prefix, grade_id, hard_coded):
    cells = _cells(prefix)
    test = cells[grade_id.replace("_solution", "_test")]
    visible = test.split("### BEGIN HIDDEN TESTS")[0]
    answers = {}
    recorder = {  # the right function, recording the visible cases' answers
        "01": "def kernel_with_rank(n, rank):\n    ANSWERS[n, rank] = _right(n, rank)\n    return ANSWERS[n, rank]\n",
        "02": "def fft_convolve(a, b):\n    ANSWERS[len(a), len(b)] = x = _right(a, b)\n    return x\n",
        "03": "",
    }[prefix]
    namespace = _namespace(prefix)
    namespace["ANSWERS"] = answers
    exec(cells[grade_id].replace("def kernel_with_rank", "def _right").replace("def fft_convolve", "def _right"),  # noqa: S102
         namespace)  # fmt: skip
    if recorder:
        exec(recorder + visible, namespace)  # noqa: S102 - record the visible answers ...
    exec(hard_coded + visible, namespace)  # noqa: S102 - ... a lookup table of them passes the visible case
    with pytest.raises(checks.ExerciseError):
        exec(hard_coded + test, namespace)  # noqa: S102 - and fails a hidden one


@pytest.mark.parametrize("prefix", list(NAMES))
def test_grade_cells_follow_nbgrader_and_the_intro_says_what_the_student_sees(prefix):
    nb = _notebook(prefix)
    ids = []
    for index, cell in enumerate(nb.cells):
        meta = cell.metadata.get("nbgrader")
        if meta is None:
            assert "BEGIN SOLUTION" not in cell.source and "HIDDEN TESTS" not in cell.source, f"cell {index}"
            continue
        ids.append(meta["grade_id"])
        assert re.fullmatch(rf"nb{prefix}_(ex\d+_(solution|test)|q\d+_answer)", meta["grade_id"]), meta["grade_id"]
        if cell.cell_type == "code" and meta["solution"]:
            assert "### BEGIN SOLUTION" in cell.source and "### END SOLUTION" in cell.source
            following = nb.cells[index + 1].metadata["nbgrader"]
            assert following["grade_id"] == meta["grade_id"].replace("_solution", "_test")
            assert following["grade"] and following["locked"] and following["points"] > 0
    assert len(ids) == len(set(ids)) and any(i.endswith("_answer") for i in ids)
    text = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    assert "replace that line with your code" in text and "raise NotImplementedError()" in text
    assert "Student version" not in text and "solution notebook" not in text  # the release header says it, once


def test_exercise_numbers_in_the_text_follow_the_grade_ids():
    for prefix in NAMES:
        nb = _notebook(prefix)
        for i, grade_id in assignments.exercises(nb):
            number = re.fullmatch(r"nb\d\d_ex(\d+)_solution", grade_id).group(1)
            before = "\n".join(c.source for c in nb.cells[:i] if c.cell_type == "markdown")
            assert f"**Exercise {number} (" in before, f"{grade_id}: no 'Exercise {number}' above it"
