"""``python -m c3a_tutorial.bench``: the benchmark's command line (the timing is in ``bench.py``).

Results go to ``runs/bench/`` (git-ignored) under a new time-stamped name unless ``--out`` names a file; an
existing file is never replaced without ``--force``. ``--profile`` adds where the C3A operator's time goes (FFT,
GEMM, layout copies, allocation, Python) for every C3A method and cell of the run. ``--show FILE`` prints a stored
result (and plots it with ``--plot``).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence

import matplotlib
import torch

from .bench import DEFAULT_METHODS, DEFAULT_SHAPES, DEFAULT_TOKENS, TIMERS, TINY, parse_method, run_benchmark
from .bench_report import format_table, load_results, refuse_existing, save_results, write_plot
from .profile import profile_operator

SCRATCH_DIR = os.path.join("runs", "bench")


def _shape(text: str) -> tuple[int, int]:
    try:
        d_out, d_in = (int(v) for v in text.lower().split("x"))
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"{text!r} is not a shape: write d_outxd_in, e.g. 3072x768.") from err
    return d_out, d_in


class _Help(argparse.HelpFormatter):
    """Shows every default that is a value (``None`` and ``False`` defaults are said in the help text)."""

    def _get_help_string(self, action):
        text = action.help or ""
        if action.default not in (None, False, argparse.SUPPRESS) and "%(default)" not in text:
            text += " (default: %(default)s)"
        return text


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m c3a_tutorial.bench",
        description="Forward + backward overhead of adapters over the frozen linear layer they adapt.",
        formatter_class=_Help,
    )
    add = parser.add_argument
    add("--tiny", action="store_true", help="a few-second configuration (for CI and notebooks)")
    add("--device", default="cpu", help="cpu, cuda, mps")
    add("--shapes", type=_shape, nargs="+", help=f"d_outxd_in ... (default {' '.join(map(_name, DEFAULT_SHAPES))})")
    add("--tokens", type=int, nargs="+", help=f"token counts N (default {' '.join(map(str, DEFAULT_TOKENS))})")
    add("--methods", nargs="+", help=f"default {' '.join(DEFAULT_METHODS)}")
    add("--repeats", type=int, default=20, help="rounds over all methods (3 with --tiny)")
    add("--warmup", type=int, default=2, help="untimed rounds first (1 with --tiny)")
    add("--time-budget", type=float, default=None, help="seconds per shape/token cell (fewer repeats if needed)")
    add("--timer", choices=TIMERS, default="auto", help="cpu: process CPU time (shared machines)")
    add("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    add("--profile", action="store_true", help="also profile the C3A operator (CPU): FFT, GEMM, copies, Python")
    add("--profile-repeats", type=int, default=5, help="timed runs per profiled cell")
    add("--out", default=None, help=f"JSON file (default: a new time-stamped file under {SCRATCH_DIR}/)")
    add("--plot", default=None, help="PNG file (default: the JSON path with .png; with --show: no plot)")
    add("--force", action="store_true", help="replace --out / --plot if they exist")
    add("--show", default=None, help="print (and with --plot, plot) an existing result file instead of running")
    return parser


def _name(shape: tuple[int, int]) -> str:
    return f"{shape[0]}x{shape[1]}"


def _show(args: argparse.Namespace) -> None:
    try:
        result = load_results(args.show)
        refuse_existing([args.plot], args.force)
    except (ValueError, FileExistsError) as err:
        raise SystemExit(f"error: {err}") from None
    if args.plot:
        write_plot(result, args.plot)
    print(format_table(result))


def _out_paths(args: argparse.Namespace) -> tuple[str, str]:
    if args.out:
        out = args.out
    else:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        device_type = torch.device(args.device).type
        out = os.path.join(SCRATCH_DIR, f"bench_{device_type}{'_tiny' if args.tiny else ''}_{stamp}.json")
    return out, args.plot or os.path.splitext(out)[0] + ".png"


def _profiles(result: dict, repeats: int) -> list[dict]:
    """The operator's profile for every C3A method and cell of ``result`` (CPU runs only)."""
    timer = result["config"]["timer"]
    clock = "cpu" if timer == "process cpu time" else "wall"
    dtype = getattr(torch, result["config"]["dtype"])
    out = []
    for row in result["results"]:
        if row["kind"] == "c3a":
            out.append(
                profile_operator(
                    row["d_out"], row["d_in"], row["block_size"], row["tokens"], repeats, dtype=dtype, clock=clock
                )
            )
    return out


def main(argv: Sequence[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    if args.show:
        return _show(args)
    for method in args.methods or ():
        try:
            parse_method(method)
        except ValueError as err:
            raise SystemExit(f"error: {err}") from None
    if args.profile and torch.device(args.device).type != "cpu":
        raise SystemExit(
            "error: --profile profiles CPU work; on a GPU the benchmark's CUDA-event times are the profile."
        )
    out, plot_path = _out_paths(args)
    try:
        refuse_existing([out, plot_path], args.force)  # before the run, not after it
    except FileExistsError as err:
        raise SystemExit(f"error: {err}") from None
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
        progress=sys.stderr.isatty(),
    )
    if args.profile:
        result["profile"] = _profiles(result, args.profile_repeats)
    save_results(result, out, force=args.force)
    matplotlib.use("Agg")
    write_plot(result, plot_path)
    print(format_table(result))
    print(f"wrote {out} and {plot_path}")


if __name__ == "__main__":
    main()
