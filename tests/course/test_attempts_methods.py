"""The attempts of ``tests/tools/attempts_methods.py`` (a student after the points without the work), run in-process
against the notebooks' own test cells, visible and hidden: each fails with its message, or, where it imports a
one-line answer the checker modules no longer ship, fails to import it. The nbgrader round trip runs the same
submissions under the real nbgrader; this runs them in seconds."""

import re
from pathlib import Path

import nbformat
import pytest

from c3a_tutorial.course import checks
from tests.tools.attempts_methods import ATTEMPTS
from tests.tools.nbgrader_course import flat

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"


def _notebook(prefix: str):
    return nbformat.read(next(NOTEBOOKS.glob(f"{prefix}_*.ipynb")), as_version=4)


def _graded_cells(nb) -> list[tuple[str, str]]:
    return [
        (c.metadata["nbgrader"]["grade_id"], c.source)
        for c in nb.cells
        if c.cell_type == "code" and "nbgrader" in c.metadata
    ]


def _namespace_before(nb, grade_id: str) -> dict:
    """The notebook's import cell run, then every stored solution cell above ``grade_id`` (04 Ex 2 uses 04 Ex 1's)."""
    imports = next(c.source for c in nb.cells if c.cell_type == "code" and "import c3a_tutorial" in c.source)
    namespace: dict = {}
    exec("\n".join(line for line in imports.splitlines() if not line.startswith("%")), namespace)  # noqa: S102
    for other, source in _graded_cells(nb):
        if other == grade_id:
            break
        if other.endswith("_solution"):
            exec(compile(source, other, "exec"), namespace)  # noqa: S102 - the course's own cells
    return namespace


def test_the_catalogue_covers_every_notebook_and_its_names_are_unique():
    assert {a.grade_id[2:4] for a in ATTEMPTS} == {"01", "02", "03", "04", "05"}
    assert len({a.id for a in ATTEMPTS}) == len(ATTEMPTS)


@pytest.mark.parametrize("attempt", ATTEMPTS, ids=lambda a: a.id)
def test_each_attempt_fails_its_test_cell(attempt):
    nb = _notebook(attempt.grade_id[2:4])
    cells = dict(_graded_cells(nb))
    namespace = _namespace_before(nb, attempt.grade_id)
    if attempt.message is None:  # a one-line answer that no longer ships: the cell itself fails
        with pytest.raises(ImportError):
            exec(compile(attempt.source, attempt.grade_id, "exec"), namespace)  # noqa: S102
        return
    exec(compile(attempt.source, attempt.grade_id, "exec"), namespace)  # noqa: S102
    test = cells[attempt.grade_id.replace("_solution", "_test")]
    with pytest.raises(checks.ExerciseError) as raised:
        exec(compile(test, attempt.grade_id.replace("_solution", "_test"), "exec"), namespace)  # noqa: S102
    assert re.search(re.escape(flat(attempt.message)), flat(raised.value)), flat(raised.value)
