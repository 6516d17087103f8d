"""GPT-2's transformers ``Conv1D`` (weight stored in x out, y = x W + b) as a base layer for C3A and LoRA."""

import copy
import json

import pytest
import torch

from c3a_tutorial import (
    C3ALinear,
    LoRALinear,
    adapter_layers,
    add_adapters,
    block_circulant,
    export_to_peft,
    import_from_peft,
    load_adapter,
    merge_and_unload,
    save_adapter,
)

from ..tiny_bert import tiny_gpt2

transformers = pytest.importorskip("transformers")
from transformers.pytorch_utils import Conv1D  # noqa: E402

TARGETS = ["c_attn", "c_proj", "c_fc"]  # every Conv1D of GPT-2: 32->96, 32->32, 32->128, 128->32


def _conv1d(d_in=16, d_out=24):
    conv = Conv1D(d_out, d_in).double()
    with torch.no_grad():
        conv.bias.normal_()
    return conv


def _randomise(model):
    torch.manual_seed(3)
    with torch.no_grad():
        for layer in adapter_layers(model).values():
            for name, p in layer.named_parameters():
                if not name.startswith("base_layer."):
                    p.normal_(std=0.5)


def _ids():
    return torch.randint(0, 100, (2, 9), generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize(
    "make",
    [lambda b: C3ALinear(b, block_size=8, init_weights="gaussian"), lambda b: LoRALinear(b, rank=3, alpha=6)],
)
def test_layer_on_conv1d_is_base_plus_dense_update(make):
    base = _conv1d()
    original = base.weight.detach().clone()  # 16 x 24: in x out
    layer = make(base)
    if isinstance(layer, LoRALinear):
        torch.nn.init.normal_(layer.lora_B)
    assert (layer.in_features, layer.out_features, layer.fan_in_fan_out) == (16, 24, True)
    delta = layer.delta_weight()
    assert delta.shape == (24, 16)  # ΔW is always d_out x d_in
    if isinstance(layer, C3ALinear):
        torch.testing.assert_close(delta, block_circulant(layer.kernel) / 16)
    x = torch.randn(5, 7, 16, dtype=torch.float64)
    expected = x @ original + base.bias + x @ delta.T
    torch.testing.assert_close(layer(x), expected, atol=1e-12, rtol=0)
    layer.merge()
    torch.testing.assert_close(base.weight, original + delta.T, atol=1e-12, rtol=0)
    torch.testing.assert_close(layer(x), expected, atol=1e-12, rtol=0)
    layer.unmerge()
    torch.testing.assert_close(base.weight, original, atol=1e-12, rtol=0)


@pytest.mark.parametrize("method,kwargs", [("c3a", {"block_size": 8}), ("lora", {"rank": 4, "alpha": 8.0})])
def test_tiny_gpt2_matches_dense_update_merges_and_round_trips(tmp_path, method, kwargs):
    model = tiny_gpt2().double()  # float64: the comparison with the dense reference is to rounding
    base = copy.deepcopy(model)
    add_adapters(model, method, TARGETS, **kwargs)
    layers = adapter_layers(model)
    assert len(layers) == 8 and all(isinstance(m.base_layer, Conv1D) for m in layers.values())
    _randomise(model)
    # The reference: the base GPT-2 with every Conv1D weight (in x out) plus ΔWᵀ, built by hand.
    dense = copy.deepcopy(base)
    with torch.no_grad():
        for name, layer in layers.items():
            dense.get_submodule(name).weight.add_(layer.delta_weight().T)
    with torch.no_grad():
        ours, reference, before = model(_ids()).logits, dense(_ids()).logits, base(_ids()).logits
    assert (ours - before).abs().max() > 1e-2  # the adapters change the output ...
    torch.testing.assert_close(ours, reference, atol=1e-10, rtol=0)  # ... by exactly ΔW

    save_adapter(model, tmp_path / "gpt2.safetensors")
    fresh = load_adapter(copy.deepcopy(base), tmp_path / "gpt2.safetensors")
    with torch.no_grad():
        torch.testing.assert_close(fresh(_ids()).logits, ours, atol=0, rtol=0)

    merged = merge_and_unload(model)
    assert not adapter_layers(merged)
    assert all(isinstance(merged.get_submodule(name), Conv1D) for name in layers)
    assert set(merged.state_dict()) == set(base.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(merged(_ids()).logits, reference, atol=1e-10, rtol=0)


@pytest.mark.filterwarnings("ignore:.*is_gradient_checkpointing.*:FutureWarning")  # raised inside PEFT's load
def test_lora_on_conv1d_exports_with_fan_in_fan_out_and_peft_reproduces_it(tmp_path):
    peft = pytest.importorskip("peft")
    model = tiny_gpt2()
    base = copy.deepcopy(model)
    add_adapters(model, "lora", ["c_attn", "c_fc"], rank=4, alpha=8.0)
    _randomise(model)
    export_to_peft(model, tmp_path)
    config = json.loads((tmp_path / "adapter_config.json").read_text())
    assert config["fan_in_fan_out"] is True and config["peft_type"] == "LORA"
    loaded = peft.PeftModel.from_pretrained(copy.deepcopy(base), tmp_path).eval()
    with torch.no_grad():
        ours, theirs = model(_ids()).logits, loaded(_ids()).logits
        torch.testing.assert_close(theirs, ours, atol=1e-5, rtol=0)
        assert (base(_ids()).logits - ours).abs().max() > 1e-2
    back = import_from_peft(tmp_path, model=copy.deepcopy(base))
    for key, value in model.state_dict().items():
        torch.testing.assert_close(back.state_dict()[key], value, atol=0, rtol=0, msg=key)


def test_c3a_on_conv1d_export_says_peft_cannot_load_it(tmp_path):
    model = add_adapters(tiny_gpt2(), "c3a", ["c_attn"], block_size=8)
    with pytest.raises(ValueError, match=r"h\.0\.attn\.c_attn.*Conv1D.*PEFT's C3A accepts only nn\.Linear"):
        export_to_peft(model, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_lora_export_mixing_linear_and_conv1d_is_refused(tmp_path):
    model = add_adapters(tiny_gpt2(), "lora", ["c_attn", "lm_head"], rank=2)
    with pytest.raises(ValueError, match="fan_in_fan_out.*nn.Linear and Conv1D"):
        export_to_peft(model, tmp_path)


def test_unsupported_module_lists_supported_types():
    model = tiny_gpt2()
    with pytest.raises(TypeError, match=r"'transformer\.wte', which is an Embedding: adapters wrap nn\.Linear or"):
        add_adapters(model, "c3a", ["wte"], block_size=4)
    with pytest.raises(TypeError, match=r"is an Embedding\. Supported base layers: nn\.Linear, .*Conv1D"):
        C3ALinear(model.transformer.wte, block_size=4)
    assert not adapter_layers(model)
