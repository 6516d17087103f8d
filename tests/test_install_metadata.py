"""A clean install: building the package's metadata prints no deprecation warning, offline."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _build_metadata(pyproject_text: str, folder: Path) -> tuple[str, str]:
    """(everything setuptools printed, the METADATA file) for pyproject_text, built in a copy of the project's
    metadata sources (pyproject.toml, README.md and an empty package), so nothing is written into the checkout."""
    src, out = folder / "src", folder / "out"
    (src / "c3a_tutorial").mkdir(parents=True)
    out.mkdir()
    (src / "pyproject.toml").write_text(pyproject_text)
    shutil.copy(ROOT / "README.md", src / "README.md")
    (src / "c3a_tutorial" / "__init__.py").write_text("")
    code = f"from setuptools import build_meta; print(build_meta.prepare_metadata_for_build_wheel({str(out)!r}))"
    result = subprocess.run(
        [sys.executable, "-W", "always", "-c", code], cwd=src, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr
    dist_info = result.stdout.strip().splitlines()[-1]
    return result.stdout + result.stderr, (out / dist_info / "METADATA").read_text()


def test_the_metadata_builds_without_deprecation_warnings(tmp_path):
    printed, metadata = _build_metadata((ROOT / "pyproject.toml").read_text(), tmp_path)
    assert "Deprecat" not in printed, printed
    assert "License-Expression: MIT" in metadata.splitlines(), metadata


def test_the_old_license_table_would_warn(tmp_path):
    """The check above can fail: the table form this project used before warns on every build."""
    text = (ROOT / "pyproject.toml").read_text()
    assert '\nlicense = "MIT"' in text
    printed, _ = _build_metadata(text.replace('\nlicense = "MIT"', '\nlicense = { text = "MIT" }'), tmp_path)
    assert "SetuptoolsDeprecationWarning" in printed, printed


def test_build_requires_a_setuptools_that_reads_spdx_licenses():
    tomllib = pytest.importorskip("tomllib", reason="tomllib is in the standard library from Python 3.11")
    from packaging.requirements import Requirement
    from packaging.version import Version

    (requirement,) = [
        Requirement(r)
        for r in tomllib.loads((ROOT / "pyproject.toml").read_text())["build-system"]["requires"]
        if Requirement(r).name == "setuptools"
    ]
    lowest = min(Version(s.version) for s in requirement.specifier if s.operator == ">=")
    assert lowest >= Version("77.0.3"), f"setuptools {lowest} does not read license = 'MIT' (PEP 639 came in 77)"
    setuptools = pytest.importorskip("setuptools")
    # `pip install -e . --no-build-isolation` and this file's builds use this environment's setuptools.
    assert requirement.specifier.contains(setuptools.__version__), (
        f"this environment's setuptools {setuptools.__version__} is older than pyproject.toml's {requirement}"
    )
