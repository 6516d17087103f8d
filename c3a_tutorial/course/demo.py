"""``python -m c3a_tutorial.demo``: a one-minute tour of the core.

Fits two full-rank target matrices with C3A and with LoRA at (at most) the same parameter budget and
prints what each reached: parameters, rank of ``ΔW`` and relative error. The targets show both sides:
a random Gaussian matrix (its energy sits in its top singular directions, where LoRA is at home) and
a "nudge every direction" matrix, identity plus noise (flat spectrum, where low rank cannot help).
"""

from __future__ import annotations

import argparse

import torch

from ..c3a.counting import lora_rank_for_budget
from .fitting import fit_update


def main(argv: list[str] | None = None) -> list:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dim", type=int, default=128, help="the target is dim x dim (default 128)")
    parser.add_argument("--block-sizes", type=int, nargs="+", default=[8, 16, 32])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    generator = torch.Generator().manual_seed(args.seed)
    noise = torch.randn(args.dim, args.dim, generator=generator) / args.dim**0.5
    targets = {"gaussian": noise, "identity+noise": torch.eye(args.dim) + 0.1 * noise}
    rows = []
    for target_name, target in targets.items():
        for b in args.block_sizes:
            rank = lora_rank_for_budget(args.dim, args.dim, b)
            for result in (
                fit_update(target, "c3a", block_size=b, steps=args.steps, seed=args.seed),
                fit_update(target, "lora", rank=rank, steps=args.steps, seed=args.seed),
            ):
                rows.append((target_name, result))
    print(f"\nFitting {args.dim}x{args.dim} full-rank targets (seed {args.seed}, {args.steps} Adam steps)")
    print(f"{'target':<15} {'method':<6} {'setting':>8} {'params':>8} {'rank(ΔW)':>9} {'rel. error':>11}")
    for target_name, r in rows:
        print(
            f"{target_name:<15} {r.method:<6} {r.setting:>8} {r.parameters:>8,d} {r.rank:>9d} {r.relative_error:>11.4f}"
        )
    return rows


if __name__ == "__main__":
    main()
