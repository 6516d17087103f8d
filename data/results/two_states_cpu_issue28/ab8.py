# Issue #28, "Two states of a quiet machine" (data/results/README_bench.md). Run after the timed thread choice
# (CPU_CHOICES.threads == "timed"), 2026-12-08 ~03:17-03:23 UTC, nothing else running:
#   PYTHONPATH=. python data/results/two_states_cpu_issue28/ab8.py 150 \
#       data/results/two_states_cpu_issue28/ab8_after_768.jsonl 768   (and 80 s at 1024, 3072)
# Each line: one round, median ms of 5 calls each (forward + backward, both gradients, 2 torch threads): the default
# (timed), intra-op threads only, one thread, LoRA r=8's adapter, the probe. Summarise with summary.py FILE.
import json
import sys
import time

import numpy as np
import torch

import c3a_tutorial.c3a.block_circulant as bc

torch.manual_seed(0)
torch.set_num_threads(2)
shapes = {"768": (4096, 768, 768, 64), "1024": (2048, 1024, 1024, 128), "3072": (2048, 768, 3072, 256)}
N, din, dout, b = shapes[sys.argv[3]]
x = torch.randn(N, din, requires_grad=True)
w = (torch.randn(dout // b, din // b, b) * 0.01).requires_grad_()
g = torch.randn(N, dout)
A = torch.randn(din, 8, requires_grad=True)
B = torch.randn(8, dout, requires_grad=True)


def step():
    y = bc.block_circulant_matmul(x, w, path="fft")
    y.backward(g)


def intra():
    with bc.use_choices("cpu", bc.INTRA_OP_CHOICES):
        step()


def one():
    torch.set_num_threads(1)
    try:
        step()
    finally:
        torch.set_num_threads(2)


def lora():
    y = (x @ A) @ B
    y.backward(g)


t = torch.randn(65536)


def regions():
    for _ in range(200):
        t.add_(1.0)


fs = {"default": step, "intra2": intra, "one1": one, "lora2": lora, "regions200": regions}


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
        row = {k: round(med(f), 3) for k, f in fs.items()}
        row["t"] = round(time.time() - t0, 1)
        row["load"] = open("/proc/loadavg").read().split()[0]
        out.write(json.dumps(row) + "\n")
        out.flush()
print({k: v for k, v in bc.thread_timings().items()})
