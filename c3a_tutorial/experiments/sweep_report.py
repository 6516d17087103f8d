"""What a parameter-budget sweep (``sweep``) says: the table, the figure, the paired comparison, the stored sweep.

    from c3a_tutorial.experiments.sweep_report import show_stored_sweep
    show_stored_sweep()        # figure, table and paired comparison of the sweep that ships with the package

Only the *main* grid counts here: per method the runs at the lr the validation grid chose (the grid's other
runs are in the file, and in the table of learning rates). The figure follows the paper's Figure 1: mean test
accuracy against trainable adapter parameters (log axis), error bars = standard deviation over seeds, one
line per method, full fine-tuning as a band (mean ± std); two smaller panels give peak memory and time per step.
"""

from __future__ import annotations

import math
import shutil
import statistics
from dataclasses import dataclass
from pathlib import Path

from ..c3a.methods import get_method
from .sweep_file import read_results

STORED_NAME = "sweep_minilm"  # data/results/sweep_minilm.{json,md,png}, and the package's copy
PACKAGE_RESULTS = Path(__file__).resolve().parent / "results"  # shipped as package data
REPOSITORY_RESULTS = Path(__file__).resolve().parents[2] / "data" / "results"  # a source checkout
LABELS = {"c3a": "C3A", "lora": "LoRA", "full": "full fine-tuning"}
COLOURS = {"c3a": "tab:red", "lora": "tab:blue", "full": "tab:gray"}


def main_runs(results: dict) -> list[dict]:
    """The runs of the main grid: each method's chosen lr, the planned settings and seeds."""
    plan, lrs = results.get("plan", {}), results.get("learning_rates", {})
    out = []
    for run in results["runs"]:
        method = run["method"]
        chosen = lrs.get(method, {}).get("chosen")
        setting = run.get("block_size") if method == "c3a" else run.get("rank") if method == "lora" else None
        planned = {"c3a": plan.get("block_sizes", ()), "lora": plan.get("ranks", ()), "full": [None]}[method]
        if chosen is not None and math.isclose(run["lr"], chosen) and setting in planned:
            if run["seed"] in plan.get("seeds", ()):
                out.append(run)
    return out


def _setting(run: dict) -> str:
    method = run["method"]
    return "-" if method == "full" else get_method(method).setting(run["block_size" if method == "c3a" else "rank"])


def _mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def summarize(results: dict) -> list[dict]:
    """One row per (method, setting) of the main grid: seeds, parameters, accuracy mean/std, memory, s/step."""
    groups: dict[tuple, list[dict]] = {}
    for run in main_runs(results):
        groups.setdefault((run["method"], _setting(run)), []).append(run)
    rows = []
    for (method, setting), runs in groups.items():
        test, val = _mean_std([r["accuracy"] for r in runs]), _mean_std([r["val_accuracy"] for r in runs])
        rows.append(
            {
                "method": method, "setting": setting, "seeds": sorted(r["seed"] for r in runs),
                "adapter_params": runs[0]["adapter_params"], "trainable_params": runs[0]["trainable_params"],
                "test_mean": test[0], "test_std": test[1], "val_mean": val[0], "val_std": val[1],
                "lr": runs[0]["lr"], "peak_memory_mb": statistics.fmean(r["peak_memory_mb"] for r in runs),
                "time_per_step_s": statistics.fmean(r["time_per_step_s"] for r in runs),
            }
        )  # fmt: skip
    order = {"c3a": 0, "lora": 1, "full": 2}
    return sorted(rows, key=lambda r: (order[r["method"]], r["adapter_params"]))


def _pm(mean: float, std: float, seeds: list) -> str:
    return f"{mean:.3f} ± {std:.3f}" if len(seeds) > 1 else f"{mean:.3f}"


def format_sweep_table(results: dict) -> str:
    """The mean ± std table (Markdown) of the main grid, one row per setting."""
    lines = [
        "| method | setting | adapter params | test accuracy | validation accuracy | seeds | lr | peak memory MB "
        "| s/step |",
        "|---|---|---:|---|---|---|---:|---:|---:|",
    ]
    for r in summarize(results):
        lines.append(
            f"| {LABELS[r['method']]} | {r['setting']} | {r['adapter_params']:,} | "
            f"{_pm(r['test_mean'], r['test_std'], r['seeds'])} | {_pm(r['val_mean'], r['val_std'], r['seeds'])} | "
            f"{len(r['seeds'])} | {r['lr']:g} | {r['peak_memory_mb']:.0f} | {r['time_per_step_s']:.2f} |"
        )
    return "\n".join(lines)


def format_lr_table(results: dict) -> str:
    """The validation grid that chose each method's lr (Markdown)."""
    lines = ["| method | setting | lr → mean final validation accuracy | chosen | lr × ΔW scale |"]
    lines.append("|---|---|---|---|---|")
    scales = {r["method"]: r.get("adapter_scale") or 1.0 for r in results["runs"]}
    for method, info in results.get("learning_rates", {}).items():
        grid = " · ".join(f"{lr} → {acc:.3f}" for lr, acc in info.get("grid", {}).items())
        if not grid:
            grid = "not run yet" if info.get("chosen") is None else info.get("chosen_by", "")
        ref = info.get("reference_setting")
        setting = "-" if ref is None else get_method(method).setting(ref)
        chosen = info.get("chosen")
        scaled = "-" if chosen is None else f"{chosen * scales.get(method, 1.0):.2g}"
        shown = "pending" if chosen is None else f"{chosen:g}"
        lines.append(f"| {LABELS[method]} | {setting} | {grid} | {shown} | {scaled} |")
    return "\n".join(lines)


def paired_comparison(results: dict) -> list[dict]:
    """C3A against LoRA at each budget both have (equal adapter parameters), seed by seed.

    Runs with the same seed see the same batches, so the per-seed difference removes the data-order part of
    the noise. ``within_noise`` is True unless the differences all have one sign *and* a paired t-test over
    seeds gives p < 0.05 with at least 3 seeds (two seeds are never enough to call it).
    """
    from scipy import stats

    by_budget: dict[int, dict[str, dict[int, dict]]] = {}
    for run in main_runs(results):
        if run["method"] in ("c3a", "lora"):
            by_budget.setdefault(run["adapter_params"], {}).setdefault(run["method"], {})[run["seed"]] = run
    out = []
    for budget, methods in sorted(by_budget.items()):
        if len(methods) < 2:
            continue
        seeds = sorted(set(methods["c3a"]) & set(methods["lora"]))
        if not seeds:
            continue
        diffs = [methods["c3a"][s]["accuracy"] - methods["lora"][s]["accuracy"] for s in seeds]
        mean = statistics.fmean(diffs)
        p = float("nan")
        if len(diffs) > 1:
            sd = statistics.stdev(diffs)
            p = 0.0 if sd == 0 and mean != 0 else 1.0 if sd == 0 else float(stats.ttest_1samp(diffs, 0.0).pvalue)
        same_sign = all(d > 0 for d in diffs) or all(d < 0 for d in diffs)
        out.append(
            {
                "adapter_params": budget, "c3a": _setting(methods["c3a"][seeds[0]]),
                "lora": _setting(methods["lora"][seeds[0]]), "seeds": seeds, "differences": diffs, "mean": mean,
                "p_value": p, "c3a_ahead": sum(d > 0 for d in diffs),
                "within_noise": not (len(diffs) >= 3 and same_sign and p < 0.05),
            }
        )  # fmt: skip
    return out


def describe_pairs(results: dict) -> str:
    """The paired comparison in plain words, one line per budget, then one line of summary."""
    pairs = paired_comparison(results)
    if not pairs:
        return "No budget has both a C3A and a LoRA run yet: nothing to compare."
    n_test = next((r.get("eval_size") for r in results["runs"] if r.get("eval_size")), None)
    lines = []
    for p in pairs:
        per_seed = ", ".join(f"{100 * d:+.1f}" for d in p["differences"])
        if len(p["seeds"]) < 2:
            verdict = "one seed so far: no estimate of the seed noise yet"
        elif len(p["seeds"]) < 3:
            verdict = "two seeds so far: too few to tell from seed noise"
        elif p["within_noise"]:
            verdict = "within seed noise"
        else:
            verdict = f"beyond seed noise: {'C3A' if p['mean'] > 0 else 'LoRA'} is ahead at every seed"
        test = "" if math.isnan(p["p_value"]) else f", paired t-test p = {p['p_value']:.2g}"
        lines.append(
            f"- {p['adapter_params']:,} parameters, C3A {p['c3a']} vs LoRA {p['lora']}: C3A − LoRA = "
            f"{100 * p['mean']:+.1f} points (per seed: {per_seed}; C3A ahead at {p['c3a_ahead']} of "
            f"{len(p['seeds'])} seeds{test}) — {verdict}."
        )
    beyond = [p for p in pairs if not p["within_noise"]]
    if all(len(p["seeds"]) < 2 for p in pairs):
        return "\n".join(lines)
    where = ", ".join(f"{p['adapter_params']:,}" for p in beyond)
    summary = f"At {len(beyond)} of {len(pairs)} matched budgets the difference is larger than the seed-to-seed noise"
    summary += f" ({where} parameters)." if beyond else "."
    every = [d for p in pairs for d in p["differences"] if d != 0]
    if len(pairs) > 1 and every:
        from scipy import stats

        ahead = sum(d > 0 for d in every)
        sign_p = stats.binomtest(ahead, len(every)).pvalue
        pooled = statistics.median(d for p in pairs for d in p["differences"])  # one diverged run can't sway it
        summary += (
            f" Pooled over every matched budget and seed ({len(every)} pairs that differ): C3A ahead in {ahead}, "
            f"median C3A − LoRA {100 * pooled:+.1f} points; a sign test gives p = {sign_p:.2g}, so across budgets "
            + (
                f"{'C3A' if ahead > len(every) / 2 else 'LoRA'} is ahead more often than chance would give."
                if sign_p < 0.05
                else "neither method is ahead more often than chance would give."
            )
        )
    if n_test:
        summary += f" One test example is {100 / n_test:.2f} points ({n_test} test examples)."
    return "\n".join([*lines, summary])


def ranking_stability(results: dict) -> str:
    """Whether the order of the settings still moves in the last epoch: Kendall's τ between the settings' mean
    validation accuracy after the second-to-last epoch and after the last (main grid, adapters and full)."""
    from scipy import stats

    by_setting: dict[tuple, list[list[float]]] = {}
    for run in main_runs(results):
        history = [e["val_accuracy"] for e in run.get("eval", [])]
        if len(history) >= 2:
            by_setting.setdefault((run["method"], _setting(run)), []).append(history[-2:])
    if len(by_setting) < 3:
        return "Too few settings so far to say whether their order is stable."
    before = [statistics.fmean(h[0] for h in hs) for hs in by_setting.values()]
    after = [statistics.fmean(h[1] for h in hs) for hs in by_setting.values()]
    tau = stats.kendalltau(before, after).statistic
    return (
        f"Order of the {len(by_setting)} settings by validation accuracy, one epoch before the end vs at the end: "
        f"Kendall τ = {tau:.2f} (1 = the same order){'; the ranking has settled' if tau >= 0.7 else ''}."
    )


def plot_sweep(results: dict, path: str | Path | None = None):
    """The Figure-1-style chart (accuracy vs adapter parameters) plus peak memory and time per step panels."""
    import matplotlib

    if path is not None:
        matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    rows = summarize(results)
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.6), gridspec_kw={"width_ratios": [2, 1, 1]})
    panels = [("test_mean", "test_std", "test accuracy"), ("peak_memory_mb", None, "peak memory (MB)")]
    panels.append(("time_per_step_s", None, "time per step (s)"))
    for ax, (key, err, ylabel) in zip(axes, panels, strict=True):
        for method in ("c3a", "lora"):
            mine = [r for r in rows if r["method"] == method]
            if not mine:
                continue
            x = [r["adapter_params"] for r in mine]
            y = [r[key] for r in mine]
            label = f"{LABELS[method]} ({get_method(method).symbol} = {', '.join(r['setting'][2:] for r in mine)})"
            if err:
                yerr = [r[err] for r in mine]
                ax.errorbar(x, y, yerr=yerr, marker="o", capsize=3, color=COLOURS[method], label=label)
            else:
                ax.plot(x, y, marker="o", color=COLOURS[method], label=label)
        for r in (r for r in rows if r["method"] == "full"):
            lo, hi = (r[key] - r[err], r[key] + r[err]) if err else (r[key], r[key])
            label = f"full fine-tuning ({r['adapter_params'] / 1e6:.1f}M){' ± std' if err else ''}"
            ax.axhspan(lo, hi, color=COLOURS["full"], alpha=0.25, label=label)
            ax.axhline(r[key], color=COLOURS["full"], lw=1, ls="-" if err else "--")
            if not err:
                ax.text(0.02, r[key], "full fine-tuning", transform=ax.get_yaxis_transform(), va="bottom", fontsize=8)
        ax.set_xscale("log")
        ax.set_xlabel("trainable adapter parameters (log scale; the 8-way head is trained too)")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3, which="both")
    baseline = next((r.get("majority_baseline") for r in results["runs"]), None)
    if baseline is not None:
        axes[0].axhline(baseline, color="k", ls=":", lw=1, label=f"majority class ({baseline:.3f})")
    axes[0].legend(fontsize=8, loc="lower right")
    axes[1].set_yscale("log")  # full fine-tuning's optimizer state dwarfs the adapters'
    axes[1].set_xlabel("adapter parameters")
    axes[2].set_xlabel("adapter parameters")
    axes[2].set_ylim(bottom=0)
    training = results["training"]
    counts = sorted({len(r["seeds"]) for r in rows}) or [0]
    per_point = f"{counts[0]}" if len(counts) == 1 else f"{counts[0]}–{counts[-1]}"
    machine = results["runs"][0].get("machine", "?") if results["runs"] else "?"
    fig.suptitle(
        f"{training['model']} on {training['dataset']}: {training['epochs']} epochs, {training['max_length']} tokens; "
        f"mean and std over {per_point} seed(s) per point; {results.get('status', '')}\n"
        f"memory and time: {machine}",
        fontsize=9,
    )
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=110)
        plt.close(fig)
    return fig


def format_report(results: dict) -> str:
    """The Markdown written next to the JSON: status, table, lr grid, paired comparison."""
    training = ", ".join(f"{k} {v}" for k, v in results["training"].items())
    return "\n\n".join(
        [
            f"# Parameter-budget sweep ({results.get('status', '')})",
            f"Training: {training}.",
            "## Test accuracy, mean ± std over seeds (main grid)",
            format_sweep_table(results),
            "## Learning rates (chosen on the validation split)",
            format_lr_table(results),
            "## C3A vs LoRA at matched budgets, seed by seed",
            describe_pairs(results),
            "## Is the ranking still moving?",
            ranking_stability(results),
        ]
    )


def write_report(results: dict, output: str | Path) -> list[Path]:
    """Write ``<output>.md`` (table, lr grid, paired comparison) and ``<output>.png`` (figure) beside the JSON."""
    output = Path(output)
    table, figure = output.with_suffix(".md"), output.with_suffix(".png")
    table.write_text(format_report(results) + "\n", encoding="utf-8")
    plot_sweep(results, figure)
    return [table, figure]


# --------------------------------------------------------------------------------------------------
# The stored sweep (in a checkout: data/results/; installed: the package's results/ folder)


@dataclass
class StoredSweep:
    results: dict
    json_path: Path
    figure_path: Path | None
    report_path: Path | None


def load_stored_sweep(name: str = STORED_NAME) -> StoredSweep | None:
    """The stored sweep: the checkout's ``data/results/<name>.json`` if there is one, else the package's copy
    (what a pip-installed package, e.g. in Colab, has). ``None`` when neither exists."""
    for folder in (REPOSITORY_RESULTS, PACKAGE_RESULTS):
        path = folder / f"{name}.json"
        if path.exists():
            figure, report = path.with_suffix(".png"), path.with_suffix(".md")
            return StoredSweep(
                read_results(path), path, figure if figure.exists() else None, report if report.exists() else None
            )
    return None


def copy_to_package(name: str = STORED_NAME) -> list[Path]:
    """Copy the checkout's stored sweep (JSON, figure, table) into the package, so that it ships as package data."""
    PACKAGE_RESULTS.mkdir(exist_ok=True)
    copied = []
    for suffix in (".json", ".png", ".md"):
        source = REPOSITORY_RESULTS / f"{name}{suffix}"
        if source.exists():
            copied.append(Path(shutil.copyfile(source, PACKAGE_RESULTS / source.name)))
    return copied


def show_stored_sweep(name: str = STORED_NAME) -> StoredSweep | None:
    """For a notebook: display the stored sweep's figure, table and paired comparison, or say it is absent."""
    stored = load_stored_sweep(name)
    if stored is None:
        print(
            f"The stored sweep ({name}.json) is not in this installation: neither a checkout's data/results/ nor "
            "the package's results/ folder has it. Its figure and table are in the repository's "
            "data/results/README_sweep.md; `python -m c3a_tutorial.sweep` reproduces it (about an hour on 2 CPU "
            "cores, minutes on a GPU)."
        )
        return None
    where = "the package's copy" if stored.json_path.parent == PACKAGE_RESULTS else "data/results/"
    print(f"{stored.json_path.name} ({where}) — {stored.results.get('status', '')}")  # no machine path
    try:
        from IPython.display import Image, Markdown, display
    except ImportError:  # plain Python: text only
        print(format_sweep_table(stored.results), format_lr_table(stored.results), describe_pairs(stored.results))
        return stored
    if stored.figure_path is not None:
        display(Image(filename=str(stored.figure_path)))
    display(Markdown(format_sweep_table(stored.results)))
    display(Markdown(format_lr_table(stored.results)))
    display(Markdown(describe_pairs(stored.results)))
    return stored


__all__ = [
    "main_runs",
    "summarize",
    "format_sweep_table",
    "format_lr_table",
    "paired_comparison",
    "describe_pairs",
    "ranking_stability",
    "plot_sweep",
    "format_report",
    "write_report",
    "StoredSweep",
    "load_stored_sweep",
    "copy_to_package",
    "show_stored_sweep",
]
