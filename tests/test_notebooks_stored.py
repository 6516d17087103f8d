"""Every notebook is stored executed, top to bottom, with clean outputs.

A reader who opens a notebook on GitHub or in JupyterLab without running it should see what a run gives;
nbval checks the numbers, this checks the stored file itself.
"""

import re
import socket
from pathlib import Path

import nbformat
import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("*.ipynb"))
# Paths of a particular machine must not leak into a stored output.
ABSOLUTE_PATH = re.compile(r"(?<![\w.])/(?:work|tmp|root|home|Users)/")


def _output_texts(output) -> list[str]:
    if output.output_type == "stream":
        return [output.text]
    if output.output_type == "error":
        return ["\n".join(output.traceback)]
    return [
        value for key, value in output.get("data", {}).items() if key.startswith("text/") and isinstance(value, str)
    ]


def test_there_are_notebooks():
    assert NOTEBOOKS, "no notebooks found under notebooks/"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_stored_executed_in_order(path):
    nb = nbformat.read(path, as_version=4)
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    counts = [cell.execution_count for cell in code]
    assert all(isinstance(count, int) for count in counts), f"{path.name}: not every code cell was executed: {counts}"
    assert counts == sorted(counts) and len(set(counts)) == len(counts), (
        f"{path.name}: execution counts are not ascending ({counts}); re-run it top to bottom with "
        "`jupyter nbconvert --to notebook --execute --inplace`."
    )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_outputs_are_clean(path):
    nb = nbformat.read(path, as_version=4)
    hostname = socket.gethostname()
    for index, cell in enumerate(nb.cells):
        for output in cell.get("outputs", []):
            where = f"{path.name}, cell {index}"
            assert output.output_type != "error", f"{where}: stored error output {output.get('ename')}"
            assert not (output.output_type == "stream" and output.name == "stderr"), (
                f"{where}: stderr output (a warning?): {output.text[:300]!r}"
            )
            for text in _output_texts(output):
                match = ABSOLUTE_PATH.search(text)
                assert match is None, (
                    f"{where}: absolute path in an output: {text[max(0, match.start() - 40) : match.end() + 40]!r}"
                )
                assert len(hostname) < 4 or hostname not in text, (
                    f"{where}: the machine name {hostname!r} is in an output"
                )
