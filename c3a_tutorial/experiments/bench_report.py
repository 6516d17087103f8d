"""Benchmark results on disk and on screen: save (never over an existing file unless asked), load (with a clear
error for a broken file), print as a table, plot.

The timing itself is in ``bench.py``, the operator's profile in ``profile.py``, the command line in ``bench_cli.py``.
"""

from __future__ import annotations

import json
import os

from .bench_methods import method_of

FORMAT = "c3a_tutorial.bench"
FORMAT_VERSION = 1
REGENERATE = (
    "Regenerate it with `python -m c3a_tutorial.bench --out {path} --force` (with the --shapes, --tokens, "
    "--methods and --timer it was made with; the recorded runs' commands are in data/results/README_bench.md)."
)
# For a file that is not recognisably ours: advising --force on it would overwrite someone else's file.
NOT_OURS = "Show a file the benchmark wrote, or run it into a new file: python -m c3a_tutorial.bench --out NEW.json."


def save_results(result: dict, path: str | os.PathLike, force: bool = False) -> str:
    """Write ``result`` as JSON; an existing file is replaced only with ``force=True``."""
    path = os.fspath(path)
    refuse_existing([path], force)
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "w") as f:
        json.dump(result, f, indent=1)
    return path


def refuse_existing(paths, force: bool) -> None:
    """``FileExistsError`` naming the files that exist, unless ``force``."""
    existing = [os.fspath(p) for p in paths if p is not None and os.path.exists(p)]
    if existing and not force:
        raise FileExistsError(
            f"{', '.join(existing)} already exist{'s' if len(existing) == 1 else ''}: not overwriting it. "
            "Pass --force (force=True) to replace it, or choose another --out / --plot."
        )


def load_results(path: str | os.PathLike) -> dict:
    """Read a result file written by ``python -m c3a_tutorial.bench``.

    A missing, truncated, non-JSON or foreign file raises ``ValueError`` naming the file and how to regenerate it.
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        raise ValueError(f"{path!r} is a folder, not a benchmark result file. " + NOT_OURS)
    try:
        with open(path, encoding="utf-8") as f:
            result = json.load(f)
    except FileNotFoundError as err:
        raise ValueError(f"{path!r} does not exist. " + NOT_OURS) from err
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(
            f"{path!r} is not a readable benchmark result: it is truncated or not JSON ({err}). " + NOT_OURS
        ) from err
    except OSError as err:
        raise ValueError(f"{path!r} cannot be read ({err.strerror}). " + NOT_OURS) from err
    if not isinstance(result, dict) or result.get("format") != FORMAT:
        raise ValueError(f"{path!r} is not a c3a_tutorial benchmark result (no format={FORMAT!r}). " + NOT_OURS)
    missing = [key for key in ("machine", "versions", "config", "results") if key not in result]
    if missing:
        raise ValueError(f"{path!r} lacks {', '.join(missing)}: an incomplete result. " + REGENERATE.format(path=path))
    return result


def result_label(result: dict) -> str:
    """``"NVIDIA H100 (cuda), torch 2.x"`` or ``"CPU: <model>, 2 threads, torch 2.x"`` for labels."""
    m, v = result["machine"], result["versions"]
    if m["device"].startswith("cuda"):
        return f"{m['device_name']} ({m['device']}), torch {v['torch']}"
    return f"CPU: {m.get('cpu_model', m['device_name'])}, {m['torch_threads']} torch thread(s), torch {v['torch']}"


def _bar_values(rows: list[dict], cells: list[tuple], method: str) -> list[float]:
    values = []
    for cell in cells:
        match = [r for r in rows if (r["d_out"], r["d_in"], r["tokens"]) == cell and r["method"] == method]
        values.append(max(match[0]["overhead_ratio"], 1e-3) if match else float("nan"))
    return values


def plot_benchmark(result: dict, ax=None, tokens: int | None = None):
    """Bar chart of the overhead over the frozen base layer (× its time) per method, one group per shape
    and token count (only ``tokens`` if given). Returns ``(figure, axes)``."""
    import matplotlib  # only when plotting: the timing runs without matplotlib
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
    counts = {}
    for k, method in enumerate(methods):
        declared = method_of(method)  # its colour map, declared once with the method (bench.BENCH_METHODS)
        counts[declared.kind] = counts.get(declared.kind, 0) + 1
        shade = min(0.45 + 0.2 * (counts[declared.kind] - 1), 0.95)
        xs = [i + (k - (len(methods) - 1) / 2) * width for i in range(len(cells))]
        rgb = matplotlib.colors.to_rgb(declared.colour)
        colour = tuple(1 - (1 - c) * (1.45 - shade) for c in rgb)  # the kind's hue, lighter for each further size
        ax.bar(xs, _bar_values(rows, cells, method), width, label=f"{method}: {declared.label}", color=colour)
    ax.set_xticks(range(len(cells)))
    ax.set_xticklabels([f"{o}×{i}\nN={n}" for o, i, n in cells], fontsize=8)
    ax.set_yscale("log")
    ax.set_ylabel("overhead / base layer time")
    ax.set_title(f"Forward+backward overhead over the frozen layer\n{result_label(result)}", fontsize=9)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # outside: bars stay visible
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig, ax


def write_plot(result: dict, path: str) -> None:
    """One panel per token count, saved small (it may be committed next to the JSON)."""
    import matplotlib.pyplot as plt

    token_counts = sorted({r["tokens"] for r in result["results"]})
    fig, axes = plt.subplots(len(token_counts), 1, figsize=(9, 3.4 * len(token_counts)), squeeze=False)
    for ax, n in zip(axes[:, 0], token_counts, strict=True):
        plot_benchmark(result, ax=ax, tokens=n)
    fig.savefig(path, dpi=72)
    plt.close(fig)


def _spread(times: list[float]) -> str:
    ordered = sorted(times)
    return f"{ordered[0]:.2f}–{ordered[-1]:.2f}"


def format_table(result: dict) -> str:
    """The result as a plain-text table: overhead in ms and × base, per shape, tokens and method (measurements
    only), then the operator profile if the run has one."""
    lines = [
        f"{'shape':>11} {'N':>5} {'method':>14} {'params':>8} {'base ms':>9} "
        f"{'overhead ms':>11} {'× base':>7} {'reps':>4} {'method ms, min–max':>18}"
    ]
    for r in result["results"]:
        if r["method"] == "base":
            continue
        lines.append(
            f"{r['d_out']:>5}x{r['d_in']:<5} {r['tokens']:>5} {r['method']:>14} {r['parameters']:>8} "
            f"{r['base_median_ms']:>9.2f} {r['overhead_ms']:>11.2f} {r['overhead_ratio']:>7.3f} {r['repeats']:>4} "
            f"{_spread(r['times_ms']):>18}"
        )
    if result.get("profile"):
        lines += ["", format_profile(result["profile"])]
    return "\n".join(lines)


def format_profile(profiles: list[dict]) -> str:
    """Where the operator's time goes, per shape: forward and backward, by kind of work (ms of CPU time)."""
    header = (
        f"{'operator profile':<26} {'phase':>8} {'total':>7} {'fft':>6} {'gemm':>6} {'layout':>6} "
        f"{'alloc':>6} {'python':>6} {'÷kernels':>8} {'faults':>7}"
    )
    lines = [header]
    for p in profiles:
        name = f"{p['d_out']}x{p['d_in']} b={p['block_size']} N={p['tokens']}"
        if "kinds_ms" in p:  # a device profile (CUDA): GPU time by kind, host time per step beside GPU time
            kinds = " ".join(f"{k} {v:.3f}" for k, v in p["kinds_ms"].items())
            lines.append(f"{name:<26} {'fwd+bwd':>8} {p['step_ms']:>7.3f}  {kinds}; host {p['host_ms']:.3f} ms/step")
            continue
        for phase in ("forward", "backward"):
            c = p[phase]
            lines.append(
                f"{name:<26} {phase:>8} {c['total_ms']:>7.2f} {c['fft_ms']:>6.2f} {c['gemm_ms']:>6.2f} "
                f"{c['layout_ms']:>6.2f} {c['allocation_ms']:>6.2f} "
                f"{c['python_ms']:>6.2f} {c['total_over_kernels']:>8.2f} {int(c['minor_page_faults']):>7}"
            )
        lines.append(
            f"{name:<26} {'fwd+bwd':>8} {p['step_median_ms']:>7.2f}  (unprofiled, min–max {p['step_min_ms']:.2f}–"
            f"{p['step_max_ms']:.2f} over {p['repeats']})"
        )
    lines.append(
        "ms of the benchmark's clock, medians; kernels = fft + gemm + layout copies; python = the rest (Python, "
        "autograd, small ops); faults = minor page faults per call; on CUDA: GPU ms by kind and the host's ms to "
        "enqueue a step (c3a_tutorial/experiments/profile.py)."
    )
    return "\n".join(lines)
