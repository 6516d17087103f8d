# The state probe logged in loads.log (passes 3-5): median ms of 200 small parallel ops at 2 threads, 50 rounds
# (README_bench.md, "Two states of a quiet machine"; about 1.05 ms in the fast state, 1.5 in the slow one).
import statistics
import time

import torch

torch.set_num_threads(2)
t = torch.zeros(65536)


def once():
    s = time.perf_counter()
    for _ in range(200):
        t.add_(1.0)
    return (time.perf_counter() - s) * 1e3


once()
print(f"probe {statistics.median(once() for _ in range(50)):.2f} ms")
