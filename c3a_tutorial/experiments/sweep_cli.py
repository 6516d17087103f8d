"""``python -m c3a_tutorial.sweep``: the command line of the parameter-budget sweep (``sweep`` has the details).

    python -m c3a_tutorial.sweep --threads 1 & python -m c3a_tutorial.sweep --threads 1   # the stored sweep
    python -m c3a_tutorial.sweep --report-only                # table and figure again from the JSON
    python -m c3a_tutorial.sweep --methods c3a=24,96 lora=8,2 --seeds 0 1 --lr c3a=1 lora=1e-2 \\
        --train-size 256 --epochs 2 --output runs/sweep_small.json   # a small sweep of your own
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import torch

from ..cli_types import positive_number, whole_number
from .config import validate_config
from .device import pick_device
from .methods import EXPERIMENT_METHODS, get_experiment_method
from .sweep import (
    DEFAULT_OUTPUT,
    DEFAULT_SEEDS,
    DEFAULT_SETTINGS,
    SweepConfig,
    SweepFileError,
    check_output,
    read_results,
    run_sweep,
)
from .sweep_report import format_sweep_table, write_report


def _pairs(items: list[str], what: str, convert) -> dict[str, tuple]:
    """``["c3a=0.3,1,3", "full"]`` → ``{"c3a": (0.3, 1.0, 3.0), "full": ()}``, each value through ``convert``."""
    out = {}
    for item in items:
        method, _, values = item.partition("=")
        if method not in EXPERIMENT_METHODS:
            raise ValueError(f"{item!r}: {method!r} is not a method; choose from {', '.join(EXPERIMENT_METHODS)}.")
        try:
            out[method] = tuple(convert(v) for v in values.split(",")) if values else ()
        except argparse.ArgumentTypeError as err:
            raise ValueError(f"{item!r}: {err} (write METHOD={what},{what}...).") from None
    return out


def build_parser() -> argparse.ArgumentParser:
    d = SweepConfig()
    settings = " ".join(
        m if sizes == (None,) else f"{m}={','.join(map(str, sizes))}" for m, sizes in DEFAULT_SETTINGS.items()
    )
    grids = " ".join(f"{m}={','.join(f'{v:g}' for v in x.lr_grid)}" for m, x in EXPERIMENT_METHODS.items())
    seeds = " ".join(f"{m}={','.join(map(str, s))}" for m, s in DEFAULT_SEEDS.items())
    p = argparse.ArgumentParser(
        prog="python -m c3a_tutorial.sweep",
        description="Sweep adapter budgets (C3A, LoRA, PEFT's baselines) and full fine-tuning over seeds, each "
        "setting's learning rate chosen on validation; resumable JSON, table, figure, statistics. Several "
        "processes may share one --output (one per core, --threads 1 each).",
    )
    p.add_argument(
        "--output",
        default=DEFAULT_OUTPUT,
        help=f"the JSON file; table .md and figure .png go beside it (default: {DEFAULT_OUTPUT})",
    )
    p.add_argument("--force", action="store_true", help="write the report over a .md/.png beside a new --output")
    p.add_argument(
        "--methods", nargs="+", default=None, metavar="M=S,S", help=f"methods and budgets (default: {settings})"
    )
    p.add_argument(
        "--seeds", nargs="+", default=None, metavar="S|M=S,S", help=f"seeds, for all or per method (default: {seeds})"
    )
    p.add_argument("--lr-grid", nargs="+", default=[], metavar="M=LR,LR", help=f"first lr grids (default: {grids})")
    p.add_argument(
        "--lr",
        nargs="+",
        default=[],
        metavar="M=LR",
        help="a fixed lr for every setting of a method: no grid (default: none)",
    )
    seeds_help = "seeds of the lr grids (default: 0)"
    p.add_argument("--lr-seeds", type=whole_number(0), nargs="+", default=d.lr_seeds, help=seeds_help)
    p.add_argument(
        "--lr-extensions",
        type=int,
        default=d.lr_extensions,
        help=f"grid steps allowed past an edge (default: {d.lr_extensions})",
    )
    p.add_argument("--model", default=None, help="HF model id or local path (default: the bundled all-MiniLM-L6-v2)")
    p.add_argument("--dataset", default=d.dataset, choices=("stdlib", "sst2"), help=f"(default: {d.dataset})")
    p.add_argument("--epochs", type=whole_number(1), default=d.epochs, help=f"(default: {d.epochs})")
    p.add_argument(
        "--max-length", type=whole_number(1), default=d.max_length, help=f"tokens per example (default: {d.max_length})"
    )
    p.add_argument(
        "--batch-size",
        type=whole_number(1),
        default=d.batch_size,
        help=f"examples per step, per process (default: {d.batch_size})",
    )
    p.add_argument("--head-lr", type=positive_number, default=d.head_lr, help=f"(default: {d.head_lr:g})")
    p.add_argument(
        "--lora-alpha",
        type=positive_number,
        default=d.lora_alpha,
        help=f"LoRA family: ΔW = (α/r)·B·A (default: {d.lora_alpha:g})",
    )
    p.add_argument(
        "--train-size", type=whole_number(1), default=None, help="the first N training examples (default: all)"
    )
    p.add_argument(
        "--eval-size", type=whole_number(1), default=None, help="the first N validation/test examples (default: all)"
    )
    p.add_argument(
        "--max-steps",
        type=whole_number(1),
        default=None,
        help="stop every run after N steps, for tests (default: no limit)",
    )
    p.add_argument("--device", default=None, help="cpu, cuda, mps (default: CUDA → MPS → CPU); cuda = bf16 autocast")
    p.add_argument("--machine", default=None, help="a label for the machine, stored in every record (default: none)")
    p.add_argument(
        "--threads",
        type=whole_number(1),
        default=None,
        help="torch CPU threads; 1 per process on a shared machine (default: torch's choice)",
    )
    p.add_argument("--report-only", action="store_true", help="only rewrite the table and figure from the JSON")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return p


def _seeds(items: list[str] | None, methods: list[str]) -> dict[str, tuple[int, ...]]:
    if items is None:
        return {m: DEFAULT_SEEDS.get(m, DEFAULT_SEEDS["full"]) for m in methods}
    if all("=" not in item for item in items):
        try:
            seeds = tuple(whole_number(0)(item) for item in items)
        except argparse.ArgumentTypeError as err:
            raise ValueError(f"--seeds: {err}.") from None
        return dict.fromkeys(methods, seeds)
    given = _pairs(items, "SEED", whole_number(0))
    return {m: given.get(m, DEFAULT_SEEDS.get(m, DEFAULT_SEEDS["full"])) for m in methods}


def config_from_args(args: argparse.Namespace) -> SweepConfig:
    if args.methods is None:
        settings = dict(DEFAULT_SETTINGS)
    else:
        given = _pairs(args.methods, "SIZE", whole_number(1))
        settings = {}
        for method, sizes in given.items():
            adapter = get_experiment_method(method).is_adapter
            if adapter and not sizes:
                raise ValueError(f"--methods {method}: give its budgets, e.g. {method}=8,16.")
            if not adapter and sizes:
                raise ValueError(f"--methods {method}: full fine-tuning has no budget; write just '{method}'.")
            settings[method] = sizes if adapter else (None,)
    lr = {m: v[0] for m, v in _pairs(args.lr, "LR", positive_number).items() if v}
    if any(len(v) != 1 for v in _pairs(args.lr, "LR", positive_number).values()):
        raise ValueError("--lr takes one learning rate per method (METHOD=LR); a grid goes in --lr-grid.")
    return SweepConfig(
        settings=settings, seeds=_seeds(args.seeds, list(settings)),
        lr_grid=_pairs(args.lr_grid, "LR", positive_number), lr=lr, lr_seeds=tuple(args.lr_seeds),
        lr_extensions=args.lr_extensions, model=args.model,
        dataset=args.dataset, epochs=args.epochs, max_length=args.max_length, batch_size=args.batch_size,
        head_lr=args.head_lr, lora_alpha=args.lora_alpha, train_size=args.train_size, eval_size=args.eval_size,
        max_steps=args.max_steps, device=args.device, machine=args.machine, progress=not args.no_progress,
    )  # fmt: skip


def check_model_and_sizes(config: SweepConfig) -> None:
    """Load the model once (a path that is not a model fails here) and fit every budget to its target layers
    (``--methods c3a=7`` is refused with the block sizes that divide them), before the first run."""
    from ..c3a.methods import METHODS as ADAPTER_METHODS
    from .backbone import load_classifier
    from .finetune import check_sizes_fit

    probe, _ = load_classifier(config.model, num_labels=2)
    for method in config.methods:
        if method not in ADAPTER_METHODS:  # PEFT's baselines: PEFT checks their sizes when it builds them
            continue
        for setting in config.settings[method]:
            finetune_config = config.finetune_config(method, setting, 1.0, 0)
            try:
                check_sizes_fit(finetune_config, [method], probe)
            except ValueError as err:
                raise ValueError(f"--methods {method}={setting}: {err}") from err


def main(argv: list[str] | None = None) -> dict:
    """The command line. Returns the results file's contents."""
    parser = build_parser()
    args = parser.parse_args(argv)
    paths = None
    try:  # everything the command line can get wrong, before any run
        config = config_from_args(args)
        if not args.report_only:
            check_output(Path(args.output), args.force)
            pick_device(args.device)  # a device this machine lacks is refused before anything is written
            for method in config.methods:
                for setting in config.settings[method]:  # every run's settings, as finetune will check them
                    validate_config(config.finetune_config(method, setting, 1.0, 0))
            check_model_and_sizes(config)
    except ValueError as err:
        parser.error(str(err))
    try:
        if args.report_only:
            results = read_results(args.output)
            if results is None:
                raise SweepFileError(f"{args.output} does not exist: nothing to report.")
            paths = write_report(results, args.output)
        else:
            if args.threads:
                torch.set_num_threads(args.threads)
            results = run_sweep(config, args.output, force=args.force)
    except SweepFileError as err:
        parser.exit(2, f"{parser.prog}: error: {err}\n")
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"{args.output}: {results.get('status', '')}")
        print(format_sweep_table(results))
        if paths:
            print("wrote", ", ".join(str(p) for p in paths))
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        if torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
    return results


__all__ = ["build_parser", "config_from_args", "main"]

if __name__ == "__main__":
    main()
