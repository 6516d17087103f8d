"""Notebook files named on a command line, checked before anything is done with them.

``notebook_problem(path)`` says in one line why ``path`` is not a notebook this process can read: missing, a
directory, truncated, not JSON, not a notebook. The command lines (``assignments``, ``colab``) ask it for every
file first, so a bad name is a usage error (exit status 2) and not a traceback from inside nbformat.
"""

from __future__ import annotations

from pathlib import Path


def notebook_problem(path: str | Path) -> str | None:
    """Why ``path`` cannot be read as a Jupyter notebook, in one line; ``None`` if it can."""
    import nbformat  # comes with Jupyter and nbgrader; imported here so that this module imports without them

    path = Path(path)
    if not path.exists():
        return f"{path}: no such file"
    if path.is_dir():
        return f"{path} is a directory; name the notebooks in it, e.g. {path / '*.ipynb'}"
    try:
        nbformat.read(path, as_version=4)
    except Exception as err:  # noqa: BLE001 - NotJSONError, ValidationError, UnicodeDecodeError...: one meaning here
        reason = (str(err).strip().splitlines() or [""])[0][:100]
        return (
            f"{path} is not a readable notebook: it is truncated, corrupt, or not a .ipynb file "
            f"({type(err).__name__}: {reason})"
        )
    return None


def notebook_problems(paths) -> list[str]:
    """``notebook_problem`` of every path that has one."""
    return [problem for problem in map(notebook_problem, paths) if problem]
