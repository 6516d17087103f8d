import copy
import math

import pytest
import torch

from c3a_tutorial import C3ALinear, LoRALinear, block_circulant


def _base(d_in=16, d_out=24, dtype=torch.float64):
    return torch.nn.Linear(d_in, d_out).to(dtype)


@pytest.mark.parametrize("make", [lambda b: C3ALinear(b, block_size=8), lambda b: LoRALinear(b, rank=4)])
def test_zero_initialised_adapter_leaves_outputs_unchanged(make):
    base = _base()
    x = torch.randn(3, 5, 16, dtype=torch.float64)
    expected = base(x)
    layer = make(base)
    torch.testing.assert_close(layer(x), expected, atol=0, rtol=0)


def test_c3a_forward_is_base_plus_scaled_block_circulant():
    base = _base()
    layer = C3ALinear(base, block_size=8, init_weights="gaussian")
    assert layer.kernel.shape == (3, 2, 8)
    assert layer.scale == pytest.approx(1 / 16)
    x = torch.randn(7, 16, dtype=torch.float64)
    expected = base(x) + x @ (block_circulant(layer.kernel) / 16).T
    torch.testing.assert_close(layer(x), expected, atol=1e-12, rtol=0)
    torch.testing.assert_close(layer.delta_weight(), block_circulant(layer.kernel) / 16)


def test_only_the_kernel_is_trainable():
    layer = C3ALinear(_base(), block_size=4)
    assert [n for n, p in layer.named_parameters() if p.requires_grad] == ["kernel"]
    lora = LoRALinear(_base(), rank=2)
    assert sorted(n for n, p in lora.named_parameters() if p.requires_grad) == ["lora_A", "lora_B"]


@pytest.mark.parametrize("init", ["gaussian", "xavier_uniform", "kaiming_uniform"])
def test_inits(init):
    layer = C3ALinear(_base(d_in=64, d_out=64), block_size=8, init_weights=init)
    k = layer.kernel.detach()
    assert k.abs().max() > 0
    if init == "xavier_uniform":
        assert k.abs().max() <= math.sqrt(6 / 128)
    if init == "kaiming_uniform":
        assert k.abs().max() <= math.sqrt(1 / 64)
    if init == "gaussian":
        assert 0.8 < k.std() < 1.2


@pytest.mark.parametrize(
    "make",
    [
        lambda b: C3ALinear(b, block_size=8, init_weights="gaussian"),
        lambda b: LoRALinear(b, rank=3, alpha=6),
    ],
)
def test_merge_unmerge(make):
    base = _base(dtype=torch.float32)
    original = base.weight.detach().clone()
    layer = make(base)
    if isinstance(layer, LoRALinear):
        torch.nn.init.normal_(layer.lora_B)
    x = torch.randn(4, 16)
    unmerged = layer(x)
    layer.merge()
    assert layer.merged
    torch.testing.assert_close(layer(x), unmerged, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(base.weight, original)
    with pytest.warns(UserWarning, match="already merged"):
        layer.merge()
    layer.unmerge()
    torch.testing.assert_close(base.weight, original, atol=1e-6, rtol=0)
    with pytest.warns(UserWarning, match="not merged"):
        layer.unmerge()


def test_bad_block_size_names_layer_shape_and_valid_choices():
    with pytest.raises(ValueError) as err:
        C3ALinear(torch.nn.Linear(12, 18), block_size=4, name="encoder.query")
    msg = str(err.value)
    assert "encoder.query" in msg and "in_features=12" in msg and "out_features=18" in msg
    assert "[1, 2, 3, 6]" in msg


@pytest.mark.parametrize("bad", [0, -2])
def test_non_positive_sizes_rejected(bad):
    with pytest.raises(ValueError, match="positive integer"):
        C3ALinear(torch.nn.Linear(8, 8), block_size=bad)
    with pytest.raises(ValueError, match="positive integer"):
        LoRALinear(torch.nn.Linear(8, 8), rank=bad)


def test_wrapping_something_else_is_a_type_error():
    with pytest.raises(TypeError, match="wraps an nn.Linear"):
        C3ALinear(torch.nn.Conv1d(4, 4, 1), block_size=2)
    with pytest.raises(ValueError, match="init_weights"):
        C3ALinear(torch.nn.Linear(8, 8), block_size=2, init_weights="ones")


def test_bf16_base_layer_works():
    base = torch.nn.Linear(16, 16).to(torch.bfloat16)
    layer = C3ALinear(base, block_size=4, init_weights="gaussian")
    assert layer.kernel.dtype == torch.float32
    out = layer(torch.randn(3, 16, dtype=torch.bfloat16))
    assert out.dtype == torch.bfloat16
    out.float().sum().backward()
    assert layer.kernel.grad is not None and torch.isfinite(layer.kernel.grad).all()


def _train(layer, lr, steps=15, eps=1e-30):
    torch.manual_seed(5)
    x, target = torch.randn(32, 16, dtype=torch.float64), torch.randn(32, 24, dtype=torch.float64)
    optimizer = torch.optim.Adam([layer.kernel], lr=lr, eps=eps)
    for _ in range(steps):
        optimizer.zero_grad()
        ((layer(x) - target) ** 2).mean().backward()
        optimizer.step()
    return layer.delta_weight().detach()


def test_scale_times_lr_is_what_adam_sees():
    """The rule in C3ALinear's and add_adapters' docstrings: with Adam and the zero init, scale s at lr η
    trains exactly like scale 1 at lr s·η, so the default scale 1/d_in needs lr × d_in."""
    torch.manual_seed(0)
    base = _base()
    s, lr = 1 / 16, 0.5
    default = _train(C3ALinear(copy.deepcopy(base), block_size=4), lr=lr)  # scale 1/d_in = 1/16
    unit = _train(C3ALinear(copy.deepcopy(base), block_size=4, scale=1.0), lr=s * lr)
    assert default.abs().max() > 1e-2
    torch.testing.assert_close(unit, default, atol=1e-10, rtol=1e-8)
    # The same lr for both is not the same training: the rule is not a tautology of the test.
    same_lr = _train(C3ALinear(copy.deepcopy(base), block_size=4, scale=1.0), lr=lr)
    assert (same_lr - default).abs().max() > 1e-2


@pytest.mark.parametrize("scale", [float("nan"), float("inf"), -1.0, 0.0])
def test_a_scale_that_is_not_a_positive_number_is_refused(scale):
    """Issue #18: scale=nan/inf/-1 built a layer whose ΔW is nan, inf or points the other way, silently."""
    with pytest.raises(ValueError, match=rf"scale must be a positive finite number, got {scale}"):
        C3ALinear(_base(), block_size=8, scale=scale)


@pytest.mark.parametrize("alpha", [0.0, -2.0, float("nan"), float("inf")])
def test_a_lora_alpha_that_is_not_a_positive_number_is_refused(alpha):
    """alpha=0 makes ΔW zero for ever: training would move nothing and say nothing."""
    with pytest.raises(ValueError, match=rf"alpha must be a positive finite number, got {alpha}"):
        LoRALinear(_base(), rank=4, alpha=alpha)


def test_a_lora_rank_above_the_layer_width_is_refused():
    """A rank above min(d_in, d_out) adds parameters and no rank: ΔW = B A has rank ≤ min(d_in, d_out)."""
    LoRALinear(_base(16, 24), rank=16)  # the largest rank that still means something
    with pytest.raises(ValueError, match=r"rank=17 is larger than the layer .*in_features=16, out_features=24.*≤ 16"):
        LoRALinear(_base(16, 24), rank=17, name="the layer")
