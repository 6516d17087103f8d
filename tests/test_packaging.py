"""The repository's own promises: dependency lists agree, the public API is what __init__ says."""

import re
from pathlib import Path

import pytest

import c3a_tutorial

ROOT = Path(__file__).resolve().parent.parent
CONDA_TO_PYPI = {"pytorch": "torch"}


def _split(requirement: str) -> tuple[str, str]:
    name, spec = re.match(r"^\s*([A-Za-z0-9_.\-]+)\s*(.*)$", requirement).groups()
    return CONDA_TO_PYPI.get(name.lower(), name.lower()).replace("_", "-"), spec.replace(" ", "")


def _pyproject_requirements() -> dict[str, str]:
    tomllib = pytest.importorskip("tomllib", reason="tomllib is in the standard library from Python 3.11")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        reqs += extra
    out = {}
    for r in reqs:
        name, spec = _split(r)
        assert out.get(name, spec) == spec, f"pyproject.toml asks for {name} with two specs: {out[name]} and {spec}"
        out[name] = spec
    return out


def _environment_requirements() -> dict[str, str]:
    out = {}
    text = (ROOT / "environment.yml").read_text().split("\ndependencies:\n", 1)[1]
    for line in text.splitlines():
        m = re.match(r"^\s+- (?!pip:)(.+)$", line)
        if not m or m.group(1).startswith("-e"):
            continue
        name, spec = _split(m.group(1))
        if name not in ("python", "pip"):
            out[name] = spec
    return out


def test_environment_yml_and_pyproject_agree():
    pyproject, conda = _pyproject_requirements(), _environment_requirements()
    assert set(pyproject) == set(conda), (
        f"only in pyproject.toml: {sorted(set(pyproject) - set(conda))}; "
        f"only in environment.yml: {sorted(set(conda) - set(pyproject))}"
    )
    for name, spec in pyproject.items():
        assert conda[name] == spec, f"{name}: pyproject.toml says {spec!r}, environment.yml says {conda[name]!r}"


def test_public_api_is_listed_and_importable():
    for name in c3a_tutorial.__all__:
        assert hasattr(c3a_tutorial, name), f"__all__ lists {name} but c3a_tutorial has no such attribute"
    assert len(set(c3a_tutorial.__all__)) == len(c3a_tutorial.__all__)


def test_readme_api_table_names_only_public_api():
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Public API", 1)[1].split("\n## ", 1)[0]
    named = set(re.findall(r"^\| `([A-Za-z_0-9]+)`", section, flags=re.M))
    assert named, "the README's Public API table is empty"
    assert named <= set(c3a_tutorial.__all__), f"README names non-public API: {named - set(c3a_tutorial.__all__)}"


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    assert "make test" in readme
    assert "make test" in (ROOT / ".ci" / "run").read_text()
