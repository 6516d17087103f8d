"""The isolated grading's parts, without nbgrader: the solution scan, and the grading process on every exercise.

- The scan (``solution_scan.problems``) passes every solution cell of ``notebooks/`` and every typical mistake of
  ``tests/tools/mistakes_*.py`` (they must lose their points to the checker, with its message, not to the scan)
  and refuses every harness attempt of ``attempts_harness.py``.
- The grading process (``grading_child``, started as ``IsolatedGrading`` starts it) grades every test cell of
  every notebook: the solutions pass, each typical mistake fails with its message, each attempt of
  ``tests/tools/attempts_*.py`` fails. That is the nbgrader tests' grading, in about a minute instead of many.
- The layers behind the scan, each with the scan switched off by a trusted prelude: a replaced ``np.allclose``
  is found by the snapshot, a file outside the Python installation cannot be read, a runaway cell is stopped, and
  under bubblewrap (where it works) the course folder is empty.
"""

from __future__ import annotations

import logging

import nbformat
import pytest

from c3a_tutorial.course import checks
from c3a_tutorial.tools import assignments, isolated_grading, solution_scan

from .attempts_harness import ATTEMPTS as HARNESS_ATTEMPTS
from .attempts_harness import REFUSED
from .nbgrader_course import NOTEBOOKS, flat, grade_cell_of, load_attempts, load_mistakes

SOURCES = {p.stem: nbformat.read(p, as_version=4) for p in sorted(NOTEBOOKS.glob("*.ipynb"))}
MODULES = {"np", "torch", "scipy", "math"}  # what the notebooks' set-up cells bind to modules
ATTEMPT_IDS = {a.id for a in load_attempts()}
GRADER = {name for name in checks.__all__ if name.startswith("check_")}  # as the grading process finds them
# The scan switched off, from the trusted prelude: what stops the code then is the layer under test.
NO_SCAN = "import c3a_tutorial.tools.solution_scan as _scan\n_scan.problems = lambda *args, **kwargs: []\n"


def test_the_scan_passes_every_solution_and_every_typical_mistake():
    sources = [(gid, nb.cells[i].source) for nb in SOURCES.values() for i, gid in assignments.exercises(nb)]
    sources += [(m.id, m.source) for m in load_mistakes()]
    refused = {name: solution_scan.problems(src, MODULES, GRADER) for name, src in sources}
    assert not {k: v for k, v in refused.items() if v}, "the scan refuses honest code"


@pytest.mark.parametrize("attempt", HARNESS_ATTEMPTS, ids=lambda a: a.id)
def test_the_scan_refuses_each_harness_attempt(attempt):
    assert solution_scan.problems(attempt.source, MODULES, GRADER), f"{attempt.id} passes the scan"


def test_the_scan_says_what_and_where():
    found = solution_scan.problems("import numpy as np\n\ndef f(x):\n    np.allclose = len\n    return x\n")
    assert found == ["line 4: assigns to `np.allclose`, a part of a module the grader relies on"]
    assert solution_scan.problems("def f(x):\n    return np.linalg._linalg.pinv(x)\n", {"np"}) == [
        "line 2: uses the private name `np.linalg._linalg`; use the library's public functions"
    ]


def test_definitions_drop_every_statement_that_does_something():
    kept = solution_scan.definitions(
        "checks.check_x = lambda *a: None\nimport numpy as np\nn = 8\nrng = np.random.default_rng(0)\n"
        "def f(x):\n    return x\nprint(f(1))\nraise NotImplementedError()\n"
    )
    assert kept == "import numpy as np\nn = 8\n\ndef f(x):\n    return x\nraise NotImplementedError()"


@pytest.fixture(scope="module")
def course_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("course")
    (folder / "gradebook.db").write_text("the instructor's gradebook")
    return folder


@pytest.fixture(scope="module")
def server(course_folder):
    process = isolated_grading.GradingProcess([course_folder], "auto", logging.getLogger(__name__))
    yield process
    process.close()


def _grade(server, stem: str, timeout=300, replace: dict | None = None, only: str | None = None) -> dict:
    """The isolated run's answer for each test cell of notebook ``stem``'s solutions, ``replace`` d."""
    source = SOURCES[stem]
    nb = nbformat.from_dict(source)
    for cell in nb.cells:
        grade_id = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
        if replace and grade_id in replace:
            cell.source = replace[grade_id]
    return {
        cell.metadata["nbgrader"]["grade_id"]: server.grade(request)
        for cell, request in isolated_grading.grading_requests(nb, source, timeout)
        if only is None or cell.metadata["nbgrader"]["grade_id"] == only
    }


@pytest.mark.slow
@pytest.mark.parametrize("stem", sorted(SOURCES))
def test_the_grading_process_passes_the_solutions_and_fails_each_mistake_and_attempt(server, stem):
    nb = SOURCES[stem]
    failed = {gid: a["evalue"][:300] for gid, a in _grade(server, stem).items() if not a["ok"]}
    assert not failed, f"{stem}: the solutions fail in isolation: {failed}"
    tests = grade_cell_of(nb)
    wrong = []
    for entry in [*load_mistakes(), *load_attempts()]:
        if entry.grade_id in tests:
            answer = _grade(server, stem, replace={entry.grade_id: entry.source}, only=tests[entry.grade_id])
            answer = answer[tests[entry.grade_id]]
            # An attempt may be refused by the scan before its checker runs: that is the message it then gets.
            said = [entry.message] + ([REFUSED] if entry.id in ATTEMPT_IDS else [])
            if answer["ok"] or (entry.message and not any(flat(m) in flat(answer["evalue"]) for m in said)):
                wrong.append((entry.id, answer["ok"], flat(answer["evalue"])[:300]))
    assert not wrong, f"{stem}: passed, or failed without its message: {wrong}"


def _request(prelude: str, solution: str, test: str, timeout: float = 60) -> dict:
    return {"prelude": prelude, "solutions": [["ex", solution]], "test": test, "timeout": timeout}


@pytest.mark.slow
def test_a_replaced_library_function_is_found_after_the_check(server):
    prelude = "import numpy as np\n" + NO_SCAN
    solution = "def answer():\n    np.allclose = lambda *args, **kwargs: True\n    return 3\n"
    got = server.grade(_request(prelude, solution, "assert np.allclose(answer(), 2)"))
    assert not got["ok"] and got["ename"] == "GradingRefused" and "numpy.allclose" in got["evalue"], got
    honest = server.grade(_request(prelude, "def answer():\n    return 2.0\n", "assert np.allclose(answer(), 2)"))
    assert honest["ok"], honest


@pytest.mark.slow
def test_files_outside_the_installation_cannot_be_read(server, course_folder):
    prelude = "import numpy as np\n" + NO_SCAN
    solution = f"def answer():\n    return np.loadtxt({str(course_folder / 'gradebook.db')!r}, dtype=str)\n"
    got = server.grade(_request(prelude, solution, "answer()"))
    assert not got["ok"] and got["ename"] in ("PermissionError", "FileNotFoundError"), got


@pytest.mark.slow
def test_a_runaway_cell_is_stopped(server):
    got = server.grade(_request("", "def spin():\n    while True:\n        pass\n", "spin()", timeout=3))
    assert got["ename"] == "TimeoutError" and not got["ok"], got
    assert server.grade(_request("", "x = 1\n", "assert x == 1"))["ok"], "the server did not survive the timeout"


@pytest.mark.slow
def test_under_bubblewrap_the_course_folder_is_empty(server, course_folder):
    if not isolated_grading.bwrap_works():
        pytest.skip("bwrap is missing or cannot make a sandbox here: the audit hook alone guards the files")
    assert server.sandboxed
    prelude = f"import os\nseen = os.listdir({str(course_folder)!r})\n"  # trusted: runs before the guard
    got = server.grade(_request(prelude, "x = 1\n", "print(seen)"))
    assert got["ok"] and got["stdout"].strip() == "[]", got
    assert (course_folder / "gradebook.db").exists()  # it is there, outside the sandbox
