"""The two cells every notebook starts with: the "Open in Colab" badge and a Colab-only set-up cell.

``REPOSITORY`` is the one place the repository's address lives. ``python -m c3a_tutorial.colab
notebooks/*.ipynb`` writes (or refreshes) the badge into each notebook's first cell and the set-up
cell as its second; ``tests/test_colab.py`` checks that every notebook carries exactly these.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from ..c3a.paths import output_problem
from .notebook_files import notebook_problem

REPOSITORY = "c3a-tutorial/c3a-tutorial"  # GitHub owner/name
BRANCH = "main"
BADGE_IMAGE = "https://colab.research.google.com/assets/colab-badge.svg"
SETUP_MARKER = "# Colab set-up"


def colab_url(notebook: str | Path) -> str:
    """The address that opens ``notebooks/<name>`` of this repository in Colab."""
    return f"https://colab.research.google.com/github/{REPOSITORY}/blob/{BRANCH}/notebooks/{Path(notebook).name}"


def badge_markdown(notebook: str | Path) -> str:
    return f"[![Open In Colab]({BADGE_IMAGE})]({colab_url(notebook)})"


def setup_cell_source() -> str:
    """Installs the package with its notebook extras inside Colab; a no-op anywhere else."""
    return (
        f"{SETUP_MARKER}: installs this course's package inside Google Colab, does nothing elsewhere.\n"
        "import sys\n"
        "\n"
        'if "google.colab" in sys.modules:\n'
        f'    %pip install -q "c3a-tutorial[notebooks] @ git+https://github.com/{REPOSITORY}@{BRANCH}"'
    )


def with_badge(path: str | Path):
    """The notebook at ``path`` with the badge at the top of its first (markdown) cell and the set-up cell second."""
    import nbformat

    path = Path(path)
    nb = nbformat.read(path, as_version=4)
    first = nb.cells[0] if nb.cells else None
    if first is None or first.cell_type != "markdown":
        raise ValueError(f"{path}: the first cell must be the markdown title cell.")
    lines = [line for line in first.source.splitlines() if "colab-badge.svg" not in line]
    first.source = "\n".join([badge_markdown(path), *lines]).strip("\n")
    source = setup_cell_source()
    if len(nb.cells) > 1 and nb.cells[1].cell_type == "code" and nb.cells[1].source.startswith(SETUP_MARKER):
        nb.cells[1].source = source
    else:
        nb.cells.insert(1, nbformat.v4.new_code_cell(source))
    return nb


def _write(nb, path: Path) -> None:
    """Write next to ``path``, then move into place: an interrupted write leaves the notebook as it was."""
    import nbformat

    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        nbformat.write(nb, temporary)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def apply(path: str | Path) -> None:
    """Put the badge at the top of the first (markdown) cell and the set-up cell second, in place."""
    _write(with_badge(path), Path(path))


def main(argv: list[str] | None = None) -> None:
    """``python -m c3a_tutorial.colab notebooks/NN_name.ipynb [...]``: add or refresh badge and set-up cell.

    Every notebook is read and checked first; a bad one (missing, corrupt, without a title cell, in a folder that
    cannot be written) is a usage error (exit status 2) and no notebook is changed.
    """
    parser = argparse.ArgumentParser(
        prog="python -m c3a_tutorial.colab",
        description="Write (or refresh) the Open-in-Colab badge into each notebook's first cell and the Colab-only "
        "set-up cell as its second, in place.",
    )
    parser.add_argument("notebooks", nargs="+", type=Path, help="notebooks to update, e.g. notebooks/*.ipynb")
    args = parser.parse_args(argv)
    problems = []
    for path in args.notebooks:
        problem = notebook_problem(path)
        unwritable = None if problem else output_problem(path, "file")
        if problem or unwritable:
            problems.append(problem or f"{path}: {unwritable}")
    if problems:
        parser.error("; ".join(problems) + ". No notebook was changed.")
    updated = []
    for path in args.notebooks:
        try:
            updated.append((path, with_badge(path)))
        except ValueError as error:
            parser.error(f"{error} No notebook was changed.")
    for path, nb in updated:
        _write(nb, path)
        print(f"badge and set-up cell written: {path}")


if __name__ == "__main__":
    main()
