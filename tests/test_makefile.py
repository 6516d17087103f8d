"""The Makefile's promises, checked without a network: `make -n` prints what make would run, against a .venv in a
temporary folder with hand-made stamps. No test here builds a virtual environment or installs anything."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CPU_INDEX = "--index-url https://download.pytorch.org/whl/cpu"

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="needs make")


def _make(*args: str, dry_run: bool = True, timeout: float = 120, **env_vars: str) -> subprocess.CompletedProcess:
    # An outer `make test TORCH=...` passes its variables down in MAKEFLAGS, and CI exports TORCH: neither may
    # decide what these runs see.
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "TORCH", "TORCH_INDEX")}
    env.update(env_vars)
    command = ["make", *(["-n"] if dry_run else []), *args]
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


def _dry(*args: str, **env_vars: str) -> list[str]:
    result = _make(*args, **env_vars)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout.splitlines()


def _torch_installs(lines: list[str]) -> list[str]:
    return [line for line in lines if "-m pip install --force-reinstall --no-deps" in line]


def _built_venv(tmp_path: Path, torch: str) -> Path:
    """A .venv as make leaves it for TORCH=torch: its python, the torch record written by the very command make
    would run, then the stamp, newer than pyproject.toml and the record."""
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").write_text("#!/bin/sh\nexit 1\n")
    (venv / "bin" / "python").chmod(0o755)
    record = [line for line in _dry("demo", f"VENV={venv}", f"TORCH={torch}") if ".torch-requirement" in line]
    assert len(record) == 1 and record[0].startswith("printf "), record
    subprocess.run(record[0], shell=True, check=True, cwd=ROOT)
    newest = max((ROOT / "pyproject.toml").stat().st_mtime, (venv / ".torch-requirement").stat().st_mtime)
    (venv / ".installed").touch()
    os.utime(venv / ".installed", (newest + 10, newest + 10))
    return venv


# ------------------------------------------------------------------------------------------------ which torch
def test_linux_without_an_nvidia_driver_gets_the_cpu_build(tmp_path):
    lines = _dry("demo", f"VENV={tmp_path / 'venv'}", "OS_NAME=Linux", "NVIDIA_PRESENT=no")
    assert any(line.endswith("-m venv " + str(tmp_path / "venv")) for line in lines), lines
    installs = _torch_installs(lines)
    assert len(installs) == 1 and installs[0].endswith(f'"torch>=2.4" {CPU_INDEX}'), lines


@pytest.mark.parametrize("machine", [("Linux", "yes"), ("Darwin", "no")], ids=["linux-nvidia", "macos"])
def test_an_nvidia_machine_and_macos_get_the_pypi_build(tmp_path, machine):
    os_name, nvidia = machine
    lines = _dry("demo", f"VENV={tmp_path / 'venv'}", f"OS_NAME={os_name}", f"NVIDIA_PRESENT={nvidia}")
    installs = _torch_installs(lines)
    assert len(installs) == 1 and installs[0].endswith('"torch>=2.4"'), lines


def test_a_given_torch_comes_from_pypi_unless_an_index_is_given_too(tmp_path):
    venv = f"VENV={tmp_path / 'venv'}"
    # CI's way: TORCH pinned, on a Linux machine without NVIDIA, and only PyPI reachable.
    for lines in (
        _dry("demo", venv, "TORCH=torch==2.13.0", "NVIDIA_PRESENT=no"),
        _dry("demo", venv, "NVIDIA_PRESENT=no", TORCH="torch==2.13.0"),
    ):
        assert _torch_installs(lines)[0].endswith('"torch==2.13.0"'), lines
    lines = _dry("demo", venv, "TORCH=torch==2.5.1", "TORCH_INDEX=https://download.pytorch.org/whl/cpu")
    assert _torch_installs(lines)[0].endswith(f'"torch==2.5.1" {CPU_INDEX}'), lines


def test_which_torch_says_what_would_be_installed_and_why():
    out = _dry("which-torch", "OS_NAME=Linux", "NVIDIA_PRESENT=no")
    assert f'pip install "torch>=2.4" {CPU_INDEX}' in out[-1] and "no NVIDIA driver" in out[-1], out


# ---------------------------------------------------------------------------------- the stamp follows TORCH
def test_an_unchanged_torch_installs_nothing(tmp_path):
    venv = _built_venv(tmp_path, "torch==2.13.0")
    lines = _dry("demo", f"VENV={venv}", "TORCH=torch==2.13.0")
    assert not [line for line in lines if "pip install" in line], lines
    assert any("-m c3a_tutorial.finetune --method all" in line for line in lines), lines


def test_a_changed_torch_reinstalls_torch_into_the_existing_venv(tmp_path):
    venv = _built_venv(tmp_path, "torch==2.13.0")
    for torch, expected in (("torch==2.5.1", '"torch==2.5.1"'), ("torch>=2.4", '"torch>=2.4"')):
        lines = _dry("demo", f"VENV={venv}", f"TORCH={torch}")
        installs = _torch_installs(lines)
        assert len(installs) == 1 and installs[0].endswith(expected), lines
        assert any(line.endswith('-m pip install -e ".[dev]"') for line in lines), lines
    # The same requirement from another index is another torch (PyPI's CUDA build against the CPU one).
    lines = _dry("demo", f"VENV={venv}", "TORCH=torch==2.13.0", "TORCH_INDEX=https://download.pytorch.org/whl/cpu")
    assert len(_torch_installs(lines)) == 1, lines


def test_a_newer_pyproject_reinstalls_the_package_but_not_torch(tmp_path):
    venv = _built_venv(tmp_path, "torch==2.13.0")
    old = (ROOT / "pyproject.toml").stat().st_mtime - 10
    os.utime(venv / ".installed", (old, old))
    lines = _dry("demo", f"VENV={venv}", "TORCH=torch==2.13.0")
    assert not _torch_installs(lines), lines
    assert any(line.endswith('-m pip install -e ".[dev]"') for line in lines), lines


# -------------------------------------------------------------------------------------------------- make lab
def _lab_command(tmp_path, *args) -> str:
    venv = _built_venv(tmp_path, "torch==2.13.0")
    lines = _dry("lab", f"VENV={venv}", "TORCH=torch==2.13.0", *args)
    assert any("open the http://127.0.0.1:8888/lab?token=..." in line for line in lines), lines
    (command,) = [line for line in lines if "/bin/jupyter lab" in line]
    return command


def test_lab_allows_root_for_root_only(tmp_path):
    assert "--allow-root" in _lab_command(tmp_path / "root", "UID_OF_USER=0").split()
    assert "--allow-root" not in _lab_command(tmp_path / "user", "UID_OF_USER=1000").split()
    assert ("--allow-root" in _lab_command(tmp_path / "me").split()) == (os.getuid() == 0)


def test_lab_passes_lab_args_on(tmp_path):
    assert _lab_command(tmp_path, "UID_OF_USER=1000", "LAB_ARGS=--no-browser --port 9999").split()[-4:] == [
        "--no-browser",
        "--port",
        "9999",
        "notebooks/",
    ]


# ------------------------------------------------------------------------------------------------- gpu-check
def test_gpu_check_without_torch_says_what_is_missing_in_one_line():
    no_torch = f"{sys.executable} -I -S"  # no site-packages: this Python cannot import torch
    if subprocess.run([*no_torch.split(), "-c", "import torch"], capture_output=True).returncode == 0:
        pytest.skip("torch importable without site-packages")
    result = _make("gpu-check", f"PYTHON={no_torch}", dry_run=False)
    assert result.returncode != 0
    assert "Traceback" not in result.stdout + result.stderr
    (line,) = [line for line in result.stderr.splitlines() if line.startswith("make gpu-check:")]
    assert "cannot import torch (ModuleNotFoundError: No module named 'torch')" in line, line
    assert "make gpu-check PYTHON=/path/to/python" in line, line


def test_gpu_check_with_torch_goes_on_to_the_check():
    result = _make("gpu-check", f"PYTHON={sys.executable}", "GPU_CHECK_ARGS=--help", dry_run=False, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "usage:" in result.stdout and "--parts" in result.stdout, result.stdout
