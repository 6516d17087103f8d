"""What each path of the C3A operator costs per call: the measurements ``path="auto"``'s rule is fitted to.

For every layer shape, block size and token count, one forward + backward (both gradients, a fixed upstream
gradient) of ``block_circulant_matmul`` with ``path="fft"`` and ``path="dense"``, interleaved in one process
(each round runs every path once, in a rotating order), median over rounds::

    python -m c3a_tutorial.experiments.path_costs --threads 1 --out data/results/path_costs_cpu.json

``--thread-choices`` times the FFT path's CPU thread choices instead (``data/results/README_bench.md, "Issue #28"``),
with a probe of 200 small parallel ops in every round that tells a quiet machine's two states apart (medians per
state under ``by_state``; README_bench.md, "Two states of a quiet machine")::

    python -m c3a_tutorial.experiments.path_costs --threads 2 --thread-choices --out threads_2.json

On CUDA the times are taken after a synchronize (wall clock of the call, host enqueue included: that is what a
training step pays). The file records the machine, the load (``os.getloadavg``) before and after, and every
round's time, so a reader can judge how much the shared machine moved them.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import numpy as np
import torch

from ..c3a.block_circulant import block_circulant_matmul
from .measure import machine_info, versions

# (d_out, d_in, b): the README's three cells and MiniLM's layer at the CLI's default b.
DEFAULT_CELLS = ((768, 768, 64), (1024, 1024, 128), (3072, 768, 256), (384, 384, 24))
DEFAULT_TOKENS = (8, 32, 128, 512, 2048)
PATHS = ("fft", "dense")

# Two states of a quiet machine (data/results/README_bench.md, "Two states of a quiet machine"): 200 small parallel
# ops took about 1.05 ms in one and 1.5 in the other, while the operator on intra-op threads took twice as long.
STATE_PROBE = "state probe: 200 small parallel ops"
SLOW_STATE = 1.25  # a round whose probe took this many times the probe's 10th percentile is in the slow state


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_paths(d_out, d_in, b, tokens, device, dtype=torch.float32, rounds=5, warmup=1, max_dense_gflop=None):
    """``{path: [ms per round]}`` for one cell; dense skipped (absent) above ``max_dense_gflop`` per call."""
    kernel = torch.randn(d_out // b, d_in // b, b, device=device, dtype=torch.float32, requires_grad=True)
    x = torch.randn(tokens, d_in, device=device, dtype=dtype, requires_grad=True)
    grad = torch.randn(tokens, d_out, device=device, dtype=dtype)
    paths = list(PATHS)
    if max_dense_gflop is not None and 6 * tokens * d_in * d_out / 1e9 > max_dense_gflop:
        paths.remove("dense")
    times = {path: [] for path in paths}
    for round_ in range(warmup + rounds):
        order = paths[round_ % len(paths) :] + paths[: round_ % len(paths)]
        for path in order:
            _sync(device)
            start = time.perf_counter()
            out = block_circulant_matmul(x, kernel, path=path, scale=1.0 / d_in)
            torch.autograd.grad(out, (x, kernel), grad)
            _sync(device)
            if round_ >= warmup:
                times[path].append(1e3 * (time.perf_counter() - start))
    return times


def measure(cells=DEFAULT_CELLS, tokens=DEFAULT_TOKENS, device="cpu", dtype=torch.float32, rounds=5, **kw):
    device = torch.device(device)
    load_before = os.getloadavg()
    rows = []
    for d_out, d_in, b in cells:
        for n in tokens:
            times = time_paths(d_out, d_in, b, n, device, dtype, rounds, **kw)
            medians = {path: statistics.median(t) for path, t in times.items()}
            rows.append(dict(d_out=d_out, d_in=d_in, block_size=b, tokens=n, median_ms=medians, times_ms=times))
            print(d_out, d_in, b, n, {p: round(v, 3) for p, v in medians.items()}, flush=True)
    return {
        "what": "forward + backward (both gradients) of block_circulant_matmul per path, ms, interleaved rounds",
        "device": str(device),
        "dtype": str(dtype).replace("torch.", ""),
        "threads": torch.get_num_threads(),
        "rounds": rounds,
        "load_before": load_before,
        "load_after": os.getloadavg(),
        "machine": machine_info(device),
        "versions": versions(),
        "rows": rows,
    }


def _thread_choice_row(d_out: int, d_in: int, b: int, n: int, rounds: int) -> dict:
    from ..c3a import block_circulant as bc

    variants = {
        "shared chunks": bc.SHARED_CHUNKS_CHOICES,
        "intra-op": bc.INTRA_OP_CHOICES,
        "default": bc.CPU_CHOICES,
        "intra-op, 1 thread": bc.INTRA_OP_CHOICES,  # the same, with torch at one thread for the step: the baseline
    }
    kernel = torch.randn(d_out // b, d_in // b, b, requires_grad=True)
    x = torch.randn(n, d_in, requires_grad=True)
    grad = torch.randn(n, d_out)
    a, lora_b = torch.randn(8, d_in, requires_grad=True), torch.randn(d_out, 8, requires_grad=True)
    probe = torch.zeros(65536)  # above torch's grain size (32768): each add_ is one parallel region of all threads

    def step(name):
        threads = torch.get_num_threads()
        if name.endswith(", 1 thread"):
            torch.set_num_threads(1)
        try:
            if name == STATE_PROBE:
                for _ in range(200):
                    probe.add_(1.0)
                return
            if name.startswith("lora-r8 adapter"):
                torch.autograd.grad((x @ a.T) @ lora_b.T, (x, a, lora_b), grad)
                return
            with bc.use_choices("cpu", variants[name]):
                torch.autograd.grad(block_circulant_matmul(x, kernel, path="fft", scale=1.0 / d_in), (x, kernel), grad)
        finally:
            torch.set_num_threads(threads)

    times = {name: [] for name in ("lora-r8 adapter", "lora-r8 adapter, 1 thread", *variants, STATE_PROBE)}
    load = os.getloadavg()[0]
    for round_ in range(rounds + 1):
        for name in times:
            start = time.perf_counter()
            step(name)
            if round_:
                times[name].append(1e3 * (time.perf_counter() - start))
    medians = {k: statistics.median(v) for k, v in times.items()}
    row = dict(d_out=d_out, d_in=d_in, block_size=b, tokens=n, threads=torch.get_num_threads(), load_before=load,
               load_after=os.getloadavg()[0], median_ms=medians, by_state=by_state(times), times_ms=times)  # fmt: skip
    print(
        row["threads"], d_out, d_in, b, n, f"load {load:.2f}", {k: round(v, 1) for k, v in medians.items()}, flush=True
    )
    return row


def by_state(times: dict) -> dict:
    """Medians (ms) of every row over the rounds of each state, told apart by the probe's time in the same round
    (slow: more than ``SLOW_STATE`` × the probe's 10th percentile), with the number of rounds in each."""
    probe = np.asarray(times[STATE_PROBE])
    slow = probe > SLOW_STATE * np.percentile(probe, 10)
    out = {}
    for state, rounds in (("fast", ~slow), ("slow", slow)):
        if rounds.any():
            medians = {name: float(np.median(np.asarray(t)[rounds])) for name, t in times.items()}
            out[state] = {"rounds": int(rounds.sum()), "median_ms": medians}
    return out


def time_thread_choices(cells=DEFAULT_CELLS[:3], tokens=(4096, 2048, 2048), rounds=7) -> list[dict]:
    """The FFT path's CPU thread choices (shared chunks, intra-op threads, the default) and LoRA r=8's adapter,
    forward + backward with both gradients, interleaved, wall clock, at torch's current thread count; the operator
    and LoRA also at one thread in the same rounds (does the extra thread help?)."""
    return [_thread_choice_row(*cell, n, rounds) for cell, n in zip(cells, tokens, strict=True)]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--tokens", type=int, nargs="+", default=list(DEFAULT_TOKENS))
    parser.add_argument("--max-dense-gflop", type=float, default=40.0, help="skip dense above this many GFLOP/call")
    parser.add_argument("--thread-choices", action="store_true", help="time the CPU thread choices instead")
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.thread_choices:
        rows = time_thread_choices(rounds=args.rounds)
        with open(args.out, "w") as f:
            json.dump({"machine": machine_info(torch.device("cpu")), "versions": versions(), "rows": rows}, f, indent=1)
        return
    result = measure(tokens=args.tokens, device=args.device, rounds=args.rounds, max_dense_gflop=args.max_dense_gflop)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()


def fit_cpu(result: dict) -> dict:
    """``path_choice.CpuCosts``'s fields fitted to a stored CPU result (non-negative least squares on relative
    errors, so that a 1 ms call counts as much as a 100 ms one), rounded to 3 significant digits."""
    from scipy.optimize import nnls

    fft_rows, fft_t, dense_rows, dense_t = [], [], [], []
    for row in result["rows"]:
        d_in, d_out, b, n = row["d_in"], row["d_out"], row["block_size"], row["tokens"]
        medians = row["median_ms"]
        if "fft" in medians:
            fft_rows.append((1.0, n * (d_in + d_out), 12 * n * d_in * d_out / b / 1e6))
            fft_t.append(medians["fft"])
        if "dense" in medians:
            dense_rows.append((d_in * d_out, 6 * n * d_in * d_out / 1e6))
            dense_t.append(medians["dense"])

    def solve(rows, times):
        a = np.array(rows, dtype=float) / np.array(times)[:, None]
        coef, _ = nnls(a, np.ones(len(times)))
        return coef

    fixed, per_feature, inv_fft_rate = solve(fft_rows, fft_t)
    per_entry, inv_dense_rate = solve(dense_rows, dense_t)

    def rate(inverse):  # ms per Mflop → Gflop/s
        return float("inf") if inverse == 0 else 1.0 / inverse

    fields = {
        "fft_fixed_ms": fixed,
        "fft_ms_per_feature": per_feature,
        "fft_gemm_gflops": rate(inv_fft_rate),
        "dense_ms_per_entry": per_entry,
        "dense_gemm_gflops": rate(inv_dense_rate),
    }
    return {key: float(f"{value:.3g}") for key, value in fields.items()}
