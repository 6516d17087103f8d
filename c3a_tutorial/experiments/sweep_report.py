"""What a parameter-budget sweep (``sweep``) says: the tables, the figure, the comparisons, the stored sweep.

    from c3a_tutorial.experiments.sweep_report import show_stored_sweep
    show_stored_sweep()        # figure, tables and comparisons of the sweep that ships with the package

Only the *main* runs count here: per setting the runs at the lr its validation grid chose, at the planned seeds
(the grid's other runs are in the file, and in the table of learning rates). The figure: mean test accuracy
against trainable adapter parameters (log axis; the head, trained by every method, is not counted), error bars =
95% confidence interval of the mean over seeds, one line per method, full fine-tuning as a band; a second panel
shows the learning rate each setting chose. Every comparison gives the seed-paired mean difference with its 95%
interval, McNemar's exact test per seed on the shared test examples, the test set's binomial standard error, and
words that follow the interval (``stats``).
"""

from __future__ import annotations

import math
import shutil
import statistics
from dataclasses import dataclass
from pathlib import Path

from scipy import stats as scipy_stats

from . import stats
from .methods import EXPERIMENT_METHODS, FULL, get_experiment_method
from .sweep_file import read_results

STORED_NAME = "sweep_minilm"  # data/results/sweep_minilm.{json,md,png}, and the package's copy
PACKAGE_RESULTS = Path(__file__).resolve().parent / "results"  # shipped as package data
REPOSITORY_RESULTS = Path(__file__).resolve().parents[2] / "data" / "results"  # a source checkout
REFERENCE = "c3a"  # the method every other one is compared with


def unit_of(run: dict) -> str:
    """``"c3a b=24"``, ``"full"``: the setting a run belongs to."""
    method = get_experiment_method(run["method"])
    return run["method"] if not method.is_adapter else f"{run['method']} {method.setting(run[method.size_field])}"


def unit_label(run: dict) -> str:
    """``"C3A b=24"``, ``"DoRA r=8"``, ``"full fine-tuning"``: a setting in words."""
    method = get_experiment_method(run["method"])
    name = method.label.replace(" (PEFT)", "")
    return name if not method.is_adapter else f"{name} {method.setting(setting_of(run))}"


def setting_of(run: dict) -> int | None:
    method = get_experiment_method(run["method"])
    return run[method.size_field] if method.is_adapter else None


def main_runs(results: dict) -> list[dict]:
    """The main runs: each setting's chosen lr, the planned settings and seeds."""
    plan, lrs = results.get("plan", {}), results.get("learning_rates", {})
    out = []
    for run in results["runs"]:
        method, unit = run["method"], unit_of(run)
        chosen = lrs.get(unit, {}).get("chosen")
        planned = [s for s in plan.get("settings", {}).get(method, [])]
        if chosen is None or not math.isclose(run["lr"], chosen) or setting_of(run) not in planned:
            continue
        if run["seed"] in plan.get("seeds", {}).get(method, []):
            out.append(run)
    return out


def _by_unit(results: dict) -> dict[str, dict[int, dict]]:
    """``{unit: {seed: run}}`` of the main runs."""
    out: dict[str, dict[int, dict]] = {}
    for run in main_runs(results):
        out.setdefault(unit_of(run), {})[run["seed"]] = run
    return out


def _interval(values: list[float], confidence: float = 0.95) -> float:
    """Half-width of the Student-t interval of the mean of ``values`` (nan for fewer than 2)."""
    if len(values) < 2:
        return math.nan
    return scipy_stats.t.ppf(0.5 + confidence / 2, len(values) - 1) * statistics.stdev(values) / math.sqrt(len(values))


def summarize(results: dict) -> list[dict]:
    """One row per setting of the main runs: seeds, parameters, accuracy (mean, std, 95% interval, the test set's
    binomial standard error), validation accuracy, lr, memory."""
    rows = []
    for unit, by_seed in _by_unit(results).items():
        runs = [by_seed[s] for s in sorted(by_seed)]
        test = [r["accuracy"] for r in runs]
        method = get_experiment_method(runs[0]["method"])
        n_test = len(runs[0].get("test_correct") or "") or runs[0].get("eval_size") or 0
        mean = statistics.fmean(test)
        rows.append(
            {
                "unit": unit, "method": method.name, "label": method.label,
                "setting": method.setting(setting_of(runs[0])),
                "size": setting_of(runs[0]), "seeds": sorted(by_seed), "adapter_params": runs[0]["adapter_params"],
                "trainable_params": runs[0]["trainable_params"], "test_mean": mean,
                "test_std": statistics.stdev(test) if len(test) > 1 else 0.0, "test_ci": _interval(test),
                "binomial_se": stats.binomial_se(mean, n_test) if n_test else math.nan, "n_test": n_test,
                "val_mean": statistics.fmean(r["val_accuracy"] for r in runs), "lr": runs[0]["lr"],
                "lr_times_scale": runs[0].get("lr_times_scale", runs[0]["lr"]),
                "peak_memory_mb": statistics.fmean(r["peak_memory_mb"] for r in runs),
            }
        )  # fmt: skip
    order = list(EXPERIMENT_METHODS)
    return sorted(rows, key=lambda r: (order.index(r["method"]), r["adapter_params"]))


def format_sweep_table(results: dict) -> str:
    """Test accuracy per setting (Markdown): mean ± std over seeds, the 95% interval of the mean, the test set's
    binomial standard error, validation accuracy, lr and memory."""
    lines = [
        "| method | setting | adapter params | test accuracy (mean ± std) | 95% interval of the mean | test-set SE "
        "| validation | seeds | lr | peak memory MB |",
        "|---|---|---:|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in summarize(results):
        spread = f" ± {r['test_std']:.3f}" if len(r["seeds"]) > 1 else ""
        ci = (
            "-"
            if math.isnan(r["test_ci"])
            else f"{r['test_mean'] - r['test_ci']:.3f} – {r['test_mean'] + r['test_ci']:.3f}"
        )
        lines.append(
            f"| {r['label']} | {r['setting']} | {r['adapter_params']:,} | {r['test_mean']:.3f}{spread} | {ci} | "
            f"{r['binomial_se']:.3f} | {r['val_mean']:.3f} | {len(r['seeds'])} | {r['lr']:g} | "
            f"{r['peak_memory_mb']:.0f} |"
        )
    return "\n".join(lines)


def format_lr_table(results: dict) -> str:
    """The validation grid that chose each setting's lr (Markdown)."""
    lines = ["| method | setting | lr → final validation accuracy (seed 0) | chosen | note |", "|---|---|---|---|---|"]
    for info in results.get("learning_rates", {}).values():
        method = get_experiment_method(info["method"])
        grid = " · ".join(
            f"**{lr} → {acc:.3f}**" if info.get("chosen") is not None and math.isclose(float(lr), info["chosen"])
            else f"{lr} → {acc:.3f}"
            for lr, acc in info.get("grid", {}).items()
        )  # fmt: skip
        if not grid:
            grid = "not run yet" if info.get("chosen") is None else info.get("chosen_by", "")
        chosen = "pending" if info.get("chosen") is None else f"{info['chosen']:g}"
        note = info.get("note", "") or (f"grid extended {info['extended']}×" if info.get("extended") else "")
        lines.append(f"| {method.label} | {method.setting(info.get('setting'))} | {grid} | {chosen} | {note} |")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------------
# Comparisons


def comparison_pairs(results: dict) -> list[tuple[str, str, str]]:
    """``[(unit A, unit B, why they are paired)]``: C3A against LoRA at every matched budget, and against each other
    method's settings at the C3A budget nearest on a log scale (the budgets' ratio is part of the reason)."""
    rows = {r["unit"]: r for r in summarize(results)}
    ours = [r for r in rows.values() if r["method"] == REFERENCE]
    pairs = []
    for other in rows.values():
        if other["method"] in (REFERENCE, FULL) or not ours:
            continue
        nearest = min(ours, key=lambda r: abs(math.log(r["adapter_params"] / other["adapter_params"])))
        ratio = other["adapter_params"] / nearest["adapter_params"]
        name = other["label"].replace(" (PEFT)", "")
        why = "matched budget" if ratio == 1 else f"nearest C3A budget: {name} has {ratio:.2f}× its parameters"
        pairs.append((nearest["unit"], other["unit"], why))
    return pairs


def compare(results: dict, unit_a: str, unit_b: str, confidence: float = 0.95) -> dict | None:
    """Seed-paired difference, McNemar per seed and binomial standard errors for two settings (None: no shared
    seed yet)."""
    by_unit = _by_unit(results)
    a, b = by_unit.get(unit_a, {}), by_unit.get(unit_b, {})
    seeds = sorted(set(a) & set(b))
    if not seeds:
        return None
    acc_a, acc_b = [a[s]["accuracy"] for s in seeds], [b[s]["accuracy"] for s in seeds]
    diff = stats.paired_difference(acc_a, acc_b, confidence)
    tests = []
    for s in seeds:
        ca, cb = a[s].get("test_correct"), b[s].get("test_correct")
        tests.append(stats.mcnemar(ca, cb) if ca and cb and len(ca) == len(cb) else None)
    n_test = len(a[seeds[0]].get("test_correct") or "") or a[seeds[0]].get("eval_size") or 0
    return {
        "a": unit_a, "b": unit_b, "label_a": unit_label(a[seeds[0]]), "label_b": unit_label(b[seeds[0]]),
        "seeds": seeds,
        "differences": [x - y for x, y in zip(acc_a, acc_b, strict=True)], "paired": diff, "mcnemar": tests,
        "se_a": stats.binomial_se(statistics.fmean(acc_a), n_test) if n_test else math.nan,
        "se_b": stats.binomial_se(statistics.fmean(acc_b), n_test) if n_test else math.nan, "n_test": n_test,
    }  # fmt: skip


def comparisons(results: dict) -> list[dict]:
    """Every comparison of ``comparison_pairs``, with Holm-adjusted p-values of the paired t-tests over them all."""
    out = []
    for unit_a, unit_b, why in comparison_pairs(results):
        found = compare(results, unit_a, unit_b)
        if found is not None:
            out.append({**found, "why": why})
    adjusted = stats.holm([c["paired"].p_value for c in out])
    for c, p in zip(out, adjusted, strict=True):
        c["holm_p"] = p
    return out


def _mcnemar_words(tests: list) -> str:
    known = [t for t in tests if t is not None]
    if not known:
        return "no per-example results"
    ps = ", ".join(f"{t.p_value:.2g}" for t in known)
    below = sum(t.p_value < 0.05 for t in known)
    return f"McNemar per seed p = {ps} ({below} of {len(known)} below 0.05)"


def describe_comparisons(results: dict) -> str:
    """Each comparison in plain words that follow its numbers, then what the corrections for many tests change."""
    found = comparisons(results)
    if not found:
        return "No two settings share a seed yet: nothing to compare."
    lines = []
    for c in found:
        d = c["paired"]
        per_seed = ", ".join(f"{100 * x:+.1f}" for x in c["differences"])
        words = stats.verdict(c["label_a"], c["label_b"], d)
        holm = (
            "" if math.isnan(c["holm_p"]) else f"; paired t-test p = {d.p_value:.2g}, Holm-adjusted {c['holm_p']:.2g}"
        )
        lines.append(
            f"- **{c['label_a']} vs {c['label_b']}** ({c['why']}, {len(c['seeds'])} seeds): {words}. Per seed: "
            f"{per_seed}{holm}; {_mcnemar_words(c['mcnemar'])}; test-set SE {100 * c['se_a']:.1f} / "
            f"{100 * c['se_b']:.1f} points."
        )
    ahead = [c for c in found if c["paired"].n >= 2 and (c["paired"].low > 0 or c["paired"].high < 0)]
    survive = [c for c in ahead if c["holm_p"] < 0.05]
    n_test = next((c["n_test"] for c in found if c["n_test"]), 0)
    summary = (
        f"Intervals that exclude zero: {len(ahead)} of {len(found)} comparisons"
        + (f" ({', '.join(c['label_a'] + ' vs ' + c['label_b'] for c in ahead)})" if ahead else "")
        + f". With {len(found)} comparisons made at once, about {0.05 * len(found):.1f} would exclude zero by chance"
        f" alone; after Holm's correction {len(survive)} remain below 0.05."
    )
    if n_test:
        summary += (
            f" One test example is {100 / n_test:.2f} points ({n_test} test examples); an accuracy near 0.8 is "
            f"measured to ±{100 * stats.binomial_se(0.8, n_test):.1f} points (binomial SE) whatever the seeds do."
        )
    return "\n".join([*lines, "", summary])


describe_pairs = describe_comparisons  # the name notebook 05 used


def full_gap(results: dict) -> str:
    """How far full fine-tuning is above the adapters: over every setting, and over each method's best."""
    rows = summarize(results)
    full = next((r for r in rows if r["method"] == FULL), None)
    adapters = [r for r in rows if r["method"] != FULL]
    if full is None or not adapters:
        return "Full fine-tuning or the adapters are not in the file yet."
    gaps = [100 * (full["test_mean"] - r["test_mean"]) for r in adapters]
    best = {}
    for r in adapters:
        if r["method"] not in best or r["test_mean"] > best[r["method"]]["test_mean"]:
            best[r["method"]] = r
    per_best = ", ".join(
        f"{r['label']} {r['setting']} {100 * (full['test_mean'] - r['test_mean']):+.1f}" for r in best.values()
    )
    return (
        f"Full fine-tuning ({full['test_mean']:.3f}, {len(full['seeds'])} seeds) minus each adapter setting: "
        f"{min(gaps):+.1f} to {max(gaps):+.1f} points over all {len(adapters)} settings; against each method's best "
        f"setting: {per_best} points. Note: the adapters leave MiniLM's pooler frozen, full fine-tuning trains it."
    )


def lr_transfer(results: dict) -> str:
    """Does a method's best lr move with its budget? The chosen lr at each setting, per method."""
    lines = []
    for method in EXPERIMENT_METHODS.values():
        chosen = [
            (info["setting"], info["chosen"])
            for info in results.get("learning_rates", {}).values()
            if info["method"] == method.name and info.get("chosen") is not None and info["setting"] is not None
        ]
        if len(chosen) < 2:
            continue
        chosen.sort(key=lambda x: method.adapter_parameters([(384, 384)], x[0]))
        spread = max(lr for _, lr in chosen) / min(lr for _, lr in chosen)
        steps = " → ".join(f"{method.setting(s)}: {lr:g}" for s, lr in chosen)
        lines.append(f"- {method.label}: {steps} (largest ÷ smallest {spread:.3g}×)")
    return "\n".join(lines) or "Fewer than two settings of any method have chosen their lr yet."


def truncation_cost(short: dict, long: dict) -> str:
    """What cutting every example to ``short``'s ``max_length`` costs: the same settings and seeds trained at
    ``long``'s, seed-paired (long − short), with how many examples each length cuts."""
    n_short, n_long = short["training"]["max_length"], long["training"]["max_length"]
    lines = [_cut_examples(short["training"], (n_short, n_long))]
    a, b = _by_unit(long), _by_unit(short)
    for unit in sorted(set(a) & set(b)):
        seeds = sorted(set(a[unit]) & set(b[unit]))
        if not seeds:
            continue
        diff = stats.paired_difference([a[unit][s]["accuracy"] for s in seeds], [b[unit][s]["accuracy"] for s in seeds])
        name = unit_label(a[unit][seeds[0]])
        words = stats.verdict(f"{n_long} tokens", f"{n_short} tokens", diff)
        lr = a[unit][seeds[0]]["lr"]
        lines.append(f"- {name} (lr {lr:g}, {len(seeds)} seeds): {words}.")
    return "\n".join(lines)


def _cut_examples(training: dict, lengths: tuple[int, ...]) -> str:
    """How many training and test examples are longer than each of ``lengths`` tokens (the tokenizer's count)."""
    try:
        import transformers

        from .backbone import resolve_model
        from .data import load_dataset

        path = resolve_model(training.get("model"))
        tokenizer = transformers.AutoTokenizer.from_pretrained(path, local_files_only=True)  # never the network
        data = load_dataset(training.get("dataset", "stdlib"), seed=training.get("split_seed", 0))
    except Exception as err:  # noqa: BLE001 - the counts are context; the comparison stands without them
        return f"(Examples cut: not counted here: {type(err).__name__}.)"
    parts = []
    for split in ("train", "test"):
        counts = data.token_lengths(tokenizer, split)
        cut = ", ".join(f"{100 * sum(c > n for c in counts) / len(counts):.0f}% beyond {n}" for n in lengths)
        parts.append(f"{split}: median {statistics.median(counts):g} tokens, {cut}")
    return "Examples longer than the cut (special tokens included): " + "; ".join(parts) + "."


def ranking_stability(results: dict) -> str:
    """Whether the order of the settings still moves in the last epoch: Kendall's τ between the settings' mean
    validation accuracy after the second-to-last epoch and after the last."""
    by_unit: dict[str, list[list[float]]] = {}
    for run in main_runs(results):
        history = [e["val_accuracy"] for e in run.get("eval", [])]
        if len(history) >= 2:
            by_unit.setdefault(unit_of(run), []).append(history[-2:])
    if len(by_unit) < 3:
        return "Too few settings so far to say whether their order is stable."
    before = [statistics.fmean(h[0] for h in hs) for hs in by_unit.values()]
    after = [statistics.fmean(h[1] for h in hs) for hs in by_unit.values()]
    tau = scipy_stats.kendalltau(before, after).statistic
    return (
        f"Order of the {len(by_unit)} settings by validation accuracy, one epoch before the end vs at the end: "
        f"Kendall τ = {tau:.2f} (1 = the same order){'; the ranking has settled' if tau >= 0.7 else ''}."
    )


# --------------------------------------------------------------------------------------------------
# The figure and the written report


def plot_sweep(results: dict, path: str | Path | None = None):
    """Accuracy vs adapter parameters for every method (95% intervals, full fine-tuning as a band), and the lr
    each setting chose."""
    import matplotlib

    if path is not None:
        matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    rows = summarize(results)
    fig, (ax, ax_lr) = plt.subplots(1, 2, figsize=(14, 5.2), gridspec_kw={"width_ratios": [2.2, 1]})
    for method in EXPERIMENT_METHODS.values():
        mine = [r for r in rows if r["method"] == method.name]
        if not mine or not method.is_adapter:
            continue
        x = [r["adapter_params"] for r in mine]
        yerr = [0.0 if math.isnan(r["test_ci"]) else r["test_ci"] for r in mine]
        seeds = sorted({len(r["seeds"]) for r in mine})
        label = f"{method.label} ({method.symbol} = {', '.join(str(r['size']) for r in mine)}; {seeds[-1]} seeds)"
        style = dict(marker=method.marker, color=method.colour, capsize=3, label=label)
        ax.errorbar(x, [r["test_mean"] for r in mine], yerr=yerr, ls="-" if method.source != "PEFT" else "--", **style)
        ax_lr.plot(x, [r["lr"] for r in mine], marker=method.marker, color=method.colour, label=method.label)
    for r in (r for r in rows if r["method"] == FULL):
        half = 0.0 if math.isnan(r["test_ci"]) else r["test_ci"]
        label = f"full fine-tuning ({r['adapter_params'] / 1e6:.1f}M; 95% interval, {len(r['seeds'])} seeds)"
        ax.axhspan(r["test_mean"] - half, r["test_mean"] + half, color="0.6", alpha=0.3, label=label)
        ax.axhline(r["test_mean"], color="0.3", lw=1)
    baseline = next((r.get("majority_baseline") for r in results["runs"]), None)
    if baseline is not None and rows and min(r["test_mean"] for r in rows) < baseline + 0.1:
        ax.axhline(baseline, color="k", ls=":", lw=1, label=f"majority class ({baseline:.3f})")
    n_test = next((r["n_test"] for r in rows if r["n_test"]), 0)
    if n_test:
        se = stats.binomial_se(0.8, n_test)
        ax.errorbar([], [], yerr=[], color="none", label=f"test-set SE near 0.8: ±{se:.3f} ({n_test} examples)")
    for a, label in ((ax, "trainable adapter parameters (log scale; the head is trained too, not counted)"),
                     (ax_lr, "adapter parameters (log scale)")):  # fmt: skip
        a.set_xscale("log")
        a.set_xlabel(label)
        a.grid(alpha=0.3, which="both")
    ax.set_ylabel("test accuracy (mean over seeds, 95% interval)")
    ax.legend(fontsize=7.5, loc="lower right")
    ax_lr.set_yscale("log")
    ax_lr.set_ylabel("learning rate chosen on validation (each method's own units)")
    ax_lr.legend(fontsize=7.5)
    training = results["training"]
    fig.suptitle(
        f"{training['model']} on {training['dataset']}: {training['epochs']} epochs, {training['max_length']} tokens, "
        f"lora_alpha {training.get('lora_alpha', '?')}; every setting's lr chosen on validation; "
        f"{results.get('status', '')}",
        fontsize=9,
    )
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=110)
        plt.close(fig)
    return fig


def format_report(results: dict) -> str:
    """The Markdown written next to the JSON: status, tables, comparisons, the lr study, what is missing."""
    training = ", ".join(f"{k} {v}" for k, v in results["training"].items())
    missing = results.get("missing") or []
    parts = [
        f"# Parameter-budget sweep ({results.get('status', '')})",
        f"Training: {training}.",
        "## Test accuracy per setting (main runs)",
        format_sweep_table(results),
        "## Comparisons with C3A (seed-paired; McNemar on the shared test examples)",
        describe_comparisons(results),
        "## Full fine-tuning",
        full_gap(results),
        "## Learning rates (chosen on the validation split, per setting)",
        format_lr_table(results),
        "### Does the best learning rate move with the budget?",
        lr_transfer(results),
        "## Is the ranking still moving?",
        ranking_stability(results),
    ]
    if missing:
        shown = "\n".join(f"- {m}" for m in missing[:40]) + (
            f"\n- … {len(missing) - 40} more" if len(missing) > 40 else ""
        )
        parts += ["## Missing (partial sweep)", shown]
    return "\n\n".join(parts)


def write_report(results: dict, output: str | Path) -> list[Path]:
    """Write ``<output>.md`` (tables, comparisons) and ``<output>.png`` (figure) beside the JSON. A sweep of the
    same settings at another sequence length beside it (``<output>_len<N>.json``) adds what truncation costs."""
    output = Path(output)
    table, figure = output.with_suffix(".md"), output.with_suffix(".png")
    text = format_report(results)
    for other in sorted(output.parent.glob(f"{output.stem}_len*.json")):
        longer = read_results(other)
        text += f"\n\n## What truncation costs ({other.name})\n\n" + truncation_cost(results, longer)
    table.write_text(text + "\n", encoding="utf-8")
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
    """For a notebook: display the stored sweep's figure, table and comparisons, or say it is absent."""
    stored = load_stored_sweep(name)
    if stored is None:
        print(
            f"The stored sweep ({name}.json) is not in this installation: neither a checkout's data/results/ nor "
            "the package's results/ folder has it. Its figure and tables are in the repository's "
            "data/results/README_sweep.md; `python -m c3a_tutorial.sweep` reproduces it (hours on 2 CPU cores)."
        )
        return None
    where = "the package's copy" if stored.json_path.parent == PACKAGE_RESULTS else "data/results/"
    print(f"{stored.json_path.name} ({where}) — {stored.results.get('status', '')}")  # no machine path
    try:
        from IPython.display import Image, Markdown, display
    except ImportError:  # plain Python: text only
        print(format_sweep_table(stored.results), describe_comparisons(stored.results), full_gap(stored.results))
        return stored
    if stored.figure_path is not None:
        display(Image(filename=str(stored.figure_path)))
    display(Markdown(format_sweep_table(stored.results)))
    display(Markdown(describe_comparisons(stored.results)))
    display(Markdown(full_gap(stored.results)))
    return stored


__all__ = [
    "main_runs",
    "summarize",
    "format_sweep_table",
    "format_lr_table",
    "comparison_pairs",
    "compare",
    "comparisons",
    "describe_comparisons",
    "describe_pairs",
    "full_gap",
    "lr_transfer",
    "ranking_stability",
    "truncation_cost",
    "plot_sweep",
    "format_report",
    "write_report",
    "StoredSweep",
    "load_stored_sweep",
    "copy_to_package",
    "show_stored_sweep",
]
