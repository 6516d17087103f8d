"""``make gpu-check``: everything this repository does on a GPU, measured in one prepared command.

A GPU is at hand only now and then, for a few minutes, on a fresh machine with a copy of the repository and no
network. This command runs there and needs nothing else: it installs the wheels staged in ``$C3A_GPU_WHEELS`` (if
set: ``pip install --no-index --no-deps``), then runs, each part in its own process with its own time budget, in
order of value:

1. ``tests``: the unit tests that are skipped without CUDA (``tests/c3a/test_cuda.py``: ``gradcheck`` of the operator
   on CUDA in float64 for the GPU and the previous choices, half precision, autocast);
2. ``operator``: the operator's paths (FFT with the GPU choices and the previous ones, the dense gather, what
   ``path="auto"`` picks, the dense gather replayed from one CUDA graph) and LoRA's adapter, interleaved, with CUDA
   events, float32 and bf16, at the README's cells and at 8k-131k tokens, plus a CUDA profile of each;
3. ``bench``: ``python -m c3a_tutorial.bench`` on CUDA at the README's shapes and token counts, float32 and bf16, ours
   vs LoRA r=8 vs PEFT's C3A, interleaved, CUDA events, ``--profile``;
4. ``finetune``: C3A b=24, LoRA r=8 and full fine-tuning of MiniLM in the stored sweep's training settings, one seed,
   bf16 autocast, compared with the stored CPU sweep's seeds; then notebook 05's GPU configuration, timed;
5. ``compile``: one training step of MiniLM, C3A b=24 and LoRA r=8 in the stored sweep's settings, eager, with
   ``--cuda-graphs`` and with ``--compile`` (the training loop's options for the host-bound step, issue #28), timed
   after the compile and capture steps;
6. ``sweep``: two settings of ``python -m c3a_tutorial.sweep`` on CUDA (a 2-process ``torchrun`` with two GPUs);
7. ``threads``: the CPU operator against LoRA r=8 on the host's cores at 1, 2, 4, 8, 16 threads.

Everything lands in one folder (default ``runs/gpu-check/``; an existing non-empty one is refused without
``--force``): one JSON (and PNG where there is a figure) per part as soon as it has them, each part's log, and
``summary.json`` with the machine, GPU, driver, CUDA, torch, transformers and peft versions and every part's status
(``ok``, ``failed`` with the error, ``skipped`` with the reason) and duration. A part that fails or runs out of time
does not stop the others. Without CUDA it says so in one line and exits 1; ``--cpu-smoke`` runs every part on the
CPU at tiny sizes instead, which is how the tests exercise the plumbing (``tests/experiments/test_gpu_check.py``).

    make gpu-check                                   # = python -m c3a_tutorial.experiments.gpu_check
    C3A_GPU_WHEELS=/staged python -m c3a_tutorial.experiments.gpu_check --out runs/gpu-check --force
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DEFAULT_OUT = os.path.join("runs", "gpu-check")
WHEELS_ENV = "C3A_GPU_WHEELS"
# Seconds per part, in order of value; about 6 minutes in all, so that with the install and each part's start-up
# (an import of torch, a CUDA context) the whole command stays under 8 minutes.
# The 2026-11-30 H200 run used 13, 8, 18, 41, 20 and 14 s of the first six budgets; "compile" builds 4 compiled models.
BUDGETS = {"tests": 45, "operator": 40, "bench": 80, "finetune": 75, "compile": 90, "sweep": 40, "threads": 30}
PARTS = tuple(BUDGETS)
GRACE_S = 10  # a part past its budget by this much is stopped (it checks its own deadline long before)
MIN_START_S = 8  # a part is skipped when less than this is left of the whole budget


class UsageError(Exception):
    """A bad argument or output folder: one line, exit status 2, nothing written."""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m c3a_tutorial.experiments.gpu_check",
        description="Run every GPU-only check and measurement of this repository, each part on its own time budget.",
    )
    p.add_argument("--out", default=DEFAULT_OUT, help=f"results folder (default {DEFAULT_OUT})")
    p.add_argument("--force", action="store_true", help="write into an existing non-empty --out")
    p.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS), help="which parts (default: all)")
    p.add_argument("--budget", type=float, default=float(sum(BUDGETS.values())), help="seconds for all parts")
    p.add_argument("--cpu-smoke", action="store_true", help="every part on the CPU at tiny sizes (tests the plumbing)")
    p.add_argument("--model", default=None, help="backbone for finetune/sweep (default: the bundled MiniLM)")
    p.add_argument("--data-file", default=None, help="stdlib data set JSON to train on (default: one staged in "
                   f"${WHEELS_ENV}, else built from this Python's standard library)")  # fmt: skip
    p.add_argument("--part", default=None, help=argparse.SUPPRESS)  # a child process runs one part
    p.add_argument("--deadline", type=float, default=None, help=argparse.SUPPRESS)
    return p


# ---------------------------------------------------------------------------------------------------
# The parent: checks, install, one child process per part, the summary.


def check_out(out: Path, force: bool) -> None:
    """Refuse an existing non-empty folder (without ``force``), a file in its place, or a folder we cannot create."""
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is a file, not a folder: choose another --out.")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise UsageError(f"--out {out} exists and is not empty: pass --force to write into it, or choose another.")
    parent = next((p for p in [out, *out.parents] if p.exists()), Path("."))
    if not os.access(parent, os.W_OK):
        raise UsageError(f"--out {out}: {parent} is not writable; choose another --out.")


def _run(command: list[str], timeout: float, env=None) -> tuple[int | None, str]:
    """``(exit status or None on timeout, combined output)``."""
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env, cwd=REPO)
    except subprocess.TimeoutExpired as err:
        output = (err.stdout or b"") + (err.stderr or b"")
        return None, output.decode(errors="replace") if isinstance(output, bytes) else output
    return done.returncode, done.stdout + done.stderr


def install_wheels(folder: str | None, out: Path) -> dict:
    """``pip install --no-index --no-deps`` every wheel in ``folder``; what was installed, and how long it took."""
    if not folder:
        return {"status": "skipped", "reason": f"${WHEELS_ENV} is not set: nothing to install"}
    wheels = sorted(glob.glob(os.path.join(folder, "*.whl")))
    if not wheels:
        return {"status": "skipped", "reason": f"no .whl file in ${WHEELS_ENV}={folder}"}
    command = [sys.executable, "-m", "pip", "install", "--no-index", "--no-deps", "--disable-pip-version-check"]
    rc, output = _run([*command, *wheels], timeout=120)
    (out / "install.log").write_text(output)
    names = [os.path.basename(w) for w in wheels]
    if rc != 0:
        return {"status": "failed", "error": f"pip exited {rc}: {_tail(output)}", "wheels": names}
    return {"status": "ok", "wheels": names}


def stage_data(data_file: str | None, out: Path) -> dict:
    """Make the training parts read ``data_file`` (a data set cache JSON) through ``$C3A_DATA_DIR``."""
    if data_file is None and os.environ.get(WHEELS_ENV):
        staged = sorted(glob.glob(os.path.join(os.environ[WHEELS_ENV], "stdlib_docstrings-*.json")))
        data_file = staged[0] if staged else None
    if data_file is None:
        return {"source": f"built from this machine's Python {platform.python_version()} standard library"}
    from . import data  # the cache file's name for this Python, seed 0

    blob = json.loads(Path(data_file).read_text(encoding="utf-8"))
    cache = out / "data-cache"
    cache.mkdir(exist_ok=True)
    os.environ["C3A_DATA_DIR"] = str(cache.resolve())
    shutil.copyfile(data_file, data._cache_path(0, data.MAX_PER_CLASS))
    return {"source": os.path.basename(data_file), "texts_from_python": blob.get("info", {}).get("python")}


def machine_summary(cpu_smoke: bool) -> dict:
    """GPU name, driver, CUDA, versions, host CPU: what a reader of the results needs to place them."""
    import torch

    from .measure import versions

    info = {"python_executable": sys.executable, "platform": platform.platform(), "cpu_count": os.cpu_count()}
    with contextlib.suppress(OSError):
        models = [line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")]
        info["cpu_model"] = models[0] if models else platform.processor()
    info["versions"] = versions()
    info["cuda_available"] = torch.cuda.is_available()
    if torch.cuda.is_available():
        info["gpus"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        info["cuda_runtime"] = torch.version.cuda
        info["cudnn"] = torch.backends.cudnn.version()
        rc, output = _run(["nvidia-smi", "--query-gpu=driver_version,memory.total", "--format=csv,noheader"], 20)
        info["nvidia_smi"] = output.strip() if rc == 0 else f"nvidia-smi failed: {_tail(output)}"
    info["mode"] = "cpu smoke (tiny sizes, no GPU)" if cpu_smoke else "cuda"
    return info


def _tail(text: str, lines: int = 6) -> str:
    return " | ".join(line.strip() for line in text.strip().splitlines()[-lines:])


def run_part(name: str, args: argparse.Namespace, out: Path, budget_s: float) -> dict:
    """One part in a child process, stopped ``GRACE_S`` after its budget; its result file tells how it went."""
    command = [sys.executable, "-m", "c3a_tutorial.experiments.gpu_check", "--part", name, "--out", str(out)]
    command += ["--deadline", str(time.time() + budget_s)]
    command += ["--cpu-smoke"] if args.cpu_smoke else []
    command += ["--model", args.model] if args.model else []
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    start = time.time()
    rc, output = _run(command, timeout=budget_s + GRACE_S, env=env)
    (out / f"{name}.log").write_text(output)
    seconds = round(time.time() - start, 1)
    result_file = out / f"{name}.json"
    result = json.loads(result_file.read_text()) if result_file.exists() else {}
    status = {"seconds": seconds, "budget_s": round(budget_s, 1), "files": sorted(result.get("files", []))}
    if rc is None:
        return {**status, "status": "failed", "error": f"stopped after {seconds} s (budget {budget_s:.0f} s)"}
    if rc != 0:
        return {**status, "status": "failed", "error": result.get("error") or f"exit status {rc}: {_tail(output)}"}
    return {**status, "status": result.get("status", "failed"), "note": result.get("note", "")}


def write_json(path: Path, value: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(value, indent=1, default=str))
    os.replace(tmp, path)


def format_summary(summary: dict) -> str:
    lines = [f"{'part':<10} {'status':<8} {'seconds':>8} {'budget':>7}  note"]
    for name, part in summary["parts"].items():
        note = part.get("error") or part.get("reason") or part.get("note") or ""
        budget = f"{part['budget_s']:.0f}" if "budget_s" in part else ""
        seconds = f"{part['seconds']:.1f}" if "seconds" in part else ""
        lines.append(f"{name:<10} {part['status']:<8} {seconds:>8} {budget:>7}  {note[:150]}")
    lines.append(f"total {summary['total_seconds']:.1f} s; results in {summary['out']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.part:
        from .gpu_check_parts import run_child

        return run_child(args.part, Path(args.out), args.deadline, args.cpu_smoke, args.model)
    try:
        import torch

        if not args.cpu_smoke and not torch.cuda.is_available():
            print(
                f"gpu-check: no CUDA device here (torch {torch.__version__}, built for CUDA {torch.version.cuda}): "
                "run it on a machine with an NVIDIA GPU, or pass --cpu-smoke to exercise the plumbing on this CPU."
            )
            return 1
        if not args.budget > 0:
            raise UsageError(f"--budget must be a positive number of seconds, got {args.budget}.")
        if args.data_file and not Path(args.data_file).is_file():
            raise UsageError(f"--data-file {args.data_file} is not a file.")
        out = Path(args.out)
        check_out(out, args.force)
    except UsageError as err:
        print(f"gpu-check: error: {err}", file=sys.stderr)
        return 2
    start = time.time()
    out.mkdir(parents=True, exist_ok=True)
    summary = {"format": "c3a_tutorial.gpu_check", "format_version": 1, "out": str(out), "parts": {}}
    summary["started"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    step = time.time()
    summary["parts"]["install"] = install_wheels(os.environ.get(WHEELS_ENV), out)
    summary["parts"]["install"]["seconds"] = round(time.time() - step, 1)
    summary["data"] = stage_data(args.data_file, out)
    summary["machine"] = machine_summary(args.cpu_smoke)
    write_json(out / "summary.json", summary)
    scale = args.budget / sum(BUDGETS.values())
    deadline = start + args.budget + 20  # the install and start-up ride on a small margin
    for name in PARTS:
        left = deadline - time.time()
        if name not in args.parts:
            summary["parts"][name] = {"status": "skipped", "reason": "not asked for (--parts)"}
        elif left < MIN_START_S:
            summary["parts"][name] = {"status": "skipped", "reason": f"no time left ({left:.0f} s of the budget)"}
        else:
            summary["parts"][name] = run_part(name, args, out, min(BUDGETS[name] * scale, left))
        summary["total_seconds"] = round(time.time() - start, 1)
        write_json(out / "summary.json", summary)  # after every part: a stopped run keeps what it did
    summary["finished"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    write_json(out / "summary.json", summary)
    print(format_summary(summary))
    return 0 if all(p["status"] != "failed" for p in summary["parts"].values()) else 3


if __name__ == "__main__":
    sys.exit(main())
