"""Benchmark: what an adapter costs on top of the frozen layer it adapts (forward + backward).

For every layer shape ``(d_out, d_in)`` and token count ``N`` we time one training step of a single
layer, ``y = layer(x)`` then ``∂L/∂x`` and ``∂L/∂(adapter weights)`` for a fixed ``∂L/∂y``, for

* ``base``: the frozen ``nn.Linear`` alone (the input still needs its gradient, as inside a network),
* ``lora-r8``, ``lora-r16``: our ``LoRALinear``,
* ``c3a-b64`` ...: our ``C3ALinear`` at block size ``b``,
* ``peft-c3a-b64`` ...: Hugging Face PEFT's C3A layer at the same ``b`` (when ``peft`` is installed).

and report the *overhead* ``time(method) − time(base)`` and ``overhead / time(base)``. Machines are
noisy (and ours is shared), so every repeat runs all methods back to back, in a rotating order, and
the overhead is the median over repeats of the per-repeat difference: ratios, not absolute times,
are what to compare. Memory: the bytes autograd keeps for backward (activations, not parameters),
on every device, and on CUDA the peak allocated memory of the step.

    python -m c3a_tutorial.bench                      # the full CPU benchmark → runs/bench/ (git-ignored)
    python -m c3a_tutorial.bench --tiny --out /tmp/b.json --profile

From Python (notebook 04): ``result = run_benchmark(...)``, ``plot_benchmark(result)``,
``load_results(path)``. Files, tables and plots are in ``bench_report.py``, the operator's profile in
``profile.py``, the command line in ``bench_cli.py``.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Iterable, Sequence

import torch
from torch import nn
from tqdm.auto import tqdm

from .bench_methods import (
    BENCH_METHODS,
    BenchMethod,
    available,
    build_layer,
    fits,
    method_of,
    method_parameters,
    parse_method,
)
from .bench_report import FORMAT, FORMAT_VERSION, format_table, load_results, plot_benchmark, save_results
from .device import pick_device
from .measure import machine_info, versions

__all__ = [
    "DEFAULT_METHODS",
    "DEFAULT_SHAPES",
    "DEFAULT_TOKENS",
    "FORMAT",
    "FORMAT_VERSION",
    "TINY",
    "BENCH_METHODS",
    "BenchMethod",
    "build_layer",
    "check_targets",
    "fits",
    "format_table",
    "load_results",
    "method_of",
    "method_parameters",
    "parse_method",
    "plot_benchmark",
    "run_benchmark",
    "save_results",
]
DEFAULT_SHAPES = ((768, 768), (1024, 1024), (4096, 4096), (3072, 768))  # (d_out, d_in)
DEFAULT_TOKENS = (512, 2048, 8192)
DEFAULT_METHODS = (
    "lora-r8",
    "lora-r16",
    "c3a-b64",
    "c3a-b128",
    "c3a-b256",
    "peft-c3a-b64",
    "peft-c3a-b128",
    "peft-c3a-b256",
)
TINY = {"shapes": ((64, 64), (128, 64)), "tokens": (32, 128), "methods": ("lora-r8", "c3a-b16", "peft-c3a-b16")}


# ---------------------------------------------------------------------------------------------------
# Timing.


def _saved_bytes(layer: nn.Module, x: torch.Tensor) -> int:
    """Bytes autograd keeps between forward and backward, parameters (and views of them) excluded."""
    params = {p.untyped_storage().data_ptr() for p in layer.parameters()}
    storages = {}

    def pack(t):
        storage = t.untyped_storage()
        if storage.data_ptr() not in params and storage.data_ptr() != x.untyped_storage().data_ptr():
            storages[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        layer(x)
    return sum(storages.values())


TIMERS = ("auto", "wall", "cpu")


class _Timer:
    """CUDA events on GPU (queued work is timed, not the Python around it); on CPU wall-clock, or with
    ``kind="cpu"`` this process's CPU time, which on a shared machine leaves out the time spent waiting
    for a core (use it with one torch thread, where CPU time is the work done)."""

    def __init__(self, device: torch.device, kind: str = "auto"):
        self.device = device
        self.cuda = device.type == "cuda"
        # MPS runs asynchronously too, without timing events: synchronise around a wall-clock reading.
        self.sync = torch.mps.synchronize if device.type == "mps" else (lambda: None)
        self.clock = time.process_time if kind == "cpu" else time.perf_counter

    def __call__(self, fn) -> float:
        if self.cuda:
            with torch.cuda.device(self.device):  # events and synchronize act on the benchmarked GPU
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                torch.cuda.synchronize(self.device)
                start.record()
                fn()
                end.record()
                torch.cuda.synchronize(self.device)
                return start.elapsed_time(end)
        self.sync()
        start = self.clock()
        fn()
        self.sync()
        return 1e3 * (self.clock() - start)


def _step(layer: nn.Module, x: torch.Tensor, grad_out: torch.Tensor, weights: list[torch.Tensor]):
    def run():
        y = layer(x)
        torch.autograd.grad(y, [x, *weights], grad_out)

    return run


def _layers(d_out: int, d_in: int, methods: Sequence[str], device: torch.device, dtype: torch.dtype) -> dict:
    """The frozen base and every method wrapping a copy of it, same weights (seed 0)."""
    base = nn.Linear(d_in, d_out).to(dtype)
    base.requires_grad_(False)
    layers = {"base": base.to(device)}
    for method in methods:
        torch.manual_seed(0)
        layers[method] = build_layer(method, nn.Linear(d_in, d_out).to(dtype)).to(device)
        layers[method].base_layer.load_state_dict(base.state_dict())
    return layers


def _time_rounds(steps: dict, timer: _Timer, repeats: int, warmup: int, time_budget_s: float | None) -> dict:
    """Every step once per round, in an order rotated each round; fewer rounds (≥ 3) if over the budget."""
    names = list(steps)
    for _ in range(warmup):
        for name in names:
            timer(steps[name])
    first = {name: timer(steps[name]) for name in names}
    if time_budget_s is not None:
        per_round = sum(first.values()) / 1e3
        repeats = max(3, min(repeats, int(time_budget_s / max(per_round, 1e-9))))
    times = {name: [first[name]] for name in names}
    for r in range(1, repeats):
        for name in names[r % len(names) :] + names[: r % len(names)]:  # no method always runs first
            times[name].append(timer(steps[name]))
    return times


def _cuda_peaks(steps: dict, device: torch.device) -> dict:
    """Peak memory allocated during one step of each method, beyond what was allocated before (CUDA only)."""
    peak = {}
    for name, step in steps.items():
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        step()
        torch.cuda.synchronize()
        peak[name] = torch.cuda.max_memory_allocated(device) - before
    return peak


def _row(cell: tuple[int, int, int], name: str, times: dict, saved: int, peak: int | None) -> dict:
    d_out, d_in, tokens = cell
    base_times = times["base"]
    base_ms = statistics.median(base_times)
    diffs = [t - b for t, b in zip(times[name], base_times, strict=True)]
    overhead_ms = 0.0 if name == "base" else statistics.median(diffs)
    spec = {"kind": "base"} if name == "base" else parse_method(name)
    sizes = {m.size_argument: None for m in BENCH_METHODS.values()}  # every size key, set for this row's kind
    return {
        "d_out": d_out,
        "d_in": d_in,
        "tokens": tokens,
        "method": name,
        "kind": spec["kind"],
        **{key: spec.get(key) for key in sizes},
        "parameters": 0 if name == "base" else method_parameters(name, d_out, d_in),
        "median_ms": statistics.median(times[name]),
        "base_median_ms": base_ms,
        "overhead_ms": overhead_ms,
        "overhead_ratio": overhead_ms / base_ms,
        "repeats": len(times[name]),
        "times_ms": [round(t, 4) for t in times[name]],
        "saved_for_backward_bytes": saved,
        "peak_memory_bytes": peak,
    }


def _bench_cell(
    cell: tuple[int, int, int],
    methods: Sequence[str],
    device: torch.device,
    dtype: torch.dtype,
    repeats: int,
    warmup: int,
    time_budget_s: float | None,
    timer_kind: str = "auto",
) -> list[dict]:
    """One row per method (``base`` first) for one ``(d_out, d_in, tokens)`` cell."""
    d_out, d_in, tokens = cell
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(tokens, d_in, generator=generator, dtype=dtype).to(device).requires_grad_(True)
    grad_out = torch.randn(tokens, d_out, generator=generator, dtype=dtype).to(device)
    layers = _layers(d_out, d_in, methods, device, dtype)
    steps = {
        name: _step(layer, x, grad_out, [p for p in layer.parameters() if p.requires_grad])
        for name, layer in layers.items()
    }
    times = _time_rounds(steps, _Timer(device, timer_kind), repeats, warmup, time_budget_s)
    peak = _cuda_peaks(steps, device) if device.type == "cuda" else {}
    return [_row(cell, name, times, _saved_bytes(layers[name], x), peak.get(name)) for name in steps]


def _check_options(methods: list[str], timer: str, device: torch.device, repeats: int, warmup: int) -> None:
    for m in methods:
        parse_method(m)
    if timer not in TIMERS:
        raise ValueError(f"timer={timer!r} is not one of {TIMERS}.")
    if timer == "cpu" and device.type == "cuda":
        raise ValueError("timer='cpu' measures host CPU time; on CUDA use timer='auto' (CUDA events).")
    if repeats < 1 or warmup < 0:
        raise ValueError(f"repeats must be ≥ 1 and warmup ≥ 0, got repeats={repeats}, warmup={warmup}.")


def run_benchmark(
    shapes: Iterable[tuple[int, int]] = DEFAULT_SHAPES,
    tokens: Iterable[int] = DEFAULT_TOKENS,
    methods: Iterable[str] = DEFAULT_METHODS,
    device: str | torch.device = "cpu",
    repeats: int = 20,
    warmup: int = 2,
    dtype: torch.dtype = torch.float32,
    time_budget_s: float | None = None,
    progress: bool = True,
    timer: str = "auto",
) -> dict:
    """Time forward + backward of every method on every ``(d_out, d_in)`` shape and token count.

    Args:
        shapes: ``(d_out, d_in)`` pairs. tokens: token counts ``N`` (rows of ``x``).
        methods: names such as ``"lora-r8"``, ``"c3a-b64"``, ``"peft-c3a-b64"``; the frozen ``base`` is
            always timed too. A block size that does not divide a shape is skipped for that shape;
            PEFT methods are skipped (and listed under ``"skipped"``) when peft is not installed.
        device: ``"cpu"``, ``"cuda"``, ... (checked by ``pick_device``). repeats / warmup: rounds over all
            methods; the median is reported. time_budget_s: if set, fewer repeats (at least 3) for a
            cell whose rounds would take longer; the count used is in each row.
        timer: ``"auto"`` (CUDA events on GPU, wall-clock on CPU), ``"wall"`` or ``"cpu"`` (process CPU
            time: steadier on a shared machine, meaningful with ``torch.set_num_threads(1)``).

    Returns a JSON-able dict: ``machine``, ``versions``, ``config``, ``results`` (one row per shape,
    token count and method, with every timing) and ``skipped``. Measurements only: no verdicts.
    """
    device = pick_device(device)
    shapes = [tuple(int(v) for v in s) for s in shapes]
    tokens = [int(n) for n in tokens]
    methods = list(methods)
    _check_options(methods, timer, device, repeats, warmup)
    skipped = []
    for name in list(methods):
        needs = method_of(name).needs
        if not available(method_of(name)):
            skipped.append(f"{name}: {needs} is not installed")
            methods.remove(name)
    results = []
    for (d_out, d_in), n in tqdm([(s, n) for s in shapes for n in tokens], desc="benchmark", disable=not progress):
        usable = [m for m in methods if fits(m, d_out, d_in)]
        skipped += [f"{m} at {d_out}x{d_in}: its size does not fit that layer" for m in methods if m not in usable]
        results += _bench_cell((d_out, d_in, n), usable, device, dtype, repeats, warmup, time_budget_s, timer)
    timer_name = "cuda events" if device.type == "cuda" else ("process cpu time" if timer == "cpu" else "wall clock")
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine_info(device),
        "versions": versions(),
        "config": {
            "shapes": shapes,
            "tokens": tokens,
            "methods": methods,
            "dtype": str(dtype).replace("torch.", ""),
            "repeats": repeats,
            "warmup": warmup,
            "time_budget_s": time_budget_s,
            "timer": timer_name,
        },
        "results": results,
        "skipped": sorted(set(skipped)),
    }


# ---------------------------------------------------------------------------------------------------
# This project's acceptance targets (issue #14), for its own write-up (data/results/README_bench.md). Not part of a
# result file or of the command line's output: a user's benchmark reports measurements, not our goals.

TARGETS = {"peft_over_ours_min": 3.0, "ours_over_lora_max": 1.5, "lora_reference": "lora-r8", "lora_tokens_min": 2048}


def _ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator > 0 else math.inf


def check_targets(results: list[dict], targets: dict = TARGETS) -> list[dict]:
    """Per shape, token count and row of our operator: the overhead of every other implementation of it at the same
    size (PEFT's C3A) over ours (target ``≥ peft_over_ours_min``), and ours over the LoRA reference's (``lora-r8``)
    when ours has no more parameters (target ``≤ ours_over_lora_max``, for ``N ≥ lora_tokens_min``). One dict per
    comparison, with ``met``."""
    out = []
    for d_out, d_in, n in sorted({(r["d_out"], r["d_in"], r["tokens"]) for r in results}):
        rows = {r["method"]: r for r in results if (r["d_out"], r["d_in"], r["tokens"]) == (d_out, d_in, n)}
        lora = rows.get(targets["lora_reference"])
        for name, row in rows.items():
            if row["kind"] not in BENCH_METHODS or not BENCH_METHODS[row["kind"]].our_operator:
                continue
            where = {"d_out": d_out, "d_in": d_in, "tokens": n, "method": name}
            size = parse_method(name)["size"]
            for other in rows.values():
                declared = BENCH_METHODS.get(other["kind"])
                if declared and declared.implements == row["kind"] and parse_method(other["method"])["size"] == size:
                    ratio = _ratio(other["overhead_ms"], row["overhead_ms"])
                    target = f"{declared.kind} / ours"
                    out.append(
                        {**where, "target": target, "ratio": ratio, "met": ratio >= targets["peft_over_ours_min"]}
                    )
            if lora and row["parameters"] <= lora["parameters"] and n >= targets["lora_tokens_min"]:
                ratio = _ratio(row["overhead_ms"], lora["overhead_ms"])
                target = f"ours / {targets['lora_reference']}"
                out.append({**where, "target": target, "ratio": ratio, "met": ratio <= targets["ours_over_lora_max"]})
    return out
