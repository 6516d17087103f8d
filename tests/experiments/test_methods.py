"""Every declared method builds on a tiny BERT, trains only its adapter and the head, and trains exactly the
adapter parameters its declaration counts (the head excluded, for ours and PEFT's alike)."""

import pytest
import torch

from c3a_tutorial.experiments import methods
from c3a_tutorial.experiments.backbone import load_classifier
from c3a_tutorial.experiments.config import FinetuneConfig, validate_config

SIZES = {"c3a": 8, "lora": 2, "rslora": 4, "dora": 2, "vera": 16, "fourierft": 40}


@pytest.mark.parametrize("name", list(methods.EXPERIMENT_METHODS))
def test_the_declared_count_is_what_the_built_model_trains(tiny_dir, name):
    declared = methods.get_experiment_method(name)
    config = FinetuneConfig(
        method=name, model=str(tiny_dir), **({declared.size_field: SIZES[name]} if declared.size_field else {})
    )
    validate_config(config)
    model, _ = load_classifier(config.model, num_labels=8, seed=0)
    shapes = methods.target_shapes(model, config.target_modules)
    assert shapes == [(32, 32)] * 4  # tiny BERT: query and value of 2 layers
    total = sum(p.numel() for p in model.parameters())
    built = declared.build(model, config)
    trainable = {n for n, p in built.named_parameters() if p.requires_grad}
    head = {n for n in trainable if methods.is_head_parameter(n)}
    assert head and all(n.endswith(("weight", "bias")) for n in head)  # the head trains with every method
    if declared.is_adapter:
        assert methods.adapter_parameter_count(built) == declared.adapter_parameters(shapes, SIZES[name])
        assert all(any(t in n for t in ("query", "value")) for n in trainable - head)  # nothing else trains
    else:
        assert methods.adapter_parameter_count(built) == total - sum(
            p.numel() for n, p in built.named_parameters() if methods.is_head_parameter(n)
        )
    # The built model runs forward and backward, and the adapter gets a gradient.
    out = built(input_ids=torch.tensor([[101, 2023, 102]]), labels=torch.tensor([1]))
    out.loss.backward()
    assert (
        any(p.grad is not None and p.grad.abs().sum() > 0 for n, p in built.named_parameters() if n in trainable - head)
        or name == "lora"
    )


def test_counts_on_minilm_shapes_match_the_sweeps_budgets():
    layer, n = [(384, 384)], 12  # MiniLM: query and value of 6 layers
    count = {name: methods.get_experiment_method(name).adapter_parameters(layer * n, size) for name, size in
             [("c3a", 24), ("lora", 8), ("rslora", 1), ("dora", 8), ("vera", 256), ("fourierft", 768)]}  # fmt: skip
    assert count == {"c3a": 73_728, "lora": 73_728, "rslora": 9_216, "dora": 78_336, "vera": 7_680, "fourierft": 9_216}


def test_unknown_methods_and_full_parameter_counts_are_refused():
    with pytest.raises(ValueError, match="not one of"):
        methods.get_experiment_method("adalora")
    with pytest.raises(ValueError, match="not an adapter"):
        methods.get_experiment_method("full").adapter_parameters([(4, 4)], None)
    assert methods.is_head_parameter("base_model.model.classifier.modules_to_save.default.weight")
    assert methods.is_head_parameter("classifier.bias") and not methods.is_head_parameter("bert.pooler.dense.weight")
