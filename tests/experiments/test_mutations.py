"""Behaviours of the training code a mutation run broke without any test failing (issue #26, item 8)."""

import copy

import pytest
import torch

from c3a_tutorial.experiments import sweep, train
from c3a_tutorial.experiments.config import MAX_GRAD_NORM, FinetuneConfig
from c3a_tutorial.experiments.methods import get_experiment_method

from .test_sweep import _fake_run


def _run(tiny_dir, stdlib, seed=0, **overrides):
    config = FinetuneConfig(model=str(tiny_dir), method="lora", rank=2, lr=1e-2, head_lr=1e-2, train_size=32,
                            eval_size=16, batch_size=8, max_length=16, device="cpu", progress=False, seed=seed,
                            **overrides)  # fmt: skip
    return train.set_up(config, stdlib)


def test_each_training_step_starts_from_zero_gradients(tiny_dir, stdlib):
    """Without zero_grad the gradients of earlier steps add up; the second step's gradient must be its batch's."""
    run = _run(tiny_dir, stdlib)
    run.model.eval()  # no dropout: the gradient below is computed the same way
    first, second = list(run.loaders["train"])[:2]
    train.train_step(run, first)
    before = copy.deepcopy(run.model)  # the parameters the second step's gradient is taken at
    train.train_step(run, second)
    loss = before(**second).loss
    loss.backward()
    params = [p for p in before.parameters() if p.requires_grad]
    torch.nn.utils.clip_grad_norm_(params, MAX_GRAD_NORM)
    got = [p.grad for p in run.model.parameters() if p.requires_grad]
    for expected, grad in zip([p.grad for p in params], got, strict=True):
        torch.testing.assert_close(grad, expected, atol=1e-6, rtol=1e-5)


def test_evaluation_runs_in_eval_mode_whatever_training_left(tiny_dir, stdlib):
    run = _run(tiny_dir, stdlib)
    run.model.train()  # dropout on, as the training loop leaves it
    first = train.evaluate(run.model, run.loaders["validation"], run.device)
    second = train.evaluate(run.model, run.loaders["validation"], run.device)
    assert run.model.training  # the mode it was in comes back
    run.model.eval()
    reference = train.evaluate(run.model, run.loaders["validation"], run.device)
    assert first == second == reference


def test_different_seeds_give_different_batch_orders(tiny_dir, stdlib):
    def order(seed):
        return [batch["labels"].tolist() for batch in _run(tiny_dir, stdlib, seed=seed).loaders["train"]]

    assert order(0) == order(0)
    assert order(0) != order(1)


def test_doras_declared_parameter_count_on_a_non_square_layer_is_peft_s():
    """One magnitude per output feature: d_out, not d_in (the same on a square layer)."""
    peft = pytest.importorskip("peft")

    class Layer(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.proj = torch.nn.Linear(16, 24)  # d_in 16, d_out 24

    model = peft.get_peft_model(Layer(), peft.LoraConfig(r=2, use_dora=True, target_modules=["proj"]))
    trained = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert get_experiment_method("dora").adapter_parameters([(24, 16)], 2) == trained == 2 * (16 + 24) + 24


def test_a_best_lr_at_the_lower_edge_extends_the_grid_downward():
    config = sweep.SweepConfig(settings={"lora": (8,)}, seeds={"lora": (0,)}, lr_grid={"lora": (1e-3, 3e-3, 1e-2)},
                               lr_seeds=(0,))  # fmt: skip
    runs = [_fake_run(("lr grid", "lora", 8, lr, 0), val_accuracy=1 - lr) for lr in (1e-3, 3e-3, 1e-2)]
    info = sweep.choose_lr(config, {r["run_id"]: r for r in runs}, "lora", 8)
    assert info["pending"] == [3e-4] and info["extended"] == 1 and info["chosen"] is None
