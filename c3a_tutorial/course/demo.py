"""``python -m c3a_tutorial.demo``: a one-minute tour of the core, C3A against LoRA at equal budget.

Fits target matrices with C3A and with LoRA at (at most) the same parameter budget, by Adam (what training
does) and exactly (the best fit each family allows: the projection onto block-circulant matrices, the
truncated SVD), and prints parameters, rank of ``ΔW`` and relative error. The targets are chosen so that
none is rigged, and the one that is says so:

* ``random``: i.i.d. Gaussian, neutral; neither family's structure is in it;
* ``decaying spectrum``: a few directions dominate, LoRA's home ground;
* ``shift-structured``: a convolution-like blur, almost block-circulant, so it favours C3A *by construction*
  (the identity-plus-noise target of earlier versions did too: the identity is block-circulant);
* ``MiniLM ΔW``: a real update from full fine-tuning (``data/minilm_query_delta.npy``), when it is available.

It ends with a one-line takeaway drawn from the numbers it printed.
"""

from __future__ import annotations

import argparse

import torch

from ..c3a.counting import lora_rank_for_budget
from ..cli_types import whole_number
from .explorer import REAL, make_target
from .fitting import best_c3a_fit, best_lora_fit, fit_update

TARGETS = ("random", "decaying spectrum", "shift-structured", REAL)
NOTES = {
    "random": "neutral",
    "decaying spectrum": "favours LoRA",
    "shift-structured": "favours C3A by construction",
    REAL: "real",
}


def _targets(dim: int, seed: int) -> dict:
    targets = {}
    for name in TARGETS:
        try:
            targets[name] = torch.from_numpy(make_target(name, dim, seed)).float()
        except (FileNotFoundError, ValueError) as err:  # the stored update is missing, or smaller than dim
            print(f"(skipping {name}: {err})")
    return targets


def takeaway(rows: list) -> str:
    """One line: on which targets each method had the lower exact error, at every budget tried."""
    wins: dict[str, set] = {}
    for name, c3a, lora, _, _ in rows:
        wins.setdefault(name, set()).add("C3A" if c3a.relative_error < lora.relative_error else "LoRA")
    lora_only = [n for n, w in wins.items() if w == {"LoRA"}]
    c3a_only = [n for n, w in wins.items() if w == {"C3A"}]
    mixed = [n for n, w in wins.items() if len(w) == 2]
    return (
        f"Takeaway: at equal budget LoRA fit better on {', '.join(lora_only) or 'no target'}; C3A on "
        f"{', '.join(c3a_only) or 'no target'}{'; it depended on the budget for ' + ', '.join(mixed) if mixed else ''}"
        ". Neither is better in general; C3A wins where the target is close to block-circulant (see notebook 03)."
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m c3a_tutorial.demo",
        description="A one-minute tour of the core: C3A against LoRA at equal budget, on four kinds of target.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--dim", type=whole_number(1), default=128, help="the targets are dim x dim (MiniLM ΔW only up to 192)"
    )
    parser.add_argument(
        "--block-sizes", type=whole_number(1), nargs="+", default=[8, 16, 32], help="C3A block sizes; each divides dim"
    )
    parser.add_argument("--steps", type=whole_number(1), default=300, help="Adam steps per fit")
    parser.add_argument("--seed", type=whole_number(0), default=0, help="seeds the targets and the fits")
    return parser


def main(argv: list[str] | None = None) -> list:
    parser = build_parser()
    args = parser.parse_args(argv)
    misfits = [b for b in args.block_sizes if args.dim % b]
    if misfits:  # found now, not after minutes of fitting the sizes that do divide
        valid = [b for b in range(1, args.dim + 1) if args.dim % b == 0]
        parser.error(
            f"--block-sizes {' '.join(map(str, misfits))}: a block size must divide --dim {args.dim}; "
            f"valid here: {valid}."
        )

    rows = []
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small matrices: one thread is as fast, and does not wait on a busy machine
    try:
        for name, target in _targets(args.dim, args.seed).items():
            for b in args.block_sizes:
                r = lora_rank_for_budget(args.dim, args.dim, b)
                rows.append((
                    name,
                    best_c3a_fit(target, b),
                    best_lora_fit(target, r),
                    fit_update(target, "c3a", block_size=b, steps=args.steps, seed=args.seed, progress=False),
                    fit_update(target, "lora", rank=r, steps=args.steps, seed=args.seed, progress=False),
                ))  # fmt: skip
    finally:
        torch.set_num_threads(threads)
    print(f"\nFitting {args.dim}x{args.dim} targets (seed {args.seed}): relative error ‖ΔW − T‖/‖T‖, exact best fit"
          f" and after {args.steps} Adam steps; lower is better")  # fmt: skip
    header = f"{'method':<5s} {'setting':>7s} {'params':>7s} {'rank':>5s} {'exact':>6s} {'Adam':>6s}"
    print(f"{'target':30s} {'':30s} {header}")
    for name, c3a, lora, c3a_adam, lora_adam in rows:
        for exact, adam in ((c3a, c3a_adam), (lora, lora_adam)):
            print(
                f"{name:30s} {'(' + NOTES[name] + ')':30s} {exact.method:<5s} {exact.setting:>7s} "
                f"{exact.parameters:>7,d} {exact.rank:>5d} {exact.relative_error:>6.3f} {adam.relative_error:>6.3f}"
            )
    print("\n" + takeaway(rows))
    return rows


if __name__ == "__main__":
    main()
