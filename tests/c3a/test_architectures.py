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


def _tiny(family: str, task: str = "SeqCls"):
    """A tiny model of ``family`` built from its config (nothing downloaded); ``task`` picks the head."""
    small = {"vocab_size": 64}
    configs = {
        "bert": transformers.BertConfig(**small, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                        intermediate_size=32),
        "roberta": transformers.RobertaConfig(**small, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                              intermediate_size=32),
        "distilbert": transformers.DistilBertConfig(**small, dim=16, n_layers=1, n_heads=2, hidden_dim=32),
        "llama": transformers.LlamaConfig(**small, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                          num_key_value_heads=1, intermediate_size=32, pad_token_id=0),
        "gpt2": transformers.GPT2Config(**small, n_embd=16, n_layer=1, n_head=2, pad_token_id=0),
        "t5": transformers.T5Config(**small, d_model=16, d_kv=8, d_ff=32, num_layers=1, num_heads=2),
        "vit": transformers.ViTConfig(hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                      intermediate_size=32, image_size=8, patch_size=4),
    }  # fmt: skip
    config = configs[family]
    config.num_labels = 3
    classes = {"SeqCls": transformers.AutoModelForSequenceClassification, "Base": transformers.AutoModel}
    if family == "vit":
        classes["SeqCls"] = transformers.AutoModelForImageClassification
    torch.manual_seed(0)
    return classes[task].from_config(config)


def _peft_targets(model, task_type, **config) -> set[str]:
    peft = pytest.importorskip("peft")
    from peft.tuners.lora import LoraLayer

    peft_model = peft.get_peft_model(model, peft.LoraConfig(r=2, task_type=task_type, **config))
    prefix = "base_model.model."
    return {n[len(prefix) :] for n, m in peft_model.named_modules() if isinstance(m, LoraLayer)}


FAMILIES = ["bert", "roberta", "distilbert", "llama", "gpt2", "t5", "vit"]


@pytest.mark.parametrize("family", FAMILIES)
def test_left_out_targets_are_the_family_defaults_peft_picks(family):
    task = "Base" if family == "t5" else "SeqCls"
    ours = set(adapter_layers(add_adapters(_tiny(family, task), "lora", rank=2)))
    if family in ("distilbert", "vit"):  # PEFT has no default for these: its LoRA asks for target_modules
        # ViT's attention is query/value in transformers 4, q_proj/v_proj in 5
        names = {"distilbert": [{"q_lin", "v_lin"}], "vit": [{"query", "value"}, {"q_proj", "v_proj"}]}[family]
        assert {n.rpartition(".")[2] for n in ours} in names and len(ours) == 2
    else:
        assert ours == _peft_targets(_tiny(family, task), None)


@pytest.mark.parametrize("family", FAMILIES)
def test_all_linear_targets_every_linear_layer_but_the_output_layer_as_peft(family):
    task = "Base" if family == "t5" else "SeqCls"
    task_type = None if family == "t5" else "SEQ_CLS"  # ViT too: PEFT then leaves its classifier out, as we do
    ours = add_adapters(_tiny(family, task), "lora", "all-linear", rank=2)
    theirs = _peft_targets(_tiny(family, task), task_type, target_modules="all-linear")
    assert set(adapter_layers(ours)) == theirs and theirs
    assert not any(name.split(".")[0] in ("classifier", "score", "lm_head") for name in adapter_layers(ours))


def test_all_linear_leaves_gpt2s_tied_lm_head_out():
    from ..tiny_bert import tiny_gpt2

    model = add_adapters(tiny_gpt2(), "lora", "all-linear", rank=2)
    assert len(adapter_layers(model)) == 8 and "lm_head" not in adapter_layers(model)  # 4 Conv1D x 2 blocks


def test_a_model_without_known_names_asks_for_target_modules():
    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    with pytest.raises(ValueError, match=r"target_modules is not given .* linear modules are: \['0', '2'\]"):
        add_adapters(model, "lora", rank=2)


HEADS = [
    ("bert", {"classifier"}, "classifier"),
    ("roberta", {"classifier"}, "classifier.out_proj"),
    ("llama", {"score"}, "score"),
    ("gpt2", {"score"}, "score"),
    ("distilbert", {"pre_classifier", "classifier"}, "classifier"),
    ("vit", {"classifier"}, "classifier"),
]


@pytest.mark.parametrize("family, heads, head_linear", HEADS)
def test_the_new_head_of_a_task_model_trains_unless_told_otherwise(family, heads, head_linear):
    """Forgetting trainable_modules left a freshly initialised head frozen with no word. Opened as PEFT's
    task_type="SEQ_CLS" opens it (DistilBERT's new pre_classifier too)."""
    model = add_adapters(_tiny(family), "lora", rank=2)
    opened = {n for n, p in model.named_parameters() if p.requires_grad and "lora_" not in n}
    assert opened == {n for n, p in model.named_parameters() if n.split(".")[0] in heads}
    targets = sorted({n.rpartition(".")[2] for n in adapter_layers(model)})  # PEFT has no default for some
    theirs = pytest.importorskip("peft").get_peft_model(_tiny(family), _peft_config("SEQ_CLS", targets))
    their_open = {n.split(".modules_to_save.")[0].removeprefix("base_model.model.")
                  for n, p in theirs.named_parameters() if p.requires_grad and "lora_" not in n}  # fmt: skip
    assert their_open == {n.split(".")[0] for n in opened}
    closed = add_adapters(_tiny(family), "lora", trainable_modules=[], rank=2)
    assert all("lora_" in n for n, p in closed.named_parameters() if p.requires_grad)
    adapted = add_adapters(_tiny(family), "lora", [head_linear], rank=2)  # an adapter on the head: not opened too
    assert not any(n.startswith(head_linear.split(".")[0] + ".") and "lora_" not in n
                   for n, p in adapted.named_parameters() if p.requires_grad)  # fmt: skip


def _peft_config(task_type, target_modules):
    import peft

    return peft.LoraConfig(r=2, task_type=task_type, target_modules=target_modules)
