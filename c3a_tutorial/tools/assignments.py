"""Student versions of the notebooks: the exercises' solutions taken out, everything else kept.

The course's notebooks are the *solution* notebooks: every exercise's answer sits between the nbgrader
markers ``### BEGIN SOLUTION`` and ``### END SOLUTION`` (each on a line of its own), and a checker from
``c3a_tutorial.checks`` follows it. For nbgrader, ``python -m c3a_tutorial.assignments mark notebooks/*.ipynb``
adds the solution-cell metadata nbgrader wants. Without nbgrader::

    python -m c3a_tutorial.assignments build notebooks/ student/

writes one student notebook per notebook: each solution region becomes
``raise NotImplementedError("Exercise: ...")`` at the region's indentation (in markdown cells, a
"YOUR ANSWER HERE" line), all outputs are cleared, and the first cell starts with an ``ANSWERS_REMOVED``
note. Building twice, or building from student versions, gives the same files (idempotent). It refuses to
write into the source folder or into the repository's ``notebooks/``, so the solutions cannot be lost.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

BEGIN = "### BEGIN SOLUTION"
END = "### END SOLUTION"
NOTE_TAG = "ANSWERS_REMOVED"
NOTE = (
    f"> **{NOTE_TAG}**: this is the student version. Each exercise's solution was replaced by "
    '`raise NotImplementedError("Exercise: ...")`; write your code there and run the checker cell after it, '
    "which tells you what to fix."
)
EXERCISE_LINE = 'raise NotImplementedError("Exercise: write your solution here, then run the checker below.")'
MARKDOWN_LINE = "YOUR ANSWER HERE"
REPOSITORY_NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"

_MARKER = re.compile(r"^(?P<indent>[ \t]*)(?P<marker>### (?:BEGIN|END) SOLUTION)[ \t]*$")


class MarkerError(ValueError):
    """Solution markers that do not pair up."""


def strip_solutions(source: str, cell_type: str = "code", where: str = "a cell") -> tuple[str, int]:
    """``source`` with every solution region replaced; returns ``(new_source, number_of_regions)``.

    A region runs from a line that is exactly ``### BEGIN SOLUTION`` (indentation allowed) to the next
    ``### END SOLUTION`` line; both markers go too. Code regions become ``raise NotImplementedError(...)``
    at the BEGIN marker's indentation, markdown regions ``YOUR ANSWER HERE``.
    """
    out, regions, inside = [], 0, None
    for number, line in enumerate(source.splitlines(), start=1):
        match = _MARKER.match(line)
        if match is None:
            if inside is None:
                out.append(line)
            continue
        if match["marker"] == BEGIN:
            if inside is not None:
                raise MarkerError(
                    f"{where}, line {number}: {BEGIN} inside the solution region opened at line {inside}; "
                    f"close the first region with {END} before opening another."
                )
            inside = number
            regions += 1
            out.append(match["indent"] + (EXERCISE_LINE if cell_type == "code" else MARKDOWN_LINE))
        else:
            if inside is None:
                raise MarkerError(f"{where}, line {number}: {END} without a {BEGIN} before it.")
            inside = None
    if inside is not None:
        raise MarkerError(f"{where}: the {BEGIN} at line {inside} has no {END}; add one after the solution.")
    return ("\n".join(out) if regions else source), regions


def student_version(notebook):
    """A student copy of an ``nbformat`` notebook: solutions replaced, outputs cleared, the note added.

    Returns ``(notebook, number_of_exercise_regions)``; the input is not modified.
    """
    import copy

    import nbformat

    nb = copy.deepcopy(notebook)
    regions = 0
    for index, cell in enumerate(nb.cells):
        if cell.cell_type in ("code", "markdown"):
            cell.source, found = strip_solutions(cell.source, cell.cell_type, where=f"cell {index}")
            regions += found
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
            cell.metadata.pop("execution", None)
        cell.metadata.pop("nbgrader", None)  # a student version is no longer an nbgrader source notebook
    nb.metadata.pop("widgets", None)  # saved widget state belongs to the solution run
    if not nb.cells or nb.cells[0].cell_type != "markdown":
        nb.cells.insert(0, nbformat.v4.new_markdown_cell(""))
    first = nb.cells[0]
    if NOTE_TAG not in first.source:
        first.source = f"{NOTE}\n\n{first.source}".rstrip("\n")
    return nb, regions


def mark_for_nbgrader(notebook, name: str) -> int:
    """Mark every cell holding a solution region as an nbgrader solution cell, in place; returns their number.

    nbgrader's ``generate_assignment`` refuses solution regions in cells without this metadata
    (``ClearSolutions.enforce_metadata``). ``grade_id`` is ``<name>-exercise-<k>``, unique in the notebook.
    Cells without a region lose a stale mark. Idempotent.
    """
    marked = 0
    for cell in notebook.cells:
        has_region = cell.cell_type in ("code", "markdown") and any(
            (m := _MARKER.match(line)) and m["marker"] == BEGIN for line in cell.source.splitlines()
        )
        if has_region:
            marked += 1
            cell.metadata["nbgrader"] = {
                "grade": False,
                "grade_id": f"{name}-exercise-{marked}",
                "locked": False,
                "schema_version": 3,
                "solution": True,
                "task": False,
            }
        elif cell.metadata.get("nbgrader", {}).get("solution"):
            del cell.metadata["nbgrader"]
    return marked


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def build(source_dir: str | Path, out_dir: str | Path, quiet: bool = False) -> dict[str, int]:
    """Write a student version of every ``*.ipynb`` in ``source_dir`` to ``out_dir``.

    Returns ``{notebook name: number of exercise regions}``. Refuses (``ValueError``, nothing written) when
    ``out_dir`` is, or lies inside, ``source_dir`` or the repository's ``notebooks/`` folder.
    """
    import nbformat

    source_dir, out_dir = Path(source_dir).resolve(), Path(out_dir).resolve()
    if not source_dir.is_dir():
        raise ValueError(f"{source_dir} is not a folder; pass the folder that holds the solution notebooks.")
    for protected in (source_dir, REPOSITORY_NOTEBOOKS):
        if _inside(out_dir, protected):
            raise ValueError(
                f"refusing to write student notebooks into {out_dir}: it would overwrite the solution notebooks "
                f"in {protected}. Choose another output folder, e.g. `student/`."
            )
    paths = sorted(source_dir.glob("*.ipynb"))
    if not paths:
        raise ValueError(f"no notebooks (*.ipynb) in {source_dir}.")
    # Convert everything first, so a marker error in one notebook leaves no half-written folder.
    students = {}
    for path in paths:
        try:
            students[path.name] = student_version(nbformat.read(path, as_version=4))
        except MarkerError as err:
            raise MarkerError(f"{path.name}: {err}") from None
    out_dir.mkdir(parents=True, exist_ok=True)
    counts = {}
    for name, (nb, regions) in students.items():
        nbformat.write(nb, out_dir / name)
        counts[name] = regions
        if not quiet:
            print(f"{name}: {regions} exercise(s) -> {out_dir / name}")
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m c3a_tutorial.assignments", description="Build student versions of the notebooks."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    build_parser = commands.add_parser("build", help="write student notebooks (solutions removed, outputs cleared)")
    build_parser.add_argument("source", help="folder of solution notebooks, e.g. notebooks/")
    build_parser.add_argument("out", help="output folder for the student notebooks (not the source folder)")
    mark_parser = commands.add_parser("mark", help="add nbgrader solution-cell metadata to notebooks, in place")
    mark_parser.add_argument("notebooks", nargs="+", help="solution notebooks, e.g. notebooks/*.ipynb")
    args = parser.parse_args(argv)
    try:
        if args.command == "build":
            build(args.source, args.out)
        else:
            import nbformat

            for path in map(Path, args.notebooks):
                nb = nbformat.read(path, as_version=4)
                count = mark_for_nbgrader(nb, path.stem)
                nbformat.write(nb, path)
                print(f"{path.name}: {count} nbgrader solution cell(s)")
    except ValueError as err:
        parser.exit(2, f"error: {err}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
