"""Hugging Face's ``Trainer``, unmodified, on a model with adapters (issue #26): checkpoints every
``save_steps``, ``resume_from_checkpoint`` and ``load_best_model_at_end`` work through ``save_pretrained`` and
``load_state_dict``, and a plain ``from_pretrained`` of a checkpoint gives the merged model, not random layers."""

import pytest
import torch
from safetensors.torch import load_file

from c3a_tutorial import adapter_parameter_groups, add_adapters, merge_and_unload

transformers = pytest.importorskip("transformers")
pytest.importorskip("accelerate")

_CONFIG = {"vocab_size": 50, "hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
           "intermediate_size": 64, "max_position_embeddings": 32}  # fmt: skip


def _adapted_bert(seed: int):
    torch.manual_seed(seed)
    model = transformers.BertForSequenceClassification(transformers.BertConfig(**_CONFIG, num_labels=3))
    add_adapters(model, "c3a", ["query", "value"], block_size=8, scale=1.0, trainable_modules=["classifier"])
    return model


def _dataset(n: int = 24):
    g = torch.Generator().manual_seed(5)
    ids = torch.randint(1, 50, (n, 8), generator=g)
    labels = torch.randint(0, 3, (n,), generator=g)
    return [{"input_ids": ids[i], "labels": labels[i]} for i in range(n)]


def _trainer(model, output_dir, trainer_kwargs=None, **args):
    args = {"save_steps": 3, **args}
    arguments = transformers.TrainingArguments(
        output_dir=str(output_dir), per_device_train_batch_size=4, per_device_eval_batch_size=8, max_steps=6,
        logging_steps=100, report_to=[], use_cpu=True, seed=11, dataloader_num_workers=0, disable_tqdm=True, **args,
    )  # fmt: skip
    optimizer = torch.optim.AdamW(adapter_parameter_groups(model, lr=1e-2, head_lr=1e-2))
    return transformers.Trainer(
        model=model,
        args=arguments,
        train_dataset=_dataset(),
        optimizers=(optimizer, None),
        **(trainer_kwargs or {}),
    )


def _trained_tensors(model) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}


def test_a_resumed_trainer_run_equals_an_uninterrupted_one_exactly(tmp_path):
    """save_steps used to stop at the first checkpoint (save_pretrained was refused) and leave it empty."""
    model = _adapted_bert(seed=0)
    _trainer(model, tmp_path / "run").train()
    checkpoint = tmp_path / "run" / "checkpoint-3"
    assert (checkpoint / "model.safetensors").is_file() and (checkpoint / "optimizer.pt").is_file()
    # A model of another seed: everything it trains with after the resume comes from the checkpoint.
    resumed = _adapted_bert(seed=1)
    _trainer(resumed, tmp_path / "run").train(resume_from_checkpoint=str(checkpoint))
    expected, got = _trained_tensors(model), _trained_tensors(resumed)
    assert set(got) == set(expected) and any(t.abs().sum() > 0 for n, t in got.items() if "kernel" in n)
    for name, tensor in expected.items():
        torch.testing.assert_close(got[name], tensor, atol=0, rtol=0, msg=name)
    frozen = {n: p for n, p in model.state_dict().items() if "base_layer" in n}
    for name, tensor in frozen.items():  # the base weights the resumed model had are replaced too
        torch.testing.assert_close(resumed.state_dict()[name], tensor, atol=0, rtol=0)


def test_a_plain_from_pretrained_of_a_checkpoint_is_the_merged_model(tmp_path):
    model = _adapted_bert(seed=0)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.normal_(std=0.1)
    model.save_pretrained(tmp_path / "checkpoint")
    ids = torch.randint(1, 50, (3, 8), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        expected = model.eval()(ids).logits
    plain, info = transformers.BertForSequenceClassification.from_pretrained(
        tmp_path / "checkpoint", output_loading_info=True
    )
    assert not info["missing_keys"], info  # nothing re-initialised at random
    assert any(k.endswith("query.kernel") for k in info["unexpected_keys"])  # the adapter tensors, unused
    with torch.no_grad():
        torch.testing.assert_close(plain.eval()(ids).logits, expected, atol=1e-5, rtol=0)
        merged = merge_and_unload(model)(ids).logits
    torch.testing.assert_close(plain(ids).logits, merged, atol=1e-6, rtol=0)


def test_load_best_model_at_end_loads_the_best_checkpoint(tmp_path):
    """The metric is chosen so that the best checkpoint (step 4) is neither the first nor the last."""
    scores = iter([3.0, 1.0, 2.0])

    def compute_metrics(_):
        return {"score": next(scores)}

    model = _adapted_bert(seed=0)
    trainer = _trainer(
        model, tmp_path / "run", eval_strategy="steps", eval_steps=2, save_steps=2, load_best_model_at_end=True,
        metric_for_best_model="score", greater_is_better=False,
        trainer_kwargs={"eval_dataset": _dataset(8), "compute_metrics": compute_metrics},
    )  # fmt: skip
    trainer.train()
    assert trainer.state.best_model_checkpoint.endswith("checkpoint-4")
    best = load_file(str(tmp_path / "run" / "checkpoint-4" / "model.safetensors"))
    last = load_file(str(tmp_path / "run" / "checkpoint-6" / "model.safetensors"))
    for name, tensor in _trained_tensors(model).items():
        torch.testing.assert_close(tensor, best[name], atol=0, rtol=0, msg=name)
    assert any(not torch.equal(best[n], last[n]) for n in _trained_tensors(model))
