"""``python -m c3a_tutorial.assignments``: the command line of ``assignments``, and every check of its arguments.

A usage error (a notebook that is missing, truncated or not a notebook; a course directory that cannot be
written; a course id nbgrader cannot use) is one line on stderr and exit status 2, before anything is
written. ``check`` exits 1 when the notebooks have nbgrader problems (it lists them).
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Sequence
from pathlib import Path

import nbformat

from ..c3a.paths import output_problem
from .assignments import (
    COURSE_ID,
    REPOSITORY_NOTEBOOKS,
    NotebookProblems,
    course_problems,
    exercises,
    init,
    points_by_kind,
)
from .notebook_files import notebook_problems

COURSE_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")  # it names folders in nbgrader's exchange


def course_id_problem(course_id: str) -> str | None:
    """Why ``course_id`` cannot be an nbgrader course id here, or ``None``: it names a folder of the exchange."""
    if COURSE_ID_PATTERN.fullmatch(course_id):
        return None
    return (
        f"course id {course_id!r} is not usable: nbgrader names a folder of the exchange after it, so use letters, "
        "digits, '.', '_' and '-', starting with a letter or digit (e.g. c3a-2025)"
    )


def main(argv: Sequence[str] | None = None) -> int:
    """``init`` or ``check``; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m c3a_tutorial.assignments",
        description="Lay the course notebooks out as an nbgrader course, or check their nbgrader metadata. "
        "Everything else is nbgrader's own commands, run in the course directory.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p_init = sub.add_parser(
        "init",
        help="write a ready nbgrader course directory (config, one assignment per notebook with its data)",
        description="Write nbgrader_config.py, source/<notebook>/ (notebook + the data it reads), the student "
        "header and an exchange folder into a new or empty COURSE_DIR. Then run nbgrader there, e.g. "
        "`cd COURSE_DIR && nbgrader generate_assignment 01_circulant_matrices`.",
    )
    p_init.add_argument("course_dir", type=Path, help="a new or empty directory")
    p_init.add_argument(
        "--notebooks", type=Path, default=REPOSITORY_NOTEBOOKS, help="folder of source notebooks (default: %(default)s)"
    )
    p_init.add_argument(
        "--course-id", default=COURSE_ID, help="nbgrader course id: letters, digits, . _ - (default: %(default)s)"
    )
    p_init.add_argument(
        "--exchange",
        type=Path,
        default=None,
        help="nbgrader exchange folder shared with the students (default: COURSE_DIR/exchange; "
        "on a JupyterHub, typically /srv/nbgrader/exchange)",
    )
    p_check = sub.add_parser(
        "check",
        help="check that notebooks are valid nbgrader source notebooks of this course",
        description="Print every nbgrader metadata problem of the notebooks; exit status 1 if there is one.",
    )
    p_check.add_argument(
        "notebooks", nargs="*", type=Path, help="notebooks or folders of them (default: the repository's notebooks/)"
    )
    args = parser.parse_args(argv)

    if args.command == "init":
        return _init_command(p_init, args)
    paths = _expand(args.notebooks) if args.notebooks else sorted(REPOSITORY_NOTEBOOKS.glob("*.ipynb"))
    unreadable = notebook_problems(paths) or ([] if paths else [f"no notebooks (*.ipynb) in {args.notebooks}"])
    if unreadable:
        p_check.error("; ".join(unreadable))
    found = course_problems(paths)
    for problem in found:
        print(problem)
    if not found:
        total = 0.0
        for path in sorted(Path(p) for p in paths):
            nb = nbformat.read(path, as_version=4)
            (auto, written), count = points_by_kind(nb), len(exercises(nb))
            total += auto + written
            summary = f"{auto:g} autograded + {written:g} written = {auto + written:g}"
            print(f"{path.name}: {count} exercise{'' if count == 1 else 's'}; points {summary}")
        print(f"OK: {len(paths)} notebooks, {total:g} points")
    return 1 if found else 0


def _expand(names: Sequence[Path]) -> list[Path]:
    """The notebooks named: a directory stands for the ``*.ipynb`` in it."""
    return [p for name in names for p in (sorted(name.glob("*.ipynb")) if name.is_dir() else [name])]


def _init_command(p_init: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    """``init``: every argument checked before anything is written (usage errors: exit status 2)."""
    problem = course_id_problem(args.course_id)
    if problem:
        p_init.error(f"--course-id: {problem}.")
    problem = output_problem(args.course_dir, "directory", create_parents=True)
    if problem:
        p_init.error(f"COURSE_DIR {args.course_dir}: {problem}.")
    if args.exchange is not None and args.exchange.exists() and not args.exchange.is_dir():
        p_init.error(f"--exchange {args.exchange} is a file; the exchange is a directory shared with the students.")
    if args.notebooks.is_dir():
        unreadable = notebook_problems(sorted(args.notebooks.glob("*.ipynb")))
        if unreadable:
            p_init.error("; ".join(unreadable) + ". Nothing was written.")
    try:
        layout = init(args.course_dir, args.notebooks, course_id=args.course_id, exchange=args.exchange)
    except (FileExistsError, FileNotFoundError, NotebookProblems) as error:
        p_init.error(str(error))
    except OSError as error:  # a full disk, a folder removed meanwhile: not a usage error
        p_init.exit(1, f"error: the course in {args.course_dir} is incomplete: {error}\n")
    for assignment, files in layout.items():
        print(f"source/{assignment}/: {', '.join(files)}")
    print(
        f"Course written to {args.course_dir}. Next: cd {args.course_dir} && nbgrader generate_assignment "
        f"{next(iter(layout))}"
    )
    return 0
