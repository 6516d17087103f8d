"""Attempts on the grading harness itself: solution cells written to get the points without doing the exercise.

Each entry of ``ATTEMPTS`` is a ``Mistake`` (grade_id of the solution cell, name, the source that replaces the
cell, a fragment of the message it must get): the nbgrader attempts test (``test_nbgrader_attempts.py``) grades
them with the real ``nbgrader autograde`` and requires 0 points for the exercise, every other exercise of the
submission untouched. Without the isolated grading (``c3a_tutorial/tools/isolated_grading.py``) each of them would
score in the kernel run: the checker it is graded by, or the helpers that checker relies on, are replaced, or the
instructor's solution is read from ``source/`` and run.

Per exercise (all 17): the checker the test cell calls replaced by a no-op; the checkers' ``fail`` made a no-op;
``np.allclose`` (NumPy exercises) or ``torch.allclose`` (torch exercises) made to say yes; the instructor's
solution cell read from ``source/<assignment>/*.ipynb`` and executed; the checker replaced from a default argument
(it runs when the ``def`` does, before the check). Where they apply: ``torch.autograd.gradcheck`` patched (04 Ex 1);
``tracemalloc.stop()`` inside the function, to blind the memory budget (02 Ex 3); private-module helpers
(``np.linalg._linalg.pinv``, ``scipy.linalg._basic.solve_circulant``, ``scipy.signal._signaltools.convolve``); a
fresh exec of a package module, whose functions the checker's stand-ins do not replace (02 Ex 2); a forbidden
helper bound as a default argument (02 Ex 1); a ``class checks`` (02 Ex 3) or a ``def`` named like the checker
(05 Ex 1) that the test cell would call instead of the grader's.
Their answer is no answer (each name the exercise defines bound to ``None``), or a dense one.
"""

from __future__ import annotations

import ast
from pathlib import Path

import nbformat

from c3a_tutorial.tools import assignments

from .nbgrader_course import Mistake

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
REFUSED = "The grader does not run this code"  # what every attempt here is told (isolated_grading's scan)

TORCH_EXERCISES = {"nb03_ex1_solution", "nb04_ex1_solution", "nb04_ex2_solution", "nb05_ex1_solution"}

READ_SOURCE = """\
import json
from pathlib import Path

for folder in [Path.cwd(), *Path.cwd().parents]:  # up from autograded/<student>/<assignment>/ to the course
    for notebook in folder.glob("source/*/*.ipynb"):
        for cell in json.loads(notebook.read_text())["cells"]:
            if cell["metadata"].get("nbgrader", {{}}).get("grade_id") == "{grade_id}":
                exec("".join(cell["source"]))
"""

NO_OP_FAIL = """\
import sys

for name, module in list(sys.modules.items()):
    if name.startswith("c3a_tutorial.course.checks"):
        for attribute in ("fail", "fail_wrapped"):
            if hasattr(module, attribute):
                setattr(module, attribute, lambda *args, **kwargs: None)
"""

DENSE_LSTSQ = "np.linalg.pinv(circulant(c)) @ y"

SPECIFIC = {
    "nb05_ex1_solution": {
        "a def named like the checker": """\
def check_optimizer_groups(*args, **kwargs):  # the test cell calls check_optimizer_groups(...): this one answers
    print("Correct!")


optimizer_groups = None
""",
    },
    "nb04_ex1_solution": {
        "patched gradcheck": "torch.autograd.gradcheck = lambda *args, **kwargs: True\n{nothing}",
    },
    "nb02_ex1_solution": {
        "forbidden helper as a default argument": """\
def fft_convolve(a, b, convolve=np.convolve):
    return convolve(a, b)
""",
        "private scipy.signal": """\
import scipy.signal


def fft_convolve(a, b):
    return scipy.signal._signaltools.convolve(a, b)
""",
    },
    "nb02_ex2_solution": {
        "private numpy pinv": """\
def circulant_lstsq(c, y, rtol=1e-10):
    return np.linalg._linalg.pinv(circulant(c)) @ y
""",
        "private scipy solve_circulant": """\
import scipy.linalg


def circulant_lstsq(c, y, rtol=1e-10):
    return scipy.linalg._basic.solve_circulant(c, y, singular="lstsq")
""",
        "fresh exec of a package module": """\
import importlib.util


def circulant_lstsq(c, y, rtol=1e-10):
    # A copy of the package's circulant module, executed afresh: the checker's stand-ins replace the original only.
    spec = importlib.util.find_spec("c3a_tutorial.c3a.circulant")
    fresh = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fresh)
    return np.linalg.lstsq(fresh.circulant(c), y, rcond=None)[0]
""",
    },
    "nb02_ex3_solution": {
        "a class that stands in for checks": """\
class checks:  # the test cell calls checks.check_kernel_fit(...): this class answers instead of the module
    @staticmethod
    def check_kernel_fit(*args, **kwargs):
        print("Correct!")


fit_kernel = None
""",
        "tracemalloc.stop": """\
def fit_kernel(X, Y):
    import tracemalloc

    tracemalloc.stop()
    n = X.shape[1]
    shifted = np.stack([np.roll(X, k, axis=1) for k in range(n)], -1).reshape(-1, n)  # the dense design matrix
    return np.linalg.lstsq(shifted, Y.reshape(-1), rcond=None)[0]
""",
    },
}


def _exercises():
    """``(grade_id, the names its solution defines, the checker its test cell calls, called as checks.X?)``."""
    for path in sorted(NOTEBOOKS.glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        for index, grade_id in assignments.exercises(nb):
            tree = ast.parse(nb.cells[index].source)
            names = [n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))]
            assigned = [t for n in tree.body if isinstance(n, ast.Assign) for t in n.targets]
            names += [t.id for t in assigned if isinstance(t, ast.Name)]
            calls = [n.func for n in ast.walk(ast.parse(nb.cells[index + 1].source)) if isinstance(n, ast.Call)]
            checker = next(
                (f.attr, True) if isinstance(f, ast.Attribute) else (f.id, False)
                for f in calls
                if (isinstance(f, ast.Attribute) and f.attr.startswith("check_"))
                or (isinstance(f, ast.Name) and f.id.startswith("check_"))
            )
            yield grade_id, names, checker


def _attempts() -> list[Mistake]:
    out = []
    for grade_id, names, (checker, through_checks) in _exercises():
        nothing = "".join(f"{name} = None\n" for name in names)  # no answer at all
        target = f"checks.{checker}" if through_checks else checker
        library = "torch" if grade_id in TORCH_EXERCISES else "np"
        sources = {
            "replaced checker": f"{target} = lambda *args, **kwargs: None\n{nothing}",
            "no-op fail": f"{NO_OP_FAIL}{nothing}",
            f"patched {library}.allclose": f"{library}.allclose = lambda *args, **kwargs: True\n{nothing}",
            "reads source/ and runs the solution": READ_SOURCE.format(grade_id=grade_id),
            "checker replaced from a default argument": (
                f"def _patch(_=setattr(checks, {checker!r}, lambda *args, **kwargs: None)):\n    pass\n\n\n{nothing}"
                if through_checks
                else f"def _patch(_=globals().update({checker}=lambda *args, **kwargs: None)):\n    pass\n\n\n{nothing}"
            ),
        }
        for name, source in SPECIFIC.get(grade_id, {}).items():
            sources[name] = source.format(nothing=nothing) if "{nothing}" in source else source
        out += [Mistake(grade_id, name, source, REFUSED) for name, source in sources.items()]
    return out


ATTEMPTS = _attempts()
