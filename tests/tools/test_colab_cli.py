"""``python -m c3a_tutorial.colab``'s bad inputs, in one table: exit status 2, one line that says what was wrong,
no traceback, no notebook changed (issue #18). A new option's bad values join the table."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

from c3a_tutorial.tools import colab

from ..bad_input import assert_usage_error, unwritable_directory


def _notebook(t: Path, name: str = "07_new.ipynb", title: bool = True) -> str:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# 07 — New") if title else nbformat.v4.new_code_cell("x = 1")]
    nbformat.write(nb, t / name)
    return str(t / name)


def _text(t: Path, name: str, text: str) -> str:
    (t / name).write_text(text)
    return str(t / name)


def _in_unwritable_folder(t: Path) -> str:
    folder = unwritable_directory(t)
    if folder == Path("/sys"):
        pytest.skip("running as root: no folder of our own that this process cannot write into")
    folder.chmod(0o755)
    path = _notebook(folder)
    folder.chmod(0o555)
    return path


BAD_INPUTS = [  # (id, argv from the temporary folder, what the error must say)
    ("no-argument", lambda t: [], "the following arguments are required: notebooks"),
    ("unknown-option", lambda t: ["--badge-only", _notebook(t)], "unrecognized arguments: --badge-only"),
    ("missing", lambda t: [str(t / "missing.ipynb")], "missing.ipynb: no such file"),
    ("corrupt", lambda t: [_text(t, "bad.ipynb", "not json")], "bad.ipynb is not a readable notebook"),
    ("truncated", lambda t: [_text(t, "cut.ipynb", '{"cells": [')], "cut.ipynb is not a readable notebook"),
    ("a-folder", lambda t: [str(t)], "is a directory; name the notebooks in it"),
    ("no-title-cell", lambda t: [_notebook(t, "a.ipynb"), _notebook(t, "b.ipynb", title=False)],
     "b.ipynb: the first cell must be the markdown title cell"),  # and a.ipynb, before it, is not changed either
    ("unwritable-folder", lambda t: [_in_unwritable_folder(t)], "is not writable"),
]  # fmt: skip


@pytest.mark.parametrize("make_argv, fragment", [c[1:] for c in BAD_INPUTS], ids=[c[0] for c in BAD_INPUTS])
def test_bad_input_is_one_line_exit_status_2_and_nothing_changed(tmp_path, capsys, make_argv, fragment):
    assert_usage_error(colab.main, make_argv(tmp_path), "python -m c3a_tutorial.colab", fragment, tmp_path, capsys)


def test_help_is_help_not_a_file_name(capsys):
    """Issue #18: ``--help`` was read as the name of a notebook."""
    with pytest.raises(SystemExit) as exit_info:
        colab.main(["--help"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.startswith("usage: python -m c3a_tutorial.colab ")


def test_the_command_updates_every_notebook_named(tmp_path, capsys):
    paths = [_notebook(tmp_path, "a.ipynb"), _notebook(tmp_path, "b.ipynb")]
    colab.main(paths)
    for path in paths:
        assert nbformat.read(path, as_version=4).cells[1].source == colab.setup_cell_source()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.ipynb", "b.ipynb"]  # no temporary file left
