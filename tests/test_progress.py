"""The progress lines of long tests (tests/progress_report.py), in real pytest runs of tiny test files."""

import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from .progress_report import ENV_VAR, format_elapsed, interval_from_env

ROOT = Path(__file__).resolve().parent.parent

TESTS = """
import time

import pytest


@pytest.fixture(scope="module")
def slow_setup():
    time.sleep(2.5)
    return 1


def test_quick():
    pass


def test_slow_call():
    print("output the test prints")
    time.sleep(2.5)


def test_slow_fixture(slow_setup):
    assert slow_setup == 1


def test_fails_after_printing():
    print("printed before failing")
    time.sleep(1.5)
    assert False
"""


def _pytest(folder: Path, interval: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """pytest on folder's files with only the progress plugin of this repository (not its conftest.py)."""
    (folder / "pytest.ini").write_text("[pytest]\n")
    env = {**os.environ, ENV_VAR: interval, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "pytest", "-p", "tests.progress_report", "-p", "no:cacheprovider"]
    command += ["-c", str(folder / "pytest.ini"), "--rootdir", str(folder), *args]
    return subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True, timeout=timeout)


def _progress_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("[still running]")]


@pytest.fixture(scope="module")
def run_with_one_second(tmp_path_factory):
    folder = tmp_path_factory.mktemp("progress")
    (folder / "test_tiny.py").write_text(TESTS)
    return _pytest(folder, "1", "-q", "test_tiny.py")


def test_long_tests_say_what_they_do_and_quick_ones_say_nothing(run_with_one_second):
    lines = _progress_lines(run_with_one_second.stdout)
    call = [line for line in lines if "test_tiny.py::test_slow_call: running, " in line]
    fixture = [line for line in lines if "test_slow_fixture: set-up, fixture 'slow_setup' (module scope), " in line]
    assert call and fixture, run_with_one_second.stdout
    assert all(line.endswith(" so far") for line in lines), lines
    assert not [line for line in lines if "test_quick" in line], lines
    assert "1 failed, 3 passed" in run_with_one_second.stdout, run_with_one_second.stdout


def test_the_tests_output_is_still_captured(run_with_one_second):
    out = run_with_one_second.stdout
    assert "output the test prints" not in out, "a passing test's output reached the terminal: capture is broken"
    report = out.split("Captured stdout call", 1)
    assert len(report) == 2 and "printed before failing" in report[1], out


def test_zero_turns_the_lines_off(tmp_path):
    (tmp_path / "test_tiny.py").write_text("import time\n\ndef test_slow():\n    time.sleep(1.5)\n")
    result = _pytest(tmp_path, "0", "-q", "test_tiny.py")
    assert result.returncode == 0, result.stdout + result.stderr
    assert _progress_lines(result.stdout) == []


def test_a_bad_interval_is_refused_with_what_to_give(tmp_path):
    (tmp_path / "test_tiny.py").write_text("def test_nothing():\n    pass\n")
    result = _pytest(tmp_path, "a minute", "-q", "test_tiny.py")
    assert result.returncode == pytest.ExitCode.USAGE_ERROR, result.stdout + result.stderr
    assert f"{ENV_VAR}='a minute': give the seconds between progress lines" in result.stderr


def test_interval_and_elapsed_time_are_read_and_written_as_documented():
    assert interval_from_env({}) == 60
    assert interval_from_env({ENV_VAR: " 2.5 "}) == 2.5
    for bad in ("-1", "nan", "soon"):
        with pytest.raises(pytest.UsageError, match=ENV_VAR):
            interval_from_env({ENV_VAR: bad})
    assert format_elapsed(12.34) == "12.3 s"
    assert format_elapsed(125.9) == "2 min 05 s"


@pytest.mark.slow
def test_a_long_notebook_cell_under_nbval(tmp_path):
    """nbval's cells are tests: a slow one gets its lines, and the notebook still passes."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("import time\ntime.sleep(3)"), nbformat.v4.new_code_cell("print(1 + 1)")]
    nb.cells[1].outputs = [nbformat.v4.new_output("stream", name="stdout", text="2\n")]  # checked by nbval
    nb.cells[0].execution_count, nb.cells[1].execution_count = 1, 2
    nbformat.write(nb, tmp_path / "slow.ipynb")
    result = _pytest(tmp_path, "1", "-q", "--nbval", "--nbval-current-env", "slow.ipynb", timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert [line for line in _progress_lines(result.stdout) if "slow.ipynb::Cell 0" in line], result.stdout
