# Issue #28, "Two states of a quiet machine" (data/results/README_bench.md). Run at commit 396e04a (the CPU default was
# then torch's intra-op threads on a quiet machine), 2026-12-08 ~02:58-03:08 UTC, nothing else running:
#   PYTHONPATH=. python data/results/two_states_cpu_issue28/ab5.py 600 \
#       data/results/two_states_cpu_issue28/ab5_before.jsonl
# Each line: one round, the median ms of 5 calls of each row (forward + backward, both gradients, 768², b=64,
# N=4096, 2 torch threads): ours (intra-op), ours with 8 MiB chunks, ours at 1 thread, chunks shared among Python
# threads, LoRA r=8's adapter, and a probe of 200 small parallel ops. Summarise with summary.py FILE.
import json
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
A = torch.randn(768, 8, requires_grad=True)
B = torch.randn(8, 768, requires_grad=True)


def step():
    y = bc.block_circulant_matmul(x, w, path="fft")
    y.backward(g)


def big():
    bc._CHUNK_BYTES = 8 << 20
    try:
        step()
    finally:
        bc._CHUNK_BYTES = 2 << 20


def one():
    torch.set_num_threads(1)
    try:
        step()
    finally:
        torch.set_num_threads(2)


def shared():
    with bc.use_choices("cpu", bc.SHARED_CHUNKS_CHOICES):
        step()


def lora():
    y = (x @ A) @ B
    y.backward(g)


t = torch.randn(65536)


def regions():
    for _ in range(200):
        t.add_(1.0)


fs = {"ours2": step, "ours2_8MiB": big, "ours1": one, "shared2": shared, "lora2": lora, "regions200": regions}


def med(f, r=5):
    ts = []
    for _ in range(r):
        t0 = time.perf_counter()
        f()
        ts.append(time.perf_counter() - t0)
    return np.median(ts) * 1e3


for f in fs.values():
    f()
    f()
t0 = time.time()
with open(sys.argv[2], "w") as out:
    while time.time() - t0 < float(sys.argv[1]):
        row = {k: round(med(f), 2) for k, f in fs.items()}
        row["t"] = round(time.time() - t0, 1)
        out.write(json.dumps(row) + "\n")
        out.flush()
