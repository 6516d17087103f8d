"""``python -m c3a_tutorial.bench``: the benchmark's command line (the timing is in ``bench.py``).

Results go to ``runs/bench/`` (git-ignored) under a new time-stamped name unless ``--out`` names a file; an
existing file is never replaced without ``--force``; every output path is checked before the run. ``--profile`` adds
where the C3A operator's time goes (FFT, GEMM, layout copies, allocation, Python; on CUDA GPU time by kind and host
time) for every C3A method and cell of the run. A usage error is one line on stderr, exit status 2, nothing written.
``--show FILE`` prints a stored result (and plots it with ``--plot``).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence

import matplotlib
import torch

from ..c3a.paths import can_create_in
from ..cli_types import whole_number
from .bench import DEFAULT_METHODS, DEFAULT_SHAPES, DEFAULT_TOKENS, TIMERS, TINY, run_benchmark
from .bench_methods import BENCH_METHODS, fits, parse_method
from .bench_report import format_table, load_results, refuse_existing, save_results, write_plot
from .device import pick_device
from .profile import profile_operator

SCRATCH_DIR = os.path.join("runs", "bench")
DTYPES = ("float32", "bfloat16", "float16", "float64")


class _Parser(argparse.ArgumentParser):
    """A usage error is one line on stderr and exit status 2 (argparse's own adds the usage text first)."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _fail(message: str):
    _parser().error(message)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text} is not a positive number of seconds")
    return value


def _shape(text: str) -> tuple[int, int]:
    try:
        d_out, d_in = (int(v) for v in text.lower().split("x"))
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"{text!r} is not a shape: write d_outxd_in, e.g. 3072x768") from err
    if d_out < 1 or d_in < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: both sides of a layer need at least one feature")
    return d_out, d_in


def _method(text: str) -> str:
    try:
        parse_method(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err).rstrip(".")) from None
    return text


class _Help(argparse.HelpFormatter):
    """Shows every default that is a value (``None`` and ``False`` defaults are said in the help text)."""

    def _get_help_string(self, action):
        text = action.help or ""
        if action.default not in (None, False, argparse.SUPPRESS) and "%(default)" not in text:
            text += " (default: %(default)s)"
        return text


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="python -m c3a_tutorial.bench",
        description="Forward + backward overhead of adapters over the frozen linear layer they adapt.",
        formatter_class=_Help,
    )
    add = parser.add_argument
    add("--tiny", action="store_true", help="a few-second configuration (for CI and notebooks)")
    add("--device", default="cpu", help="cpu, cuda, mps")
    add("--dtype", default="float32", choices=DTYPES, help="of the input, the base layer and the gradients")
    add("--shapes", type=_shape, nargs="+", help=f"d_outxd_in ... (default {' '.join(map(_name, DEFAULT_SHAPES))})")
    tokens = " ".join(map(str, DEFAULT_TOKENS))
    add("--tokens", type=whole_number(1), nargs="+", help=f"token counts N (default {tokens})")
    add("--methods", type=_method, nargs="+", help=f"default {' '.join(DEFAULT_METHODS)}")
    add("--repeats", type=whole_number(1), default=20, help="rounds over all methods (3 with --tiny)")
    add("--warmup", type=whole_number(0), default=2, help="untimed rounds first (1 with --tiny)")
    add("--time-budget", type=_seconds, default=None, help="seconds per shape/token cell (fewer repeats if needed)")
    add("--timer", choices=TIMERS, default="auto", help="cpu: process CPU time (shared machines)")
    add("--threads", type=whole_number(1), default=None, help="torch CPU threads (default: torch's choice)")
    add("--profile", action="store_true", help="also profile the C3A operator: FFT, GEMM, copies (CPU or CUDA)")
    add("--profile-repeats", type=whole_number(1), default=5, help="timed runs per profiled cell")
    add("--out", default=None, help=f"JSON file (default: a new time-stamped file under {SCRATCH_DIR}/)")
    add("--plot", default=None, help="PNG file (default: the JSON path with .png; with --show: no plot)")
    add("--force", action="store_true", help="replace --out / --plot if they exist")
    add("--show", default=None, help="print (and with --plot, plot) an existing result file instead of running")
    return parser


def _name(shape: tuple[int, int]) -> str:
    return f"{shape[0]}x{shape[1]}"


def check_writable(paths, force: bool) -> None:
    """Before any work: each output path is refused if it exists (without ``force``), is a folder, or its folder
    cannot be created or written. ``ValueError`` / ``FileExistsError`` naming the path."""
    for path in paths:
        if path is not None and os.path.isdir(path):
            raise ValueError(f"{path} is a folder: give a file name, e.g. {os.path.join(path, 'bench.json')}.")
    refuse_existing(paths, force)
    for path in paths:
        if path is None:
            continue
        folder = os.path.dirname(os.path.abspath(path))
        existing = next(p for p in [folder, *_parents(folder)] if os.path.exists(p))
        if not os.path.isdir(existing):
            raise ValueError(f"{path}: {existing} is a file, so no folder can be made there; choose another path.")
        if not can_create_in(existing):  # tried, not read from permission bits (root ignores them; /sys is read-only)
            raise ValueError(f"{path}: {existing} is not writable; choose another path.")


def _parents(folder: str):
    while True:
        parent = os.path.dirname(folder)
        if parent == folder:
            return
        yield parent
        folder = parent


def _show(args: argparse.Namespace) -> None:
    try:
        result = load_results(args.show)
        check_writable([args.plot], args.force)
    except (ValueError, FileExistsError) as err:
        _fail(str(err))
    if args.plot:
        matplotlib.use("Agg")
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
    """The operator's profile for every row of our operator in ``result`` (CPU: by kind of work on the run's clock;
    CUDA: GPU time by kind and host time, see ``profile.profile_device_step``)."""
    timer = result["config"]["timer"]
    clock = "cpu" if timer == "process cpu time" else "wall"
    dtype = getattr(torch, result["config"]["dtype"])
    device = result["machine"]["device"]
    out = []
    for row in result["results"]:
        if row["kind"] in BENCH_METHODS and BENCH_METHODS[row["kind"]].our_operator:
            cell = (row["d_out"], row["d_in"], row["block_size"], row["tokens"])
            out.append(profile_operator(*cell, repeats, dtype=dtype, device=device, clock=clock))
    return out


def _check_run(args: argparse.Namespace, defaults: dict) -> torch.device:
    """Every usage error of a run, before anything is timed or written."""
    try:
        device = pick_device(args.device)
    except ValueError as err:
        _fail(f"--device {args.device}: {err}")
    if args.profile and device.type not in ("cpu", "cuda"):
        _fail(f"--profile profiles a CPU or a CUDA device, not {device.type}; drop --profile.")
    if args.timer == "cpu" and device.type == "cuda":
        _fail("--timer cpu measures host CPU time; on CUDA leave --timer auto (CUDA events).")
    shapes = args.shapes or defaults["shapes"]
    methods = args.methods or defaults["methods"]
    misfits = [f"{m} on {_name(s)}" for s in shapes for m in methods if not fits(m, *s)]
    if misfits:
        _fail(
            f"{', '.join(misfits)}: the size does not fit (a block size must divide d_in and d_out, a rank be at "
            "most the smaller side); choose --methods and --shapes that fit each other."
        )
    return device


def main(argv: Sequence[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    if args.show:
        return _show(args)
    defaults = TINY if args.tiny else {"shapes": DEFAULT_SHAPES, "tokens": DEFAULT_TOKENS, "methods": DEFAULT_METHODS}
    device = _check_run(args, defaults)
    out, plot_path = _out_paths(args)
    try:
        check_writable([out, plot_path], args.force)  # both, before the run, not after it
    except (ValueError, FileExistsError) as err:
        _fail(str(err))
    if args.threads:
        torch.set_num_threads(args.threads)
    result = run_benchmark(
        shapes=args.shapes or defaults["shapes"],
        tokens=args.tokens or defaults["tokens"],
        methods=args.methods or defaults["methods"],
        device=device,
        repeats=3 if args.tiny and args.repeats == 20 else args.repeats,
        warmup=1 if args.tiny and args.warmup == 2 else args.warmup,
        dtype=getattr(torch, args.dtype),
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
