"""Adapters on the architectures a PEFT user brings (issue #26), tiny models built from transformers configs."""

import pytest
import torch

from c3a_tutorial import adapter_layers, add_adapters

transformers = pytest.importorskip("transformers")


def _tiny_t5():
    config = transformers.T5Config(vocab_size=50, d_model=32, d_kv=8, d_ff=64, num_layers=1, num_heads=4)
    torch.manual_seed(0)
    return transformers.T5ForConditionalGeneration(config).eval()


@pytest.mark.parametrize("method, size", [("c3a", {"block_size": 8}), ("lora", {"rank": 2})])
def test_t5_with_wo_adapted_runs_as_it_reads_the_layers_weight(method, size):
    """T5's feed-forward reads self.wo.weight.dtype: an adapter layer without .weight crashed in forward."""
    model = _tiny_t5()
    ids = torch.randint(0, 50, (2, 6), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        base = model(input_ids=ids, decoder_input_ids=ids).logits
    add_adapters(model, method, ["q", "v", "wo"], **size)
    layer = adapter_layers(model)["encoder.block.0.layer.1.DenseReluDense.wo"]
    assert layer.weight is layer.base_layer.weight and layer.bias is None
    assert (layer.in_features, layer.out_features) == (64, 32)
    with torch.no_grad():
        torch.testing.assert_close(model(input_ids=ids, decoder_input_ids=ids).logits, base, atol=1e-6, rtol=0)


def test_an_adapted_conv1d_shows_the_conv1d_weight_and_bias():
    from ..tiny_bert import tiny_gpt2

    model = tiny_gpt2()
    add_adapters(model, "lora", ["c_attn"], rank=2)
    layer = adapter_layers(model)["transformer.h.0.attn.c_attn"]
    assert layer.weight is layer.base_layer.weight and layer.bias is layer.base_layer.bias
    assert tuple(layer.weight.shape) == (32, 96) and (layer.in_features, layer.out_features) == (32, 96)
