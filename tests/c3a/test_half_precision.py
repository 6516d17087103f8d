"""The README's "Half precision": in a bf16 or fp16 model the adapters stay float32, the layer's output keeps the
model's dtype, the adapters train (finite gradients, AdamW from adapter_parameter_groups), and save/load and
PEFT export/import reproduce the logits."""

import copy

import pytest
import torch

from c3a_tutorial import (
    adapter_layers,
    adapter_parameter_groups,
    add_adapters,
    export_to_peft,
    import_from_peft,
    load_adapter,
    save_adapter,
)

transformers = pytest.importorskip("transformers")
pytestmark = pytest.mark.filterwarnings("ignore:.*is_gradient_checkpointing.*:FutureWarning")


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=["bf16", "fp16"])
@pytest.mark.parametrize("method, kwargs", [("c3a", {"block_size": 8, "scale": 1.0}), ("lora", {"rank": 4})])
def test_adapters_stay_float32_and_train_in_a_half_precision_model(tmp_path, dtype, method, kwargs):
    config = transformers.BertConfig(
        hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64, vocab_size=100, num_labels=3
    )
    torch.manual_seed(0)
    base = transformers.BertForSequenceClassification(config).to(dtype).eval()
    # trainable_modules=[]: no head (the task's head opens by default), as a head would keep the model's dtype,
    # and Adam's eps=1e-8 underflows in fp16.
    model = add_adapters(copy.deepcopy(base), method, ["query", "value"], trainable_modules=[], **kwargs)
    trainable = {n: p.dtype for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and set(trainable.values()) == {torch.float32}
    ids = torch.randint(0, 100, (4, 9), generator=torch.Generator().manual_seed(1))
    labels = torch.tensor([0, 1, 2, 1])
    optimizer = torch.optim.AdamW(adapter_parameter_groups(model, lr=1e-2))
    model.train()
    for _ in range(3):
        model(input_ids=ids, labels=labels).loss.float().backward()
        assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.requires_grad)
        optimizer.step()
        optimizer.zero_grad()
    model.eval()
    layer = next(iter(adapter_layers(model).values()))
    assert layer(torch.randn(2, 32, dtype=dtype)).dtype == dtype
    assert all(p.abs().max() > 0 for n, p in layer.named_parameters() if p.requires_grad)  # it trained
    save_adapter(model, tmp_path / "a.safetensors")
    export_to_peft(model, tmp_path / "peft")
    with torch.no_grad():
        expected = model(input_ids=ids).logits
        for other in (load_adapter(copy.deepcopy(base), tmp_path / "a.safetensors"),
                      import_from_peft(tmp_path / "peft", model=copy.deepcopy(base))):  # fmt: skip
            torch.testing.assert_close(other.eval()(input_ids=ids).logits, expected, atol=0, rtol=0)
