"""Every notebook opens in Colab with one click, and its Colab set-up cell does nothing anywhere else."""

from __future__ import annotations

import re
import sys
import types
from pathlib import Path
from urllib.parse import urlparse

import nbformat
import pytest
from IPython.core.inputtransformer2 import TransformerManager

from c3a_tutorial.tools import colab

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
LINK = re.compile(r"\]\((https://colab\.research\.google\.com/github/[^)\s]+)\)")  # links, not the badge image


def _repository_path(url: str) -> Path:
    """The file inside this repository that a Colab URL opens."""
    parsed = urlparse(url)
    prefix = f"/github/{colab.REPOSITORY}/blob/{colab.BRANCH}/"
    assert parsed.netloc == "colab.research.google.com" and parsed.path.startswith(prefix), (
        f"{url} does not open this repository ({colab.REPOSITORY}, branch {colab.BRANCH}) in Colab"
    )
    return ROOT / parsed.path[len(prefix) :]


def test_there_are_notebooks():
    assert NOTEBOOKS


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_first_cell_has_the_badge_for_this_notebook(path):
    first = nbformat.read(path, as_version=4).cells[0]
    assert first.cell_type == "markdown"
    assert first.source.splitlines()[0] == colab.badge_markdown(path), (
        f"{path.name}: the first line of cell 0 is not its Colab badge; run `python -m c3a_tutorial.colab {path.name}`"
    )
    urls = LINK.findall(first.source)
    assert urls == [colab.colab_url(path)]
    assert _repository_path(urls[0]) == path, f"{path.name}: the badge opens {urls[0]}, another notebook"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_second_cell_is_the_guarded_setup_cell(path):
    cell = nbformat.read(path, as_version=4).cells[1]
    assert cell.cell_type == "code" and cell.source == colab.setup_cell_source(), (
        f"{path.name}: cell 1 must be the Colab set-up cell; run `python -m c3a_tutorial.colab {path.name}`"
    )
    assert 'if "google.colab" in sys.modules:' in cell.source
    assert not [o for o in cell.get("outputs", []) if o.get("name") == "stderr" or o.output_type == "error"]


class _RecordingShell:
    """Stands in for ``get_ipython()``: records the magics the set-up cell would run."""

    def __init__(self):
        self.calls = []

    def run_line_magic(self, name, line, *args):
        self.calls.append((name, line))


def _run_setup_cell(monkeypatch, in_colab: bool) -> list:
    # The cell as IPython runs it: magics become get_ipython().run_line_magic(...) calls.
    code = TransformerManager().transform_cell(colab.setup_cell_source())
    if in_colab:
        monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    else:
        monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    shell = _RecordingShell()
    exec(compile(code, "<colab set-up cell>", "exec"), {"get_ipython": lambda: shell})
    return shell.calls


def test_setup_cell_is_a_no_op_outside_colab(monkeypatch):
    assert _run_setup_cell(monkeypatch, in_colab=False) == []


def test_setup_cell_installs_the_package_with_its_notebook_extras_in_colab(monkeypatch):
    calls = _run_setup_cell(monkeypatch, in_colab=True)
    assert len(calls) == 1 and calls[0][0] == "pip"
    line = calls[0][1]
    assert "install" in line and "c3a-tutorial[notebooks]" in line
    assert f"github.com/{colab.REPOSITORY}@{colab.BRANCH}" in line


def test_apply_inserts_then_refreshes_without_duplicating(tmp_path):
    path = tmp_path / "07_new.ipynb"
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# 07 — New"), nbformat.v4.new_code_cell("import c3a_tutorial")]
    nbformat.write(nb, path)
    colab.apply(path)
    once = path.read_text()
    colab.apply(path)
    assert path.read_text() == once
    cells = nbformat.read(path, as_version=4).cells
    assert [c.cell_type for c in cells] == ["markdown", "code", "code"]
    assert cells[0].source == f"{colab.badge_markdown(path)}\n# 07 — New"
    assert cells[1].source == colab.setup_cell_source() and cells[2].source == "import c3a_tutorial"


def test_apply_rejects_a_notebook_without_a_title_cell(tmp_path):
    path = tmp_path / "08_bad.ipynb"
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("x = 1")]
    nbformat.write(nb, path)
    with pytest.raises(ValueError, match="first cell must be the markdown title cell"):
        colab.apply(path)


def test_readme_colab_table_links_every_notebook():
    readme = (ROOT / "README.md").read_text()
    assert "## Open in Colab" in readme, "README.md lacks its 'Open in Colab' section"
    section = readme.split("## Open in Colab", 1)[1].split("\n## ", 1)[0]
    linked = {_repository_path(url) for url in LINK.findall(section)}
    missing = [p.name for p in NOTEBOOKS if p not in linked]
    assert not missing, f"the README's Colab table does not link {missing}"
    for path in linked:
        assert path.parent == ROOT / "notebooks", f"the README's Colab table links {path}, not a notebook"


def test_the_student_version_drops_a_badge_that_is_not_on_its_cells_first_line():
    """Issue #26: a badge further down a cell (pasted under a title) still opens the solution notebook."""
    from c3a_tutorial.tools import assignments

    nb = nbformat.v4.new_notebook()
    badge = colab.badge_markdown(Path("notebooks/99_synthetic.ipynb"))
    nb.cells = [nbformat.v4.new_markdown_cell(f"# 99 — Synthetic\n\nIntro.\n{badge}\nMore.")]
    assert assignments.student_facing(nb).cells[0].source == "# 99 — Synthetic\n\nIntro.\nMore."
