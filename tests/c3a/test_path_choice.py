"""path="auto": the rule, its constants (fitted to stored measurements), what it says, and the override."""

import json
import pathlib

import pytest
import torch

from c3a_tutorial import C3ALinear, block_circulant_matmul
from c3a_tutorial.c3a import path_choice
from c3a_tutorial.experiments.path_costs import fit_cpu

RESULTS = pathlib.Path(__file__).resolve().parents[2] / "data" / "results"
README_CELLS = [((12, 12, 64), 4096), ((8, 8, 128), 2048), ((12, 3, 256), 2048)]


def test_cpu_constants_are_the_fit_to_the_stored_measurements():
    stored = json.loads((RESULTS / "path_costs_cpu.json").read_text())
    assert stored["device"] == "cpu" and stored["rows"]
    assert path_choice.CPU._asdict() == pytest.approx(fit_cpu(stored), rel=1e-9)


def test_the_rule_agrees_with_the_stored_cpu_measurements():
    """Where the two measured paths differ by more than 1.5x, the rule picks the faster one."""
    stored = json.loads((RESULTS / "path_costs_cpu.json").read_text())
    checked = 0
    for row in stored["rows"]:
        medians = row["median_ms"]
        if len(medians) < 2 or max(medians.values()) < 1.5 * min(medians.values()):
            continue
        b = row["block_size"]
        shape = (row["d_out"] // b, row["d_in"] // b, b)
        choice = path_choice.choose_path("cpu", torch.float32, shape, row["tokens"])
        assert choice.path == min(medians, key=medians.get), (row, choice.reason)
        checked += 1
    assert checked >= 10


@pytest.mark.parametrize("shape,tokens", README_CELLS, ids=str)
def test_readme_cells_fft_on_the_cpu_dense_on_a_gpu(shape, tokens):
    assert path_choice.choose_path("cpu", torch.float32, shape, tokens).path == "fft"
    for dtype in (torch.float32, torch.bfloat16):
        choice = path_choice.choose_path("cuda", dtype, shape, tokens)
        assert choice.path == "dense", choice.reason
        assert choice.estimates_ms["dense"] < choice.estimates_ms["fft"]


def test_large_token_counts_in_float32_take_the_fft_path_on_a_gpu():
    """At 131k tokens the kernels, not the launches, set the time: the FFT path's fewer flops win (float32)."""
    choice = path_choice.choose_path("cuda", torch.float32, (8, 8, 128), 131072)
    assert choice.path == "fft", choice.reason
    assert "GPU cost model" in choice.reason and "so fft" in choice.reason


def test_explain_path_says_what_auto_does_and_the_layer_can_override_it():
    layer = C3ALinear(torch.nn.Linear(1024, 1024, device="meta"), 128)
    x = torch.randn(2048, 1024, device="meta")
    choice = path_choice.explain_path(x, layer.kernel)
    assert choice.path == "dense" and "2048 tokens" in choice.reason and "1024x1024 at b=128" in choice.reason
    assert path_choice.explain_path(torch.randn(0, 8), torch.randn(2, 2, 4)).path == "dense"
    layer.path = "nonsense"
    with pytest.raises(ValueError, match="path='nonsense' is not one of"):
        layer(x)


def test_every_estimate_grows_with_the_token_count():
    for device in ("cpu", "cuda"):
        for path in ("fft", "dense"):
            costs = [path_choice.estimate_ms(path, device, torch.float32, (8, 8, 128), n) for n in (1, 2**10, 2**17)]
            assert costs[0] <= costs[1] < costs[2]
    assert block_circulant_matmul(torch.randn(0, 8), torch.randn(2, 2, 4)).shape == (0, 8)


def test_auto_path_traces_under_torch_compile_with_dynamic_shapes():
    # The reason string once formatted symbolic token counts as numbers: dynamo failed with "Unknown format code 'g'"
    # as soon as a second batch length made the shapes dynamic (CI, after other tests had compiled the layer). Run in
    # a fresh interpreter: torch.compile's global state (caches, configs other tests patch) stays out of it.
    import subprocess
    import sys

    script = """
import torch
from c3a_tutorial.c3a.block_circulant import block_circulant_matmul
kernel = torch.randn(2, 2, 4, dtype=torch.float64, requires_grad=True)
compiled = torch.compile(lambda x: block_circulant_matmul(x, kernel), backend="aot_eager", dynamic=True)
for tokens in (5, 7):
    x = torch.randn(tokens, 8, dtype=torch.float64)
    torch.testing.assert_close(compiled(x), block_circulant_matmul(x, kernel))
print("same under compile")
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and "same under compile" in done.stdout, done.stderr[-3000:]
