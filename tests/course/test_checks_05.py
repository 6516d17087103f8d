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


# ---- exercise 2: the energy rank of a C3A update, from its kernel's spectra


def _c3a_energy_rank(kernel, fraction=0.9, spectrum=np.fft.fft, strict=False, entries=False):
    """An answer to exercise 2; ``spectrum=np.fft.rfft``, ``strict`` or ``entries`` switch on one typical mistake."""
    blocks = spectrum(np.asarray(kernel), axis=-1).transpose(2, 0, 1)
    values = np.abs(blocks) if entries else np.linalg.svd(blocks, compute_uv=False)
    energy = np.sort(values.ravel())[::-1] ** 2
    share = np.cumsum(energy) / energy.sum()
    return int(np.argmax(share > fraction + 1e-9) + 1) if strict else int(np.argmax(share >= fraction - 1e-9) + 1)


def _dense_energy_rank(kernel, fraction=0.9):
    """The right numbers by the refused method: the dense ΔW (built here without block_circulant) and its SVD."""
    m, n, b = kernel.shape
    k = np.arange(b)
    dense = np.block([[kernel[i, j][(k[:, None] - k[None, :]) % b] for j in range(n)] for i in range(m)])
    energy = np.linalg.svd(dense, compute_uv=False) ** 2
    return int(np.argmax(np.cumsum(energy) / energy.sum() >= fraction - 1e-9) + 1)


def _through_torch(kernel, fraction=0.9):
    """The right answer with torch's FFT and SVD."""
    blocks = torch.fft.fft(torch.as_tensor(kernel), dim=-1).permute(2, 0, 1)
    energy = torch.linalg.svdvals(blocks).flatten().sort(descending=True).values.numpy() ** 2
    return int(np.argmax(np.cumsum(energy) / energy.sum() >= fraction - 1e-9) + 1)


@pytest.mark.parametrize("hidden", [False, True])
def test_check_c3a_energy_rank_accepts_right_answers(capsys, hidden):
    for fn in (_c3a_energy_rank, _through_torch, lambda kernel, fraction: float(_c3a_energy_rank(kernel, fraction))):
        checks.check_c3a_energy_rank(fn, hidden=hidden)
    assert capsys.readouterr().out.count("Correct") == 3


def test_the_frequency_route_agrees_with_a_dense_svd_on_every_case():
    """The checker compares with a dense SVD; the frequency-block answer agrees with it on every case."""
    for hidden in (False, True):
        for _, kernel, fraction in checks_05._energy_cases(hidden):
            assert _c3a_energy_rank(kernel, fraction) == _dense_energy_rank(kernel, fraction)
    ties = checks_05._exact_tie_kernel(2, 3, 4)  # eight singular values of 1: an exact share at 0.5
    assert _c3a_energy_rank(ties, 0.5) == 4 and _c3a_energy_rank(ties, 0.5, strict=True) == 5


@pytest.mark.parametrize(
    ("mistake", "message"),
    [
        ({"spectrum": np.fft.rfft}, "one frequency of each conjugate pair"),
        ({"entries": True}, "you ranked the entries"),
        ({"strict": True}, "A strict comparison"),
    ],
    ids=["half spectrum", "entries", "strict"],
)
@pytest.mark.parametrize("hidden", [False, True])
def test_check_c3a_energy_rank_names_each_typical_mistake(mistake, message, hidden):
    with names(message):
        checks.check_c3a_energy_rank(lambda kernel, fraction: _c3a_energy_rank(kernel, fraction, **mistake), hidden)


def test_check_c3a_energy_rank_names_counting_frequencies_and_a_wrong_count():
    def frequencies(kernel, fraction=0.9):  # whole frequency blocks ranked by their energy ‖Ŵ_f‖²
        energy = np.sort(np.linalg.norm(np.fft.fft(kernel, axis=-1), axis=(0, 1)) ** 2)[::-1]
        return int(np.argmax(np.cumsum(energy) / energy.sum() >= fraction - 1e-9) + 1)

    with names("you counted whole frequencies"):
        checks.check_c3a_energy_rank(frequencies)
    with names("pool the singular values of all b blocks"):  # one too many: no typical mistake gives it here
        checks.check_c3a_energy_rank(lambda kernel, fraction: _c3a_energy_rank(kernel, fraction) + 1)
    with names("return"):
        checks.check_c3a_energy_rank(lambda kernel, fraction: None)
    with names("whole number"):
        checks.check_c3a_energy_rank(lambda kernel, fraction: 2.5)


def test_check_c3a_energy_rank_refuses_the_dense_update():
    from c3a_tutorial import block_circulant
    from c3a_tutorial.course.spectral import c3a_singular_values

    def packaged(kernel, fraction=0.9):
        energy = c3a_singular_values(kernel) ** 2
        return int(np.argmax(np.cumsum(energy) / energy.sum() >= fraction - 1e-9) + 1)

    def dense_svd(kernel, fraction=0.9):
        energy = np.linalg.svd(block_circulant(kernel), compute_uv=False) ** 2
        return int(np.argmax(np.cumsum(energy) / energy.sum() >= fraction - 1e-9) + 1)

    with names("block_circulant\\(\\) is not allowed here"):
        checks.check_c3a_energy_rank(dense_svd)
    with names("c3a_singular_values\\(\\) is not allowed here"):
        checks.check_c3a_energy_rank(packaged)
    with names("For a random 4 × 6 × 512 kernel .*the budget is 3.0 MiB"):  # the small cases pass, the large not
        checks.check_c3a_energy_rank(_dense_energy_rank)


def test_hidden_cases_differ_from_the_visible_ones():
    visible = checks_05._energy_cases(False)
    answers = {kernel.shape: _c3a_energy_rank(kernel, fraction) for _, kernel, fraction in visible}
    with pytest.raises(checks.ExerciseError):  # hard-coding the visible answers does not pass the hidden cases
        checks.check_c3a_energy_rank(lambda kernel, fraction: answers.get(kernel.shape, 1), hidden=True)


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
    checker, answer = {
        "nb04_ex1_solution": (nb04_layer.check_c3a_function, "MyC3AFunction"),
        "nb04_ex2_solution": (nb04_layer.check_c3a_module, "MyC3ALinear"),
        "nb05_ex1_solution": (checks_05.check_optimizer_groups, "optimizer_groups"),
        "nb05_ex2_solution": (checks.check_c3a_energy_rank, "c3a_energy_rank"),
    }[grade_id]
    given = MISTAKES[grade_id] if isinstance(MISTAKES[grade_id], dict) else {"typical": MISTAKES[grade_id]}
    said = MESSAGES[grade_id] if isinstance(MESSAGES[grade_id], dict) else {"typical": MESSAGES[grade_id]}
    for name, source in given.items():
        exec(source, namespace)
        with pytest.raises(checks.ExerciseError) as err:
            checker(namespace[answer])
        assert said[name] in " ".join(str(err.value).split()), name


def test_optimizer_groups_refuses_the_package_version():
    import c3a_tutorial

    with names("adapter_parameter_groups\\(\\) is not allowed here"):
        checks.check_optimizer_groups(
            lambda model, lr, head_lr: c3a_tutorial.adapter_parameter_groups(model, lr, head_lr)
        )


def test_hidden_energy_rank_messages_name_the_case_and_are_short():
    with pytest.raises(checks.ExerciseError) as raised:
        checks.check_c3a_energy_rank(lambda kernel, fraction: 1, hidden=True)
    message = " ".join(str(raised.value).split())
    assert "For a random 3 × 2 × 6 kernel and fraction = 0.95" in message and len(message) < 260, message
