"""Nothing silently wrong, nothing half-written (issue #26, item 6)."""

import json
import os

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from c3a_tutorial import (
    add_adapters,
    export_to_peft,
    load_adapter,
    merge_adapters,
    merge_and_unload,
    save_adapter,
)
from c3a_tutorial.c3a import peft_io

from ..conftest import TinyModel


class _BatchNormHead(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.query = torch.nn.Linear(8, 8)
        self.head = torch.nn.Sequential(torch.nn.BatchNorm1d(8), torch.nn.Linear(8, 2))

    def forward(self, x):
        return self.head(self.query(x))


def test_save_adapter_keeps_the_buffers_of_trainable_modules(tmp_path):
    """A BatchNorm head's running statistics reloaded as a fresh head's (zeros and ones): outputs differed."""
    model = _BatchNormHead()
    add_adapters(model, "lora", ["query"], trainable_modules=["head"], rank=2)
    model.train()
    for _ in range(3):  # training moves the running statistics
        model(torch.randn(16, 8) * 3 + 1)
    model.eval()
    save_adapter(model, tmp_path / "a.safetensors")
    fresh = _BatchNormHead()
    fresh.query.load_state_dict(model.query.base_layer.state_dict())
    load_adapter(fresh, tmp_path / "a.safetensors")
    x = torch.randn(4, 8)
    torch.testing.assert_close(fresh.eval()(x), model(x), atol=0, rtol=0)
    assert fresh.head[0].num_batches_tracked.item() == 3
    export_to_peft(model, tmp_path / "peft", task_type=None)  # and PEFT's modules_to_save holds them too
    with safe_open(str(tmp_path / "peft" / "adapter_model.safetensors"), framework="pt") as f:
        assert "base_model.model.head.0.running_mean" in f.keys()


def test_merging_a_layer_tied_to_another_unties_it_with_a_warning(tmp_path):
    """GPT-2's lm_head shares its weight with the token embeddings: merging into it changed the embeddings."""
    transformers = pytest.importorskip("transformers")
    from ..tiny_bert import tiny_gpt2

    model = tiny_gpt2()
    embeddings = model.transformer.wte.weight.detach().clone()
    add_adapters(model, "lora", ["lm_head", "c_attn"], rank=2)
    with torch.no_grad():
        for layer in (model.lm_head, model.transformer.h[0].attn.c_attn):
            layer.lora_B.normal_(std=0.1)
    ids = torch.randint(0, 100, (2, 6), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = model(ids).logits
    model.save_pretrained(tmp_path / "adapted")  # the tie is dropped in the saved config as well
    # (transformers 5 keeps two differing tied tensors of a checkpoint apart anyway; 4.x re-ties them on load)
    assert json.loads((tmp_path / "adapted" / "config.json").read_text())["tie_word_embeddings"] is False
    with pytest.warns(UserWarning, match=r"lm_head's weight is tied to \['transformer.wte.weight'\].*Untied"):
        merge_and_unload(model)
    torch.testing.assert_close(model.transformer.wte.weight, embeddings, atol=0, rtol=0)
    with torch.no_grad():
        torch.testing.assert_close(model(ids).logits, expected, atol=1e-5, rtol=0)
    model.save_pretrained(tmp_path / "merged")
    for folder in ("merged", "adapted"):
        plain = transformers.GPT2LMHeadModel.from_pretrained(tmp_path / folder).eval()
        with torch.no_grad():
            torch.testing.assert_close(plain(ids).logits, expected, atol=1e-5, rtol=0, msg=folder)
        torch.testing.assert_close(plain.transformer.wte.weight, embeddings, atol=0, rtol=0, msg=folder)


def test_merge_adapters_unties_too():
    from ..tiny_bert import tiny_gpt2

    model = tiny_gpt2()
    add_adapters(model, "lora", ["lm_head"], rank=2)
    with pytest.warns(UserWarning, match="tied"):
        merge_adapters(model)
    assert model.lm_head.base_layer.weight is not model.transformer.wte.weight


@pytest.mark.parametrize("trainable", [["query"], ["layers.0"], r"layers\.0\.query"])
def test_a_module_both_targeted_and_trained_is_refused(trainable):
    """Its base weight trained beside the adapter, and export_to_peft dropped it without a word."""
    model = TinyModel()
    with pytest.raises(ValueError, match=r"both a target .* and inside trainable_modules"):
        add_adapters(model, "lora", ["query"], trainable_modules=trainable, rank=2)
    assert all(p.requires_grad for p in model.parameters())  # nothing changed
    add_adapters(model, "lora", ["value"], trainable_modules=["classifier"], rank=2)
    with pytest.raises(ValueError, match="made trainable by an earlier add_adapters"):
        add_adapters(model, "lora", ["classifier"], rank=2)


def _exported(tmp_path):
    model = TinyModel()
    add_adapters(model, "lora", ["query"], rank=2)
    export_to_peft(model, tmp_path / "peft", task_type=None)
    (tmp_path / "peft" / "README.md").write_text("notes")
    return model


def test_an_interrupted_export_leaves_the_previous_directory(tmp_path, monkeypatch):
    model = _exported(tmp_path)
    before = {name: (tmp_path / "peft" / name).read_bytes() for name in os.listdir(tmp_path / "peft")}
    add_adapters(model, "lora", ["value"], rank=2)  # a new export would have a new config and new weights

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(peft_io, "save_file", interrupted)  # after the config is written, before the weights
    with pytest.raises(KeyboardInterrupt):
        export_to_peft(model, tmp_path / "peft", task_type=None)
    after = {name: (tmp_path / "peft" / name).read_bytes() for name in os.listdir(tmp_path / "peft")}
    assert after == before
    assert os.listdir(tmp_path) == ["peft"]  # no staging folder left behind
    with pytest.raises(KeyboardInterrupt):
        export_to_peft(model, tmp_path / "new", task_type=None)
    assert not (tmp_path / "new").exists()
    monkeypatch.undo()
    export_to_peft(model, tmp_path / "peft", task_type=None)  # a finished export replaces it, README kept
    config = json.loads((tmp_path / "peft" / "adapter_config.json").read_text())
    assert len(config["target_modules"]) == 4 and (tmp_path / "peft" / "README.md").read_text() == "notes"
    assert sorted(os.listdir(tmp_path)) == ["peft"]


@pytest.mark.parametrize(
    "drop", [("layers",), ("layers", "*", "method"), ("layers", "*", "in_features"), ("layers", "*", "rank")]
)
def test_load_adapter_on_metadata_without_a_field_raises_the_promised_value_error(tmp_path, drop):
    model = TinyModel()
    add_adapters(model, "lora", ["query"], rank=2)
    save_adapter(model, tmp_path / "a.safetensors")
    with safe_open(str(tmp_path / "a.safetensors"), framework="pt") as f:
        metadata, state = json.loads(f.metadata()["c3a_tutorial"]), {k: f.get_tensor(k) for k in f.keys()}
    if len(drop) == 1:
        del metadata[drop[0]]
    else:
        for cfg in metadata["layers"].values():
            del cfg[drop[2]]
    save_file(state, str(tmp_path / "b.safetensors"), metadata={"c3a_tutorial": json.dumps(metadata)})
    with pytest.raises(ValueError, match=rf"metadata without .*{drop[-1]}.*The model was not changed"):
        load_adapter(TinyModel(), tmp_path / "b.safetensors")
