"""``python -m c3a_tutorial.assignments``'s bad inputs, in one table: exit status 2, one line that says what was
wrong, no traceback, nothing written (issue #18). A new option's bad values join the table."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

from c3a_tutorial.tools import assignments

from ..bad_input import assert_usage_error, unwritable_directory
from .nbgrader_course import synthetic_notebook

ROOT = Path(__file__).resolve().parents[2]
GOOD = "99_synthetic.ipynb"


def _notebooks(t: Path, broken: str | None = None) -> str:
    """A folder with the synthetic course notebook and, if asked, a broken one (see ``_broken``)."""
    folder = t / "nbs"
    folder.mkdir(exist_ok=True)
    nbformat.write(synthetic_notebook(), folder / GOOD)
    if broken:
        _broken(t, broken, folder)
    return str(folder)


def _broken(t: Path, kind: str, folder: Path | None = None) -> str:
    folder = folder or t
    path = folder / ("98_broken.py" if kind == "script" else "98_broken.ipynb")
    text = (ROOT / "notebooks" / "01_circulant_matrices.ipynb").read_text()
    path.write_text(
        {"truncated": text[:300], "corrupt": "not json at all", "script": "print(1)\n", "not-a-notebook": "{}"}[kind]
    )
    return str(path)


def _file(t: Path, name: str = "file") -> str:
    (t / name).write_text("a file")
    return str(t / name)


def _non_empty(t: Path) -> str:
    (t / "course").mkdir()
    (t / "course" / "grades.txt").write_text("keep me")
    return str(t / "course")


BAD_INPUTS = [  # (id, argv from the temporary folder, what the error must say)
    ("init-unwritable", lambda t: ["init", str(unwritable_directory(t) / "course"), "--notebooks", _notebooks(t)],
     "is not writable"),
    ("init-under-a-file", lambda t: ["init", _file(t) + "/course", "--notebooks", _notebooks(t)],
     "is a file, not a directory"),
    ("init-into-a-file", lambda t: ["init", _file(t, "course"), "--notebooks", _notebooks(t)],
     "it is a file, and a directory is needed here"),
    ("init-not-empty", lambda t: ["init", _non_empty(t), "--notebooks", _notebooks(t)], "is not an empty directory"),
    ("init-truncated-notebook", lambda t: ["init", str(t / "c"), "--notebooks", _notebooks(t, "truncated")],
     "98_broken.ipynb is not a readable notebook: it is truncated, corrupt, or not a .ipynb file"),
    ("init-corrupt-notebook", lambda t: ["init", str(t / "c"), "--notebooks", _notebooks(t, "corrupt")],
     "98_broken.ipynb is not a readable notebook"),
    ("init-no-notebook-folder", lambda t: ["init", str(t / "c"), "--notebooks", str(t / "missing")],
     "No notebook folder"),
    ("init-course-id-empty", lambda t: ["init", str(t / "c"), "--notebooks", _notebooks(t), "--course-id", ""],
     "course id '' is not usable"),
    ("init-course-id-slash", lambda t: ["init", str(t / "c"), "--notebooks", _notebooks(t), "--course-id", "a/b"],
     "course id 'a/b' is not usable"),
    ("init-course-id-dots", lambda t: ["init", str(t / "c"), "--notebooks", _notebooks(t), "--course-id", ".."],
     "course id '..' is not usable"),
    ("init-exchange-is-a-file", lambda t: ["init", str(t / "c"), "--notebooks", _notebooks(t), "--exchange", _file(t)],
     "--exchange", ),
    ("check-missing", lambda t: ["check", str(t / "missing.ipynb")], "missing.ipynb: no such file"),
    ("check-corrupt", lambda t: ["check", _broken(t, "corrupt")], "is not a readable notebook"),
    ("check-truncated", lambda t: ["check", _broken(t, "truncated")], "truncated, corrupt, or not a .ipynb file"),
    ("check-script", lambda t: ["check", _broken(t, "script")], "98_broken.py is not a readable notebook"),
    ("check-not-a-notebook", lambda t: ["check", _broken(t, "not-a-notebook")], "is not a readable notebook"),
    ("check-empty-folder", lambda t: ["check", str(t)], "no notebooks (*.ipynb) in"),
]  # fmt: skip


@pytest.mark.parametrize("make_argv, fragment", [c[1:] for c in BAD_INPUTS], ids=[c[0] for c in BAD_INPUTS])
def test_bad_input_is_one_line_exit_status_2_and_nothing_written(tmp_path, capsys, make_argv, fragment):
    argv = make_argv(tmp_path)
    prog = f"python -m c3a_tutorial.assignments {argv[0]}"
    assert_usage_error(assignments.main, argv, prog, fragment, tmp_path, capsys)


def test_check_takes_a_folder_of_notebooks(tmp_path, capsys):
    _notebooks(tmp_path)
    assert assignments.main(["check", str(tmp_path / "nbs")]) == 0
    assert "OK: 1 notebooks" in capsys.readouterr().out
