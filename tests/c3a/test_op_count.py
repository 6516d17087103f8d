"""Few launches on a GPU, counted without one: the ops one adapted layer's forward + backward dispatches on the
``meta`` device (which takes torch's non-CPU paths), held to at most LoRA r=8's layer at the README's cells."""

import pytest
import torch

from c3a_tutorial import C3ALinear, LoRALinear, block_circulant_matmul
from c3a_tutorial.c3a import path_choice
from c3a_tutorial.experiments.op_count import count_ops, is_view, layer_step_ops, operator_step_ops

# (d_out, d_in, b, tokens): the README's Performance cells.
CELLS = [(768, 768, 64, 4096), (1024, 1024, 128, 2048), (3072, 768, 256, 2048)]


def _layers(d_out, d_in, b, dtype=torch.float32):
    def base():
        return torch.nn.Linear(d_in, d_out, device="meta", dtype=dtype)

    return C3ALinear(base(), b), LoRALinear(base(), 8)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
@pytest.mark.parametrize("cell", CELLS, ids=str)
def test_ours_dispatches_no_more_ops_than_lora_r8(cell, dtype):
    d_out, d_in, b, tokens = cell
    ours, lora = _layers(d_out, d_in, b, dtype)
    assert ours.path == "auto"
    got, bound = layer_step_ops(ours, tokens), layer_step_ops(lora, tokens)
    assert got.total <= bound.total, (got.names, bound.names)
    assert got.not_views <= bound.not_views, (got.names, bound.names)
    # The kernel really got its gradient on the counted path (the count is of a working step).
    assert ours.kernel.grad is not None and ours.kernel.grad.shape == ours.kernel.shape


def test_the_bound_can_fail_the_fft_path_dispatches_more_than_lora():
    d_out, d_in, b, tokens = CELLS[1]
    ours, lora = _layers(d_out, d_in, b)
    ours.path = "fft"  # the override reaches the operator
    fft, bound = layer_step_ops(ours, tokens), layer_step_ops(lora, tokens)
    assert fft.total > bound.total and fft.not_views > bound.not_views
    assert "aten._fft_r2c.default" in fft.names


def test_views_are_counted_apart():
    x = torch.randn(4, 6, device="meta")
    counted = count_ops(lambda: (x.t().contiguous() * 2).view(-1))
    assert counted.names == ("aten.t.default", "aten.clone.default", "aten.mul.Tensor", "aten.view.default")
    assert (counted.total, counted.not_views) == (4, 2)
    assert is_view(torch.ops.aten.t.default) and not is_view(torch.ops.aten.add_.Tensor)


@pytest.mark.parametrize("path", ["fft", "dense"])
def test_the_cost_models_op_counts_are_todays(path):
    """path_choice.GPU prices a call by its op count: the counts it uses are the operator's, counted now."""
    counted = operator_step_ops(lambda x, k: block_circulant_matmul(x, k, path=path, scale=0.1), 1024, 1024, 128, 2048)
    assert counted.total == getattr(path_choice.GPU, f"{path}_ops")
