# Issue #28, "Two states of a quiet machine" (data/results/README_bench.md). Run at commit 396e04a, 2026-12-08
# ~03:13-03:19 UTC: ab6_before.jsonl (default environment) and ab6_before_omp_active.jsonl (OMP_WAIT_POLICY=ACTIVE):
#   PYTHONPATH=. python data/results/two_states_cpu_issue28/ab6.py SECONDS OUT.jsonl
# Each line: one round, median ms of 5 calls each: ours (768², b=64, N=4096, 2 threads), LoRA r=8's adapter, the
# probe (200 small parallel ops), and the operator's own ops alone (13 rffts of a chunk, 13 bmm, 13 transposing
# copies), with the 1-minute load. Summarise with summary.py FILE.
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


def lora():
    y = (x @ A) @ B
    y.backward(g)


t = torch.randn(65536)


def regions():
    for _ in range(200):
        t.add_(1.0)


xd = x.detach()


def rffts():
    for s in range(0, 4096, 341):
        torch.fft.rfft(xd[s : s + 341].reshape(-1, 12, 64), dim=-1)


P = torch.randn(33, 341, 24)
Q = torch.randn(33, 24, 24)
O = torch.empty(33, 341, 24)


def bmms():
    for _ in range(13):
        torch.bmm(P, Q, out=O)


S = torch.randn(4092, 33, dtype=torch.complex64)
D = torch.empty(33, 4092, dtype=torch.complex64)


def copies():
    for _ in range(13):
        D.unsqueeze(1).copy_(S.t().unsqueeze(1))


fs = {"ours2": step, "lora2": lora, "regions200": regions, "rfft13": rffts, "bmm13": bmms, "copy13": copies}


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
