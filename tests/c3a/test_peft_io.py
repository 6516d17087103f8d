"""export_to_peft / import_from_peft against the real PEFT library (skipped when peft is missing)."""

import copy
import json

import pytest
import scipy.linalg
import torch

from c3a_tutorial import (
    adapter_layers,
    add_adapters,
    block_circulant,
    export_to_peft,
    import_from_peft,
    merge_adapters,
)
from c3a_tutorial.c3a.peft_io import reverse_kernel

peft = pytest.importorskip("peft")
transformers = pytest.importorskip("transformers")
from peft import C3AConfig, LoraConfig, PeftModel, get_peft_model  # noqa: E402
from peft.tuners.c3a.utils import get_circulant_fast  # noqa: E402

# transformers deprecation noise raised inside PEFT's save/load, not ours.
pytestmark = pytest.mark.filterwarnings("ignore:.*is_gradient_checkpointing.*:FutureWarning")


def tiny_bert(seed: int = 0):
    torch.manual_seed(seed)
    config = transformers.BertConfig(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, vocab_size=100, num_labels=3
    )
    return transformers.BertForSequenceClassification(config).eval()


def inputs():
    g = torch.Generator().manual_seed(1)
    return {
        "input_ids": torch.randint(0, 100, (2, 7), generator=g),
        "attention_mask": torch.ones(2, 7, dtype=torch.long),
    }


def adapted_bert(method: str, **kwargs):
    """A tiny BERT with random (non-zero) adapters and a perturbed head, and a pristine copy of its base."""
    model = tiny_bert()
    base = copy.deepcopy(model)
    add_adapters(model, method, ["query", "value", "intermediate.dense"], trainable_modules=["classifier"], **kwargs)
    torch.manual_seed(2)
    with torch.no_grad():
        for layer in adapter_layers(model).values():
            for name, p in layer.named_parameters():
                if not name.startswith("base_layer."):
                    p.normal_()
        model.classifier.weight.add_(torch.randn_like(model.classifier.weight))
    return model.eval(), base


@pytest.mark.parametrize("b", [1, 2, 3, 4, 5, 8])
def test_peft_block_is_transposed_circulant_and_reversal_converts(b):
    """The fact the conversion relies on: PEFT's block (i, j) is C(p[i, j])ᵀ = C(rev(p[i, j]))."""
    p = torch.randn(2, 3, b, dtype=torch.float64)
    dense = get_circulant_fast(p)
    block = dense[:b, b : 2 * b].numpy()
    assert torch.allclose(torch.from_numpy(block), torch.from_numpy(scipy.linalg.circulant(p[0, 1].numpy()).T))
    torch.testing.assert_close(dense, block_circulant(reverse_kernel(p)), atol=1e-12, rtol=0)
    torch.testing.assert_close(reverse_kernel(reverse_kernel(p)), p, atol=0, rtol=0)


PEFT_CONFIGS = {
    "c3a": ({"block_size": 8}, lambda targets: C3AConfig(block_size=8, target_modules=targets, **HEAD), ["block_size"]),
    "lora": (
        {"rank": 4, "alpha": 8.0},
        lambda targets: LoraConfig(r=4, lora_alpha=8, target_modules=targets, **HEAD),
        ["r", "lora_alpha"],
    ),
}
HEAD = {"modules_to_save": ["classifier"], "task_type": "SEQ_CLS"}


@pytest.mark.parametrize("method", ["c3a", "lora"])
def test_saved_files_have_peft_keys_and_config(tmp_path, method):
    """Same keys, shapes, dtypes and config entries as PEFT's own save_pretrained of the same model."""
    kwargs, make_config, config_keys = PEFT_CONFIGS[method]
    model, base = adapted_bert(method, **kwargs)
    export_to_peft(model, tmp_path / "ours")
    peft_model = get_peft_model(copy.deepcopy(base), make_config(sorted(adapter_layers(model))))
    peft_model.save_pretrained(tmp_path / "theirs")
    from safetensors.torch import load_file

    ours = load_file(tmp_path / "ours" / "adapter_model.safetensors")
    theirs = load_file(tmp_path / "theirs" / "adapter_model.safetensors")
    assert set(ours) == set(theirs)
    assert all(ours[k].shape == theirs[k].shape and ours[k].dtype == theirs[k].dtype for k in ours)
    cfg_ours = json.loads((tmp_path / "ours" / "adapter_config.json").read_text())
    cfg_theirs = json.loads((tmp_path / "theirs" / "adapter_config.json").read_text())
    for key in ["peft_type", "task_type", *config_keys]:
        assert cfg_ours[key] == cfg_theirs[key], key
    assert sorted(cfg_ours["target_modules"]) == sorted(cfg_theirs["target_modules"])  # PEFT saves a set
    assert "classifier" in cfg_ours["modules_to_save"]


@pytest.mark.parametrize(
    "method,kwargs",
    [("c3a", {"block_size": 8}), ("c3a", {"block_size": 4, "scale": 0.37}), ("lora", {"rank": 4, "alpha": 8.0})],
)
def test_logits_through_peft_match(tmp_path, method, kwargs):
    model, base = adapted_bert(method, **kwargs)
    export_to_peft(model, tmp_path)
    loaded = PeftModel.from_pretrained(base, tmp_path).eval()
    with torch.no_grad():
        ours, theirs = model(**inputs()).logits, loaded(**inputs()).logits
    assert (ours - base.bert.embeddings.word_embeddings.weight.new_zeros(())).abs().max() > 0
    torch.testing.assert_close(theirs, ours, atol=1e-5, rtol=0)
    # The adapters matter: without them PEFT's output differs.
    with loaded.disable_adapter(), torch.no_grad():
        assert (loaded(**inputs()).logits - ours).abs().max() > 1e-3


def test_mixed_block_sizes_go_through_block_size_pattern(tmp_path):
    model = tiny_bert()
    base = copy.deepcopy(model)
    add_adapters(model, "c3a", ["query", "value"], block_size=8, init_weights="gaussian")
    add_adapters(model, "c3a", ["intermediate.dense"], block_size=16, init_weights="gaussian")
    export_to_peft(model, tmp_path)
    loaded = PeftModel.from_pretrained(base, tmp_path).eval()
    sizes = {n: m.block_size["default"] for n, m in loaded.named_modules() if hasattr(m, "c3a_kernel")}
    assert sorted(set(sizes.values())) == [8, 16]
    with torch.no_grad():
        torch.testing.assert_close(loaded(**inputs()).logits, model.eval()(**inputs()).logits, atol=1e-5, rtol=0)


@pytest.mark.parametrize("method,kwargs", [("c3a", {"block_size": 8}), ("lora", {"rank": 4, "alpha": 8.0})])
def test_merged_weights_match(tmp_path, method, kwargs):
    model, base = adapted_bert(method, **kwargs)
    export_to_peft(model, tmp_path)
    peft_merged = PeftModel.from_pretrained(base, tmp_path).merge_and_unload()
    merge_adapters(model)
    theirs = peft_merged.state_dict()
    ours = {k.replace(".base_layer.", "."): v for k, v in model.state_dict().items()}
    adapted = [k for k in ours if any(k.startswith(n + ".") for n in adapter_layers(model))]
    assert adapted
    for key in theirs:
        torch.testing.assert_close(theirs[key], ours[key], atol=1e-6, rtol=0, msg=key)


NO_SCALE = "ignore:The PEFT C3A adapter carries no C3A scale"  # a live PeftModel: tested below


@pytest.mark.filterwarnings(NO_SCALE)
@pytest.mark.parametrize("method,kwargs", [("c3a", {"block_size": 8}), ("lora", {"rank": 4, "alpha": 8.0})])
def test_round_trip_ours_peft_ours_is_exact(tmp_path, method, kwargs):
    model, base = adapted_bert(method, **kwargs)
    export_to_peft(model, tmp_path)
    # Through the directory ...
    back = import_from_peft(tmp_path, model=copy.deepcopy(base))
    # ... and through a live PeftModel.
    back_live = import_from_peft(PeftModel.from_pretrained(copy.deepcopy(base), tmp_path))
    expected = {k: v for k, v in model.state_dict().items()}
    for result in (back, back_live):
        got = result.state_dict()
        assert set(got) == set(expected)
        for key in expected:
            torch.testing.assert_close(got[key], expected[key], atol=0, rtol=0, msg=key)
        assert {n: p.requires_grad for n, p in result.named_parameters()} == {
            n: p.requires_grad for n, p in model.named_parameters()
        }


@pytest.mark.filterwarnings(NO_SCALE)
def test_import_from_peft_trained_model(tmp_path):
    """A C3A adapter created by PEFT itself comes over with the same logits."""
    peft_model = get_peft_model(
        tiny_bert(),
        C3AConfig(block_size=4, target_modules=["query", "value"], init_weights="gaussian", task_type="SEQ_CLS"),
    ).eval()
    ours = import_from_peft(peft_model).eval()
    assert len(adapter_layers(ours)) == 4
    with torch.no_grad():
        torch.testing.assert_close(ours(**inputs()).logits, peft_model(**inputs()).logits, atol=1e-5, rtol=0)


def test_errors_are_clear(tmp_path):
    model = tiny_bert()
    with pytest.raises(ValueError, match="no adapters"):
        export_to_peft(model, tmp_path)
    add_adapters(model, "c3a", ["query"], block_size=8)
    add_adapters(model, "lora", ["value"], rank=2)
    with pytest.raises(ValueError, match="mixes"):
        export_to_peft(model, tmp_path)
    with pytest.raises(FileNotFoundError, match="adapter_config.json"):
        import_from_peft(tmp_path / "missing", model=tiny_bert())
    ok, _ = adapted_bert("c3a", block_size=8)
    export_to_peft(ok, tmp_path / "ok")
    with pytest.raises(ValueError, match="needs the base model"):
        import_from_peft(tmp_path / "ok")
    with pytest.raises(ValueError, match="already has adapters"):
        import_from_peft(tmp_path / "ok", model=ok)
    merge_adapters(ok)
    with pytest.raises(ValueError, match="merged"):
        export_to_peft(ok, tmp_path / "merged")


def test_plain_torch_module_round_trip(tmp_path, tiny_model):
    """Not only transformers models: any nn.Module with named nn.Linear layers (no task type)."""
    model = tiny_model.float()
    base = copy.deepcopy(model)
    add_adapters(model, "c3a", ["query", "up"], trainable_modules=["classifier"], block_size=4, init_weights="gaussian")
    export_to_peft(model, tmp_path)
    config = json.loads((tmp_path / "adapter_config.json").read_text())
    assert config["task_type"] is None and config["modules_to_save"] == ["classifier"]
    x = torch.randn(3, 12)
    with torch.no_grad():
        torch.testing.assert_close(
            PeftModel.from_pretrained(copy.deepcopy(base), tmp_path)(x), model(x), atol=1e-5, rtol=0
        )
        torch.testing.assert_close(import_from_peft(tmp_path, model=base)(x), model(x), atol=0, rtol=0)


def test_every_registered_method_has_a_peft_format():
    from c3a_tutorial.c3a.methods import METHODS, method_for_peft_type
    from c3a_tutorial.c3a.peft_io import PEFT_FORMATS

    assert set(PEFT_FORMATS) == set(METHODS)
    for name, method in METHODS.items():
        assert method_for_peft_type(f"PeftType.{method.peft_type}").name == name
    with pytest.raises(ValueError, match=r"reads PEFT adapters of type \['C3A', 'LORA'\]; this one is 'IA3'"):
        method_for_peft_type("IA3")


def test_export_after_an_inference_load_keeps_the_head(tmp_path):
    """modules_to_save comes from what add_adapters made trainable, not from requires_grad at export time."""
    from c3a_tutorial import load_adapter, save_adapter

    model, base = adapted_bert("c3a", block_size=8)
    save_adapter(model, tmp_path / "adapter.safetensors")
    frozen = load_adapter(copy.deepcopy(base), tmp_path / "adapter.safetensors", trainable=False)
    assert not any(p.requires_grad for p in frozen.parameters())
    export_to_peft(frozen, tmp_path / "peft")
    assert json.loads((tmp_path / "peft" / "adapter_config.json").read_text())["modules_to_save"] == ["classifier"]
    loaded = PeftModel.from_pretrained(copy.deepcopy(base), tmp_path / "peft").eval()
    with torch.no_grad():
        torch.testing.assert_close(loaded(**inputs()).logits, model(**inputs()).logits, atol=1e-5, rtol=0)


def test_a_non_default_scale_survives_ours_peft_ours(tmp_path):
    """Issue #18: import_from_peft reset scale=1.0 to 1/d_in. The logits agreed, but resumed training at the same
    learning rate then moved ΔW d_in (here 32) times slower. The scale rides in the weights file's metadata,
    which PEFT ignores: PEFT's logits still match."""
    model, base = adapted_bert("c3a", block_size=8, scale=1.0)
    export_to_peft(model, tmp_path)
    with torch.no_grad():
        peft_logits = PeftModel.from_pretrained(copy.deepcopy(base), tmp_path).eval()(**inputs()).logits
        torch.testing.assert_close(peft_logits, model(**inputs()).logits, atol=1e-5, rtol=0)
    back = import_from_peft(tmp_path, model=copy.deepcopy(base))
    for name, layer in adapter_layers(model).items():
        theirs = back.get_submodule(name)
        assert theirs.scale == layer.scale == 1.0, name
        torch.testing.assert_close(theirs.kernel, layer.kernel, atol=0, rtol=2**-23)  # one float32 rounding
    # PEFT's own save drops the metadata; a live PeftModel carries no scale either. Then scale= says which one.
    live = PeftModel.from_pretrained(copy.deepcopy(base), tmp_path)
    with pytest.warns(UserWarning, match="no C3A scale.*1/d_in"):
        default = import_from_peft(live)
    assert {layer.scale for layer in adapter_layers(default).values()} == {1 / 32}
    chosen = import_from_peft(PeftModel.from_pretrained(copy.deepcopy(base), tmp_path), scale=1.0)
    for name, layer in adapter_layers(model).items():
        torch.testing.assert_close(chosen.get_submodule(name).kernel, layer.kernel, atol=0, rtol=2**-23)
    with torch.no_grad():
        for other in (back, default, chosen):
            torch.testing.assert_close(other.eval()(**inputs()).logits, model(**inputs()).logits, atol=1e-5, rtol=0)


def test_an_unknown_task_type_is_refused(tmp_path):
    model, _ = adapted_bert("lora", rank=2)
    with pytest.raises(ValueError, match=r"task_type='NOPE' is not a PEFT task type; choose one of .*'SEQ_CLS'"):
        export_to_peft(model, tmp_path / "out", task_type="NOPE")
    assert not (tmp_path / "out").exists()


def test_an_export_where_no_directory_can_be_written_is_one_clear_error(tmp_path):
    model, _ = adapted_bert("lora", rank=2)
    (tmp_path / "file").write_text("a file")
    with pytest.raises(ValueError, match=r"Cannot save the PEFT adapter to .*: .*file is a file, not a directory"):
        export_to_peft(model, tmp_path / "file" / "peft")
    with pytest.raises(ValueError, match=r"Cannot save the PEFT adapter to .*: it is a file, and a directory is"):
        export_to_peft(model, tmp_path / "file")
    assert (tmp_path / "file").read_text() == "a file"
    export_to_peft(model, tmp_path / "new" / "peft")  # missing folders are created, as PEFT's save_pretrained does
    assert (tmp_path / "new" / "peft" / "adapter_config.json").is_file()
