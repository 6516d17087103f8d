# Issue #28, "Two states of a quiet machine" (data/results/README_bench.md). Run at commit 396e04a, 2026-12-08
# ~03:16 UTC, with glibc's mmap and trim thresholds at 1 GiB (no page fault per step after the warm-up):
#   MALLOC_MMAP_THRESHOLD_=1073741824 MALLOC_TRIM_THRESHOLD_=1073741824 PYTHONPATH=. \
#       python data/results/two_states_cpu_issue28/ab7.py 60 \
#       data/results/two_states_cpu_issue28/ab7_before_no_faults.jsonl
# Each line: one round, median ms of 5 steps (768², b=64, N=4096, 2 threads) and minor faults per step of each row.
import json
import resource
import sys
import time

import numpy as np
import torch

import c3a_tutorial.c3a.block_circulant as bc

torch.manual_seed(0)
torch.set_num_threads(2)
x = torch.randn(4096, 768, requires_grad=True)
w = (torch.randn(12, 12, 64) * 0.01).requires_grad_()
g = torch.randn(4096, 768)


def step():
    y = bc.block_circulant_matmul(x, w, path="fft")
    y.backward(g)


def one():
    torch.set_num_threads(1)
    try:
        step()
    finally:
        torch.set_num_threads(2)


def shared():
    with bc.use_choices("cpu", bc.SHARED_CHUNKS_CHOICES):
        step()


t = torch.randn(65536)


def regions():
    for _ in range(200):
        t.add_(1.0)


fs = {"ours2": step, "ours1": one, "shared2": shared, "regions200": regions}


def med(f, r=5):
    ts = []
    f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(r):
        t0 = time.perf_counter()
        f()
        ts.append(time.perf_counter() - t0)
    return np.median(ts) * 1e3, (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0) / r


for f in fs.values():
    f()
    f()
t0 = time.time()
with open(sys.argv[2], "w") as out:
    while time.time() - t0 < float(sys.argv[1]):
        row = {}
        for k, f in fs.items():
            m, fl = med(f)
            row[k] = round(m, 3)
            row[k + "_flt"] = round(fl)
        row["t"] = round(time.time() - t0, 1)
        row["load"] = "0"
        out.write(json.dumps(row) + "\n")
        out.flush()
