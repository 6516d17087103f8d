"""``python -m c3a_tutorial.sweep``: the command line of the parameter-budget sweep (``sweep`` has the details).

    python -m c3a_tutorial.sweep --threads 1                  # the stored sweep, on a shared CPU
    python -m c3a_tutorial.sweep --report-only                # table and figure again from the JSON
    python -m c3a_tutorial.sweep --block-sizes 24 96 --ranks 2 8 --no-full --seeds 0 1 --lr c3a=3 lora=1e-2 \\
        --train-size 256 --epochs 2 --output runs/sweep_small.json   # a small sweep of your own
"""

from __future__ import annotations

import argparse
import os

from .sweep import DEFAULT_LR_GRID, DEFAULT_OUTPUT, SweepConfig, SweepFileError, read_results, run_sweep
from .sweep_report import format_sweep_table, write_report


def _lr_pairs(items: list[str], grid: bool) -> dict:
    """``["c3a=0.3,1,3", "lora=1e-2"]`` → ``{"c3a": (0.3, 1.0, 3.0), ...}`` (a float, not a tuple, if not grid)."""
    out = {}
    for item in items:
        method, _, values = item.partition("=")
        if method not in ("c3a", "lora", "full") or not values:
            raise ValueError(f"{item!r}: write METHOD=VALUE[,VALUE...] with METHOD c3a, lora or full.")
        numbers = tuple(float(v) for v in values.split(","))
        if any(not v > 0 for v in numbers):
            raise ValueError(f"{item!r}: learning rates must be positive.")
        out[method] = numbers if grid else numbers[0]
    return out


def build_parser() -> argparse.ArgumentParser:
    d = SweepConfig()
    p = argparse.ArgumentParser(
        prog="python -m c3a_tutorial.sweep",
        description="Sweep C3A block sizes, LoRA ranks and full fine-tuning over seeds; resumable JSON, table, figure.",
    )
    p.add_argument("--output", default=DEFAULT_OUTPUT, help="the JSON file; table .md and figure .png go beside it")
    p.add_argument("--block-sizes", type=int, nargs="*", default=d.block_sizes, help="C3A block sizes; none: no C3A")
    p.add_argument("--ranks", type=int, nargs="*", default=d.ranks, help="LoRA ranks; none: no LoRA")
    p.add_argument("--no-full", action="store_true", help="leave out full fine-tuning")
    p.add_argument("--seeds", type=int, nargs="+", default=d.seeds, help="seeds of the main grid (data order + init)")
    grid = " ".join(f"{m}={','.join(f'{v:g}' for v in vs)}" for m, vs in DEFAULT_LR_GRID.items())
    p.add_argument("--lr-grid", nargs="+", default=[], metavar="M=LR,LR", help=f"lr grids (default {grid})")
    p.add_argument("--lr", nargs="+", default=[], metavar="M=LR", help="fixed lrs: skip that method's grid")
    p.add_argument("--lr-seeds", type=int, nargs="+", default=d.lr_seeds, help="seeds of the lr grid")
    p.add_argument("--lr-block-size", type=int, default=d.lr_block_size, help="C3A setting of the lr grid")
    p.add_argument("--lr-rank", type=int, default=d.lr_rank, help="LoRA setting of the lr grid")
    p.add_argument("--model", default=None, help="HF model id or local path (default: the bundled all-MiniLM-L6-v2)")
    p.add_argument("--dataset", default=d.dataset, choices=("stdlib", "sst2"))
    p.add_argument("--epochs", type=int, default=d.epochs)
    p.add_argument("--max-length", type=int, default=d.max_length)
    p.add_argument("--batch-size", type=int, default=d.batch_size, help="per process")
    p.add_argument("--head-lr", type=float, default=d.head_lr)
    p.add_argument("--train-size", type=int, default=None, help="the first N training examples (default: all)")
    p.add_argument("--eval-size", type=int, default=None, help="the first N validation/test examples (default: all)")
    p.add_argument("--max-steps", type=int, default=None, help="stop every run after N steps (tests)")
    p.add_argument("--device", default=None, help="cpu, cuda, mps (default: CUDA → MPS → CPU); cuda = bf16 autocast")
    p.add_argument("--machine", default=None, help="a label for the machine, stored in every record")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--report-only", action="store_true", help="only rewrite the table and figure from the JSON")
    p.add_argument("--no-progress", action="store_true")
    return p


def config_from_args(args: argparse.Namespace) -> SweepConfig:
    grid = {**DEFAULT_LR_GRID, **_lr_pairs(args.lr_grid, grid=True)}
    return SweepConfig(
        block_sizes=tuple(args.block_sizes), ranks=tuple(args.ranks), full=not args.no_full,
        seeds=tuple(args.seeds), lr_grid=grid, lr=_lr_pairs(args.lr, grid=False), lr_seeds=tuple(args.lr_seeds),
        lr_block_size=args.lr_block_size, lr_rank=args.lr_rank, model=args.model, dataset=args.dataset,
        epochs=args.epochs, max_length=args.max_length, batch_size=args.batch_size, head_lr=args.head_lr,
        train_size=args.train_size, eval_size=args.eval_size, max_steps=args.max_steps, device=args.device,
        machine=args.machine, progress=not args.no_progress,
    )  # fmt: skip


def main(argv: list[str] | None = None) -> dict:
    """The command line. Returns the results file's contents."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    try:
        config = config_from_args(args)
        if args.report_only:
            results = read_results(args.output)
            if results is None:
                raise SweepFileError(f"{args.output} does not exist: nothing to report.")
            paths = write_report(results, args.output)
        else:
            results = run_sweep(config, args.output)
            paths = None
    except SweepFileError as err:
        parser.exit(2, f"{parser.prog}: error: {err}\n")
    except ValueError as err:
        parser.error(str(err))
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"{args.output}: {results.get('status', '')}")
        print(format_sweep_table(results))
        if paths:
            print("wrote", ", ".join(str(p) for p in paths))
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()
    return results


__all__ = ["build_parser", "config_from_args", "main"]

if __name__ == "__main__":
    main()
