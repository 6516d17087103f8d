"""Notebook 05's exercise checkers: accept the right answers, name the typical wrong ones."""

import numpy as np
import pytest
import torch

from c3a_tutorial import adapter_layers
from c3a_tutorial.course import checks
from c3a_tutorial.course.checks import nb05_finetuning as checks_05
from tests.course.test_checks_04 import names  # the checker fails and says this (its lines joined)

# ---- exercise 1: the optimizer's parameter groups


def _make_groups(
    one_group=False,
    eps_scaled=True,
    eps_divided=False,
    frozen_too=False,
    head_eps_scaled=False,
    weight_decay=None,
    c3a_formula=False,
    lr_swapped=False,
    rounded_scale=False,
    drop_bias=False,
):
    """An answer to exercise 1, with one typical mistake switched on (each differs from the right one in one way)."""

    def optimizer_groups(model, lr, head_lr):
        scales = {layer.scale for layer in adapter_layers(model).values()}
        s = scales.pop() if scales else 1.0
        if c3a_formula:  # C3A's default scale, whatever the adapters are
            s = 1.0 / next(p for n, p in model.named_parameters() if n.endswith("query.base_layer.weight")).shape[1]
        if rounded_scale:
            s = round(s, 2)
        s = 1.0 / s if eps_divided else s
        named = [(n, p) for n, p in model.named_parameters() if p.requires_grad or frozen_too]
        if drop_bias:
            named = [(n, p) for n, p in named if not n.endswith("classifier.bias")]
        head = [p for n, p in named if n.startswith("classifier.")]
        body = [p for n, p in named if not n.startswith("classifier.")]
        eps = 1e-8 * s if eps_scaled else 1e-8
        if one_group:
            return [{"params": body + head, "lr": lr, "eps": eps}]
        lrs = (head_lr, lr) if lr_swapped else (lr, head_lr)
        groups = [
            {"params": body, "lr": lrs[0], "eps": eps},
            {"params": head, "lr": lrs[1], "eps": eps if head_eps_scaled else 1e-8},
        ]
        if weight_decay is not None:
            groups[0]["weight_decay"] = weight_decay
        return groups

    return optimizer_groups


def test_groups_checker_accepts_a_right_answer(capsys):
    checks_05.check_optimizer_groups(_make_groups())
    checks_05.check_optimizer_groups(_make_groups(), hidden=True)
    assert capsys.readouterr().out.count("Correct") == 2


@pytest.mark.parametrize(
    ("mistake", "message"),
    [
        (dict(one_group=True), "share a group with the adapter's"),
        (dict(eps_scaled=False), "Scale ε with s"),
        (dict(eps_divided=True), "multiply, do not divide"),
        (dict(frozen_too=True), "do not train"),
        (dict(head_eps_scaled=True), "keep AdamW's 1e-08 there"),
        (dict(weight_decay=0.01), "sets weight_decay"),
        (dict(c3a_formula=True), "Read s from the adapter layers"),  # right for C3A, wrong for LoRA
        (dict(lr_swapped=True), "the head.s group has lr 3;"),
        (dict(rounded_scale=True), "it should be 1e-08 × s"),  # 1/16 rounded to 0.06: a loose tolerance passes it
        (dict(drop_bias=True), "in no group"),
    ],
)
def test_groups_checker_names_the_mistake(mistake, message):
    with names(message):
        checks_05.check_optimizer_groups(_make_groups(**mistake))


def test_groups_checker_rejects_an_optimizer_a_stub_and_a_crash():
    def optimizer(model, lr, head_lr):
        return torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr)

    with names("not the optimizer"):
        checks_05.check_optimizer_groups(optimizer)

    def stub(model, lr, head_lr):
        raise NotImplementedError()

    with names("not written yet"):
        checks_05.check_optimizer_groups(stub)

    def first_adapter_only(model, lr, head_lr):  # crashes when there is no adapter (full fine-tuning)
        s = next(iter(adapter_layers(model).values())).scale
        return _make_groups()(model, lr, head_lr) if s else None

    with names("full fine-tuning.*StopIteration"):
        checks_05.check_optimizer_groups(first_adapter_only)


def test_the_hidden_cases_need_the_general_answer():
    def head_named_by_class(model, lr, head_lr):  # takes the last two parameters as "the head"
        named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        s = next(iter(adapter_layers(model).values())).scale if adapter_layers(model) else 1.0
        return [
            {"params": [p for _, p in named[:-2]], "lr": lr, "eps": 1e-8 * s},
            {"params": [p for _, p in named[-2:]], "lr": head_lr},
        ]

    checks_05.check_optimizer_groups(head_named_by_class)  # one Linear head: the last two are the head
    with names("share a group"):  # a RoBERTa-like head has four
        checks_05.check_optimizer_groups(head_named_by_class, hidden=True)


# ---- exercise 2: the energy rank


def _energy_rank(s, fraction=0.9):
    energy = np.sort(np.abs(s))[::-1] ** 2
    return int(np.argmax(np.cumsum(energy) / energy.sum() >= fraction - 1e-12) + 1)


def test_check_energy_rank_accepts_right_answers(capsys):
    def without_slack(s, fraction=0.9):  # ≥ with no tolerance: the ties are exact in floating point
        energy = np.sort(np.abs(s))[::-1] ** 2
        return int(np.argmax(np.cumsum(energy) >= fraction * energy.sum()) + 1)

    for fn in (_energy_rank, without_slack):
        checks.check_energy_rank(fn)
        for seed in range(5):
            checks.check_energy_rank(fn, seed=seed)
    assert capsys.readouterr().out.startswith("Correct")


def test_check_energy_rank_names_forgetting_to_square():
    def unsquared(s, fraction=0.9):
        s = np.sort(s)[::-1]
        return int(np.argmax(np.cumsum(s) / s.sum() >= fraction) + 1)

    with names("accumulate s\\*\\*2"):
        checks.check_energy_rank(unsquared)


def test_check_energy_rank_names_forgetting_to_sort_and_a_missing_return():
    def unsorted(s, fraction=0.9):
        energy = np.asarray(s) ** 2
        return int(np.argmax(np.cumsum(energy) / energy.sum() >= fraction - 1e-12) + 1)

    with names("sort the values largest first"):
        checks.check_energy_rank(unsorted)
    with names("return"):
        checks.check_energy_rank(lambda s, fraction: None)


@pytest.mark.parametrize("seed", [None, 0, 1])
def test_check_energy_rank_names_a_strict_inequality(seed):
    def strict(s, fraction=0.9):
        energy = np.sort(np.abs(s))[::-1] ** 2
        share = np.cumsum(energy) / energy.sum()
        return int(np.argmax(share > fraction) + 1) if (share > fraction).any() else len(s) + 1

    with names("A strict comparison"):
        checks.check_energy_rank(strict, seed=seed)


def test_check_energy_rank_rejects_an_off_by_one():
    def zero_based(s, fraction=0.9):
        return _energy_rank(s, fraction) - 1

    with names("the smallest k with"):
        checks.check_energy_rank(zero_based)


def test_hidden_cases_are_random_spectra(capsys):
    checks.check_energy_rank(_energy_rank, seed=3)
    assert "Correct" in capsys.readouterr().out
    with pytest.raises(checks.ExerciseError):  # hard-coding the visible answers does not pass the hidden cases
        answers = {(3.0, 1.0, 1.0, 1.0): 1, (1.0, 1.0, 1.0, 1.0): 4, (5.0, 0.0, 0.0): 1, (1.0, 1.0, 3.0, 1.0): 1}
        checks.check_energy_rank(lambda s, fraction=0.9: answers.get(tuple(s), 1), seed=3)


# ---- the typical mistakes that the nbgrader test autogrades (tests/tools/mistakes_04_05.py)


@pytest.mark.parametrize(
    "grade_id", ["nb04_ex1_solution", "nb04_ex2_solution", "nb05_ex1_solution", "nb05_ex2_solution"]
)
def test_each_typical_mistake_fails_its_checker_with_its_message(grade_id):
    """The sources in tests/tools/mistakes_04_05.py, run the way the notebooks run them."""
    from c3a_tutorial import block_circulant
    from c3a_tutorial.course.checks import nb04_layer
    from tests.tools.mistakes_04_05 import MESSAGES, MISTAKES

    namespace = {"torch": torch, "np": np, "block_circulant": block_circulant, "adapter_layers": adapter_layers}
    exec(MISTAKES["nb04_ex1_solution"], namespace)  # exercise 2's default argument names exercise 1's class
    exec(MISTAKES[grade_id], namespace)
    checker, answer = {
        "nb04_ex1_solution": (nb04_layer.check_c3a_function, "MyC3AFunction"),
        "nb04_ex2_solution": (nb04_layer.check_c3a_module, "MyC3ALinear"),
        "nb05_ex1_solution": (checks_05.check_optimizer_groups, "optimizer_groups"),
        "nb05_ex2_solution": (checks.check_energy_rank, "energy_rank"),
    }[grade_id]
    with pytest.raises(checks.ExerciseError) as err:
        checker(namespace[answer])
    assert MESSAGES[grade_id] in str(err.value)


def test_optimizer_groups_refuses_the_package_version():
    import c3a_tutorial

    with names("adapter_parameter_groups\\(\\) is not allowed here"):
        checks.check_optimizer_groups(
            lambda model, lr, head_lr: c3a_tutorial.adapter_parameter_groups(model, lr, head_lr)
        )


def test_hidden_energy_rank_messages_are_short():
    with pytest.raises(checks.ExerciseError) as raised:
        checks.check_energy_rank(lambda s, fraction: 1, seed=1)
    message = " ".join(str(raised.value).split())
    assert "values)" in message and len(message) < 200, message
