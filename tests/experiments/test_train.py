"""The pieces of a run (experiments.config, .train, .record): validation, the schedule, one step,
overrides, and the setting labels taken from the method registry."""

from types import SimpleNamespace

import pytest
import torch

from c3a_tutorial.c3a.methods import METHODS as ADAPTER_METHODS
from c3a_tutorial.experiments import config as config_module
from c3a_tutorial.experiments import train
from c3a_tutorial.experiments.config import METHODS, FinetuneConfig, validate_config
from c3a_tutorial.experiments.record import format_table, setting_label


def test_methods_are_the_registry_and_full():
    assert METHODS == (*ADAPTER_METHODS, "full") == ("c3a", "lora", "full")
    assert FinetuneConfig(method="c3a", block_size=12).adapter_size() == {"block_size": 12}
    assert FinetuneConfig(method="lora", rank=4).adapter_size() == {"rank": 4}
    assert FinetuneConfig(method="full").adapter_size() == {}


def test_a_method_without_a_default_lr_must_be_given_one(monkeypatch):
    monkeypatch.setattr(config_module, "DEFAULT_LR", {"c3a": 3.0, "full": 1e-4})
    with pytest.raises(ValueError, match="method='lora' has no default learning rate in DEFAULT_LR: pass lr"):
        validate_config(FinetuneConfig(method="lora"))
    validate_config(FinetuneConfig(method="lora", lr=1e-2))


def test_schedule_warms_up_then_decays_to_zero():
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    scheduler = train.warmup_then_decay(optimizer, total_steps=10, warmup_fraction=0.2)
    factors = []
    for _ in range(10):
        factors.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    expected = [1 / 3, 2 / 3] + [(10 - s) / 8 for s in range(2, 10)]
    assert factors == pytest.approx(expected)
    assert optimizer.param_groups[0]["lr"] == 0.0


def test_a_step_moves_the_adapter_and_the_head_and_nothing_else(tiny_dir, stdlib):
    settings = dict(block_size=8, lr=1.0, head_lr=1e-2, max_length=16, batch_size=8, train_size=8, epochs=4)
    config = FinetuneConfig(method="c3a", model=str(tiny_dir), warmup_fraction=0.0, progress=False, **settings)
    run = train.set_up(config, stdlib)
    before = {n: p.detach().clone() for n, p in run.model.named_parameters()}
    batch = next(iter(run.loaders["train"]))
    losses = [train.train_step(run, batch) for _ in range(4)]
    assert losses[-1] < losses[0], losses
    moved = {n for n, p in run.model.named_parameters() if not torch.equal(p, before[n])}
    trainable = {n for n, p in run.model.named_parameters() if p.requires_grad}
    assert moved == trainable and any(".kernel" in n for n in moved) and "classifier.weight" in moved


class _Classifier(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(2, 3)

    def forward(self, x, labels):
        logits = self.linear(x)
        return SimpleNamespace(loss=torch.nn.functional.cross_entropy(logits, labels), logits=logits)


@pytest.mark.parametrize("progress", [False, True])
def test_evaluate_draws_from_the_global_generator_as_a_plain_loop_does(progress):
    # Each DataLoader iterator draws a seed from torch's global generator; one extra draw (tqdm.auto opens an
    # iterator of its own when it wraps a loader) changes the dropout of every later training step.
    examples = [{"x": torch.randn(2), "labels": torch.tensor(i % 3)} for i in range(10)]
    loader, model = torch.utils.data.DataLoader(examples, batch_size=4), _Classifier()
    torch.manual_seed(0)
    for _ in loader:
        pass
    expected = torch.rand(3)
    torch.manual_seed(0)
    metrics = train.evaluate(model, loader, torch.device("cpu"), progress=progress)
    assert torch.equal(torch.rand(3), expected)
    assert 0 <= metrics["accuracy"] <= 1 and metrics["loss"] > 0


def test_overrides_replace_fields_of_a_given_config(tiny_dir, stdlib):
    config = FinetuneConfig(method="lora", model=str(tiny_dir), rank=2, max_length=16, train_size=32, eval_size=8,
                            epochs=1, progress=False)  # fmt: skip
    record = train.finetune(config, data=stdlib, max_steps=1, seed=3).record
    assert record["steps"] == 1 and record["seed"] == 3 and config.max_steps is None


def test_setting_labels_come_from_the_registry_also_for_stored_records():
    # A record kept in data/results/ before the registry existed has the same keys.
    old = {"method": "lora", "block_size": None, "rank": 8, "accuracy": 0.5, "trainable_params": 10,
           "peak_memory_mb": 1.0, "time_per_step_s": 0.1}  # fmt: skip
    records = [old, {**old, "method": "c3a", "block_size": 24, "rank": None}, {**old, "method": "full", "rank": None}]
    assert [setting_label(r) for r in records] == ["r=8", "b=24", "-"]
    rows = format_table(records).splitlines()
    assert rows[2].split()[:3] == ["lora", "r=8", "0.500"] and rows[4].split()[:2] == ["full", "-"]
