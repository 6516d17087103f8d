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

    python -m c3a_tutorial.bench                      # the full CPU benchmark → data/results/
    python -m c3a_tutorial.bench --tiny --out /tmp/b.json

From Python (notebook 04): ``result = run_benchmark(...)``, ``plot_benchmark(result)``,
``load_results(path)``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import time
from collections.abc import Iterable, Sequence

import torch
from torch import nn

from ..c3a.counting import c3a_parameter_count, lora_parameter_count
from ..c3a.layers import C3ALinear, LoRALinear
from .device import pick_device
from .measure import machine_info, versions

FORMAT = "c3a_tutorial.bench"
FORMAT_VERSION = 1
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
# Methods: a name such as "c3a-b64" becomes a layer wrapping the base.


def parse_method(name: str) -> dict:
    """``"lora-r8"`` → ``{"kind": "lora", "rank": 8}``; ``"c3a-b64"``, ``"peft-c3a-b64"`` → block size 64."""
    kind, _, arg = name.rpartition("-")
    try:
        if kind == "lora" and arg.startswith("r"):
            return {"name": name, "kind": "lora", "rank": int(arg[1:])}
        if kind in ("c3a", "peft-c3a") and arg.startswith("b"):
            return {"name": name, "kind": kind, "block_size": int(arg[1:])}
    except ValueError:
        pass
    raise ValueError(f"Unknown method {name!r}: use 'lora-r<rank>', 'c3a-b<block size>' or 'peft-c3a-b<block size>'.")


def _peft_available() -> bool:
    try:
        import peft.tuners.c3a  # noqa: F401
    except ImportError:
        return False
    return True


def build_layer(method: str, base: nn.Linear) -> nn.Module:
    """The layer ``method`` names, wrapping ``base`` (frozen), adapter weights random (not zero)."""
    spec = parse_method(method)
    if spec["kind"] == "lora":
        layer = LoRALinear(base, rank=spec["rank"])
        nn.init.normal_(layer.lora_B)
        return layer
    if spec["kind"] == "c3a":
        return C3ALinear(base, block_size=spec["block_size"], init_weights="gaussian")
    from peft import C3AConfig
    from peft.tuners.c3a.layer import C3ALinear as PeftC3ALinear

    config = C3AConfig(block_size=spec["block_size"], init_weights="gaussian")
    layer = PeftC3ALinear(base, "default", config=config, block_size=spec["block_size"])
    layer.base_layer.requires_grad_(False)
    return layer


def method_parameters(method: str, d_out: int, d_in: int) -> int:
    """Trainable parameters of ``method`` on a ``d_out × d_in`` layer."""
    spec = parse_method(method)
    if spec["kind"] == "lora":
        return lora_parameter_count(d_out, d_in, spec["rank"])
    return c3a_parameter_count(d_out, d_in, spec["block_size"])


def _fits(method: str, d_out: int, d_in: int) -> bool:
    spec = parse_method(method)
    return spec["kind"] == "lora" or (d_in % spec["block_size"] == 0 and d_out % spec["block_size"] == 0)


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


def _bench_cell(
    d_out: int,
    d_in: int,
    tokens: int,
    methods: Sequence[str],
    device: torch.device,
    dtype: torch.dtype,
    repeats: int,
    warmup: int,
    time_budget_s: float | None,
    timer_kind: str = "auto",
) -> list[dict]:
    generator = torch.Generator().manual_seed(0)
    base = nn.Linear(d_in, d_out).to(dtype)
    base.requires_grad_(False)
    x = torch.randn(tokens, d_in, generator=generator, dtype=dtype).to(device).requires_grad_(True)
    grad_out = torch.randn(tokens, d_out, generator=generator, dtype=dtype).to(device)
    layers = {"base": base.to(device)}
    for method in methods:
        torch.manual_seed(0)
        layers[method] = build_layer(method, nn.Linear(d_in, d_out).to(dtype)).to(device)
        layers[method].base_layer.load_state_dict(base.state_dict())
    steps = {}
    for name, layer in layers.items():
        weights = [p for p in layer.parameters() if p.requires_grad]
        steps[name] = _step(layer, x, grad_out, weights)
    timer = _Timer(device, timer_kind)
    names = list(steps)
    for _ in range(warmup):
        for name in names:
            timer(steps[name])
    # Fit the repeats into the time budget (big shapes on a small CPU), never fewer than 3.
    first = {name: timer(steps[name]) for name in names}
    if time_budget_s is not None:
        per_round = sum(first.values()) / 1e3
        repeats = max(3, min(repeats, int(time_budget_s / max(per_round, 1e-9))))
    times = {name: [first[name]] for name in names}
    for r in range(1, repeats):
        order = names[r % len(names) :] + names[: r % len(names)]  # rotate, so no method always runs first
        for name in order:
            times[name].append(timer(steps[name]))

    peak = {}
    if device.type == "cuda":
        for name in names:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats(device)
            before = torch.cuda.memory_allocated(device)
            steps[name]()
            torch.cuda.synchronize()
            peak[name] = torch.cuda.max_memory_allocated(device) - before

    rows = []
    base_times = times["base"]
    base_ms = statistics.median(base_times)
    for name in names:
        diffs = [t - b for t, b in zip(times[name], base_times, strict=True)]
        overhead_ms = 0.0 if name == "base" else statistics.median(diffs)
        spec = {"kind": "base"} if name == "base" else parse_method(name)
        rows.append(
            {
                "d_out": d_out,
                "d_in": d_in,
                "tokens": tokens,
                "method": name,
                "kind": spec["kind"],
                "block_size": spec.get("block_size"),
                "rank": spec.get("rank"),
                "parameters": 0 if name == "base" else method_parameters(name, d_out, d_in),
                "median_ms": statistics.median(times[name]),
                "base_median_ms": base_ms,
                "overhead_ms": overhead_ms,
                "overhead_ratio": overhead_ms / base_ms,
                "repeats": len(times[name]),
                "times_ms": [round(t, 4) for t in times[name]],
                "saved_for_backward_bytes": _saved_bytes(layers[name], x),
                "peak_memory_bytes": peak.get(name),
            }
        )
    return rows


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
    token count and method, with every timing) and ``skipped``.
    """
    from tqdm.auto import tqdm

    device = pick_device(device)
    shapes = [tuple(int(v) for v in s) for s in shapes]
    tokens = [int(n) for n in tokens]
    methods = list(methods)
    for m in methods:
        parse_method(m)
    if timer not in TIMERS:
        raise ValueError(f"timer={timer!r} is not one of {TIMERS}.")
    if timer == "cpu" and device.type == "cuda":
        raise ValueError("timer='cpu' measures host CPU time; on CUDA use timer='auto' (CUDA events).")
    if repeats < 1 or warmup < 0:
        raise ValueError(f"repeats must be ≥ 1 and warmup ≥ 0, got repeats={repeats}, warmup={warmup}.")
    skipped = []
    if not _peft_available():
        skipped += [f"{m}: peft is not installed" for m in methods if m.startswith("peft-")]
        methods = [m for m in methods if not m.startswith("peft-")]
    cells = [(s, n) for s in shapes for n in tokens]
    results = []
    for (d_out, d_in), n in tqdm(cells, desc="benchmark", disable=not progress):
        usable = [m for m in methods if _fits(m, d_out, d_in)]
        skipped += [f"{m} at {d_out}x{d_in}: block size does not divide it" for m in methods if m not in usable]
        results += _bench_cell(d_out, d_in, n, usable, device, dtype, repeats, warmup, time_budget_s, timer)
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
            "timer": "cuda events"
            if device.type == "cuda"
            else ("process cpu time" if timer == "cpu" else "wall clock"),
        },
        "results": results,
        "skipped": sorted(set(skipped)),
        "targets": check_targets(results),
    }


# ---------------------------------------------------------------------------------------------------
# The targets, evaluated on a result (numbers, not verdicts hidden in prose).


def check_targets(results: list[dict]) -> list[dict]:
    """Per shape and token count: PEFT C3A overhead / ours at the same ``b`` (target ≥ 2), and ours at
    the smallest-overhead block size whose parameter count is ≤ LoRA r=8's, over LoRA r=8 (target ≤ 1.5,
    for ``N ≥ 2048``)."""
    out = []
    cells = sorted({(r["d_out"], r["d_in"], r["tokens"]) for r in results})
    for d_out, d_in, n in cells:
        rows = {r["method"]: r for r in results if (r["d_out"], r["d_in"], r["tokens"]) == (d_out, d_in, n)}
        for name, row in rows.items():
            peft_row = rows.get("peft-" + name)
            if row["kind"] == "c3a" and peft_row:
                ratio = peft_row["overhead_ms"] / row["overhead_ms"] if row["overhead_ms"] > 0 else math.inf
                out.append(
                    {
                        "d_out": d_out,
                        "d_in": d_in,
                        "tokens": n,
                        "target": "peft_c3a / ours >= 2",
                        "method": name,
                        "ratio": ratio,
                        "met": ratio >= 2,
                    }
                )
        lora = rows.get("lora-r8")
        budget = [r for r in rows.values() if r["kind"] == "c3a" and lora and r["parameters"] <= lora["parameters"]]
        if lora and budget and n >= 2048:
            best = min(budget, key=lambda r: r["overhead_ms"])
            ratio = best["overhead_ms"] / lora["overhead_ms"] if lora["overhead_ms"] > 0 else math.inf
            out.append(
                {
                    "d_out": d_out,
                    "d_in": d_in,
                    "tokens": n,
                    "target": "ours / lora-r8 <= 1.5",
                    "method": best["method"],
                    "ratio": ratio,
                    "met": ratio <= 1.5,
                }
            )
    return out


# ---------------------------------------------------------------------------------------------------
# Files and plots.


def save_results(result: dict, path: str | os.PathLike) -> str:
    path = os.fspath(path)
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "w") as f:
        json.dump(result, f, indent=1)
    return path


def load_results(path: str | os.PathLike) -> dict:
    """Read a result file written by ``python -m c3a_tutorial.bench`` (checks it is one)."""
    with open(path) as f:
        result = json.load(f)
    if not isinstance(result, dict) or result.get("format") != FORMAT:
        raise ValueError(f"{os.fspath(path)!r} is not a c3a_tutorial benchmark result (no format={FORMAT!r}).")
    return result


def result_label(result: dict) -> str:
    """``"NVIDIA H100 (cuda), torch 2.x"`` or ``"CPU: <model>, 2 threads, torch 2.x"`` for labels."""
    m, v = result["machine"], result["versions"]
    if m["device"].startswith("cuda"):
        return f"{m['device_name']} ({m['device']}), torch {v['torch']}"
    return f"CPU: {m.get('cpu_model', m['device_name'])}, {m['torch_threads']} torch thread(s), torch {v['torch']}"


def plot_benchmark(result: dict, ax=None, tokens: int | None = None):
    """Bar chart of the overhead over the frozen base layer (× its time) per method, one group per shape
    and token count (only ``tokens`` if given). Returns ``(figure, axes)``."""
    import matplotlib.pyplot as plt

    rows = [r for r in result["results"] if r["method"] != "base" and (tokens is None or r["tokens"] == tokens)]
    if not rows:
        raise ValueError("No benchmark rows to plot" + (f" for tokens={tokens}." if tokens is not None else "."))
    cells = sorted({(r["d_out"], r["d_in"], r["tokens"]) for r in rows}, key=lambda c: (c[1] * c[0], c[2]))
    methods = [m for m in result["config"]["methods"] if any(r["method"] == m for r in rows)]
    if ax is None:
        fig, ax = plt.subplots(figsize=(max(6.0, 0.9 * len(cells) + 2), 3.8))
    else:
        fig = ax.figure
    width = 0.8 / len(methods)
    cmap = {"lora": plt.cm.Greens, "c3a": plt.cm.Blues, "peft-c3a": plt.cm.Oranges}
    counts = {}
    for k, method in enumerate(methods):
        spec = parse_method(method)
        counts[spec["kind"]] = counts.get(spec["kind"], 0) + 1
        shade = 0.45 + 0.2 * (counts[spec["kind"]] - 1)
        values = []
        for cell in cells:
            match = [r for r in rows if (r["d_out"], r["d_in"], r["tokens"]) == cell and r["method"] == method]
            values.append(max(match[0]["overhead_ratio"], 1e-3) if match else float("nan"))
        xs = [i + (k - (len(methods) - 1) / 2) * width for i in range(len(cells))]
        ax.bar(xs, values, width, label=method, color=cmap[spec["kind"]](min(shade, 0.95)))
    ax.set_xticks(range(len(cells)))
    ax.set_xticklabels([f"{o}×{i}\nN={n}" for o, i, n in cells], fontsize=8)
    ax.set_yscale("log")
    ax.set_ylabel("overhead / base layer time")
    ax.set_title(f"Forward+backward overhead over the frozen layer\n{result_label(result)}", fontsize=9)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # outside: bars stay visible
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig, ax


def format_table(result: dict) -> str:
    """The result as a plain-text table: overhead in ms and × base, per shape, tokens and method."""
    lines = [
        f"{'shape':>11} {'N':>5} {'method':>14} {'params':>8} {'base ms':>9} "
        f"{'overhead ms':>11} {'× base':>7} {'reps':>4}"
    ]
    for r in result["results"]:
        if r["method"] == "base":
            continue
        lines.append(
            f"{r['d_out']:>5}x{r['d_in']:<5} {r['tokens']:>5} {r['method']:>14} {r['parameters']:>8} "
            f"{r['base_median_ms']:>9.2f} {r['overhead_ms']:>11.2f} {r['overhead_ratio']:>7.3f} {r['repeats']:>4}"
        )
    for t in result.get("targets", []):
        lines.append(
            f"target {t['target']:<24} {t['d_out']}x{t['d_in']} N={t['tokens']:<5} {t['method']:>10}: "
            f"{t['ratio']:.2f} {'met' if t['met'] else 'NOT met'}"
        )
    return "\n".join(lines)


def _shape(text: str) -> tuple[int, int]:
    try:
        d_out, d_in = (int(v) for v in text.lower().split("x"))
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"{text!r} is not a shape: write d_outxd_in, e.g. 3072x768.") from err
    return d_out, d_in


def _write_plot(result: dict, path: str) -> None:
    """One panel per token count, saved small (it is committed next to the JSON)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    token_counts = sorted({r["tokens"] for r in result["results"]})
    fig, axes = plt.subplots(len(token_counts), 1, figsize=(9, 3.4 * len(token_counts)), squeeze=False)
    for ax, n in zip(axes[:, 0], token_counts, strict=True):
        plot_benchmark(result, ax=ax, tokens=n)
    fig.savefig(path, dpi=72)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m c3a_tutorial.bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--tiny", action="store_true", help="a few-second configuration (for CI and notebooks)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, mps (default cpu)")
    parser.add_argument(
        "--shapes", type=_shape, nargs="+", help="d_outxd_in ... (default: 768x768 1024x1024 4096x4096 3072x768)"
    )
    parser.add_argument("--tokens", type=int, nargs="+", help="token counts N (default 512 2048 8192)")
    parser.add_argument("--methods", nargs="+", help="lora-r8 c3a-b64 peft-c3a-b64 ...")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument(
        "--time-budget", type=float, default=None, help="seconds per shape/token cell (fewer repeats if needed)"
    )
    parser.add_argument("--timer", choices=TIMERS, default="auto", help="cpu: process CPU time (shared machines)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--out", default=None, help="JSON file (default data/results/bench_<device>.json)")
    parser.add_argument("--plot", default=None, help="PNG file (default: the JSON path with .png)")
    parser.add_argument("--show", default=None, help="print and plot an existing result file instead of running")
    args = parser.parse_args(argv)
    if args.show:
        result = load_results(args.show)
        _write_plot(result, args.plot or os.path.splitext(args.show)[0] + ".png")
        print(format_table(result))
        return
    if args.threads:
        torch.set_num_threads(args.threads)
    defaults = TINY if args.tiny else {"shapes": DEFAULT_SHAPES, "tokens": DEFAULT_TOKENS, "methods": DEFAULT_METHODS}
    result = run_benchmark(
        shapes=args.shapes or defaults["shapes"],
        tokens=args.tokens or defaults["tokens"],
        methods=args.methods or defaults["methods"],
        device=args.device,
        repeats=3 if args.tiny and args.repeats == 20 else args.repeats,
        warmup=1 if args.tiny and args.warmup == 2 else args.warmup,
        time_budget_s=args.time_budget,
        timer=args.timer,
    )
    device_type = torch.device(result["machine"]["device"]).type
    out = args.out or os.path.join("data", "results", f"bench_{device_type}{'_tiny' if args.tiny else ''}.json")
    save_results(result, out)
    plot_path = args.plot or os.path.splitext(out)[0] + ".png"
    _write_plot(result, plot_path)
    print(format_table(result))
    print(f"wrote {out} and {plot_path}")


if __name__ == "__main__":
    main()
