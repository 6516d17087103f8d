"""Behaviours a mutation run over the package broke without any test failing (issue #26, item 8): one test each."""

import os

import pytest
import torch

from c3a_tutorial import LoRALinear, add_adapters, import_from_peft, load_adapter, merge_and_unload, save_adapter
from c3a_tutorial.c3a.inject import RECORD_ATTRIBUTE, recorded_trainable
from c3a_tutorial.c3a.paths import output_problem

from ..bad_input import unwritable_directory
from ..conftest import TinyModel


def test_lora_dropout_drops_the_adapters_input_in_training_only():
    base = torch.nn.Linear(16, 8)
    layer = LoRALinear(base, rank=4, dropout=0.5)
    with torch.no_grad():
        layer.lora_B.normal_()
    x = torch.randn(5, 16)

    def by_hand(drop: bool) -> torch.Tensor:
        torch.manual_seed(3)
        dropped = torch.nn.functional.dropout(x, 0.5, training=drop)
        return base(x) + layer.scale * dropped @ layer.lora_A.T @ layer.lora_B.T  # the base sees the whole input

    torch.manual_seed(3)
    torch.testing.assert_close(layer.train()(x), by_hand(True), atol=1e-6, rtol=0)
    assert not torch.allclose(by_hand(True), by_hand(False))
    torch.testing.assert_close(layer.eval()(x), by_hand(False), atol=1e-6, rtol=0)


class _FcFc2(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc, self.fc2 = torch.nn.Linear(8, 8), torch.nn.Linear(8, 4)

    def forward(self, x):
        return self.fc2(torch.relu(self.fc(x)))


@pytest.mark.parametrize("use_rslora", [False, True])
def test_a_peft_lora_import_matches_alpha_pattern_by_whole_name_and_converts_rslora(tmp_path, use_rslora):
    """alpha_pattern {"fc": 32} is fc's alone, not fc2's (a prefix match would give fc2 alpha 32 too); rsLoRA's
    alpha / sqrt(r) becomes our alpha * sqrt(r) / r. The imported model gives PEFT's logits."""
    peft = pytest.importorskip("peft")
    torch.manual_seed(0)
    config = peft.LoraConfig(r=4, lora_alpha=8, alpha_pattern={"fc": 32}, target_modules=["fc", "fc2"],
                             use_rslora=use_rslora)  # fmt: skip
    base = _FcFc2()
    peft_model = peft.get_peft_model(_copy(base), config)
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if "lora_B" in name:
                p.normal_()
    peft_model.save_pretrained(tmp_path / "peft")
    ours = import_from_peft(tmp_path / "peft", model=_copy(base))
    x = torch.randn(6, 8)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), peft_model(x), atol=1e-5, rtol=0)
    assert ours.fc.alpha != ours.fc2.alpha


def _copy(module):
    import copy

    return copy.deepcopy(module)


@pytest.mark.parametrize("remove", [merge_and_unload, pytest.param(lambda m: __import__("c3a_tutorial").unload(m),
                                                                   id="unload")])  # fmt: skip
def test_a_plain_model_keeps_no_record_of_the_adapters_trainable_parameters(remove):
    model = TinyModel()
    add_adapters(model, "lora", ["query"], trainable_modules=["classifier"], rank=2)
    assert recorded_trainable(model) == ["classifier.bias", "classifier.weight"]
    remove(model)
    assert recorded_trainable(model) is None and RECORD_ATTRIBUTE not in model.__dict__


def test_load_adapter_not_strict_loads_only_what_the_metadata_describes(tmp_path):
    """An extra tensor in the file (here a base weight the model has) is warned about and left out."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    model = TinyModel()
    add_adapters(model, "lora", ["query"], trainable_modules=[], rank=2)
    save_adapter(model, tmp_path / "a.safetensors")
    with safe_open(str(tmp_path / "a.safetensors"), framework="pt") as f:
        metadata, state = f.metadata(), {k: f.get_tensor(k) for k in f.keys()}
    state["layers.0.key.weight"] = torch.full((12, 12), 7.0)  # undescribed, but a name and shape the model has
    save_file(state, str(tmp_path / "b.safetensors"), metadata=metadata)
    fresh = TinyModel()
    key_before = fresh.layers[0].key.weight.detach().clone()
    with pytest.raises(ValueError, match="does not describe"):
        load_adapter(fresh, tmp_path / "b.safetensors")
    with pytest.warns(UserWarning, match=r"holds \['layers.0.key.weight'\], which its metadata does not describe"):
        load_adapter(fresh, tmp_path / "b.safetensors", strict=False)
    torch.testing.assert_close(fresh.layers[0].key.weight, key_before, atol=0, rtol=0)
    torch.testing.assert_close(fresh.layers[0].query.lora_A, model.layers[0].query.lora_A, atol=0, rtol=0)


def test_an_existing_output_directory_is_probed_for_writability(tmp_path):
    folder = unwritable_directory(tmp_path)  # skips where every folder can be written
    assert output_problem(folder, "directory") == f"the directory {os.path.abspath(folder)} is not writable"
    assert output_problem(tmp_path, "directory") is None
