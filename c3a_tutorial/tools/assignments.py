"""The course's notebooks as an nbgrader course: a thin wrapper over nbgrader, nothing re-implemented.

The notebooks in ``notebooks/`` are nbgrader *source* notebooks as they stand: each exercise is a solution
cell (its answer between nbgrader's solution markers) followed by a locked autograder test cell with points,
which calls the exercise's checker from ``c3a_tutorial.course.checks`` and adds hidden cases; written questions
are manually graded markdown solution cells. This module only lays a course directory out for nbgrader and
checks the notebooks' nbgrader metadata; releasing, collecting, autograding and feedback are nbgrader's own
commands, unchanged. nbgrader comes with the ``course`` extra (``pip install "c3a-tutorial[course]"``).

Command line::

    python -m c3a_tutorial.assignments init COURSE_DIR [--notebooks DIR] [--course-id ID] [--exchange DIR]
    python -m c3a_tutorial.assignments check [NOTEBOOK ...]

``init`` writes into a new (or empty) ``COURSE_DIR``:

- ``nbgrader_config.py``: the course id, the course root, an exchange folder (``COURSE_DIR/exchange`` unless
  ``--exchange``), a cell timeout long enough for notebook 05's fine-tuning, the student-version header, the
  isolated grading of every test cell after nbgrader's kernel run (``isolated_grading``), and feedback without
  the hidden tests (nbgrader's ``ClearHiddenTests``);
- ``source/<notebook stem>/``: one assignment per notebook, holding the notebook (without its Colab badge and its
  links to the other notebooks: in the repository they open the solution notebooks, ``student_facing``) and the
  repository data files its code names or its prose cites (under ``data/``, the same relative path as in the
  repository; nbgrader copies them into every release and every autograded submission, so the notebook finds
  them in ``data/`` next to it);
- ``student_header.ipynb``: the note nbgrader's ``IncludeHeaderFooter`` puts at the top of every student
  version (each exercise is nbgrader's ``raise NotImplementedError()`` stub);
- an empty ``exchange/`` when the exchange is the default one.

It refuses a directory that is not empty, and notebooks that nbgrader would reject or grade wrongly (``check``
lists why). Then, in ``COURSE_DIR``: ``nbgrader generate_assignment 01_circulant_matrices``,
``nbgrader release_assignment ...``, ``nbgrader collect ...``, ``nbgrader autograde ...``,
``nbgrader generate_feedback ...`` (the README's "Teaching with this repository" has the whole sequence).

``check`` runs the static checks on notebooks (default: the repository's), prints every problem and exits 1
if there is one.
"""

from __future__ import annotations

import fnmatch
import re
import shutil
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

try:
    import nbformat
except ImportError as error:  # pragma: no cover - nbformat comes with nbgrader and Jupyter
    raise ImportError(
        "c3a_tutorial.assignments needs nbformat and nbgrader: pip install 'c3a-tutorial[course]'"
    ) from error

REPOSITORY = Path(__file__).resolve().parents[2]
REPOSITORY_NOTEBOOKS = REPOSITORY / "notebooks"
REPOSITORY_DATA = REPOSITORY / "data"
COURSE_ID = "c3a-tutorial"
CELL_TIMEOUT = 1800  # seconds per cell under nbgrader autograde: notebook 05 fine-tunes three models in one cell
HEADER_NAME = "student_header.ipynb"

# nbgrader's own delimiters (ClearSolutions, ClearHiddenTests): it looks for them *anywhere* in a line of any cell.
SOLUTION_DELIMITERS = ("BEGIN SOLUTION", "END SOLUTION")
HIDDEN_TEST_DELIMITERS = ("BEGIN HIDDEN TESTS", "END HIDDEN TESTS")

# What the data scan never copies: generated at run time.
DATA_EXCLUDED = ("cache/*",)
# A file under data/ that a notebook's prose cites by its path ("`data/results/README_sweep.md`").
DATA_CITATION = re.compile(r"\bdata/([\w./-]*[\w-])")

# What a student version must not carry: the Colab badge opens the repository's *solution* notebook, and a link to
# another notebook of the repository (``[02 — ...](02_fft_identity.ipynb)``) is a solution notebook there and no
# file at all in a student's folder. ``student_facing`` turns both into plain text.
COLAB_LINE = re.compile(r"^.*colab\.research\.google\.com.*\n?", re.MULTILINE)
# A notebook's own note about its student version: the header nbgrader adds (HEADER_TEXT) says it, once.
STUDENT_NOTE = re.compile(r"(?:^|\n\n)(?:> \*\*Student version\.\*\*|\*Assignment version\.\*)(?:.|\n(?!\n))*")
NOTEBOOK_LINK = re.compile(r"\[([^\]]+)\]\((?![a-z]+://)[^)\s]*\.ipynb\)")

HEADER_TEXT = (
    "> **Student version.** Each exercise's answer has been replaced by `raise NotImplementedError()`, so *Run All* "
    "stops at the first exercise until you write it. Write your code in place of that line (written questions: "
    'in place of "YOUR ANSWER HERE"). The locked cell after each exercise checks your answer and says what to '
    "fix; when grading, it also runs hidden cases (other shapes, other seeds), so solve the exercise in general "
    "rather than for the visible case. Keep the cells you were given: nbgrader grades them by their ids."
)

CONFIG_TEMPLATE = '''\
"""nbgrader configuration of the C3A course (written by `python -m c3a_tutorial.assignments init`)."""

import os

c = get_config()  # noqa: F821  (nbgrader provides get_config)
here = os.path.dirname(os.path.abspath(__file__))

c.CourseDirectory.course_id = {course_id!r}
c.CourseDirectory.root = here
# Where release_assignment / fetch_assignment / submit / collect meet. Students use the same path.
c.Exchange.root = {exchange}
# The student versions start with this note (nbgrader's IncludeHeaderFooter preprocessor).
c.IncludeHeaderFooter.header = os.path.join(here, {header!r})
# Seconds per cell under autograde: nbgrader's default, 30, is too short for notebook 05's fine-tuning.
c.Execute.timeout = {timeout}
# Each autograded test cell is graded again in a process of its own that holds only the learner's definitions and
# the locked test cell (c3a_tutorial/tools/isolated_grading.py): what a solution cell patches in the kernel, and
# the files of this course, do not reach the grade. "auto" uses bubblewrap where it works; "bwrap" insists on it.
from c3a_tutorial.tools.isolated_grading import autograde_preprocessors  # noqa: E402

c.Autograde.autograde_preprocessors = autograde_preprocessors()
c.IsolatedGrading.timeout = {timeout}
c.IsolatedGrading.sandbox = "auto"
# The feedback shows the test cells without their hidden tests (nbgrader's ClearHiddenTests, as in the release):
# the isolated run's messages say what failed; the hidden cases' code stays the instructor's.
from nbconvert.preprocessors import CSSHTMLHeaderPreprocessor  # noqa: E402
from nbgrader.preprocessors import ClearHiddenTests, GetGrades  # noqa: E402

c.GenerateFeedback.preprocessors = [GetGrades, ClearHiddenTests, CSSHTMLHeaderPreprocessor]
'''


class NotebookProblems(ValueError):
    """Notebooks that are not valid nbgrader source notebooks of this course; the message lists every problem."""


def _meta(cell) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {}) or {}


def _where(name: str, index: int, cell) -> str:
    grade_id = _meta(cell).get("grade_id")
    return f"{name}: cell {index}" + (f" ({grade_id})" if grade_id else "")


def exercises(nb) -> list[tuple[int, str]]:
    """``(cell index, grade_id)`` of every autograded exercise: a code cell nbgrader treats as a solution cell."""
    return [
        (i, _meta(c).get("grade_id", f"cell {i}"))
        for i, c in enumerate(nb.cells)
        if c.cell_type == "code" and _meta(c).get("solution")
    ]


def points(nb) -> dict[str, float]:
    """``grade_id -> points`` of every graded cell (autograded test cells and written answers)."""
    return {_meta(c)["grade_id"]: float(_meta(c).get("points", 0)) for c in nb.cells if _meta(c).get("grade")}


def points_by_kind(nb) -> tuple[float, float]:
    """``(autograded points, written-answer points)`` of ``nb``: test cells are code, written answers markdown."""
    graded = [(c.cell_type, float(_meta(c).get("points", 0))) for c in nb.cells if _meta(c).get("grade")]
    return sum(p for t, p in graded if t == "code"), sum(p for t, p in graded if t == "markdown")


def problems(nb, name: str = "notebook") -> list[str]:
    """Everything that stops ``nb`` from being one of this course's nbgrader source notebooks; ``[]`` if none.

    Checked, as nbgrader 0.9 reads the metadata: every code solution cell is *immediately* followed by its
    autograder test cell (code, ``grade: true``, ``points > 0``, ``locked: true``, not a solution) with hidden
    cases; every graded cell has points; every nbgrader cell has a ``grade_id``, unique in the notebook, and
    ``schema_version`` 3; written answers (markdown solution cells) are graded with points; nbgrader's solution
    delimiters appear only in solution cells (nbgrader matches them anywhere in a line, markdown included) and
    are balanced there; hidden-test delimiters only in test cells; and there is at least one exercise.
    """
    found: list[str] = []
    seen: dict[str, int] = {}
    for i, cell in enumerate(nb.cells):
        meta, where = _meta(cell), _where(name, i, cell)
        text = cell.get("source", "")
        if meta:
            grade_id = meta.get("grade_id")
            if not grade_id:
                found.append(f"{where}: nbgrader cell without a grade_id")
            elif grade_id in seen:
                found.append(f"{where}: grade_id {grade_id!r} is used again (first at cell {seen[grade_id]})")
            else:
                seen[grade_id] = i
            if meta.get("schema_version") != 3:
                found.append(f"{where}: nbgrader schema_version is {meta.get('schema_version')!r}, not 3")
            if meta.get("grade") and not (isinstance(meta.get("points"), int | float) and meta["points"] > 0):
                found.append(f"{where}: graded cell without points > 0 (points: {meta.get('points')!r})")
        if cell.cell_type == "markdown" and meta.get("solution") and not meta.get("grade"):
            found.append(f"{where}: written answer (markdown solution cell) without grade: true and points")
        lines = text.splitlines()
        has_solution_marker = any(d in line for line in lines for d in SOLUTION_DELIMITERS)
        if has_solution_marker and not meta.get("solution"):
            kind = "a markdown cell" if cell.cell_type == "markdown" else "a cell that is not a solution cell"
            found.append(
                f"{where}: {kind} contains nbgrader's solution delimiter ({' / '.join(SOLUTION_DELIMITERS)}); "
                "nbgrader would treat it as a solution region. Name the markers without writing them out."
            )
        elif has_solution_marker:
            found += [f"{where}: {p}" for p in _unbalanced(lines, SOLUTION_DELIMITERS)]
        has_hidden = any(d in line for line in lines for d in HIDDEN_TEST_DELIMITERS)
        if has_hidden and not meta.get("grade"):
            found.append(f"{where}: hidden-test delimiters in a cell that is not a grade cell")
        elif has_hidden:
            found += [f"{where}: {p}" for p in _unbalanced(lines, HIDDEN_TEST_DELIMITERS)]
    for i, grade_id in exercises(nb):
        follower = nb.cells[i + 1] if i + 1 < len(nb.cells) else None
        fmeta = _meta(follower) if follower is not None else {}
        if follower is None or follower.cell_type != "code" or not fmeta.get("grade") or fmeta.get("solution"):
            found.append(
                f"{name}: exercise {grade_id} (cell {i}) is not immediately followed by its autograder test cell "
                "(a code cell with nbgrader grade: true, points and locked: true)"
            )
            continue
        if not fmeta.get("locked"):
            found.append(f"{_where(name, i + 1, follower)}: the test cell of exercise {grade_id} is not locked")
        if HIDDEN_TEST_DELIMITERS[0] not in follower.source:
            found.append(f"{_where(name, i + 1, follower)}: the test cell of exercise {grade_id} has no hidden tests")
    if not exercises(nb):
        found.append(f"{name}: no exercise (no code cell with nbgrader solution: true)")
    return found


def _unbalanced(lines: Sequence[str], delimiters: tuple[str, str]) -> list[str]:
    begin, end = delimiters
    opened, out = None, []
    for number, line in enumerate(lines, 1):
        if begin in line:
            if opened is not None:
                out.append(f"{begin} at line {number} inside the region opened at line {opened}")
            opened = number
        elif end in line:
            if opened is None:
                out.append(f"{end} at line {number} without a {begin}")
            opened = None
    if opened is not None:
        out.append(f"{begin} at line {opened} has no {end}")
    return out


def course_problems(paths: Iterable[Path]) -> list[str]:
    """``problems`` of every notebook, plus grade_ids used in two notebooks (the gradebook keys on them)."""
    found, owner = [], {}
    for path in sorted(Path(p) for p in paths):
        nb = nbformat.read(path, as_version=4)
        found += problems(nb, path.name)
        for cell in nb.cells:
            grade_id = _meta(cell).get("grade_id")
            if grade_id and owner.setdefault(grade_id, path.name) != path.name:
                found.append(f"{path.name}: grade_id {grade_id!r} is also used in {owner[grade_id]}")
    return found


def data_files(nb, data_root: Path = REPOSITORY_DATA) -> list[Path]:
    """The files of ``data_root`` that ``nb`` reads or cites: named, or matched by a glob, in a code cell, or cited
    by their path under ``data/`` in prose, so that a student version that mentions a file also ships it.

    Generated caches are left out. Files the package reads for a notebook (the MiniLM ``ΔW`` of notebook 03, the
    data set cache of notebook 05) are found by the package itself, in the checkout it is installed from
    (``pip install -e``), its own copy or ``$C3A_DATA_DIR``, so they are not copied unless cited."""
    data_root = Path(data_root)
    if not data_root.is_dir():
        return []
    candidates = sorted(
        p
        for p in data_root.rglob("*")
        if p.is_file() and not any(fnmatch.fnmatch(p.relative_to(data_root).as_posix(), x) for x in DATA_EXCLUDED)
    )
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    literals = set(re.findall(r"""["']([^"'\n]+)["']""", code))
    patterns = {Path(s).name for s in literals if "*" in s or "?" in s}
    cited = {m.group(1) for c in nb.cells if c.cell_type == "markdown" for m in DATA_CITATION.finditer(c.source)}
    return [
        p
        for p in candidates
        if p.name in code
        or any(fnmatch.fnmatch(p.name, x) for x in patterns)
        or p.relative_to(data_root).as_posix() in cited
    ]


def student_facing(nb):
    """A copy of ``nb`` without what leads a student to the solution notebooks: the Colab badge (it opens the
    repository's notebook, with every solution in it), links to other notebooks of the repository (they keep their
    text), and a notebook's own note about its student version (the header nbgrader adds says it once). nbgrader
    then makes the student version from this copy; cells' ids and metadata are unchanged."""
    nb = nbformat.from_dict(nb)
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            text = NOTEBOOK_LINK.sub(r"\1", STUDENT_NOTE.sub("", COLAB_LINE.sub("", cell.source)))
            cell.source = text.strip("\n") if text != cell.source else text
    return nb


def _header_notebook():
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell(HEADER_TEXT)]
    return nb


def init(
    course_dir: str | Path,
    notebooks: str | Path | Sequence[str | Path] = REPOSITORY_NOTEBOOKS,
    course_id: str = COURSE_ID,
    exchange: str | Path | None = None,
    data_root: str | Path = REPOSITORY_DATA,
) -> dict[str, list[str]]:
    """Lay out an nbgrader course in ``course_dir``; return ``{assignment: [files in source/<assignment>/]}``.

    ``notebooks`` is a folder (every ``*.ipynb`` in it) or a list of notebooks. Refuses (``FileExistsError``)
    a ``course_dir`` that exists and is not empty, and (``NotebookProblems``) notebooks with ``problems``,
    before writing anything.
    """
    course = Path(course_dir)
    if course.exists() and (not course.is_dir() or any(course.iterdir())):
        raise FileExistsError(
            f"{course} is not an empty directory; `init` writes a new course and never overwrites one. "
            "Choose a new directory (or empty this one yourself)."
        )
    if isinstance(notebooks, str | Path):
        folder = Path(notebooks)
        if not folder.is_dir():
            raise FileNotFoundError(
                f"No notebook folder at {folder}: pass --notebooks with the repository's notebooks/ folder."
            )
        paths = sorted(folder.glob("*.ipynb"))
    else:
        paths = sorted(Path(p) for p in notebooks)
    if not paths:
        raise FileNotFoundError(f"No notebooks (*.ipynb) found in {notebooks}")
    found = course_problems(paths)
    if found:
        raise NotebookProblems(
            "These notebooks are not nbgrader source notebooks of this course; nothing was written:\n  "
            + "\n  ".join(found)
        )

    layout: dict[str, list[str]] = {}
    course.mkdir(parents=True, exist_ok=True)
    for path in paths:
        assignment = path.stem
        target = course / "source" / assignment
        target.mkdir(parents=True)
        notebook = nbformat.read(path, as_version=4)
        nbformat.write(student_facing(notebook), target / path.name)
        files = [path.name]
        for data in data_files(notebook, Path(data_root)):
            relative = Path("data") / data.relative_to(data_root)
            (target / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(data, target / relative)
            files.append(relative.as_posix())
        layout[assignment] = files
    nbformat.write(_header_notebook(), course / HEADER_NAME)
    if exchange is None:
        (course / "exchange").mkdir()
        exchange_code = 'os.path.join(here, "exchange")'
    else:
        exchange_code = repr(str(Path(exchange).resolve()))
    (course / "nbgrader_config.py").write_text(
        CONFIG_TEMPLATE.format(course_id=course_id, exchange=exchange_code, header=HEADER_NAME, timeout=CELL_TIMEOUT)
    )
    return layout


def main(argv: Sequence[str] | None = None) -> int:
    """The command line (``assignments_cli``, where its argument checks live)."""
    from .assignments_cli import main as command_line  # imported here: assignments_cli imports this module

    return command_line(argv)


if __name__ == "__main__":
    sys.exit(main())


__all__ = [
    "COURSE_ID",
    "NotebookProblems",
    "course_problems",
    "data_files",
    "exercises",
    "init",
    "main",
    "points",
    "points_by_kind",
    "problems",
    "student_facing",
]
